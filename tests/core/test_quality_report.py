"""The quality report's training cost at equal quality, from each model's validation curve."""

from __future__ import annotations

import pytest

from genrec.bench.quality import MODEL_KEYS, markdown_report, time_to_quality, validation_curve


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

    instant = [{**p, "seconds": 0.0} for p in sas]  # a tiny run whose training rounds to 0 s: no ratio
    assert time_to_quality({"models": {**results["models"], MODEL_KEYS["sasrec"]: {"validation_curve": instant}}
                            })["ratio"] is None
    report = markdown_report({"dataset": "d", "budget": "smoke", "device": "cpu", "torch": "2", "wall_seconds": 1,
                              "split": {"users": 1, "items": 1, "max_history": 1, "protocol": "p"},
                              "models": {MODEL_KEYS["sasrec"]: {"test": {}, "validation_curve": instant},
                                         MODEL_KEYS["genrec"]: {"test": {}, "validation_curve": gen, "tokenizer": {},
                                                                "embeddings": {}, "best_epoch": 4, "epochs_run": 4,
                                                                "test_beam_width": 10}}})
    assert "genrec first reached it at epoch 3, after 300 s." in report
    results["models"][MODEL_KEYS["genrec"]]["validation_curve"] = gen[:2]  # stopped before it got there
    assert time_to_quality(results)["seconds"] is None
    del results["models"][MODEL_KEYS["sasrec"]]  # a report without SASRec: nothing to compare
    assert time_to_quality(results) is None


def test_the_plot_shows_the_new_item_weight_trade(tmp_path) -> None:
    from genrec.bench.cold_start import CONTENT, GENREC
    from genrec.bench.quality import plot_results

    def scores(cold: float, everything: float) -> dict[str, dict[str, float]]:
        return {"cold": {"recall@10": cold, "ndcg@10": cold / 2}, "all": {"recall@10": everything, "ndcg@10": 0.01}}

    sweep = [{**scores(0.0, 0.15), "fresh_item_weight": 0.0}, {**scores(0.05, 0.13), "fresh_item_weight": 1.0}]
    results = {"dataset": "d", "budget": "cpu", "models": {GENREC: {"test": {"recall@10": 0.15, "ndcg@10": 0.07}}},
               "cold_start": {"cold_test_events": 3, "fresh_item_weights": sweep,
                              "models": {CONTENT: scores(0.06, 0.03), GENREC: sweep[1]}}}
    plot_results(results, tmp_path / "q.png")
    assert (tmp_path / "q.png").stat().st_size > 1000


def test_the_report_sets_each_models_validation_beside_its_test() -> None:
    """A validation lead that shrinks at test is visible in the report (validation picks the epoch)."""
    from genrec.bench.quality import validation_against_test_lines

    results = {"models": {MODEL_KEYS["genrec"]: {"validation": {"ndcg@10": 0.072}, "test": {"ndcg@10": 0.052}},
                          MODEL_KEYS["sasrec"]: {"validation": {"ndcg@10": 0.0675}, "test": {"ndcg@10": 0.0535}},
                          MODEL_KEYS["mostpop"]: {"test": {"ndcg@10": 0.0055}}}}
    (line,) = [x for x in validation_against_test_lines(results) if x]
    assert f"{MODEL_KEYS['genrec']} 0.0720 -> 0.0520 (0.72x)" in line
    assert f"{MODEL_KEYS['sasrec']} 0.0675 -> 0.0535 (0.79x)" in line
    assert MODEL_KEYS["mostpop"] not in line  # no validation: nothing to set beside
    assert validation_against_test_lines({"models": {MODEL_KEYS["mostpop"]: {"test": {"ndcg@10": 0.0055}}}}) == []
