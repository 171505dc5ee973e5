"""The promotion gate's arithmetic and the cross-artifact bookkeeping (no stack, no Spark)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from genrec.data.splits import ItemIndex, LeaveOneOutSplit
from genrec.pipelines.backfill import code_changes
from genrec.pipelines.gate import MISSING_TARGET, GateConfig, decide, held_out_examples


def test_gate_needs_the_configured_margin_over_production() -> None:
    cfg = GateConfig(metric="ndcg@10", min_relative_gain=0.01)
    assert decide({"ndcg@10": 0.20}, None, cfg).publish  # first model
    assert not decide({"ndcg@10": 0.0}, None, GateConfig(min_metric=0.05)).publish
    assert decide({"ndcg@10": 0.303}, {"ndcg@10": 0.30}, cfg).publish
    worse = decide({"ndcg@10": 0.302}, {"ndcg@10": 0.30}, cfg)  # better, but by less than 1%
    assert not worse.publish and "margin" in worse.reason and abs(worse.relative_gain - 0.02 / 3) < 1e-9
    assert not decide({"ndcg@10": 0.30}, {"ndcg@10": 0.30}, GateConfig(min_relative_gain=0.0)).publish
    assert not decide({"ndcg@10": 0.31}, {"ndcg@10": 0.30}, GateConfig(min_absolute_gain=0.02)).publish
    assert decide({"ndcg@10": 0.01}, {"ndcg@10": 0.0}, cfg).publish  # production scores nothing


def test_production_model_is_scored_in_its_own_item_index() -> None:
    split = LeaveOneOutSplit(ItemIndex(np.array(["a", "b", "c", "new"], dtype=object)), ["u1", "u2"],
                             [np.array([0, 1, 2, 3]), np.array([3, 0, 1, 2])], max_history=20)
    bundle = SimpleNamespace(item_index=ItemIndex(np.array(["c", "b", "a"], dtype=object)),
                             config=SimpleNamespace(max_history=2))
    hist, targets = held_out_examples(split, bundle, np.arange(2))
    # u1: history a b c -> last two known, in the bundle's indices (b=1, c=0); target "new" is unknown
    # u2: history new a b -> "new" skipped; target c = 0
    assert hist.tolist() == [[1, 0], [2, 1]]
    assert targets.tolist() == [MISSING_TARGET, 0]


def test_code_changes_compare_by_item_id() -> None:
    old = code_changes(["a", "b", "c"], np.array([[1, 2, 0], [1, 2, 1], [3, 4, 0]]),
                       ["c", "a", "d", "b"], np.array([[3, 4, 0], [1, 2, 1], [5, 5, 0], [9, 2, 0]]))
    # a: disambiguation only; b: prefix moved; c: same; d: new
    assert old.as_dict() == {"compared": 3, "changed": 2, "prefix_changed": 1, "new": 1, "removed": 0}
