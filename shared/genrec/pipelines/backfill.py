"""Embedding backfill: embed the whole catalogue, refresh the stores, optionally refit the tokenizer.

1. Text embeddings (all-MiniLM-L6-v2) for every catalogue item; an on-disk cache keyed by
   the item text means only new or edited items are encoded again.
2. PostgreSQL ``items.embedding`` and the Milvus collection get the vectors (with the
   production model's Semantic IDs, so the stores agree with what is served).
3. ``retrain_tokenizer``: a new Semantic-ID tokenizer is fitted on the vectors the trainer
   would use, saved, and its codes compared with the production artifact's: the report
   says how many items would change codes (a retrained model re-learns all of them).
   Without it, items the production model does not know get codes from its tokenizer
   (what serving's cold start assigns) when its tokenizer reads text vectors.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genrec.config import Settings, get_settings
from genrec.embeddings.build import build_item_embeddings
from genrec.embeddings.text import TextEmbedder, item_texts
from genrec.pipelines.featureset import FeatureSet
from genrec.semantic.tokenizer import SemanticIdTokenizer
from genrec.training.bundle import TrainedBundle
from genrec.training.config import TrainConfig


@dataclass
class CodeChanges:
    compared: int  # items in both artifacts
    changed: int  # full code tuple differs
    prefix_changed: int  # the semantic part (without the disambiguation level) differs
    new: int  # only in the new one
    removed: int  # only in the previous one

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def code_changes(old_ids: list[str] | np.ndarray, old_codes: np.ndarray,
                 new_ids: list[str] | np.ndarray, new_codes: np.ndarray) -> CodeChanges:
    """Compare two code tables by item id (dense indices differ between artifacts)."""
    old = {str(i): r for r, i in enumerate(old_ids)}
    new = {str(i): r for r, i in enumerate(new_ids)}
    both = [i for i in new if i in old]
    a = np.asarray(old_codes)[[old[i] for i in both]] if both else np.zeros((0, 1), np.int64)
    b = np.asarray(new_codes)[[new[i] for i in both]] if both else np.zeros((0, 1), np.int64)
    if a.shape[1:] != b.shape[1:]:  # a different code layout: every item moved
        changed = prefix = len(both)
    else:
        changed = int((a != b).any(axis=1).sum())
        prefix = int((a[:, :-1] != b[:, :-1]).any(axis=1).sum()) if a.shape[1] > 1 else changed
    return CodeChanges(len(both), changed, prefix, len(new) - len(both), len(old) - len(both))


def bundle_code_changes(previous: TrainedBundle, current: TrainedBundle) -> CodeChanges:
    return code_changes(previous.item_index.ids, previous.code_table.item_codes.cpu().numpy(),
                        current.item_index.ids, current.code_table.item_codes.cpu().numpy())


@dataclass
class BackfillResult:
    items: int
    text_coverage: float
    seconds: float
    postgres_updated: int = 0
    milvus_upserted: int = 0
    tokenizer: str = "none"  # retrained | production | none
    tokenizer_dir: str | None = None
    code_changes: dict[str, int] | None = None
    cold_start_assigned: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _production_codes(prod: TrainedBundle, ids: np.ndarray, text_vecs: np.ndarray,
                      result: BackfillResult) -> dict[str, list[int]]:
    """Codes per item id: the artifact's own, plus cold-start codes for items it lacks."""
    table = prod.code_table.item_codes.cpu().numpy()
    codes = {str(i): table[r].tolist() for r, i in enumerate(prod.item_index.ids)}
    missing = [r for r, i in enumerate(ids) if str(i) not in codes]
    if missing and prod.embedding_source in ("text", "hybrid"):
        x = text_vecs[missing]
        if prod.embedding_source == "hybrid":  # the collaborative half is unknown for new items
            w = prod.config.embeddings.text_weight
            pad = np.zeros((len(x), (prod.tokenizer.input_dim or x.shape[1]) - x.shape[1]), np.float32)
            x = np.concatenate([x * np.sqrt(w), pad], axis=1)
            n = np.linalg.norm(x, axis=1, keepdims=True)
            x = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
        assigned = prod.tokenizer.assign(x, existing=table)
        for r, row in zip(missing, assigned, strict=True):
            codes[str(ids[r])] = row.tolist()
        result.cold_start_assigned = len(missing)
    elif missing:
        result.notes.append(f"{len(missing)} items unknown to production; its tokenizer needs interaction vectors")
    return codes


