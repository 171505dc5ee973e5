"""Cold start: what only Semantic IDs can do, measured in the quality benchmark's harness.

A share of the catalogue (items with text, drawn by the seed) and every interaction with them are
hidden from training. The models are trained on the rest; then the hidden items join the
catalogue as new items do in production:

- genrec gives them Semantic IDs from their content at once (``TrainedBundle.add_items``: the
  trained tokenizer, the path the cold-start function takes) and can generate them. Beam search
  scores a new item like an average trained item of its code region, times ``fresh_item_weight``.
  That weight is a dial between new items found and trained items displaced: the benchmark
  measures both at several weights (0: the decoder alone) besides the configured one;
- SASRec and MostPopular have no row for an item they never saw (they cannot score it);
- content nearest neighbours (``ContentNeighbours``) place them by their text, as genrec's codes do.

Scored on the full catalogue's leave-one-out test events: those whose target is a hidden item
("cold"), and all of them ("all", the hidden items present). A history keeps its hidden items for
the models that can represent them (genrec, content); the others read the history without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.data.schema import ITEM_ID, Catalog, InteractionDataset
from genrec.data.splits import PAD_ITEM, ItemIndex, LeaveOneOutSplit, leave_one_out, pad_histories
from genrec.embeddings.text import TextEmbedder, item_texts
from genrec.evaluation.evaluate import evaluate_recommender
from genrec.model.content_knn import ContentNeighbours
from genrec.model.sasrec import MostPopular
from genrec.training.config import TrainConfig
from genrec.training.generative import evaluate_bundle_rows, train_generative, user_buckets
from genrec.training.sasrec import train_sasrec

COLD_SHARE = 0.1
GENREC, SASREC, CONTENT, MOSTPOP = ("genrec (generative retrieval)", "SASRec (full CE)", "content neighbours",
                                    "MostPopular")
GENREC_DECODER_ONLY = "genrec (decoder only)"  # new items scored by the decoder alone
FRESH_ITEM_WEIGHTS = (0.0, 0.5, 1.0, 2.0)  # measured besides the configured one


def hide_items(dataset: InteractionDataset, share: float, seed: int) -> tuple[InteractionDataset, list[str]]:
    """The dataset without a random ``share`` of its items that have text, and without every
    interaction with them; and the hidden items' ids."""
    texts = item_texts(dataset.items)
    with_text = np.flatnonzero([bool(t) for t in texts])
    k = min(len(with_text), round(share * dataset.n_items))
    hidden = dataset.items[ITEM_ID].to_numpy()[np.random.default_rng(seed).choice(with_text, k, replace=False)]
    gone = set(map(str, hidden))
    visible = InteractionDataset(
        Catalog(dataset.items[~dataset.items[ITEM_ID].isin(gone)]),
        dataset.interactions[~dataset.interactions[ITEM_ID].isin(gone)], name=dataset.name,
        has_timestamps=dataset.has_timestamps, meta=dataset.meta)
    return visible, sorted(gone)


def _rows(full: LeaveOneOutSplit, index: ItemIndex, max_history: int, *, drop_unknown: bool
          ) -> tuple[np.ndarray, np.ndarray]:
    """The full split's test histories and targets in another model's item ``index`` (an item it
    does not know is PAD: a target it can never hit; in a history, dropped with ``drop_unknown``)."""
    to_index = index.indices(full.item_index.ids)
    histories = [to_index[h] for h in full.test_histories]
    if drop_unknown:
        histories = [h[h != PAD_ITEM] for h in histories]
    return pad_histories(histories, max_history), to_index[full.test_targets]


def _scores(evaluate: Any, hist: np.ndarray, targets: np.ndarray, cold: np.ndarray) -> dict[str, Any]:
    return {"cold": evaluate(hist[cold], targets[cold]), "all": evaluate(hist, targets)}


