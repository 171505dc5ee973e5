"""The causal encoder: one pass over a sequence row encodes every position as serving would encode
that position's history alone, so training all positions at once trains what serving runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.splits import PAD_ITEM, pad_histories, sequence_examples
from genrec.model import GenerativeConfig, RerankConfig, TigerModel

LEVELS = [8, 8, 8, 4]
ITEMS = 60


def _model(encoder: str, max_history: int = 5, user_state: str = "encoder") -> TigerModel:
    torch.manual_seed(0)
    cfg = GenerativeConfig(d_model=32, n_heads=2, encoder_layers=2, decoder_layers=2, d_ff=64, dropout=0.0,
                           max_history=max_history, user_buckets=5, label_smoothing=0.0, encoder=encoder,
                           rerank=RerankConfig(item_ids=True, user_state=user_state))
    model = TigerModel(cfg, LEVELS, id_items=ITEMS).eval()
    for p in model.parameters():  # larger than the init (the distance bias starts at 0), so wrong maths shows
        torch.nn.init.normal_(p, std=0.3)
    return model


def _codes() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.stack([torch.randint(0, s, (ITEMS,), generator=gen) for s in LEVELS], 1)


@torch.no_grad()
@pytest.mark.parametrize("user_state", ["encoder", "history"])
def test_one_pass_over_a_row_encodes_each_position_as_its_history_alone(user_state: str) -> None:
    """(With the re-ranker's own history tower too: its loss is part of the model's.)"""
    model, codes = _model("causal", user_state=user_state), _codes()
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, ITEMS, n) for n in (3, 9, 17, 2, 30)]
    rows, targets, _ = sequence_examples(seqs, 5, 2)
    users = torch.arange(len(rows)) % 5
    # each trained position's history as serving would pass it: the row up to it, left-padded
    alone, alone_targets, alone_users = [], [], []
    for r, c in zip(*np.nonzero(targets != PAD_ITEM), strict=True):
        alone.append(rows[r, : c + 1][rows[r, : c + 1] != PAD_ITEM])
        alone_targets.append(targets[r, c])
        alone_users.append(int(users[r]))
    alone_hist = torch.as_tensor(pad_histories(alone, 5))
    memory, _ = model.encode(torch.as_tensor(rows), codes, users)
    *_, states = model.generator.target_rows(memory, torch.as_tensor(rows), torch.as_tensor(targets))
    served, _ = model.encode(alone_hist, codes, torch.tensor(alone_users))
    assert torch.allclose(states, served[:, -1], atol=1e-5)
    if user_state == "history":  # the tower's state at each position is the one serving computes
        vectors = model.reranker.item_vectors(model.generator.level_code_vectors(), codes, torch.arange(ITEMS))
        rows_t = torch.as_tensor(rows)
        tower = model.reranker.user_states(vectors[rows_t.clamp(min=0)], rows_t >= 0)[torch.as_tensor(targets) >= 0]
        assert torch.allclose(tower, model.dense_user(served, alone_hist, codes), atol=1e-5)
    # so the loss of every position from one pass is the loss of each history on its own
    per_row = model.loss(torch.as_tensor(rows), torch.as_tensor(targets), codes, users)
    one_by_one = model.loss(alone_hist, torch.as_tensor(np.asarray(alone_targets)), codes, torch.tensor(alone_users))
    assert torch.allclose(per_row, one_by_one, atol=1e-5)


@torch.no_grad()
def test_a_position_sees_nothing_after_it_and_each_layer_at_most_max_history_items_back() -> None:
    model, codes = _model("causal", max_history=3), _codes()  # two layers: 2 x 2 items back in all
    history = torch.tensor([[1, 2, 3, 4, 5, 6]])
    base, _ = model.encode(history, codes)
    later, earliest = history.clone(), history.clone()
    later[0, 4:] = torch.tensor([7, 8])
    earliest[0, 0] = 9
    assert torch.allclose(model.encode(later, codes)[0][:, : 1 + 4], base[:, : 1 + 4], atol=1e-6)
    changed, _ = model.encode(earliest, codes)
    assert not torch.allclose(changed[:, 1 + 4], base[:, 1 + 4])  # 4 back: within two layers' reach
    assert torch.allclose(changed[:, 1 + 5], base[:, 1 + 5], atol=1e-6)  # 5 back: beyond it


@torch.no_grad()
def test_the_history_tower_sees_nothing_after_a_position_and_each_layer_at_most_max_history_items_back() -> None:
    model, codes = _model("causal", max_history=3, user_state="history"), _codes()  # two layers
    vectors = model.reranker.item_vectors(model.generator.level_code_vectors(), codes, torch.arange(ITEMS))

    def states(history: torch.Tensor) -> torch.Tensor:
        return model.reranker.user_states(vectors[history], history >= 0)  # the ID tower's beside

    history = torch.tensor([[1, 2, 3, 4, 5, 6]])
    base = states(history)
    later, earliest = history.clone(), history.clone()
    later[0, 4:] = torch.tensor([7, 8])
    earliest[0, 0] = 9
    assert torch.allclose(states(later)[:, :4], base[:, :4], atol=1e-6)
    assert not torch.allclose(states(earliest)[:, 4], base[:, 4])  # 4 back: within two layers' reach
    assert torch.allclose(states(earliest)[:, 5], base[:, 5], atol=1e-6)  # 5 back: beyond it


def test_the_bidirectional_encoder_refuses_a_target_per_position() -> None:
    model, codes = _model("bidirectional"), _codes()
    with pytest.raises(ValueError, match="causal encoder"):
        model.loss(torch.tensor([[1, 2, 3]]), torch.tensor([[2, 3, 4]]), codes)


@torch.no_grad()
@pytest.mark.parametrize("saved", ["bidirectional", "causal"])
def test_saved_weights_say_which_encoder_they_are(saved: str) -> None:
    model, codes = _model(saved), _codes()
    other = "causal" if saved == "bidirectional" else "bidirectional"
    loaded = TigerModel.from_state_dict(model.config.model_copy(update={"encoder": other}), LEVELS,
                                        model.state_dict()).eval()
    assert loaded.config.encoder == saved
    history = torch.tensor([[-1, 4, 5, 6, 7], [1, 2, 3, 4, 5]])
    assert torch.equal(loaded.encode(history, codes)[0], model.encode(history, codes)[0])


@torch.no_grad()
@pytest.mark.parametrize("saved", ["encoder", "history"])
def test_saved_weights_say_where_the_reranker_reads_the_user(saved: str) -> None:
    model, codes = _model("causal", user_state=saved), _codes()
    other = "history" if saved == "encoder" else "encoder"
    config = model.config.model_copy(update={"rerank": RerankConfig(item_ids=True, user_state=other)})
    loaded = TigerModel.from_state_dict(config, LEVELS, model.state_dict()).eval()
    assert loaded.config.rerank.user_state == saved and config.rerank.user_state == other
    history = torch.tensor([[-1, 4, 5, 6, 7], [1, 2, 3, 4, 5]])
    memory, _ = model.encode(history, codes)
    assert torch.equal(loaded.dense_user(memory, history, codes), model.dense_user(memory, history, codes))
