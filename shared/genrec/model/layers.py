"""Small pre-LayerNorm transformer blocks built on ``scaled_dot_product_attention``.

Written out (rather than ``nn.Transformer``) so that cross-attention can serve W beams
per user without copying the encoder memory W times, so that inference can decode one
position at a time (the keys / values of earlier positions and of the memory kept, not
recomputed), and so that the graph stays simple for torch.export / ONNX.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def _keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """A mask shaped like ``x``, each element kept with probability ``1 - p`` (to 1/65536): four
    16-bit draws per 64-bit random number, where torch's CPU Bernoulli draws one number per element."""
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    draws = words.view(torch.int16)[:n].view_as(x)
    return draws >= round(p * 65536) - 32768


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU masks cost a quarter of the random numbers: on the cpu budget torch's
    per-element Bernoulli draws were a fifth of a training step. Same distribution; on a GPU, torch's own
    (fused) kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0.0 < self.p < 1.0 or x.device.type != "cpu":
            return super().forward(x)
        return torch.where(_keep_mask(x, self.p), x * (1.0 / (1.0 - self.p)), 0.0)


def one_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of one query position ``q [N, heads, 1, dh]`` to keys / values ``[N, heads, S, dh]``, unmasked:
    what SDPA computes, as products and sums. Exported, SDPA's two matrix products become N x heads products of
    a single row each, which ONNX Runtime ran several times slower. The weighted sum is unrolled over the S
    positions (a decoder's few, static), as a sum across that middle axis was slow too."""
    if k.shape[2] == 1:  # static (a decoder's first position): the softmax of one score is 1
        return v
    weights = torch.softmax((q * scale * k).sum(-1, keepdim=True), dim=2)  # [N, heads, S, 1]
    terms = [w * x for w, x in zip(weights.unbind(2), v.unbind(2), strict=True)]  # S x [N, heads, dh]
    return functools.reduce(torch.add, terms).unsqueeze(2)


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        self.h = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.scale = (d_model // n_heads) ** -0.5  # SDPA's own, as a number: exported, not computed from a shape

    def keys_values(self, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mem [B, S, d]`` -> keys, values ``[B, heads, S, d / heads]`` (kept for reuse by a decoder)."""
        b, s, d = mem.shape
        k, v = self.kv(mem).view(b, s, 2, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        return k, v

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x [B, T, d]`` attends to keys / values ``[B, heads, S, d / heads]``; ``mask``: bool (True =
        may attend) or an additive float bias, broadcast to ``[B, heads, T, S]``."""
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.h, d // self.h).transpose(1, 2)
        if t == 1 and mask is None and not self.training:  # static: a decoder step's self-attention
            y = one_query_attention(q, k, v, self.scale)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               dropout_p=self.dropout if self.training else 0.0, scale=self.scale)
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: torch.Tensor, mem: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x [B, T, d]`` attends to ``mem [B, S, d]`` under ``mask`` (as in ``attend``)."""
        return self.attend(x, *self.keys_values(mem), mask)


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__(nn.Linear(d_model, d_ff), nn.GELU(), Dropout(dropout), nn.Linear(d_ff, d_model))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.drop(self.attn(h, h, mask))
        return x + self.drop(self.ff(self.ln2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = Attention(d_model, n_heads, dropout)
        self.cross_attn = Attention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.drop = Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mem_kv: tuple[torch.Tensor, torch.Tensor], mem_mask: torch.Tensor,
        mask: torch.Tensor | None, past: tuple[torch.Tensor, ...] = (),
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x [B*W, T, d]``: the positions after those in ``past`` (W beams per user).

        ``mem_kv``: cross-attention keys / values of the memory ``[B, heads, S, d / heads]``
        (``cross_attn.keys_values``), ``mem_mask [B, 1 or heads, 1, S]`` (bool or additive);
        ``mask [T, P + T]``: self-attention (None: all); ``past``: the self-attention keys / values
        of the P earlier positions, or ().
        Returns the new states and the keys / values of all P + T positions (the next ``past``).
        """
        h = self.ln1(x)
        k, v = self.self_attn.keys_values(h)
        if past:  # static: empty for a whole prefix, a cache when decoding one position at a time
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x = x + self.drop(self.self_attn.attend(h, k, v, mask))
        # Cross-attention does not mix query positions, so the W beams of a user can be
        # folded into the query length and share one copy of that user's memory.
        bw, t, d = x.shape
        b = mem_kv[0].shape[0]
        h = self.ln2(x).reshape(b, -1, d)
        x = x + self.drop(self.cross_attn.attend(h, *mem_kv, mem_mask)).reshape(bw, t, d)
        return x + self.drop(self.ff(self.ln3(x))), (k, v)
