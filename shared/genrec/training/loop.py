"""A generic epoch loop: AdamW + warmup/cosine, bf16 autocast on GPU, per-epoch
validation, early stopping on NDCG@10, resumable checkpoints and JSONL metrics."""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from genrec.model.flops import flop_counter
from genrec.training.config import OptimConfig

MONITOR = "ndcg@10"
# Every how-many steps of a sitting's first epoch the FLOP counter runs (its dispatch slows a step): a
# sample of the epoch's mix of batches, of which the counted steps are a few percent of its time.
FLOP_STRIDE = 8
LossFn = Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]


@dataclass
class FitResult:
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_after_epoch: int = 0  # epochs a checkpoint already held (trained in an earlier sitting)
    stopped_by: str = "epochs"  # epochs | patience | time (OptimConfig.max_minutes)
    steps_per_epoch: int = 0
    # FLOPs of a step's forward and backward (genrec.model.flops): the mean of every FLOP_STRIDE-th step
    # of this sitting's first epoch (a step's FLOPs depend on its batch's rows); None: it trained none
    flops_per_step: int | None = None


def history_seconds(history: list[dict[str, Any]]) -> float:
    """Seconds the epochs of ``history`` took to train and validate, in every sitting."""
    return sum(h["train_seconds"] + h["eval_seconds"] for h in history)


def epochs_without_gain(scores: list[float], window: int) -> int:
    """Epochs since the running mean of the last ``window`` scores last rose to a new best (with
    ``window`` 1: since the best score, ties not counting as a gain)."""
    means = [float(np.mean(scores[max(0, i - window + 1):i + 1])) for i in range(len(scores))]
    return len(means) - 1 - int(np.argmax(means)) if means else 0


def _epochs_without_gain(history: list[dict[str, Any]], cfg: OptimConfig) -> int:
    return epochs_without_gain([h.get(f"val_{MONITOR}", 0.0) for h in history], cfg.patience_window)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lr_lambda(cfg: OptimConfig, total_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


class _Checkpoints:
    """Latest + best checkpoints in a local folder, mirrored to S3 when given an s3:// URI (the S3
    client is imported then only: training needs no `s3` extra otherwise)."""

    def __init__(self, target: str | None) -> None:
        self.uri = target if target and target.startswith("s3://") else None
        if self.uri:
            from genrec.stores.objects import download_dir

            self.dir = Path(tempfile.mkdtemp(prefix="genrec-ckpt-"))
            download_dir(self.uri, self.dir)
        else:
            self.dir = Path(target) if target else None
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, Any] | None:
        if self.dir and (self.dir / "last.pt").is_file():
            return torch.load(self.dir / "last.pt", map_location="cpu", weights_only=False)
        return None

    def save(self, state: dict[str, Any], best: bool) -> None:
        if not self.dir:
            return
        tmp = self.dir / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.dir / "last.pt")
        if best:
            shutil.copyfile(self.dir / "last.pt", self.dir / "best.pt")
        if self.uri:
            from genrec.stores.objects import upload_dir

            upload_dir(self.dir, self.uri)

    def best_model(self) -> dict[str, Any] | None:
        if self.dir and (self.dir / "best.pt").is_file():
            return torch.load(self.dir / "best.pt", map_location="cpu", weights_only=False)["model"]
        return None


def make_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW, no weight decay on biases, norms and embeddings; fused on CUDA (one kernel for the
    whole update: the unfused one was half of a GPU step's time, its launches) and on the CPU (one
    pass over each parameter instead of a dozen: a third of the unfused update's time, the same
    values to rounding)."""
    decay, no_decay = [], []
    for pname, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "emb" in pname or "bos" in pname else decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, fused=device.type in ("cuda", "cpu") or None,
    )


def train_step(
    model: nn.Module, opt: torch.optim.Optimizer, loss_fn: LossFn, batch: tuple[torch.Tensor, ...],
    grad_clip: float, device: torch.device,
) -> torch.Tensor:
    """One optimiser step (bf16 autocast on CUDA); the loss stays on the device, so that the host
    queues the next step while the GPU runs this one."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = loss_fn(model, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.detach()


