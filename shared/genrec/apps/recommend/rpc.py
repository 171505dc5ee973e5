"""recommend-grpc: ``recommend.v1.RecommendService`` (genrec/api/recommend/v1/recommend.proto) over gRPC.

Thin over the same service as the HTTP API (``RecommendState``): the same lists, validation
(each message is checked as the HTTP body is, and an error names the field), page tokens,
served-list log and rate limits. Errors map to status codes: a bad field INVALID_ARGUMENT, a
client over its rate RESOURCE_EXHAUSTED, a store the answer needs UNAVAILABLE, a deadline that
passed DEADLINE_EXCEEDED. The standard health service (SERVING once PostgreSQL answers, as the
HTTP API's /readyz) and server reflection are served beside it.

Run it as its image does: ``python -m genrec.apps.recommend.rpc`` (``HOST``, ``PORT``: 0.0.0.0:8080,
the h2c port Knative routes gRPC to; ``METRICS_PORT``: Prometheus metrics over HTTP, none if unset).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from pydantic import ValidationError

from genrec.api.recommend.v1 import recommend_pb2 as pb
from genrec.api.recommend.v1 import recommend_pb2_grpc as pb_grpc
from genrec.apps.auth import presented_in
from genrec.apps.outages import OUTAGE, classify
from genrec.apps.ratelimit import Client, RateLimiter, verified
from genrec.apps.readiness import Readiness
from genrec.apps.recommend.deps import RecommendState
from genrec.config import Settings, get_settings
from genrec.heap import freeze_startup_heap
from genrec.recommend.experiment import VARIANT_HEADER, VARIANTS, Variant
from genrec.recommend.pages import PageTokenError
from genrec.recommend.schemas import GenerateRequest, RecommendationList, RecommendedItem
from genrec.recommend.service import ModelBackend

log = logging.getLogger("genrec.recommend.grpc")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RecommendService"].full_name  # recommend.v1.RecommendService
MAX_BATCH = 64
WORKERS = 32  # concurrent calls per replica: the service blocks on Redis, PostgreSQL and the model server


class Refused(Exception):
    """A call answered with ``code`` and ``details`` (a message naming the field, as the HTTP API's)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


def request_of(msg: pb.GenerateRequest, field: str = "") -> GenerateRequest:
    """The HTTP API's request model, validated the same way (0 or unset count: the default)."""
    body: dict[str, Any] = {"user_id": msg.user_id, "context": dict(msg.context_features),
                            "exclude": list(msg.exclude), "page_token": msg.page_token or None,
                            "filters": {"category": msg.filters.category or None,
                                        "attributes": dict(msg.filters.attributes)}}
    if msg.count:
        body["count"] = msg.count
    try:
        return GenerateRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        if loc[:1] == ["context"]:
            loc[0] = "context_features"  # the proto's name for it
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                      f"{field}{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}") from None


def item_message(item: RecommendedItem) -> pb.RecommendItem:
    return pb.RecommendItem(**{**item, "semantic_ids": item["semantic_ids"] or []})


def response_of(page: RecommendationList, *, with_items: bool = True) -> pb.GenerateResponse:
    """The list as a message; without its items, the header StreamGenerate sends first."""
    return pb.GenerateResponse(request_id=page.request_id, user_id=page.user_id or "", served_by=page.served_by,
                               algorithm_version=page.algorithm_version,
                               items=[item_message(r) for r in page.items] if with_items else [],
                               next_page_token=page.next_page_token or "", variant=page.variant)


