"""Dense item indexing, per-user sequences and the leave-one-out split.

Item indices are dense ``0..N-1``; ``PAD_ITEM`` (-1) pads histories. Padding is on the
left so the most recent item is always in the last column, whatever the history length.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from genrec.config import MAX_HISTORY
from genrec.data.schema import ITEM_ID, USER_ID, InteractionDataset

PAD_ITEM = -1


@dataclass
class ItemIndex:
    """Bidirectional map between external item ids and dense indices."""

    ids: np.ndarray  # [N] object array of str

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=object)
        self._pos = {iid: i for i, iid in enumerate(self.ids)}
        if len(self._pos) != len(self.ids):
            raise ValueError("item ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, item_id: str) -> int:
        return self._pos[item_id]

    def get(self, item_id: str, default: int = PAD_ITEM) -> int:
        return self._pos.get(item_id, default)

    def indices(self, item_ids: list[str] | np.ndarray) -> np.ndarray:
        return np.fromiter((self._pos.get(str(i), PAD_ITEM) for i in item_ids), dtype=np.int64)

    def append(self, item_ids: list[str]) -> np.ndarray:
        """Add new ids at the end (existing indices never move); returns their indices."""
        new = [i for i in dict.fromkeys(map(str, item_ids)) if i not in self._pos]
        start = len(self.ids)
        self.ids = np.concatenate([self.ids, np.asarray(new, dtype=object)])
        for k, iid in enumerate(new):
            self._pos[iid] = start + k
        return self.indices(list(item_ids))


def user_sequences(dataset: InteractionDataset, item_index: ItemIndex) -> tuple[list[str], list[np.ndarray]]:
    """Every user's chronological item-index sequence (dataset order is canonical already)."""
    df = dataset.interactions
    idx = item_index.indices(df[ITEM_ID].to_numpy())
    users = df[USER_ID].to_numpy()
    # Rows are grouped by user (stable-sorted in InteractionDataset), so split at changes.
    bounds = np.flatnonzero(users[1:] != users[:-1]) + 1
    starts = np.concatenate([[0], bounds])
    seqs = np.split(idx, bounds)
    return [str(users[s]) for s in starts] if len(users) else [], seqs if len(users) else []


@dataclass
class LeaveOneOutSplit:
    """Last item = test, second-last = validation, the rest = train.

    Histories are the items before the target, truncated to the last ``max_history``.
    Only users with at least ``min_length`` interactions are kept. The parts are computed once
    (cached): callers index them per user, and a part rebuilt on every access made that quadratic.
    """

    item_index: ItemIndex
    user_ids: list[str]
    sequences: list[np.ndarray]
    max_history: int

    @property
    def n_items(self) -> int:
        return len(self.item_index)

    @cached_property
    def train(self) -> list[np.ndarray]:
        return [s[:-2] for s in self.sequences]

    @cached_property
    def valid_histories(self) -> list[np.ndarray]:
        return [s[:-2][-self.max_history :] for s in self.sequences]

    @cached_property
    def valid_targets(self) -> np.ndarray:
        return np.asarray([s[-2] for s in self.sequences], dtype=np.int64)

    @cached_property
    def test_histories(self) -> list[np.ndarray]:
        return [s[:-1][-self.max_history :] for s in self.sequences]

    @cached_property
    def test_targets(self) -> np.ndarray:
        return np.asarray([s[-1] for s in self.sequences], dtype=np.int64)

    def item_popularity(self) -> np.ndarray:
        """Interaction counts per item over the training part only."""
        counts = np.zeros(self.n_items, dtype=np.int64)
        for s in self.train:
            np.add.at(counts, s, 1)
        return counts


def leave_one_out(dataset: InteractionDataset, max_history: int = MAX_HISTORY, min_length: int = 3) -> LeaveOneOutSplit:
    if min_length < 3:
        raise ValueError("leave-one-out needs at least 3 interactions per user (train, valid, test)")
    item_index = ItemIndex(dataset.items[ITEM_ID].to_numpy())
    users, seqs = user_sequences(dataset, item_index)
    keep = [i for i, s in enumerate(seqs) if len(s) >= min_length]
    return LeaveOneOutSplit(
        item_index=item_index,
        user_ids=[users[i] for i in keep],
        sequences=[seqs[i] for i in keep],
        max_history=max_history,
    )


def pad_histories(histories: list[np.ndarray], max_len: int, pad: int = PAD_ITEM) -> np.ndarray:
    """Left-pad (and left-truncate) histories into an ``int64 [U, max_len]`` matrix."""
    out = np.full((len(histories), max_len), pad, dtype=np.int64)
    for r, h in enumerate(histories):
        h = h[-max_len:]
        if len(h):
            out[r, max_len - len(h) :] = h
    return out


def sliding_window_examples(
    sequences: list[np.ndarray], max_len: int, pad: int = PAD_ITEM
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every prefix of every sequence -> its next item.

    Returns ``(histories [M, max_len] left-padded, targets [M], owner [M])`` where ``owner``
    is the row of the sequence each example came from (used for hashed user tokens).
    """
    lengths = np.asarray([len(s) for s in sequences], dtype=np.int64)
    n_ex = np.maximum(lengths - 1, 0)
    total = int(n_ex.sum())
    hist = np.full((total, max_len), pad, dtype=np.int64)
    targets = np.empty(total, dtype=np.int64)
    owner = np.repeat(np.arange(len(sequences)), n_ex)
    row = 0
    for s in sequences:
        n = len(s) - 1
        if n <= 0:
            continue
        # Window matrix via padding once: row t holds s[t-max_len+1 .. t] (then target s[t+1]).
        padded = np.concatenate([np.full(max_len - 1, pad, dtype=np.int64), s[:-1]])
        win = np.lib.stride_tricks.sliding_window_view(padded, max_len)
        hist[row : row + n] = win
        targets[row : row + n] = s[1:]
        row += n
    return hist, targets, owner


def sequence_examples(
    sequences: list[np.ndarray], max_len: int, context: int, pad: int = PAD_ITEM
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every next item of every sequence, as positions of rows of up to ``max_len`` items, for a
    causal model that trains all positions of a row from one pass: a position's history is the
    row up to it, exactly the history serving would pass for it.

    Returns ``(items [M, max_len], targets [M, max_len], owner [M])``, left-padded with ``pad``:
    ``targets[r, i]`` is the item after ``items[r, i]``, or ``pad`` where row ``r`` does not train
    that position. A sequence too long for one row is split into rows each of which re-reads the
    ``context`` items before the positions it trains, so each of those has at least
    ``context + 1`` items of history; each next item is trained once, as in ``sliding_window_examples``.
    """
    if not 0 <= context < max_len:
        raise ValueError(f"context must be in [0, max_len): got {context} for max_len {max_len}")
    items, targets, owner = [], [], []
    for u, s in enumerate(sequences):
        end = len(s) - 1  # positions 0..end-1 have a next item
        while end > 0:
            start = max(0, end - max_len)
            trained_from = start + context if start > 0 else 0
            row_items = np.full(max_len, pad, dtype=np.int64)
            row_targets = np.full(max_len, pad, dtype=np.int64)
            row_items[max_len - (end - start):] = s[start:end]
            row_targets[max_len - (end - trained_from):] = s[trained_from + 1 : end + 1]
            items.append(row_items)
            targets.append(row_targets)
            owner.append(u)
            end = trained_from
    if not items:
        empty = np.empty((0, max_len), dtype=np.int64)
        return empty, empty.copy(), np.empty(0, dtype=np.int64)
    return np.stack(items), np.stack(targets), np.asarray(owner, dtype=np.int64)
