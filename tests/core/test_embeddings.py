"""Item text rendering, collaborative vectors, the on-disk cache and the auto choice."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrec.embeddings import EmbeddingConfig, build_item_embeddings, cooccurrence_embeddings, item_texts
from genrec.embeddings.build import choose_mode
from genrec.embeddings.text import EmbeddingCache, TextEmbedder, item_text


def test_item_text_rendering() -> None:
    row = {"title": "Silk Serum", "categories": "Beauty|Skin Care|Serums", "brand": "Lumo", "price": "12.5",
           "description": float("nan"), "tags": "vegan|gift"}
    assert item_text(row) == (
        "title: Silk Serum; category: Beauty > Skin Care > Serums; brand: Lumo; price: $12.5; tags: vegan, gift"
    )
    assert item_text({"title": "", "brand": "nan"}) == ""
    frame = pd.DataFrame({"item_id": ["a", "b"], "title": ["A", ""], "genres": ["Drama|War", ""]})
    assert item_texts(frame) == ["title: A; genres: Drama, War", ""]


def test_cooccurrence_vectors_capture_sequence_neighbours() -> None:
    rng = np.random.default_rng(0)
    # Items 0-9 and 10-19 form two communities that never mix; 20-24 never occur.
    seqs = [rng.choice(10, 6) + (10 if u % 2 else 0) for u in range(300)]
    vec = cooccurrence_embeddings(seqs, 25, dim=8, seed=0)
    assert vec.shape == (25, 8)
    assert np.allclose(np.linalg.norm(vec[:20], axis=1), 1, atol=1e-5)
    assert np.allclose(vec[20:], 0)
    sim = vec @ vec.T
    within = np.mean([sim[i, j] for i in range(10) for j in range(10) if i != j])
    across = np.mean([sim[i, j] for i in range(10) for j in range(10, 20)])
    assert within > across + 0.5
    assert np.array_equal(vec, cooccurrence_embeddings(seqs, 25, dim=8, seed=0))


def test_cache_round_trip(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put_many(["x", "y"], np.eye(2, 384, dtype=np.float32))
    again = EmbeddingCache(tmp_path)
    assert np.array_equal(again.get("y"), np.eye(2, 384, dtype=np.float32)[1])
    assert again.get("z") is None
    assert EmbeddingCache(tmp_path, model_name="other").get("x") is None


def test_minilm_text_embeddings_are_semantic_and_cached(tmp_path: Path) -> None:
    emb = TextEmbedder("cpu", cache_dir=tmp_path)
    texts = ["red lipstick, matte finish", "matte red lip colour", "stainless steel chef knife", ""]
    vec = emb.encode(texts, progress=False)
    assert vec.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vec[:3], axis=1), 1, atol=1e-4) and not vec[3].any()
    assert vec[0] @ vec[1] > vec[0] @ vec[2] + 0.2
    cached = TextEmbedder("cpu", cache_dir=tmp_path)
    out = cached.encode(texts[:3], progress=False)
    assert cached._model is None  # served from the disk cache, model never loaded
    assert np.allclose(out, vec[:3])


def test_auto_mode_choice_and_hybrid_layout(tmp_path: Path) -> None:
    cfg = EmbeddingConfig()
    assert choose_mode(1.0, 10.0, cfg) == "hybrid"
    assert choose_mode(0.1, 10.0, cfg) == "interactions"
    assert choose_mode(1.0, 0.5, cfg) == "text"
    assert choose_mode(0.1, 10.0, EmbeddingConfig(mode="text")) == "text"
    items = pd.DataFrame({"item_id": list("abcd"), "title": ["", "", "", "x"]})
    seqs = [np.array([0, 1, 2, 0, 1])] * 5
    out = build_item_embeddings(items, seqs, EmbeddingConfig(collab_dim=4, cache_dir=str(tmp_path)), progress=False)
    assert out.source == "interactions" and out.report["mode"] == "interactions"
    assert out.vectors.shape == (4, 4) and out.report["zero_vectors"] == 1
    items["title"] = ["lipstick", "lip gloss", "knife", "fork"]
    hyb = build_item_embeddings(items, seqs, EmbeddingConfig(collab_dim=4, cache_dir=str(tmp_path)), progress=False)
    assert hyb.source == "hybrid" and hyb.vectors.shape == (4, 388)
    assert np.allclose(np.linalg.norm(hyb.vectors, axis=1), 1, atol=1e-5)
    assert not hyb.vectors[3, 384:].any()  # item 3 never interacted: collaborative part is zero


def test_bf16_vectors_match_fp32_ones() -> None:
    """The cold-start function embeds in bf16 where the CPU has it (``precision="auto"``): its
    vectors must be the bulk pipeline's fp32 ones for every purpose (search, Semantic IDs)."""
    from genrec.data import SynthConfig, generate_synthetic

    texts = item_texts(generate_synthetic(SynthConfig(n_items=64, n_users=10, seed=2)).items)
    fp32 = TextEmbedder("cpu").encode(texts, progress=False)
    fast = TextEmbedder("cpu", precision="auto")
    fast.bf16 = True  # the same numbers whether this CPU runs bf16 natively or emulates it
    got = fast.encode(texts, progress=False)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert float((got * fp32).sum(1).min()) > 0.9999


def test_batches_encoded_at_once_give_the_vectors_of_one_at_a_time() -> None:
    """cold-start-embedding encodes a delivered batch's texts a batch per CPU on threads of their
    own: the vectors must be the serial ones, bf16 included (autocast is per thread)."""
    from genrec.data import SynthConfig, generate_synthetic

    texts = item_texts(generate_synthetic(SynthConfig(n_items=40, n_users=10, seed=3)).items)
    for bf16 in (False, True):
        serial, parallel = (TextEmbedder("cpu", batch_size=8, precision="auto", workers=w) for w in (1, 3))
        serial.bf16 = parallel.bf16 = bf16
        threads: set[int] = set()
        encode_batch = parallel._encode_batch

        def spy(batch: list[str], encode_batch=encode_batch, threads=threads) -> np.ndarray:
            threads.add(threading.get_ident())
            return encode_batch(batch)

        parallel._encode_batch = spy
        got, want = parallel.encode(texts, progress=False), serial.encode(texts, progress=False)
        assert np.abs(got - want).max() < 1e-5
        assert len(threads) > 1 and threading.get_ident() not in threads


def test_cold_start_embeds_a_batch_per_cpu_on_one_torch_thread_each(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import torch

    from genrec.apps.cold_start import event_path_embedder

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    try:
        assert event_path_embedder().workers == len(os.sched_getaffinity(0)) and torch.get_num_threads() == 1
        assert event_path_embedder(workers=3).workers == 3  # production: its pods' requested cores
    finally:
        torch.set_num_threads(threads)