def run_cold_start(dataset: InteractionDataset, cfg: TrainConfig, share: float = COLD_SHARE,
                   device: torch.device | str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Train on the dataset without ``share`` of its items, then score every model on the test
    events whose target is one of them, and on all test events."""
    visible, hidden = hide_items(dataset, share, cfg.seed)
    full = leave_one_out(dataset, cfg.max_history)
    cold = np.isin(full.item_index.ids[full.test_targets], hidden)
    out: dict[str, Any] = {"share": share, "hidden_items": len(hidden), "cold_test_events": int(cold.sum()),
                           "test_events": len(cold), "models": {}}
    if not hidden or not cold.any():
        out["note"] = "no item with text to hide, or no test event targets one: nothing to measure"
        return out
    split = leave_one_out(visible, cfg.max_history)
    run = cfg.model_copy(deep=True)
    run.metrics_path = None
    if cfg.checkpoint_dir:
        run.checkpoint_dir = f"{cfg.checkpoint_dir}-cold"
    batch = cfg.optim.eval_batch_size

    embedder = TextEmbedder(cfg.embeddings.device, cfg.embeddings.batch_size,
                            Path(cfg.embeddings.cache_dir) if cfg.embeddings.cache_dir else None)
    text = embedder.encode(item_texts(dataset.items), progress=False)  # row = the full split's item index
    hist, targets = _rows(full, full.item_index, cfg.max_history, drop_unknown=False)
    content = ContentNeighbours(text).to(device)
    out["models"][CONTENT] = _scores(
        lambda h, t: evaluate_recommender(lambda x, _u: content(x, top_k=10), h, t, batch_size=batch, device=device),
        hist, targets, cold)

    bundle = train_generative(visible, run, split=split, progress=progress, evaluate_test=False)
    if bundle.embedding_source == "interactions":
        out["models"][GENREC] = {"note": "its tokenizer reads interaction vectors only: content cannot place an item"}
    else:
        # As the cold-start function does: content → tokenizer input → the next free code tuple.
        new = np.asarray(hidden, dtype=object)
        bundle.add_items(list(new), embeddings=bundle.tokenizer_input(text[full.item_index.indices(new)]))
        hist, targets = _rows(full, bundle.item_index, cfg.max_history, drop_unknown=False)
        users = user_buckets(full, cfg.model.user_buckets)
        generator = bundle.model.generator
        configured = generator.config
        sweep = {}
        for weight in sorted({*FRESH_ITEM_WEIGHTS, configured.fresh_item_weight}):
            generator.config = configured.model_copy(update={"fresh_item_weight": weight})
            sweep[weight] = {
                "cold": evaluate_bundle_rows(bundle, hist[cold], targets[cold], users[cold], device=device).served,
                "all": evaluate_bundle_rows(bundle, hist, targets, users, device=device).served,
                "fresh_item_weight": weight,
            }
        generator.config = configured
        out["fresh_item_weights"] = list(sweep.values())
        out["models"][GENREC] = {**sweep[configured.fresh_item_weight],
                                 "train_seconds": round(bundle.report["seconds"]["model"], 1)}
        out["models"][GENREC_DECODER_ONLY] = sweep[0.0]

    sas, _fit = train_sasrec(split, run, progress=progress,
                             checkpoint_dir=f"{run.checkpoint_dir}-sasrec" if run.checkpoint_dir else None)
    sas = sas.to(device)
    pop = MostPopular(torch.as_tensor(split.item_popularity())).to(device)
    hist, targets = _rows(full, split.item_index, cfg.max_history, drop_unknown=True)
    for name, model in ((SASREC, sas), (MOSTPOP, pop)):
        out["models"][name] = _scores(
            lambda h, t, m=model: evaluate_recommender(lambda x, _u: m(x, top_k=10), h, t, batch_size=batch,
                                                       device=device),
            hist, targets, cold)
    return out


def markdown_section(cold: dict[str, Any]) -> list[str]:
    """The report's cold-start table."""
    lines = ["", f"## Cold start: {cold['share']:.0%} of the items hidden from training",
             "",
             f"{cold['hidden_items']} items (with text) and every interaction with them were left out of training; "
             f"{cold['cold_test_events']} of {cold['test_events']} test events target one of them (\"cold\"). "
             "genrec gives them Semantic IDs from their content after training (the cold-start function's path); "
             "SASRec and MostPopular cannot score an item they never saw; content neighbours rank by text alone. "
             "\"all\": every test event, the hidden items present."]
    if cold.get("from_run"):
        lines.append(f"(From the run started {cold['from_run']}: not re-run with the models above.)")
    if cold.get("note"):
        return [*lines, "", cold["note"] + "."]
    lines += ["", "| model | cold R@10 | cold N@10 | all R@10 | all N@10 |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in cold["models"].items():
        if "note" in r:
            lines.append(f"| {name} | - | - | - | - |")
            continue
        lines.append(f"| {name} | {r['cold']['recall@10']:.4f} | {r['cold']['ndcg@10']:.4f} | "
                     f"{r['all']['recall@10']:.4f} | {r['all']['ndcg@10']:.4f} |")
    lines += [f"\n{name}: {r['note']}." for name, r in cold["models"].items() if "note" in r]
    if cold.get("fresh_item_weights"):
        lines += ["", "genrec's new-item weight (`model.fresh_item_weight`: a new item scores as its trained "
                      "siblings' mean probability times it) trades new items found against trained items displaced:",
                  "", "| weight | cold R@10 | cold N@10 | all R@10 | all N@10 |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['fresh_item_weight']:g} | {r['cold']['recall@10']:.4f} | {r['cold']['ndcg@10']:.4f} | "
                  f"{r['all']['recall@10']:.4f} | {r['all']['ndcg@10']:.4f} |" for r in cold["fresh_item_weights"]]
    return lines
