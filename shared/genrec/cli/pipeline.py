"""`genrec pipeline`: batch features (Spark), embedding backfill, train-evaluate-publish, promotion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from genrec.stores.model_registry import ModelRegistry

app = typer.Typer(help="Batch pipelines: Spark features, backfill, train-evaluate-publish, promotion.",
                  no_args_is_help=True)
console = Console()


@contextmanager
def open_registry() -> Iterator[ModelRegistry]:
    from genrec.config import get_settings
    from genrec.stores.model_registry import ModelRegistry
    from genrec.stores.postgres import make_pool

    pool = make_pool(get_settings())
    try:
        yield ModelRegistry(pool)
    finally:
        pool.close()


def _cycle_options(config: Path | None, metric: str, margin: float, min_gain: float, export: bool, force: bool,
                   eval_users: int | None):
    from genrec.pipelines.cycle import CycleOptions
    from genrec.pipelines.gate import GateConfig
    from genrec.training import load_config

    gate = GateConfig(metric=metric, min_relative_gain=margin, min_absolute_gain=min_gain, users_limit=eval_users)
    return CycleOptions(train=load_config(config), gate=gate, export=export, force=force)


@app.command("seed")
def seed(
    dataset: str = typer.Option(..., "--dataset", help="Dataset folder (interactions.csv + items.csv) or s3://."),
    source: str = typer.Option("genrec/seed", "--source", help="Event source name to record."),
) -> None:
    """Load a dataset into PostgreSQL (items + user_events) so the pipeline has data locally."""
    from genrec.config import get_settings
    from genrec.data import load_dataset
    from genrec.pipelines.seed import seed_postgres

    with console.status("seeding PostgreSQL"):
        result = seed_postgres(load_dataset(dataset), get_settings(), source=source)
    console.print(f"{result.items} items upserted, {result.events} new events")


@app.command("features")
def features(
    out: str = typer.Option(..., "--out", help="Output folder or s3:// prefix."),
    events: str | None = typer.Option(None, "--events", help="Events parquet (PostgreSQL/Kafka export), dir or s3://."),
    items: str | None = typer.Option(None, "--items", help="Catalogue parquet, dir or s3://."),
    dataset: str | None = typer.Option(None, "--dataset", help="A dataset folder (interactions.csv + items.csv)."),
    since: datetime | None = typer.Option(None, "--since", help="PostgreSQL export: events at/after (ISO time)."),
    until: datetime | None = typer.Option(None, "--until", help="PostgreSQL export: events before (ISO time)."),
    source: list[str] | None = typer.Option(None, "--source", help="PostgreSQL export: only these sources."),
    max_history: int | None = typer.Option(None, "--max-history"),
    min_length: int = typer.Option(3, "--min-length", min=3),
    direct_s3: bool = typer.Option(False, "--direct-s3", help="Spark reads/writes s3a:// itself (cluster)."),
) -> None:
    """Build sequences, leave-one-out splits and item statistics with Spark (default input: PostgreSQL)."""
    from genrec.config import get_settings
    from genrec.pipelines.features import FeatureParams
    from genrec.pipelines.job import run_features, run_features_from_dataset, run_features_from_postgres

    s = get_settings()
    params = FeatureParams(max_history=max_history or s.model.max_history, min_length=min_length)
    with console.status("Spark feature job running"):
        if dataset:
            manifest = run_features_from_dataset(dataset, out, params, s=s)
        elif events:
            manifest = run_features(events, items, out, params, s=s, direct_s3=direct_s3)
        else:
            manifest = run_features_from_postgres(out, params, s=s, since=since, until=until, sources=source or None,
                                                  direct_s3=direct_s3)
    table = Table(title=f"features -> {out}")
    table.add_column("count")
    table.add_column("value", justify="right")
    for key, value in manifest["counts"].items():
        table.add_row(key, str(value))
    console.print(table)
    console.print(f"time range {manifest['time_range']}, sequences hash {manifest['hashes']['sequences']}")


@app.command("backfill")
def backfill(
    features_uri: str = typer.Option(..., "--features", help="A feature output (dir or s3://)."),
    retrain_tokenizer: bool = typer.Option(False, "--retrain-tokenizer", help="Refit the Semantic-ID tokenizer."),
    config: Path | None = typer.Option(None, "--config", help="Training config (embeddings, tokenizer)."),
    out: Path = typer.Option(Path("artifacts/pipeline/tokenizer"), "--out", help="Where a refit tokenizer goes."),
    write: bool = typer.Option(True, "--write/--no-write", help="Update PostgreSQL and Milvus."),
) -> None:
    """Embed the whole catalogue into the stores; report code changes vs the production artifact."""
    from genrec.config import get_settings
    from genrec.pipelines.backfill import run_backfill
    from genrec.pipelines.cycle import load_production
    from genrec.pipelines.featureset import FeatureSet
    from genrec.training import load_config

    s = get_settings()
    with open_registry() as registry, FeatureSet.open(features_uri, s) as fs:
        _, prod = load_production(registry, s)
        result = run_backfill(fs, s, production=prod, retrain_tokenizer=retrain_tokenizer,
                              train_cfg=load_config(config), out_dir=out, write=write, progress=True)
    console.print_json(json.dumps(result.as_dict()))


@app.command("train")
def train(
    features_uri: str = typer.Option(..., "--features", help="A feature output (dir or s3://)."),
    config: Path | None = typer.Option(None, "--config", help="TOML or YAML training config."),
    metric: str = typer.Option("ndcg@10", "--metric"),
    margin: float = typer.Option(0.01, "--margin", help="Required relative gain over production."),
    min_gain: float = typer.Option(0.0, "--min-gain", help="Required absolute gain over production."),
    eval_users: int | None = typer.Option(None, "--eval-users", help="Evaluate on a fixed user subset."),
    export: bool = typer.Option(True, "--export/--no-export", help="Write the Triton repository too."),
    force: bool = typer.Option(False, "--force", help="Publish even if not better than production."),
) -> None:
    """Train a candidate, compare it with production on the same split, publish it if better."""
    from genrec.config import get_settings
    from genrec.pipelines.cycle import train_evaluate_publish
    from genrec.pipelines.featureset import FeatureSet

    s = get_settings()
    opts = _cycle_options(config, metric, margin, min_gain, export, force, eval_users)
    with open_registry() as registry, FeatureSet.open(features_uri, s) as fs, \
            console.status("training") as status:
        result = train_evaluate_publish(fs, registry, s, opts, step=lambda name: status.update(name))
    console.print(f"candidate {result.version}: {result.candidate}")
    console.print(f"production {result.production_version}: {result.production}")
    console.print(("[green]published[/] " if result.published else "[yellow]not published[/] ")
                  + result.decision.reason)
    if result.published:
        console.print(f"registered candidate {result.version} at {result.published.artifact_uri}")


@app.command("promote")
def promote_cmd(
    version: str = typer.Argument(..., help="A registered model version."),
    canary: float | None = typer.Option(None, "--canary", min=0.0, max=1.0, help="Canary traffic weight instead."),
    redis: bool = typer.Option(True, "--redis/--no-redis", help="Switch serving through Redis too."),
) -> None:
    """Make VERSION production (serving switches to it), or a canary with --canary WEIGHT."""
    from genrec.config import get_settings
    from genrec.pipelines.publish import promote
    from genrec.stores.model_registry import RegistryError

    with open_registry() as registry:
        try:
            mv = promote(version, registry, get_settings(), canary=canary, use_redis=redis)
        except RegistryError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(f"{mv.version}: {mv.status} (traffic weight {mv.traffic_weight:g}) -> {mv.artifact_uri}")


@app.command("rollback")
def rollback_cmd(redis: bool = typer.Option(True, "--redis/--no-redis")) -> None:
    """Retire the production version and restore the one promoted before it."""
    from genrec.config import get_settings
    from genrec.pipelines.publish import rollback
    from genrec.stores.model_registry import RegistryError

    with open_registry() as registry:
        try:
            mv = rollback(registry, get_settings(), use_redis=redis)
        except RegistryError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(f"production is now {mv.version} -> {mv.artifact_uri}")


@app.command("list")
def list_cmd() -> None:
    """Registered model versions, newest first."""
    with open_registry() as registry:
        rows = registry.list()
    table = Table(title="model versions")
    table.add_column("version", no_wrap=True)
    for col in ("status", "traffic", "ndcg@10"):
        table.add_column(col)
    table.add_column("artifact", overflow="fold")
    for mv in rows:
        ndcg = (mv.metrics.get("test") or {}).get("ndcg@10")
        table.add_row(mv.version, mv.status, f"{mv.traffic_weight:g}", f"{ndcg:.4f}" if ndcg is not None else "",
                      mv.artifact_uri)
    console.print(table)


@app.command("nightly")
def nightly(
    config: Path | None = typer.Option(None, "--config", help="TOML or YAML training config."),
    work_dir: Path = typer.Option(Path("artifacts/pipeline"), "--work-dir"),
    features_out: str | None = typer.Option(None, "--features-out", help="Default s3://{bucket}/features/{run}."),
    dataset: str | None = typer.Option(None, "--dataset", help="Use a dataset folder instead of PostgreSQL."),
    events: str | None = typer.Option(None, "--events", help="Use an events parquet export instead."),
    items: str | None = typer.Option(None, "--items", help="Catalogue parquet for --events."),
    since: datetime | None = typer.Option(None, "--since"),
    source: list[str] | None = typer.Option(None, "--source", help="Only these event sources."),
    backfill_step: bool = typer.Option(False, "--backfill/--no-backfill", help="Run the embedding backfill."),
    retrain_tokenizer: bool = typer.Option(False, "--retrain-tokenizer"),
    metric: str = typer.Option("ndcg@10", "--metric"),
    margin: float = typer.Option(0.01, "--margin", help="Required relative gain over production."),
    eval_users: int | None = typer.Option(None, "--eval-users"),
    export: bool = typer.Option(True, "--export/--no-export"),
    canary: float | None = typer.Option(None, "--canary", min=0.0, max=1.0, help="Publish as canary with weight."),
    promote_now: bool = typer.Option(False, "--promote", help="Promote a published candidate to production."),
) -> None:
    """The whole flow on the configured stack, with progress and a summary table."""
    from genrec.config import get_settings
    from genrec.pipelines.nightly import NightlyOptions, run_nightly

    opts = NightlyOptions(
        work_dir=work_dir, features_out=features_out, dataset=dataset, events=events, items=items, since=since,
        sources=source or None, backfill=backfill_step, retrain_tokenizer=retrain_tokenizer,
        cycle=_cycle_options(config, metric, margin, 0.0, export, False, eval_users),
        canary=canary, promote=promote_now,
    )
    run_nightly(opts, get_settings(), console=console)
