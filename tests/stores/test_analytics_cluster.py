"""The cluster schema on chDB, as far as one process can hold a cluster.

chDB has no Keeper: it refuses ON CLUSTER ("Replicated DDL queries are disabled") and leaves a
Replicated table read-only. So the real statements are only parsed here; they run with those two
parts swapped out, on clusters whose shards are this process itself (a shard at localhost with
chDB's tcp_port counts as local: no connection, the Distributed engine still plans every query
as distributed). `genrec` has one such shard: every admin query must return through the
Distributed tables what it returns from plain tables. `two_shards` names the same node twice:
inserts still write each row once, reads see it twice, and ClickHouse applies its multi-shard
rules (a JOIN or IN of two Distributed tables is refused), which the admin queries must pass.
Replication and shards on separate nodes are not checked here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from genrec.config import Settings
from genrec.stores.analytics import AnalyticsEvent, AnalyticsStore, RecommendationLog
from genrec.stores.analytics_schema import TABLES, cluster_ddl, single_node_ddl

CLUSTER = "genrec"
TWO_SHARDS = "two_shards"
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
# tcp_port equal to the replica's port makes the shard local (chDB listens on nothing).
_LOCAL_SHARD = "<shard><replica><host>localhost</host><port>9000</port></replica></shard>"
CONFIG = f"""<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers>
    <{CLUSTER}>{_LOCAL_SHARD}</{CLUSTER}>
    <{TWO_SHARDS}>{_LOCAL_SHARD}{_LOCAL_SHARD}</{TWO_SHARDS}>
  </remote_servers>
</clickhouse>
"""


def _without_keeper(ddl: str) -> str:
    ddl = re.sub(r" ON CLUSTER \w+", "", ddl)
    return re.sub(r"ReplicatedReplacingMergeTree\('[^']*', '\{replica\}'\)", "ReplacingMergeTree", ddl)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    base = tmp_path_factory.mktemp("chdb-cluster")
    (base / "config.xml").write_text(CONFIG)
    c = clickhouse_connect.get_client(interface="chdb", path=str(base / "data"), tz_mode="aware",
                                      chdb_options={"config-file": str(base / "config.xml")})
    yield c
    c.close()  # chDB holds one path per process: free it for the other analytics tests


def _store(client, db: str, cluster: str | None, tmp: Path) -> AnalyticsStore:
    s = Settings(clickhouse={"chdb_path": tmp, "cluster": cluster})
    statements = cluster_ddl(db, s.clickhouse.log_ttl_days, cluster) if cluster else single_node_ddl(
        db, s.clickhouse.log_ttl_days)
    for ddl in statements:
        client.command(_without_keeper(ddl))
    return AnalyticsStore(s, client=client, database=db, create_schema=False)


def test_real_cluster_statements_parse(client) -> None:
    for ddl in cluster_ddl("genrec", 90, CLUSTER):
        formatted = client.query("SELECT formatQuery({q:String})", parameters={"q": ddl}).result_rows[0][0]
        assert f"ON CLUSTER {CLUSTER}" in formatted


def _feed(store: AnalyticsStore, *, redeliver: bool = True) -> None:
    logs = [
        RecommendationLog("r1", "A", ["i1", "i2", "i3"], [1.0, 0.5, 0.3], "v1", "model", 10.0, T0),
        RecommendationLog("r2", "B", ["i1", "i4"], [1.0, 0.5], "v2", "fallback", 30.0, T0 + timedelta(seconds=100)),
        RecommendationLog("r3", "A", ["i1"], [1.0], "v1", "model", 20.0, T0 + timedelta(seconds=30)),
    ]
    logs += [RecommendationLog(f"h{i}", f"U{i % 5}", ["i5"], [1.0], "v1", "model", float(i * i % 97),
                               T0 + timedelta(minutes=3 * i)) for i in range(40)]
    store.insert_recommendation_logs(logs + (logs[:2] if redeliver else []), batch_size=7)
    events = [("A", "i1", "click", 60), ("A", "i2", "click", -10), ("B", "i4", "click", 200),
              ("B", "i4", "click", 250), ("A", "i2", "view", 5), ("C", "i1", "click", 40),
              ("U3", "i5", "click", 545)]  # h3 was served to U3 at 540 s
    store.insert_events(AnalyticsEvent(f"e{n}", u, i, t, T0 + timedelta(seconds=dt))
                        for n, (u, i, t, dt) in enumerate(events))


def _answers(store: AnalyticsStore) -> dict[str, list[dict]]:
    since, until = T0, T0 + timedelta(hours=3)
    return {
        "latency": [asdict(r) for r in store.latency_by_hour(since, until)],
        "ctr": [asdict(r) for r in store.click_through(since, until, window_s=600)],
        "views": [asdict(r) for r in store.click_through(since, until, window_s=600, click_types=("click", "view"))],
        "coverage": [asdict(r) for r in store.coverage(since, until, catalog_size=10)],
        "versions": [asdict(r) for r in store.compare_versions(since, until, catalog_size=10)],
    }


def test_queries_through_distributed_tables_match_plain_tables(client, tmp_path: Path) -> None:
    plain = _store(client, "plain", None, tmp_path)
    dist = _store(client, "dist", CLUSTER, tmp_path)
    engines = dict(client.query("SELECT name, engine FROM system.tables WHERE database = 'dist'").result_rows)
    assert engines == {**{t.name: "Distributed" for t in TABLES}, **{f"{t.name}_local": "ReplacingMergeTree"
                                                                      for t in TABLES}}
    for store in (plain, dist):
        _feed(store)
    # the rows went through the Distributed tables into the per-shard tables
    assert client.query("SELECT uniqExact(request_id) FROM dist.recommendation_logs_local").result_rows == [(43,)]
    assert client.query("SELECT uniqExact(event_id) FROM dist.events_local").result_rows == [(7,)]
    got = _answers(dist)
    assert got == _answers(plain)
    ctr = {r["algorithm_version"]: (r["impressions"], r["clicks"]) for r in got["ctr"]}
    assert ctr == {"v1": (44, 3), "v2": (2, 1)}  # re-delivered r1, r2 still count once
    assert got["coverage"][0]["distinct_items"] == 5


def test_queries_pass_the_multi_shard_rules(client, tmp_path: Path) -> None:
    plain = _store(client, "plain2", None, tmp_path)
    dist = _store(client, "dist2", TWO_SHARDS, tmp_path)
    for store in (plain, dist):
        _feed(store, redeliver=False)
    assert client.query("SELECT count() FROM dist2.recommendation_logs_local").result_rows == [(43,)]
    assert client.query("SELECT count() FROM dist2.events_local").result_rows == [(7,)]
    with pytest.raises(DatabaseError, match="Double-distributed"):  # the rule is in force here
        client.query("SELECT count() FROM dist2.events WHERE user_id IN (SELECT user_id FROM dist2.events)")
    got, want = _answers(dist), _answers(plain)  # would raise the same if a query broke the rule
    # each slot is counted once per (request, position) and items distinct: reading twice changes nothing
    for key in ("ctr", "views", "coverage"):
        assert got[key] == want[key]
    # while plain counts show that both shards were read
    assert sum(r["requests"] for r in got["latency"]) == 2 * sum(r["requests"] for r in want["latency"])
