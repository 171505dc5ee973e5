"""The Semantic-ID tokenizer: item embedding -> unique code tuple.

Codes are ``levels`` RQ-VAE codes followed by one disambiguation code that numbers the
items sharing the same prefix (0, 1, 2, ...), so every item's tuple is unique. New items
are assigned without retraining: the frozen RQ-VAE gives the prefix (deterministic
argmin), and the disambiguation code is the next free index for that prefix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from genrec.semantic.rqvae import RQVAE

FORMAT_VERSION = 1
_FILE = "tokenizer.pt"


class PrefixFull(ValueError):
    """Every disambiguation index of an item's code prefix is taken: no unique tuple is left for it."""


class TokenizerConfig(BaseModel):
    method: Literal["rqvae", "rqkmeans"] = "rqvae"
    levels: int = Field(default=3, ge=1)
    codebook_size: int = Field(default=256, ge=2)
    latent_dim: int = 32
    hidden_dims: list[int] = Field(default_factory=lambda: [512, 256, 128])
    disambiguation_size: int = Field(default=256, ge=1)  # capacity of the last level
    beta: float = 0.25
    steps: int = 3000
    batch_size: int = 1024
    lr: float = 1e-3
    kmeans_iters: int = 25
    dead_code_every: int = 200  # steps between dead-code resets (0 = never)
    # After training, re-fit the codebooks by residual k-means on the learned latents. The
    # decoder is not needed for IDs, and this restores full, balanced codebook use when
    # training left codes collapsed (fewer prefix collisions, smaller disambiguation level).
    final_kmeans: bool = True
    seed: int = 0


