"""genrec's own `Settings` for production, rendered as `GENREC_*` environment variables.

The same typed Settings object the code reads locally is built here with the in-cluster
URLs, then flattened with genrec's env conventions (prefix `GENREC_`, nesting `__`, JSON for
mappings). Non-secret values go to one ConfigMap; every `SecretStr` field comes from one
Secret through `secretKeyRef`. Topic names come from genrec's defaults, so a rename in
`genrec.config` reaches the KafkaTopics, the KafkaSources and the functions together.
Every stack is production (`GENREC_ENVIRONMENT=production`): a genrec process there refuses
to start with a development default secret, so each one the apps check is generated here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from genrec.config import Settings, TopicSettings, UncheckedSettings
from genrec.workloads import WORKLOADS
from genrec_infra import secrets
from genrec_infra.clickhouse import analytics_cluster
from genrec_infra.config import StackConfig
from genrec_infra.k8s import digest, labels, svc_host

CONFIG_MAP = "genrec-config"
APP_SECRET = "genrec-app-secrets"
SERVICE_ACCOUNT = "genrec"  # the identity of every genrec pod (no Kubernetes API access needed)
# Sections of Settings that describe the embedded local stack only, or hold only secrets.
_LOCAL_ONLY = {"stack", "auth"}
_PLACEHOLDER = SecretStr("from-secret")  # secret fields are never rendered; see SECRET_ENV


class PinnedSettings(UncheckedSettings):
    """Settings from constructor arguments only: the deployer's shell env and genrec.toml must not leak in.
    Unchecked: the secrets are rendered as Secret references, never as these values."""

    model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": None})

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   **_sources: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@dataclass(frozen=True)
class Endpoints:
    """In-cluster addresses of every store, derived from the object names the components create."""

    kafka: str
    postgres: str
    redis: str
    milvus: str
    clickhouse: str
    s3: str
    model_server: str


def endpoints(cfg: StackConfig) -> Endpoints:
    ns = cfg.namespaces
    return Endpoints(
        kafka=f"{svc_host(cfg.kafka.cluster_name + '-kafka-bootstrap', ns.kafka)}:9092",
        postgres=f"{svc_host(cfg.postgres.cluster_name + '-rw', ns.db)}:5432",
        redis=f"{svc_host(cfg.redis.release, ns.cache)}:6379",
        milvus=f"http://{svc_host(cfg.milvus.release, ns.vector)}:19530",
        clickhouse=f"{svc_host('clickhouse-' + cfg.clickhouse.name, ns.analytics)}:8123",
        s3=f"http://{svc_host(cfg.minio.release, ns.storage)}:9000",
        # KServe (serverless) answers on the InferenceService's cluster-local host, port 80.
        model_server=f"{svc_host(cfg.model.name, ns.app)}:80",
    )


def production_topics(cfg: StackConfig) -> dict[str, TopicSettings]:
    base = PinnedSettings().kafka.topics
    unknown = set(cfg.kafka.topics) - set(base)
    if unknown:
        raise ValueError(f"kafka.topics names topics genrec does not have: {sorted(unknown)}")
    topics = {}
    for key, t in base.items():
        o = cfg.kafka.topics.get(key)
        topics[key] = TopicSettings(
            name=t.name,
            partitions=(o.partitions if o and o.partitions else cfg.kafka.default_partitions),
            replication=cfg.kafka.replication,
            retention_days=(o.retention_days if o and o.retention_days else t.retention_days),
        )
    return topics


def _model_instances(cfg: StackConfig) -> dict[str, Any]:
    """Where the model server's instances run and how many: on a GPU one; on the CPU one (one thread
    each) per requested core, since a pod's request does not reach torch's thread count, which
    would otherwise follow the node's cores."""
    if cfg.model.resources.gpu:
        return {"instance_kind": "gpu", "instances": 1}
    return {"instance_kind": "cpu", "instances": cfg.model.resources.whole_cores()}


def production_settings(cfg: StackConfig) -> Settings:
    ep = endpoints(cfg)
    return PinnedSettings(
        environment="production",
        kafka={
            "bootstrap_servers": ep.kafka,
            "topics": production_topics(cfg),
            # Cluster defaults instead of the local fast-join values: fewer spurious rebalances.
            "session_timeout_ms": 45_000,
            "heartbeat_interval_ms": 3_000,
            "fetch_wait_max_ms": 100,
        },
        postgres={"dsn": _PLACEHOLDER},
        redis={"url": _PLACEHOLDER, "cluster": True},
        milvus={"uri": ep.milvus},
        clickhouse={"url": _PLACEHOLDER, "database": cfg.clickhouse.database, "cluster": analytics_cluster(cfg)},
        s3={"endpoint_url": ep.s3, "access_key_id": "genrec", "secret_access_key": _PLACEHOLDER},
        model_server={"url": ep.model_server, **_model_instances(cfg)},
        # Knative Services answer on port 80 of their cluster-local host.
        functions={"urls": {spec.name: f"http://{svc_host(spec.name, cfg.namespaces.app)}" for spec in WORKLOADS},
                   "cold_start_workers": cfg.workloads["cold-start-embedding"].resources.whole_cores()},
        llm={"base_url": cfg.llm.base_url, "quality_model": cfg.llm.quality_model,
             "cheap_model": cfg.llm.cheap_model},
    )


