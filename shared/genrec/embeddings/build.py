"""Pick and build the item vectors that the Semantic-ID tokenizer quantises.

``mode="auto"`` chooses:
* ``text`` when (almost) every item has text but there are too few interactions,
* ``interactions`` when most items have no text,
* ``hybrid`` otherwise: text and collaborative vectors, each L2-normalised, weighted,
  concatenated and re-normalised. Items missing one part simply have zeros there.
The choice and coverage numbers are returned in ``ItemEmbeddings.report``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from genrec.embeddings.collab import cooccurrence_embeddings
from genrec.embeddings.text import TextEmbedder, item_texts

Mode = Literal["auto", "text", "interactions", "hybrid"]


class EmbeddingConfig(BaseModel):
    mode: Mode = "auto"
    collab_dim: int = 64
    collab_window: int = 3
    text_weight: float = 0.5  # share of the hybrid vector's squared norm given to text
    min_text_coverage: float = 0.5
    min_interactions_per_item: float = 2.0
    batch_size: int = 128
    device: str = "cpu"
    cache_dir: str | None = None


@dataclass
class ItemEmbeddings:
    vectors: np.ndarray  # float32 [n_items, dim]
    source: str
    report: dict[str, float | str] = field(default_factory=dict)
    # hybrid only: a ridge map from an item's unit text vector to its unit collaborative one, so
    # that an item nobody has interacted with yet gets a collaborative part predicted from its text
    collab_from_text: np.ndarray | None = None


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def choose_mode(text_coverage: float, interactions_per_item: float, cfg: EmbeddingConfig) -> str:
    if cfg.mode != "auto":
        return cfg.mode
    if text_coverage < cfg.min_text_coverage:
        return "interactions"
    if interactions_per_item < cfg.min_interactions_per_item:
        return "text"
    return "hybrid"


def build_item_embeddings(
    items: pd.DataFrame,
    train_sequences: list[np.ndarray],
    cfg: EmbeddingConfig | None = None,
    progress: bool = True,
) -> ItemEmbeddings:
    """Vectors for every row of ``items`` (row i = dense item index i).

    ``train_sequences`` must hold training interactions only (dense indices), never
    validation/test targets, or the collaborative part would leak the answers.
    """
    cfg = cfg or EmbeddingConfig()
    n = len(items)
    texts = item_texts(items)
    text_coverage = float(np.mean([bool(t) for t in texts])) if n else 0.0
    n_inter = sum(len(s) for s in train_sequences)
    mode = choose_mode(text_coverage, n_inter / max(n, 1), cfg)
    report: dict[str, float | str] = {
        "mode": mode,
        "requested_mode": cfg.mode,
        "text_coverage": text_coverage,
        "interactions_per_item": n_inter / max(n, 1),
    }
    parts: list[np.ndarray] = []
    weights: list[float] = []
    if mode in ("text", "hybrid"):
        embedder = TextEmbedder(cfg.device, cfg.batch_size, Path(cfg.cache_dir) if cfg.cache_dir else None)
        parts.append(embedder.encode(texts, progress=progress))
        weights.append(cfg.text_weight if mode == "hybrid" else 1.0)
    if mode in ("interactions", "hybrid"):
        collab = cooccurrence_embeddings(train_sequences, n, cfg.collab_dim, cfg.collab_window)
        report["collab_coverage"] = float(np.mean(np.linalg.norm(collab, axis=1) > 0)) if n else 0.0
        parts.append(collab)
        weights.append(1.0 - cfg.text_weight if mode == "hybrid" else 1.0)
    units = [_normalise(p) for p in parts]
    vec = _combine(units, weights)
    report["dim"] = int(vec.shape[1])
    report["zero_vectors"] = int((np.linalg.norm(vec, axis=1) == 0).sum())
    imputer = text_to_collab(*units) if mode == "hybrid" else None
    return ItemEmbeddings(vectors=vec, source=mode, report=report, collab_from_text=imputer)


def text_to_collab(text: np.ndarray, collab: np.ndarray, ridge: float = 1.0) -> np.ndarray | None:
    """Ridge regression ``[text_dim, collab_dim]`` from unit text vectors to unit collaborative ones,
    fitted on the items that have both (None when none has)."""
    both = (np.linalg.norm(text, axis=1) > 0) & (np.linalg.norm(collab, axis=1) > 0)
    x, y = text[both].astype(np.float64), collab[both].astype(np.float64)
    if not len(x):
        return None
    return np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y).astype(np.float32)


def hybrid_from_text(text: np.ndarray, collab_from_text: np.ndarray | None, text_weight: float,
                     collab_dim: int) -> np.ndarray:
    """Hybrid vectors for items known by their text alone: the text part as in training, and the
    collaborative part predicted from it (zeros without a map)."""
    text = _normalise(np.asarray(text, dtype=np.float32))
    collab = (_normalise(text @ collab_from_text) if collab_from_text is not None
              else np.zeros((len(text), collab_dim), np.float32))
    return _combine([text, collab], [text_weight, 1.0 - text_weight])


def _combine(units: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Unit parts weighted by their share of the squared norm, concatenated and re-normalised."""
    vec = np.concatenate([u * np.sqrt(w) for u, w in zip(units, weights, strict=True)], axis=1)
    return _normalise(vec.astype(np.float32))
