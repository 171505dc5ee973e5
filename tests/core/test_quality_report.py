"""The quality report's training cost at equal quality, from each model's validation curve."""

from __future__ import annotations

import pytest

from genrec.bench.quality import MODEL_KEYS, time_to_quality, validation_curve


def _history(points: list[tuple[float, float]]) -> list[dict[str, float]]:
    return [{"train_seconds": s - 1.0, "eval_seconds": 1.0, "val_ndcg@10": v} for s, v in points]


def test_training_cost_is_genrecs_time_to_sasrecs_best_validation() -> None:
    sas = validation_curve(_history([(10, 0.03), (10, 0.05), (10, 0.04)]))  # best 0.05, 30 s in all
    assert [p["seconds"] for p in sas] == [10, 20, 30]
    gen = validation_curve(_history([(100, 0.02), (100, 0.049), (100, 0.051), (100, 0.06)]))
    results = {"models": {MODEL_KEYS["sasrec"]: {"validation_curve": sas},
                          MODEL_KEYS["genrec"]: {"validation_curve": gen}}}
    cost = time_to_quality(results)
    assert cost == pytest.approx({"metric": "validation ndcg@10", "sasrec_best": 0.05, "sasrec_seconds": 30,
                                  "seconds": 300, "epoch": 3, "ratio": 10.0})

    results["models"][MODEL_KEYS["genrec"]]["validation_curve"] = gen[:2]  # stopped before it got there
    assert time_to_quality(results)["seconds"] is None
    del results["models"][MODEL_KEYS["sasrec"]]  # a report without SASRec: nothing to compare
    assert time_to_quality(results) is None
