"""The recommender (encoder + decoder + constrained beam search) exports as one graph."""

from __future__ import annotations

import itertools

import pytest
import torch

from genrec.model import CodeTable, GenerativeConfig, GenerativeRecommender, RerankConfig, TigerModel


@pytest.mark.slow
@pytest.mark.parametrize(("user_state", "encoder"),
                         [(None, "causal"), ("encoder", "causal"), ("encoder", "bidirectional"), ("history", "causal")])
def test_torch_export_with_dynamic_batch_matches_eager(user_state: str | None, encoder: str) -> None:
    """``user_state``: the re-ranking head's (None: no head); the history-reading head also adds its
    own best items of the catalogue to the beam, as the quality budgets train it."""
    levels = [4, 4, 3]
    space = torch.tensor(list(itertools.product(*[range(v) for v in levels])))
    table = CodeTable(space[torch.randperm(len(space), generator=torch.Generator().manual_seed(0))[:30]], levels)
    torch.manual_seed(0)
    top = 6 if user_state == "history" else 0
    rerank = RerankConfig(user_state=user_state, catalogue_top=top) if user_state else None
    cfg = GenerativeConfig(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64, dropout=0.0,
                           max_history=6, user_buckets=5, rerank=rerank, encoder=encoder)
    rec = GenerativeRecommender(TigerModel(cfg, levels).eval(), table, top_k=5, beam_width=8).eval()
    hist = torch.randint(0, 30, (3, 6), generator=torch.Generator().manual_seed(1))
    hist[0, :2] = -1
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(rec, (hist,), dynamic_shapes={"user_sequence": {0: batch}})
    other = torch.randint(0, 30, (7, 6), generator=torch.Generator().manual_seed(2))
    for h in (hist, other):
        got_items, got_scores = program.module()(h)
        want_items, want_scores = rec(h)
        assert got_items.dtype == torch.int64 and got_scores.dtype == torch.float32
        assert torch.equal(got_items, want_items)
        assert torch.allclose(got_scores, want_scores)