def _flatten(prefix: str, model: BaseModel, out: dict[str, str]) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}__{name.upper()}"
        if value is None or isinstance(value, SecretStr):
            continue
        if isinstance(value, BaseModel):
            _flatten(key, value, out)
        elif isinstance(value, dict | list | tuple):
            # pydantic-settings parses JSON for complex fields; a whole mapping in one
            # variable also avoids replacing a default dict with a partial one.
            out[key] = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def render_env(s: Settings) -> dict[str, str]:
    """Every non-secret production setting as `GENREC_*` variables."""
    out: dict[str, str] = {}
    for name in type(s).model_fields:
        if name in _LOCAL_ONLY:
            continue
        value = getattr(s, name)
        if isinstance(value, BaseModel):
            _flatten(f"GENREC_{name.upper()}", value, out)
        else:  # a top-level setting, e.g. GENREC_ENVIRONMENT
            out[f"GENREC_{name.upper()}"] = str(value)
    return dict(sorted(out.items()))


def secret_values(cfg: StackConfig, creds: secrets.Credentials) -> dict[str, pulumi.Output[str]]:
    """Secret env var name → value; the Secret's keys are the variable names themselves."""
    ep = endpoints(cfg)
    pg, ch = cfg.postgres, cfg.clickhouse
    values: dict[str, pulumi.Output[str]] = {
        "GENREC_POSTGRES__DSN": pulumi.Output.concat(
            "postgresql://", pg.owner, ":", creds.postgres, "@", ep.postgres, "/", pg.database),
        "GENREC_REDIS__URL": pulumi.Output.concat("redis://:", creds.redis, "@", ep.redis, "/0"),
        "GENREC_CLICKHOUSE__URL": pulumi.Output.concat(
            "http://", ch.user, ":", creds.clickhouse, "@", ep.clickhouse, "/", ch.database),
        "GENREC_S3__SECRET_ACCESS_KEY": creds.minio_genrec,
        "GENREC_AUTH__ADMIN_TOKENS": creds.admin_token.apply(lambda t: json.dumps({"admin": t})),
        "GENREC_AUTH__INGEST_API_KEYS": creds.ingest_key.apply(lambda k: json.dumps({"default": k})),
        "GENREC_AUTH__JWT_SECRET": creds.jwt_secret,
    }
    if creds.llm_api_key is not None:
        values["GENREC_LLM__API_KEY"] = creds.llm_api_key
    return values


@dataclass(frozen=True)
class AppConfig:
    """What a genrec container needs to see its production settings."""

    env: dict[str, str]  # the ConfigMap's data (plain, non-secret)
    secret_keys: tuple[str, ...]
    config_map: k8s.core.v1.ConfigMap
    secret: k8s.core.v1.Secret
    service_account: k8s.core.v1.ServiceAccount

    @property
    def config_hash(self) -> str:
        return digest(self.env)

    def env_from(self) -> list[dict[str, Any]]:
        return [{"configMapRef": {"name": CONFIG_MAP}}]

    def secret_env(self) -> list[dict[str, Any]]:
        return [{"name": k, "valueFrom": {"secretKeyRef": {"name": APP_SECRET, "key": k}}}
                for k in self.secret_keys]


def otel_env(cfg: StackConfig) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": cfg.observability.otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",  # metrics are scraped from /metrics by Prometheus
        "OTEL_PROPAGATORS": "tracecontext,baggage",
    }


def create(cfg: StackConfig, creds: secrets.Credentials,
           opts: pulumi.ResourceOptions | None = None) -> AppConfig:
    env = {
        **render_env(production_settings(cfg)),
        **otel_env(cfg),
        "HF_HUB_OFFLINE": "1",  # model weights ship in the image; never download at run time
        "TOKENIZERS_PARALLELISM": "false",
    }
    ns = cfg.namespaces.app
    config_map = k8s.core.v1.ConfigMap(
        "genrec-config",
        metadata={"name": CONFIG_MAP, "namespace": ns, "labels": labels("genrec", "config")},
        data=env,
        opts=opts,
    )
    values = secret_values(cfg, creds)
    secret = secrets.secret(APP_SECRET, ns, values, opts=opts)
    sa = k8s.core.v1.ServiceAccount(
        "genrec-sa", metadata={"name": SERVICE_ACCOUNT, "namespace": ns, "labels": labels("genrec", "identity")},
        automount_service_account_token=False, opts=opts)
    return AppConfig(env=env, secret_keys=tuple(values), config_map=config_map, secret=secret, service_account=sa)
