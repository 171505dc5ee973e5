"""ClickHouse's cluster reaches genrec: a stack with more than one ClickHouse node tells every
workload that reads or writes analytics the cluster's name (the replicated schema needs it);
a single node gets none (plain tables, as with chDB)."""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

import pytest
from genrec_infra.clickhouse import CLUSTER, analytics_cluster
from genrec_infra.config import StackConfig, build

from genrec.config import Settings

ANALYTICS_WORKLOADS = ("analytics-sink", "admin-api")  # writes (and creates the schema); reads
CLUSTER_VAR = "GENREC_CLICKHOUSE__CLUSTER"


def _chi(run) -> dict[str, Any]:
    (chi,) = run.of("clickhouse.altinity.com/v1:ClickHouseInstallation")
    return chi["inputs"]["spec"]


def _container_env(run, container: dict[str, Any]) -> dict[str, str]:
    """What the container sees of genrec's config: ConfigMaps (envFrom), its values, the app Secret's keys."""
    maps = {r["inputs"]["metadata"]["name"]: r["inputs"].get("data", {}) for r in run.of("core/v1:ConfigMap")}
    secrets = run.named("core/v1:Secret", "genrec-app-secrets")["stringData"]
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        env.update(maps.get(src.get("configMapRef", {}).get("name"), {}))
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef", {})
        if "value" in e:
            env[e["name"]] = e["value"]
        elif ref.get("name") == "genrec-app-secrets":
            env[e["name"]] = secrets[ref["key"]]
    return env


def _workload_settings(run, name: str) -> Settings:
    (c,) = run.knative_services()[name]["spec"]["template"]["spec"]["containers"]
    with mock.patch.dict(os.environ, _container_env(run, c), clear=True):
        return Settings()


def test_prod_analytics_workloads_get_the_chi_cluster(runs):
    run = runs["prod"]
    spec = _chi(run)
    (cluster,) = spec["configuration"]["clusters"]
    assert cluster["layout"] == {"shardsCount": 2, "replicasCount": 2}
    assert cluster["name"] == CLUSTER
    # replicated tables and ON CLUSTER DDL need Keeper
    assert spec["configuration"]["zookeeper"]["nodes"]
    assert run.of("ClickHouseKeeperInstallation")
    for name in ANALYTICS_WORKLOADS:
        s = _workload_settings(run, name)
        assert s.clickhouse.url is not None and s.clickhouse.cluster == cluster["name"], name


def test_every_container_that_reaches_clickhouse_knows_the_cluster(runs):
    run = runs["prod"]
    (cluster,) = _chi(run)["configuration"]["clusters"]
    checked = 0
    for r in run.resources:
        for container in _containers(r["inputs"]):
            env = _container_env(run, container)
            if "GENREC_CLICKHOUSE__URL" in env:
                assert env.get(CLUSTER_VAR) == cluster["name"], r["name"]
                checked += 1
    assert checked >= len(ANALYTICS_WORKLOADS)


def test_dev_single_node_has_no_cluster(runs):
    run = runs["dev"]
    spec = _chi(run)
    assert spec["configuration"]["clusters"][0]["layout"] == {"shardsCount": 1, "replicasCount": 1}
    assert "zookeeper" not in spec["configuration"] and not run.of("ClickHouseKeeperInstallation")
    assert CLUSTER_VAR not in run.named("core/v1:ConfigMap", "genrec-config")["data"]
    for name in ANALYTICS_WORKLOADS:
        assert _workload_settings(run, name).clickhouse.cluster is None


@pytest.mark.parametrize(("shards", "replicas", "cluster"), [(1, 1, None), (1, 2, CLUSTER), (2, 1, CLUSTER),
                                                              (2, 2, CLUSTER)])
def test_a_cluster_whenever_there_is_more_than_one_node(shards, replicas, cluster):
    cfg = build(StackConfig, {"clickhouse": {"shards": shards, "replicas": replicas}})
    assert analytics_cluster(cfg) == cluster


def _containers(value: Any):
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("containers", "initContainers") and isinstance(v, list):
                yield from (c for c in v if isinstance(c, dict))
            else:
                yield from _containers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _containers(v)
