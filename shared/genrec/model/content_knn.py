"""Content nearest neighbours: the baseline that, like Semantic IDs, can place an item nobody has
interacted with yet. A user is the mean of their recent items' content vectors; every item is
scored by cosine similarity to it (history excluded)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from genrec.config import TOP_K
from genrec.model.sasrec import mask_history


class ContentNeighbours(nn.Module):
    def __init__(self, vectors: np.ndarray, recent: int = 5) -> None:
        """``vectors``: one content vector per item (row = dense item index); ``recent``: how many of
        the latest history items make the user (the most recent ones say most about the next)."""
        super().__init__()
        v = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        self.register_buffer("vectors", nn.functional.normalize(v, dim=1))
        self.recent = recent

    @torch.no_grad()
    def forward(self, history: torch.Tensor, top_k: int = TOP_K) -> tuple[torch.Tensor, torch.Tensor]:
        recent = history[:, -self.recent:]
        known = recent >= 0
        user = (self.vectors[recent.clamp(min=0)] * known[..., None]).sum(1)
        scores = mask_history(nn.functional.normalize(user, dim=1) @ self.vectors.T, history)
        vals, idx = torch.topk(scores, min(top_k, scores.shape[1]), dim=1)
        return idx, vals
