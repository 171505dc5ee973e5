"""The analytics DDL without a server: single-node statements unchanged, cluster statements
replicated per shard behind Distributed tables, and what the store sends in each mode."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from genrec.config import Settings
from genrec.stores.analytics import AnalyticsEvent, AnalyticsStore, RecommendationLog
from genrec.stores.analytics_schema import (
    ADDED_COLUMNS,
    EVENTS,
    RECOMMENDATION_LOGS,
    TABLES,
    cluster_ddl,
    cluster_engines,
    insert_settings,
    schema_ddl,
    single_node_ddl,
)

_T = datetime(2025, 1, 1, tzinfo=UTC)

# The statements the store sent before clusters existed, verbatim: chDB must keep getting these.
OLD_SINGLE_NODE = [
    "CREATE DATABASE IF NOT EXISTS genrec",
    """
CREATE TABLE IF NOT EXISTS genrec.recommendation_logs (
    request_id         String,
    user_id            String,
    items              Array(String),
    scores             Array(Float32),
    algorithm_version  LowCardinality(String),
    served_by          LowCardinality(String),
    latency_ms         Float32,
    timestamp          DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (algorithm_version, toStartOfHour(timestamp), request_id)
TTL toDateTime(timestamp) + toIntervalDay(90)
""",
    """
CREATE TABLE IF NOT EXISTS genrec.events (
    event_id     String,
    source       LowCardinality(String),
    user_id      String,
    item_id      String,
    event_type   LowCardinality(String),
    value        Float64,
    request_id   String,
    timestamp    DateTime64(3, 'UTC'),
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (event_type, user_id, item_id, timestamp, source, event_id)
TTL toDateTime(timestamp) + toIntervalDay(90)
""",
]


def _clause(ddl: str, keyword: str) -> str:
    (line,) = [ln for ln in ddl.splitlines() if ln.startswith(keyword + " ")]
    return line


def _columns(ddl: str) -> str:
    return ddl[ddl.index("(\n") + 2:ddl.index("\n) ENGINE")]


def _by_name(statements: list[str]) -> dict[str, str]:
    return {m.group(1): s for s in statements[1:] if (m := re.search(r"CREATE TABLE IF NOT EXISTS \w+\.(\w+)", s))}


# Columns added since, to new and old tables alike.
ADDED = ["ALTER TABLE genrec.recommendation_logs ADD COLUMN IF NOT EXISTS variant LowCardinality(String) "
         "DEFAULT 'production'"]


def test_single_node_ddl_is_unchanged_and_later_columns_are_added() -> None:
    assert single_node_ddl("genrec", 90) == OLD_SINGLE_NODE + ADDED
    assert schema_ddl("genrec", 90, None) == OLD_SINGLE_NODE + ADDED
    assert schema_ddl("genrec", 90, "") == OLD_SINGLE_NODE + ADDED


def test_cluster_ddl_replicates_each_table_behind_a_distributed_one() -> None:
    statements = cluster_ddl("analytics", 30, "genrec")
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS analytics ON CLUSTER genrec"
    assert all(" ON CLUSTER genrec " in s for s in statements[1:])
    tables = _by_name(statements)
    assert list(tables) == ["recommendation_logs_local", "recommendation_logs", "events_local", "events"]
    # columns added since: on every host, to the local table first, then to the Distributed one over it
    assert statements[-2:] == [
        f"ALTER TABLE analytics.{name} ON CLUSTER genrec ADD COLUMN IF NOT EXISTS variant LowCardinality(String) "
        "DEFAULT 'production'" for name in ("recommendation_logs_local", "recommendation_logs")]
    single = _by_name(single_node_ddl("analytics", 30))
    for t in TABLES:
        local, dist = tables[f"{t.name}_local"], tables[t.name]
        assert re.search(
            rf"\) ENGINE = ReplicatedReplacingMergeTree\('/clickhouse/tables/\{{shard\}}/\{{database\}}/{t.name}_local'"
            r", '\{replica\}'\)\n", local)
        # the same table as on one node, only replicated
        for keyword in ("PARTITION BY", "ORDER BY", "TTL"):
            assert _clause(local, keyword) == _clause(single[t.name], keyword)
        assert _clause(local, "TTL") == "TTL toDateTime(timestamp) + toIntervalDay(30)"
        assert _columns(local) == _columns(dist) == _columns(single[t.name])
        # the name the store uses is the Distributed table, sharded by user
        assert dist.rstrip().endswith(
            f") ENGINE = Distributed(genrec, analytics, {t.name}_local, cityHash64(user_id))")
        assert "PARTITION BY" not in dist and "TTL" not in dist


def test_sharding_keeps_a_users_rows_and_duplicates_together() -> None:
    for t in TABLES:
        assert t.sharding_key == "cityHash64(user_id)"
        assert "user_id " in t.columns
    # events deduplicate on a key that contains user_id, so every copy of a row hashes alike
    assert "user_id" in EVENTS.order_by
    assert RECOMMENDATION_LOGS.local == "recommendation_logs_local"


@pytest.mark.parametrize("cluster", ["gen rec", "genrec; DROP DATABASE x", "1cluster"])
def test_cluster_name_must_be_an_identifier(cluster: str) -> None:
    with pytest.raises(ValueError, match="cluster"):
        cluster_ddl("genrec", 90, cluster)


def test_inserts_wait_for_the_shards_only_on_a_cluster() -> None:
    assert insert_settings(None) == {}
    assert insert_settings("genrec") == {"insert_distributed_sync": 1}


class FakeClient:
    """Records what the store sends; answers DESCRIBE and system.tables."""

    def __init__(self, engines: dict[str, str] | None = None) -> None:
        self.commands: list[str] = []
        self.inserts: list[tuple[str, dict[str, Any] | None]] = []
        self.engines = engines or {}

    def command(self, sql: str) -> None:
        self.commands.append(sql)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> SimpleNamespace:
        if sql.startswith("DESCRIBE TABLE"):
            table = next(t for t in TABLES if sql.endswith("." + t.name))
            columns = [*table.columns.splitlines(), *(c for added, c in ADDED_COLUMNS if added is table)]
            return SimpleNamespace(result_rows=[(ln.split()[0], "String") for ln in columns])
        assert "system.tables" in sql and parameters == {"db": "genrec"}
        return SimpleNamespace(result_rows=list(self.engines.items()))

    def insert(self, table: str, data: list, *, settings: dict[str, Any] | None = None, **_kw: Any) -> None:
        self.inserts.append((table, settings))

    def close(self) -> None:
        pass


def _settings(cluster: str | None) -> Settings:
    return Settings(clickhouse={"url": "http://u:p@ch:8123/genrec", "cluster": cluster})


def test_store_sends_single_node_ddl_without_cluster() -> None:
    client = FakeClient()
    store = AnalyticsStore(_settings(None), client=client)
    assert client.commands == OLD_SINGLE_NODE + ADDED
    store.insert_events([AnalyticsEvent("e", "u", "i", "click", _T)])
    assert client.inserts == [("events", None)]


def test_store_creates_the_cluster_schema_and_inserts_synchronously() -> None:
    client = FakeClient(cluster_engines())
    store = AnalyticsStore(_settings("genrec"), client=client)
    assert client.commands == cluster_ddl("genrec", 90, "genrec")
    store.insert_recommendation_logs([RecommendationLog("r", "u", ["i"], [1.0], "v1", "model", 1.0, _T)])
    store.insert_events([AnalyticsEvent("e", "u", "i", "click", _T)])
    assert client.inserts == [("recommendation_logs", {"insert_distributed_sync": 1}),
                              ("events", {"insert_distributed_sync": 1})]


def test_store_refuses_a_plain_table_left_from_before_the_cluster() -> None:
    engines = {**cluster_engines(), "events": "ReplacingMergeTree"}  # created before cluster was set
    with pytest.raises(RuntimeError, match="'events': 'ReplacingMergeTree'"):
        AnalyticsStore(_settings("genrec"), client=FakeClient(engines))
    missing = {k: v for k, v in cluster_engines().items() if k != "recommendation_logs_local"}
    with pytest.raises(RuntimeError, match="'recommendation_logs_local': None"):
        AnalyticsStore(_settings("genrec"), client=FakeClient(missing))
