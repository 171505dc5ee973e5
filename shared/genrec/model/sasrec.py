"""SASRec baseline (ID-based causal transformer) trained with full-softmax cross-entropy.

The full-softmax variant is the strong one (much better than the original BCE with one
sampled negative), so it is the fair bar for generative retrieval.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from genrec.config import MAX_HISTORY, TOP_K
from genrec.model.layers import Dropout, EncoderLayer


class SASRecConfig(BaseModel):
    d_model: int = 64
    n_heads: int = 2
    layers: int = 2
    d_ff: int = 256
    dropout: float = 0.2
    max_history: int = MAX_HISTORY


class SASRec(nn.Module):
    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        self.config = config
        self.n_items = n_items
        d = config.d_model
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)  # index 0 = pad, item i -> i+1
        self.pos_emb = nn.Embedding(config.max_history, d)
        self.blocks = nn.ModuleList(
            EncoderLayer(d, config.n_heads, config.d_ff, config.dropout) for _ in range(config.layers)
        )
        self.ln = nn.LayerNorm(d)
        self.drop = Dropout(config.dropout)
        nn.init.normal_(self.item_emb.weight, std=0.02)

    def hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """``seq [B, L]`` item indices, left-padded with -1 -> ``[B, L, d]``."""
        length = seq.shape[1]
        valid = seq >= 0
        x = self.item_emb(seq + 1) * self.config.d_model**0.5
        pos = torch.arange(length, device=seq.device) + (self.config.max_history - length)
        x = self.drop(x + self.pos_emb(pos.clamp(min=0))[None])
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        # Padding keys are hidden; each query still sees itself, so no row is empty.
        mask = (causal[None] & valid[:, None, :]) | torch.eye(length, dtype=torch.bool, device=seq.device)[None]
        for blk in self.blocks:
            x = blk(x, mask[:, None])
        return self.ln(x) * valid[..., None]

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item_emb.weight[1:].T

    def loss(self, seq_in: torch.Tensor, seq_out: torch.Tensor) -> torch.Tensor:
        """Full-softmax next-item cross-entropy at every non-pad position."""
        h = self.hidden(seq_in)
        keep = seq_out >= 0
        return F.cross_entropy(self.logits(h[keep]).float(), seq_out[keep])

    @torch.no_grad()
    def forward(self, history: torch.Tensor, top_k: int = TOP_K, exclude_history: bool = True):
        """Full ranking over all items: ``(items [B, K], scores [B, K])``."""
        h = self.hidden(history[:, -self.config.max_history :])[:, -1]
        scores = self.logits(h).float()
        if exclude_history:
            scores = mask_history(scores, history)
        return torch.topk(scores, min(top_k, scores.shape[1]), dim=1)[::-1]


def mask_history(scores: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    idx = history.clamp(min=0)
    fill = torch.where(history >= 0, float("-inf"), 0.0).to(scores.dtype)
    return scores.scatter_add(1, idx, fill)


class MostPopular(nn.Module):
    """Recommends the most interacted-with training items (history excluded)."""

    def __init__(self, counts: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("counts", torch.as_tensor(counts, dtype=torch.float32))

    @torch.no_grad()
    def forward(self, history: torch.Tensor, top_k: int = TOP_K, exclude_history: bool = True):
        scores = self.counts.expand(history.shape[0], -1).clone()
        if exclude_history:
            scores = mask_history(scores, history)
        vals, idx = torch.topk(scores, min(top_k, scores.shape[1]), dim=1)
        return idx, vals
