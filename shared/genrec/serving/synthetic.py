"""Synthetic serving artifacts: random unique codes + an untrained model of a given size.

For catalogue-scaling benchmarks (10k to 1M items without training on 1M items) and for
fast serving tests. The files follow ``TrainedBundle.save``'s layout minus the tokenizer,
which serving does not read. Latency depends on the architecture and table size, not on
the weights' values, so an untrained model of the production size times like a trained one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.config import MAX_HISTORY
from genrec.model.generative import GenerativeConfig, TigerModel

PRODUCTION_LEVELS = (256, 256, 256, 256)  # TokenizerConfig defaults: 3 x 256 codebooks + 256 disambiguation


def production_model(top_k: int = 50) -> dict[str, Any]:
    """What the benchmarks' synthetic artifacts serve (``make_artifact`` without ``model``), for their reports."""
    model = TigerModel(GenerativeConfig(), list(PRODUCTION_LEVELS))
    return {"kind": "untrained TigerModel, production size (GenerativeConfig defaults)"
                    + (", re-ranking head on" if model.reranks else ""),
            "level_sizes": list(PRODUCTION_LEVELS), "top_k": top_k, "beam_width": model.beam_width_for(top_k)}


def describe_model(model: dict[str, Any]) -> str:
    """``production_model``'s dict as a report's sentence."""
    return f"{model['kind']}, codes {model['level_sizes']}, top-{model['top_k']}, beam {model['beam_width']}"


def random_unique_codes(n: int, level_sizes: tuple[int, ...] | list[int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sizes = np.asarray(level_sizes, dtype=np.int64)
    if n > int(np.prod(sizes.astype(float))):
        raise ValueError(f"{n} items do not fit a code space of {level_sizes}")
    base = int(sizes.max())
    weights = base ** np.arange(len(sizes) - 1, -1, -1, dtype=np.int64)
    codes = np.empty((0, len(sizes)), dtype=np.int64)
    while len(codes) < n:
        more = rng.integers(0, sizes, size=(int((n - len(codes)) * 1.1) + 16, len(sizes)))
        codes = np.concatenate([codes, more])
        _, first = np.unique(codes @ weights, return_index=True)
        codes = codes[np.sort(first)]
    return codes[:n]


def make_artifact(
    out: Path, n_items: int, *, level_sizes: tuple[int, ...] | list[int] = PRODUCTION_LEVELS,
    model: dict[str, Any] | None = None, max_history: int = MAX_HISTORY, seed: int = 0, note: str = "",
) -> Path:
    """Write ``manifest.json, model.pt, item_ids.json, item_codes.npy`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = GenerativeConfig.model_validate({"max_history": max_history, "dropout": 0.0, **(model or {})})
    torch.manual_seed(seed)
    tiger = TigerModel.for_catalogue(cfg, list(level_sizes), n_items).eval()  # as training builds it
    torch.save(tiger.state_dict(), out / "model.pt")
    np.save(out / "item_codes.npy", random_unique_codes(n_items, level_sizes, seed))
    (out / "item_ids.json").write_text(json.dumps([f"item-{i}" for i in range(n_items)]))
    manifest = {
        "format_version": 1,
        "kind": "genrec-generative-retrieval",
        "synthetic": True,
        "note": note,
        "seed": seed,
        "n_items": n_items,
        "level_sizes": list(level_sizes),
        "embedding_source": "synthetic",
        "config": {"max_history": max_history, "top_k": 50, "model": cfg.model_dump(mode="json")},
        "report": {},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out
