"""The typed per-stack configuration: `Pulumi.<stack>.yaml` → one frozen `StackConfig`.

Code defaults are production-sane; a stack file only says where it differs (dev shrinks
everything, prod spells out its sizes). Keys may be camelCase (Pulumi style) or snake_case;
an unknown key is an error, so a typo cannot silently fall back to a default.
What concerns genrec itself (topic names, subscriptions) is not configured here: it comes
from `genrec.config.Settings` and `genrec.events.subscriptions`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

import pulumi

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    cpu: str = "250m"
    memory: str = "256Mi"
    cpu_limit: str | None = None  # no CPU limit by default: throttling hurts tail latency
    memory_limit: str | None = None  # defaults to the request: memory is not compressible
    gpu: int = 0

    def whole_cores(self) -> int:
        """The CPU request in whole cores, at least one ("4" -> 4, "2.5" -> 2, "500m" -> 1)."""
        cores = int(self.cpu[:-1]) / 1000 if self.cpu.endswith("m") else float(self.cpu)
        return max(1, int(cores))

    def to_k8s(self) -> dict[str, dict[str, str]]:
        requests = {"cpu": self.cpu, "memory": self.memory}
        limits = {"memory": self.memory_limit or self.memory}
        if self.cpu_limit:
            limits["cpu"] = self.cpu_limit
        if self.gpu:
            # Extended resources must be set as limits; requests must equal them.
            requests["nvidia.com/gpu"] = str(self.gpu)
            limits["nvidia.com/gpu"] = str(self.gpu)
        return {"requests": requests, "limits": limits}


@dataclass(frozen=True)
class Workload:
    """One Knative Service (a function or an HTTP service)."""

    min_scale: int = 0
    max_scale: int = 20
    target: int = 100  # soft concurrency target per replica (autoscaling.knative.dev/target)
    container_concurrency: int = 0  # hard limit; 0 = unlimited
    timeout_s: int = 300
    resources: Resources = field(default_factory=Resources)
    image: str | None = None  # overrides StackConfig.image (e.g. an image from `func build`)


@dataclass(frozen=True)
class TopicOverride:
    partitions: int | None = None
    retention_days: int | None = None


@dataclass(frozen=True)
class KafkaConfig:
    cluster_name: str = "genrec"
    api_version: str = "kafka.strimzi.io/v1"  # "kafka.strimzi.io/v1beta2" for Strimzi < 0.49
    version: str = "4.1.0"
    metadata_version: str | None = None  # pin during upgrades; None = the operator's default
    broker_replicas: int = 3
    controller_replicas: int = 3
    broker_storage: str = "500Gi"
    controller_storage: str = "20Gi"
    replication: int = 3
    min_insync_replicas: int = 2
    dead_letter_retention_days: int = 30  # time to inspect and replay failed records
    # Partitions of a topic the stack does not list (genrec's own defaults are for one machine).
    default_partitions: int = 12
    topics: dict[str, TopicOverride] = field(default_factory=dict)
    broker_resources: Resources = field(default_factory=lambda: Resources("2", "8Gi"))
    controller_resources: Resources = field(default_factory=lambda: Resources("500m", "2Gi"))


@dataclass(frozen=True)
class PostgresConfig:
    cluster_name: str = "genrec-pg"
    instances: int = 3
    # CloudNativePG "standard" operand images ship pgvector.
    image: str = "ghcr.io/cloudnative-pg/postgresql:18-standard-trixie"
    storage: str = "200Gi"
    wal_storage: str = "50Gi"
    database: str = "genrec"
    owner: str = "genrec"
    max_connections: int = 400
    shared_buffers: str = "2GB"
    resources: Resources = field(default_factory=lambda: Resources("2", "8Gi"))


@dataclass(frozen=True)
class ChartRef:
    chart: str
    repo: str
    version: str


@dataclass(frozen=True)
class RedisConfig:
    release: str = "redis-cluster"
    chart: ChartRef = field(default_factory=lambda: ChartRef(
        "redis-cluster", "https://charts.bitnami.com/bitnami", "12.0.13"))
    nodes: int = 6  # masters + replicas
    replicas_per_master: int = 1
    storage: str = "20Gi"
    image_repository: str | None = None  # e.g. a mirror; the chart's default otherwise
    resources: Resources = field(default_factory=lambda: Resources("500m", "4Gi"))


@dataclass(frozen=True)
class MilvusConfig:
    release: str = "milvus"
    chart: ChartRef = field(default_factory=lambda: ChartRef(
        "milvus", "https://zilliztech.github.io/milvus-helm/", "4.2.58"))
    cluster: bool = True
    query_nodes: int = 2
    data_nodes: int = 2
    index_nodes: int = 1
    proxies: int = 2
    etcd_replicas: int = 3
    bucket: str = "milvus"
    resources: Resources = field(default_factory=lambda: Resources("1", "4Gi"))


@dataclass(frozen=True)
class ClickHouseConfig:
    name: str = "genrec"
    image: str = "clickhouse/clickhouse-server:25.8"
    shards: int = 1
    replicas: int = 2
    keeper_replicas: int = 3
    storage: str = "200Gi"
    database: str = "genrec"
    user: str = "genrec"
    resources: Resources = field(default_factory=lambda: Resources("2", "8Gi"))


@dataclass(frozen=True)
class MinioConfig:
    release: str = "minio"
    chart: ChartRef = field(default_factory=lambda: ChartRef("minio", "https://charts.min.io/", "5.4.0"))
    mode: str = "distributed"
    replicas: int = 4
    storage: str = "500Gi"
    resources: Resources = field(default_factory=lambda: Resources("500m", "2Gi"))


@dataclass(frozen=True)
class ModelConfig:
    name: str = "genrec-model"
    # The repository's address is genrec's (genrec.serving.repository.production_repository_uri).
    runtime: str = "kserve-tritonserver"
    # Triton with genrec for the python backend (deploy/Dockerfile.serving); None: the stack's
    # image name with "-serving" (StackConfig.sibling_image).
    image: str | None = None
    min_replicas: int = 1
    max_replicas: int = 4
    scale_target: int = 8  # in-flight requests per replica before scaling out
    canary_traffic_percent: int | None = None  # set while a new model version is rolled out
    resources: Resources = field(default_factory=lambda: Resources("4", "16Gi", gpu=1))


@dataclass(frozen=True)
class RecommendRoute:
    host: str = "api.genrec.example.com"
    gateway: str = "knative-serving/knative-ingress-gateway"
    local_gateway: str = "knative-local-gateway.istio-system.svc.cluster.local"
    stable_revision: str | None = None  # None: the current revision is the stable one
    canary_weight: int = 5
    canary_header: str = "x-genrec-canary"


@dataclass(frozen=True)
class ObservabilityConfig:
    otlp_endpoint: str = "http://otel-collector.observability.svc:4317"
    # Labels a Prometheus Operator instance selects monitors by (kube-prometheus-stack: release).
    monitor_labels: dict[str, str] = field(default_factory=lambda: {"release": "kube-prometheus-stack"})
    dashboard_namespace: str = "monitoring"
    scrape_interval: str = "30s"


@dataclass(frozen=True)
class PipelineConfig:
    # genrec with pyspark and a Java runtime (deploy/Dockerfile.pipeline); None: the stack's image
    # name with "-pipeline" (StackConfig.sibling_image).
    image: str | None = None
    schedule: str = "0 2 * * *"
    args: tuple[str, ...] = ("pipeline", "nightly")
    deadline_s: int = 6 * 3600
    resources: Resources = field(default_factory=lambda: Resources("4", "16Gi"))


@dataclass(frozen=True)
class LlmConfig:
    base_url: str | None = None
    quality_model: str = "gpt-4o"
    cheap_model: str = "gpt-4o-mini"


@dataclass(frozen=True)
class Namespaces:
    app: str = "genrec"
    kafka: str = "kafka"
    db: str = "db"
    cache: str = "cache"
    vector: str = "vector"
    analytics: str = "analytics"
    storage: str = "storage"

    def stores(self) -> list[str]:
        return [self.kafka, self.db, self.cache, self.vector, self.analytics, self.storage]


def _default_workloads() -> dict[str, Workload]:
    sync = Resources("500m", "1Gi")
    return {
        "event-capture": Workload(min_scale=1, max_scale=50, target=100),
        "recommend": Workload(min_scale=2, max_scale=100, target=50, resources=Resources("1", "2Gi")),
        "recommend-grpc": Workload(min_scale=1, max_scale=100, target=50, resources=Resources("1", "2Gi")),
        "admin-api": Workload(min_scale=1, max_scale=5, target=50),
        # The freshness path: always warm (a cold start would cost the click → next-list second),
        # a whole core per replica, scaled out before its queue grows.
        "feature-update": Workload(min_scale=1, max_scale=50, target=50, resources=Resources("1", "512Mi")),
        "cold-start-embedding": Workload(min_scale=0, max_scale=20, target=10, resources=Resources("1", "3Gi")),
        "llm-enrichment": Workload(min_scale=0, max_scale=10, target=5, resources=sync),
        # Bulk: may lag minutes; memory for big batches, little CPU guaranteed.
        "analytics-sink": Workload(min_scale=0, max_scale=20, target=100, resources=Resources("100m", "1Gi")),
    }


@dataclass(frozen=True)
class StackConfig:
    stack: str = "dev"
    image: str = "ghcr.io/genrec/genrec:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    storage_class: str | None = None  # None: the cluster's default StorageClass
    istio_injection: bool = True
    namespaces: Namespaces = field(default_factory=Namespaces)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    milvus: MilvusConfig = field(default_factory=MilvusConfig)
    clickhouse: ClickHouseConfig = field(default_factory=ClickHouseConfig)
    minio: MinioConfig = field(default_factory=MinioConfig)
    workloads: dict[str, Workload] = field(default_factory=_default_workloads)
    model: ModelConfig = field(default_factory=ModelConfig)
    recommend: RecommendRoute = field(default_factory=RecommendRoute)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)

    def image_for(self, workload: str) -> str:
        """The workload's own image: deploy/Dockerfile built with WORKLOAD=<name> installs only
        genrec's extra of that name, so a start from zero imports and maps no more than it uses."""
        return self.workloads[workload].image or self.sibling_image(workload)

    def sibling_image(self, flavour: str) -> str:
        """The image deploy/Dockerfile.<flavour> builds, named after the stack's image:
        `REGISTRY/genrec:TAG` -> `REGISTRY/genrec-<flavour>:TAG`."""
        name, sep, tag = self.image.rpartition(":")
        if not sep or "/" in tag:  # no tag (a colon, if any, was a registry port)
            name, tag = self.image, "latest"
        return f"{name}-{flavour}:{tag}"

    @property
    def serving_image(self) -> str:
        return self.model.image or self.sibling_image("serving")

    @property
    def pipeline_image(self) -> str:
        return self.pipeline.image or self.sibling_image("pipeline")


