"""Retention for the embedded broker: drop the record batches every reader has committed.

tansu 0.6 keeps each record batch as an object in the S3 store and has neither retention nor
DeleteRecords, and a fetch costs it more the more batches a partition holds. Measured here
(2-core EPYC): at 30,000 stored batches one idle consumer kept the broker and the store at
1.2 cores and a new record took over 10 s to arrive; trimmed to 135 batches, 0.17 cores and
0.27 s. A Kafka cluster drops old segments by its topics' ``retention.ms``; here a batch is
dropped once every consumer group that reads its topic has committed past it and it is older
than ``kafka.embedded_retention_s`` (a reader that starts from the beginning still finds the
last seconds), so nothing a subscription has not handled is ever lost. Each fetch lists every
batch a partition holds (tansu 0.6), so the fewer kept, the cheaper every read.

Trimming leaves the topic, its offsets and its watermarks as they were: a fetch below the
first batch left starts at that batch, as after Kafka's retention. (Deleting whole topics
instead crashed librdkafka 2.16 clients that had the topic in their metadata cache.)

The objects are tansu's: ``clusters/<cluster>/topics/<topic>/partitions/<partition:010>/
records/<base offset:020>.batch`` beside the partition's ``watermark.json``.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from confluent_kafka import Consumer
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from genrec.config import Settings
from genrec.events.kafka import admin_client, committed_offsets, consumer

log = logging.getLogger("genrec.retention")

DELETE_CHUNK = 1000  # keys per DeleteObjects request (the S3 API's limit)


@dataclass
class TopicLog:
    """What the broker holds of one topic, as of the last step."""

    records_written: int = 0  # the log end: every record the topic ever took
    batches_stored: int = 0  # batch objects still in the store
    batches_dropped: int = 0  # dropped by retention since this process started


class LogRetention:
    """Trims the topics that ``groups`` (consumer group → the topics it reads) read."""

    def __init__(self, s: Settings, groups: dict[str, list[str]]) -> None:
        from genrec.stores.objects import s3_client

        self.s = s
        self.readers: dict[str, list[str]] = {}  # topic → the groups that read it
        for group, topics in groups.items():
            for topic in topics:
                self.readers.setdefault(topic, []).append(group)
        self.store, self.bucket = s3_client(s), s.s3.kafka_bucket
        self.admin = admin_client(s)
        self.logs: dict[str, TopicLog] = {topic: TopicLog() for topic in self.readers}
        # One reading client per group for the life of the retention, not one per trim (every 2 s):
        # each never subscribes (so never joins the group) and never commits.
        self.probes: dict[str, Consumer] = {group: consumer(s, group_id=group) for group in groups}

    def step(self, timeout_s: float = 10.0) -> None:
        meta = self.admin.list_topics(timeout=timeout_s).topics
        keep_after = datetime.now(UTC) - timedelta(seconds=self.s.kafka.embedded_retention_s)
        for topic, groups in self.readers.items():
            if topic not in meta:
                continue
            partitions = sorted(meta[topic].partitions)
            floors = self._committed_floor(topic, partitions, groups, timeout_s)
            stored = written = 0
            for p in partitions:
                prefix = self._partition_prefix(topic, p)
                dropped, left = self._trim(prefix + "records/", floors[p], keep_after)
                self.logs[topic].batches_dropped += dropped
                stored += left
                written += self._log_end(prefix)
            self.logs[topic].batches_stored, self.logs[topic].records_written = stored, written

    def _partition_prefix(self, topic: str, partition: int) -> str:
        return f"clusters/{self.s.s3.kafka_cluster}/topics/{topic}/partitions/{partition:010d}/"

    def _committed_floor(self, topic: str, partitions: list[int], groups: list[str],
                         timeout_s: float) -> dict[int, int]:
        """Per partition, the lowest offset any of ``groups`` has committed (0 where one has not)."""
        per_group = [committed_offsets(self.probes[group], topic, partitions, timeout_s) for group in groups]
        return {p: min(offsets[p] for offsets in per_group) for p in partitions}

    def _trim(self, records_prefix: str, floor: int, keep_after: datetime) -> tuple[int, int]:
        """Drop the batches that end at or below ``floor`` and were written before ``keep_after``;
        returns (dropped, left). A batch ends where the next begins, so the last is always kept."""
        batches: list[tuple[int, str, datetime]] = []
        for page in self.store.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=records_prefix):
            for obj in page.get("Contents", []):
                base = int(obj["Key"].rsplit("/", 1)[1].split(".", 1)[0])
                batches.append((base, obj["Key"], obj["LastModified"]))
        batches.sort()
        drop = [key for (_, key, written), (next_base, _, _) in pairwise(batches)
                if next_base <= floor and written < keep_after]
        for i in range(0, len(drop), DELETE_CHUNK):
            self.store.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in drop[i:i + DELETE_CHUNK]], "Quiet": True})
        return len(drop), len(batches) - len(drop)

    def _log_end(self, partition_prefix: str) -> int:
        try:
            body = self.store.get_object(Bucket=self.bucket, Key=partition_prefix + "watermark.json")["Body"].read()
        except self.store.exceptions.NoSuchKey:  # nothing written yet
            return 0
        return int(json.loads(body).get("high") or 0)

    def collector(self) -> Collector:
        """Prometheus view of the logs (served by ``genrec events retention``'s /metrics)."""
        logs = self.logs

        class _Collector(Collector):
            def collect(self):
                written = GaugeMetricFamily("genrec_broker_records_written", "records the topic ever took",
                                            labels=["topic"])
                stored = GaugeMetricFamily("genrec_broker_batches_stored", "record batches in the store",
                                           labels=["topic"])
                dropped = CounterMetricFamily("genrec_broker_batches_dropped", "batches dropped by retention",
                                              labels=["topic"])
                for topic, t in sorted(logs.items()):
                    written.add_metric([topic], t.records_written)
                    stored.add_metric([topic], t.batches_stored)
                    dropped.add_metric([topic], t.batches_dropped)
                yield from (written, stored, dropped)

        return _Collector()

    def close(self) -> None:
        for probe in self.probes.values():
            probe.close()

    def run(self, stop: threading.Event, every_s: float) -> None:
        try:
            while not stop.wait(every_s):
                try:
                    self.step()
                except Exception:  # the broker or the store away: retention waits, the stack goes on
                    log.exception("log retention step failed; retrying in %.0f s", every_s)
        finally:
            self.close()
