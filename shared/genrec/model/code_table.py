"""The valid-code table: which code tuples are real items, as plain tensors.

Each item's code tuple is packed into one int64 key (mixed radix ``base``). The keys, sorted,
give the table's prefix tree (``trie``): one node per distinct prefix, numbered level by level
in key order, so the children of a node are consecutive nodes. Each node holds its code, how
many items are under it, the lowest item index under it, and where its children start. Beam
search reads a beam's possible next codes off its node in a few gathers, with no search over
the keys and no dense ``V^L`` mask, so it scales to millions of items at the same cost per
beam. The table is data: adding items rebuilds its tensors and the new items are generatable
immediately, with no retraining.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pack_codes(codes: torch.Tensor, base: int) -> torch.Tensor:
    """``[..., C]`` codes -> ``[...]`` int64 keys (first level most significant)."""
    c = codes.shape[-1]
    weights = torch.tensor([base ** (c - 1 - i) for i in range(c)], dtype=torch.int64, device=codes.device)
    return (codes.long() * weights).sum(-1)


# The rows of ``CodeTable.trie`` ([4, nodes + 1]; node 0 is the root, the last column a pad node).
TRIE_CODE, TRIE_COUNT, TRIE_FIRST_ITEM, TRIE_CHILDREN = range(4)
NO_ITEM = 2**62  # the lowest item index under no item (the pad column)


def build_trie(sorted_keys: torch.Tensor, sorted_items: torch.Tensor, level_sizes: Sequence[int]) -> torch.Tensor:
    """The prefix tree of ``sorted_keys`` (unique, ascending; ``sorted_items``: the item of each):
    ``[4, nodes + 1]`` int64, rows ``TRIE_*``. Node 0 is the root, then the nodes of each level
    in key order; the children of node i are nodes ``children[i] .. children[i + 1] - 1``."""
    n, n_levels, base = len(sorted_keys), len(level_sizes), max(level_sizes)
    device = sorted_keys.device
    root_first = sorted_items.min().reshape(1) if n else torch.tensor([NO_ITEM], device=device)
    codes = [torch.zeros(1, dtype=torch.int64, device=device)]
    counts, firsts = [torch.tensor([n], device=device)], [root_first]
    children: list[torch.Tensor] = []
    parent_starts = torch.zeros(min(n, 1), dtype=torch.int64, device=device)  # the root spans every key
    offset = 1  # the first node of the level being built
    for level in range(n_levels if n else 0):
        prefix = torch.div(sorted_keys, base ** (n_levels - 1 - level), rounding_mode="floor")
        is_start = torch.ones(n, dtype=torch.bool, device=device)
        is_start[1:] = prefix[1:] != prefix[:-1]
        starts = is_start.nonzero().squeeze(1)
        node_of_key = torch.cumsum(is_start, 0) - 1
        codes.append(prefix[starts] % base)
        counts.append(torch.diff(starts, append=torch.tensor([n], device=device)))
        firsts.append(torch.full((len(starts),), NO_ITEM, device=device).scatter_reduce(
            0, node_of_key, sorted_items, "amin"))
        children.append(offset + node_of_key[parent_starts])  # each parent's first child
        parent_starts, offset = starts, offset + len(starts)
    children.append(torch.full((len(codes[-1]) if n else 1,), offset, device=device))  # leaves: none
    # The pad node: no items, no children, and a code past every level's (``base``).
    pad = [torch.tensor([base], device=device), torch.zeros(1, dtype=torch.int64, device=device),
           torch.tensor([NO_ITEM], device=device), torch.tensor([offset], device=device)]
    rows = [codes, counts, firsts, children]
    return torch.stack([torch.cat([*row, end]).long() for row, end in zip(rows, pad, strict=True)])


# The fewest child slots a level gets: exporters specialise a dimension seen as 0 or 1 (it would
# stop being dynamic), and a spare slot costs nothing.
MIN_SLOTS = 2


def child_slots(trie: torch.Tensor, n_levels: int) -> tuple[torch.Tensor, ...]:
    """For each level, ``arange(F)`` where F is the most children any node of that level has (at
    least ``MIN_SLOTS``).
    Beam search reads F slots per beam instead of the level's whole vocabulary: below the first
    levels a prefix has a handful of children, not hundreds. The slots are graph inputs, so a
    table whose fan-out grows (items fed since) needs no new graph."""
    children = trie[TRIE_CHILDREN]
    degree = children[1:] - children[:-1]  # per node (the pad column has none)
    slots, start, end = [], 0, 1  # the root
    for _ in range(n_levels):
        fanout = int(degree[start:end].max()) if end > start else 0
        slots.append(torch.arange(max(fanout, MIN_SLOTS), device=trie.device))
        start, end = int(children[start]), int(children[end])  # the next level's nodes
    return tuple(slots)


def slot_names(n_levels: int) -> tuple[str, ...]:
    """The names of ``child_slots``' tensors, level by level (graph inputs)."""
    return tuple(f"slots_{level}" for level in range(n_levels))


