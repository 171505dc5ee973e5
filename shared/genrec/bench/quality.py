"""Offline quality benchmark: genrec vs SASRec (full CE) vs MostPopular.

All three models see the identical leave-one-out split (histories truncated to
``max_history``, 20 for Amazon) and are scored by full ranking over the catalogue.
Writes ``quality-<dataset>.json``, ``.md`` and ``.png`` into the output folder (seed 0; another
seed's run is ``quality-<dataset>-seed<N>.*``; ``genrec.bench.seeds`` sums several up).

Budgets (``--budget``):
* ``cpu``: a small transformer trained until validation stops improving (its mean over the last 3
  epochs, at most 30 epochs; validation on a 4,000-user subset, the same users for genrec and SASRec;
  the test set is always complete): on a 2-core CPU, half an hour to an hour of genrec training on
  Amazon Beauty.
* ``gpu``: bigger models and more epochs, for a CUDA machine; each training stops after an hour
  (SASRec: half an hour) if validation has not stopped it earlier.
* ``smoke``: minutes-scale sanity run (CI, tiny synthetic data).

Checkpoints go to ``<artifacts_dir>/checkpoints/quality-<dataset>-<budget>-seed<seed>-<run key>``
(and ``...-sasrec``): re-running an interrupted command resumes it, and so does a config that only
changes the schedule (more epochs); a config that changes the data or the models (``run_key``) trains
in its own folder. Delete that folder (or pass ``--fresh``) to start over.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.bench.cold_start import COLD_SHARE, CONTENT, SASREC, markdown_section, run_cold_start
from genrec.bench.report import machine_info, write_report
from genrec.data.loaders import load_dataset
from genrec.data.splits import leave_one_out, pad_histories
from genrec.evaluation.evaluate import evaluate_recommender
from genrec.model.sasrec import MostPopular
from genrec.training.config import TrainConfig, read_config_file
from genrec.training.generative import evaluate_bundle, setup_torch, train_generative
from genrec.training.loop import MONITOR, history_seconds
from genrec.training.sasrec import train_sasrec

# Validation users of the cpu budget, one subset for both models (``eval_subset`` draws it from the
# seed): their curves then meet on the same users, which the cost at equal quality compares. On
# 2,000 users a Beauty NDCG@10 moved by noise alone as much as between epochs (standard error
# ~0.004); on 4,000 it is a few seconds of a ~110 s epoch.
CPU_VALIDATION_USERS = 4000
BUDGETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "threads": 2,
        "val_beam_width": 20,
        "tokenizer": {"steps": 600},
        # The model and its schedule are TrainConfig's defaults (GenerativeConfig, GenerativeOptimConfig),
        # which these runs measured: 30 epochs of Amazon Beauty are ~15,500 steps, about 66 min of training
        # on 2 cores without AVX-512.
        "optim": {"eval_users": CPU_VALIDATION_USERS},
        "sasrec": {"d_model": 64, "layers": 2, "n_heads": 2, "d_ff": 256, "dropout": 0.3},
        # Until validation stops improving, on any dataset: a small one (ML-100K: 8 steps an epoch) needs
        # hundreds of epochs, and a baseline stopped early would flatter genrec. SASRec is cheap.
        "sasrec_optim": {"epochs": 400, "batch_size": 128, "lr": 2e-3, "warmup_steps": 100, "patience": 10,
                         "eval_users": CPU_VALIDATION_USERS},
    },
    "gpu": {
        "val_beam_width": 50,
        "tokenizer": {"steps": 10000},
        "model": {"d_model": 256, "n_heads": 4, "encoder_layers": 4, "decoder_layers": 4, "d_ff": 1024,
                  "dropout": 0.15},
        # One H200 (2026-12-04): an epoch of Amazon Beauty took 26 s to train, 4 s to validate.
        "optim": {"epochs": 200, "batch_size": 256, "lr": 1e-3, "warmup_steps": 1000, "patience": 10,
                  "patience_window": 3, "max_minutes": 60},
        "sasrec": {"d_model": 64, "layers": 2, "n_heads": 2, "d_ff": 256, "dropout": 0.3},
        "sasrec_optim": {"epochs": 300, "batch_size": 128, "lr": 1e-3, "patience": 20, "max_minutes": 30},
    },
    "smoke": {
        "threads": 2,
        "val_beam_width": 10,
        "embeddings": {"mode": "interactions", "collab_dim": 32},
        "tokenizer": {"levels": 2, "codebook_size": 16, "latent_dim": 16, "hidden_dims": [64], "steps": 200,
                      "disambiguation_size": 64},
        "model": {"d_model": 64, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 128},
        "optim": {"epochs": 2, "batch_size": 128, "lr": 3e-3, "warmup_steps": 20},
        "sasrec": {"d_model": 32, "layers": 1, "n_heads": 1, "d_ff": 64},
        "sasrec_optim": {"epochs": 2, "batch_size": 128, "lr": 3e-3, "warmup_steps": 20},
    },
}

# Published Amazon Beauty numbers (leave-one-out, full ranking) for the report.
REFERENCE = {
    "amazon-beauty": {
        "TIGER (Rajput et al. 2023)": {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384},
        "SASRec BCE (as reported by TIGER)": {"recall@5": 0.0387, "ndcg@5": 0.0249, "recall@10": 0.0605,
                                              "ndcg@10": 0.0318},
        "SASRec full CE (literature, approx.)": {"recall@10": 0.092, "ndcg@10": 0.053},
    }
}
COLUMNS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")
# The fp32 product whose best rate sets a CPU's floor for training: big enough to run near the
# machine's peak, as a training step's largest products ([batch x tokens, d] x [d, d_ff]) do.
FLOOR_GEMM = (2048, 512, 512)
# genrec.training.loop.FitResult.stopped_by, as the report says it
STOPS = {"epochs": "all its epochs", "patience": "validation stopped improving",
         "time": "its time limit, optim.max_minutes"}


def budget_config(
    budget: str, config_path: str | Path | None = None, seed: int = 0, threads: int | None = None
) -> TrainConfig:
    """The budget's settings, overridden by only the keys present in ``config_path``."""
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose {', '.join(BUDGETS)}")
    merged = _deep_merge(BUDGETS[budget], read_config_file(config_path) if config_path else {})
    merged["seed"] = seed
    if threads:
        merged["threads"] = threads
    return TrainConfig.model_validate(merged)


