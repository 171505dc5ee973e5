"""CloudEvents in and out: HTTP (binary, structured, batch) → validated events → Kafka and back.

Validation errors name the offending field (``type``, ``data.user_id``, ``[3].data.value``)
so that an upstream system can fix its payload from the 400 response alone.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ValidationError

from genrec.config import Settings
from genrec.events.contracts import EVENT_TYPES, EventType, now_utc

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
MAX_BATCH = 1000
_FORMAT = JSONFormat()
D = TypeVar("D", bound=BaseModel, covariant=True)  # an event type's data model (genrec.events.contracts)


class EventError(ValueError):
    """An event that breaks the contract; `field` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def at(self, index: int) -> EventError:
        return EventError(f"[{index}].{self.field}", self.message)

    def to_json(self) -> dict[str, str]:
        return {"error": "invalid_event", "field": self.field, "message": self.message}


# CloudEvents 1.0 context attributes other than extensions; extension names are lowercase
# letters and digits (the spec's rule, which the SDK applies too).
_REQUIRED = ("specversion", "id", "source", "type")
_OPTIONAL_TEXT = ("datacontenttype", "dataschema", "subject")
_CONTEXT = frozenset({*_REQUIRED, *_OPTIONAL_TEXT, "time"})
_EXTENSION_NAME = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class ValidEvent(Generic[D]):
    """A CloudEvent whose envelope and data satisfy the contract of its type.

    ``data`` is an instance of the type's data model: a handler of one type says which, e.g.
    ``def on_item(ev: ValidEvent[ItemUpsertedData])``, and reads ``ev.data`` typed.
    The envelope is held as its checked attributes (``check_attributes``) and the data as it
    arrived, not as the SDK's ``CloudEvent``: building and re-validating one per event cost
    every process on the event path more than the rest of parsing (``event`` gives one).
    """

    attributes: Mapping[str, Any]  # the context attributes and extensions; ``time`` a datetime
    payload: Any  # the data as it arrived (a JSON object, or its text or bytes): forwarded unchanged
    spec: EventType
    data: D
    # False: the sender gave no ``time`` and this process's clock was stamped on parsing
    # (``received_at`` then puts the event's receipt time there).
    time_from_sender: bool = True

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def source(self) -> str:
        return self.attributes["source"]

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def time(self) -> datetime:
        return self.attributes.get("time") or now_utc()

    @property
    def partition_key(self) -> str:
        return str(getattr(self.data, self.spec.partition_field))

    @property
    def event(self) -> CloudEvent:
        """The event as the CloudEvents SDK's object, for its bindings and formats."""
        return CloudEvent(attributes=dict(self.attributes), data=self.payload)


def check_attributes(attributes: Mapping[str, Any]) -> None:
    """The CloudEvents 1.0 rules for context attributes (``time`` already a datetime), as an
    EventError naming the attribute."""
    for name in _REQUIRED:
        value = attributes.get(name)
        if not value or not isinstance(value, str):
            raise EventError(name, f"required attribute {name!r} must be a non-empty string")
    if attributes["specversion"] != "1.0":
        raise EventError("specversion", "must be '1.0'")
    for name in _OPTIONAL_TEXT:
        if name in attributes and not (attributes[name] and isinstance(attributes[name], str)):
            raise EventError(name, f"attribute {name!r} must be a non-empty string")
    time = attributes.get("time")
    if time is not None and not (isinstance(time, datetime) and time.tzinfo):
        raise EventError("time", "must be a timestamp with a time zone")
    for name in attributes.keys() - _CONTEXT:
        if name == "data" or not _EXTENSION_NAME.fullmatch(name):
            raise EventError(name, "an extension attribute's name is lowercase letters and digits, not 'data'")


def received_at(ev: ValidEvent[D], time: datetime, extensions: Mapping[str, str] | None = None) -> ValidEvent[D]:
    """The event as accepted: ``time`` as its time unless its sender gave one (a resend of an
    event without a time then carries the time of its first receipt, like the first copy), and
    ``extensions`` (the trace context) unless it carries them already (all or none: a trace
    context is one). An event parsed with its receipt stamped (``parse_http(..., received=)``)
    comes back as it is."""
    extra = _trace_to_add(extensions, ev.attributes.get)
    if (ev.time_from_sender or ev.attributes.get("time") == time) and not extra:
        return ev
    attributes = {**ev.attributes, **extra}
    if not ev.time_from_sender:
        attributes["time"] = time
    return replace(ev, attributes=attributes, time_from_sender=True)


def _trace_to_add(extensions: Mapping[str, str] | None, has: Callable[[str], Any]) -> Mapping[str, str]:
    """``extensions`` when an event carries none of them (``has``: its value of an attribute), else
    none: a trace context is all or none."""
    return extensions if extensions and not any(has(k) for k in extensions) else {}


