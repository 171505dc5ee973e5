"""The re-ranker as its own part: its config, its saved weight, and artifacts from before the split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genrec.model import GenerativeConfig, RerankConfig, TigerModel
from genrec.model.generative import _best_unseen, shortlist_room
from genrec.training import TrainedBundle, load_config

# Written by the code of commit dd0d3c2, when TigerModel was generator and re-ranker in one
# (flat state-dict keys, the tuned weight and the ID-table size in the config): a tiny
# artifact whose head has ID vectors for 36 of its 40 items and weight 0.5, and its answers
# (expected.json) for fixed inputs.
OLD_ARTIFACT = Path(__file__).parent / "data" / "artifact-before-reranker-split"
# A head as configs with the flat ``rerank_*`` keys meant it: the encoder's state, the beam alone.
LEGACY_HEAD = RerankConfig(item_ids=False, user_state="encoder", catalogue_top=0)


def _answers(bundle: TrainedBundle, want: dict) -> tuple[torch.Tensor, torch.Tensor]:
    rec = bundle.recommender(top_k=want["top_k"], beam_width=want["beam_width"])
    with torch.inference_mode():
        return rec(torch.tensor(want["history"]), torch.tensor(want["users"]), torch.tensor(want["exclude"]))


def _assert_answers(items: torch.Tensor, scores: torch.Tensor, want: dict) -> None:
    """The same items; the same scores up to float rounding (today's decoder computes the same
    sums in other shapes: one position at a time on a cache)."""
    assert items.tolist() == want["items"]
    torch.testing.assert_close(scores, torch.tensor(want["scores"]), rtol=0, atol=1e-5)


def test_an_artifact_saved_before_the_split_loads_and_answers_as_it_did(tmp_path: Path) -> None:
    from genrec.serving.artifact import ServingArtifact
    from genrec.serving.graph import TableTensors, build_graph

    want = json.loads((OLD_ARTIFACT / "expected.json").read_text())
    assert "generator.code_emb.weight" not in torch.load(OLD_ARTIFACT / "model.pt", weights_only=True)
    bundle = TrainedBundle.load(OLD_ARTIFACT)
    assert bundle.model.reranks and bundle.model.reranker.weight == 0.5 and bundle.model.reranker.id_items == 36
    _assert_answers(*_answers(bundle, want), want)
    ask = want["recommend"]
    got = bundle.recommend(ask["histories"], k=ask["k"], user_ids=ask["user_ids"])
    assert [[item for item, _ in row] for row in got] == [[item for item, _ in row] for row in ask["answer"]]
    torch.testing.assert_close(torch.tensor([[score for _, score in row] for row in got]),
                               torch.tensor([[score for _, score in row] for row in ask["answer"]]), rtol=0, atol=1e-5)

    # The serving graph reads the same files (its own loader) and answers the same.
    art = ServingArtifact.open(OLD_ARTIFACT)
    graph = build_graph(art, top_k=want["top_k"], beam_width=want["beam_width"])
    with torch.inference_mode():
        g_items, g_scores = graph(torch.tensor(want["history"]), torch.tensor(want["users"])[:, None],
                                  torch.tensor(want["exclude"]), *TableTensors.from_table(bundle.code_table).as_tuple())
    _assert_answers(g_items, g_scores, want)

    # Saved again, it is in today's layout (the weight with the weights) and still answers the same.
    bundle.save(tmp_path / "again")
    state = torch.load(tmp_path / "again" / "model.pt", weights_only=True)
    assert {k.split(".")[0] for k in state} == {"generator", "reranker"}
    assert float(state["reranker._extra_state"]) == 0.5
    again = TrainedBundle.load(tmp_path / "again")
    _assert_answers(*_answers(again, want), want)


def test_a_checkpoint_before_the_split_resumes_into_the_new_layout(tmp_path: Path) -> None:
    """Checkpoints (``fit``'s ``model``) hold the same flat keys: plain ``load_state_dict`` maps them."""
    old = TrainedBundle.load(OLD_ARTIFACT)
    flat = torch.load(OLD_ARTIFACT / "model.pt", weights_only=True)
    model = TigerModel(old.model.config, old.code_table.level_sizes, id_items=36)
    model.reranker.set_weight(3.0)
    model.load_state_dict(flat)  # strict: every key found a home
    assert model.reranker.weight == 3.0  # a flat state has no weight: the model keeps its own
    for key, value in old.model.state_dict().items():
        if key != "reranker._extra_state":
            assert torch.equal(model.state_dict()[key], value), key


def test_the_tuned_weight_is_saved_with_the_weights_not_in_the_config() -> None:
    cfg = GenerativeConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=32,
                           rerank=RerankConfig(weight=1.0))
    model = TigerModel(cfg, [4, 4])
    model.reranker.set_weight(1.5)
    assert cfg.rerank.weight == 1.0
    fresh = TigerModel(cfg, [4, 4])
    fresh.load_state_dict(model.state_dict())
    assert fresh.reranker.weight == 1.5
    # A model without re-ranker has no reranker.* keys, and the ID table is sized at construction.
    assert not any(k.startswith("reranker.") for k in TigerModel(cfg.model_copy(update={"rerank": None}), [4, 4])
                   .state_dict())
    with_ids = TigerModel.from_state_dict(cfg, [4, 4], TigerModel(cfg, [4, 4], id_items=7).state_dict())
    assert with_ids.reranker.item_id_emb.num_embeddings == 7


