"""Topic → function wiring with Knative Eventing: one KafkaSource per `genrec.events.subscriptions.SUBSCRIPTIONS` entry.

This is the production twin of the local eventing bridge (genrec.events.bridge), built from
the same declaration: consumer group `Subscription.group_id`, the function's path, ordered
per-partition delivery, and the subscription's delivery policy (genrec.events.delivery:
retries, backoff, per-request timeout); when the policy is spent the record goes to its
topic's dead-letter topic through a KafkaSink (binary mode, so CloudEvent attributes stay
headers), from where `genrec events replay` re-sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from genrec.config import Settings
from genrec.events.delivery import DeliveryPolicy
from genrec.events.subscriptions import SUBSCRIPTIONS, Subscription
from genrec_infra.config import StackConfig
from genrec_infra.k8s import custom, dns_name, labels

SOURCE_API = "sources.knative.dev/v1beta1"
SINK_API = "eventing.knative.dev/v1alpha1"


def source_name(sub: Subscription) -> str:
    return dns_name(f"{sub.function}-{sub.topic_key}")


def dead_letter_sink_name(s: Settings, topic_key: str) -> str:
    return dns_name(s.kafka.dead_letter_topic(topic_key))


def iso_duration(seconds: float) -> str:
    """Seconds as an ISO 8601 duration, the form Knative's delivery fields take (``PT1.5S``)."""
    return "PT" + f"{seconds:.3f}".rstrip("0").rstrip(".") + "S"


def delivery(policy: DeliveryPolicy, dls_name: str) -> dict[str, Any]:
    """A KafkaSource's ``delivery``: the policy the local bridge follows, field for field.
    No ``retryAfterMax``: it is alpha (off by default, and refused by the webhook while off),
    and the bridge ignores Retry-After as well."""
    return {
        "retry": policy.retry,
        "backoffPolicy": policy.backoff_policy,
        "backoffDelay": iso_duration(policy.backoff_delay_s),
        "timeout": iso_duration(policy.timeout_s),  # per request; beta, on by default
        "deadLetterSink": {"ref": {"apiVersion": SINK_API, "kind": "KafkaSink", "name": dls_name}},
    }


def source_spec(s: Settings, sub: Subscription) -> dict[str, Any]:
    sink: dict[str, Any] = {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": sub.function}}
    if sub.path != "/":
        sink["uri"] = sub.path  # relative: appended to the Service's address
    return {
        "bootstrapServers": [s.kafka.bootstrap_servers],
        "topics": [sub.topic(s)],
        "consumerGroup": sub.group_id,
        "initialOffset": "earliest",
        # one record in flight per partition, as the bridge does; unordered for consumers whose
        # writes do not depend on order (the bulk analytics sink): many in flight per partition
        "ordering": "ordered" if sub.ordered else "unordered",
        "sink": sink,
        "delivery": delivery(sub.delivery, dead_letter_sink_name(s, sub.topic_key)),
    }


@dataclass(frozen=True)
class Eventing:
    sources: dict[str, CustomResource]
    dead_letter_sinks: dict[str, CustomResource]


def create(cfg: StackConfig, s: Settings, topics: dict[str, pulumi.Resource],
           services: dict[str, pulumi.Resource], opts: pulumi.ResourceOptions) -> Eventing:
    ns = cfg.namespaces.app
    sinks: dict[str, CustomResource] = {}
    for key in dict.fromkeys(sub.topic_key for sub in SUBSCRIPTIONS):
        topic = s.kafka.dead_letter_topic(key)
        name = dead_letter_sink_name(s, key)
        sinks[key] = custom(
            f"kafkasink-{name}", SINK_API, "KafkaSink",
            {"name": name, "namespace": ns, "labels": labels(name, "dead-letter-sink")},
            {"topic": topic, "bootstrapServers": [s.kafka.bootstrap_servers], "contentMode": "binary"},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                depends_on=[topics[topic]] if topic in topics else [])),
        )
    sources: dict[str, CustomResource] = {}
    for sub in SUBSCRIPTIONS:
        name = source_name(sub)
        deps = [sinks[sub.topic_key], services[sub.function]]
        if sub.topic(s) in topics:
            deps.append(topics[sub.topic(s)])
        sources[name] = custom(
            f"kafkasource-{name}", SOURCE_API, "KafkaSource",
            {"name": name, "namespace": ns, "labels": labels(name, "kafka-source", **{
                "genrec.dev/function": sub.function, "genrec.dev/topic": sub.topic_key})},
            source_spec(s, sub),
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=deps)),
        )
    return Eventing(sources=sources, dead_letter_sinks=sinks)