def validate(attributes: Mapping[str, Any], payload: Any, *, time_from_sender: bool = True) -> ValidEvent[BaseModel]:
    """Check the type and data of an event whose attributes passed ``check_attributes`` against
    the contract."""
    event_type = attributes["type"]
    spec = EVENT_TYPES.get(event_type)
    if spec is None:
        raise EventError("type", f"unknown event type {event_type!r}; known: {sorted(EVENT_TYPES)}")
    content_type = attributes.get("datacontenttype")
    if content_type and not content_type.startswith("application/json"):
        raise EventError("datacontenttype", f"must be application/json, got {content_type!r}")
    raw = payload
    if isinstance(raw, bytes | str):
        try:
            raw = orjson.loads(raw)
        except ValueError as exc:
            raise EventError("data", f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise EventError("data", "must be a JSON object")
    try:
        data = spec.data_model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise EventError(f"data.{loc}" if loc else "data", err["msg"]) from None
    return ValidEvent(attributes, payload, spec, data, time_from_sender)


def _from_sdk(event: CloudEvent, *, time_from_sender: bool = True) -> ValidEvent[BaseModel]:
    """An event the SDK parsed (HTTP binary mode, Kafka) → validated event."""
    return validate(event.get_attributes(), event.get_data(), time_from_sender=time_from_sender)


def _from_attributes(obj: Any, received: datetime | None = None,
                     extensions: Mapping[str, str] | None = None) -> ValidEvent[BaseModel]:
    """A structured-mode JSON object → validated event. An event without a time gets
    ``received`` (else this process's clock), and ``extensions`` unless it has any of them."""
    if not isinstance(obj, dict):
        raise EventError("body", "each event must be a JSON object")
    for attr in _REQUIRED:
        if not obj.get(attr):
            raise EventError(attr, f"missing required attribute {attr!r}")
    attributes = {k: v for k, v in obj.items() if k not in ("data", "data_base64")}
    attributes.update(_trace_to_add(extensions, attributes.get))
    time_from_sender = "time" in attributes
    if time_from_sender:
        try:
            attributes["time"] = datetime.fromisoformat(str(attributes["time"]))
        except ValueError:
            raise EventError("time", f"not an RFC 3339 timestamp: {attributes['time']!r}") from None
    else:
        attributes["time"] = received or now_utc()
    check_attributes(attributes)
    payload = obj.get("data")
    if "data_base64" in obj:
        try:
            payload = base64.b64decode(obj["data_base64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise EventError("data_base64", f"not base64: {exc}") from None
    return validate(attributes, payload, time_from_sender=time_from_sender)


def _attribute_error(exc: CloudEventValidationError) -> EventError:
    errors = getattr(exc, "errors", None) or {}
    if errors:
        name, problems = next(iter(errors.items()))
        return EventError(str(name), str(problems[0]) if problems else "invalid")
    return EventError("body", str(exc))


def parse_http(headers: Mapping[str, str], body: bytes, *, received: datetime | None = None,
               extensions: Mapping[str, str] | None = None) -> list[ValidEvent]:
    """Parse one HTTP request into validated events (binary, structured or batch mode).

    ``received`` and ``extensions``: what ``received_at`` would add to each event, given at once
    (structured and batch mode), so the edge builds each CloudEvent once."""
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    if content_type == BATCH_CONTENT_TYPE:
        try:
            items = orjson.loads(body)
        except ValueError as exc:
            raise EventError("body", f"not valid JSON: {exc}") from None
        if not isinstance(items, list) or not items:
            raise EventError("body", "a batch must be a non-empty JSON array of CloudEvents")
        if len(items) > MAX_BATCH:
            raise EventError("body", f"a batch holds at most {MAX_BATCH} events, got {len(items)}")
        out = []
        for i, item in enumerate(items):
            try:
                out.append(_from_attributes(item, received, extensions))
            except EventError as exc:
                raise exc.at(i) from None
        return out
    if content_type == STRUCTURED_CONTENT_TYPE:
        try:
            obj = orjson.loads(body)
        except ValueError as exc:
            raise EventError("body", f"not valid JSON: {exc}") from None
        return [_from_attributes(obj, received, extensions)]
    if not any(k.startswith("ce-") for k in lowered):
        raise EventError(
            "content-type",
            "send a CloudEvent: binary mode (ce-* headers), structured mode "
            f"({STRUCTURED_CONTENT_TYPE}) or a batch ({BATCH_CONTENT_TYPE})",
        )
    for attr in ("ce-id", "ce-source", "ce-type", "ce-specversion"):
        if not lowered.get(attr):
            raise EventError(attr.removeprefix("ce-"), f"missing required header {attr}")
    try:
        event = ce_http.from_binary(ce_http.HTTPMessage(headers=dict(lowered), body=body), _FORMAT, CloudEvent)
    except CloudEventValidationError as exc:
        raise _attribute_error(exc) from None
    except (ValueError, TypeError) as exc:
        raise EventError("body", f"not valid JSON: {exc}") from None
    return [_from_sdk(event, time_from_sender="ce-time" in lowered)]


def new_event(event_type: str, data: BaseModel | Mapping[str, Any], *, source: str,
              event_id: str | None = None, time: datetime | None = None) -> ValidEvent:
    """Build and validate an event produced inside genrec (served logs, enrichment, feedback)."""
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else dict(data)
    attributes = {"specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": source, "type": event_type,
                  "datacontenttype": "application/json", "time": time or now_utc()}
    check_attributes(attributes)
    return validate(attributes, payload)


def to_kafka(ev: ValidEvent, s: Settings) -> tuple[str, ce_kafka.KafkaMessage]:
    """Kafka binary content mode (``ce_`` headers, ``content-type``, the data as JSON), keyed so that
    per-key order holds: the SDK's encoding, written out (its generic path cost event-capture more
    per event than validating)."""
    headers: dict[str, bytes] = {}
    for name, value in ev.attributes.items():
        if value is None:
            continue
        if name == "datacontenttype":
            headers["content-type"] = str(value).encode()
        elif isinstance(value, datetime):
            text = value.isoformat()
            headers[f"ce_{name}"] = (text[:-6] + "Z" if text.endswith("+00:00") else text).encode()
        else:
            headers[f"ce_{name}"] = str(value).encode()
    data = ev.payload
    value = data if isinstance(data, bytes) else data.encode() if isinstance(data, str) else orjson.dumps(data)
    return s.kafka.topic(ev.spec.topic_key), ce_kafka.KafkaMessage(headers=headers, key=ev.partition_key, value=value)


def to_http_binary(ev: ValidEvent) -> tuple[dict[str, str], bytes]:
    """HTTP binary content mode, as Knative's KafkaSource delivers a record to a function."""
    message = ce_http.to_binary(ev.event, _FORMAT)
    return dict(message.headers), message.body


KafkaHeaders = list[tuple[str, bytes | str]] | None


def _kafka_attributes(headers: KafkaHeaders) -> tuple[dict[str, Any], str]:
    """Kafka binary-mode headers → (CloudEvent attributes from ``ce_*``, content type)."""
    attrs: dict[str, Any] = {}
    content_type = ""
    for key, raw in headers or []:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        if key.startswith("ce_"):
            attrs[key[3:]] = text
        elif key.lower() == "content-type":
            content_type = text
    return attrs, content_type


def kafka_to_http_headers(headers: KafkaHeaders) -> dict[str, str]:
    """Kafka binary mode (``ce_*``) → HTTP binary mode (``ce-*``), as KafkaSource delivers it."""
    attrs, content_type = _kafka_attributes(headers)
    return {**{f"ce-{k}": v for k, v in attrs.items()}, "content-type": content_type or "application/json"}


def kafka_to_structured(headers: KafkaHeaders, value: bytes | None) -> bytes | None:
    """A Kafka record → its CloudEvent in structured mode (JSON), without validating it (the
    receiver does), so the eventing bridge can forward records as one batch (structured_batch);
    ``None`` when the record is not a CloudEvent in either content mode. JSON data is checked
    and spliced in as the record holds it: re-encoding every event cost the bridge more than
    reading it."""
    attrs, content_type = _kafka_attributes(headers)
    try:
        if content_type.startswith(STRUCTURED_CONTENT_TYPE):
            return value if value and isinstance(orjson.loads(value), dict) else None
        if "specversion" not in attrs:
            return None
        if content_type:
            attrs["datacontenttype"] = content_type
        if value is None:
            return orjson.dumps(attrs)
        if content_type and not (content_type.startswith("application/json") or "+json" in content_type):
            attrs["data_base64"] = base64.b64encode(value).decode()
            return orjson.dumps(attrs)
        orjson.loads(value)  # JSON, or the record is not forwarded in a batch
        return orjson.dumps(attrs)[:-1] + b',"data":' + value + b"}"
    except ValueError:
        return None


def structured_batch(events: Sequence[bytes]) -> bytes:
    """Structured-mode events (kafka_to_structured) → the body of a CloudEvents batch."""
    return b"[" + b",".join(events) + b"]"


def from_kafka(headers: list[tuple[str, bytes]] | None, key: bytes | None, value: bytes) -> ValidEvent:
    """A Kafka record (binary or structured mode) → validated event."""
    message = ce_kafka.KafkaMessage(headers=dict(headers or []), key=key, value=value)
    try:
        event = ce_kafka.from_kafka(message, _FORMAT, CloudEvent)
    except CloudEventValidationError as exc:
        raise _attribute_error(exc) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise EventError("record", f"not a CloudEvent: {exc}") from None
    return _from_sdk(event)
