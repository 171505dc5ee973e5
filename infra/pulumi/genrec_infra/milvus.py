"""Milvus through its Helm chart, storing segments in genrec's MinIO (no second object store).

The chart would render S3 keys into Milvus' config file; instead they reach every Milvus
component as MINIO_ACCESS_KEY_ID / MINIO_SECRET_ACCESS_KEY from a Secret (Milvus maps
environment variables onto its `minio.*` settings).
"""

from __future__ import annotations

import pulumi
from pulumi_kubernetes.helm.v3 import Release, RepositoryOptsArgs

from genrec_infra import secrets
from genrec_infra.config import StackConfig
from genrec_infra.k8s import svc_host

S3_SECRET = "milvus-s3"
S3_USER = "milvus"
_CLUSTER_COMPONENTS = ("proxy", "queryNode", "dataNode", "indexNode", "mixCoordinator", "streamingNode")


def _s3_env() -> list[dict]:
    return [
        {"name": "MINIO_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "accessKey"}}},
        {"name": "MINIO_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "secretKey"}}},
    ]


def values(cfg: StackConfig) -> dict:
    m = cfg.milvus
    resources = m.resources.to_k8s()
    v: dict = {
        "cluster": {"enabled": m.cluster},
        "minio": {"enabled": False},
        "externalS3": {
            "enabled": True,
            "host": svc_host(cfg.minio.release, cfg.namespaces.storage),
            "port": "9000",
            "useSSL": False,
            "bucketName": m.bucket,
            "rootPath": "milvus",
            "cloudProvider": "minio",
        },
        "etcd": {"replicaCount": m.etcd_replicas, "persistence": {"size": "10Gi"}},
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": True,
                                                         "additionalLabels": cfg.observability.monitor_labels}},
    }
    if m.cluster:
        counts = {"proxy": m.proxies, "queryNode": m.query_nodes, "dataNode": m.data_nodes,
                  "indexNode": m.index_nodes, "mixCoordinator": 1, "streamingNode": 1}
        for component in _CLUSTER_COMPONENTS:
            v[component] = {"replicas": counts[component], "resources": resources, "extraEnv": _s3_env()}
    else:
        # Standalone: one process, an embedded message queue, no Pulsar.
        v["standalone"] = {"resources": resources, "extraEnv": _s3_env(), "messageQueue": "rocksmq"}
        v["pulsarv3"] = {"enabled": False}
    if cfg.storage_class:
        v["etcd"]["persistence"]["storageClass"] = cfg.storage_class
    return v


def create(cfg: StackConfig, creds: secrets.Credentials, opts: pulumi.ResourceOptions) -> Release:
    m, ns = cfg.milvus, cfg.namespaces.vector
    s3 = secrets.secret(S3_SECRET, ns, {"accessKey": S3_USER, "secretKey": creds.minio_milvus}, opts=opts)
    return Release(
        "milvus",
        name=m.release,
        chart=m.chart.chart,
        version=m.chart.version,
        repository_opts=RepositoryOptsArgs(repo=m.chart.repo),
        namespace=ns,
        values=values(cfg),
        timeout=1200,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[s3])),
    )
