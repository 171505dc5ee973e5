"""Every topic a KafkaSource reads or a KafkaSink writes has a Strimzi KafkaTopic, with its partitions.

The cluster refuses to create topics on first use (`auto.create.topics.enable: false`), so a
missing KafkaTopic is a source that never receives a record, or a dead-letter sink that fails.
A KafkaTopic's topic is `spec.topicName`, else its object name (Strimzi's rule).
"""

from __future__ import annotations

from genrec.deploy.invariants.context import Context, problem
from genrec.deploy.manifests import Manifest
from genrec.deploy.operators import pos_int
from genrec.deploy.problems import Problem

SOURCE = "invariant:topics"
STRIMZI = "kafka.strimzi.io"


def topic_name(m: Manifest) -> str:
    return str(m.spec().get("topicName") or m.name)


def check(ctx: Context) -> list[Problem]:
    topics = {topic_name(m): m for m in ctx.of(STRIMZI, "KafkaTopic")}
    uses: list[tuple[Manifest, list, object]] = []
    for m in ctx.of("sources.knative.dev", "KafkaSource"):
        uses += [(m, ["spec", "topics", i], t) for i, t in enumerate(m.spec().get("topics") or [])]
    for m in ctx.of("eventing.knative.dev", "KafkaSink"):
        uses.append((m, ["spec", "topic"], m.spec().get("topic")))
    found = []
    for m, path, topic in uses:
        created = topics.get(str(topic))
        if created is None:
            found.append(problem(m, path, f"topic {topic!r} has no KafkaTopic in this render", SOURCE))
        elif not pos_int(created.spec().get("partitions")):
            found.append(problem(m, path, f"topic {topic!r}: its KafkaTopic ({created.file}) sets no partition "
                                          f"count (spec.partitions = {created.spec().get('partitions')!r})", SOURCE))
    return found