def test_training_builds_the_catalogue_as_the_item_tower_builds_each_item() -> None:
    """Each training step builds every item's vector with the item tower's first layer applied per code
    (``item_vectors``: over half of a step's arithmetic when applied per item): the same vectors, and so
    the same loss and gradients, as the tower applied to each item's code vectors."""
    torch.manual_seed(0)
    levels = [4, 5, 6]
    cfg = GenerativeConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=32,
                           rerank=RerankConfig(id_tower=0))  # the head alone (the ID tower: its own test)
    model = TigerModel(cfg, levels, id_items=30)  # items 30-39: added after training, codes alone
    torch.nn.init.normal_(model.reranker.item_id_emb.weight)  # zeros at construction
    codes = torch.stack([torch.randint(0, size, (40,)) for size in levels], 1)
    head, gen = model.reranker, model.generator
    ids = torch.where(torch.arange(40)[:, None] < 30, head.item_id_emb(torch.arange(40).clamp(max=29)), 0.0)
    built = [head.item_vectors(gen.level_code_vectors(), codes, torch.arange(40)),
             head.item_tower(gen.code_vectors(codes).flatten(-2)) + ids]
    torch.testing.assert_close(built[0], built[1], rtol=0, atol=1e-5)
    weights = [*head.item_tower.parameters(), head.item_id_emb.weight, gen.code_emb.weight]
    upstream = torch.randn_like(built[0])
    by_code, by_item = (torch.autograd.grad((v * upstream).sum(), weights) for v in built)
    for a, b in zip(by_code, by_item, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_weights_without_a_reranker_load_as_the_generator_alone() -> None:
    """Artifacts saved before the head was the default hold no re-ranker weights, and their config
    no ``rerank`` key: they load as the generator they are, not as a default head missing its weights."""
    cfg = GenerativeConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=32)
    assert cfg.rerank == RerankConfig()
    alone = TigerModel(cfg.model_copy(update={"rerank": None}), [4, 4])
    loaded = TigerModel.from_state_dict(cfg, [4, 4], alone.state_dict())
    assert loaded.reranker is None and not loaded.reranks and loaded.config.rerank is None


@pytest.mark.parametrize(("rerank", "top_k", "asked", "want"), [
    (RerankConfig(), 50, None, 20),  # the head's own 50 fill a top 50: its narrower beam
    (RerankConfig(), 10, None, 10),  # never wider than the list
    (RerankConfig(), 50, 30, 30),  # a call that names a width gets it
    (RerankConfig(beam_width=8), 50, None, 8),
    (RerankConfig(catalogue_top=20), 50, None, 50),  # its own items cannot fill the list: the beam must
    (RerankConfig(catalogue_top=20), 50, 20, 50),
    (LEGACY_HEAD, 50, None, 50),
    (None, 50, None, 50),
    (None, 50, 100, 100),
])
def test_the_served_beam_is_the_heads_narrower_one_while_its_own_items_fill_the_list(
    rerank: RerankConfig | None, top_k: int, asked: int | None, want: int
) -> None:
    cfg = GenerativeConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=32, rerank=rerank)
    assert TigerModel(cfg, [4, 4]).beam_width_for(top_k, asked) == want


