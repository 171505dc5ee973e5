"""`genrec admin`: look at items, users, model versions and analytics from the terminal."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from genrec.config import Settings, get_settings
from genrec.stores.catalog_repo import CatalogRepo
from genrec.stores.events_repo import EventRepo
from genrec.stores.model_registry import ModelRegistry
from genrec.stores.postgres import connect
from genrec.stores.users_repo import UserRepo

app = typer.Typer(help="Inspect items, users, model versions and analytics.", no_args_is_help=True)
analytics_app = typer.Typer(help="Serving analytics (ClickHouse / chDB).", no_args_is_help=True)
app.add_typer(analytics_app, name="analytics")
console = Console()

HoursOpt = typer.Option(24, "--hours", min=1, help="Look back this many hours.")


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


@contextmanager
def _db(s: Settings) -> Iterator[psycopg.Connection]:
    try:
        conn = connect(s, vector=True)
    except psycopg.Error as exc:
        _fail(f"PostgreSQL: {exc}")
    with conn:
        yield conn


def _optional(what: str, fn: Callable[[], Any]) -> Any:
    """Secondary stores are best effort: show what is there, say what is not."""
    try:
        return fn()
    except Exception as exc:
        console.print(f"[yellow]{what} unavailable:[/] {type(exc).__name__}: {exc}")
        return None


def _kv(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for k, v in rows.items():
        table.add_row(k, v if isinstance(v, str) else json.dumps(v, default=str))
    return table


def _table(title: str, *columns: str, justify: str = "left") -> Table:
    # fold, not ellipsis: ids and versions must stay complete on narrow terminals
    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold", justify=justify)
    return table


def _ts(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


@app.command()
def item(item_id: str) -> None:
    """One catalogue item: PostgreSQL row, its Milvus vector entry and popularity."""
    s = get_settings()
    with _db(s) as conn:
        it = CatalogRepo(conn).get(item_id)
    if it is None:
        _fail(f"no item {item_id!r}")
    emb = "-"
    if it.embedding is not None:
        emb = f"dim {it.embedding.shape[0]}, norm {float((it.embedding**2).sum()) ** 0.5:.3f}"
    console.print(_kv(f"item {item_id}", {
        "title": it.title, "category": it.category_path, "status": it.status, "semantic ids": it.semantic_ids,
        "embedding": emb, "attributes": it.attributes, "created": _ts(it.created_at), "updated": _ts(it.updated_at),
    }))

    def milvus() -> str:
        from genrec.stores.milvus import ItemVectorIndex

        index = ItemVectorIndex(s)
        try:
            found = index.get([item_id]) if index.client.has_collection(index.collection) else []
        finally:
            index.close()
        return f"indexed, semantic ids {list(found[0].semantic_ids)}" if found else "not indexed"

    def popularity() -> str:
        from genrec.stores.hot_state import HotState

        return f"{HotState(s).popularity(item_id):.3f}"

    extra = {"milvus": _optional("Milvus", milvus), "popularity (global)": _optional("Redis", popularity)}
    console.print(_kv("serving state", {k: v for k, v in extra.items() if v is not None}))


@app.command()
def user(user_id: str, events: int = typer.Option(20, "--events", min=1, help="How many recent events.")) -> None:
    """One user: profile, recent events (PostgreSQL) and the hot sequence and features (Redis)."""
    s = get_settings()
    with _db(s) as conn:
        profile = UserRepo(conn).get(user_id)
        recent = EventRepo(conn).recent(user_id, events)
    if profile is None and not recent:
        _fail(f"no user {user_id!r}")
    if profile is not None:
        console.print(_kv(f"user {user_id}", {
            "profile": profile.profile, "preferences": profile.preferences,
            "embedding": "-" if profile.embedding is None else f"dim {profile.embedding.shape[0]}",
            "created": _ts(profile.created_at), "last active": _ts(profile.last_active_at),
        }))
    table = _table(f"recent events ({len(recent)})", "time", "type", "item", "value", "source", "event id")
    for e in recent:
        table.add_row(_ts(e.ts), e.event_type, e.item_id, "-" if e.value is None else f"{e.value:g}", e.source,
                      e.event_id)
    console.print(table)

    def hot() -> None:
        from genrec.stores.hot_state import HotState

        state = HotState(s)
        seq = state.recent_items(user_id)
        console.print(_kv("redis", {
            "sequence length": str(len(seq)), "last 20 (newest last)": seq[-20:],
            "features": state.user_features(user_id),
            "cached recommendations": "yes" if state.cached_recommendations(user_id) is not None else "no",
        }))

    _optional("Redis", hot)


@app.command()
def models() -> None:
    """Model versions, newest first, with status and traffic weight."""
    s = get_settings()
    with _db(s) as conn:
        registry = ModelRegistry(conn)
        versions, split = registry.list(), registry.traffic_split()
    table = _table("model versions", "version", "status", "traffic", "artifact", "metrics", "created", "promoted")
    for m in versions:
        share = f"{split[m.version]:.0%}" if m.version in split else "-"
        table.add_row(m.version, m.status, share, m.artifact_uri, json.dumps(m.metrics), _ts(m.created_at),
                      _ts(m.promoted_at))
    console.print(table)


# -- analytics -----------------------------------------------------------------------------
def _reader(s: Settings):
    """Locally the analytics-sink service owns chDB (one engine per path), so ask it over HTTP;
    with a ClickHouse server, query the store directly. Same rows either way."""
    from genrec.apps.admin_analytics import make_reader

    return make_reader(s)


def _rows(query: Callable[[Any], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    s = get_settings()
    try:
        reader = _reader(s)
        try:
            return query(reader)
        finally:
            reader.close()
    except Exception as exc:
        _fail(f"analytics store: {exc}")


def _catalog_size(s: Settings, given: int | None) -> int:
    if given is not None:
        return given
    with _db(s) as conn:
        return CatalogRepo(conn).count(status="active")


def _hour(value: Any) -> str:
    return (value.isoformat() if isinstance(value, datetime) else str(value))[:16].replace("T", " ")


@analytics_app.command()
def latency(hours: int = HoursOpt, version: str = typer.Option("", help="Only this algorithm version.")) -> None:
    """Requests and p50/p95/p99 latency per hour (exact quantiles, linear interpolation)."""
    rows = _rows(lambda r: r.latency(hours, algorithm_version=version))
    table = _table("recommendation latency per hour", "hour (UTC)", "requests", "p50 ms", "p95 ms", "p99 ms",
                   justify="right")
    for r in rows:
        table.add_row(_hour(r["hour"]), str(r["requests"]), f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}",
                      f"{r['p99_ms']:.1f}")
    console.print(table)


@analytics_app.command()
def ctr(hours: int = HoursOpt, window: int = typer.Option(1800, help="Click window after serving, seconds.")
        ) -> None:
    """Click-through of served recommendations per algorithm version."""
    rows = _rows(lambda r: r.ctr(hours, window_s=window))
    table = _table(f"click-through (click within {window}s of serving)", "version", "impressions", "clicks", "CTR",
                   justify="right")
    for r in rows:
        table.add_row(r["algorithm_version"], str(r["impressions"]), str(r["clicks"]), f"{r['ctr']:.2%}")
    console.print(table)


@analytics_app.command()
def coverage(hours: int = HoursOpt, catalog_size: int | None = typer.Option(
        None, help="Catalogue size (default: active items in PostgreSQL).")) -> None:
    """Distinct recommended items as a share of the catalogue."""
    size = _catalog_size(get_settings(), catalog_size)
    if size <= 0:
        _fail("the catalogue is empty; pass --catalog-size")
    rows = _rows(lambda r: r.coverage(hours, size))
    table = _table(f"item coverage (catalogue: {size} items)", "version", "distinct items", "coverage", justify="right")
    for r in rows:
        table.add_row(r["algorithm_version"], str(r["distinct_items"]), f"{r['coverage']:.2%}")
    console.print(table)


@analytics_app.command()
def versions(hours: int = HoursOpt, catalog_size: int | None = typer.Option(
        None, help="Catalogue size (default: active items in PostgreSQL).")) -> None:
    """Algorithm versions side by side: traffic, latency, CTR, coverage, who served."""
    size = _catalog_size(get_settings(), catalog_size) or None
    rows = _rows(lambda r: r.versions(hours, catalog_size=size))
    table = _table("algorithm versions", "version", "requests", "users", "p50 ms", "p99 ms", "CTR", "coverage",
                   "served by", justify="right")
    for r in rows:
        served = ", ".join(f"{k} {v}" for k, v in sorted(r["served_by"].items()))
        cov = "-" if r["coverage"] is None else f"{r['coverage']:.2%}"
        table.add_row(r["algorithm_version"], str(r["requests"]), str(r["users"]), f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", f"{r['ctr']:.2%}", cov, served)
    console.print(table)
