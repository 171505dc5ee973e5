"""Incremental decoding: beam search on the decoder's cache answers as re-decoding every prefix.

The reference is the decoding that came before the cache: at every level the decoder runs
over the whole prefix (BOS + t codes) of every beam and keeps nothing between levels.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from genrec.model import CodeTable, GenerativeConfig, RerankConfig, TigerModel, constrained_beam_search, exclusion_keys
from genrec.model.layers import one_query_attention


def _table(levels: list[int], n: int, seed: int) -> CodeTable:
    space = torch.tensor(list(itertools.product(*[range(v) for v in levels])))
    return CodeTable(space[torch.randperm(len(space), generator=torch.Generator().manual_seed(seed))[:n]], levels)


def _model(levels: list[int], rerank: RerankConfig | None, seed: int) -> TigerModel:
    torch.manual_seed(seed)
    cfg = GenerativeConfig(d_model=32, n_heads=4, encoder_layers=2, decoder_layers=2, d_ff=64, dropout=0.0,
                           max_history=8, user_buckets=5, rerank=rerank)
    model = TigerModel(cfg, levels).eval()
    for p in model.parameters():  # larger than the init, so that wrong maths would show in the order
        torch.nn.init.normal_(p, std=0.3)
    return model


def _full_prefix_beam(
    model: TigerModel, memory: torch.Tensor, mask: torch.Tensor, exclude: torch.Tensor, table: CodeTable,
    beam_width: int, keep: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = model.generator

    def step(prefix: torch.Tensor, level: int, cache: tuple) -> tuple[torch.Tensor, tuple]:
        h, _ = gen.decode(prefix, gen.decoder_memory(memory, mask))  # no cache: every position again
        return gen.heads[level](h[:, :, -1]), ()

    return constrained_beam_search(step, memory.shape[0], gen.level_sizes, table.base, table.trie, table.slots,
                                   exclude, beam_width, keep)


CASES = {
    # levels, items, re-ranker, beam width, top-k
    "four-levels": ([5, 3, 4, 6], 300, None, 12, 7),
    "rerank": ([4, 4, 3], 40, RerankConfig(weight=0.7, user_state="encoder", catalogue_top=0), 9, 5),
    "rerank-history-tower": ([4, 4, 3], 40, RerankConfig(weight=0.7, catalogue_top=0), 9, 5),
    "fewer-items-than-k": ([2, 2, 2], 5, None, 8, 6),
    "one-beam": ([4, 4, 3], 30, None, 1, 1),
}


@torch.no_grad()
@pytest.mark.parametrize("case", CASES)
def test_cached_decoding_gives_the_full_prefix_results(case: str) -> None:
    levels, n_items, rerank, beam_width, top_k = CASES[case]
    table, model = _table(levels, n_items, seed=1), _model(levels, rerank, seed=2)
    g = torch.Generator().manual_seed(3)
    hist = torch.randint(0, n_items, (6, 8), generator=g)
    hist[0, :5] = -1  # left-padded
    hist[1] = -1  # no history
    extra = torch.randint(-1, n_items, (6, 3), generator=g)  # exclusions, some padding
    users = torch.randint(0, 5, (6,), generator=g)
    memory, mask = model.encode(hist, table.item_codes, users)
    exclude = exclusion_keys(torch.cat([hist, extra], dim=1), table.item_keys, table.sentinel)

    got_items, got_scores = model.generate(memory, mask, hist, exclude, table.item_codes, table.trie, table.slots,
                                           beam_width, top_k)
    items, scores = _full_prefix_beam(model, memory, mask, exclude, table, beam_width,
                                      beam_width if model.reranks else top_k)
    if model.reranks:
        items, scores = model.reranker.rerank(items, scores, model.dense_scores(memory, hist, items, table.item_codes),
                                              top_k)
    assert torch.equal(got_items, items)
    assert torch.equal(torch.isinf(got_scores), torch.isinf(scores))
    torch.testing.assert_close(got_scores, scores, rtol=0, atol=1e-5)
    if case == "fewer-items-than-k":
        assert (got_items == -1).any(dim=1).all()


@torch.no_grad()
def test_the_cache_holds_each_layers_keys_and_values_of_every_decoded_position() -> None:
    """Decoding one position at a time on the cache gives the states of decoding them all at once."""
    levels = [5, 3, 4, 6]
    table, model = _table(levels, 100, seed=4), _model(levels, None, seed=5)
    gen = model.generator
    memory, mask = model.encode(torch.randint(0, 100, (3, 8)), table.item_codes)
    decoder_memory = gen.decoder_memory(memory, mask)
    codes = table.item_codes[:6].reshape(3, 2, 4)[..., :3]  # [B=3, W=2, t=3]
    whole, whole_cache = gen.decode(codes, decoder_memory)
    cache: tuple = ()
    for t in range(4):
        h, cache = gen.decode(codes[:, :, :t], decoder_memory, cache)
        assert h.shape == (3, 2, 1, 32) and len(cache) == 2 * len(gen.decoder)
        assert all(c.shape == (6, 4, t + 1, 8) for c in cache)
        torch.testing.assert_close(h[:, :, 0], whole[:, :, t], rtol=0, atol=1e-5)
    for c, w in zip(cache, whole_cache, strict=True):
        torch.testing.assert_close(c, w, rtol=0, atol=1e-5)


@pytest.mark.parametrize("positions", [1, 2, 4, 9])
def test_a_decoder_steps_attention_is_scaled_dot_product_attention(positions: int) -> None:
    """A decoder step's one query is attended with products and sums (``one_query_attention``: ONNX Runtime
    ran SDPA's two products of one row each several times slower); it computes what SDPA computes."""
    torch.manual_seed(positions)
    q, k, v = torch.randn(6, 4, 1, 8), torch.randn(6, 4, positions, 8) * 3, torch.randn(6, 4, positions, 8)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(one_query_attention(q, k, v, 0.3), expected, rtol=0, atol=1e-6)
