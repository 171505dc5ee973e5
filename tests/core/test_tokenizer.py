"""Semantic-ID tokenizer: uniqueness, determinism, cold start and persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genrec.semantic import SemanticIdTokenizer, TokenizerConfig, kmeans

SMALL = {"levels": 2, "codebook_size": 8, "latent_dim": 8, "hidden_dims": [32], "steps": 150, "batch_size": 256,
         "disambiguation_size": 64}


def _clustered(n: int = 400, d: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, d))
    x = centres[rng.integers(0, 10, n)] + 0.5 * rng.normal(size=(n, d))
    x[5] = x[6]  # exact duplicates must still get distinct tuples
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def fitted() -> tuple[SemanticIdTokenizer, np.ndarray, np.ndarray]:
    x = _clustered()
    tok = SemanticIdTokenizer(TokenizerConfig(**SMALL))
    return tok, x, tok.fit(x, progress=False)


def test_codes_are_unique_and_in_range(fitted) -> None:
    tok, x, codes = fitted
    assert codes.shape == (len(x), 3)
    assert len({tuple(r) for r in codes.tolist()}) == len(x)
    assert (codes[:, :2] < 8).all() and (codes >= 0).all()
    assert tok.level_sizes == [8, 8, 64]
    # the duplicate pair shares a prefix and is separated by the disambiguation code
    assert codes[5, :2].tolist() == codes[6, :2].tolist() and codes[5, 2] != codes[6, 2]
    rep = tok.report()
    assert rep["unique_tuples"] is True
    assert 0 < rep["collision_rate"] <= 1 and len(rep["codebook_usage"]) == 2
    assert all(0 < u <= 1 for u in rep["codebook_usage"])


def test_assignment_is_deterministic_and_refit_reproducible(fitted) -> None:
    tok, x, codes = fitted
    assert np.array_equal(tok.prefixes(x), tok.prefixes(x.copy()))
    assert np.array_equal(tok.assign(x), codes)
    again = SemanticIdTokenizer(TokenizerConfig(**SMALL)).fit(x, progress=False)
    assert np.array_equal(again, codes)


def test_cold_start_takes_next_free_index(fitted) -> None:
    tok, x, codes = fitted
    new = np.stack([x[5], x[5], x[0]])  # two more copies of an existing item, one other
    assigned = tok.assign(new, existing=codes)
    prefix5 = codes[5, :2]
    taken = codes[(codes[:, :2] == prefix5).all(1), 2]
    assert assigned[0, :2].tolist() == prefix5.tolist()
    assert assigned[0, 2] == taken.max() + 1 and assigned[1, 2] == taken.max() + 2
    table = np.concatenate([codes, assigned])
    assert len({tuple(r) for r in table.tolist()}) == len(table)


def test_disambiguation_overflow_is_an_error(fitted) -> None:
    tok, x, codes = fitted
    with pytest.raises(ValueError, match="disambiguation_size"):
        tok.assign(np.repeat(x[:1], 70, axis=0), existing=codes)


def test_a_full_prefix_leaves_only_its_own_items_without_codes(fitted) -> None:
    """The cold-start batch path: one item whose prefix is full must not cost the others theirs."""
    tok, x, codes = fitted
    free = 64 - int(codes[(codes[:, :2] == codes[0, :2]).all(1), 2].max()) - 1
    batch = np.concatenate([x[100:101], np.repeat(x[:1], free + 2, axis=0), x[200:201]])
    got, placed = tok.assign_where_free(batch, existing=codes)
    assert placed.tolist() == [True] + [True] * free + [False, False] + [True]
    assert (got[~placed, 2] == -1).all() and (got[~placed, :2] == codes[0, :2]).all()
    table = np.concatenate([codes, got[placed]])
    assert len({tuple(r) for r in table.tolist()}) == len(table)
    assert np.array_equal(got[placed][[0, -1]], tok.assign(batch[[0, -1]], existing=codes))


def test_save_load_round_trip(fitted, tmp_path: Path) -> None:
    tok, x, codes = fitted
    tok.save(tmp_path)
    back = SemanticIdTokenizer.load(tmp_path)
    assert back.config == tok.config
    assert np.array_equal(back.codes, codes)
    assert np.array_equal(back.assign(x[:50], existing=codes), tok.assign(x[:50], existing=codes))


def test_rqkmeans_variant_and_kmeans() -> None:
    x = _clustered(200)
    tok = SemanticIdTokenizer(TokenizerConfig(**{**SMALL, "method": "rqkmeans"}))
    codes = tok.fit(x, progress=False)
    assert len({tuple(r) for r in codes.tolist()}) == len(x)
    import torch

    pts = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.1, 10.0]])
    c = kmeans(pts, 2, seed=0)
    assert sorted(c[:, 0].round().tolist()) == [0.0, 10.0]
