"""The analytics tables' DDL: one node (chDB, a lone server) or a sharded, replicated cluster.

One node: each table is a ReplacingMergeTree under the name the store reads and writes.

Cluster (``settings.clickhouse.cluster``, the operator's cluster name): every statement runs
``ON CLUSTER`` (Keeper's DDL queue takes it to every node). The rows live in ``<name>_local``, a
ReplicatedReplacingMergeTree per shard with the single-node table's PARTITION BY / ORDER BY /
TTL, and ``<name>`` becomes a Distributed table over them, so the store's SQL is the same in both
modes. The Keeper path is explicit, ``/clickhouse/tables/{shard}/{database}/<name>_local``,
rather than the server's ``default_replica_path`` (``/clickhouse/tables/{uuid}/{shard}``): that
one needs an Atomic database for ``{uuid}`` and depends on server config, while an explicit path
works for any database engine and names the table readably in Keeper. ``{shard}`` and
``{replica}`` are macros the Altinity operator writes on every host; ClickHouse expands
``{database}`` itself.

Rows are sharded by ``cityHash64(user_id)``: a re-delivered row (same user) lands on the shard
that holds its first copy, so ReplacingMergeTree still collapses it at merge time (under
``rand()`` the copies could sit on two shards forever), and a user's logs and events share a
shard. The store's queries aggregate through the Distributed tables with exact, mergeable
functions and join on the initiator, so they return what they return on one node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOCAL_SUFFIX = "_local"  # the per-shard table behind each Distributed table
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TTL = "toDateTime(timestamp) + toIntervalDay({ttl_days})"


@dataclass(frozen=True)
class Table:
    name: str  # what the store reads and writes (Distributed on a cluster)
    columns: str  # the column list between the parentheses of CREATE TABLE
    partition_by: str
    order_by: str  # also ReplacingMergeTree's deduplication key
    sharding_key: str  # Distributed's: which shard a row goes to

    @property
    def local(self) -> str:
        return self.name + LOCAL_SUFFIX


RECOMMENDATION_LOGS = Table(
    "recommendation_logs",
    """\
    request_id         String,
    user_id            String,
    items              Array(String),
    scores             Array(Float32),
    algorithm_version  LowCardinality(String),
    served_by          LowCardinality(String),
    latency_ms         Float32,
    timestamp          DateTime64(3, 'UTC')""",
    "toYYYYMM(timestamp)",
    "(algorithm_version, toStartOfHour(timestamp), request_id)",
    "cityHash64(user_id)",
)

EVENTS = Table(
    "events",
    """\
    event_id     String,
    source       LowCardinality(String),
    user_id      String,
    item_id      String,
    event_type   LowCardinality(String),
    value        Float64,
    request_id   String,
    timestamp    DateTime64(3, 'UTC'),
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3)""",
    "toYYYYMM(timestamp)",
    "(event_type, user_id, item_id, timestamp, source, event_id)",
    "cityHash64(user_id)",
)

TABLES: tuple[Table, ...] = (RECOMMENDATION_LOGS, EVENTS)
# Columns added since a table was first created: (table, column definition), applied by ALTER to
# every table, new or old (CREATE ... IF NOT EXISTS leaves an older table as it is): one path, and
# the CREATE statements stay those of the first schema.
ADDED_COLUMNS: tuple[tuple[Table, str], ...] = (
    (RECOMMENDATION_LOGS, "variant LowCardinality(String) DEFAULT 'production'"),  # the live A/B arm
)


def _check(kind: str, name: str) -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(f"invalid ClickHouse {kind} name {name!r}")
    return name


def _merge_tree(db: str, t: Table, ttl_days: int, *, name: str, on_cluster: str, engine: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {db}.{name}{on_cluster} (
{t.columns}
) ENGINE = {engine}
PARTITION BY {t.partition_by}
ORDER BY {t.order_by}
TTL {_TTL.format(ttl_days=int(ttl_days))}
"""


def single_node_ddl(db: str, ttl_days: int) -> list[str]:
    """The statements for one node, in order: the database, then each table."""
    _check("database", db)
    return [f"CREATE DATABASE IF NOT EXISTS {db}"] + [
        _merge_tree(db, t, ttl_days, name=t.name, on_cluster="", engine="ReplacingMergeTree") for t in TABLES] + [
        f"ALTER TABLE {db}.{t.name} ADD COLUMN IF NOT EXISTS {column}" for t, column in ADDED_COLUMNS]


def replicated_engine(t: Table) -> str:
    return f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{{database}}/{t.local}', '{{replica}}')"


def distributed_ddl(db: str, t: Table, cluster: str) -> str:
    # Explicit columns, not `AS <local>`: the statement stands on its own in every host's DDL queue.
    return f"""
CREATE TABLE IF NOT EXISTS {db}.{t.name} ON CLUSTER {cluster} (
{t.columns}
) ENGINE = Distributed({cluster}, {db}, {t.local}, {t.sharding_key})
"""


def cluster_ddl(db: str, ttl_days: int, cluster: str) -> list[str]:
    """The statements for a cluster, in order: the database, then per table its local table
    and the Distributed table over it."""
    _check("database", db)
    _check("cluster", cluster)
    on = f" ON CLUSTER {cluster}"
    out = [f"CREATE DATABASE IF NOT EXISTS {db}{on}"]
    for t in TABLES:
        out.append(_merge_tree(db, t, ttl_days, name=t.local, on_cluster=on, engine=replicated_engine(t)))
        out.append(distributed_ddl(db, t, cluster))
    for t, column in ADDED_COLUMNS:  # the local tables first: the Distributed one reads through them
        out += [f"ALTER TABLE {db}.{name}{on} ADD COLUMN IF NOT EXISTS {column}" for name in (t.local, t.name)]
    return out


def schema_ddl(db: str, ttl_days: int, cluster: str | None = None) -> list[str]:
    return cluster_ddl(db, ttl_days, cluster) if cluster else single_node_ddl(db, ttl_days)


def cluster_engines() -> dict[str, str]:
    """Table name → engine on a cluster. CREATE ... IF NOT EXISTS leaves a table of the same name
    alone whatever its engine (say a plain table from before the cluster setting), so the store
    compares."""
    return {**{t.local: "ReplicatedReplacingMergeTree" for t in TABLES}, **{t.name: "Distributed" for t in TABLES}}


def insert_settings(cluster: str | None) -> dict[str, int]:
    """Per-insert settings. On a cluster an insert into a Distributed table returns once every
    shard it touches has written its part (`insert_distributed_sync`, an alias of the newer
    name `distributed_foreground_insert`). By default the receiving node queues the rows on its
    disk and answers at once: the sink would acknowledge events no shard has yet, lose them with
    that node's queue, and never see a shard's error. A retried insert is harmless: re-delivered
    rows collapse like any other duplicate."""
    return {"insert_distributed_sync": 1} if cluster else {}
