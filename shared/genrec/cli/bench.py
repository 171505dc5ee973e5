"""`genrec bench`: offline quality, the model server alone, and the running system under load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

app = typer.Typer(help="Benchmarks: offline quality, the model server alone, the running system under load.",
                  no_args_is_help=True)
console = Console()
T = TypeVar("T")


def _say(message: str) -> None:
    console.print(f"[cyan]•[/] {message}")


def _or_exit(run: Callable[[], T], refusal: type[Exception]) -> T:
    """``run()``, or exit 2 with its message when the stack is not ready for it (``refusal``)."""
    try:
        return run()
    except refusal as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


# Options several commands share (typer reads each default afresh per command).
OUT = typer.Option(Path("bench/results"), "--out", help="Where the json/md/png go.")
SIZES = typer.Option(None, "--sizes", help="Catalogue sizes, e.g. 10000,100000.")
BATCHES = typer.Option(None, "--batches", help="Batch sizes, e.g. 1,8,64.")


def _ints(text: str | None, option: str) -> list[int] | None:
    try:
        return [int(v) for v in text.split(",")] if text else None
    except ValueError:
        raise typer.BadParameter(f"not a comma-separated list of integers: {text!r}", param_hint=option) from None


@app.callback()
def _group() -> None:
    """Benchmarks: offline quality, the model server alone, the running system under load."""


@app.command("quality")
def quality(
    dataset: str = typer.Option(..., "--dataset", help="Dataset folder (interactions.csv + items.csv)."),
    budget: str = typer.Option(
        "cpu", "--budget",
        help="cpu (2 cores; Amazon Beauty: about an hour of genrec training, then SASRec and the cold start)"
             " | gpu | smoke"),
    out: Path = typer.Option(Path("bench/results"), "--out", help="Where the json/md/png go."),
    config: Path | None = typer.Option(None, "--config", help="TOML/YAML overriding the budget."),
    seed: int = typer.Option(0, "--seed"),
    seeds: str | None = typer.Option(None, "--seeds", help="Several seeds, e.g. 0,1,2: a run each (resumable), "
                                                           "then their mean ± std (quality-<dataset>-seeds.*)."),
    models: str = typer.Option("genrec,sasrec,mostpop", "--models",
                               help="Comma-separated subset; cold-start alone re-runs only the cold-start table "
                                    "(the others' rows are kept)."),
    artifacts: Path | None = typer.Option(None, "--artifacts", help="Also save the genrec bundle here."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (1 is faster on a busy box)."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore checkpoints of an earlier interrupted run."),
    cold_start: float | None = typer.Option(None, "--cold-start", min=0.0, max=0.5,
                                            help="Share of items hidden from a second training, for the "
                                                 "cold-start table (default: genrec.bench.cold_start's; 0: none)."),
) -> None:
    """Train + evaluate genrec, SASRec and MostPopular on identical leave-one-out splits, then the
    cold-start benchmark (items hidden from training, placed by their content)."""
    from genrec.bench.quality import markdown_report, result_stem, run_quality

    chosen = tuple(m.strip() for m in models.split(",") if m.strip())
    try:
        runs = [int(v) for v in seeds.split(",") if v.strip()] if seeds else [seed]
    except ValueError:
        raise typer.BadParameter(f"not a comma-separated list of integers: {seeds!r}", param_hint="--seeds") from None
    for run_seed in runs:
        try:
            results = run_quality(dataset, budget=budget, out_dir=out, config_path=config, seed=run_seed,
                                  models=chosen, artifacts_dir=artifacts, threads=threads, fresh=fresh,
                                  **({} if cold_start is None else {"cold_share": cold_start}))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--models") from None
        console.print(markdown_report(results))
        console.print(f"results in {out}/{result_stem(results['dataset'], run_seed)}.{{json,md,png}}")
    if seeds:
        from genrec.bench.seeds import markdown_summary, summarize_seeds

        console.print(markdown_summary(summarize_seeds(out, results["dataset"], runs)))
        console.print(f"summary in {out}/quality-{results['dataset']}-seeds.{{json,md,png}}")


@app.command("serving")
def serving(
    budget: str = typer.Option("cpu", "--budget", help="smoke | cpu (~10 min on 2 cores) | gpu"),
    out: Path = OUT,
    sizes: str | None = SIZES,
    batches: str | None = BATCHES,
    threads: int = typer.Option(1, "--threads", help="torch threads per model instance (0 = all cores)."),
    instances: int = typer.Option(0, "--instances", help="Model instances (0: one per core, as a CPU replica runs)."),
) -> None:
    """Model server alone: latency/throughput by batch size and catalogue size, dynamic batching on/off."""
    from genrec.bench.serving import BUDGETS, markdown_report, result_stem, run_serving_bench

    results = run_serving_bench(out, budget=_choice(budget, tuple(BUDGETS), "--budget"), sizes=_ints(sizes, "--sizes"),
                                batches=_ints(batches, "--batches"), threads=threads, instances=instances,
                                log=_say)
    console.print(markdown_report(results))
    console.print(f"results in {out}/{result_stem(results)}.{{json,md,png}}")


@app.command("graph")
def graph(
    budget: str = typer.Option("full", "--budget", help="smoke | full (10 k / 100 k / 1 M items, batch 1..1024)"),
    out: Path = OUT,
    sizes: str | None = SIZES,
    batches: str | None = BATCHES,
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present) | cpu | cuda | cuda:N"),
) -> None:
    """The served graph alone, in this process, on this machine's GPU (also replayed as a CUDA graph) or one
    CPU thread: latency and users/s by batch and catalogue size, where no model server is installed."""
    from genrec.bench.graph import BUDGETS, markdown_report, result_stem, run_graph_bench

    results = run_graph_bench(out, budget=_choice(budget, tuple(BUDGETS), "--budget"), sizes=_ints(sizes, "--sizes"),
                              batches=_ints(batches, "--batches"), device=device, log=_say)
    console.print(markdown_report(results))
    console.print(f"results in {out}/{result_stem(results)}.{{json,md,png}}")


@app.command("train-step")
def train_step(
    dataset: str = typer.Option(..., "--dataset", help="Dataset folder (interactions.csv + items.csv)."),
    budget: str = typer.Option("gpu", "--budget", help="The quality budget whose model is timed: cpu | gpu | smoke"),
    out: Path = OUT,
    batches: str | None = BATCHES,
    seconds: float = typer.Option(3.0, "--seconds", min=0.1, help="Timed steps per batch size, in seconds."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present) | cpu | cuda | cuda:N"),
    config: Path | None = typer.Option(None, "--config", help="TOML/YAML overriding the budget (another model)."),
    label: str | None = typer.Option(None, "--label", help="Suffix of the result files (e.g. the config's name)."),
) -> None:
    """One training step of a quality budget's model: ms per step, examples/s and epoch seconds by batch size;
    on CUDA also kernels per step and the host's launch time against the GPU's busy time."""
    from genrec.bench.quality import BUDGETS
    from genrec.bench.train_step import markdown_report, result_stem, run_train_step_bench

    results = run_train_step_bench(dataset, out, budget=_choice(budget, tuple(BUDGETS), "--budget"),
                                   batches=_ints(batches, "--batches"), seconds=seconds, device=device, log=_say,
                                   config_path=config, label=label)
    console.print(markdown_report(results))
    console.print(f"results in {out}/{result_stem(results)}.{{json,md}}")


@app.command("load")
def load(
    duration: float = typer.Option(60.0, "--duration", help="Seconds of sustained load."),
    recommend_clients: str = typer.Option("2x4", "--recommend-clients", help="PROCESSESxTHREADS, closed loop."),
    event_clients: str = typer.Option("1x2", "--event-clients", help="PROCESSESxTHREADS posting event batches."),
    event_batch: int = typer.Option(100, "--event-batch", help="CloudEvents per batch."),
    event_rate: float = typer.Option(0.0, "--event-rate", help="Events/s offered in total (0: as fast as accepted)."),
    cache_hits: float = typer.Option(0.0, "--cache-hits", min=0.0, max=1.0,
                                     help="Share of recommend requests asking again for a user already answered."),
    probes: int = typer.Option(20, "--probes", help="Freshness probes (new-item probes: a quarter of it)."),
    out: Path = typer.Option(Path("bench/results"), "--out", help="Where the json/md/png go."),
    label: str = typer.Option("cpu", "--label", help="Results go to load-LABEL.{json,md,png}."),
    recommend_rate: float = typer.Option(0.0, "--recommend-rate", min=0.0,
                                         help="Recommend requests/s offered in total, on a schedule "
                                              "(latency from the scheduled time); 0: closed loop."),
    protocol: str = typer.Option("http", "--protocol", help="The recommend clients' API: http, or grpc "
                                 "(recommend.v1.RecommendService on recommend-grpc)."),
    profile: bool = typer.Option(False, "--profile", help="Sample every local Python process with py-spy: "
                                 "a CPU budget per request / per event in the report."),
) -> None:
    """Mixed traffic against the running stack (`genrec dev up` + a model in production)."""
    from genrec.bench.load import LoadConfig, LoadError, markdown_report, run_load, write_results

    def pair(text: str, option: str) -> tuple[int, int]:
        try:
            procs, threads = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise typer.BadParameter(f"expected PROCESSESxTHREADS such as 2x4, got {text!r}",
                                     param_hint=option) from None
        return procs, threads

    rp, rt = pair(recommend_clients, "--recommend-clients")
    ep, et = pair(event_clients, "--event-clients")
    cfg = LoadConfig(duration_s=duration, recommend_processes=rp, recommend_threads=rt, event_processes=ep,
                     event_threads=et, event_batch=event_batch, event_rate=event_rate, freshness_probes=probes,
                     new_item_probes=max(1, probes // 4), cache_hits=cache_hits, profile=profile,
                     protocol=_choice(protocol, ("http", "grpc"), "--protocol"), recommend_rate=recommend_rate)
    results = _or_exit(lambda: run_load(cfg, progress=_say), LoadError)
    stem = write_results(results, out, label)
    console.print(markdown_report(results))
    console.print(f"results in {stem}.{{json,md,png}}")


@app.command("capacity")
def capacity(
    miss: Path = typer.Option(Path("bench/results/load-recommend-8clients.json"), "--miss",
                              help="A profiled load run, every request a cache miss (genrec bench load --profile)."),
    hit: Path = typer.Option(Path("bench/results/load-recommend-8clients-cache-hits.json"), "--hit",
                             help="A profiled load run, every request a cache hit (--cache-hits 1)."),
    utilisation: float = typer.Option(0.5, "--utilisation", min=0.05, max=1.0,
                                      help="Share of its cores a tier is planned to use."),
    doc: Path = typer.Option(Path("docs/capacity.md"), "--doc", help="Where the plan goes."),
    data: Path = typer.Option(Path("bench/results/capacity.json"), "--data", help="Where its numbers go."),
    gpu: Path | None = typer.Option(Path("bench/results/graph-cuda.json"), "--gpu",
                                    help="The served graph on a GPU (genrec bench graph on a CUDA machine), "
                                         "for the GPUs per rate; used when the file exists."),
) -> None:
    """Cores and replicas per tier for 10k / 100k / 1M requests/s, from measured CPU per request."""
    from genrec.bench.capacity import write

    for path, option in ((miss, "--miss"), (hit, "--hit")):
        if not path.is_file():
            raise typer.BadParameter(f"{path} does not exist: run `genrec bench load --profile` first",
                                     param_hint=option)
    gpu_file = gpu if gpu is not None and gpu.is_file() else None
    _or_exit(lambda: write(miss, hit, doc, data, utilisation, gpu_file), ValueError)
    console.print(doc.read_text())


@app.command("ingest")
def ingest(
    items: int = typer.Option(2000, "--items", help="Item upserts to send (a synthetic catalogue)."),
    batch: int = typer.Option(500, "--batch", help="CloudEvents per request to event-capture."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("bench/results"), "--out", help="Where the json/md go."),
    label: str = typer.Option("cpu", "--label", help="Results go to ingest-LABEL.{json,md}."),
    note: str = typer.Option("", "--note", help="What this run compares, for the report."),
) -> None:
    """Item upserts end to end against the running stack: accepted → PostgreSQL + Milvus + code feed."""
    from genrec.bench.ingest import IngestConfig, markdown_report, run_ingest, write_results
    from genrec.bench.load import LoadError

    results = _or_exit(lambda: run_ingest(IngestConfig(items=items, batch=batch, seed=seed, note=note),
                                          progress=_say), LoadError)
    stem = write_results(results, out, label)
    console.print(markdown_report(results))
    console.print(f"results in {stem}.{{json,md}}")
    if results["ingested"] < results["items"]:
        raise typer.Exit(1)


@app.command("faults")
def faults(
    only: str | None = typer.Option(None, "--faults", help="Comma-separated subset, e.g. postgres:stop,redis:stall."),
    outage: float = typer.Option(20.0, "--outage", help="Seconds each server stays away (or stalled)."),
    before: float = typer.Option(10.0, "--before", help="Seconds of load before each fault."),
    after: float = typer.Option(10.0, "--after", help="Seconds of load after the server is back."),
    event_rate: float = typer.Option(200.0, "--event-rate", help="Interactions/s offered."),
    out: Path = typer.Option(Path("bench/results"), "--out", help="Where faults.{json,md,png} go."),
) -> None:
    """Stop, kill or stall each server under load, bring it back, and reconcile every accepted event."""
    from genrec.bench.faults import FAULTS, FaultConfig, fault_named, markdown_report, run_faults, write_results

    try:
        chosen = tuple(fault_named(n.strip()) for n in only.split(",")) if only else FAULTS
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from None
    cfg = FaultConfig(before_s=before, outage_s=outage, after_s=after, event_rate=event_rate)
    results = _or_exit(lambda: run_faults(cfg, chosen, progress=_say), RuntimeError)
    stem = write_results(results, out)
    console.print(markdown_report(results))
    console.print(f"results in {stem}.{{json,md,png}}")
    if not results["all_ok"]:
        raise typer.Exit(1)


@app.command("startup")
def startup(
    workloads: str | None = typer.Option(None, "--workloads", help="Comma-separated subset (default: all)."),
    how: str = typer.Option("local,image", "--how", help="local (as `genrec dev up`), image (deploy/entrypoint.sh)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Launches per workload and way."),
    python: str | None = typer.Option(None, "--python", help="Interpreter of another environment (default: this); "
                                      "{workload} in it names the workload, e.g. /venvs/{workload}/bin/python."),
    out: Path = typer.Option(Path("bench/results"), "--out", help="Where startup[-LABEL].{json,md} go."),
    label: str = typer.Option("", "--label", help="Suffix of the result files."),
) -> None:
    """Each workload from process start to ready, and its RSS then (needs `genrec dev up`)."""
    from genrec.bench.startup import markdown_report, run_startup, write_results

    def names(text: str | None) -> list[str]:
        return [n.strip() for n in (text or "").split(",") if n.strip()]

    try:
        results = run_startup(names(workloads), names(how), repeats, python,
                              log=_say)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    stem = write_results(results, out, label)
    console.print(markdown_report(results))
    console.print(f"results in {stem}.{{json,md}}")


def _choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise typer.BadParameter(f"expected one of {', '.join(choices)}, got {value!r}", param_hint=option)
    return value