def fit(
    model: nn.Module,
    batches: Callable[[int], Iterator[tuple[torch.Tensor, ...]]],
    steps_per_epoch: int,
    loss_fn: LossFn,
    validate: Callable[[], dict[str, float]],
    cfg: OptimConfig,
    device: torch.device,
    checkpoint_dir: str | None = None,
    metrics_path: str | Path | None = None,
    name: str = "model",
    progress: bool = True,
) -> FitResult:
    """Train ``model`` in place and leave it holding the best validation weights.

    ``batches(epoch)`` yields the batches of one epoch (already on ``device``); it must be
    deterministic given the epoch so a resumed run sees the same data order.
    """
    steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch or steps_per_epoch)
    epochs = max(cfg.epochs, -(-cfg.min_steps // max(steps_per_epoch, 1)))
    opt = make_optimizer(model, cfg, device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, epochs * steps_per_epoch))
    ckpt = _Checkpoints(checkpoint_dir)
    start_epoch, best, best_epoch, bad = 0, -1.0, -1, 0
    best_metrics: dict[str, float] = {}
    best_state: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []
    state = ckpt.load()
    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise RuntimeError(f"the checkpoint in {checkpoint_dir} was written by a different model; delete it or "
                               f"choose another checkpoint_dir to start over ({e})") from None
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, best, best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
        best_metrics, history = state["best_metrics"], state["history"]
        bad = _epochs_without_gain(history, cfg)
        best_state = ckpt.best_model()
        if progress:
            tqdm.write(f"[{name}] resumed after epoch {state['epoch'] + 1} (best {MONITOR}={best:.4f})")
    t0 = time.perf_counter()
    metrics_file = Path(metrics_path) if metrics_path else None
    if metrics_file:
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
    stopped_by, counted = "epochs", []  # FLOPs of the steps counted (FitResult.flops_per_step)
    for epoch in range(start_epoch, epochs):
        if bad >= cfg.patience:
            stopped_by = "patience"
            break
        if cfg.max_minutes and history_seconds(history) >= 60 * cfg.max_minutes:
            stopped_by = "time"
            break
        model.train()
        te = time.perf_counter()
        # summed on the device: reading the loss each step would make the host wait for the GPU
        total, n = torch.zeros((), device=device), 0
        bar = tqdm(total=steps_per_epoch, desc=f"[{name}] epoch {epoch + 1}/{epochs}", disable=not progress,
                   mininterval=2.0, leave=False)
        for step, batch in enumerate(batches(epoch)):
            if step >= steps_per_epoch:
                break
            count = epoch == start_epoch and step % FLOP_STRIDE == 0
            counter = flop_counter() if count else contextlib.nullcontext()
            with counter:
                loss = train_step(model, opt, loss_fn, batch, cfg.grad_clip, device)
            if count:
                counted.append(counter.get_total_flops())
            sched.step()
            total += loss.float()
            n += 1
            bar.update(1)
            if progress and step % 100 == 0:
                bar.set_postfix(loss=f"{float(total) / n:.4f}")
        bar.close()
        train_s = time.perf_counter() - te
        model.eval()
        with torch.no_grad():
            val = validate()
        score = val.get(MONITOR, 0.0)
        improved = score > best
        if improved:
            best, best_epoch, best_metrics = score, epoch, dict(val)
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        record = {
            "model": name, "epoch": epoch + 1, "loss": float(total) / max(n, 1), "lr": sched.get_last_lr()[0],
            "train_seconds": round(train_s, 2), "eval_seconds": round(time.perf_counter() - te - train_s, 2),
            **{f"val_{k}": v for k, v in val.items()}, "best": improved,
        }
        history.append(record)
        bad = _epochs_without_gain(history, cfg)
        if metrics_file:
            with metrics_file.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
        if progress:
            tqdm.write(
                f"[{name}] epoch {epoch + 1}: loss {record['loss']:.4f} val {MONITOR} {score:.4f} "
                f"R@10 {val.get('recall@10', 0):.4f} ({train_s:.0f}s train){' *' if improved else ''}"
            )
        ckpt.save(
            {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": epoch, "best": best, "best_epoch": best_epoch,
                "best_metrics": best_metrics, "history": history,
            },
            best=improved,
        )
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch + 1, best_metrics, history, time.perf_counter() - t0, resumed_after_epoch=start_epoch,
                     stopped_by=stopped_by, steps_per_epoch=steps_per_epoch,
                     flops_per_step=round(sum(counted) / len(counted)) if counted else None)
