"""ClickHouse through the Altinity operator: a ClickHouseInstallation (plus Keeper when it has more than one node).

The `genrec` user's password is read by the operator from a Secret
(`k8s_secret_password`), so it never appears in the CR. With more than one node genrec's
analytics tables are created ON CLUSTER as replicated tables behind Distributed ones
(`genrec.stores.analytics_schema`); `analytics_cluster` tells the apps the cluster's name.
"""

from __future__ import annotations

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from genrec_infra import secrets
from genrec_infra.config import StackConfig
from genrec_infra.k8s import custom

USER_SECRET = "clickhouse-genrec"
CLUSTER = "genrec"  # the CHI's cluster: its remote_servers entry, genrec's ON CLUSTER and Distributed(...)


def analytics_cluster(cfg: StackConfig) -> str | None:
    """The cluster genrec spreads its analytics tables over, or None on a single node.

    Replicated tables and ON CLUSTER DDL both need Keeper, which a single node does without;
    there, plain tables are what chDB runs locally and a Distributed table would add nothing.
    """
    ch = cfg.clickhouse
    return CLUSTER if ch.shards * ch.replicas > 1 else None


def _volume_template(name: str, size: str, storage_class: str | None) -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"name": name, "spec": spec}


def _keeper(cfg: StackConfig, opts: pulumi.ResourceOptions) -> CustomResource:
    ch = cfg.clickhouse
    return custom("clickhouse-keeper", "clickhouse-keeper.altinity.com/v1", "ClickHouseKeeperInstallation",
                  {"name": ch.name, "namespace": cfg.namespaces.analytics}, {
                      "configuration": {"clusters": [{"name": "keeper",
                                                      "layout": {"replicasCount": ch.keeper_replicas}}]},
                      "defaults": {"templates": {"podTemplate": "keeper", "dataVolumeClaimTemplate": "keeper-data"}},
                      "templates": {
                          "podTemplates": [{"name": "keeper", "spec": {"containers": [{
                              "name": "clickhouse-keeper",
                              "image": ch.image.replace("clickhouse-server", "clickhouse-keeper"),
                              "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                            "limits": {"memory": "1Gi"}},
                          }]}}],
                          "volumeClaimTemplates": [_volume_template("keeper-data", "10Gi", cfg.storage_class)],
                      },
                  }, opts)


def create(cfg: StackConfig, creds: secrets.Credentials, opts: pulumi.ResourceOptions) -> CustomResource:
    ch, ns = cfg.clickhouse, cfg.namespaces.analytics
    user = secrets.secret(USER_SECRET, ns, {"password": creds.clickhouse}, opts=opts)
    depends: list[pulumi.Resource] = [user]
    configuration: dict = {
        "users": {
            f"{ch.user}/k8s_secret_password": f"{ns}/{USER_SECRET}/password",
            f"{ch.user}/networks/ip": ["0.0.0.0/0"],  # reachable from the genrec namespace
            f"{ch.user}/profile": "default",
            f"{ch.user}/access_management": 1,  # genrec's migrations create its database and tables
        },
        # With replicas the operator sets internal_replication (the Replicated tables copy a
        # shard's rows; Distributed writes one replica), and the {shard}/{replica} macros.
        "clusters": [{"name": CLUSTER, "layout": {"shardsCount": ch.shards, "replicasCount": ch.replicas}}],
    }
    if analytics_cluster(cfg):  # Keeper: replication and the ON CLUSTER DDL queue
        keeper = _keeper(cfg, opts)
        depends.append(keeper)
        configuration["zookeeper"] = {"nodes": [{"host": f"keeper-{ch.name}", "port": 2181}]}
    spec = {
        "configuration": configuration,
        "defaults": {"templates": {"podTemplate": "server", "dataVolumeClaimTemplate": "data"}},
        "templates": {
            "podTemplates": [{"name": "server", "spec": {"containers": [{
                "name": "clickhouse", "image": ch.image, "resources": ch.resources.to_k8s(),
            }]}}],
            "volumeClaimTemplates": [_volume_template("data", ch.storage, cfg.storage_class)],
        },
    }
    return custom("clickhouse", "clickhouse.altinity.com/v1", "ClickHouseInstallation",
                  {"name": ch.name, "namespace": ns}, spec,
                  pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=depends)))
