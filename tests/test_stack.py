"""The embedded local stack: every server starts, serves a real client round trip, and stops."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from genrec.cli import app
from genrec.config import Settings
from genrec.devstack import stack as devstack
from genrec.devstack.process import StackError, read_record
from tests.helpers import NO_AVX512_EMULATOR

pytestmark = pytest.mark.stack


def test_every_server_is_healthy(stack: Settings) -> None:
    rows = devstack.status(stack)
    assert {r.name for r in rows} >= {"s3", "kafka", "postgres", "redis", "milvus"}
    assert all(r.healthy and r.pid for r in rows), rows


@pytest.fixture(params=["native", "no-avx512"])
def any_cpu(request: pytest.FixtureRequest) -> Settings:
    """The session stack, then a stack whose native servers run as a CPU without AVX-512 would
    (under qemu-user): a wheel built for a newer CPU fails here instead of in a user's demo."""
    return request.getfixturevalue("stack" if request.param == "native" else "no_avx512_stack")


def test_s3_put_get(any_cpu: Settings) -> None:
    from genrec.stores.objects import s3_client

    key = f"tests/{uuid.uuid4()}.bin"
    payload = np.random.default_rng(0).bytes(100_000)
    client = s3_client(any_cpu)
    client.put_object(Bucket=any_cpu.s3.bucket, Key=key, Body=payload)
    assert client.get_object(Bucket=any_cpu.s3.bucket, Key=key)["Body"].read() == payload


def test_kafka_produce_consume(any_cpu: Settings) -> None:
    from genrec.events.kafka import consumer, producer

    topic = any_cpu.kafka.topic("user_events")
    marker = uuid.uuid4().hex
    prod = producer(any_cpu)
    for i in range(5):
        prod.produce(topic, key=f"u-{marker}", value=f"{marker}:{i}".encode())
    assert prod.flush(10) == 0
    cons = consumer(any_cpu, group_id=f"test-{marker}")
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


def test_postgres_vector_hnsw_insert_and_query(any_cpu: Settings) -> None:
    # pgvector's distance kernels run on HNSW inserts and searches: the first place a build
    # for the wrong CPU dies (SIGILL, the server left in recovery).
    from genrec.stores.postgres import connect

    with connect(any_cpu) as conn:
        conn.execute("CREATE TEMP TABLE v (id int, e vector(3))")
        conn.execute("CREATE INDEX ON v USING hnsw (e vector_cosine_ops)")
        conn.execute("INSERT INTO v VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]')")
        conn.execute("SET enable_seqscan = off")
        plan = " ".join(r[0] for r in conn.execute("EXPLAIN SELECT id FROM v ORDER BY e <=> '[1,0,0]' LIMIT 2"))
        rows = conn.execute("SELECT id FROM v ORDER BY e <=> '[1,0,0]' LIMIT 2").fetchall()
        similar = conn.execute("SELECT similarity('lipstick red', 'red lipstick') > 0.5").fetchone()[0]
    assert "v_e_idx" in plan
    assert [r[0] for r in rows] == [1, 3]
    assert similar  # pg_trgm: the catalogue's text search


def test_redis_set_get_and_script(any_cpu: Settings) -> None:
    import redis

    client = redis.Redis.from_url(any_cpu.redis.url.get_secret_value())
    key = f"test:{uuid.uuid4()}"
    client.set(key, "v", ex=30)
    assert client.get(key) == b"v"
    assert 0 < client.ttl(key) <= 30
    # hot state applies events through Lua scripts
    assert client.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, f"{key}:n", 7) == 7


def test_milvus_insert_search(any_cpu: Settings) -> None:
    from genrec.stores.milvus import milvus_client

    client = milvus_client(any_cpu)
    name = f"t_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=4, metric_type="IP", auto_id=False)
    vectors = np.eye(4, dtype=np.float32)
    client.insert(name, [{"id": i, "vector": vectors[i].tolist()} for i in range(4)])
    hits = client.search(name, data=[[0.1, 0.9, 0.0, 0.0]], limit=2)
    assert hits[0][0]["id"] == 1
    client.drop_collection(name)
    client.close()


def test_triton_answers_an_inference_without_avx512(no_avx512_stack: Settings) -> None:
    # Triton's server binary under the emulator; its Python backend stub (exec'd, so native)
    # answers the probe: with the artifact the pointer names, or (none promoted) a reasoned 503.
    from genrec.serving.client import ModelClient

    devstack.up(no_avx512_stack, ["model-server"], on_progress=lambda _m: None)
    client = ModelClient(no_avx512_stack, timeout_s=30.0)

    def answered() -> dict:
        answer = client.status()
        return answer if answer.get("ready") or "no trained artifact" in str(answer.get("error")) else {}

    deadline = time.monotonic() + 240
    while not (answer := answered()) and time.monotonic() < deadline:
        time.sleep(1)  # "starting" while the stub imports torch
    assert answer.get("live"), client.status()


CHDB_ROUND_TRIP = """
import sys, chdb.session
sess = chdb.session.Session(sys.argv[1])
sess.query("CREATE TABLE t (k String, v Float64) ENGINE = MergeTree ORDER BY k")
sess.query("INSERT INTO t VALUES ('a', 1), ('a', 3), ('b', 10)")
print(sess.query("SELECT k, sum(v) FROM t GROUP BY k ORDER BY k", "CSV").data(), end="")
"""


