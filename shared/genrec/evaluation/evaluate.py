"""Run any recommender over held-out users in batches and score it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from genrec.evaluation.metrics import metrics_from_ranks, target_ranks

# (histories int64 [B, L] pad -1, users int64 [B]) -> (items [B, K], scores [B, K])
RecommendFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def evaluate_recommender(
    recommend: RecommendFn,
    histories: np.ndarray,
    targets: np.ndarray,
    users: np.ndarray | None = None,
    ks: Iterable[int] = (5, 10),
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "evaluate",
) -> dict[str, float]:
    """Recall@K / NDCG@K over all rows; the ranking is over the full catalogue."""
    ks = list(ks)
    users = np.zeros(len(targets), dtype=np.int64) if users is None else users
    ranks = []
    for s in tqdm(range(0, len(targets), batch_size), desc=desc, disable=not progress, leave=False):
        h = torch.as_tensor(histories[s : s + batch_size], device=device)
        u = torch.as_tensor(users[s : s + batch_size], device=device)
        items, _ = recommend(h, u)
        ranks.append(target_ranks(items[:, : max(ks)].cpu().numpy(), targets[s : s + batch_size]))
    r = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)
    return {**metrics_from_ranks(r, ks), "users": len(r)}
