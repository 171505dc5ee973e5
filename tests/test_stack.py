"""The embedded local stack: every server starts, serves a real client round trip, and stops."""

from __future__ import annotations

import io
import socket
import time
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from genrec.cli import app
from genrec.config import Settings
from genrec.devstack import stack as devstack
from genrec.devstack.process import StackError, read_record

pytestmark = pytest.mark.stack


def test_every_server_is_healthy(stack: Settings) -> None:
    rows = devstack.status(stack)
    assert {r.name for r in rows} >= {"s3", "kafka", "postgres", "redis", "milvus"}
    assert all(r.healthy and r.pid for r in rows), rows


def test_s3_put_get(stack: Settings) -> None:
    from genrec.stores.objects import s3_client

    key = f"tests/{uuid.uuid4()}.bin"
    payload = np.random.default_rng(0).bytes(100_000)
    client = s3_client(stack)
    client.put_object(Bucket=stack.s3.bucket, Key=key, Body=payload)
    assert client.get_object(Bucket=stack.s3.bucket, Key=key)["Body"].read() == payload


def test_kafka_produce_consume(stack: Settings) -> None:
    from genrec.events.kafka import consumer, producer

    topic = stack.kafka.topic("user_events")
    marker = uuid.uuid4().hex
    prod = producer(stack)
    for i in range(5):
        prod.produce(topic, key=f"u-{marker}", value=f"{marker}:{i}".encode())
    assert prod.flush(10) == 0
    cons = consumer(stack, group_id=f"test-{marker}")
    cons.subscribe([topic])
    seen: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:  # the shared topic may hold many earlier records
            msg = cons.poll(0.2)
            if msg is None or msg.error():
                continue
            value = msg.value().decode()
            if value.startswith(marker):
                seen.append(value)
            if len(seen) == 5:
                break
    finally:
        cons.close()
    # one key → one partition → order is preserved
    assert seen == [f"{marker}:{i}" for i in range(5)]


def test_postgres_sql_with_vector_query(stack: Settings) -> None:
    from genrec.stores.postgres import connect

    with connect(stack) as conn:
        conn.execute("CREATE TEMP TABLE v (id int, e vector(3))")
        conn.execute("INSERT INTO v VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]')")
        rows = conn.execute("SELECT id FROM v ORDER BY e <=> '[1,0,0]' LIMIT 2").fetchall()
    assert [r[0] for r in rows] == [1, 3]


def test_redis_set_get(stack: Settings) -> None:
    import redis

    client = redis.Redis.from_url(stack.redis.url.get_secret_value())
    key = f"test:{uuid.uuid4()}"
    client.set(key, "v", ex=30)
    assert client.get(key) == b"v"
    assert 0 < client.ttl(key) <= 30


def test_milvus_insert_search(stack: Settings) -> None:
    from genrec.stores.milvus import milvus_client

    client = milvus_client(stack)
    name = f"t_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=4, metric_type="IP", auto_id=False)
    vectors = np.eye(4, dtype=np.float32)
    client.insert(name, [{"id": i, "vector": vectors[i].tolist()} for i in range(4)])
    hits = client.search(name, data=[[0.1, 0.9, 0.0, 0.0]], limit=2)
    assert hits[0][0]["id"] == 1
    client.drop_collection(name)
    client.close()


def test_clickhouse_insert_aggregate(stack: Settings, tmp_path) -> None:
    import chdb.session

    sess = chdb.session.Session(str(tmp_path / "chdb"))
    sess.query("CREATE TABLE t (k String, v Float64) ENGINE = MergeTree ORDER BY k")
    sess.query("INSERT INTO t VALUES ('a', 1), ('a', 3), ('b', 10)")
    out = sess.query("SELECT k, sum(v) FROM t GROUP BY k ORDER BY k", "CSV").data()
    assert out.strip().splitlines() == ['"a",4', '"b",10']
    sess.close()


def test_up_twice_is_harmless(stack: Settings) -> None:
    paths = devstack.paths_for(stack)
    before = {name: read_record(paths.pid(name)) for name in ("s3", "kafka", "postgres", "redis", "milvus")}
    messages: list[str] = []
    devstack.up(stack, on_progress=messages.append)
    after = {name: read_record(paths.pid(name)) for name in before}
    assert before == after
    assert all("already running" in m for m in messages)


def test_status_cli_shows_every_part(stack: Settings) -> None:
    result = CliRunner().invoke(app, ["dev", "status"])
    assert result.exit_code == 0, result.output
    for name in ("s3", "kafka", "postgres", "redis", "milvus"):
        assert name in result.output
    assert "unhealthy" not in result.output


def test_port_taken_gives_clear_error(stack: Settings, tmp_path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    other = stack.model_copy(deep=True)
    other.stack.state_dir = tmp_path / "state"
    other.stack.port_base = port - 30  # redis = base + 30
    try:
        with pytest.raises(StackError, match=rf"redis: port 127\.0\.0\.1:{port} is already in use"):
            devstack.up(other, ["redis"], on_progress=lambda _m: None)
    finally:
        blocker.close()


def test_down_stops_only_recorded_processes(stack: Settings, tmp_path) -> None:
    import psutil

    other = Settings(stack={"state_dir": tmp_path / "state", "port_base": stack.stack.port_base + 100})
    devstack.up(other, ["redis"], on_progress=lambda _m: None)
    record = read_record(devstack.paths_for(other).pid("redis"))
    assert record and record.process() is not None
    log = io.StringIO()
    assert devstack.down(other, on_progress=log.write) == ["redis"]
    assert not psutil.pid_exists(record.pid) or record.process() is None
    # the session stack is untouched
    assert all(r.healthy for r in devstack.status(stack))
