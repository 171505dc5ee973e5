"""The promotion gate: candidate and production evaluated on the SAME split, then compared.

Both models run through one function, so beam width, history length rules and the user
subset are identical. The production model may not know every item of the new split: its
histories simply skip unknown items (as serving does) and a test target it cannot produce
counts as a miss — exactly the cost of serving it on today's data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from genrec.data.splits import PAD_ITEM, LeaveOneOutSplit, pad_histories
from genrec.evaluation.evaluate import evaluate_recommender
from genrec.model.generative import user_bucket
from genrec.training.bundle import TrainedBundle
from genrec.training.generative import eval_subset

MISSING_TARGET = -2  # never produced by a recommender (which pads with -1): always a miss


@dataclass(frozen=True)
class GateConfig:
    metric: str = "ndcg@10"
    min_relative_gain: float = 0.01  # candidate >= production * (1 + this)
    min_absolute_gain: float = 0.0  # and candidate >= production + this
    min_metric: float = 0.0  # a first model (no production yet) must reach at least this
    users_limit: int | None = None  # evaluate a fixed random subset of users (speed)
    beam_width: int | None = None  # default: the candidate's test_beam_width for both; unset: each at its served width
    top_k: int = 10
    seed: int = 0


@dataclass(frozen=True)
class GateDecision:
    publish: bool
    reason: str
    metric: str
    candidate: float
    production: float | None
    relative_gain: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def held_out_examples(split: LeaveOneOutSplit, bundle: TrainedBundle,
                      rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded test histories and targets of ``rows`` in the bundle's own item index."""
    to_bundle = bundle.item_index.indices(split.item_index.ids)  # split index -> bundle index (PAD: unknown)
    histories = []
    for r in rows:
        h = to_bundle[split.sequences[r][:-1]]
        histories.append(h[h != PAD_ITEM])
    targets = to_bundle[np.asarray([split.sequences[r][-1] for r in rows], dtype=np.int64)]
    targets = np.where(targets == PAD_ITEM, MISSING_TARGET, targets)
    return pad_histories(histories, bundle.config.max_history), targets


@torch.no_grad()
def evaluate_on_split(bundle: TrainedBundle, split: LeaveOneOutSplit, cfg: GateConfig | None = None,
                      beam_width: int | None = None) -> dict[str, float]:
    """Test Recall/NDCG@{5,10} of ``bundle`` on ``split`` (full-catalogue constrained decoding)."""
    cfg = cfg or GateConfig()
    rows = eval_subset(len(split.user_ids), cfg.users_limit, cfg.seed)
    hist, targets = held_out_examples(split, bundle, rows)
    buckets = bundle.config.model.user_buckets
    users = np.asarray([user_bucket(split.user_ids[r], buckets) for r in rows], dtype=np.int64)
    rec = bundle.recommender(top_k=max(cfg.top_k, 10), beam_width=beam_width or cfg.beam_width)
    out = evaluate_recommender(lambda h, u: rec(h, u), hist, targets, users,
                               batch_size=max(16, bundle.config.optim.eval_batch_size // 2))
    out["unknown_targets"] = int((targets == MISSING_TARGET).sum())
    return out


def decide(candidate: dict[str, float], production: dict[str, float] | None, cfg: GateConfig) -> GateDecision:
    c = float(candidate.get(cfg.metric, 0.0))
    if production is None:
        ok = c >= cfg.min_metric
        reason = "no production model" + ("" if ok else f": {cfg.metric} {c:.4f} < floor {cfg.min_metric:.4f}")
        return GateDecision(ok, reason, cfg.metric, c, None, None)
    p = float(production.get(cfg.metric, 0.0))
    needed = max(p * (1.0 + cfg.min_relative_gain), p + cfg.min_absolute_gain)
    gain = (c - p) / p if p > 0 else None
    ok = c > p and c >= needed and c >= cfg.min_metric
    reason = (f"{cfg.metric} {c:.4f} vs production {p:.4f} (needs >= {needed:.4f})"
              + ("" if ok else ": not better by the configured margin"))
    return GateDecision(ok, reason, cfg.metric, c, p, gain)
