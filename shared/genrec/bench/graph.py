"""`genrec bench graph`: the served graph alone, in this process, on this machine's accelerator.

What a replica's model costs without the server around it, where no model server is installed
(a bare GPU machine): for each catalogue size a synthetic artifact of the production size
(``genrec.serving.synthetic``, as `genrec bench serving` uses) is built as the model server builds
it without an exported graph (``make_runner``'s choice: on a CPU converted to ONNX Runtime, on a GPU
traced) and called with batches of full histories. Measured per batch size: latency per call
(p50, p99) and users per second. On CUDA the same graph is also captured once as a CUDA graph
and replayed (one launch for its ~700 kernels: what launch overhead costs at small batches),
after checking that the replay returns the served graph's items and scores. On a CPU the graph
runs on one thread (its CPU time, as `genrec bench serving`'s Graph column).
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genrec.bench.report import finish_figure, machine_info, write_report
from genrec.serving.synthetic import PRODUCTION_LEVELS, describe_model, make_artifact, production_model

BUDGETS: dict[str, dict[str, Any]] = {
    "smoke": {"sizes": [2_000], "batches": [1, 4], "seconds": 0.2},
    "full": {"sizes": [10_000, 100_000, 1_000_000], "batches": [1, 8, 64, 256, 1024], "seconds": 2.0},
}
Call = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def time_calls(call: Call, seconds: float, sync: Callable[[], None], min_calls: int = 5) -> list[float]:
    """Seconds of each call of ``call`` (finished on the device: ``sync``) over ``seconds``."""
    for _ in range(3):  # warm-up: TorchScript's profiling runs, allocator, kernels' first launch
        call()
    sync()
    times: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < min_calls:
        t = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - t)
    return times


def cuda_graph_call(runner: Callable[..., tuple[torch.Tensor, torch.Tensor]], inputs: tuple[torch.Tensor, ...]
                    ) -> tuple[Call, tuple[torch.Tensor, torch.Tensor]]:
    """``runner`` on ``inputs`` captured as a CUDA graph: its replay, and the outputs it refills."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # capture wants the kernels' first launches (and workspaces) done
        for _ in range(3):
            runner(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = runner(*inputs)

    def replay() -> tuple[torch.Tensor, torch.Tensor]:
        graph.replay()
        return outputs

    return replay, outputs


def _summary(times: list[float], batch: int) -> dict[str, Any]:
    q = statistics.quantiles(times, n=100) if len(times) > 1 else [times[0]] * 99
    p50 = statistics.median(times)
    return {"calls": len(times), "p50_ms": round(p50 * 1000, 3), "p99_ms": round(q[98] * 1000, 3),
            "users_per_s": round(batch / p50, 1)}


def measure_artifact(artifact: Path, batches: list[int], length: int, device: torch.device, seconds: float
                     ) -> list[dict[str, Any]]:
    """One row per batch size: the graph the model server would run (``served``, with its ``runner``), and on
    CUDA its CUDA-graph replay."""
    from genrec.serving.artifact import ServingArtifact
    from genrec.serving.floor import request_inputs, torch_threads
    from genrec.serving.graph import TableTensors, base_table
    from genrec.serving.runners import make_runner

    art = ServingArtifact.open(artifact)
    table = TableTensors.from_table(base_table(art), device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows = []
    with torch_threads(1):  # on a CPU: its CPU time; on a GPU: one host thread feeding it
        runner = make_runner(art, device=device)
        for b in batches:
            inputs = request_inputs(table, b, length)
            served = time_calls(functools.partial(runner, *inputs), seconds, sync)
            row: dict[str, Any] = {"batch": b, "served": {**_summary(served, b), "runner": runner.kind}}
            if cuda:
                row["cuda_graph"] = _cuda_graph_row(runner, inputs, b, seconds)
            rows.append(row)
    return rows


def _cuda_graph_row(runner: Callable[..., tuple[torch.Tensor, torch.Tensor]], inputs: tuple[torch.Tensor, ...],
                    batch: int, seconds: float) -> dict[str, Any]:
    """The replay's timing, or why the graph could not be captured or differs from the served run."""
    try:
        replay, _ = cuda_graph_call(runner, inputs)
    except Exception as exc:  # a graph with a host sync or a dynamic allocation cannot be captured
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    items, scores = replay()
    ref_items, ref_scores = runner(*inputs)
    finite = torch.isfinite(ref_scores)
    same = bool(torch.equal(items, ref_items) and torch.equal(finite, torch.isfinite(scores))
                and torch.allclose(scores[finite], ref_scores[finite], atol=1e-4))
    if not same:
        return {"error": "the replay's items or scores differ from the served graph's"}
    return _summary(time_calls(replay, seconds, torch.cuda.synchronize), batch)


def run_graph_bench(out_dir: Path = Path("bench/results"), *, budget: str = "full", sizes: list[int] | None = None,
                    batches: list[int] | None = None, length: int = 20, device: str = "auto",
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    from genrec.serving.runners import pick_device

    cfg = {**BUDGETS[budget], **({"sizes": sizes} if sizes else {}), **({"batches": batches} if batches else {})}
    dev = pick_device(device)
    results: dict[str, Any] = {
        "benchmark": "graph", "budget": budget, "device": str(dev), "machine": machine_info(),
        "config": {**cfg, "history_length": length},
        "model": production_model(),
        "rows": [],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genrec-bench-graph-") as work:
        for n in cfg["sizes"]:
            log(f"catalogue {n:,} items: writing a synthetic artifact")
            art = make_artifact(Path(work) / f"artifact-{n}", n, level_sizes=PRODUCTION_LEVELS, seed=n % 9973)
            for row in measure_artifact(art, cfg["batches"], length, dev, cfg["seconds"]):
                results["rows"].append({"catalog": n, **row})
                log(f"  batch {row['batch']:>4}: " + "; ".join(
                    f"{kind} p50 {r['p50_ms']} ms, {r['users_per_s']} users/s" if "error" not in r
                    else f"{kind}: {r['error']}" for kind, r in row.items() if kind != "batch"))
            results["seconds"] = round(time.perf_counter() - started, 1)
            results["complete"] = n == cfg["sizes"][-1]
            write_results(results, out_dir)  # after each catalogue: a run cut short keeps what it measured
    return results


def result_stem(results: dict[str, Any]) -> str:
    return f"graph-{torch.device(results['device']).type}"


KINDS = {"served": "served graph", "cuda_graph": "CUDA-graph replay"}


def markdown_report(results: dict[str, Any]) -> str:
    m = results["machine"]
    kinds = [k for k in KINDS if any(k in r for r in results["rows"])]
    lines = [
        f"# The served graph alone on {results['device']} ({results['budget']})"
        + ("" if results.get("complete", True) else " (partial: run in progress or cut short)"), "",
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; torch {m['torch']}. "
        f"Model: {describe_model(results['model'])}; "
        f"history length {results['config']['history_length']}. In process, no model server around it "
        + ("(on a CPU: one thread)." if results["device"] == "cpu" else "(one host thread)."), "",
        "| catalogue | batch | " + " | ".join(f"{KINDS[k]} p50 ms | p99 ms | users/s" for k in kinds) + " |",
        "|---:|---:|" + "---:|---:|---:|" * len(kinds),
    ]
    for r in results["rows"]:
        cells = []
        for k in kinds:
            v = r.get(k) or {"error": "-"}
            cells.append(f"{v['p50_ms']} | {v['p99_ms']} | {v['users_per_s']:,}" if "error" not in v
                         else f"{v['error']} | | ")
        lines.append(f"| {r['catalog']:,} | {r['batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for n in sorted({r["catalog"] for r in results["rows"]}):
        rows = [r for r in results["rows"] if r["catalog"] == n]
        for kind, style in (("served", "-"), ("cuda_graph", "--")):
            ok = [r for r in rows if kind in r and "error" not in r[kind]]
            if ok:
                b = [r["batch"] for r in ok]
                label = f"{n:,} items, {KINDS[kind]}"
                axes[0].plot(b, [r[kind]["p50_ms"] for r in ok], style, marker="o", label=label)
                axes[1].plot(b, [r[kind]["users_per_s"] for r in ok], style, marker="o", label=label)
    axes[0].set(xlabel="batch (users per call)", ylabel="p50 ms per call", title="latency", xscale="log",
                yscale="log")
    axes[1].set(xlabel="batch (users per call)", ylabel="users / s", title="throughput", xscale="log",
                yscale="log")
    finish_figure(fig, axes, f"genrec served graph alone on {results['device']} "
                             f"({results['machine']['gpu'] or 'CPU'})", path)


def write_results(results: dict[str, Any], out_dir: Path) -> Path:
    return write_report(results, Path(out_dir) / result_stem(results), markdown_report, plot)
