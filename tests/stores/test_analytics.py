"""Analytics on chDB (the same SQL runs on a ClickHouse server): quantiles, CTR join, coverage."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from genrec.config import Settings
from genrec.stores.analytics import ALL_VERSIONS, AnalyticsEvent, AnalyticsStore, RecommendationLog

pytestmark = pytest.mark.stack

# Recent enough to survive the 90-day TTL, whole hours so the hourly buckets are predictable.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)


@pytest.fixture
def store(chdb_settings: Settings, uid: str) -> Iterator[AnalyticsStore]:
    s = AnalyticsStore(chdb_settings, database=f"test_{uid}")  # a database per test
    yield s
    s.client.command(f"DROP DATABASE IF EXISTS test_{uid}")
    s.close()


def _log(rid: str, user: str, items: list[str], version: str = "v1", latency: float = 10.0,
         at: datetime = T0, served_by: str = "model") -> RecommendationLog:
    return RecommendationLog(rid, user, items, [1.0 / (i + 1) for i in range(len(items))], version, served_by,
                             latency, at)


def _r7(values: list[float], q: float) -> float:
    """Hand-computed R-7 quantile (what quantileExactInclusive returns): interpolate at (n - 1) q."""
    x = sorted(values)
    h = (len(x) - 1) * q
    lo = math.floor(h)
    return x[lo] if lo + 1 >= len(x) else x[lo] + (h - lo) * (x[lo + 1] - x[lo])


def test_latency_quantiles_equal_hand_computed(store: AnalyticsStore) -> None:
    hour1 = [12, 7, 3, 45, 23, 8, 19, 100, 5, 31, 2, 17, 66, 14, 9, 28, 11, 4, 250, 6]
    hour2 = [1.5, 2.5, 40.0]
    logs = [_log(f"a{i}", "u", ["x"], latency=v, at=T0 + timedelta(minutes=2 * i)) for i, v in enumerate(hour1)]
    logs += [_log(f"b{i}", "u", ["x"], latency=v, at=T0 + timedelta(hours=1, minutes=i)) for i, v in enumerate(hour2)]
    logs.append(_log("other", "u", ["x"], "v2", latency=1000.0, at=T0))
    store.insert_recommendation_logs(logs, batch_size=7)  # several insert blocks

    rows = store.latency_by_hour(T0, T0 + timedelta(hours=3), algorithm_version="v1")
    assert [(r.hour, r.requests) for r in rows] == [(T0, 20), (T0 + timedelta(hours=1), 3)]
    # sorted hour1: 2 3 4 5 6 7 8 9 11 12 14 17 19 23 28 31 45 66 100 250
    # p99: h = 19 * 0.99 = 18.81 -> 100 + 0.81 * (250 - 100) = 221.5
    assert rows[0].p99_ms == pytest.approx(221.5)
    assert rows[0].p95_ms == pytest.approx(100 + 0.05 * 150)  # h = 18.05
    assert rows[0].p50_ms == pytest.approx(13.0)  # h = 9.5 -> (12 + 14) / 2
    for row, values in zip(rows, (hour1, hour2), strict=True):
        got = (row.p50_ms, row.p95_ms, row.p99_ms)
        assert got == pytest.approx([_r7(values, q) for q in (0.5, 0.95, 0.99)])
        assert got == pytest.approx(np.percentile(values, [50, 95, 99]))  # numpy's default is R-7 too
    assert store.latency_by_hour(T0, T0 + timedelta(hours=3))[0].requests == 21  # '' = every version


def test_click_through_joins_clicks_within_the_window(store: AnalyticsStore) -> None:
    w = 600
    store.insert_recommendation_logs([
        _log("r1", "A", ["i1", "i2", "i3"], "v1", at=T0),
        _log("r2", "B", ["i1", "i4"], "v2", at=T0 + timedelta(seconds=100)),
        _log("r3", "A", ["i1"], "v1", at=T0 + timedelta(seconds=30)),
    ])
    ev = [
        ("A", "i1", "click", 60),        # counts for r1 and for r3
        ("A", "i2", "click", -10),       # before r1 was served
        ("A", "i3", "click", w + 1),     # after r1's window
        ("B", "i1", "click", 30),        # B saw i1 in r2 only later (t=100)
        ("A", "i2", "view", 5),          # not a click
        ("B", "i4", "click", 200),       # counts for r2 ...
        ("B", "i4", "click", 250),       # ... once
        ("C", "i1", "click", 40),        # a user who was never served i1
    ]
    store.insert_events(AnalyticsEvent(f"e{n}", u, i, t, T0 + timedelta(seconds=dt)) for n, (u, i, t, dt)
                        in enumerate(ev))
    rows = {r.algorithm_version: r for r in store.click_through(T0, T0 + timedelta(hours=1), window_s=w)}
    assert (rows["v1"].impressions, rows["v1"].clicks) == (4, 2)
    assert (rows["v2"].impressions, rows["v2"].clicks) == (2, 1)
    assert rows["v1"].ctr == pytest.approx(0.5) and rows["v2"].ctr == pytest.approx(0.5)
    # views count as clicks when asked: r1:i2 is viewed 5 s after serving
    views = {r.algorithm_version: r.clicks for r in store.click_through(
        T0, T0 + timedelta(hours=1), window_s=w, click_types=("click", "view"))}
    assert views == {"v1": 3, "v2": 1}
    # a window shorter than A's 60 s delay leaves r3's click only (30 s after serving)
    short = {r.algorithm_version: r.clicks for r in store.click_through(T0, T0 + timedelta(hours=1), window_s=45)}
    assert short == {"v1": 1, "v2": 0}


def test_coverage_and_version_comparison(store: AnalyticsStore) -> None:
    store.insert_recommendation_logs([
        _log("r1", "A", ["i1", "i2", "i3"], "v1", latency=10, at=T0),
        _log("r2", "B", ["i1", "i4"], "v2", latency=30, at=T0, served_by="fallback"),
        _log("r3", "A", ["i1"], "v1", latency=20, at=T0 + timedelta(minutes=5)),
        _log("old", "A", ["i9"], "v1", at=T0 - timedelta(days=2)),  # outside the range
    ])
    store.insert_events([AnalyticsEvent("e1", "B", "i4", "click", T0 + timedelta(seconds=5))])
    cov = store.coverage(T0, T0 + timedelta(hours=1), catalog_size=10)
    assert [(c.algorithm_version, c.distinct_items, c.coverage) for c in cov] == [
        (ALL_VERSIONS, 4, 0.4), ("v1", 3, 0.3), ("v2", 2, 0.2)]

    rows = {r.algorithm_version: r for r in store.compare_versions(T0, T0 + timedelta(hours=1), catalog_size=10)}
    v1, v2 = rows["v1"], rows["v2"]
    assert (v1.requests, v1.users, v1.impressions, v1.clicks, v1.distinct_items) == (2, 1, 4, 0, 3)
    assert (v1.p50_ms, v1.coverage, v1.served_by) == (pytest.approx(15.0), pytest.approx(0.3), {"model": 2})
    assert (v2.requests, v2.clicks, v2.ctr, v2.served_by) == (1, 1, 0.5, {"fallback": 1})


def test_schema_has_ttl_partitions_and_merges_drop_expired_rows(store: AnalyticsStore, stack: Settings) -> None:
    store.ensure_schema()  # idempotent
    ddl = store.client.command(f"SHOW CREATE TABLE {store.db}.recommendation_logs")
    assert "PARTITION BY toYYYYMM(timestamp)" in ddl
    assert f"TTL toDateTime(timestamp) + toIntervalDay({stack.clickhouse.log_ttl_days})" in ddl
    assert "LowCardinality(String)" in ddl and "DateTime64(3, \\'UTC\\')" in ddl
    ancient = T0 - timedelta(days=stack.clickhouse.log_ttl_days + 5)
    store.insert_recommendation_logs([_log("expired", "u", ["x"], at=ancient), _log("kept", "u", ["x"])])
    store.client.command(f"OPTIMIZE TABLE {store.db}.recommendation_logs FINAL")  # TTL applies at merges
    rows = store.client.query(f"SELECT request_id FROM {store.db}.recommendation_logs").result_rows
    assert rows == [("kept",)]


def test_round_trip_keeps_arrays_and_utc(store: AnalyticsStore) -> None:
    at = T0 + timedelta(milliseconds=123)
    store.insert_recommendation_logs([RecommendationLog("r", "u'); DROP TABLE x;--", ["a", "b'c"], [0.5, 0.25],
                                                        "v", "model", 3.5, at)])
    row = store.client.query(f"SELECT user_id, items, scores, timestamp FROM {store.db}.recommendation_logs"
                             ).result_rows[0]
    assert row == ("u'); DROP TABLE x;--", ["a", "b'c"], [0.5, 0.25], at)


def test_ab_arms_count_lists_clicks_and_conversions_by_request_id(store: AnalyticsStore) -> None:
    logs, events = [], []
    for k in range(40):
        arm = "canary" if k % 4 == 0 else "production"  # 10 canary lists, 30 production
        log = RecommendationLog(f"r{k}", f"u{k % 20}", ["i1", "i2"], [1.0, 0.5], "v2" if arm == "canary" else "v1",
                                "model", 5.0, T0 + timedelta(minutes=k), variant=arm)
        logs.append(log)
        if k % 2 == 0:  # every canary list and half the production ones get clicked, some twice
            events += [AnalyticsEvent(f"c{k}-{n}", log.user_id, "i1", "click", log.timestamp + timedelta(seconds=5),
                                      request_id=log.request_id) for n in range(1 + k % 3)]
        if k % 8 == 0:
            events.append(AnalyticsEvent(f"p{k}", log.user_id, "i2", "purchase", log.timestamp + timedelta(minutes=1),
                                         request_id=log.request_id))
    events.append(AnalyticsEvent("x", "u1", "i1", "click", T0, request_id=""))  # not from a list: no arm
    store.insert_recommendation_logs(logs + logs[:5])  # a re-delivery counts once
    store.insert_events(events)
    arms = {r.variant: r for r in store.ab_arms(T0 - timedelta(hours=1), T0 + timedelta(hours=2))}
    assert (arms["canary"].lists, arms["canary"].clicked, arms["canary"].converted) == (10, 10, 5)
    assert (arms["production"].lists, arms["production"].clicked, arms["production"].converted) == (30, 10, 0)
    assert arms["canary"].versions == ["v2"] and arms["production"].users == 15
    hourly = store.ab_arms(T0 - timedelta(hours=1), T0 + timedelta(hours=2), by_hour=True)
    assert {r.hour for r in hourly} == {T0}  # 40 minutes: one hour
    assert sum(r.lists for r in hourly) == 40


def test_a_table_from_the_first_schema_gets_the_added_columns(chdb_settings: Settings, uid: str) -> None:
    from genrec.stores.analytics_schema import single_node_ddl

    db = f"test_old_{uid}"
    first = AnalyticsStore(chdb_settings, database=db, create_schema=False)
    try:
        for ddl in single_node_ddl(db, 90):
            if not ddl.startswith("ALTER"):  # the store as created before the A/B arm was logged
                first.client.command(ddl)
        first.client.command(f"INSERT INTO {db}.recommendation_logs (request_id, user_id, items, scores, "
                             "algorithm_version, served_by, latency_ms, timestamp) VALUES "
                             f"('old', 'u', ['i'], [1.0], 'v1', 'model', 1.0, '{T0:%Y-%m-%d %H:%M:%S}')")
        first.ensure_schema()
        first.insert_recommendation_logs([RecommendationLog("new", "u", ["i"], [1.0], "v1", "model", 1.0, T0,
                                                            variant="canary")])
        rows = dict(first.client.query(f"SELECT request_id, variant FROM {db}.recommendation_logs").result_rows)
        assert rows == {"old": "production", "new": "canary"}
    finally:
        first.client.command(f"DROP DATABASE IF EXISTS {db}")
        first.close()
