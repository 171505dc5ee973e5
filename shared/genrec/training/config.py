"""Training configuration: one pydantic model, loadable from TOML or YAML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field, model_validator

from genrec.config import MAX_HISTORY, MAX_SEQUENCE, TOP_K
from genrec.embeddings.build import EmbeddingConfig
from genrec.model.generative import GenerativeConfig
from genrec.model.sasrec import SASRecConfig
from genrec.semantic.tokenizer import TokenizerConfig

Batching = Literal["random", "by_length"]  # OptimConfig.batches


class OptimConfig(BaseModel):
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05  # cosine decay floor, as a fraction of lr
    grad_clip: float = 1.0
    patience: int = 3  # epochs without a better validation NDCG@10 before stopping
    # Patience reads the mean of the last this-many validation scores, so one lucky epoch on a
    # small validation set does not stop a run whose curve still rises (the best single epoch is
    # still the one kept). 1: the raw score.
    patience_window: int = Field(default=1, ge=1)
    # Wall-clock bound: no epoch starts once training and validation have taken this long (all
    # sittings of a resumed run counted); the best epoch so far is kept. None: epochs and patience alone.
    max_minutes: float | None = Field(default=None, gt=0)
    # At least this many optimiser steps: a small dataset gets more epochs (patience still stops
    # a run that stopped improving), so one budget fits catalogues of any size.
    min_steps: int = Field(default=0, ge=0)
    max_steps_per_epoch: int | None = None
    # How an epoch's rows make batches (``TrainingExamples.epoch_batches``): "random", or "by_length", rows
    # of about one history length together (less padding: a step 0.8x the time for genrec on Amazon Beauty,
    # 0.67x for SASRec; but in session 43's two seeds each model's test NDCG@10 was level or lower, and
    # genrec stopped early in one: quality-amazon-beauty-s43-by-length-*.md).
    batches: Batching = "random"
    eval_users: int | None = None  # evaluate validation on a fixed random subset (speed)
    eval_batch_size: int = 256


class GenerativeOptimConfig(OptimConfig):
    """The generative model's schedule, as the quality benchmark's cpu budget measured it on every
    dataset (Amazon Beauty, MovieLens-100K, the synthetic catalogue): until validation stops improving
    (the mean of its last 3 scores, 4 epochs without a better one), at most 30 epochs and at least
    4,000 steps, so a small catalogue (MovieLens-100K: 8 steps an epoch) trains as long as it needs."""

    epochs: int = 30
    lr: float = 2e-3
    warmup_steps: int = 300
    patience: int = 4
    patience_window: int = Field(default=3, ge=1)
    min_steps: int = Field(default=4000, ge=0)

    @model_validator(mode="after")
    def _set_epochs_are_a_count(self) -> GenerativeOptimConfig:
        # A config that states its epochs (a short test, the demo, `--epochs`) trains those epochs,
        # not the default floor of steps; one that states both keeps both.
        if "epochs" in self.model_fields_set and "min_steps" not in self.model_fields_set:
            self.min_steps = 0
        return self

    def with_epochs(self, epochs: int) -> GenerativeOptimConfig:
        """This schedule with ``epochs`` set, as if the config had stated them."""
        return GenerativeOptimConfig.model_validate({**self.model_dump(exclude_unset=True), "epochs": epochs})


class TrainConfig(BaseModel):
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch intra-op threads (CPU)
    max_history: int = Field(default=MAX_HISTORY, ge=1, le=MAX_SEQUENCE)
    top_k: int = Field(default=TOP_K, ge=1)
    val_beam_width: int = 20
    test_beam_width: int | None = None  # None: the width the model serves (TigerModel.beam_width_for)
    checkpoint_dir: str | None = None  # local folder or s3:// URI; enables resume
    # Warm start from an earlier run: its checkpoint folder (tokenizer/ and best.pt), or
    # several of its .pt files whose weights are averaged (tokenizer/ beside the first).
    # Weights load by name, so a model that adds a head starts from the trained rest.
    init_from: str | list[str] | None = None
    metrics_path: str | None = None  # JSONL, one line per epoch
    embeddings: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: GenerativeConfig = Field(default_factory=GenerativeConfig)
    optim: GenerativeOptimConfig = Field(default_factory=GenerativeOptimConfig)
    sasrec: SASRecConfig = Field(default_factory=SASRecConfig)
    sasrec_optim: OptimConfig = Field(default_factory=lambda: OptimConfig(epochs=50, lr=1e-3, patience=5))

    @model_validator(mode="after")
    def _sync_history(self) -> TrainConfig:
        # One knob for history length: the models must agree with the split.
        self.model.max_history = self.max_history
        self.sasrec.max_history = self.max_history
        return self

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file."""
    p = Path(path)
    text = p.read_text()
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text) or {}
    return tomllib.loads(text)


def load_config(path: str | Path | None, **overrides: Any) -> TrainConfig:
    """Read TOML or YAML into a validated config; ``None`` gives the defaults."""
    data: dict[str, Any] = read_config_file(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.model_validate(data)
