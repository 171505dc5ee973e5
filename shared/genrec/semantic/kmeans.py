"""Deterministic k-means (k-means++ seeding, Lloyd iterations) on torch tensors."""

from __future__ import annotations

import torch


def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)[None, :]


def kmeans(x: torch.Tensor, k: int, iters: int = 25, seed: int = 0) -> torch.Tensor:
    """Centroids ``[k, d]``. With fewer points than ``k`` the extra centroids are jittered copies."""
    gen = torch.Generator().manual_seed(seed)
    x = x.detach().float().cpu()
    n = x.shape[0]
    if n == 0:
        return torch.randn(k, x.shape[1], generator=gen) * 1e-3
    # k-means++ seeding.
    first = int(torch.randint(n, (1,), generator=gen))
    cent = [x[first]]
    d2 = _sq_dist(x, x[first : first + 1]).squeeze(1).clamp_min(0)
    for _ in range(1, min(k, n)):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full((n,), 1.0 / n)
        nxt = int(torch.multinomial(probs, 1, generator=gen))
        cent.append(x[nxt])
        d2 = torch.minimum(d2, _sq_dist(x, x[nxt : nxt + 1]).squeeze(1).clamp_min(0))
    c = torch.stack(cent)
    for _ in range(iters):
        assign = _sq_dist(x, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=c.shape[0]).float()
        c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
    if c.shape[0] < k:
        extra = c[torch.arange(k - c.shape[0]) % c.shape[0]]
        c = torch.cat([c, extra + 1e-3 * torch.randn(extra.shape, generator=gen)])
    return c
