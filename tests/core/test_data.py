"""Loaders, schema normalisation, the synthetic generator, splits and downloads."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrec.data import (
    PAD_ITEM,
    SynthConfig,
    generate_synthetic,
    leave_one_out,
    load_dataset,
    pad_histories,
    save_dataset,
)
from genrec.data.splits import sequence_examples, sliding_window_examples
from genrec.data.synth import planted_successor


def _write(folder: Path, interactions: str, items: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text(interactions)
    if items is not None:
        (folder / "items.csv").write_text(items)
    return folder


def test_loader_keeps_string_ids_and_stable_same_day_order(tmp_path: Path) -> None:
    # Same-day ties must keep file order (the Amazon/P5 canonical order), ids stay strings.
    folder = _write(
        tmp_path / "ds",
        "user_id,item_id,timestamp\n"
        "u2,0042,100\n"
        "u1,B00C,200\n"
        "u1,B00A,100\n"
        "u1,B00B,100\n",
        "item_id,title,brand\n0042,Zero forty-two,\nB00A,Alpha,Acme\nB00B,Beta,\nB00C,Gamma,Acme\n",
    )
    ds = load_dataset(folder)
    assert ds.name == "ds"
    inter = ds.interactions
    assert inter["item_id"].tolist() == ["B00A", "B00B", "B00C", "0042"]
    assert inter["user_id"].tolist() == ["u1", "u1", "u1", "u2"]
    assert inter["timestamp"].dtype == np.int64
    assert ds.items.loc[ds.items.item_id == "0042", "title"].item() == "Zero forty-two"
    assert ds.n_users == 2 and ds.n_items == 4


def test_loader_without_items_or_timestamps(tmp_path: Path) -> None:
    folder = _write(tmp_path / "noclock", "user_id,item_id,rating\n1,10,5\n1,30,3\n1,20,4\n", None)
    ds = load_dataset(folder)
    assert not ds.has_timestamps
    assert ds.interactions["item_id"].tolist() == ["10", "30", "20"]  # file order kept
    assert sorted(ds.items["item_id"]) == ["10", "20", "30"]


def test_loader_adds_items_missing_from_catalogue(tmp_path: Path) -> None:
    folder = _write(tmp_path / "gap", "user_id,item_id,timestamp\na,x,1\na,y,2\n", "item_id,title\nx,Thing\n")
    ds = load_dataset(folder)
    assert set(ds.items["item_id"]) == {"x", "y"}


def test_synth_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    cfg = SynthConfig(n_items=150, n_users=60, seed=11)
    a, b = generate_synthetic(cfg), generate_synthetic(cfg)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    other = generate_synthetic(SynthConfig(n_items=150, n_users=60, seed=12))
    assert not a.interactions["item_id"].equals(other.interactions["item_id"])
    save_dataset(a, tmp_path / "s")
    back = load_dataset(tmp_path / "s")
    assert back.interactions["item_id"].tolist() == a.interactions["item_id"].tolist()
    assert back.items["title"].tolist() == a.items["title"].tolist()
    assert {"title", "categories", "brand", "price", "description"} <= set(a.items.columns)
    assert set(a.interactions["event_type"]) <= {"view", "click", "add_to_cart", "purchase"}
    # every user has at least min_sequence_length events and categories form a 3-level path
    assert a.interactions.groupby("user_id").size().min() >= cfg.min_sequence_length
    assert all(len(c.split("|")) == 3 for c in a.items["categories"])


def test_synth_has_learnable_transitions() -> None:
    # The complement chains make the most frequent successor of an item far more likely
    # than chance; a popularity-only stream would not show this.
    ds = generate_synthetic(SynthConfig(n_items=200, n_users=400, seed=3))
    inter = ds.interactions
    nxt = inter.groupby("user_id")["item_id"].shift(-1)
    pairs = pd.DataFrame({"a": inter["item_id"], "b": nxt}).dropna()
    top_share = pairs.groupby("a")["b"].agg(lambda s: s.value_counts().iloc[0] / len(s))
    assert top_share.mean() > 0.2


def test_planted_rule_is_deterministic_next_item() -> None:
    cfg = SynthConfig(n_items=50, n_users=30, seed=5, planted_rule=True)
    ds = generate_synthetic(cfg)
    succ = planted_successor(cfg)
    idx = {f"I{i:06d}": i for i in range(cfg.n_items)}
    for _, g in ds.interactions.groupby("user_id"):
        seq = [idx[i] for i in g["item_id"]]
        assert all(succ[a] == b for a, b in itertools.pairwise(seq))


def test_leave_one_out_split_and_truncation() -> None:
    inter = pd.DataFrame(
        {
            "user_id": ["u"] * 6 + ["v"] * 3 + ["w"] * 2,
            "item_id": ["a", "b", "c", "d", "e", "f", "c", "a", "b", "a", "b"],
            "timestamp": [0, 1, 2, 3, 4, 5, 0, 1, 2, 0, 1],
        }
    )
    from genrec.data import Catalog, InteractionDataset

    ds = InteractionDataset(Catalog(pd.DataFrame({"item_id": list("abcdef")})), inter)
    sp = leave_one_out(ds, max_history=3)
    assert sp.user_ids == ["u", "v"]  # w has only 2 interactions
    ix = sp.item_index.index
    assert [list(t) for t in sp.train] == [[ix("a"), ix("b"), ix("c"), ix("d")], [ix("c")]]
    assert sp.valid_targets.tolist() == [ix("e"), ix("a")]
    assert sp.test_targets.tolist() == [ix("f"), ix("b")]
    assert list(sp.valid_histories[0]) == [ix("b"), ix("c"), ix("d")]  # truncated to 3
    assert list(sp.test_histories[0]) == [ix("c"), ix("d"), ix("e")]
    assert list(sp.test_histories[1]) == [ix("c"), ix("a")]
    pop = sp.item_popularity()
    assert pop[ix("c")] == 2 and pop[ix("f")] == 0
    # Evaluation indexes the parts user by user: each is built once, not on every access (rebuilt,
    # 22 k users of Amazon Beauty took 3 minutes to gather their test histories).
    for part in ("train", "valid_histories", "valid_targets", "test_histories", "test_targets"):
        assert getattr(sp, part) is getattr(sp, part), part


def test_pad_and_sliding_windows() -> None:
    padded = pad_histories([np.array([1, 2, 3, 4]), np.array([7])], 3)
    assert padded.tolist() == [[2, 3, 4], [PAD_ITEM, PAD_ITEM, 7]]
    hist, tgt, owner = sliding_window_examples([np.array([5, 6, 7, 8]), np.array([9]), np.array([1, 2])], 2)
    assert tgt.tolist() == [6, 7, 8, 2]
    assert hist.tolist() == [[-1, 5], [5, 6], [6, 7], [-1, 1]]
    assert owner.tolist() == [0, 0, 0, 2]


def test_sequence_rows_train_every_next_item_once_with_its_history_in_the_row() -> None:
    seqs = [np.arange(100, 112), np.array([9]), np.array([1, 2]), np.arange(200, 205)]
    items, targets, owner = sequence_examples(seqs, 4, 2)
    trained = targets != PAD_ITEM
    # every next item of every sequence, once: as in the sliding windows
    _, window_targets, window_owner = sliding_window_examples(seqs, 4)
    assert sorted(zip(owner.repeat(4)[trained.ravel()], targets[trained], strict=True)) == sorted(
        zip(window_owner, window_targets, strict=True))
    for r, c in zip(*np.nonzero(trained), strict=True):
        seq, row = seqs[owner[r]], items[r]
        history = row[: c + 1][row[: c + 1] != PAD_ITEM]
        # the row up to a trained position is the sequence up to it, with its target next ...
        at = int(np.flatnonzero(seq == history[-1])[0])
        assert history.tolist() == seq[at + 1 - len(history) : at + 1].tolist() and targets[r, c] == seq[at + 1]
        # ... and holds the last context + 1 items (or all there are)
        assert len(history) >= min(3, at + 1)
    # a long sequence's rows, from its end: each re-reads 2 items and trains 2; the first is left-padded
    assert items[0].tolist() == [107, 108, 109, 110] and targets[0].tolist() == [-1, -1, 110, 111]
    assert items[1].tolist() == [105, 106, 107, 108] and targets[1].tolist() == [-1, -1, 108, 109]
    assert items[4].tolist() == [-1, 100, 101, 102] and targets[4].tolist() == [-1, 101, 102, 103]
    with pytest.raises(ValueError, match="context"):
        sequence_examples(seqs, 4, 4)


def test_download_offline_error_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genrec.data import download as dl

    # Port 9 on loopback refuses at once: no traffic leaves the machine.
    monkeypatch.setitem(dl.URLS, "movielens-100k", "http://127.0.0.1:9/ml-100k.zip")
    with pytest.raises(dl.DownloadError, match="offline"):
        dl.download("movielens-100k", tmp_path / "ml")
    assert not (tmp_path / "ml" / "interactions.csv").exists()
    with pytest.raises(ValueError, match="unknown dataset"):
        dl.download("nope", tmp_path)
    with pytest.raises(ValueError, match="CATEGORY"):
        dl.download("amazon-2014", tmp_path)
