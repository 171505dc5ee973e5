"""Ranking metrics for one held-out target per user.

``rank`` is the 0-based position of the target in the recommendation list, or -1 when
it is absent. With a single relevant item, Recall@K is the hit rate and NDCG@K is
``1 / log2(rank + 2)`` for hits (the ideal DCG is 1).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def target_ranks(recommended: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``recommended [U, K]`` item indices, ``targets [U]`` -> ``ranks [U]`` (-1 = missed)."""
    rec = np.asarray(recommended)
    hit = rec == np.asarray(targets)[:, None]
    return np.where(hit.any(1), hit.argmax(1), -1)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    ranks = np.asarray(ranks)
    return float(((ranks >= 0) & (ranks < k)).mean()) if len(ranks) else 0.0


def ndcg_gains(ranks: np.ndarray, k: int) -> np.ndarray:
    """Each user's NDCG@K (``[U]``): what paired comparisons of two rankings read."""
    ranks = np.asarray(ranks)
    hit = (ranks >= 0) & (ranks < k)
    return np.where(hit, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    return float(ndcg_gains(ranks, k).mean()) if len(ranks) else 0.0


def metrics_from_ranks(ranks: np.ndarray, ks: Iterable[int] = (5, 10)) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranks, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
    return out