# The sections that give a checkpoint's weights their meaning; the rest (schedule, validation,
# threads, paths) may change between sittings of one run.
RUN_SECTIONS = ("max_history", "embeddings", "tokenizer", "model", "sasrec", "init_from")


def run_key(cfg: TrainConfig) -> str:
    """A short hash of the config's ``RUN_SECTIONS``: one run's checkpoints, whatever its sittings."""
    sections = cfg.model_dump(mode="json", include=set(RUN_SECTIONS))
    sections["embeddings"].pop("cache_dir", None)  # where vectors are cached, not what they are
    return hashlib.sha256(json.dumps(sections, sort_keys=True).encode()).hexdigest()[:8]


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run_quality(
    dataset_path: str | Path,
    budget: str = "cpu",
    out_dir: str | Path = "bench/results",
    config_path: str | Path | None = None,
    seed: int = 0,
    models: tuple[str, ...] = ("genrec", "sasrec", "mostpop"),
    progress: bool = True,
    artifacts_dir: str | Path | None = None,
    threads: int | None = None,
    fresh: bool = False,
    cold_share: float = COLD_SHARE,
) -> dict[str, Any]:
    """Train and evaluate the models on one split; write json/md/png; return the results.

    With ``cold_share`` > 0 and every model run, or ``COLD_START`` among ``models``, the cold-start
    benchmark follows (``genrec.bench.cold_start``): that share of the items hidden from a second
    training. ``models`` of ``MODEL_KEYS`` and ``COLD_START``; rows of models not run are kept from the
    last report."""
    unknown = sorted(set(models) - {*MODEL_KEYS, COLD_START})
    if unknown:
        raise ValueError(f"unknown models {unknown}: choose from {[*MODEL_KEYS, COLD_START]}")
    if models == (COLD_START,) and cold_share <= 0:
        raise ValueError(f"models {COLD_START!r} alone needs a cold-start share above 0")
    t_start = time.perf_counter()
    cfg = budget_config(budget, config_path, seed, threads)
    if cfg.embeddings.cache_dir is None:
        from genrec.config import get_settings

        cfg.embeddings.cache_dir = str(Path(get_settings().model.artifacts_dir) / "cache" / "embeddings")
    device = setup_torch(cfg)
    dataset = load_dataset(dataset_path)
    if cfg.checkpoint_dir is None:
        # Resumable: re-running the same command after an interruption continues training.
        from genrec.config import get_settings

        cfg.checkpoint_dir = str(Path(get_settings().model.artifacts_dir) / "checkpoints"
                                 / f"quality-{dataset.name}-{budget}-seed{seed}-{run_key(cfg)}")
    if fresh:
        import shutil

        for d in (cfg.checkpoint_dir, f"{cfg.checkpoint_dir}-sasrec", f"{cfg.checkpoint_dir}-cold",
                  f"{cfg.checkpoint_dir}-cold-sasrec"):
            shutil.rmtree(d, ignore_errors=True)
    split = leave_one_out(dataset, cfg.max_history)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.metrics_path = str(out / f"{result_stem(dataset.name, seed)}-metrics.jsonl")
    checkpoints = {"genrec": cfg.checkpoint_dir, "sasrec": f"{cfg.checkpoint_dir}-sasrec"}
    resuming = {m: Path(checkpoints[m], "last.pt").is_file() for m in models if m in checkpoints}
    if "genrec" in resuming:
        # A warm start continues the source run's story: keep that run's epoch lines too.
        resuming["genrec-warm"] = resuming["genrec"]
        resuming["genrec"] = resuming["genrec"] or bool(cfg.init_from)
    _keep_metrics_history(Path(cfg.metrics_path), resuming)
    results: dict[str, Any] = {
        "dataset": dataset.name,
        "dataset_path": str(dataset_path),
        "budget": budget,
        "device": _device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "split": {
            "users": len(split.user_ids), "items": split.n_items, "max_history": cfg.max_history,
            "protocol": "leave-one-out (last=test, second-last=valid), full ranking, history excluded",
        },
        "config": cfg.model_dump(mode="json"),
        "seed": seed,
        "models": _kept_results(out / f"{result_stem(dataset.name, seed)}.json", budget, models),
        # replaced when this run reaches the cold-start benchmark; else the last run's table
        "cold_start": _kept_cold_start(out / f"{result_stem(dataset.name, seed)}.json", budget),
    }
    test_hist = pad_histories(split.test_histories, cfg.max_history)
    if "mostpop" in models:
        t = time.perf_counter()
        pop = MostPopular(torch.as_tensor(split.item_popularity()))
        test = evaluate_recommender(lambda h, u: pop(h, top_k=10), test_hist, split.test_targets)
        results["models"][MODEL_KEYS["mostpop"]] = {"test": test, "train_seconds": round(time.perf_counter() - t, 1)}
        _write(results, out, t_start, final=False)
    if "genrec" in models:
        t = time.perf_counter()
        bundle = train_generative(dataset, cfg, split=split, progress=progress, evaluate_test=False,
                                  out_dir=artifacts_dir)
        train_s = time.perf_counter() - t
        te = time.perf_counter()
        evaluated = evaluate_bundle(bundle, split, device=device, progress=progress)
        test, beam_order = evaluated.served, evaluated.generative_order
        rep = bundle.report
        # A resumed run's epochs ran in several sittings: count every epoch's time, not this process's,
        # and a warm start's source run too.
        epoch_s = history_seconds(rep["history"])
        warm = rep.get("warm_start") or {}
        results["models"][MODEL_KEYS["genrec"]] = {
            "test": test, "validation": rep["validation"], "best_epoch": rep["best_epoch"],
            "epochs_run": len(rep["history"]), "stopped_by": rep["stopped_by"],
            "train_seconds": round(max(train_s, epoch_s) + warm.get("source_train_seconds", 0.0), 1),
            "resumed": rep["resumed_after_epoch"] > 0, "warm_start": rep.get("warm_start"),
            # tuned in training, stored with the model's weights
            "rerank_weight": bundle.model.reranker.weight if bundle.model.reranker is not None else None,
            "test_seconds": round(time.perf_counter() - te, 1),
            "test_beam_width": evaluated.beam_width,
            "embeddings": rep["embeddings"], "tokenizer": rep["tokenizer"], "stage_seconds": rep["seconds"],
            "train_examples": rep["train_examples"],
            "validation_curve": validation_curve(rep["history"]),
            "training_cost": training_cost(rep["history"], rep["steps_per_epoch"], rep["flops_per_step"], device),
        }
        if beam_order:  # the same beams without the head: what the re-ranking adds
            results["models"][BEAM_ORDER_KEY] = {"test": beam_order, "train_seconds": 0.0}
        _write(results, out, t_start, final=False)
    if "sasrec" in models:
        t = time.perf_counter()
        sas, fit_res = train_sasrec(split, cfg, progress=progress, checkpoint_dir=f"{cfg.checkpoint_dir}-sasrec")
        train_s = time.perf_counter() - t
        sas = sas.to(device)
        test = evaluate_recommender(lambda h, u: sas(h, top_k=10), test_hist, split.test_targets, device=device)
        results["models"][MODEL_KEYS["sasrec"]] = {
            "test": test, "validation": fit_res.best_metrics, "best_epoch": fit_res.best_epoch,
            "epochs_run": len(fit_res.history), "stopped_by": fit_res.stopped_by,
            "resumed": fit_res.resumed_after_epoch > 0,
            # a resumed run's epochs ran in several sittings: every epoch's time, as for genrec
            "train_seconds": round(max(train_s, history_seconds(fit_res.history)), 1),
            "validation_curve": validation_curve(fit_res.history),
            "training_cost": training_cost(fit_res.history, fit_res.steps_per_epoch, fit_res.flops_per_step, device),
        }
    if cold_share > 0 and (set(MODEL_KEYS) <= set(models) or COLD_START in models):
        _write(results, out, t_start, final=False)
        results["cold_start"] = run_cold_start(dataset, cfg, cold_share, device=device, progress=progress)
    _write(results, out, t_start, final=True)
    return results