@pytest.mark.parametrize(("model", "want"), [
    ({}, RerankConfig()),  # the head is on unless turned off
    ({"rerank": {}}, RerankConfig()),
    ({"rerank": True}, RerankConfig()),
    ({"rerank": False}, None),
    ({"rerank": {"item_ids": True, "weight": 2.0}}, RerankConfig(item_ids=True, weight=2.0)),
    # The flat keys of configs and artifacts before the split.
    ({"rerank_head": True, "rerank_weight": 1.5, "rerank_item_ids": True, "rerank_id_items": 140,
      "rerank_loss_weight": 0.5, "rerank_id_dropout": 0.2},
     RerankConfig(weight=1.5, item_ids=True, loss_weight=0.5, id_dropout=0.2, user_state="encoder",
                  catalogue_top=0)),
    ({"rerank_head": True}, LEGACY_HEAD),  # a head of that time, whatever the defaults are now
    ({"rerank_head": False, "rerank_weight": 1.5, "rerank_id_items": 0}, None),
    ({"rerank_head": False, "rerank": {"item_ids": True}}, None),  # an override turning a budget's head off
    ({"rerank": {"item_ids": True}, "rerank_weight": 3.0}, RerankConfig(item_ids=True, weight=3.0)),
])
def test_rerank_config_forms(model: dict, want: RerankConfig | None) -> None:
    assert GenerativeConfig.model_validate(model).rerank == want


def test_rerank_config_from_toml(tmp_path: Path) -> None:
    (tmp_path / "new.toml").write_text("[model.rerank]\nweight = 2.0\n")
    (tmp_path / "old.toml").write_text("[model]\nrerank_head = true\nrerank_weight = 2.0\n")
    assert load_config(tmp_path / "new.toml").model.rerank == RerankConfig(weight=2.0)
    assert load_config(tmp_path / "old.toml").model.rerank == LEGACY_HEAD.model_copy(update={"weight": 2.0})
    old = json.loads((OLD_ARTIFACT / "manifest.json").read_text())["config"]["model"]
    assert old["rerank_head"] and GenerativeConfig.model_validate(old).rerank == LEGACY_HEAD.model_copy(
        update={"weight": 0.5, "item_ids": True})


def test_the_tuned_weight_can_reach_the_dense_order() -> None:
    """A head that knows better than a confident beam wins on validation: the grid reaches weights
    where the dense order decides (a gap of 10 in log-prob against 1 in the head's logit)."""
    import numpy as np

    from genrec.training.generative import RERANK_WEIGHTS, metrics_at_weight

    items = torch.tensor([[7, 3, 5]])
    generative = torch.tensor([[0.0, -10.0, -20.0]])  # the beam is sure of item 7
    dense = torch.tensor([[0.0, 1.0, -1.0]])  # the head prefers item 3, the target
    best = max(metrics_at_weight((items, generative, dense), np.array([3]), w)["ndcg@10"] for w in RERANK_WEIGHTS)
    assert best == pytest.approx(1.0)


def _hits(users: int, counts: list[int]):
    """Per-user gains ``[weights, users]``: weight i hits the first ``counts[i]`` users, so two
    weights differ exactly by the users one hits and the other misses (a paired comparison)."""
    import numpy as np

    return (np.arange(users)[None] < np.array(counts)[:, None]).astype(float)


def test_the_weight_moves_off_its_prior_only_on_validation_evidence() -> None:
    """A few hundred users cannot tell weights 0.01 NDCG apart: training keeps the configured weight
    rather than the luckiest of the grid; tens of thousands can, and training follows them."""
    from genrec.training.generative import choose_weight

    small = _hits(300, [15, 30, 32, 33])  # 0.05, 0.10 (the prior), 0.107, 0.11
    assert int(small.mean(1).argmax()) == 3  # the plain maximum leaves the prior
    assert choose_weight(small, prior=1) == 1
    assert choose_weight(small, prior=0) == 1  # but 0.05 is clearly worse than 0.11
    large = _hits(30_000, [1500, 3000, 3300, 3200])  # 0.01 better on 30,000 users: far beyond noise
    assert choose_weight(large, prior=1) == 2
    # The prior far worse: the weight nearest it among those validation cannot tell from the best.
    tied = _hits(40_000, [800, 2000, 6000, 6002, 6000])
    assert choose_weight(tied, prior=0) == 2
    assert choose_weight(tied, prior=0, evidence=0.0) == 3  # no tolerance: the plain maximum
    assert choose_weight(_hits(1, [0, 1, 0]), prior=0) == 0  # one user is no evidence


