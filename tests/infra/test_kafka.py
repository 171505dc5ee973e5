"""KafkaTopic CRs come from genrec's settings with the stack's production shape."""

from __future__ import annotations

from genrec_infra.appconfig import PinnedSettings
from genrec_infra.config import KafkaConfig

from genrec.events.kafka import all_topics

SETTINGS = PinnedSettings()
DAY_MS = 24 * 3600 * 1000


def _topics(run) -> dict[str, dict]:
    return {r["inputs"]["spec"]["topicName"]: r["inputs"] for r in run.of("kafka.strimzi.io/v1:KafkaTopic")}


def test_every_genrec_topic_and_one_dead_letter_topic_each(run):
    topics = _topics(run)
    assert set(topics) == set(all_topics(SETTINGS))
    for key in SETTINGS.kafka.topics:
        dlq = topics[SETTINGS.kafka.dead_letter_topic(key)]
        assert dlq["spec"]["partitions"] == 1
        assert dlq["metadata"]["labels"]["genrec.dev/dead-letter"] == "true"


def test_partitions_match_stack_config(run):
    overrides = run.stack_config().get("genrec:kafka", {}).get("topics", {})
    topics = _topics(run)
    for key, t in SETTINGS.kafka.topics.items():
        expected = overrides.get(key, {}).get("partitions", KafkaConfig().default_partitions)
        assert topics[t.name]["spec"]["partitions"] == expected, key


def test_production_shape(runs):
    topics = _topics(runs["prod"])
    assert topics["user_events"]["spec"]["partitions"] == 128
    assert topics["recommendation_logs"]["spec"]["partitions"] == 64
    for name, t in topics.items():
        assert t["spec"]["replicas"] == 3, name
        assert t["spec"]["config"]["min.insync.replicas"] == 2, name
    assert topics["user_events"]["spec"]["config"]["retention.ms"] == 7 * DAY_MS
    assert topics["recommendation_logs"]["spec"]["config"]["retention.ms"] == 30 * DAY_MS


def test_dev_is_single_replica(runs):
    for name, t in _topics(runs["dev"]).items():
        assert t["spec"]["replicas"] == 1, name


def test_kraft_cluster_with_node_pools(run):
    (cluster,) = [r["inputs"] for r in run.of("kafka.strimzi.io/v1:Kafka")]
    pools = {r["inputs"]["metadata"]["name"]: r["inputs"] for r in run.of("kafka.strimzi.io/v1:KafkaNodePool")}
    assert {tuple(p["spec"]["roles"]) for p in pools.values()} == {("controller",), ("broker",)}
    for pool in pools.values():
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == cluster["metadata"]["name"]
        assert pool["spec"]["resources"]["requests"]
    assert "zookeeper" not in cluster["spec"]
    assert cluster["spec"]["kafkaExporter"]  # consumer lag for the dashboard
    assert cluster["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
