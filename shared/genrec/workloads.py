"""genrec's workloads, declared once: the dev stack starts each of them (genrec.devstack), the
Pulumi program deploys each as a Knative Service (infra/pulumi), and callers find them by name
(`Settings.function_url`, the admin API's health view)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# Freshness first: where every workload shares the cores, the ones on the click → next-list path
# (and the request/response APIs) run before the bulk consumers, which absorb a backlog with
# big batches and may lag minutes without harm (analytics, the event history, LLM tags).
Priority = Literal["realtime", "bulk"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
# The dev stack's nice value per priority (15 against 8: the kernel gives a busy realtime process
# ~5x the CPU of a busy bulk one); production states the same order with PriorityClasses
# (infra/pulumi). The request/response APIs (Workload.serves_requests) run above both at
# REQUEST_NICENESS (8 against 0: ~6x). Measured at 1,000 events/s + 1 recommend client on a log of
# 7.8 M events (2-core EPYC): recommend p99 38 / 45 ms with the event path at 8 and bulk at 15,
# 48 ms at 4 / 10 and 90-103 ms with everything at 0; click -> next list p99 0.39 s (0.47 s at 4).
# In a cluster each pod has its own CPU requests instead.
NICENESS: dict[Priority, int] = {"realtime": 8, "bulk": 15}
REQUEST_NICENESS = 0
HTTP_PORT = 8080  # the port every workload serves in its pod (the one Knative routes to)
GRPC_METRICS_PORT = 9090  # a gRPC API's Prometheus metrics (its HTTP/2 port answers no /metrics)


@dataclass(frozen=True)
class Workload:
    name: str  # the Knative Service's and the dev-stack service's name
    description: str
    port_offset: int  # its local port: stack.port_base + offset
    needs: tuple[str, ...]  # the local servers it talks to (the dev stack starts them first)
    # How its image runs it, in production and in the dev stack alike: a Knative function
    # (functions/NAME under func-python) or an ASGI app factory under uvicorn. The request/response
    # APIs on a hot path are services: func-python serves HTTP with hypercorn and h11, whose
    # per-request cost was a third of a cached recommend request's CPU (uvicorn: httptools, uvloop).
    # A gRPC API (kind "grpc") is its module run as a program (`python -m MODULE`), serving h2c.
    kind: Literal["function", "service", "grpc"] = "function"
    factory: str = ""  # `module:callable` of a service; the module of a gRPC API
    public: bool = False  # False: cluster-local only (reached through KafkaSources or the mesh)
    priority: Priority = "realtime"
    serves_requests: bool = False  # a request/response API: the dev stack runs it at REQUEST_NICENESS

    @property
    def niceness(self) -> int:
        """Its nice value in the dev stack."""
        return REQUEST_NICENESS if self.serves_requests else NICENESS[self.priority]

    @property
    def key(self) -> str:
        """The name as a settings / port key (`event_capture`)."""
        return self.name.replace("-", "_")

    @property
    def args(self) -> list[str]:
        """The image's entrypoint arguments (deploy/entrypoint.sh)."""
        return [self.kind, self.name if self.kind == "function" else self.factory]

    @property
    def metrics_port(self) -> int:
        """Where Prometheus scrapes it in a pod: the HTTP port, or a gRPC API's second port (METRICS_PORT)."""
        return GRPC_METRICS_PORT if self.grpc else HTTP_PORT

    @property
    def grpc(self) -> bool:
        """Whether it speaks gRPC (h2c) instead of HTTP/1.1: health through the gRPC health service."""
        return self.kind == "grpc"

    @property
    def health(self) -> tuple[str, str]:
        """(readiness, liveness) paths: func-python answers /health/*, genrec's HTTP apps /readyz and
        /healthz (also when func-python runs them locally: it hands other paths to the app)."""
        return ("/health/readiness", "/health/liveness") if self.kind == "function" else ("/readyz", "/healthz")


WORKLOADS: tuple[Workload, ...] = (
    Workload("event-capture", "event-capture function (HTTP CloudEvents → Kafka)", 70,
             ("kafka", "redis", "postgres"), public=True),  # upstream systems post here
    Workload("feature-update", "feature-update function (interactions → each user's hot state in Redis)", 71,
             ("kafka", "redis", "postgres")),
    Workload("cold-start-embedding", "cold-start-embedding function (items/users → vectors, Semantic IDs)", 72,
             ("kafka", "redis", "postgres", "milvus")),
    Workload("llm-enrichment", "llm-enrichment function (items → LLM tags → item.enriched)", 73, ("kafka", "redis"),
             priority="bulk"),
    # public through the Istio VirtualService (infra/pulumi routing.py)
    Workload("recommend", "recommend function (the recommendation API)", 74, ("kafka", "redis", "postgres", "milvus"),
             kind="service", factory="genrec.apps.recommend:create_app", serves_requests=True),
    # The same lists over gRPC (recommend.v1.RecommendService): Knative routes one port per Service, h2c here.
    Workload("recommend-grpc", "recommend gRPC API (recommend.v1.RecommendService, h2c)", 76,
             ("kafka", "redis", "postgres", "milvus"), kind="grpc", factory="genrec.apps.recommend.rpc", public=True,
             serves_requests=True),
    Workload("analytics-sink", "analytics sink (events → PostgreSQL history, ClickHouse/chDB; analytics queries)", 60,
             ("kafka", "postgres"), kind="service", factory="genrec.apps.analytics_sink:create_app", priority="bulk"),
    Workload("admin-api", "admin API and admin app (frontend/dist)", 75, ("postgres", "redis"),
             kind="service", factory="genrec.apps.admin:create_app", public=True, serves_requests=True),
)


def workload(name: str) -> Workload:
    """The workload called ``name`` (KeyError naming the known ones otherwise)."""
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise KeyError(f"no workload {name!r}; known: {', '.join(w.name for w in WORKLOADS)}")
