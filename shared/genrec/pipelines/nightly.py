"""``genrec pipeline nightly``: features -> (backfill) -> train -> gate -> publish -> (promote).

Runs locally on the embedded stack (Spark local[2]) or in the CronJob the Pulumi program
creates (``genrec deploy render`` shows it); rich shows the current step and a summary table at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from genrec.config import Settings, get_settings
from genrec.pipelines.backfill import BackfillResult, run_backfill
from genrec.pipelines.cycle import CycleOptions, CycleResult, load_production, train_evaluate_publish
from genrec.pipelines.features import FeatureParams
from genrec.pipelines.featureset import FeatureSet
from genrec.pipelines.publish import promote
from genrec.stores import objects
from genrec.stores.model_registry import ModelRegistry, ModelVersion


@dataclass
class NightlyOptions:
    work_dir: Path = Path("artifacts/pipeline")
    features_out: str | None = None  # default: s3://{bucket}/features/{run_id}
    dataset: str | None = None  # a dataset folder instead of PostgreSQL (dev / demo)
    events: str | None = None  # or a parquet events export (e.g. a Kafka topic dump) ...
    items: str | None = None  # ... and its catalogue
    since: datetime | None = None
    until: datetime | None = None
    sources: list[str] | None = None
    min_length: int = 3
    backfill: bool = False
    retrain_tokenizer: bool = False
    cycle: CycleOptions = field(default_factory=CycleOptions)
    canary: float | None = None  # after publishing: make it a canary with this weight ...
    promote: bool = False  # ... or make it production right away
    use_redis: bool = True  # switch serving through Redis too (every replica follows)


@dataclass
class NightlyResult:
    run_id: str
    features: dict[str, Any]
    cycle: CycleResult | None = None
    backfill: BackfillResult | None = None
    promoted: ModelVersion | None = None
    steps: list[tuple[str, float]] = field(default_factory=list)


class _Steps:
    """Advance the progress bar and record how long each named step took."""

    def __init__(self, bar: Progress, task: Any, record: list[tuple[str, float]]) -> None:
        self.bar, self.task, self.record = bar, task, record
        self.name, self.t0 = "", time.perf_counter()

    def __call__(self, name: str) -> None:
        if self.name:
            self.record.append((self.name, round(time.perf_counter() - self.t0, 1)))
            self.bar.advance(self.task)
        self.name, self.t0 = name, time.perf_counter()
        self.bar.update(self.task, description=name or "done")


def run_nightly(opts: NightlyOptions, s: Settings | None = None, *, spark: Any = None,
                console: Console | None = None) -> NightlyResult:
    from genrec.pipelines.job import run_features, run_features_from_dataset, run_features_from_postgres
    from genrec.stores.postgres import make_pool

    s = s or get_settings()
    console = console or Console()
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    features_out = opts.features_out or objects.object_uri(f"features/{run_id}", s)
    work = Path(opts.work_dir) / run_id
    work.mkdir(parents=True, exist_ok=True)
    params = FeatureParams(max_history=opts.cycle.train.max_history, min_length=opts.min_length)
    steps: list[tuple[str, float]] = []
    # features, train, evaluate, publish (+ backfill, + promote); a rejected candidate skips publish
    n_steps = 4 + int(opts.backfill) + int(opts.promote or opts.canary is not None)
    pool = make_pool(s)
    registry = ModelRegistry(pool)
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            step = _Steps(bar, bar.add_task("starting", total=n_steps), steps)
            step("features (Spark)")
            if opts.dataset:
                manifest = run_features_from_dataset(opts.dataset, features_out, params, spark=spark, s=s)
            elif opts.events:
                manifest = run_features(opts.events, opts.items, features_out, params, spark=spark, s=s)
            else:
                manifest = run_features_from_postgres(features_out, params, spark=spark, s=s, since=opts.since,
                                                      until=opts.until, sources=opts.sources)
            result = NightlyResult(run_id, manifest, steps=steps)
            with FeatureSet.open(features_out, s) as fs:
                if opts.backfill:
                    step("embedding backfill")
                    _, prod = load_production(registry, s)
                    result.backfill = run_backfill(fs, s, production=prod, retrain_tokenizer=opts.retrain_tokenizer,
                                                   train_cfg=opts.cycle.train, out_dir=work / "tokenizer")
                result.cycle = train_evaluate_publish(fs, registry, s, opts.cycle, work_dir=work, step=step)
            published = result.cycle.published
            if published and (opts.promote or opts.canary is not None):
                step("promote")
                result.promoted = promote(published.version, registry, s, canary=opts.canary,
                                          use_redis=opts.use_redis)
            step("")
            bar.update(step.task, completed=n_steps)
    finally:
        pool.close()
    console.print(summary_table(result))
    return result


def summary_table(r: NightlyResult) -> Table:
    t = Table(title=f"nightly run {r.run_id}", show_header=True)
    t.add_column("what")
    t.add_column("value", overflow="fold")
    c = r.features.get("counts", {})
    t.add_row("features", str(r.features.get("output")))
    t.add_row("events", f"{c.get('raw_events', 0)} raw, {c.get('duplicate_events', 0)} duplicates, "
                        f"{c.get('non_positive_events', 0)} not positive, {c.get('late_events', 0)} late")
    t.add_row("users / items", f"{c.get('users', 0)} users ({c.get('users_in_split', 0)} in split, "
                               f"{c.get('short_users', 0)} too short), {c.get('items', 0)} items")
    t.add_row("time range", f"{r.features.get('time_range', {}).get('min_ts')} .. "
                            f"{r.features.get('time_range', {}).get('max_ts')}")
    if r.backfill:
        b = r.backfill
        t.add_row("backfill", f"{b.items} items, PG {b.postgres_updated}, Milvus {b.milvus_upserted}, "
                              f"tokenizer {b.tokenizer}, code changes {b.code_changes}")
    if r.cycle:
        cy = r.cycle
        metric = cy.decision.metric
        t.add_row("candidate", f"{cy.version}: {metric} {cy.candidate.get(metric, 0):.4f}, "
                               f"recall@10 {cy.candidate.get('recall@10', 0):.4f}")
        if cy.production is not None:
            t.add_row("production", f"{cy.production_version}: {metric} {cy.production.get(metric, 0):.4f}, "
                                    f"recall@10 {cy.production.get('recall@10', 0):.4f}")
        t.add_row("gate", ("[green]publish[/]: " if cy.decision.publish else "[yellow]keep production[/]: ")
                  + cy.decision.reason)
        if cy.code_changes:
            t.add_row("code changes", str(cy.code_changes))
        if cy.published:
            t.add_row("published", f"{cy.published.artifact_uri} (serving: {cy.published.serving_uri})")
    if r.promoted:
        t.add_row("promoted", f"{r.promoted.version} -> {r.promoted.status} (traffic {r.promoted.traffic_weight})")
    t.add_row("steps", ", ".join(f"{name} {sec}s" for name, sec in r.steps))
    return t
