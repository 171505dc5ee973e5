"""Constrained beam search: validity, exclusions, ordering, runtime-extensible code table."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

from genrec.model import (
    CodeTable,
    GenerativeConfig,
    GenerativeRecommender,
    RerankConfig,
    TigerModel,
    constrained_beam_search,
    exclusion_keys,
)
from genrec.model.beam import stable_top

LEVELS = [4, 4, 3]


def _table(n: int = 20, seed: int = 0) -> CodeTable:
    g = torch.Generator().manual_seed(seed)
    space = torch.tensor(list(itertools.product(*[range(v) for v in LEVELS])))
    pick = torch.randperm(len(space), generator=g)[:n]
    return CodeTable(space[pick], LEVELS)


def _model(seed: int = 0, id_items: int = 0, rerank: RerankConfig | None = None) -> TigerModel:
    """The generator alone unless a re-ranker is asked for."""
    torch.manual_seed(seed)
    cfg = GenerativeConfig(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64, dropout=0.0,
                           max_history=6, user_buckets=5, rerank=rerank)
    return TigerModel(cfg, LEVELS, id_items=id_items).eval()


def _histories(n_items: int, rows: int = 6, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h = torch.randint(0, n_items, (rows, 6), generator=g)
    h[0, :3] = -1  # a short history
    h[1] = -1  # an empty one
    return h


def _exhaustive(model: TigerModel, table: CodeTable, hist: torch.Tensor) -> torch.Tensor:
    """log p(item) for every item by teacher forcing: ``[B, N]``."""
    memory, mask = model.encode(hist, table.item_codes)
    gen, b, n = model.generator, hist.shape[0], table.n_items
    codes = table.item_codes[None].expand(b, -1, -1)
    h, _ = gen.decode(codes[:, :, :-1], gen.decoder_memory(memory, mask))  # every position at once
    total = torch.zeros(b, n)
    for lvl, head in enumerate(gen.heads):
        total += torch.log_softmax(head(h[:, :, lvl]), -1).gather(2, codes[:, :, lvl : lvl + 1]).squeeze(2)
    return total


def test_the_prefix_tree_lists_each_prefix_once_with_its_items_and_children() -> None:
    from genrec.model.code_table import TRIE_CHILDREN, TRIE_CODE, TRIE_COUNT, TRIE_FIRST_ITEM

    table = _table(20, seed=3)
    trie = table.trie
    codes = [tuple(c) for c in table.item_codes.tolist()]

    def walk(node: int, prefix: tuple[int, ...]) -> None:
        under = [i for i, c in enumerate(codes) if c[: len(prefix)] == prefix]
        assert int(trie[TRIE_COUNT, node]) == len(under) and int(trie[TRIE_FIRST_ITEM, node]) == min(under)
        kids = range(int(trie[TRIE_CHILDREN, node]), int(trie[TRIE_CHILDREN, node + 1]))
        if len(prefix) == len(LEVELS):
            assert not kids and under == [int(trie[TRIE_FIRST_ITEM, node])]  # a leaf is one item
            return
        kid_codes = [int(trie[TRIE_CODE, k]) for k in kids]
        assert kid_codes == sorted({c[len(prefix)] for i, c in enumerate(codes) if i in under})
        for k, code in zip(kids, kid_codes, strict=True):
            walk(k, (*prefix, code))

    walk(0, ())
    assert trie.shape[1] - 1 == 1 + sum(len({c[: n + 1] for c in codes}) for n in range(len(LEVELS)))
    # Each level's child slots: as many as its busiest prefix has children (2 at least).
    for level, slots in enumerate(table.slots):
        fanout = Counter(prefix[:level] for prefix in {c[: level + 1] for c in codes})
        assert slots.tolist() == list(range(max(2, max(fanout.values()))))
    assert int(trie[TRIE_COUNT, -1]) == 0  # the pad node: no items, no children
    assert CodeTable(torch.zeros((0, 3), dtype=torch.long), LEVELS).trie[TRIE_COUNT].tolist() == [0, 0]


def test_table_rejects_duplicates_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="unique"):
        CodeTable(torch.tensor([[0, 1, 2], [0, 1, 2]]), LEVELS)
    with pytest.raises(ValueError, match="outside"):
        CodeTable(torch.tensor([[0, 4, 0]]), LEVELS)


@torch.no_grad()
def test_beam_matches_exhaustive_ranking_and_respects_exclusions() -> None:
    table, model = _table(), _model()
    hist = _histories(table.n_items)
    # Beam wide enough to keep every prefix: beam search must equal brute force.
    rec = GenerativeRecommender(model, table, top_k=8, beam_width=64, exclude_history=True).eval()
    items, scores = rec(hist)
    brute = _exhaustive(model, table, hist)
    for r in range(hist.shape[0]):
        seen = set(hist[r][hist[r] >= 0].tolist())
        brute_r = brute[r].clone()
        brute_r[list(seen)] = float("-inf")
        want = torch.topk(brute_r, 8).indices.tolist()
        assert items[r].tolist() == want
        assert not seen & set(items[r].tolist())
        assert torch.allclose(scores[r], brute_r[items[r]], atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize(("weight", "id_items"), [(0.0, 0), (0.7, 0), (0.7, 12)])
def test_rerank_head_orders_the_beam_by_generative_plus_dense_score(weight: float, id_items: int) -> None:
    table = _table()
    model = _model(seed=5, id_items=id_items, rerank=RerankConfig(weight=weight, item_ids=bool(id_items),
                                                                        user_state="encoder", catalogue_top=0))
    reranker, levels = model.reranker, model.generator.level_code_vectors()
    if id_items:  # trained ID vectors for the first 12 items; items 12.. were "added later"
        torch.nn.init.normal_(reranker.item_id_emb.weight)
        every = torch.arange(table.n_items)
        with_ids, codes_only = (reranker.item_vectors(levels, table.item_codes, every),
                                reranker.item_vectors(levels, table.item_codes))
        assert torch.equal(with_ids[12:], codes_only[12:]) and not torch.allclose(with_ids[:12], codes_only[:12])
    hist = _histories(table.n_items)
    rec = GenerativeRecommender(model, table, top_k=8, beam_width=64, exclude_history=True).eval()
    items, scores = rec(hist)
    memory, _ = model.encode(hist, table.item_codes)
    every = torch.arange(table.n_items)
    dense = reranker.user_vector(memory) @ reranker.item_vectors(levels, table.item_codes, every).T
    want_scores = _exhaustive(model, table, hist) + weight * dense
    for r in range(hist.shape[0]):
        seen = list(set(hist[r][hist[r] >= 0].tolist()))
        want_scores[r, seen] = float("-inf")
        assert items[r].tolist() == torch.topk(want_scores[r], 8).indices.tolist()
        assert torch.allclose(scores[r], want_scores[r, items[r]], atol=1e-5)
    if weight:  # the head changes the order (else this test could not tell it ran)
        plain = _exhaustive(model, table, hist)
        assert any(items[r].tolist() != torch.topk(plain[r].index_fill(0, hist[r][hist[r] >= 0], -1e9), 8)
                   .indices.tolist() for r in range(hist.shape[0]))


@torch.no_grad()
def test_the_generator_gives_the_beam_order_and_the_reranker_reorders_that_beam() -> None:
    """The documented orders. The generator alone (a model without a re-ranker, or with a zero
    weight) ranks by generative log-prob; the composed model re-orders the generator's final
    beam (width W) by ``log-prob + weight * dense logit`` and keeps the top K."""
    table, hist = _table(), _histories(20)
    model = _model(seed=5, rerank=RerankConfig(weight=0.7, user_state="encoder", catalogue_top=0))
    alone = _model(seed=5)
    alone.generator.load_state_dict(model.generator.state_dict())  # the same generator, no re-ranker
    assert alone.reranker is None and not alone.reranks and model.reranks
    seen = [list(set(h[h >= 0].tolist())) for h in hist]
    generative = _exhaustive(model, table, hist)
    memory, _ = model.encode(hist, table.item_codes)
    dense = model.dense_scores(memory, hist, torch.arange(table.n_items).expand(len(hist), -1), table.item_codes)
    for r, s in enumerate(seen):
        generative[r, s] = float("-inf")

    # A beam as wide as the catalogue: the generator's order is brute force's, the composed one
    # is brute force's over the combined score.
    beam_order = GenerativeRecommender(alone, table, top_k=8, beam_width=64)(hist)[0]
    reranked = GenerativeRecommender(model, table, top_k=8, beam_width=64)(hist)[0]
    assert beam_order.tolist() == torch.topk(generative, 8).indices.tolist()
    assert reranked.tolist() == torch.topk(generative + 0.7 * dense, 8).indices.tolist()
    assert not torch.equal(beam_order, reranked)

    # A narrow beam: the re-ranker only re-orders what the generator found.
    rec = GenerativeRecommender(model, table, top_k=4, beam_width=6)
    items, log_probs, beam_dense = rec.beam_with_dense_scores(hist)
    assert torch.equal(items, GenerativeRecommender(alone, table, top_k=6, beam_width=6)(hist)[0])
    order = torch.sort(log_probs + 0.7 * beam_dense, dim=1, descending=True, stable=True).indices[:, :4]
    assert torch.equal(rec(hist)[0], torch.gather(items, 1, order))

    # Weight 0 (a tuned weight can be): the generator's order, the head not even run.
    model.reranker.set_weight(0.0)
    assert not model.reranks
    assert torch.equal(GenerativeRecommender(model, table, top_k=8, beam_width=64)(hist)[0], beam_order)


@torch.no_grad()
@torch.no_grad()
def test_the_history_tower_reorders_the_beam_and_leaves_an_empty_history_in_beam_order() -> None:
    table, hist = _table(), _histories(20)
    model = _model(seed=5, rerank=RerankConfig(weight=0.7, user_state="history", catalogue_top=0))
    for p in model.reranker.parameters():  # larger than the init, so that its order shows
        torch.nn.init.normal_(p, std=0.3)
    alone = _model(seed=5)
    alone.generator.load_state_dict(model.generator.state_dict())
    beam_order = GenerativeRecommender(alone, table, top_k=8, beam_width=64)(hist)[0]
    rec = GenerativeRecommender(model, table, top_k=8, beam_width=64)
    dense, reranked = rec.beam_with_dense_scores(hist)[2], rec(hist)[0]
    assert torch.equal(dense[1], torch.zeros_like(dense[1]))  # row 1 has no history
    assert torch.equal(reranked[1], beam_order[1])
    others = [r for r in range(len(hist)) if r != 1]
    assert not torch.equal(reranked[others], beam_order[others])


@pytest.mark.parametrize("rerank_head", [False, True])
def test_narrow_beam_yields_only_valid_sorted_unique_items(rerank_head: bool) -> None:
    table, model = _table(40, seed=3), _model(seed=2, rerank=RerankConfig() if rerank_head else None)
    hist = _histories(table.n_items, rows=8)
    extra = torch.tensor([[0, 1, -1]] * 8)
    rec = GenerativeRecommender(model, table, top_k=5, beam_width=5, exclude_history=True)
    items, scores = rec(hist, exclude=extra)
    assert items.shape == (8, 5) and scores.dtype == torch.float32
    for r in range(8):
        row = items[r].tolist()
        assert all(0 <= i < table.n_items for i in row)
        assert len(set(row)) == len(row)
        assert not ({*hist[r].tolist(), 0, 1} & set(row))
        assert (scores[r][1:] <= scores[r][:-1]).all()


def test_small_catalogue_pads_with_minus_one() -> None:
    table = CodeTable(torch.tensor([[0, 0, 0], [1, 2, 0], [3, 3, 2]]), LEVELS)
    rec = GenerativeRecommender(_model(), table, top_k=5, beam_width=5).eval()
    with torch.no_grad():
        items, scores = rec(torch.tensor([[0, -1, -1, -1, -1, -1]]))
    assert sorted(items[0, :2].tolist()) == [1, 2]
    assert items[0, 2:].tolist() == [-1, -1, -1]
    assert torch.isinf(scores[0, 2:]).all()


def test_adding_an_item_makes_it_generatable_at_once() -> None:
    table = _table(10)
    codes = {tuple(c) for c in table.item_codes.tolist()}
    new = next(c for c in itertools.product(*[range(v) for v in LEVELS]) if c not in codes)

    def prefer(target: tuple[int, ...]):
        # A stand-in decoder that strongly prefers the codes of `target` at every level.
        def step(prefix: torch.Tensor, level: int, cache: tuple) -> tuple[torch.Tensor, tuple]:
            logits = torch.zeros(prefix.shape[0], prefix.shape[1], LEVELS[level])
            logits[..., target[level]] = 10.0
            return logits, cache

        return step

    def search(tab: CodeTable) -> torch.Tensor:
        return constrained_beam_search(prefer(new), 1, LEVELS, tab.base, tab.trie, tab.slots, None, beam_width=3,
                                       top_k=3)[0][0]

    before = search(table)
    assert (before >= 0).all() and table.n_items not in before.tolist()
    idx = table.add_items(torch.tensor([new]))
    assert idx.tolist() == [10]
    assert search(table)[0].item() == 10  # now the top result, with no retraining
    with pytest.raises(ValueError, match="unique"):
        table.add_items(torch.tensor([new]))
    assert table.n_items == 11  # failed add leaves the table unchanged

    # The same through the recommender's replaceable buffers.
    rec = GenerativeRecommender(_model(), _table(10), top_k=3, beam_width=3)
    rec.set_code_table(table)
    assert rec.item_keys.shape[0] == 11 and rec.item_codes[10].tolist() == list(new)


def _fixed_decoder(probs: list[list[float]]):
    """A stand-in decoder with the same code probabilities at a level whatever the prefix."""
    def step(prefix: torch.Tensor, level: int, cache: tuple) -> tuple[torch.Tensor, tuple]:
        return torch.log(torch.tensor(probs[level])).expand(prefix.shape[0], prefix.shape[1], -1), cache
    return step


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_an_item_added_after_training_scores_like_an_average_sibling(weight: float) -> None:
    """Items 0-3 were trained; 4 and 5 came later under a code (0, 3) the decoder never saw. That
    branch gets the mean probability of its trained siblings (0, 0), (0, 1), (0, 2) times the
    weight, split evenly between its two items; trained items keep the decoder's own scores."""
    probs = [[0.7, 0.1, 0.1, 0.1], [0.5, 0.3, 0.15, 0.05], [0.6, 0.3, 0.1]]
    table = CodeTable(torch.tensor([[0, 0, 0], [0, 1, 0], [0, 2, 0], [1, 0, 0], [0, 3, 0], [0, 3, 1]]), LEVELS)

    def search(fresh_from: int | None) -> dict[int, float]:
        items, scores = constrained_beam_search(
            _fixed_decoder(probs), 1, LEVELS, table.base, table.trie, table.slots, None, 6, 6,
            trained_items=fresh_from,
            fresh_weight=weight)
        return {int(i): float(v) for i, v in zip(items[0], scores[0], strict=True) if i >= 0}

    raw = search(None)
    def decoder(c: tuple[int, ...]) -> float:
        return sum(math.log(probs[level][code]) for level, code in enumerate(c))
    assert raw == pytest.approx({i: decoder(tuple(c)) for i, c in enumerate(table.item_codes.tolist())})
    assert search(table.n_items) == raw  # nothing added since training: the decoder's own scores

    fresh = search(4)
    sibling = math.log(0.7) + math.log(weight * (0.5 + 0.3 + 0.15) / 3)
    assert fresh[4] == pytest.approx(sibling + math.log(0.5)) and fresh[5] == pytest.approx(fresh[4])
    assert {i: fresh[i] for i in range(4)} == pytest.approx({i: raw[i] for i in range(4)})
    assert fresh[4] > raw[4]  # the decoder alone, never taught code 3 under code 0, ranks them lower


