"""The event contract: published schemas match the code; every encoding round-trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.config import Settings
from genrec.events import codec
from genrec.events.contracts import EVENT_TYPES, INTERACTION, ITEM_UPSERTED
from genrec.events.schemas import SCHEMA_DIR, render_all


def test_published_schemas_are_generated_from_the_contract() -> None:
    rendered = render_all()
    on_disk = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == rendered, "run `genrec events schemas` and commit the result"
    assert set(rendered) == {f"{t}.json" for t in EVENT_TYPES}


def test_valid_event_satisfies_its_published_schema() -> None:
    ev = codec.new_event(INTERACTION, {"user_id": "u1", "item_id": "i1", "event_type": "rating", "value": 4.5},
                         source="shop", event_id="e1")
    _headers, body = codec.to_http_binary(ev)
    document = {"specversion": "1.0", "id": "e1", "source": "shop", "type": INTERACTION,
                "data": json.loads(body)}
    schema = json.loads((SCHEMA_DIR / f"{INTERACTION}.json").read_text())
    jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "data": {"user_id": "u1"}}, schema)


def test_http_binary_and_kafka_round_trip_keep_id_source_and_data() -> None:
    ev = codec.new_event(ITEM_UPSERTED, {"item_id": "sku-1", "title": "Rose water toner", "price": 12.5},
                         source="catalogue", event_id="x-1")
    headers, body = codec.to_http_binary(ev)
    back = codec.parse_http(headers, body)[0]
    assert (back.id, back.source, back.data) == ("x-1", "catalogue", ev.data)
    topic, msg = codec.to_kafka(ev, Settings())
    assert topic == "item_events" and msg.key == "sku-1"
    again = codec.from_kafka(list(msg.headers.items()), msg.key, msg.value)
    assert (again.id, again.type, again.data) == ("x-1", ITEM_UPSERTED, ev.data)


def test_kafka_records_forwarded_as_a_batch_arrive_unchanged() -> None:
    # What the bridge does with a backlog: Kafka binary-mode records → one CloudEvents batch.
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    events = [codec.new_event(INTERACTION, {"user_id": f"u{i}", "item_id": "sku-1", "event_type": "click"},
                              source="shop", event_id=f"e{i}", time=when) for i in range(3)]
    records = [codec.to_kafka(ev, Settings())[1] for ev in events]
    batch = [codec.kafka_to_structured(list(m.headers.items()), m.value) for m in records]
    back = codec.parse_http({"content-type": codec.BATCH_CONTENT_TYPE}, codec.structured_batch(batch))
    assert [(ev.id, ev.source, ev.type, ev.time, ev.data) for ev in back] == [
        (ev.id, ev.source, ev.type, when, ev.data) for ev in events]
    # and one record alone, in HTTP binary mode as KafkaSource sends it
    single = codec.parse_http(codec.kafka_to_http_headers(list(records[0].headers.items())), records[0].value)
    assert [(ev.id, ev.time, ev.data) for ev in single] == [("e0", when, events[0].data)]
    assert codec.kafka_to_structured([], b'{"no": "attributes"}') is None  # not a CloudEvent
    assert codec.kafka_to_structured([("ce_specversion", b"1.0")], b"{broken") is None


def test_batch_event_with_a_bad_time_names_the_field() -> None:
    body = json.dumps([{"specversion": "1.0", "id": "1", "source": "s", "type": INTERACTION, "time": "yesterday",
                        "data": {"user_id": "u", "item_id": "i", "event_type": "view"}}]).encode()
    with pytest.raises(codec.EventError) as err:
        codec.parse_http({"content-type": codec.BATCH_CONTENT_TYPE}, body)
    assert err.value.field == "[0].time"


def test_structured_mode_without_id_is_refused() -> None:
    body = json.dumps({"specversion": "1.0", "source": "s", "type": INTERACTION,
                       "data": {"user_id": "u", "item_id": "i", "event_type": "view"}}).encode()
    with pytest.raises(codec.EventError) as err:
        codec.parse_http({"content-type": "application/cloudevents+json"}, body)
    assert err.value.field == "id"


@pytest.mark.parametrize(("attributes", "field"), [
    ({"specversion": "0.3"}, "specversion"),
    ({"source": ""}, "source"),
    ({"id": 7}, "id"),
    ({"subject": ""}, "subject"),
    ({"datacontenttype": 5}, "datacontenttype"),
    ({"time": "2026-12-01T08:00:00"}, "time"),  # no time zone
    ({"Trace-Parent": "x"}, "Trace-Parent"),  # extension names are lowercase letters and digits
])
def test_an_envelope_breaking_cloudevents_rules_names_the_attribute(attributes: dict, field: str) -> None:
    event = {"specversion": "1.0", "id": "e1", "source": "s", "type": INTERACTION,
             "data": {"user_id": "u", "item_id": "i", "event_type": "view"}, **attributes}
    for content_type, body, where in ((codec.STRUCTURED_CONTENT_TYPE, event, field),
                                      (codec.BATCH_CONTENT_TYPE, [event], f"[0].{field}")):
        with pytest.raises(codec.EventError) as err:
            codec.parse_http({"content-type": content_type}, json.dumps(body).encode())
        assert err.value.field == where


def test_an_event_parsed_from_a_batch_is_the_same_through_every_encoding() -> None:
    """What a function reads from a batch equals what the SDK reads from the same event in
    HTTP binary mode (attributes, extensions, time and data)."""
    event = {"specversion": "1.0", "id": "e1", "source": "shop", "type": INTERACTION, "subject": "u1",
             "time": "2026-12-01T08:00:00.5+01:00", "datacontenttype": "application/json",
             "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
             "data": {"user_id": "u1", "item_id": "i1", "event_type": "rating", "value": 4}}
    [batched] = codec.parse_http({"content-type": codec.BATCH_CONTENT_TYPE}, json.dumps([event]).encode())
    headers, body = codec.to_http_binary(batched)
    [binary] = codec.parse_http(headers, body)
    assert dict(binary.attributes) == dict(batched.attributes)
    assert batched.time == datetime(2026, 12, 1, 7, 0, 0, 500000, tzinfo=UTC)
    assert (binary.data, binary.partition_key) == (batched.data, "u1")


def test_deeply_nested_context_is_refused() -> None:
    nested: dict = {}
    cur = nested
    for _ in range(20):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(codec.EventError) as err:
        codec.new_event(INTERACTION, {"user_id": "u", "item_id": "i", "event_type": "view", "context": nested},
                        source="s")
    assert err.value.field == "data.context"


def _containers(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.text(max_size=20) | st.integers(),
    _containers, max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.sampled_from(["user_id", "item_id", "event_type", "value", "timestamp", "context",
                                             "x"]), json_values, max_size=7),
       ce_type=st.sampled_from([*EVENT_TYPES, "nope", ""]))
def test_arbitrary_payloads_are_either_valid_or_refused_with_a_field(data: dict, ce_type: str) -> None:
    headers = {"ce-id": "1", "ce-source": "s", "ce-type": ce_type, "ce-specversion": "1.0",
               "content-type": "application/json"}
    try:
        events = codec.parse_http(headers, json.dumps(data, allow_nan=True).encode())
    except codec.EventError as exc:
        assert exc.field and exc.message
    else:
        assert len(events) == 1 and events[0].type == ce_type



def test_every_subscription_delivers_batches_its_function_accepts() -> None:
    # A bigger batch is refused (400) and the bridge re-sends it record by record: a backlog
    # then drains a thousand times slower than it should.
    from genrec.events.codec import MAX_BATCH
    from genrec.events.subscriptions import SUBSCRIPTIONS

    assert all(1 <= sub.max_batch <= MAX_BATCH for sub in SUBSCRIPTIONS), [
        (sub.function, sub.topic_key, sub.max_batch) for sub in SUBSCRIPTIONS]


def test_kafka_encoding_is_read_back_by_the_sdk_unchanged() -> None:
    # to_kafka writes binary mode itself (not through the SDK's generic path): the SDK, which
    # replay and other Kafka readers use, must read every attribute and the data back.
    when = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
    ev = codec.received_at(
        codec.new_event(INTERACTION, {"user_id": "u1", "item_id": "sku-1", "event_type": "click",
                                      "context": {"page": "home", "rank": 3}}, source="shop", event_id="e1"),
        when, {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    topic, msg = codec.to_kafka(ev, Settings())
    assert topic == Settings().kafka.topic("user_events") and msg.key == "u1"
    back = codec.from_kafka(list(msg.headers.items()), msg.key.encode(), msg.value)
    read = back.event.get_attributes()
    assert read.pop("partitionkey") == "u1"  # the SDK names the record's key so
    assert read == ev.event.get_attributes()
    assert back.data == ev.data and back.time == ev.time


def test_a_batch_parsed_with_its_receipt_is_accepted_as_parsed() -> None:
    """The edge stamps the receipt while parsing: an event without a time gets the receipt's,
    one with its own keeps it, the trace context joins every event that carries none, and
    accepting them (``received_at`` with that receipt) builds no second CloudEvent."""
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    own = {"traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}
    data = {"user_id": "u1", "item_id": "i1", "event_type": "click"}
    batch = [
        {"specversion": "1.0", "id": "a", "source": "s", "type": INTERACTION, "data": data},
        {"specversion": "1.0", "id": "b", "source": "s", "type": INTERACTION, "data": data,
         "time": "2026-12-01T08:00:00Z", **own},
    ]
    events = codec.parse_http({"content-type": codec.BATCH_CONTENT_TYPE}, json.dumps(batch).encode(),
                              received=now, extensions=trace)
    assert [ev.time for ev in events] == [now, datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]
    assert [ev.event.get_extension("traceparent") for ev in events] == [trace["traceparent"], own["traceparent"]]
    assert [ev.time_from_sender for ev in events] == [False, True]
    assert all(codec.received_at(ev, now, trace) is ev for ev in events)
    # a resend of the first event gets the time its first receipt reserved
    earlier = datetime(2026, 12, 4, 11, 59, tzinfo=UTC)
    assert codec.received_at(events[0], earlier, trace).time == earlier
