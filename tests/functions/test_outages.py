"""The fault classifier on exceptions the real client libraries raise: a closed port for each
dependency is an outage named after it, a value a store refuses is bad data, a bug is neither."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from genrec.apps.outages import (
    BAD_DATA,
    CLICKHOUSE,
    KAFKA,
    LLM,
    MILVUS,
    MODEL_SERVER,
    OUTAGE,
    POSTGRES,
    REDIS,
    S3,
    Fault,
    classify,
)
from genrec.config import Settings


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raised(call: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as info:
        call()
    return info.value


def test_postgres_refused_connection_and_pool_timeout_are_outages(closed_port: int) -> None:
    import psycopg
    from psycopg_pool import ConnectionPool

    dsn = f"postgresql://genrec@127.0.0.1:{closed_port}/genrec"
    assert classify(raised(lambda: psycopg.connect(dsn, connect_timeout=1))) == Fault(POSTGRES, OUTAGE)
    with ConnectionPool(dsn, min_size=0, max_size=1, timeout=0.5, open=True) as pool:
        assert classify(raised(pool.getconn)) == Fault(POSTGRES, OUTAGE)
    # A value a column cannot hold is the record's fault; a bad statement is ours (neither).
    assert classify(psycopg.errors.NumericValueOutOfRange()) == Fault(POSTGRES, BAD_DATA)
    assert classify(psycopg.errors.UndefinedTable()) is None


def test_a_guarded_store_that_failed_or_stalled_is_its_outage(closed_port: int) -> None:
    import redis

    from genrec.recommend.guard import StoreGuard

    guard = StoreGuard("Redis", budget_s=None, failures=1, unavailable=(redis.RedisError,))
    client = redis.Redis(port=closed_port, socket_connect_timeout=1)
    assert classify(raised(lambda: guard.call(client.ping))) == Fault(REDIS, OUTAGE)
    assert classify(raised(lambda: guard.call(client.ping))) == Fault(REDIS, OUTAGE)  # the breaker, open: no cause
    stalled = StoreGuard("PostgreSQL", budget_s=0.01)
    assert classify(raised(lambda: stalled.call(lambda: time.sleep(0.5)))) == Fault(POSTGRES, OUTAGE)


def test_redis_refused_connection_and_loading_are_outages(closed_port: int) -> None:
    import redis

    client = redis.Redis(port=closed_port, socket_connect_timeout=1)
    assert classify(raised(client.ping)) == Fault(REDIS, OUTAGE)
    assert classify(redis.exceptions.BusyLoadingError("loading the dataset in memory")) == Fault(REDIS, OUTAGE)
    assert classify(redis.exceptions.ClusterDownError("CLUSTERDOWN")) == Fault(REDIS, OUTAGE)
    assert classify(redis.exceptions.ResponseError("WRONGTYPE Operation against a key")) is None


def test_milvus_unavailable_and_timeouts_are_outages_but_bad_requests_are_bad_data(closed_port: int) -> None:
    import grpc
    from pymilvus import MilvusException
    from pymilvus.exceptions import DataNotMatchException, ParamError

    with grpc.insecure_channel(f"127.0.0.1:{closed_port}") as channel:
        call = channel.unary_unary("/milvus.proto.milvus.MilvusService/GetVersion")
        rpc_error = raised(lambda: call(b"", timeout=2))
    assert classify(rpc_error) == Fault(MILVUS, OUTAGE)
    # What pymilvus' retry loop raises once its time is up: the last gRPC code, the error as cause.
    try:
        raise MilvusException(grpc.StatusCode.UNAVAILABLE, "[upsert] Retry timeout: 10s") from rpc_error
    except MilvusException as exc:
        assert classify(exc) == Fault(MILVUS, OUTAGE)
    # What the client raises when it cannot (re)connect: its own CONNECT_FAILED code.
    from pymilvus import MilvusClient

    assert classify(raised(lambda: MilvusClient(uri=f"http://127.0.0.1:{closed_port}", timeout=2))) == \
        Fault(MILVUS, OUTAGE)
    assert classify(MilvusException(message="collection not loaded")) is None
    assert classify(ParamError(message="invalid dim")) == Fault(MILVUS, BAD_DATA)
    assert classify(DataNotMatchException(message="the row has 3 fields, the schema 5")) == Fault(MILVUS, BAD_DATA)
    assert classify(MilvusException(1100, "invalid parameter")) == Fault(MILVUS, BAD_DATA)


@pytest.fixture
def chdb(tmp_path: Path) -> Iterator:
    import clickhouse_connect

    client = clickhouse_connect.get_client(interface="chdb", path=str(tmp_path / "chdb"))
    yield client
    client.close()  # chDB holds one path per process: free it for the other tests


def test_clickhouse_refused_connection_is_an_outage_a_bad_value_bad_data_a_bad_query_neither(
        closed_port: int, chdb) -> None:
    import clickhouse_connect

    refused = raised(lambda: clickhouse_connect.get_client(host="127.0.0.1", port=closed_port, connect_timeout=1))
    assert classify(refused) == Fault(CLICKHOUSE, OUTAGE)
    chdb.command("CREATE TABLE t (ts DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY ts")
    assert classify(raised(lambda: chdb.command("INSERT INTO t VALUES ('not a date')"))) == Fault(CLICKHOUSE, BAD_DATA)
    assert classify(raised(lambda: chdb.query("SELECT * FROM no_such_table"))) is None


def test_s3_unreachable_endpoint_and_throttling_are_outages(closed_port: int) -> None:
    from botocore.exceptions import ClientError

    from genrec.stores import objects

    s = Settings(s3={"endpoint_url": f"http://127.0.0.1:{closed_port}"})
    assert classify(raised(lambda: objects.get_bytes("s3://bucket/key", s))) == Fault(S3, OUTAGE)
    slow_down = {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
    assert classify(ClientError(slow_down, "PutObject")) == Fault(S3, OUTAGE)
    missing = {"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {"HTTPStatusCode": 404}}
    assert classify(ClientError(missing, "GetObject")) is None  # a wrong key is not an outage


def test_the_model_server_unreachable_is_an_outage(closed_port: int) -> None:
    import tritonclient.http as triton

    from genrec.serving.client import ModelClient

    client = triton.InferenceServerClient(f"127.0.0.1:{closed_port}", connection_timeout=1, network_timeout=1)
    assert classify(raised(client.is_server_ready)) == Fault(MODEL_SERVER, OUTAGE)  # a bare ConnectionRefusedError
    ours = ModelClient(Settings(), url=f"127.0.0.1:{closed_port}", timeout_s=1)
    assert classify(raised(lambda: ours.infer(np.zeros((1, 1), np.int64)))) == Fault(MODEL_SERVER, OUTAGE)


def test_the_llm_unreachable_or_overloaded_is_an_outage(closed_port: int) -> None:
    import httpx
    import openai

    from genrec.config import LLMSettings
    from genrec.enrichment.client import JsonChat

    chat = JsonChat(LLMSettings(base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=0, timeout_s=2))
    assert classify(raised(lambda: chat.ask("m", "system", "user", Settings))) == Fault(LLM, OUTAGE)
    direct = raised(lambda: chat.client.chat.completions.create(model="m", messages=[]))
    assert classify(direct) == Fault(LLM, OUTAGE)
    request = httpx.Request("POST", "http://llm/v1/chat/completions")
    limited = openai.RateLimitError("slow down", response=httpx.Response(429, request=request), body=None)
    assert classify(limited) == Fault(LLM, OUTAGE)
    refused = openai.BadRequestError("bad", response=httpx.Response(400, request=request), body=None)
    assert classify(refused) is None


def test_the_broker_unreachable_is_an_outage(closed_port: int) -> None:
    from genrec.events.codec import new_event
    from genrec.events.contracts import INTERACTION
    from genrec.events.publisher import EventPublisher

    publisher = EventPublisher(Settings(kafka={"bootstrap_servers": f"127.0.0.1:{closed_port}"}), timeout_s=1)
    ev = new_event(INTERACTION, {"user_id": "u", "item_id": "i", "event_type": "click"}, source="test")
    try:
        assert classify(raised(lambda: publisher.publish_sync([ev]))) == Fault(KAFKA, OUTAGE)
    finally:
        publisher.close()


def test_the_kafka_clients_own_errors_from_an_unreachable_broker_are_outages(closed_port: int) -> None:
    # confluent-kafka's exceptions live in its C module (`cimpl`), not under `confluent_kafka`.
    from genrec.events.kafka import consumer_lag

    s = Settings(kafka={"bootstrap_servers": f"127.0.0.1:{closed_port}"})
    assert classify(raised(lambda: consumer_lag(s, {"g": ["t"]}, timeout_s=1))) == Fault(KAFKA, OUTAGE)


def test_a_fault_raised_from_another_is_that_fault_and_the_rest_is_unexpected(closed_port: int) -> None:
    import redis

    cause = raised(redis.Redis(port=closed_port, socket_connect_timeout=1).ping)
    try:
        raise RuntimeError("could not load the code feed") from cause
    except RuntimeError as exc:
        assert classify(exc) == Fault(REDIS, OUTAGE)
    assert classify(ValueError("embedding has dim 3, collection wants 384")) is None
    assert Fault(REDIS, OUTAGE).message == "Redis is unavailable; try again shortly"