def test_a_models_trained_catalogue_travels_with_its_weights() -> None:
    model = _model()
    assert model.generator.trained_items > 10**15  # not told: every item counts as trained
    model.generator.trained_items = 7
    state = model.state_dict()
    assert TigerModel.from_state_dict(model.config, LEVELS, state).generator.trained_items == 7
    del state["generator._extra_state"]  # weights saved before it existed
    assert TigerModel.from_state_dict(model.config, LEVELS, state).generator.trained_items > 10**15


def test_results_independent_of_batch_composition() -> None:
    table, model = _table(30, seed=4), _model(seed=4)
    hist = _histories(table.n_items, rows=5)
    rec = GenerativeRecommender(model, table, top_k=4, beam_width=6).eval()
    with torch.no_grad():
        full = rec(hist)[0]
        single = torch.cat([rec(hist[i : i + 1])[0] for i in range(5)])
    assert torch.equal(full, single)


@pytest.mark.parametrize("beam_width", [3, 64])
def test_equal_scores_keep_the_lower_candidate_and_so_the_lower_key(beam_width: int) -> None:
    """A decoder with no preference: every item scores the same, and ties go to the lower
    (beam, code) candidate as in a stable sort, so the beam returns the lowest keys in order."""
    table = _table(30, seed=6)

    def indifferent(prefix: torch.Tensor, level: int, cache: tuple) -> tuple[torch.Tensor, tuple]:
        return torch.zeros(prefix.shape[0], prefix.shape[1], LEVELS[level]), cache

    hist = torch.stack([table.sorted_items[[0, 2, 5]], torch.tensor([-1, -1, -1])])
    excl = exclusion_keys(hist, table.item_keys, table.sentinel)
    items, scores = constrained_beam_search(indifferent, 2, LEVELS, table.base, table.trie, table.slots, excl,
                                            beam_width, top_k=3)
    assert items[0].tolist() == table.sorted_items[[1, 3, 4]].tolist()
    assert items[1].tolist() == table.sorted_items[:3].tolist()
    assert torch.isfinite(scores).all() and (scores == scores[0, 0]).all()


