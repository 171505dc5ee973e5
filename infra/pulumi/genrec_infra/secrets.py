"""Every credential is generated here (pulumi-random) and only ever leaves as a Kubernetes Secret.

Values are Pulumi secrets end to end: encrypted in the state, masked in previews, and
referenced from workloads with `secretKeyRef` / the charts' `existingSecret` options, so no
password is written into a ConfigMap, a Helm value or an env `value`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from genrec_infra.k8s import PART_OF


@dataclass(frozen=True)
class Credentials:
    postgres: pulumi.Output[str]
    redis: pulumi.Output[str]
    clickhouse: pulumi.Output[str]
    minio_root: pulumi.Output[str]
    minio_genrec: pulumi.Output[str]  # S3 secret key of the `genrec` MinIO user (apps, pipelines)
    minio_milvus: pulumi.Output[str]
    minio_kserve: pulumi.Output[str]  # read-only user the model server downloads with
    admin_token: pulumi.Output[str]
    ingest_key: pulumi.Output[str]
    jwt_secret: pulumi.Output[str]
    llm_api_key: pulumi.Output[str] | None  # from `pulumi config set --secret llmApiKey`, optional


def _password(name: str, length: int = 32) -> pulumi.Output[str]:
    # Alphanumeric only: the values end up inside URLs (DSNs, redis://) without escaping.
    return random.RandomPassword(name, length=length, special=False).result


def generate(config: pulumi.Config | None = None) -> Credentials:
    config = config or pulumi.Config("genrec")
    return Credentials(
        postgres=_password("postgres-genrec"),
        redis=_password("redis"),
        clickhouse=_password("clickhouse-genrec"),
        minio_root=_password("minio-root"),
        minio_genrec=_password("minio-genrec", 40),
        minio_milvus=_password("minio-milvus", 40),
        minio_kserve=_password("minio-kserve", 40),
        admin_token=_password("admin-token", 48),
        ingest_key=_password("ingest-key", 48),
        jwt_secret=_password("jwt-secret", 64),
        llm_api_key=config.get_secret("llmApiKey"),
    )


def secret(name: str, namespace: str, data: dict[str, Any], *, type_: str = "Opaque",
           annotations: dict[str, str] | None = None,
           opts: pulumi.ResourceOptions | None = None) -> k8s.core.v1.Secret:
    """A Secret with a fixed name (charts and operators refer to it by name)."""
    return k8s.core.v1.Secret(
        f"secret-{namespace}-{name}",
        metadata={"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": PART_OF},
                  "annotations": annotations or {}},
        type=type_,
        string_data={k: pulumi.Output.secret(v) for k, v in data.items()},
        opts=opts,
    )
