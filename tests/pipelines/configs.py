"""Training configs for the pipeline tests."""

from __future__ import annotations

# Small enough to train in seconds on 2 cores, strong enough to learn the planted rule.
GOOD_TRAIN = {
    "max_history": 8, "threads": 2, "top_k": 10, "val_beam_width": 10, "test_beam_width": 10,
    "embeddings": {"mode": "interactions", "collab_dim": 32},
    "tokenizer": {"levels": 2, "codebook_size": 16, "latent_dim": 16, "hidden_dims": [64], "steps": 300,
                  "disambiguation_size": 32},
    "model": {"d_model": 64, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 128, "dropout": 0.0,
              "user_buckets": 1, "label_smoothing": 0.0},
    "optim": {"epochs": 8, "batch_size": 64, "lr": 3e-3, "warmup_steps": 30, "patience": 10},
}
# One optimiser step: a candidate that is certainly worse than GOOD_TRAIN's.
WEAK_TRAIN = {**GOOD_TRAIN, "tokenizer": {**GOOD_TRAIN["tokenizer"], "steps": 10},
              "optim": {"epochs": 1, "batch_size": 64, "max_steps_per_epoch": 1}}