@pytest.mark.parametrize("cpu", ["native", "no-avx512"])
def test_clickhouse_insert_aggregate(cpu: str, tmp_path) -> None:
    # chDB runs inside the analytics process: the check runs that interpreter under the emulator.
    argv = [sys.executable, "-c", CHDB_ROUND_TRIP, str(tmp_path / "chdb")]
    if cpu == "no-avx512":
        argv = Settings(stack={"cpu_emulator": NO_AVX512_EMULATOR}).stack.native(argv)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines() == ['"a",4', '"b",10']


def test_test_stacks_stay_out_of_the_ephemeral_port_range() -> None:
    # A server a test restarts under load (the fault suite) found its port taken by an outgoing
    # connection's local port: a test stack's every port lies outside the kernel's ephemeral range.
    from genrec.config import PORT_OFFSETS
    from genrec.devstack.services import REDIS_CLUSTER_BUS_OFFSET, SEAWEED_GRPC_OFFSET
    from tests.helpers import ephemeral_ports, free_port_base

    ephemeral = ephemeral_ports()
    for _ in range(20):
        base = free_port_base()
        derived = [base + offset for offset in PORT_OFFSETS.values()]
        derived += [base + offset + SEAWEED_GRPC_OFFSET for name, offset in PORT_OFFSETS.items()
                    if name == "s3" or name.startswith("seaweed_")]  # SeaweedFS's grpc twins
        derived.append(base + PORT_OFFSETS["redis"] + REDIS_CLUSTER_BUS_OFFSET)
        assert not [p for p in derived if p in ephemeral], base


def test_up_twice_is_harmless(stack: Settings) -> None:
    paths = devstack.paths_for(stack)
    before = {name: read_record(paths.pid(name)) for name in ("s3", "kafka", "postgres", "redis", "milvus")}
    messages: list[str] = []
    devstack.up(stack, on_progress=messages.append)
    after = {name: read_record(paths.pid(name)) for name in before}
    assert before == after
    assert all("already running" in m for m in messages)


def test_up_returns_once_the_model_server_serves_its_model(stack: Settings) -> None:
    # Triton reports the model ready once its initialize returns, seconds before the engine has loaded
    # torch and the graph (it answers "starting" meanwhile): a stack that is up is past that.
    from genrec.serving.client import ModelClient
    from genrec.serving.protocol import STARTING

    devstack.down(stack, ["model-server"], on_progress=lambda _m: None)
    devstack.up(stack, ["model-server"], on_progress=lambda _m: None)
    answer = ModelClient(stack, timeout_s=30.0).status()
    assert answer["live"] and STARTING not in str(answer.get("error")), answer


def test_bulk_workloads_and_their_bridge_run_niced(stack: Settings) -> None:
    # On a shared machine requests first, then the freshness path, then the bulk consumers (and
    # the bridge that feeds them), their threads and children too.
    import psutil

    paths = devstack.paths_for(stack)

    def nice(name: str) -> set[int]:
        proc = read_record(paths.pid(name)).process()
        assert proc is not None, f"{name} is not running"
        return {p.nice() for p in (proc, *proc.children(recursive=True))}

    for name in ("recommend", "recommend-grpc", "admin-api", "model-server", "redis"):
        assert nice(name) == {0}, name  # the request path, and what it waits on
    # PostgreSQL at the request path's priority, but for the backends a workload gave its own
    assert read_record(paths.pid("postgres")).process().nice() == 0
    assert nice("postgres") <= {0, 8, 15}
    for name in ("event-capture", "feature-update", "cold-start-embedding", "bridge", "kafka", "s3"):
        assert nice(name) == {8}, name  # the event path yields to requests
    for name in ("analytics-sink", "llm-enrichment", "bridge-bulk", "kafka-retention"):
        assert nice(name) == {15}, name
    assert psutil.Process(read_record(paths.pid("bridge-bulk")).pid).cmdline()[-2:] == ["--priority", "bulk"]


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

    from tests.helpers import free_port_base

    # A free range, not a fixed offset: the session's other stacks (the one without AVX-512) may hold it.
    other = Settings(stack={"state_dir": tmp_path / "state", "port_base": free_port_base(taken=stack.stack.port_base)})
    devstack.up(other, ["redis"], on_progress=lambda _m: None)
    record = read_record(devstack.paths_for(other).pid("redis"))
    assert record and record.process() is not None
    log = io.StringIO()
    assert devstack.down(other, on_progress=log.write) == ["redis"]
    assert not psutil.pid_exists(record.pid) or record.process() is None
    # the session stack is untouched
    assert all(r.healthy for r in devstack.status(stack))


def test_postgres_runs_with_the_event_write_settings(stack: Settings) -> None:
    # With the defaults (max_wal_size 1GB) a large event table forced a checkpoint every ~45 s
    # under 1,000 events/s, each followed by a full page image in the WAL for every page touched.
    from psycopg import sql

    from genrec.stores.postgres import connect

    with connect(stack) as conn:
        shown = {name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
                 for name in stack.postgres.server_parameters}
    assert shown == stack.postgres.server_parameters
    assert shown["max_wal_size"] == "4GB" and shown["checkpoint_timeout"] == "15min"
