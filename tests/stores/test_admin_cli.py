"""`genrec db` and `genrec admin` against the session's stack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from psycopg_pool import ConnectionPool
from typer.testing import CliRunner

from genrec.cli import admin as admin_cli
from genrec.cli import app
from genrec.config import Settings
from genrec.stores.analytics import AnalyticsEvent, AnalyticsStore, RecommendationLog
from genrec.stores.catalog_repo import CatalogRepo, Item
from genrec.stores.events_repo import EventRepo, UserEvent
from genrec.stores.hot_state import HotState, Interaction
from genrec.stores.model_registry import ModelRegistry
from genrec.stores.users_repo import User, UserRepo

pytestmark = pytest.mark.stack
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_cli.console, "width", 200)  # whole rows on one line, easy to assert on


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_db_status_and_migrate(stack: Settings) -> None:
    out = _run("db", "status")
    assert "extensions and items" in out and "pending" not in out
    assert "up to date" in _run("db", "migrate")


def test_admin_item_and_user(stack: Settings, pool: ConnectionPool, uid: str) -> None:
    CatalogRepo(pool).upsert(Item(f"{uid}i", title="Teapot", category_path="home|kitchen", semantic_ids=[1, 2, 3]))
    out = _run("admin", "item", f"{uid}i")
    assert "Teapot" in out and "home|kitchen" in out and "not indexed" in out
    missing = runner.invoke(app, ["admin", "item", f"{uid}nope"])
    assert missing.exit_code == 1 and "no item" in missing.output

    UserRepo(pool).upsert(User(f"{uid}u", profile={"tier": "gold"}))
    EventRepo(pool).insert(UserEvent(f"{uid}e", "web", f"{uid}u", f"{uid}i", "purchase", datetime.now(UTC), 19.0))
    HotState(stack).apply_interactions_once([Interaction("test", f"{uid}e", f"{uid}u", f"{uid}i")])
    out = _run("admin", "user", f"{uid}u")
    assert "gold" in out and "purchase" in out and f'["{uid}i"]' in out


def test_admin_models(pool: ConnectionPool, uid: str) -> None:
    registry = ModelRegistry(pool)
    registry.register(f"{uid}m", "s3://genrec/m", metrics={"recall": 0.5})
    try:
        out = _run("admin", "models")
        assert f"{uid}m" in out and "candidate" in out
    finally:
        with pool.connection() as conn:
            conn.execute("DELETE FROM model_versions WHERE version = %s", (f"{uid}m",))


class _StoreReader:
    """The admin reader protocol over a store this test owns (the stack's sink owns its own chDB)."""

    def __init__(self, store: AnalyticsStore) -> None:
        self.store = store

    def _window(self, hours: float) -> tuple[datetime, datetime]:
        until = datetime.now(UTC) + timedelta(minutes=1)
        return until - timedelta(hours=hours), until

    def latency(self, hours, algorithm_version=""):
        return [asdict(r) for r in self.store.latency_by_hour(*self._window(hours),
                                                               algorithm_version=algorithm_version)]

    def ctr(self, hours, window_s=1800):
        return [asdict(r) for r in self.store.click_through(*self._window(hours), window_s=window_s)]

    def coverage(self, hours, catalog_size):
        return [asdict(r) for r in self.store.coverage(*self._window(hours), catalog_size)]

    def versions(self, hours, catalog_size=None):
        return [asdict(r) for r in self.store.compare_versions(*self._window(hours), catalog_size=catalog_size)]

    def close(self) -> None:
        pass


@pytest.fixture
def analytics(chdb_settings: Settings, uid: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AnalyticsStore]:
    store = AnalyticsStore(chdb_settings, database=f"cli_{uid}")
    monkeypatch.setattr(admin_cli, "_reader", lambda s: _StoreReader(store))
    yield store
    store.client.command(f"DROP DATABASE IF EXISTS cli_{uid}")
    store.close()


def test_admin_analytics_tables(analytics: AnalyticsStore) -> None:
    now = datetime.now(UTC) - timedelta(minutes=5)
    analytics.insert_recommendation_logs([
        RecommendationLog("r1", "A", ["i1", "i2"], [0.9, 0.8], "v7", "model", 12.0, now),
        RecommendationLog("r2", "B", ["i3"], [0.5], "v8", "popularity", 30.0, now),
    ])
    analytics.insert_events([AnalyticsEvent("e1", "A", "i2", "click", now + timedelta(seconds=20))])
    assert "12.0" in _run("admin", "analytics", "latency", "--version", "v7")
    out = _run("admin", "analytics", "ctr")
    assert "v7" in out and "50.00%" in out
    assert "30.00%" in _run("admin", "analytics", "coverage", "--catalog-size", "10")
    out = _run("admin", "analytics", "versions", "--catalog-size", "10")
    assert "v8" in out and "popularity" in out