def test_the_head_joins_its_best_items_by_exact_score_among_its_best_estimates() -> None:
    """The head's own candidates are its best by exact score, neither excluded nor in the beam, ties to the
    lower index (an empty history's zero user ties every item), though it scans the catalogue with estimates
    (int8 in ONNX Runtime): the exact scores of its best estimates decide."""
    torch.manual_seed(0)
    users, n, top = 4, 400, 6
    exact = torch.randn(users, n)
    exact[3] = 0.0  # the zero user
    estimates = exact + 0.3 * torch.randn(users, n) * (exact != 0)
    beam = torch.randint(0, n, (users, 5))
    excluded = torch.randint(0, n, (users, 7))
    excluded[:, -2:] = -1
    room = torch.full((users, shortlist_room(top)), float("-inf"))
    items, scores = _best_unseen(torch.cat([estimates, room], 1), beam, excluded, top,
                                 lambda chosen: exact.gather(1, chosen))
    for u in range(users):
        allowed = exact[u].clone()
        allowed[excluded[u][excluded[u] >= 0]] = float("-inf")
        want = torch.sort(allowed, descending=True, stable=True).indices[:top]
        want = torch.where(torch.isin(want, beam[u]), -1, want)
        assert items[u].tolist() == want.tolist()
        torch.testing.assert_close(scores[u], torch.where(want >= 0, exact[u][want.clamp(min=0)], 0.0))
    by_estimate = torch.topk(estimates[:3], top).indices
    assert not torch.equal(torch.sort(by_estimate).values, torch.sort(torch.topk(exact[:3], top).indices).values)


def test_content_shapes_the_trained_items_id_vectors_and_folds_into_a_head_without_it() -> None:
    """``id_content``: a trained item's ID vector is its own plus a learned projection of its content
    vector, which training learns from every item; folded when training ends, the saved head is one
    without it (the same keys: an artifact and the serving graph are unchanged) and scores alike."""
    torch.manual_seed(0)
    levels = [4, 5, 6]
    cfg = GenerativeConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=32,
                           rerank=RerankConfig(id_content=True, id_tower=0))
    model = TigerModel(cfg, levels, id_items=30)  # items 30-39: added after training
    plain_keys = set(model.state_dict())
    with pytest.raises(ValueError, match="one row per trained item"):
        model.reranker.attach_content(torch.randn(40, 12))
    content = torch.randn(30, 12)
    model.reranker.attach_content(content)
    head, gen = model.reranker, model.generator
    codes = torch.stack([torch.randint(0, size, (40,)) for size in levels], 1)
    items = torch.arange(40)
    code_only = head.item_vectors(gen.level_code_vectors(), codes)
    # Zero at first: training starts from the head without it.
    torch.testing.assert_close(head.item_vectors(gen.level_code_vectors(), codes, items), code_only)
    # One step of the head's loss reaches the projection through every trained item's vector.
    history = torch.randint(0, 40, (3, 5))
    states = torch.randn(15, 16)
    loss = head.loss(gen.level_code_vectors(), codes, torch.randint(0, 40, (15,)), states, history, torch.arange(15))
    (grad,) = torch.autograd.grad(loss, [head.content_proj.weight])
    assert grad.abs().sum() > 0
    torch.nn.init.normal_(head.content_proj.weight)
    trained = head.item_vectors(gen.level_code_vectors(), codes, items)
    want = code_only + torch.cat([head.item_id_emb.weight + content @ head.content_proj.weight.T,
                                  torch.zeros(10, 16)])
    torch.testing.assert_close(trained, want, rtol=0, atol=1e-5)
    head.fold_content()
    assert head.content_proj is None and set(model.state_dict()) == plain_keys
    torch.testing.assert_close(head.item_vectors(gen.level_code_vectors(), codes, items), trained, rtol=0, atol=1e-5)
    reloaded = TigerModel.from_state_dict(cfg, levels, model.state_dict())
    torch.testing.assert_close(reloaded.reranker.item_vectors(reloaded.generator.level_code_vectors(), codes, items),
                               trained, rtol=0, atol=1e-5)


