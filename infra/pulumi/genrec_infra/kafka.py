"""Kafka through Strimzi: a KRaft cluster (controller + broker node pools) and its topics.

KafkaTopic CRs are generated from genrec's settings with `genrec.events.kafka.all_topics`,
the same function that creates the topics locally, so each source topic gets exactly one
dead-letter topic here as it does on the embedded broker.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from genrec.config import Settings
from genrec.events.kafka import all_topics
from genrec_infra.config import KafkaConfig, StackConfig
from genrec_infra.k8s import custom, dns_name

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replicas: int
    retention_days: int
    dead_letter: bool


def topic_specs(s: Settings, k: KafkaConfig) -> list[TopicSpec]:
    """Every topic genrec uses, with its production shape."""
    by_name = {t.name: t for t in s.kafka.topics.values()}
    specs = []
    for name, partitions in all_topics(s).items():
        source = by_name.get(name)
        specs.append(TopicSpec(
            name=name,
            partitions=partitions,
            replicas=source.replication if source else k.replication,
            retention_days=source.retention_days if source else k.dead_letter_retention_days,
            dead_letter=source is None,
        ))
    return specs


def _storage(size: str, storage_class: str | None) -> dict:
    volume = {"id": 0, "type": "persistent-claim", "size": size, "deleteClaim": False, "kraftMetadata": "shared"}
    if storage_class:
        volume["class"] = storage_class
    return {"type": "jbod", "volumes": [volume]}


def _pool(name: str, role: str, replicas: int, size: str, cfg: StackConfig, resources: dict,
          opts: pulumi.ResourceOptions) -> CustomResource:
    k = cfg.kafka
    return custom(
        f"kafka-pool-{name}", k.api_version, "KafkaNodePool",
        {"name": name, "namespace": cfg.namespaces.kafka, "labels": {"strimzi.io/cluster": k.cluster_name}},
        {"replicas": replicas, "roles": [role], "storage": _storage(size, cfg.storage_class),
         "resources": resources,
         "template": {"pod": {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
             "weight": 100,
             "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                 "labelSelector": {"matchLabels": {"strimzi.io/pool-name": name}}},
         }]}}}}},
        opts,
    )


def _cluster(cfg: StackConfig, opts: pulumi.ResourceOptions) -> CustomResource:
    k = cfg.kafka
    kafka: dict = {
        "version": k.version,
        "listeners": [
            {"name": "plain", "port": 9092, "type": "internal", "tls": False},
            {"name": "tls", "port": 9093, "type": "internal", "tls": True},
        ],
        "config": {
            "default.replication.factor": k.replication,
            "min.insync.replicas": min(k.min_insync_replicas, k.replication),
            "offsets.topic.replication.factor": k.replication,
            "transaction.state.log.replication.factor": k.replication,
            "transaction.state.log.min.isr": min(k.min_insync_replicas, k.replication),
            # Topics are declared as KafkaTopic CRs; a typo in a client must not create one.
            "auto.create.topics.enable": False,
        },
        "metricsConfig": {"type": "strimziMetricsReporter"},
    }
    if k.metadata_version:
        kafka["metadataVersion"] = k.metadata_version
    metadata: dict = {"name": k.cluster_name, "namespace": cfg.namespaces.kafka}
    if k.api_version.endswith("v1beta2"):
        # Older Strimzi releases only enable KRaft node pools when asked to.
        metadata["annotations"] = {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    return custom("kafka-cluster", k.api_version, "Kafka", metadata, {
        "kafka": kafka,
        "entityOperator": {"topicOperator": {}, "userOperator": {}},
        # Consumer-group lag per topic/partition for the dashboard (kafka_consumergroup_lag).
        "kafkaExporter": {"topicRegex": ".*", "groupRegex": ".*"},
    }, opts)


@dataclass(frozen=True)
class Kafka:
    cluster: CustomResource
    topics: dict[str, CustomResource]


def create(cfg: StackConfig, s: Settings, opts: pulumi.ResourceOptions) -> Kafka:
    k = cfg.kafka
    controllers = _pool("controller", "controller", k.controller_replicas, k.controller_storage, cfg,
                        k.controller_resources.to_k8s(), opts)
    brokers = _pool("broker", "broker", k.broker_replicas, k.broker_storage, cfg,
                    k.broker_resources.to_k8s(), opts)
    cluster = _cluster(cfg, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
        depends_on=[controllers, brokers])))
    topics = {}
    for t in topic_specs(s, k):
        topics[t.name] = custom(
            f"topic-{dns_name(t.name)}", k.api_version, "KafkaTopic",
            {"name": dns_name(t.name), "namespace": cfg.namespaces.kafka,
             "labels": {"strimzi.io/cluster": k.cluster_name, "genrec.dev/dead-letter": str(t.dead_letter).lower()}},
            {
                # The CR name must be a DNS name; the real topic keeps genrec's name ('.dlq', '_').
                "topicName": t.name,
                "partitions": t.partitions,
                "replicas": t.replicas,
                "config": {
                    "retention.ms": t.retention_days * DAY_MS,
                    "min.insync.replicas": min(k.min_insync_replicas, t.replicas),
                    "cleanup.policy": "delete",
                },
            },
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[cluster])),
        )
    return Kafka(cluster=cluster, topics=topics)
