"""recommend.v1.RecommendService over gRPC, with a real grpcio client against the running
recommend-grpc workload: the same lists as the HTTP API, errors as status codes naming the field,
one model-server batch for BatchGenerate, the stream, health and reflection."""

from __future__ import annotations

import gc
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from genrec.api.recommend.v1 import recommend_pb2 as pb
from genrec.api.recommend.v1 import recommend_pb2_grpc as pb_grpc
from genrec.config import Settings
from genrec.serving.launch import ports
from genrec.stores.hot_state import HotState
from tests.helpers import catalogue_and_model

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def promoted(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict:
    ds, art = catalogue_and_model(stack, 12, Path(tmp_path_factory.mktemp("grpc")) / "v1")
    return {"ds": ds, "artifact": art}


@pytest.fixture(scope="module")
def channel(stack: Settings) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"{stack.stack.host}:{stack.stack.port('recommend_grpc')}") as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.RecommendServiceStub:
    return pb_grpc.RecommendServiceStub(channel)


def _user_with_history(s: Settings, promoted: dict, offset: int = 0) -> str:
    """A fresh user (no cached list) whose recent items are three of a real user's."""
    ds = promoted["ds"]
    items = [str(i) for i in ds.interactions.item_id.iloc[offset * 3: offset * 3 + 3]]
    user = f"grpc-{uuid.uuid4().hex[:8]}"
    HotState(s).append_recent_items(user, items)
    return user


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_grpc_and_http_return_the_same_list(stack: Settings, promoted: dict, stub) -> None:
    user = _user_with_history(stack, promoted)
    got = stub.Generate(pb.GenerateRequest(user_id=user, count=10), timeout=30)
    assert got.served_by == "model" and got.algorithm_version == promoted["artifact"].version
    assert len(got.items) == 10 and got.next_page_token and got.user_id == user
    http = httpx.post(stack.function_url("recommend") + "/api/v1/recommend/generate",
                      json={"user_id": user, "count": 10}, timeout=30).json()
    assert [i["item_id"] for i in http["items"]] == [i.item_id for i in got.items]
    assert [i["score"] for i in http["items"]] == pytest.approx([i.score for i in got.items], rel=1e-5)
    assert http["algorithm_version"] == got.algorithm_version
    # The page token is the HTTP API's: the next page continues the same ranked list.
    nxt = stub.Generate(pb.GenerateRequest(user_id=user, count=10, page_token=got.next_page_token), timeout=30)
    assert nxt.request_id == got.request_id
    assert not {i.item_id for i in nxt.items} & {i.item_id for i in got.items}


def test_bad_fields_are_invalid_argument_naming_the_field(stack: Settings, stub) -> None:
    code, details = _code(lambda: stub.Generate(pb.GenerateRequest(user_id="u", count=51), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("count:")
    code, details = _code(lambda: stub.Generate(pb.GenerateRequest(user_id=""), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("user_id:")
    code, details = _code(lambda: stub.Generate(pb.GenerateRequest(user_id="u", page_token="nope"), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("page_token:")
    code, details = _code(lambda: stub.Generate(
        pb.GenerateRequest(user_id="u", context_features={"x" * 300: "v"}), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("context_features")
    batch = pb.BatchGenerateRequest(requests=[pb.GenerateRequest(user_id="a"), pb.GenerateRequest(user_id="b",
                                                                                                 count=99)])
    code, details = _code(lambda: stub.BatchGenerate(batch, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("requests[1].count:")
    code, details = _code(lambda: stub.BatchGenerate(pb.BatchGenerateRequest(), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("requests:")


def _triton_counts(s: Settings) -> tuple[float, float]:
    """(requests inferred, graph executions) of the production model, from Triton's metrics."""
    text = httpx.get(f"http://{s.stack.host}:{ports(s)['metrics']}/metrics", timeout=10).text

    def metric(name: str) -> float:
        found = re.search(rf'^nv_inference_{name}{{model="genrec",version="1"}} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    return metric("count"), metric("exec_count")


def test_batch_generate_asks_the_model_server_once(stack: Settings, promoted: dict, stub) -> None:
    users = [_user_with_history(stack, promoted, offset=k) for k in range(4)]
    before = _triton_counts(stack)
    got = stub.BatchGenerate(pb.BatchGenerateRequest(requests=[pb.GenerateRequest(user_id=u, count=5)
                                                               for u in users]), timeout=30)
    after = _triton_counts(stack)
    assert [r.user_id for r in got.responses] == users
    assert all(r.served_by == "model" and len(r.items) == 5 for r in got.responses)
    assert (after[0] - before[0], after[1] - before[1]) == (4, 1)  # four users, one graph call
    # Each user's list is the one Generate serves them (now from the cache the batch filled).
    for user, listed in zip(users, got.responses, strict=True):
        again = stub.Generate(pb.GenerateRequest(user_id=user, count=5), timeout=30)
        assert again.served_by == "cache"
        assert [i.item_id for i in again.items] == [i.item_id for i in listed.items]


def test_stream_generate_sends_a_header_then_the_page(stack: Settings, promoted: dict, stub) -> None:
    user = _user_with_history(stack, promoted, offset=5)
    parts = list(stub.StreamGenerate(pb.GenerateRequest(user_id=user, count=8), timeout=30))
    assert parts[0].WhichOneof("part") == "header"
    header = parts[0].header
    assert header.served_by == "model" and not header.items and len(parts) - 1 == 8
    assert all(p.WhichOneof("part") == "item" for p in parts[1:])
    page = stub.Generate(pb.GenerateRequest(user_id=user, count=8), timeout=30)  # the cached list
    assert [p.item.item_id for p in parts[1:]] == [i.item_id for i in page.items]


def test_health_and_reflection(stack: Settings, channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "recommend.v1.RecommendService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                           timeout=10)
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert {"recommend.v1.RecommendService", "grpc.health.v1.Health"} <= names


def test_a_client_over_its_rate_is_told_to_slow_down(stack: Settings) -> None:
    from genrec.apps.recommend.rpc import RecommendGrpc

    slow = stack.model_copy(update={"auth": stack.auth.model_copy(update={"anonymous_rate_limit_per_s": 0.5})})
    server = RecommendGrpc(slow, address=f"{stack.stack.host}:0")
    server.start()
    try:
        with grpc.insecure_channel(f"{stack.stack.host}:{server.port}") as ch:
            stub = pb_grpc.RecommendServiceStub(ch)
            first = stub.Generate(pb.GenerateRequest(user_id="rate-limited", count=3), timeout=30)
            assert first.request_id and first.user_id == "rate-limited"
            with pytest.raises(grpc.RpcError) as err:
                stub.Generate(pb.GenerateRequest(user_id="rate-limited", count=3), timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(dict(err.value.trailing_metadata())["retry-after"]) >= 1
    finally:
        server.stop(grace_s=0)


def test_a_started_server_freezes_its_heap(stack: Settings) -> None:
    """Full collections then walk only what requests left behind (``genrec.heap``)."""
    from genrec.apps.recommend.rpc import RecommendGrpc

    gc.unfreeze()
    server = RecommendGrpc(stack, address=f"{stack.stack.host}:0")
    try:
        assert gc.get_freeze_count() == 0
        server.start()
        assert gc.get_freeze_count() > 0
    finally:
        server.stop(grace_s=0)