def write_stores(s: Settings, fs: FeatureSet, vectors: np.ndarray, codes: dict[str, list[int]] | None,
                 result: BackfillResult) -> None:
    """Embeddings (and codes) into PostgreSQL, vectors into Milvus."""
    from genrec.stores.catalog_repo import CatalogRepo
    from genrec.stores.milvus import ItemVector, ItemVectorIndex, coarse_levels
    from genrec.stores.postgres import make_pool

    items = fs.items
    ids = [str(i) for i in items["item_id"]]
    with_text = np.linalg.norm(vectors, axis=1) > 0  # zero vectors (no text) carry no meaning
    pool = make_pool(s)
    try:
        repo = CatalogRepo(pool)
        result.postgres_updated = repo.set_embeddings({i: v for i, v, ok in zip(ids, vectors, with_text, strict=True)
                                                       if ok})
        if codes:
            repo.set_semantic_ids({i: codes[i] for i in ids if i in codes})
    finally:
        pool.close()
    cats = items["categories"].fillna("") if "categories" in items else [""] * len(ids)
    statuses = items["status"].fillna("active") if "status" in items else ["active"] * len(ids)
    rows = []
    for i, v, ok, cat, status in zip(ids, vectors, with_text, cats, statuses, strict=True):
        if not ok:
            continue
        rows.append(ItemVector(i, v, coarse_levels((codes or {}).get(i)), str(cat), str(status)))
    index = ItemVectorIndex(s)
    try:
        index.ensure_collection()
        result.milvus_upserted = index.upsert(rows)
    finally:
        index.close()


def run_backfill(fs: FeatureSet, s: Settings | None = None, *, production: TrainedBundle | None = None,
                 retrain_tokenizer: bool = False, train_cfg: TrainConfig | None = None,
                 out_dir: Path | None = None, write: bool = True, cache_dir: str | Path | None = None,
                 progress: bool = False) -> BackfillResult:
    s = s or get_settings()
    t0 = time.perf_counter()
    cfg = train_cfg or TrainConfig()
    cache = cache_dir or cfg.embeddings.cache_dir or Path(s.model.artifacts_dir) / "embedding-cache"
    texts = item_texts(fs.catalog().items)
    vectors = TextEmbedder(cfg.embeddings.device, cfg.embeddings.batch_size, cache).encode(texts, progress=progress)
    ids = fs.items["item_id"].to_numpy(dtype=object)
    result = BackfillResult(items=len(ids), text_coverage=float(np.mean([bool(t) for t in texts])) if texts else 0.0,
                            seconds=0.0)
    codes = None
    if retrain_tokenizer:
        emb_cfg = cfg.embeddings.model_copy(update={"cache_dir": str(cache)})
        emb = build_item_embeddings(fs.catalog().items, fs.split().train, emb_cfg, progress=progress)
        tok = SemanticIdTokenizer(cfg.tokenizer)
        new_codes = tok.fit(emb.vectors, progress=progress)
        result.tokenizer = "retrained"
        if out_dir is not None:
            tok.save(out_dir)
            result.tokenizer_dir = str(out_dir)
        if production is not None:
            result.code_changes = code_changes(production.item_index.ids,
                                               production.code_table.item_codes.cpu().numpy(), ids,
                                               new_codes).as_dict()
        # Stores keep the codes of the model that is actually served until a retrain ships.
    if production is not None:
        codes = _production_codes(production, ids, vectors, result)
        result.tokenizer = result.tokenizer if retrain_tokenizer else "production"
    if write:
        write_stores(s, fs, vectors, codes, result)
    result.seconds = round(time.perf_counter() - t0, 1)
    return result