def key_sentinel(level_sizes: Sequence[int]) -> int:
    """A key larger than every real key of this level layout (pads key lists; no prefix range counts it)."""
    return max(level_sizes) ** len(level_sizes)


class CodeTable:
    """Item index -> code tuple, plus the sorted key index used by beam search.

    Attributes (all tensors, on ``device``):
      item_codes   int64 [N, C]  codes of item i (row i = dense item index i)
      item_keys    int64 [N]     packed key of item i
      sorted_keys  int64 [N]     item_keys sorted ascending (unique)
      sorted_items int64 [N]     item index for each sorted key
      trie         int64 [4, M+1] the prefix tree of the keys (``build_trie``), what beam search reads
      slots        per level, int64 [F]: ``child_slots`` of the tree
    """

    def __init__(self, item_codes: torch.Tensor, level_sizes: Sequence[int]) -> None:
        self.level_sizes = [int(v) for v in level_sizes]
        self.base = max(self.level_sizes)
        if self.base ** len(self.level_sizes) >= 2**62:
            raise ValueError("code space too large to pack into int64 keys")
        codes = torch.as_tensor(item_codes, dtype=torch.int64)
        if codes.ndim != 2 or codes.shape[1] != len(self.level_sizes):
            raise ValueError(f"item_codes must be [N, {len(self.level_sizes)}], got {tuple(codes.shape)}")
        self.item_codes = codes
        self._rebuild()

    @property
    def n_items(self) -> int:
        return int(self.item_codes.shape[0])

    @property
    def n_levels(self) -> int:
        return len(self.level_sizes)

    @property
    def sentinel(self) -> int:
        """A key larger than every real key (used to pad exclusion lists)."""
        return key_sentinel(self.level_sizes)

    def _rebuild(self) -> None:
        sizes = torch.tensor(self.level_sizes, device=self.item_codes.device)
        if len(self.item_codes) and ((self.item_codes < 0) | (self.item_codes >= sizes)).any():
            raise ValueError("a code is outside its level's vocabulary")
        self.item_keys = pack_codes(self.item_codes, self.base)
        order = torch.argsort(self.item_keys, stable=True)
        self.sorted_keys = self.item_keys[order].contiguous()
        self.sorted_items = order.contiguous()
        if len(order) > 1 and bool((self.sorted_keys[1:] == self.sorted_keys[:-1]).any()):
            raise ValueError("two items share a code tuple; codes must be unique")
        self.trie = build_trie(self.sorted_keys, self.sorted_items, self.level_sizes)
        self.slots = child_slots(self.trie, self.n_levels)

    def add_items(self, codes: torch.Tensor) -> torch.Tensor:
        """Append items (new dense indices N, N+1, ...) and return their indices."""
        codes = torch.as_tensor(codes, dtype=torch.int64, device=self.item_codes.device).reshape(-1, self.n_levels)
        start = self.n_items
        old = self.item_codes
        self.item_codes = torch.cat([old, codes])
        try:
            self._rebuild()
        except ValueError:
            self.item_codes = old
            self._rebuild()
            raise
        return torch.arange(start, self.n_items, device=codes.device)

    def to(self, device: torch.device | str) -> CodeTable:
        out = CodeTable.__new__(CodeTable)
        out.level_sizes, out.base = self.level_sizes, self.base
        for name in ("item_codes", "item_keys", "sorted_keys", "sorted_items", "trie"):
            setattr(out, name, getattr(self, name).to(device))
        out.slots = tuple(s.to(device) for s in self.slots)
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        """What decoding takes: the codes and keys by item index (the encoder's item vectors, the
        exclusions), the prefix tree and its child slots per level (beam search)."""
        return {"item_codes": self.item_codes, "item_keys": self.item_keys, "trie": self.trie,
                **dict(zip(slot_names(self.n_levels), self.slots, strict=True))}
