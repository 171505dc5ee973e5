"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genrec.evaluation import evaluate_recommender, metrics_from_ranks, ndcg_at_k, recall_at_k, target_ranks


def test_target_ranks() -> None:
    rec = np.array([[3, 1, 2], [4, 5, 6], [9, 8, 7]])
    assert target_ranks(rec, np.array([1, 0, 7])).tolist() == [1, -1, 2]


def test_recall_and_ndcg_by_hand() -> None:
    ranks = np.array([0, 1, 4, 9, -1])  # hit at positions 1, 2, 5, 10 and a miss
    assert recall_at_k(ranks, 5) == pytest.approx(3 / 5)
    assert recall_at_k(ranks, 10) == pytest.approx(4 / 5)
    ndcg5 = (1 + 1 / math.log2(3) + 1 / math.log2(6)) / 5
    ndcg10 = ndcg5 + (1 / math.log2(11)) / 5
    assert ndcg_at_k(ranks, 5) == pytest.approx(ndcg5)
    assert ndcg_at_k(ranks, 10) == pytest.approx(ndcg10)
    m = metrics_from_ranks(ranks, (5, 10))
    assert m == pytest.approx({"recall@5": 0.6, "ndcg@5": ndcg5, "recall@10": 0.8, "ndcg@10": ndcg10})


def test_evaluate_recommender_batches() -> None:
    import torch

    # A fake recommender that always ranks items [0..9]; targets hit at ranks 0, 3, and miss.
    def rec(h: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.arange(10).expand(h.shape[0], -1), torch.zeros(h.shape[0], 10)

    out = evaluate_recommender(rec, np.zeros((3, 4), dtype=np.int64), np.array([0, 3, 42]), batch_size=2)
    assert out["users"] == 3
    assert out["recall@5"] == pytest.approx(2 / 3)
    assert out["ndcg@10"] == pytest.approx((1 + 1 / math.log2(5)) / 3)