def test_the_id_tower_adds_a_logit_of_ids_alone_trained_by_its_own_softmax() -> None:
    """``id_tower``: a second user and item pair from item IDs alone (its own causal tower over the history's
    ID vectors). A candidate's dense logit is the head's plus this pair's (an item added after training is there the
    mean of the trained items sharing its first code, or of all where none does; served or not); the loss is the head's
    cross-entropy plus this pair's own; saved weights reload with it, and weights saved before those regions give
    every new item the trained items' mean."""
    torch.manual_seed(0)
    levels, width = [4, 5, 6], 8
    base = GenerativeConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=32, max_history=5)
    cfg = base.model_copy(update={"rerank": RerankConfig(id_tower=width)})
    model = TigerModel(cfg, levels, id_items=30).eval()  # items 30-39: added after training
    plain = TigerModel(base.model_copy(update={"rerank": RerankConfig(id_tower=0)}), levels, id_items=30).eval()
    # ^ the same head without the tower
    plain.load_state_dict(model.state_dict(), strict=False)
    head = model.reranker
    codes = torch.stack([torch.randint(0, size, (40,)) for size in levels], 1)
    codes[:30, 0] %= 3  # no trained item has first code 3, which two new items have
    codes[38:, 0] = 3
    head.set_tower_regions(codes[:30], levels[0])
    history = torch.randint(0, 40, (3, 5))
    history[0, :2] = -1
    items = torch.arange(40).expand(3, -1)

    ids, valid = head.id_tower_emb.weight, history >= 0
    regions = torch.stack([*(ids[:30][codes[:30, 0] == c].mean(0) for c in range(3)), ids.mean(0)])
    tower_items = torch.cat([ids, regions[codes[30:, 0]]])  # as the tower sees items 0-39
    tower_users = head.id_history(tower_items[history.clamp(min=0)] * width**0.5, valid)  # [3, 5, width]
    tower = tower_users[:, -1] @ tower_items.T
    with torch.no_grad():
        got = model.dense_scores(None, history, items, codes)
        torch.testing.assert_close(got, plain.dense_scores(None, history, items, codes) + tower, rtol=0, atol=1e-5)
        # The whole catalogue, scanned as serving's catalogue scores are: the same logits.
        user = model.dense_user(None, history, codes)
        torch.testing.assert_close(head.catalogue_scores(user, model.generator.level_code_vectors(), codes), got,
                                   rtol=0, atol=1e-5)
        # Served: items 0-29 frozen, 30-39 built per call (fed since), their tower vector the frozen mean.
        model.freeze_catalogue(codes[:30])
        estimates = head.catalogue_scores(user, model.generator.level_code_vectors(), codes)
        torch.testing.assert_close(head.exact_scores(user, items, estimates), got, rtol=0, atol=1e-5)
        torch.testing.assert_close(model.dense_scores(None, history, items, codes), got, rtol=0, atol=1e-5)

    targets, rows = torch.randint(0, 30, (6,)), torch.tensor([2, 3, 4, 7, 12, 14])
    states = torch.randn(6, 16)
    loss = head.loss(model.generator.level_code_vectors(), codes[:30], targets, states, history.clamp(max=29), rows)
    own = plain.reranker.loss(plain.generator.level_code_vectors(), codes[:30], targets, states,
                              history.clamp(max=29), rows)
    clamped = history.clamp(max=29)
    tower_all = head.id_history(ids[clamped.clamp(min=0)] * width**0.5, clamped >= 0).flatten(0, 1)[rows]
    torch.testing.assert_close(loss, own + torch.nn.functional.cross_entropy(tower_all @ ids.T, targets))

    reloaded = TigerModel.from_state_dict(base, levels, model.state_dict()).eval()
    assert reloaded.reranker.id_width == width
    with torch.no_grad():
        torch.testing.assert_close(reloaded.dense_scores(None, history, items, codes), got, rtol=0, atol=1e-6)
    saved_before = {k: v for k, v in model.state_dict().items() if k != "reranker.id_tower_regions"}
    legacy = TigerModel.from_state_dict(base, levels, saved_before).reranker
    torch.testing.assert_close(legacy.unknown_tower(codes[30:]), ids.mean(0).expand(10, -1), rtol=0, atol=0)
    with pytest.raises(ValueError, match="id_tower needs"):
        RerankConfig(id_tower=width, user_state="encoder")
