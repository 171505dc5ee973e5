"""Redis Cluster through the Bitnami `redis-cluster` Helm chart; the password stays in a Secret."""

from __future__ import annotations

import pulumi
from pulumi_kubernetes.helm.v3 import Release, RepositoryOptsArgs

from genrec_infra import secrets
from genrec_infra.config import StackConfig

AUTH_SECRET = "redis-cluster-auth"


def create(cfg: StackConfig, creds: secrets.Credentials, opts: pulumi.ResourceOptions) -> Release:
    r, ns = cfg.redis, cfg.namespaces.cache
    auth = secrets.secret(AUTH_SECRET, ns, {"redis-password": creds.redis}, opts=opts)
    values: dict = {
        "usePassword": True,
        "existingSecret": AUTH_SECRET,
        "existingSecretPasswordKey": "redis-password",
        "cluster": {"nodes": r.nodes, "replicas": r.replicas_per_master},
        "persistence": {"size": r.storage},
        "redis": {
            "resources": r.resources.to_k8s(),
            # AOF: the hot state (recent sequences, counters) survives a pod restart.
            "configmap": "appendonly yes\nappendfsync everysec\nmaxmemory-policy noeviction\n",
        },
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": True,
                                                         "labels": cfg.observability.monitor_labels}},
        "pdb": {"create": True, "minAvailable": max(1, r.nodes // 2)},
    }
    if cfg.storage_class:
        values["persistence"]["storageClass"] = cfg.storage_class
    if r.image_repository:
        values["image"] = {"repository": r.image_repository}
    return Release(
        "redis-cluster",
        name=r.release,
        chart=r.chart.chart,
        version=r.chart.version,
        repository_opts=RepositoryOptsArgs(repo=r.chart.repo),
        namespace=ns,
        values=values,
        atomic=True,
        timeout=900,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[auth])),
    )