def test_selection_orders_as_a_stable_descending_sort() -> None:
    g = torch.Generator().manual_seed(8)
    total = torch.randint(-3, 2, (6, 40), generator=g).float()  # ties everywhere
    total[total == -3] = float("-inf")
    total[0] = float("-inf")  # a row with nothing left
    want_values, want_index = torch.sort(total, dim=1, descending=True, stable=True)
    for keep in (1, 9, 25, 40):
        values, index = stable_top(total, keep)
        assert torch.equal(index, want_index[:, :keep]) and torch.equal(values, want_values[:, :keep])


@torch.no_grad()
@pytest.mark.parametrize("user_state", ["encoder", "history"])
def test_the_heads_own_best_items_join_the_beam_scored_by_both(user_state: str) -> None:
    """With ``catalogue_top`` M, the candidates are the beam and the head's best M items of the
    catalogue that are neither in it nor excluded; a beam item gets its generative log-prob (as brute
    force gives it), a joining item the beam's lowest (the search pruned it: no decoder pass), every
    candidate its dense logit, and the order is ``log-prob + weight * dense``, the best K kept."""
    table, hist = _table(), _histories(20)
    model = _model(seed=5, id_items=15, rerank=RerankConfig(weight=0.7, user_state=user_state, catalogue_top=5,
                                                            item_ids=True))
    for p in model.reranker.parameters():  # larger than the init, so that the head's order shows
        torch.nn.init.normal_(p, std=0.3)
    exclude = torch.full((len(hist), 2), -1)
    exclude[:, 0] = 7  # excluded for every user: neither the beam nor the head may offer it
    rec = GenerativeRecommender(model, table, top_k=4, beam_width=4)
    items, generative, dense = rec.beam_with_dense_scores(hist, exclude=exclude)
    assert items.shape == (len(hist), 4 + 5)

    memory, _ = model.encode(hist, table.item_codes)
    every = torch.arange(table.n_items).expand(len(hist), -1)
    want_dense = model.dense_scores(memory, hist, every, table.item_codes)  # item by item, via the towers
    exhaustive = _exhaustive(model, table, hist)
    beam = GenerativeRecommender(model, table, top_k=4, beam_width=4)
    for r in range(len(hist)):
        gone = set(hist[r][hist[r] >= 0].tolist()) | {7}
        beam_items = items[r, :4].tolist()
        by_head = [i for i in torch.argsort(want_dense[r], descending=True, stable=True).tolist() if i not in gone]
        assert items[r, 4:].tolist() == [i if i not in beam_items else -1 for i in by_head[:5]]
        real = items[r] >= 0
        assert torch.allclose(dense[r, real], want_dense[r, items[r, real]], atol=1e-5)
        assert torch.allclose(generative[r, :4], exhaustive[r, items[r, :4]], atol=1e-5)
        joining = real & (torch.arange(items.shape[1]) >= 4)
        assert torch.equal(generative[r, joining], generative[r, :4].min().expand(int(joining.sum())))
        assert torch.isinf(generative[r, ~real]).all()
    assert any(set(items[r, 4:].tolist()) != {-1} for r in range(len(hist)))  # the head did add items
    top, _ = model.reranker.rerank(items, generative, dense, 4)
    assert torch.equal(beam(hist, exclude=exclude)[0], top)