# ---------------------------------------------------------------- loading

def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _convert(tp: Any, value: Any, base: Any, where: str) -> Any:
    tp = _unwrap_optional(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {value!r}")
        return build(tp, value, base if dataclasses.is_dataclass(base) else None, where)
    origin = typing.get_origin(tp)
    if origin is dict:
        _k, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {value!r}")
        merged = dict(base or {})
        for k, v in value.items():
            merged[k] = _convert(vt, v, merged.get(k), f"{where}.{k}")
        return merged
    if origin is tuple:
        return tuple(value)
    if tp is int and isinstance(value, str):
        return int(value)
    if tp is bool and isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return value


def build(cls: type[T], raw: dict[str, Any], base: T | None = None, where: str = "") -> T:
    """`cls` from a (camelCase or snake_case) mapping, layered over `base` or the defaults."""
    base = base if base is not None else cls()
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        name = _snake(key)
        if name not in names:
            raise ValueError(f"unknown config key {where + '.' if where else ''}{key}")
        changes[name] = _convert(hints[name], value, getattr(base, name), f"{where}.{key}".lstrip("."))
    return dataclasses.replace(base, **changes)


_SECTIONS = {f.name for f in dataclasses.fields(StackConfig)} - {"stack"}


def load(cfg: pulumi.Config | None = None, stack: str | None = None) -> StackConfig:
    """Read every `genrec:*` key of the current stack into a StackConfig."""
    cfg = cfg or pulumi.Config("genrec")
    raw: dict[str, Any] = {}
    for section in sorted(_SECTIONS):
        key = "".join(p.title() if i else p for i, p in enumerate(section.split("_")))
        hint = typing.get_type_hints(StackConfig)[section]
        value = cfg.get_object(key) if _is_structured(hint) else cfg.get(key)
        if value is not None:
            raw[section] = value
    return build(StackConfig, raw, StackConfig(stack=stack or pulumi.get_stack()))


def _is_structured(tp: Any) -> bool:
    tp = _unwrap_optional(tp)
    return dataclasses.is_dataclass(tp) or typing.get_origin(tp) in (dict, tuple)
