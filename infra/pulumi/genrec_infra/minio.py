"""MinIO through its Helm chart: the S3 store for models, training data and Milvus segments.

Root and per-user keys come from Secrets (`existingSecret`), never from chart values.
Users: `genrec` (apps and pipelines, read-write), `milvus` (read-write), `kserve` (read-only:
the model server only downloads).
"""

from __future__ import annotations

import pulumi
from pulumi_kubernetes.helm.v3 import Release, RepositoryOptsArgs

from genrec.config import Settings
from genrec_infra import secrets
from genrec_infra.config import StackConfig

ROOT_SECRET = "minio-root"
USERS_SECRET = "minio-users"


def values(cfg: StackConfig, s: Settings) -> dict:
    mi = cfg.minio
    v: dict = {
        "mode": mi.mode,
        "replicas": mi.replicas,
        "existingSecret": ROOT_SECRET,
        "persistence": {"enabled": True, "size": mi.storage},
        "resources": mi.resources.to_k8s(),
        "buckets": [{"name": b, "policy": "none", "purge": False, "versioning": b == s.s3.bucket}
                    for b in (s.s3.bucket, cfg.milvus.bucket)],
        "users": [
            {"accessKey": "genrec", "existingSecret": USERS_SECRET, "existingSecretKey": "genrec",
             "policy": "readwrite"},
            {"accessKey": "milvus", "existingSecret": USERS_SECRET, "existingSecretKey": "milvus",
             "policy": "readwrite"},
            {"accessKey": "kserve", "existingSecret": USERS_SECRET, "existingSecretKey": "kserve",
             "policy": "readonly"},
        ],
        "metrics": {"serviceMonitor": {"enabled": True, "additionalLabels": cfg.observability.monitor_labels}},
    }
    if cfg.storage_class:
        v["persistence"]["storageClass"] = cfg.storage_class
    return v


def create(cfg: StackConfig, s: Settings, creds: secrets.Credentials, opts: pulumi.ResourceOptions) -> Release:
    mi, ns = cfg.minio, cfg.namespaces.storage
    root = secrets.secret(ROOT_SECRET, ns, {"rootUser": "genrec-root", "rootPassword": creds.minio_root}, opts=opts)
    users = secrets.secret(USERS_SECRET, ns, {"genrec": creds.minio_genrec, "milvus": creds.minio_milvus,
                                              "kserve": creds.minio_kserve}, opts=opts)
    return Release(
        "minio",
        name=mi.release,
        chart=mi.chart.chart,
        version=mi.chart.version,
        repository_opts=RepositoryOptsArgs(repo=mi.chart.repo),
        namespace=ns,
        values=values(cfg, s),
        timeout=900,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[root, users])),
    )
