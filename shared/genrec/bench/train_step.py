"""`genrec bench train-step`: what one training step of a quality budget's model costs, and where it goes.

The step is the trainer's own (``genrec.training.loop.train_step`` with ``make_optimizer`` and
``genrec.training.generative.generative_loss``) on the dataset's real training examples and the
budget's model, with a random code table (a step's cost does not depend on the codes' values, so
no tokenizer is trained). Per batch size: milliseconds per step, examples per second and the
epoch's seconds. On CUDA a profile of ten steps adds the kernels launched per step and the
host's time launching them, against the GPU's busy time: a small model's step is bound by its
launches, not by the GPU's arithmetic.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.bench.quality import budget_config
from genrec.bench.report import machine_info, write_report
from genrec.data.loaders import load_dataset
from genrec.data.splits import leave_one_out
from genrec.embeddings.text import DIM as TEXT_DIM
from genrec.model.generative import TigerModel
from genrec.semantic.tokenizer import SemanticIdTokenizer
from genrec.training.generative import TrainingExamples, generative_loss, new_model, training_examples
from genrec.training.loop import make_optimizer, train_step

BATCHES = (256, 1024, 4096)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_train_step_bench(
    dataset_path: str | Path, out_dir: str | Path = "bench/results", budget: str = "gpu",
    batches: list[int] | None = None, seconds: float = 3.0, device: str = "auto",
    log: Callable[[str], None] = print, config_path: str | Path | None = None, label: str | None = None,
) -> dict[str, Any]:
    """``config_path``: a TOML/YAML file overriding the budget, as ``genrec bench quality --config``
    (e.g. another encoder); ``label`` names its result files apart from the budget's own."""
    cfg = budget_config(budget, config_path)
    dev = torch.device(device) if device != "auto" else cfg.torch_device()
    dataset = load_dataset(dataset_path)
    split = leave_one_out(dataset, cfg.max_history)
    level_sizes = SemanticIdTokenizer(cfg.tokenizer).level_sizes
    gen = torch.Generator().manual_seed(0)
    item_codes = torch.stack([torch.randint(0, s, (split.n_items,), generator=gen) for s in level_sizes], 1).to(dev)
    loss_fn = generative_loss(item_codes, cfg.model.user_dropout)
    rows, examples_per_epoch = [], 0
    for batch_size in batches or list(BATCHES):
        torch.manual_seed(0)
        # content vectors as wide as the text model's (training attaches the items' own)
        model = new_model(cfg, level_sizes, split.n_items,
                          lambda: torch.randn(split.n_items, TEXT_DIM, generator=gen)).to(dev).train()
        opt = make_optimizer(model, cfg.optim, dev)

        cfg.optim.batch_size = batch_size
        examples = training_examples(split, cfg)
        examples_per_epoch = examples.n_targets  # the same items at every batch size

        def step(model: TigerModel = model, opt: torch.optim.Optimizer = opt, examples: TrainingExamples = examples,
                 rows: Iterator[np.ndarray] = itertools.cycle(examples.epoch_batches(0, 0))) -> torch.Tensor:
            batch = examples.batch(next(rows), dev)  # the training's batches: their mix of history lengths
            return train_step(model, opt, loss_fn, batch, cfg.optim.grad_clip, dev)

        per_step = _seconds_per_call(step, seconds, dev)
        row = {"batch": batch_size, "ms_per_step": round(per_step * 1e3, 2),
               "examples_per_s": round(examples.n_targets / examples.steps_per_epoch() / per_step),
               "epoch_s": round(examples.steps_per_epoch() * per_step, 1)}
        if dev.type == "cuda":
            row.update(_launch_profile(step, dev))
        rows.append(row)
        launches = f", {row['kernels_per_step']} kernels/step" if "kernels_per_step" in row else ""
        log(f"batch {batch_size}: {row['ms_per_step']} ms/step, {row['examples_per_s']:,} examples/s, "
            f"epoch {row['epoch_s']} s{launches}")
    results = {
        "dataset": dataset.name, "budget": budget, "device": str(dev), "machine": machine_info(),
        "config_path": str(config_path) if config_path else None, "label": label,
        "examples_per_epoch": examples_per_epoch, "items": split.n_items,
        "level_sizes": level_sizes, "model": cfg.model.model_dump(mode="json"), "rows": rows,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_report(results, Path(out_dir) / result_stem(results), markdown_report)
    return results


def _seconds_per_call(call: Callable[[], torch.Tensor], seconds: float, dev: torch.device) -> float:
    """Mean seconds of ``call`` over ``seconds`` (at least 3 calls), after 5 warm-up calls."""
    for _ in range(5):  # kernels' first launches, the allocator
        call()
    _sync(dev)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or n < 3:
        call()
        n += 1
    _sync(dev)
    return (time.perf_counter() - started) / n


def _launch_profile(step: Callable[[], torch.Tensor], dev: torch.device, steps: int = 10) -> dict[str, Any]:
    """Kernels per step, the host's time in kernel launches and the GPU's busy time, per step."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        _sync(dev)
    events = prof.key_averages()
    kernels = sum(e.count for e in events if e.device_type == DeviceType.CUDA)
    launch_us = sum(e.self_cpu_time_total for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernelEx"))
    gpu_us = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA)
    return {"kernels_per_step": round(kernels / steps), "launch_ms_per_step": round(launch_us / steps / 1e3, 2),
            "gpu_busy_ms_per_step": round(gpu_us / steps / 1e3, 2)}


def result_stem(r: dict[str, Any]) -> str:
    label = f"-{r['label']}" if r.get("label") else ""
    return f"train-step-{r['dataset']}-{r['budget']}-{r['device'].split(':')[0]}{label}"


def markdown_report(r: dict[str, Any]) -> str:
    m = r["model"]
    lines = [
        f"# One training step: `{r['budget']}` budget on {r['dataset']} ({r['device']})",
        "",
        f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, GPU: {r['machine']['gpu'] or 'none'}; "
        f"torch {r['machine']['torch']}. Model: d_model {m['d_model']}, "
        f"{m['encoder_layers']}+{m['decoder_layers']} layers, {m.get('encoder', 'bidirectional')} encoder, "
        f"codes {r['level_sizes']}, {r['items']:,} items; {r['examples_per_epoch']:,} training examples (next "
        f"items) an epoch. Command: `genrec bench train-step`"
        + (f" with `--config {r['config_path']}`." if r.get("config_path") else "."),
        "",
        "| batch | ms / step | examples / s | epoch s | kernels / step | host launch ms / step | GPU busy ms / step |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['batch']} | {row['ms_per_step']} | {row['examples_per_s']:,} | {row['epoch_s']} | "
                     f"{row.get('kernels_per_step', '')} | {row.get('launch_ms_per_step', '')} | "
                     f"{row.get('gpu_busy_ms_per_step', '')} |")
    return "\n".join(lines) + "\n"