def training_cost(history: list[dict[str, Any]], steps_per_epoch: int, flops_per_step: int | None,
                  device: torch.device) -> dict[str, Any] | None:
    """What the training's steps cost against what this machine could do: the FLOPs of its steps
    (forward and backward, counted on one) over its training seconds (validation left out), and on a
    CPU the floor those FLOPs set at its fp32 matrix-product rate on the threads training used.
    None when this sitting trained no step (all its epochs came from a checkpoint)."""
    if not flops_per_step or not history:
        return None
    seconds = sum(h["train_seconds"] for h in history)
    steps = steps_per_epoch * len(history)
    flops = flops_per_step * steps
    cost: dict[str, Any] = {"steps": steps, "train_seconds": round(seconds, 2),
                            "gflop_per_step": round(flops_per_step / 1e9, 3),
                            "achieved_gflops": round(flops / max(seconds, 1e-9) / 1e9, 1)}
    if device.type == "cpu":
        threads = torch.get_num_threads()
        peak = cpu_peak_gflops(threads)
        cost.update(threads=threads, peak_gflops=round(peak, 1), floor_seconds=round(flops / peak / 1e9, 3),
                    x_floor=round(seconds * peak * 1e9 / flops, 1))
    return cost


@functools.cache
def cpu_peak_gflops(threads: int) -> float:
    """This CPU's best fp32 rate at ``FLOOR_GEMM``, measured once a process: every model of a run is
    held to the same floor (on a shared machine two measurements differ by tens of percent)."""
    from genrec.serving.floor import matmul_gflops

    return matmul_gflops(*FLOOR_GEMM, threads=threads, seconds=2.0, rounds=10)


