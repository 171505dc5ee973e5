"""A default model's list depends on the history, not on who asks."""

from __future__ import annotations

import torch

from genrec.model import GenerativeConfig, TigerModel, user_bucket


def test_a_default_model_reads_the_same_history_the_same_whoever_asks() -> None:
    """Hashed user tokens cost the generator on every dataset measured and bought the served lists
    nothing (quality-*-no-user-token-s3*.md), so by default every user shares one token: the same
    history encodes, and is answered, the same for any user id."""
    cfg = GenerativeConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=32, max_history=6,
                           rerank=None)
    torch.manual_seed(0)
    model = TigerModel(cfg, [4, 4]).eval()
    item_codes = torch.tensor([[i // 4, i % 4] for i in range(16)])
    history = torch.tensor([[-1, -1, 3, 7, 12]])
    with torch.no_grad():
        states = [model.encode(history, item_codes, torch.tensor([user_bucket(u, cfg.user_buckets)]))[0]
                  for u in ("alice", "bob", "carol")]
    assert all(torch.equal(states[0], s) for s in states[1:])
