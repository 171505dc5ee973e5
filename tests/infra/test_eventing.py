"""KafkaSources are generated from genrec's SUBSCRIPTIONS: same topics, groups, paths and retry budget."""

from __future__ import annotations

from genrec_infra.appconfig import PinnedSettings

from genrec.events.subscriptions import SUBSCRIPTIONS

SETTINGS = PinnedSettings()  # topic names only: production renames nothing


def _sources(run) -> list[dict]:
    return [r["inputs"] for r in run.of("sources.knative.dev/v1beta1:KafkaSource")]


def test_one_kafka_source_per_subscription(run):
    sources = _sources(run)
    assert len(sources) == len(SUBSCRIPTIONS)
    for sub in SUBSCRIPTIONS:
        topic = sub.topic(SETTINGS)
        matching = [s for s in sources
                    if s["spec"]["topics"] == [topic] and s["spec"]["sink"]["ref"]["name"] == sub.function]
        assert len(matching) == 1, f"{sub.function} <- {topic}: {len(matching)} KafkaSources"
        spec = matching[0]["spec"]
        assert spec["consumerGroup"] == sub.group_id
        assert spec["sink"]["ref"] == {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                       "name": sub.function}
        if sub.path == "/":
            assert "uri" not in spec["sink"]
        else:
            assert spec["sink"]["uri"] == sub.path
        assert spec["ordering"] == "ordered"
        assert spec["initialOffset"] == "earliest"


def test_delivery_matches_the_bridge(run):
    sinks = {s["inputs"]["metadata"]["name"]: s["inputs"]["spec"]
             for s in run.of("eventing.knative.dev/v1alpha1:KafkaSink")}
    for sub in SUBSCRIPTIONS:
        source = next(s for s in _sources(run) if s["spec"]["consumerGroup"] == sub.group_id
                      and s["spec"]["topics"] == [sub.topic(SETTINGS)])
        delivery = source["spec"]["delivery"]
        # Knative's `retry` counts re-deliveries: 1 + retry == the bridge's max_attempts.
        assert 1 + delivery["retry"] == sub.max_attempts
        assert delivery["backoffPolicy"] == "exponential"
        dls = delivery["deadLetterSink"]["ref"]
        assert dls["kind"] == "KafkaSink"
        assert sinks[dls["name"]]["topic"] == SETTINGS.kafka.dead_letter_topic(sub.topic_key)
        assert sinks[dls["name"]]["contentMode"] == "binary"


def test_every_sink_is_a_deployed_knative_service(run):
    services = run.knative_services()
    for source in _sources(run):
        assert source["spec"]["sink"]["ref"]["name"] in services
    for source in _sources(run):
        (bootstrap,) = source["spec"]["bootstrapServers"]
        assert bootstrap.startswith("genrec-kafka-bootstrap.kafka.")