def validation_curve(history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per epoch: seconds of training (and validating) so far, and the validation metric that
    picks the best epoch."""
    seconds, curve = 0.0, []
    for h in history:
        seconds += h["train_seconds"] + h["eval_seconds"]
        curve.append({"seconds": round(seconds, 1), MONITOR: h.get(f"val_{MONITOR}", 0.0)})
    return curve


def time_to_quality(results: dict[str, Any]) -> dict[str, Any] | None:
    """genrec's training time until its validation first reached SASRec's best, against SASRec's
    whole training: the training cost at equal quality. None without both curves; ``seconds`` None
    when genrec never got there."""
    gen, sas = (results["models"].get(MODEL_KEYS[k], {}).get("validation_curve") for k in ("genrec", "sasrec"))
    if not gen or not sas:
        return None
    target = max(point[MONITOR] for point in sas)
    reached = next((point for point in gen if point[MONITOR] >= target), None)
    sasrec_seconds = sas[-1]["seconds"]
    return {"metric": f"validation {MONITOR}", "sasrec_best": target, "sasrec_seconds": sasrec_seconds,
            "seconds": reached["seconds"] if reached else None,
            "epoch": gen.index(reached) + 1 if reached else None,
            # None also when SASRec's training rounds to 0 s (a tiny smoke run)
            "ratio": reached["seconds"] / sasrec_seconds if reached is not None and sasrec_seconds > 0 else None}


def _plot_fresh_item_weights(ax: Any, sweep: list[dict[str, Any]], models: dict[str, Any]) -> None:
    """genrec's cold-start trade: recall on the hidden items' events against recall on all events,
    one point per new-item weight, the other models as single points."""
    ax.plot([r["all"]["recall@10"] for r in sweep], [r["cold"]["recall@10"] for r in sweep], "o-",
            label="genrec by new-item weight")
    for r in sweep:
        ax.annotate(f"{r['fresh_item_weight']:g}", (r["all"]["recall@10"], r["cold"]["recall@10"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    for name in (CONTENT, SASREC):
        if "cold" in models.get(name, {}):
            ax.plot(models[name]["all"]["recall@10"], models[name]["cold"]["recall@10"], "s", label=name)
    ax.set_xlabel("recall@10, all test events")
    ax.set_ylabel("recall@10, cold events")
    ax.set_title("new items found vs trained items displaced", fontsize=9)
    ax.legend(fontsize=7)


def result_stem(dataset: str, seed: int = 0) -> str:
    """A run's file name without suffix: seed 0's is the dataset's headline report."""
    return f"quality-{dataset}" + (f"-seed{seed}" if seed else "")


MODEL_KEYS = {"mostpop": "MostPopular", "genrec": "genrec (generative retrieval)", "sasrec": "SASRec (full CE)"}
COLD_START = "cold-start"  # in ``models``: the cold-start table, also without re-running the models above
BEAM_ORDER_KEY = "genrec, beams in generative order (head off)"


def _kept_results(previous: Path, budget: str, models: tuple[str, ...]) -> dict[str, Any]:
    """Results of models *not* re-run this time, from an earlier run with the same budget,
    so re-running one model (``--models genrec``) keeps the table complete."""
    if not previous.exists():
        return {}
    try:
        old = json.loads(previous.read_text())
    except (OSError, ValueError):
        return {}
    if old.get("budget") != budget:
        return {}
    rerun = {MODEL_KEYS[m] for m in models if m in MODEL_KEYS} | ({BEAM_ORDER_KEY} if "genrec" in models else set())
    # a row kept from a run that had kept it itself names the run that made it
    return {name: {**r, "from_run": r.get("from_run", old.get("started"))} for name, r in old.get("models", {}).items()
            if name not in rerun}


def _kept_cold_start(previous: Path, budget: str) -> dict[str, Any] | None:
    """The cold-start table of an earlier run with the same budget, marked with that run's start."""
    try:
        old = json.loads(previous.read_text())
    except (OSError, ValueError):
        return None
    if old.get("budget") != budget or not old.get("cold_start"):
        return None
    return {**old["cold_start"], "from_run": old["cold_start"].get("from_run", old.get("started"))}


def _keep_metrics_history(path: Path, running: dict[str, bool]) -> None:
    """Drop the per-epoch lines of the models about to train from scratch; keep the lines of
    models not run now and of models resuming a checkpoint (their epochs continue the file)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and running.get(json.loads(line).get("model"), True)]
    path.write_text("".join(line + "\n" for line in kept))


def _write(results: dict[str, Any], out: Path, t_start: float, final: bool) -> None:
    """(Re)write json/md/png; called after every model so a cut-short run still leaves results."""
    results["reference"] = REFERENCE.get(results["dataset"], {})
    results["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    results["complete"] = final
    write_report(results, out / result_stem(results["dataset"], results.get("seed", 0)), markdown_report, plot_results)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({machine_info()['cpu'] or platform.machine()}, {torch.get_num_threads()} threads)"


def markdown_report(results: dict[str, Any]) -> str:
    lines = [
        f"# Quality: {results['dataset']}" + ("" if results.get("complete", True) else " (partial: run in progress)"),
        "",
        f"Budget `{results['budget']}` on {results['device']}, torch {results['torch']}; "
        f"wall time {results['wall_seconds'] / 60:.1f} min; {results['split']['users']} users, "
        f"{results['split']['items']} items, histories <= {results['split']['max_history']}.",
        f"Protocol: {results['split']['protocol']}.",
        "",
        "| model | " + " | ".join(c.replace("recall", "R").replace("ndcg", "N") for c in COLUMNS) + " | train s |",
        "| --- | " + " | ".join("---:" for _ in COLUMNS) + " | ---: |",
    ]
    for name, r in results["models"].items():
        vals = " | ".join(f"{r['test'].get(c, float('nan')):.4f}" for c in COLUMNS)
        lines.append(f"| {name} | {vals} | {r.get('train_seconds', 0):.0f} |")
    for name, r in results.get("reference", {}).items():
        vals = " | ".join(f"{r[c]:.4f}" if c in r else "-" for c in COLUMNS)
        lines.append(f"| *{name}, published* | {vals} | - |")
    stops = [f"{name} {r['epochs_run']} epochs ({STOPS[r['stopped_by']]})" for name, r in results["models"].items()
             if r.get("stopped_by")]
    if stops:
        lines += ["", "Training stopped: " + "; ".join(stops) + "."]
    gen = results["models"].get("genrec (generative retrieval)")
    if gen:
        tok = gen["tokenizer"]
        lines += [
            "",
            f"genrec: item vectors `{gen['embeddings'].get('mode')}` ({gen['embeddings'].get('dim')}-d), "
            f"Semantic-ID collision rate {tok.get('collision_rate', 0):.3f}, codebook usage "
            f"{', '.join(f'{u:.2f}' for u in tok.get('codebook_usage', []))}, best epoch {gen['best_epoch']} of "
            f"{gen['epochs_run']}, test beam width {gen['test_beam_width']}"
            + (" (resumed from a checkpoint: train s sums every epoch over all sittings)." if gen.get("resumed")
               else "."),
        ]
        warm = gen.get("warm_start")
        if warm:
            lines.append(
                f"Warm start: {gen['epochs_run']} epochs from the {warm['source_epochs']}-epoch run in "
                f"{', '.join(f'`{f}`' for f in warm['from'])}"
                + (" (weights averaged)" if len(warm["from"]) > 1 else "")
                + (f", adding {', '.join(warm['new_parameters'])}" if warm["new_parameters"] else "")
                + "; train s includes the source run."
            )
        if gen.get("rerank_weight") is not None:
            top = (results.get("config", {}).get("model", {}).get("rerank") or {}).get("catalogue_top", 0)
            joined = f" and the head's own best {top} items of the catalogue" if top else ""
            lines.append(f"Re-ranking head on: the final beam{joined} scored as generative log-prob + "
                         f"{gen['rerank_weight']} x dense logit (the configured weight unless validation showed "
                         f"another better: `choose_weight`); "
                         f"the row `{BEAM_ORDER_KEY}` is the same candidates in generative order.")
    lines += validation_against_test_lines(results)
    lines += training_cost_lines(results)
    cost = time_to_quality(results)
    if cost:
        lines += ["", f"Training cost at equal quality: SASRec's best {cost['metric']} is {cost['sasrec_best']:.4f} "
                      f"after {cost['sasrec_seconds']:.0f} s of training; "
                  + (f"genrec first reached it at epoch {cost['epoch']}, after {cost['seconds']:.0f} s"
                     + (f" (**{cost['ratio']:.1f}×** SASRec's time)." if cost["ratio"] is not None else ".")
                     if cost["seconds"] is not None else "genrec never reached it.")]
    if results.get("cold_start"):
        lines += markdown_section(results["cold_start"])
    return "\n".join(lines) + "\n"


def validation_against_test_lines(results: dict[str, Any], metric: str = "ndcg@10") -> list[str]:
    """Each model's best validation score beside its test score: validation picks the epoch (and genrec's
    head weight) on the second-last item of each history, test scores the last, so a model whose validation
    lead does not carry over to test was fitted to the training period more than its rival."""
    pairs = [(name, r["validation"][metric], r["test"][metric]) for name, r in results["models"].items()
             if metric in (r.get("validation") or {}) and metric in r.get("test", {})]
    if not pairs:
        return []
    return ["", f"Validation against test ({metric} at the best epoch; validation scores the second-last item, "
                "on `eval_users` users where set): "
            + "; ".join(f"{name} {val:.4f} -> {test:.4f} ({test / val:.2f}x)" if val else f"{name} 0 -> {test:.4f}"
                        for name, val, test in pairs) + "."]


def training_cost_lines(results: dict[str, Any]) -> list[str]:
    costs = {name: r["training_cost"] for name, r in results["models"].items() if r.get("training_cost")}
    if not costs:
        return []
    floor = any("floor_seconds" in c for c in costs.values())
    lines = ["", "Training steps against the compute floor (FLOPs of matrix products and attention, forward and "
             "backward, a step's mean over a sample of the first epoch's steps; validation time left out"
             + ("; floor = FLOPs / this CPU's best fp32 matrix-product rate on the threads used):" if floor
                else "; no floor on a GPU yet):"), "",
             "| model | steps | train s | GFLOP per step | GFLOP/s achieved |"
             + (" floor s | × floor |" if floor else ""),
             "| --- | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if floor else "")]
    for name, c in costs.items():
        lines.append(f"| {name} | {c['steps']:,} | {c['train_seconds']:.0f} | {c['gflop_per_step']} | "
                     f"{c['achieved_gflops']} |" + (f" {c.get('floor_seconds', '-')} | {c.get('x_floor', '-')} |"
                                                    if floor else ""))
    return lines


def plot_results(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {n: r["test"] for n, r in results["models"].items()}
    rows.update({f"{n} (pub.)": r for n, r in results.get("reference", {}).items()})
    cold = {n: r["cold"] for n, r in (results.get("cold_start") or {}).get("models", {}).items() if "cold" in r}
    panels = [(rows, f"{results['dataset']}: leave-one-out full ranking ({results['budget']} budget)")]
    if cold:
        panels.append((cold, f"cold start: test events whose item was hidden from training "
                             f"({results['cold_start']['cold_test_events']})"))
    sweep = (results.get("cold_start") or {}).get("fresh_item_weights") or []
    widths = [max(6, 1.4 * len(p)) for p, _ in panels] + ([5] if sweep else [])
    fig, axes = plt.subplots(1, len(widths), figsize=(sum(widths), 4), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    if sweep:
        _plot_fresh_item_weights(axes[0][-1], sweep, results["cold_start"]["models"])
    for ax, (panel, title) in zip(axes[0], panels, strict=False):
        names = list(panel)
        x = np.arange(len(names))
        for i, m in enumerate(("recall@10", "ndcg@10")):
            ax.bar(x + (i - 0.5) * 0.38, [panel[n].get(m, 0.0) for n in names], 0.38, label=m)
        ax.set_xticks(x, [n.replace(" (", "\n(") for n in names], fontsize=7)
        ax.set_ylabel("score")
        ax.set_title(title, fontsize=9)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
