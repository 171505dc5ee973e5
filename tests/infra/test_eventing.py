"""KafkaSources are generated from genrec's SUBSCRIPTIONS: same topics, groups, paths and delivery policy."""

from __future__ import annotations

import re

from genrec_infra.appconfig import PinnedSettings

from genrec.events.delivery import DELIVERY, OUTAGE_TARGET_S
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
        # Per-partition order wherever it matters (a user's sequence); the bulk sink's inserts
        # do not depend on it and take many records in flight.
        assert spec["ordering"] == ("unordered" if sub.function == "analytics-sink" else "ordered")
        assert spec["initialOffset"] == "earliest"


def test_delivery_matches_the_bridge(run):
    sinks = {s["inputs"]["metadata"]["name"]: s["inputs"]["spec"]
             for s in run.of("eventing.knative.dev/v1alpha1:KafkaSink")}
    for sub in SUBSCRIPTIONS:
        source = next(s for s in _sources(run) if s["spec"]["consumerGroup"] == sub.group_id
                      and s["spec"]["topics"] == [sub.topic(SETTINGS)])
        delivery = source["spec"]["delivery"]
        # The policy the bridge follows, field for field (Knative's `retry` counts re-deliveries).
        assert delivery["retry"] == sub.delivery.retry
        assert delivery["backoffPolicy"] == sub.delivery.backoff_policy
        assert _seconds(delivery["backoffDelay"]) == sub.delivery.backoff_delay_s
        assert _seconds(delivery["timeout"]) == sub.delivery.timeout_s
        assert "retryAfterMax" not in delivery  # alpha: the webhook refuses it unless enabled
        dls = delivery["deadLetterSink"]["ref"]
        assert dls["kind"] == "KafkaSink"
        assert sinks[dls["name"]]["topic"] == SETTINGS.kafka.dead_letter_topic(sub.topic_key)
        assert sinks[dls["name"]]["contentMode"] == "binary"


def _seconds(iso: str) -> float:
    """An ISO 8601 duration of seconds (what Knative's delivery fields take), e.g. PT1.5S."""
    match = re.fullmatch(r"PT(\d+(?:\.\d+)?)S", iso)
    assert match, f"not an ISO 8601 duration in seconds: {iso!r}"
    return float(match.group(1))


def _knative_window_s(delivery: dict) -> float:
    """How long Knative's Kafka dispatcher retries a failing record before dead-lettering it:
    it waits backoffDelay * n (linear) or backoffDelay * 2**n (exponential) before retry n,
    n = 1..retry; the attempts themselves only add to this."""
    d, retries = _seconds(delivery["backoffDelay"]), delivery["retry"]
    step = (lambda n: d * n) if delivery["backoffPolicy"] == "linear" else (lambda n: d * 2**n)
    return sum(step(n) for n in range(1, retries + 1))


def test_a_dependency_outage_of_the_target_length_dead_letters_nothing(run):
    # Every KafkaSource keeps retrying a record for longer than the outage the platform is sized
    # for, so such an outage only delays events.
    assert OUTAGE_TARGET_S >= 15 * 60
    for source in _sources(run):
        delivery = source["spec"]["delivery"]
        assert _knative_window_s(delivery) >= OUTAGE_TARGET_S, source["metadata"]["name"]
    assert DELIVERY.window_s >= OUTAGE_TARGET_S
    # ... and once the dependency is back, no record waits more than a minute for its next try.
    assert DELIVERY.delay_s(DELIVERY.retry) <= 60


def test_every_sink_is_a_deployed_knative_service(run):
    services = run.knative_services()
    for source in _sources(run):
        assert source["spec"]["sink"]["ref"]["name"] in services
    for source in _sources(run):
        (bootstrap,) = source["spec"]["bootstrapServers"]
        assert bootstrap.startswith("genrec-kafka-bootstrap.kafka.")
