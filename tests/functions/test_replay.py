"""`genrec events replay`: dead letters go back to their topic, are applied once, and are re-sent once."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from typer.testing import CliRunner

from genrec.cli import app
from genrec.config import Settings
from genrec.events.codec import ValidEvent, from_kafka, new_event, to_kafka
from genrec.events.contracts import INTERACTION
from genrec.events.kafka import consumer, producer
from genrec.events.publisher import EventPublisher
from genrec.stores.hot_state import HotState
from genrec.stores.postgres import connect
from tests.helpers import wait_for

runner = CliRunner()


def _interaction(user: str, item: str, event_id: str) -> ValidEvent:
    return new_event(INTERACTION, {"user_id": user, "item_id": item, "event_type": "click"},
                     source="replay-test", event_id=event_id)


def _dead_letter(s: Settings, ev: ValidEvent, *, as_knative: bool) -> None:
    """Put an event on user_events' dead-letter topic as it gets there: Knative's KafkaSink
    writes the binary-mode CloudEvent with its delivery error as extensions and no key; the
    local bridge keeps the key and adds its reason headers."""
    _, message = to_kafka(ev, s)
    headers = list(message.headers.items())
    if as_knative:
        key = None
        headers += [("ce_knativeerrorcode", b"503"), ("ce_knativeerrordest", b"http://feature-update.genrec.svc"),
                    ("ce_knativeerrordata", b"dependency unavailable")]
    else:
        key = message.key
        headers += [("genrec-dlq-reason", b"HTTP 503: dependency unavailable"),
                    ("genrec-dlq-subscriber", b"feature-update")]
    out = producer(s)
    out.produce(s.kafka.dead_letter_topic("user_events"), key=key, value=message.value, headers=headers)
    assert out.flush(10) == 0


def _copies(s: Settings, ids: set[str], until: int) -> list[tuple[str, bytes | None, set[str]]]:
    """(event id, key, header names) of every record of these events on user_events."""
    cons = consumer(s, group_id=f"test-reader-{uuid.uuid4().hex}")
    cons.subscribe([s.kafka.topic("user_events")])
    found: list[tuple[str, bytes | None, set[str]]] = []
    deadline, idle_since = time.monotonic() + 30, None
    try:
        while time.monotonic() < deadline:
            msg = cons.poll(0.2)
            if msg is None or msg.error() is not None:
                if len(found) >= until:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 1.0:
                        break
                continue
            idle_since = None
            headers = dict(msg.headers() or [])
            if headers.get("ce_id", b"").decode() in ids:
                ev = from_kafka(msg.headers(), msg.key(), msg.value())
                found.append((ev.id, msg.key(), set(headers)))
    finally:
        cons.close()
    return sorted(found)


def _stored(s: Settings, user: str) -> dict[str, int]:
    with connect(s) as conn:
        rows = conn.execute("SELECT event_id, count(*) FROM user_events WHERE user_id = %s GROUP BY event_id",
                            (user,)).fetchall()
    return dict(rows)


def _text(output: str) -> str:
    """CLI output without rich's box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


@pytest.mark.stack
def test_replay_applies_dead_letters_once_and_never_resends_them(stack: Settings) -> None:
    user = f"replay-{uuid.uuid4().hex[:8]}"
    # Applied, then dead-lettered anyway (its function's answer was lost to a timeout).
    applied = _interaction(user, f"{user}-a", f"{user}-applied")
    # Dead-lettered during an outage that outlasted the delivery policy: never applied.
    lost = _interaction(user, f"{user}-b", f"{user}-lost")
    pub = EventPublisher(stack)
    pub.publish_sync([applied])
    pub.close()
    assert wait_for(lambda: _stored(stack, user) == {applied.id: 1})
    _dead_letter(stack, applied, as_knative=False)
    _dead_letter(stack, lost, as_knative=True)
    dlq = stack.kafka.dead_letter_topic("user_events")

    dry = runner.invoke(app, ["events", "replay", dlq, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert (m := re.search(r"would re-send (\d+) record", _text(dry.output))) and int(m.group(1)) >= 2, dry.output

    first = runner.invoke(app, ["events", "replay", dlq])
    assert first.exit_code == 0, first.output
    assert (m := re.search(r"re-sent (\d+) record", _text(first.output))) and int(m.group(1)) >= 2, first.output
    hot = HotState(stack)
    assert wait_for(lambda: _stored(stack, user) == {applied.id: 1, lost.id: 1}), _stored(stack, user)
    # the replayed duplicate changed nothing: one click each, in their order
    assert wait_for(lambda: hot.recent_items(user) == [f"{user}-a", f"{user}-b"]), hot.recent_items(user)
    assert hot.user_features(user)["events:click"] == "2"

    # Back on the source topic as they were: keyed by user (the KafkaSink's keyless record too),
    # CloudEvent headers kept, dead-letter annotations dropped.
    copies = _copies(stack, {applied.id, lost.id}, until=3)
    assert [c[0] for c in copies] == [applied.id, applied.id, lost.id]
    for _, key, headers in copies:
        assert key == user.encode()
        assert {"ce_id", "ce_source", "ce_type", "ce_specversion"} <= headers
        assert not any(h.startswith(("genrec-dlq-", "ce_knativeerror")) for h in headers), headers

    # A second run finds nothing to re-send: the first committed what it re-sent.
    second = runner.invoke(app, ["events", "replay", dlq])
    assert second.exit_code == 0, second.output
    assert "re-sent 0 record" in _text(second.output), second.output
    assert len(_copies(stack, {applied.id, lost.id}, until=3)) == 3
    assert _stored(stack, user) == {applied.id: 1, lost.id: 1}


def test_replay_refuses_a_topic_that_is_not_a_dead_letter_topic() -> None:
    result = runner.invoke(app, ["events", "replay", "user_events"])
    assert result.exit_code == 2
    assert "'user_events' is not a dead-letter topic" in _text(result.output), result.output
