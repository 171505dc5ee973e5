"""The cold-start benchmark: items hidden from training, then scored by what each model can do with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genrec.bench.cold_start import (
    CONTENT,
    GENREC,
    GENREC_DECODER_ONLY,
    MOSTPOP,
    SASREC,
    hide_items,
    markdown_section,
    run_cold_start,
)
from genrec.data import SynthConfig, generate_synthetic, leave_one_out
from genrec.training import TrainConfig

DATA = SynthConfig(n_items=150, n_users=300, seed=5)


def test_hidden_items_leave_the_catalogue_and_every_interaction_with_them() -> None:
    ds = generate_synthetic(DATA)
    visible, hidden = hide_items(ds, 0.1, seed=0)
    assert len(hidden) == 15 and hide_items(ds, 0.1, seed=0)[1] == hidden  # the seed draws them
    assert not set(hidden) & (set(visible.items["item_id"]) | set(visible.interactions["item_id"]))
    assert len(visible.interactions) == int((~ds.interactions["item_id"].isin(hidden)).sum())
    assert visible.n_items == ds.n_items - 15


def test_only_models_that_read_content_can_recommend_an_item_nobody_has_seen(tmp_path: Path) -> None:
    ds = generate_synthetic(DATA)
    cfg = TrainConfig.model_validate({
        "max_history": 8, "threads": 2, "top_k": 10, "val_beam_width": 10, "test_beam_width": 10,
        "embeddings": {"mode": "hybrid", "collab_dim": 16, "cache_dir": str(tmp_path / "emb")},
        "tokenizer": {"levels": 2, "codebook_size": 8, "latent_dim": 8, "hidden_dims": [32], "steps": 100},
        "model": {"d_model": 32, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 64},
        "optim": {"epochs": 2, "batch_size": 64}, "sasrec_optim": {"epochs": 2, "batch_size": 64},
    })
    out = run_cold_start(ds, cfg, 0.1, progress=False)

    full = leave_one_out(ds, cfg.max_history)
    _, hidden = hide_items(ds, 0.1, cfg.seed)
    cold = int(np.isin(full.item_index.ids[full.test_targets], hidden).sum())
    assert out["hidden_items"] == 15 and out["cold_test_events"] == cold > 0
    assert out["test_events"] == len(full.user_ids)
    models = out["models"]
    assert set(models) == {GENREC, GENREC_DECODER_ONLY, SASREC, MOSTPOP, CONTENT}
    for name in (SASREC, MOSTPOP):  # they never saw the hidden items: no row to score them by
        assert models[name]["cold"]["recall@10"] == 0.0 and models[name]["cold"]["users"] == cold
    assert models[CONTENT]["cold"]["recall@10"] > 0  # the synthetic text follows the categories users keep to
    # New items scored like an average trained item of their code region, at several weights (0: the decoder alone).
    sweep = {r["fresh_item_weight"]: r for r in out["fresh_item_weights"]}
    assert set(sweep) == {0.0, 0.5, 1.0, 2.0}
    assert models[GENREC]["cold"] == sweep[1.0]["cold"] and models[GENREC_DECODER_ONLY]["all"] == sweep[0.0]["all"]
    for name in (GENREC, GENREC_DECODER_ONLY, CONTENT):
        assert models[name]["cold"]["users"] == cold and models[name]["all"]["users"] == len(full.user_ids)
    table = "\n".join(markdown_section(out))
    assert f"| {GENREC} | {models[GENREC]['cold']['recall@10']:.4f} |" in table
    assert f"| 2 | {sweep[2.0]['cold']['recall@10']:.4f} |" in table


def test_a_new_items_collaborative_part_is_predicted_from_its_text() -> None:
    from genrec.embeddings.build import hybrid_from_text, text_to_collab

    rng = np.random.default_rng(0)
    mix = rng.normal(size=(48, 8))
    text = rng.normal(size=(600, 48)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    collab = text @ mix
    collab /= np.linalg.norm(collab, axis=1, keepdims=True)
    collab[:100] = 0  # items nobody interacted with: not fitted on
    fitted = text_to_collab(text, collab)
    new = rng.normal(size=(50, 48)).astype(np.float32)  # items the map never saw
    truth = new @ mix
    vec = hybrid_from_text(new, fitted, text_weight=0.5, collab_dim=8)
    predicted = vec[:, 48:]
    cosine = (predicted * truth).sum(1) / np.linalg.norm(predicted, axis=1) / np.linalg.norm(truth, axis=1)
    assert cosine.min() > 0.95
    assert np.allclose(np.linalg.norm(vec, axis=1), 1) and np.allclose(np.linalg.norm(vec[:, :48], axis=1) ** 2, 0.5)
    # without a map (a bundle trained before it existed) the collaborative part stays zero
    assert not hybrid_from_text(new, None, 0.5, 8)[:, 48:].any()
