"""Training for the SASRec baseline on the same leave-one-out split."""

from __future__ import annotations

import numpy as np

from genrec.data.splits import LeaveOneOutSplit, pad_histories
from genrec.evaluation.evaluate import evaluate_recommender
from genrec.model.sasrec import SASRec
from genrec.training.config import TrainConfig
from genrec.training.generative import TrainingExamples, eval_subset, setup_torch
from genrec.training.loop import FitResult, fit


def sasrec_training_pairs(train: list[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per user: input ``s[:-1]`` and shifted target ``s[1:]`` (last ``max_len``, left-padded)."""
    keep = [s for s in train if len(s) >= 2]
    return pad_histories([s[:-1] for s in keep], max_len), pad_histories([s[1:] for s in keep], max_len)


def train_sasrec(
    split: LeaveOneOutSplit, cfg: TrainConfig | None = None, progress: bool = True, checkpoint_dir: str | None = None
) -> tuple[SASRec, FitResult]:
    cfg = cfg or TrainConfig()
    device = setup_torch(cfg)
    model = SASRec(split.n_items, cfg.sasrec).to(device)
    seq_in, seq_out = sasrec_training_pairs(split.train, cfg.max_history)
    ocfg = cfg.sasrec_optim
    # Its batch_size counts sequences: as many targets a step on the mean.
    per_sequence = (seq_out >= 0).sum() / max(len(seq_out), 1)
    examples = TrainingExamples(seq_in, seq_out, np.zeros(len(seq_in), dtype=np.int64),
                                max(1, round(ocfg.batch_size * per_sequence)), ocfg.batches)
    sub = eval_subset(len(split.user_ids), ocfg.eval_users, cfg.seed)
    val_hist = pad_histories([split.valid_histories[i] for i in sub], cfg.max_history)
    val_tgt = split.valid_targets[sub]

    def validate() -> dict[str, float]:
        return evaluate_recommender(
            lambda h, u: model(h, top_k=10), val_hist, val_tgt, batch_size=ocfg.eval_batch_size, device=device
        )

    result = fit(
        model, examples.batches(cfg.seed, device), examples.steps_per_epoch(),
        lambda m, b: m.loss(b[0], b[1]), validate, ocfg, device, checkpoint_dir=checkpoint_dir,
        metrics_path=cfg.metrics_path, name="sasrec", progress=progress,
    )
    return model.eval(), result
