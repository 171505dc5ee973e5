"""Explicit field checks for kinds no schema covers here (operators' CRDs, Kafka eventing, Helm releases).

Strimzi, CloudNativePG, Altinity ClickHouse and the Kafka extensions of Knative Eventing publish
their CRDs only in their own repositories and Helm charts: nothing on PyPI or npm carries them.
So these objects get their metadata checked against Kubernetes' ObjectMeta schema and the
fields genrec relies on checked one by one (type, presence, enum) — no invented schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genrec.deploy import k8s_schemas

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_MISSING = object()


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]
    test: Callable[[Any], bool]
    expect: str  # what the value must be, for the message
    required: bool = True


def pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def text(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def texts(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(text(x) for x in v)


def mapping(v: Any) -> bool:
    return isinstance(v, dict)


def one_of(*allowed: str) -> Callable[[Any], bool]:
    return lambda v: v in allowed


_CLUSTER_LABEL = ("metadata", "labels", "strimzi.io/cluster")
# (group, kind) → rules; the facts are from each operator's documentation.
RULES: dict[tuple[str, str], list[Rule]] = {
    ("kafka.strimzi.io", "Kafka"): [Rule(("spec", "kafka"), mapping, "a mapping")],
    ("kafka.strimzi.io", "KafkaNodePool"): [
        Rule(_CLUSTER_LABEL, text, "the Kafka cluster's name (Strimzi ignores pools without it)"),
        Rule(("spec", "replicas"), pos_int, "a positive integer"),
        Rule(("spec", "roles"), lambda v: texts(v) and set(v) <= {"broker", "controller"},
             "a list of 'broker' / 'controller'"),
        Rule(("spec", "storage"), mapping, "a mapping"),
    ],
    ("kafka.strimzi.io", "KafkaTopic"): [
        Rule(_CLUSTER_LABEL, text, "the Kafka cluster's name (the topic operator ignores topics without it)"),
        Rule(("spec", "partitions"), pos_int, "a positive integer"),
        Rule(("spec", "replicas"), pos_int, "a positive integer"),
        Rule(("spec", "topicName"), text, "a topic name", required=False),
        Rule(("spec", "config"), mapping, "a mapping", required=False),
    ],
    ("postgresql.cnpg.io", "Cluster"): [
        Rule(("spec", "instances"), pos_int, "a positive integer"),
        Rule(("spec", "storage", "size"), text, "a quantity such as '10Gi'"),
        Rule(("spec", "imageName"), text, "an image reference", required=False),
    ],
    ("clickhouse.altinity.com", "ClickHouseInstallation"): [
        Rule(("spec", "configuration"), mapping, "a mapping"),
        Rule(("spec", "configuration", "clusters"), lambda v: isinstance(v, list) and bool(v), "a non-empty list"),
    ],
    ("clickhouse-keeper.altinity.com", "ClickHouseKeeperInstallation"): [
        Rule(("spec", "configuration"), mapping, "a mapping"),
    ],
    ("sources.knative.dev", "KafkaSource"): [
        Rule(("spec", "bootstrapServers"), texts, "a non-empty list of host:port strings"),
        Rule(("spec", "topics"), texts, "a non-empty list of topic names"),
        Rule(("spec", "consumerGroup"), text, "a consumer group name"),
        Rule(("spec", "initialOffset"), one_of("earliest", "latest"), "'earliest' or 'latest'", required=False),
        Rule(("spec", "ordering"), one_of("ordered", "unordered"), "'ordered' or 'unordered'", required=False),
        Rule(("spec", "sink"), mapping, "a sink (ref or uri)"),
    ],
    ("eventing.knative.dev", "KafkaSink"): [
        Rule(("spec", "topic"), text, "a topic name"),
        Rule(("spec", "bootstrapServers"), texts, "a non-empty list of host:port strings"),
        Rule(("spec", "contentMode"), one_of("binary", "structured"), "'binary' or 'structured'", required=False),
    ],
    ("helm.sh", "Release"): [
        Rule(("chart",), text, "a chart name"),
        Rule(("repo",), text, "the chart repository"),
        Rule(("version",), text, "a pinned chart version"),
        Rule(("values",), mapping, "a mapping"),
    ],
}


def has_rules(group: str, kind: str) -> bool:
    return (group, kind) in RULES


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def check(obj: dict[str, Any], group: str, kind: str) -> list[tuple[list, str]]:
    """Violations of the rules for this kind (none if it has no rules)."""
    found: list[tuple[list, str]] = []
    for rule in RULES.get((group, kind), []):
        value = _get(obj, rule.path)
        if value is _MISSING:
            if rule.required:
                found.append((list(rule.path), f"required: {rule.expect}"))
        elif not rule.test(value):
            found.append((list(rule.path), f"must be {rule.expect}, got {value!r}"))
    return found


def check_metadata(obj: dict[str, Any], version: str = k8s_schemas.KUBE_VERSION) -> list[tuple[list, str]]:
    """The object's apiVersion/kind/metadata shape, against Kubernetes' ObjectMeta."""
    found: list[tuple[list, str]] = []
    for key in ("apiVersion", "kind"):
        if not text(obj.get(key)):
            found.append(([key], "required: a non-empty string"))
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not text(meta.get("name")):
        found.append((["metadata", "name"], "required: a non-empty string"))
    if isinstance(meta, dict):
        found += [(["metadata", *p], m) for p, m in
                  k8s_schemas.errors_against(k8s_schemas.definition_ref(OBJECT_META), meta, version)]
    return found
