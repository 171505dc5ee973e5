"""Shared fixtures for the core (data / tokenizer / model / training) tests."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

PLANTED_CONFIG = {
    "max_history": 8,
    "threads": 2,
    "top_k": 10,
    "val_beam_width": 10,
    "test_beam_width": 10,
    "embeddings": {"mode": "interactions", "collab_dim": 32},
    "tokenizer": {"levels": 2, "codebook_size": 16, "latent_dim": 16, "hidden_dims": [64], "steps": 300,
                  "disambiguation_size": 32},
    "model": {"d_model": 64, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 128, "dropout": 0.0,
              "user_buckets": 1, "label_smoothing": 0.0, "rerank": False},  # the generator alone learns the rule
    "optim": {"epochs": 10, "batch_size": 64, "lr": 3e-3, "warmup_steps": 30, "patience": 10},
}


@pytest.fixture(scope="session")
def planted():
    """A synthetic catalogue whose next item is a deterministic function of the last one."""
    from genrec.data import SynthConfig, generate_synthetic

    cfg = SynthConfig(n_items=120, n_users=400, seed=7, planted_rule=True)
    return cfg, generate_synthetic(cfg)


@pytest.fixture(scope="session")
def planted_checkpoint(tmp_path_factory):
    """Where ``planted_bundle`` keeps its checkpoints (tokenizer, best.pt): a warm-start source."""
    return tmp_path_factory.mktemp("planted-ckpt")


@pytest.fixture(scope="session")
def planted_bundle(planted, planted_checkpoint):
    from genrec.training import TrainConfig, train_generative

    _, ds = planted
    cfg = TrainConfig.model_validate({**PLANTED_CONFIG, "checkpoint_dir": str(planted_checkpoint)})
    return train_generative(ds, cfg, progress=False)
