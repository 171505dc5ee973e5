"""Residual-quantised VAE (RQ-VAE) over item embeddings.

encoder MLP -> latent z -> L residual codebooks (nearest code per level, residual passed
on) -> decoder MLP reconstructs the input. Trained with reconstruction + codebook +
beta * commitment losses and a straight-through estimator; codebooks are initialised by
k-means on the first latents and dead codes are periodically re-seeded from live residuals.
"""

from __future__ import annotations

import torch
from torch import nn

from genrec.semantic.kmeans import _sq_dist, kmeans


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    def __init__(
        self,
        input_dim: int,
        latent_dim: int,
        hidden_dims: list[int],
        levels: int,
        codebook_size: int,
        identity_encoder: bool = False,
    ) -> None:
        super().__init__()
        self.levels = levels
        self.codebook_size = codebook_size
        self.identity_encoder = identity_encoder
        if identity_encoder:  # RQ-k-means: quantise the (normalised) input itself
            latent_dim = input_dim
            self.encoder: nn.Module = nn.Identity()
            self.decoder: nn.Module = nn.Identity()
        else:
            self.encoder = _mlp([input_dim, *hidden_dims, latent_dim])
            self.decoder = _mlp([latent_dim, *reversed(hidden_dims), input_dim])
        self.latent_dim = latent_dim
        self.codebooks = nn.Parameter(torch.zeros(levels, codebook_size, latent_dim))

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Returns ``(codes [n, L], z_q [n, d], residuals per level)``."""
        residual = z
        codes, residuals = [], []
        zq = torch.zeros_like(z)
        for lvl in range(self.levels):
            book = self.codebooks[lvl]
            idx = _sq_dist(residual, book).argmin(1)
            q = book[idx]
            residuals.append(residual)
            codes.append(idx)
            zq = zq + q
            residual = residual - q
        return torch.stack(codes, 1), zq, residuals

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, iters: int = 25, seed: int = 0) -> None:
        residual = self.encoder(x)
        for lvl in range(self.levels):
            c = kmeans(residual, self.codebook_size, iters=iters, seed=seed + lvl).to(self.codebooks)
            self.codebooks[lvl].copy_(c)
            residual = residual - c[_sq_dist(residual, c).argmin(1)]

    def loss(self, x: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, list]:
        z = self.encoder(x)
        residual = z
        zq = torch.zeros_like(z)
        cb_loss = torch.zeros((), device=x.device)
        codes, residuals = [], []
        for lvl in range(self.levels):
            book = self.codebooks[lvl]
            idx = _sq_dist(residual.detach(), book).argmin(1)
            q = book[idx]
            # codebook term pulls codes to residuals; commitment keeps encoder near codes
            cb_loss = cb_loss + ((residual.detach() - q) ** 2).mean() + beta * ((residual - q.detach()) ** 2).mean()
            residuals.append(residual.detach())
            codes.append(idx)
            zq = zq + q
            residual = residual - q.detach()
        z_st = z + (zq - z).detach()
        recon = ((self.decoder(z_st) - x) ** 2).sum(1).mean()
        total = recon + cb_loss
        return total, {"recon": recon.item(), "codebook": cb_loss.item()}, torch.stack(codes, 1), residuals
