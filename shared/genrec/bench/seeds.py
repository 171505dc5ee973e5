"""Several seeds of the quality benchmark summed up: mean ± standard deviation per model.

One seed's gap between two models can be noise (ML-100K has 943 test users); a difference smaller
than the seeds' spread is not a result. Each seed is an ordinary run of ``run_quality`` on the same
split (its own initialisation, tokenizer, checkpoints and report); this module reads those reports
and writes ``quality-<dataset>-seeds.{json,md,png}``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from genrec.bench.quality import COLUMNS, result_stem
from genrec.bench.report import write_report

COLD_COLUMNS = ("recall@10", "ndcg@10")


def _spread(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value) and the values themselves."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def summarize_seeds(out_dir: str | Path, dataset: str, seeds: list[int]) -> dict[str, Any]:
    """Read each seed's report from ``out_dir``; every model's test metrics (and cold-start
    metrics, over the seeds that ran it) as mean ± std; write json/md/png; return the summary."""
    out = Path(out_dir)
    runs: dict[int, dict[str, Any]] = {}
    missing = []
    for seed in seeds:
        path = out / f"{result_stem(dataset, seed)}.json"
        run = json.loads(path.read_text()) if path.is_file() else None
        if run is None or not run.get("complete", False):
            missing.append(seed)
        else:
            runs[seed] = run
    if not runs:
        raise FileNotFoundError(f"no complete quality report for {dataset} with seeds {seeds} in {out}")
    first = runs[min(runs)]
    summary: dict[str, Any] = {
        "dataset": dataset, "seeds": sorted(runs), "missing_seeds": missing, "budget": first["budget"],
        "device": first["device"], "models": {}, "cold_start": {},
    }
    for name in dict.fromkeys(n for run in runs.values() for n in run["models"]):
        done = [run["models"][name] for run in runs.values() if name in run["models"]]
        summary["models"][name] = {
            **{c: _spread([r["test"][c] for r in done]) for c in COLUMNS},
            "train_seconds": _spread([float(r.get("train_seconds", 0.0)) for r in done]),
        }
    colds = [run["cold_start"] for run in runs.values() if (run.get("cold_start") or {}).get("models")]
    for name in dict.fromkeys(n for cold in colds for n in cold["models"]):
        done = [cold["models"][name] for cold in colds if "cold" in cold["models"].get(name, {})]
        if done:
            summary["cold_start"][name] = {f"{part} {c}": _spread([r[part][c] for r in done])
                                           for part in ("cold", "all") for c in COLD_COLUMNS}
    write_report(summary, out / f"quality-{dataset}-seeds", markdown_summary, plot_summary)
    return summary


def _cell(spread: dict[str, Any]) -> str:
    return f"{spread['mean']:.4f} ± {spread['std']:.4f}"


def markdown_summary(summary: dict[str, Any]) -> str:
    seeds = summary["seeds"]
    lines = [f"# Quality over seeds: {summary['dataset']}", "",
             f"Budget `{summary['budget']}` on {summary['device']}; seeds {', '.join(map(str, seeds))}: "
             f"mean ± sample standard deviation of each seed's full run (`{result_stem(summary['dataset'])}*.json`)."]
    if summary["missing_seeds"]:
        lines.append(f"Not complete, so left out: seeds {', '.join(map(str, summary['missing_seeds']))}.")
    lines += ["", "| model | " + " | ".join(c.replace("recall", "R").replace("ndcg", "N") for c in COLUMNS)
              + " | train s | seeds |", "| --- | " + " | ".join("---:" for _ in COLUMNS) + " | ---: | ---: |"]
    for name, r in summary["models"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(r[c]) for c in COLUMNS)
                     + f" | {r['train_seconds']['mean']:.0f} | {len(r['train_seconds']['values'])} |")
    if summary["cold_start"]:
        cols = list(next(iter(summary["cold_start"].values())))
        lines += ["", "Cold start (items hidden from training; see each seed's report):", "",
                  "| model | " + " | ".join(cols) + " | seeds |", "| --- | " + " | ".join("---:" for _ in cols)
                  + " | ---: |"]
        for name, r in summary["cold_start"].items():
            lines.append(f"| {name} | " + " | ".join(_cell(r[c]) for c in cols)
                         + f" | {len(r[cols[0]]['values'])} |")
    return "\n".join(lines) + "\n"


def plot_summary(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(summary["models"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names)), 4))
    for i, metric in enumerate(("recall@10", "ndcg@10")):
        ax.bar(x + (i - 0.5) * 0.38, [summary["models"][n][metric]["mean"] for n in names], 0.38,
               yerr=[summary["models"][n][metric]["std"] for n in names], capsize=4, label=metric)
    ax.set_xticks(x, [n.replace(" (", "\n(") for n in names], fontsize=7)
    ax.set_ylabel("score (mean ± std over seeds)")
    ax.set_title(f"{summary['dataset']}: seeds {', '.join(map(str, summary['seeds']))} "
                 f"({summary['budget']} budget)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