@torch.no_grad()
def test_a_catalogue_smaller_than_the_heads_share_leaves_the_rest_empty() -> None:
    table = _table(6)
    model = _model(seed=1, rerank=RerankConfig(weight=1.0, catalogue_top=10))
    hist = torch.tensor([[0, 1, 2, -1, -1, 3]])
    items, scores = GenerativeRecommender(model, table, top_k=8, beam_width=8)(hist)
    assert sorted(items[0, :2].tolist()) == [4, 5] and items[0, 2:].tolist() == [-1] * 6
    assert torch.isfinite(scores[0, :2]).all() and torch.isinf(scores[0, 2:]).all()


@torch.no_grad()
def test_the_heads_own_candidates_need_the_excluded_items_not_only_their_keys() -> None:
    """The beam reads exclusions as keys; the head's catalogue scan needs the items, or it could offer
    a history item back."""
    table, hist = _table(), _histories(20)
    model = _model(rerank=RerankConfig(catalogue_top=3))
    memory, mask = model.encode(hist, table.item_codes)
    keys = exclusion_keys(hist, table.item_keys, table.sentinel)
    with pytest.raises(ValueError, match="excluded items"):
        model.scored_beam(memory, mask, hist, keys, table.item_codes, table.trie, table.slots, 4)


@torch.no_grad()
def test_the_heads_own_candidates_fill_the_list_so_the_beam_may_be_narrower() -> None:
    """With the head's M >= K best items joining the beam, a beam narrower than K still gives K
    distinct items, none excluded: the re-ordered union of the narrow beam and the head's items.
    Without them (or M < K) the beam stays at least K wide."""
    table, hist = _table(), _histories(20)
    model = _model(seed=3, rerank=RerankConfig(weight=1.0, catalogue_top=5))
    narrow = GenerativeRecommender(model, table, top_k=4, beam_width=2)
    assert narrow.beam_width == 2
    items, _ = narrow(hist)
    for r in range(len(hist)):
        row = items[r].tolist()
        assert len(set(row)) == 4 and min(row) >= 0 and not set(row) & set(hist[r].tolist())
    assert torch.equal(items, model.reranker.rerank(*narrow.beam_with_dense_scores(hist), 4)[0])
    assert GenerativeRecommender(model, table, top_k=6, beam_width=2).beam_width == 6  # M = 5 < K = 6
    assert GenerativeRecommender(_model(seed=3), table, top_k=4, beam_width=2).beam_width == 4  # no head