class RecommendServicer(pb_grpc.RecommendServiceServicer):
    def __init__(self, s: Settings, state: RecommendState, registry: CollectorRegistry) -> None:
        self.settings = s
        self.state = state
        self.limits = RateLimiter(s.auth)
        self.calls = Counter("grpc_requests", "gRPC calls by method and status code", ["method", "code"],
                             registry=registry)
        self.latency = Histogram("grpc_request_duration_seconds", "gRPC call latency", ["method"], registry=registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))

    # ------------------------------------------------------------------ RPCs
    def Generate(self, request: pb.GenerateRequest, context: grpc.ServicerContext) -> pb.GenerateResponse:
        return self._call("Generate", context, lambda: response_of(self._one(request, context)))

    def StreamGenerate(self, request: pb.GenerateRequest,
                       context: grpc.ServicerContext) -> Iterator[pb.StreamGenerateResponse]:
        page = self._call("StreamGenerate", context, lambda: self._one(request, context))
        yield pb.StreamGenerateResponse(header=response_of(page, with_items=False))
        for row in page.items:
            yield pb.StreamGenerateResponse(item=item_message(row))

    def BatchGenerate(self, request: pb.BatchGenerateRequest,
                      context: grpc.ServicerContext) -> pb.BatchGenerateResponse:
        def run() -> pb.BatchGenerateResponse:
            if not request.requests:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "requests: at least one request")
            if len(request.requests) > MAX_BATCH:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"requests: at most {MAX_BATCH} per batch")
            reqs = [request_of(m, f"requests[{i}].") for i, m in enumerate(request.requests)]
            self._admit(context, len(reqs))
            started = time.perf_counter()
            pages = self.state.service.get().for_users(reqs, variant=_arm(context))
            self._in_time(context)
            return pb.BatchGenerateResponse(responses=[response_of(self.state.served.record(p, started))
                                                       for p in pages])

        return self._call("BatchGenerate", context, run)

    # ------------------------------------------------------------------ the common path
    def _one(self, request: pb.GenerateRequest, context: grpc.ServicerContext) -> RecommendationList:
        req = request_of(request)
        self._admit(context, 1)
        started = time.perf_counter()
        page = self.state.service.get().for_user(req.user_id, req.count, exclude=req.exclude, filters=req.filters,
                                                 page_token=req.page_token, context=req.context,
                                                 variant=_arm(context))
        self._in_time(context)
        return self.state.served.record(page, started)

    def _call(self, method: str, context: grpc.ServicerContext, work: Any) -> Any:
        """``work()``, counted and timed; what it raises becomes the call's status."""
        started, code, details = time.perf_counter(), grpc.StatusCode.OK, ""
        try:
            self._in_time(context)
            return work()
        except Refused as exc:
            code, details = exc.code, exc.details
        except PageTokenError as exc:
            code, details = grpc.StatusCode.INVALID_ARGUMENT, f"page_token: {exc}"
        except Exception as exc:
            # Outages are named as the HTTP API names them (its 503s), the driver's text kept for the log.
            fault = classify(exc)
            if fault is None or fault.kind is not OUTAGE:
                code = grpc.StatusCode.INTERNAL
                raise  # grpc answers INTERNAL and logs it
            log.warning("%s: %s: %s: %s", method, fault.message, type(exc).__name__, exc)
            code, details = grpc.StatusCode.UNAVAILABLE, fault.message
        finally:
            self.calls.labels(method, code.name).inc()
            self.latency.labels(method).observe(time.perf_counter() - started)
        context.abort(code, details)

    def _admit(self, context: grpc.ServicerContext, units: int) -> None:
        """The HTTP API's per-client rate limit; a batch takes one token per user."""
        metadata = {k.lower(): v for k, v in context.invocation_metadata() if isinstance(v, str)}
        client = verified(presented_in(metadata), self.settings.auth) or Client(f"ip:{_peer_host(context)}", False)
        wait_s = self.limits.take(client, units)
        if wait_s > 0:
            context.set_trailing_metadata((("retry-after", str(max(1, round(wait_s + 0.5)))),))
            raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit exceeded; slow down")

    @staticmethod
    def _in_time(context: grpc.ServicerContext) -> None:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed")


def _arm(context: grpc.ServicerContext) -> Variant | None:
    """The A/B arm the caller names in its metadata (testing), else None: the user's own."""
    named = next((v for k, v in context.invocation_metadata() if k.lower() == VARIANT_HEADER), None)
    if named is not None and named not in VARIANTS:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"{VARIANT_HEADER}: one of {', '.join(VARIANTS)}")
    return named  # type: ignore[return-value]


def _peer_host(context: grpc.ServicerContext) -> str:
    """``ipv4:1.2.3.4:567`` / ``ipv6:[::1]:567`` → the address without the port."""
    peer = context.peer() or "unknown"
    kind, _, rest = peer.partition(":")
    return rest.rsplit(":", 1)[0].strip("[]") if kind in ("ipv4", "ipv6") else peer


class RecommendGrpc:
    """The server, its recommend state and health: ``start``, then ``stop`` (graceful)."""

    def __init__(self, s: Settings | None = None, model: ModelBackend | None = None, *,
                 address: str | None = None) -> None:
        self.settings = s = s or get_settings()
        self.address = address or f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"
        self.registry = CollectorRegistry()
        self.state = RecommendState(s, model, self.registry)
        self.ready = Readiness(s, ("postgres",))  # as the HTTP API: every list needs its item rows
        self.health = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="grpc"),
                                  options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)])
        pb_grpc.add_RecommendServiceServicer_to_server(RecommendServicer(s, self.state, self.registry), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
                                            self.server)
        self.port = self.server.add_insecure_port(self.address)
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_readiness, name="grpc-health", daemon=True)

    def start(self, metrics_port: int = 0) -> None:
        """``metrics_port``: also serve Prometheus metrics over HTTP there (a pod's second port; 0: none)."""
        self.state.start()
        freeze_startup_heap()
        self.server.start()
        if metrics_port:
            start_http_server(metrics_port, registry=self.registry)
        self._watch.start()
        log.info("recommend gRPC on %s", self.address)

    def _watch_readiness(self) -> None:
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        while not self._stop.is_set():
            status = serving if self.ready() else not_serving
            for name in ("", SERVICE_NAME):
                self.health.set(name, status)
            self._stop.wait(1.0)

    def stop(self, grace_s: float = 5.0) -> None:
        self._stop.set()
        self.health.enter_graceful_shutdown()  # new health checks say NOT_SERVING while calls finish
        self.server.stop(grace_s).wait()
        self.state.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = RecommendGrpc()
    server.start(metrics_port=int(os.environ.get("METRICS_PORT") or 0))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