class SemanticIdTokenizer:
    def __init__(self, config: TokenizerConfig | None = None) -> None:
        self.config = config or TokenizerConfig()
        self.model: RQVAE | None = None
        self.input_dim: int | None = None
        self.codes: np.ndarray | None = None  # codes of the items it was fitted on
        self.train_log: dict[str, float] = {}

    # ------------------------------------------------------------------ layout
    @property
    def level_sizes(self) -> list[int]:
        c = self.config
        return [c.codebook_size] * c.levels + [c.disambiguation_size]

    @property
    def n_levels(self) -> int:
        return self.config.levels + 1

    # ----------------------------------------------------------------- fitting
    def fit(self, embeddings: np.ndarray, progress: bool = True, device: torch.device | str = "cpu") -> np.ndarray:
        """Train the RQ-VAE on ``embeddings [N, D]``; returns unique codes ``[N, levels+1]``.
        The training steps run on ``device``; the k-means and the assignment on the CPU."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        self.input_dim = int(x.shape[1])
        model = RQVAE(
            self.input_dim, cfg.latent_dim, cfg.hidden_dims, cfg.levels, cfg.codebook_size,
            identity_encoder=cfg.method == "rqkmeans",
        )
        model.init_codebooks(x, iters=cfg.kmeans_iters, seed=cfg.seed)
        steps = cfg.steps if cfg.method == "rqvae" else 0
        if steps:
            self._train(model.to(device), x.to(device), steps, progress)
            model.cpu()
            if cfg.final_kmeans:
                model.init_codebooks(x, iters=cfg.kmeans_iters, seed=cfg.seed)
        self.model = model.eval()
        self.codes = self.assign(embeddings, existing=None)
        return self.codes

    def _train(self, model: RQVAE, x: torch.Tensor, steps: int, progress: bool) -> None:
        cfg = self.config
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
        gen = torch.Generator().manual_seed(cfg.seed)
        n = x.shape[0]
        usage = torch.zeros(cfg.levels, cfg.codebook_size, device=x.device)
        bar = tqdm(range(steps), desc="rq-vae", disable=not progress, mininterval=1.0)
        stats: dict[str, float] = {}
        for step in bar:
            # drawn on the CPU: the same batches on any device
            idx = torch.randint(n, (min(cfg.batch_size, n),), generator=gen).to(x.device)
            loss, stats, codes, residuals = model.loss(x[idx], cfg.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for lvl in range(cfg.levels):
                usage[lvl] += torch.bincount(codes[:, lvl], minlength=cfg.codebook_size)
            if cfg.dead_code_every and (step + 1) % cfg.dead_code_every == 0 and step + 1 < steps:
                self._reset_dead(model, usage, residuals, gen)
                usage.zero_()
            if step % 100 == 0:
                bar.set_postfix(recon=f"{stats['recon']:.4f}")
        self.train_log = {"steps": steps, **stats}

    @staticmethod
    @torch.no_grad()
    def _reset_dead(model: RQVAE, usage: torch.Tensor, residuals: list, gen: torch.Generator) -> None:
        """Re-seed unused codes with random residuals of the last batch (keeps the codebook alive)."""
        for lvl, res in enumerate(residuals):
            dead = torch.nonzero(usage[lvl] == 0).flatten()
            if len(dead) == 0 or len(res) == 0:
                continue
            pick = torch.randint(len(res), (len(dead),), generator=gen).to(res.device)
            noise = torch.randn(len(dead), res.shape[1], generator=gen).to(res.device)
            model.codebooks[lvl, dead] = res[pick] + 1e-4 * noise

    # -------------------------------------------------------------- assignment
    @torch.no_grad()
    def prefixes(self, embeddings: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """The RQ-VAE codes ``[N, levels]`` (no disambiguation); deterministic."""
        if self.model is None:
            raise RuntimeError("tokenizer is not fitted")
        x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        out = [self.model.quantise(self.model.encoder(x[s : s + batch_size]))[0] for s in range(0, len(x), batch_size)]
        return torch.cat(out).numpy().astype(np.int64) if out else np.zeros((0, self.config.levels), np.int64)

    def assign(self, embeddings: np.ndarray, existing: np.ndarray | None = None) -> np.ndarray:
        """Codes ``[M, levels+1]`` for new items given the ``existing`` full code table.

        Each new item takes the next free disambiguation index for its prefix (after the
        largest one in ``existing`` and the new items before it), so tuples stay unique.
        Raises ``PrefixFull`` when an item's prefix has no free index left.
        """
        codes, placed = self.assign_where_free(embeddings, existing)
        if not placed.all():
            key = tuple(int(v) for v in codes[int(np.argmin(placed)), :-1])
            raise PrefixFull(
                f"prefix {key} already holds {self.config.disambiguation_size} items; raise "
                f"tokenizer.disambiguation_size (now {self.config.disambiguation_size}) or use more/larger codebooks"
            )
        return codes

    def assign_where_free(self, embeddings: np.ndarray,
                          existing: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``assign`` item by item: codes ``[M, levels+1]`` and a mask of the items that got one.
        An item whose prefix is full takes no index (its last code is -1), and later items of a
        batch are placed as if it were not there."""
        pre = self.prefixes(embeddings)
        nxt: dict[tuple[int, ...], int] = {}
        if existing is not None and len(existing):
            ex = np.asarray(existing, dtype=np.int64)
            for row in ex:
                key = tuple(int(v) for v in row[:-1])
                nxt[key] = max(nxt.get(key, 0), int(row[-1]) + 1)
        dis = np.full(len(pre), -1, dtype=np.int64)
        for i, row in enumerate(pre):
            key = tuple(int(v) for v in row)
            d = nxt.get(key, 0)
            if d < self.config.disambiguation_size:
                dis[i] = d
                nxt[key] = d + 1
        return np.concatenate([pre, dis[:, None]], axis=1), dis >= 0

    # ------------------------------------------------------------------ report
    def report(self, codes: np.ndarray | None = None) -> dict[str, object]:
        """Codebook usage per level and how often the prefix alone is ambiguous."""
        codes = self.codes if codes is None else codes
        if codes is None:
            return {}
        lv = self.config.levels
        usage = [len(np.unique(codes[:, i])) / self.config.codebook_size for i in range(lv)]
        _, inverse, counts = np.unique(codes[:, :lv], axis=0, return_inverse=True, return_counts=True)
        colliding = counts[inverse.ravel()] > 1
        return {
            "items": len(codes),
            "codebook_usage": usage,
            "unique_prefixes": len(counts),
            "collision_rate": float(colliding.mean()) if len(codes) else 0.0,
            "max_prefix_items": int(counts.max()) if len(counts) else 0,
            "unique_tuples": len(np.unique(codes, axis=0)) == len(codes),
            **{f"train_{k}": v for k, v in self.train_log.items()},
        }

    # ------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> Path:
        if self.model is None:
            raise RuntimeError("tokenizer is not fitted")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        payload = {
            "format_version": FORMAT_VERSION,
            "config": json.dumps(self.config.model_dump()),
            "input_dim": self.input_dim,
            "state_dict": self.model.state_dict(),
            "codes": torch.as_tensor(self.codes) if self.codes is not None else None,
            "train_log": json.dumps(self.train_log),
        }
        torch.save(payload, out / _FILE)
        return out / _FILE

    @classmethod
    def load(cls, folder: str | Path) -> SemanticIdTokenizer:
        payload = torch.load(Path(folder) / _FILE, map_location="cpu", weights_only=True)
        version = payload.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"tokenizer format {version} is not supported (expected {FORMAT_VERSION})")
        tok = cls(TokenizerConfig(**json.loads(payload["config"])))
        cfg = tok.config
        tok.input_dim = int(payload["input_dim"])
        model = RQVAE(
            tok.input_dim, cfg.latent_dim, cfg.hidden_dims, cfg.levels, cfg.codebook_size,
            identity_encoder=cfg.method == "rqkmeans",
        )
        model.load_state_dict(payload["state_dict"])
        tok.model = model.eval()
        tok.codes = payload["codes"].numpy() if payload["codes"] is not None else None
        tok.train_log = json.loads(payload["train_log"])
        return tok
