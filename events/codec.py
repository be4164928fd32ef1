"""Bytes on the wire <-> validated events. Validation happens once, here, at the edge of the worker."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from pvwatch.errors import InvalidEvent
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import EVENT_TYPES

#: Larger messages are rejected before parsing (a narrative is capped at 20k characters).
MAX_MESSAGE_BYTES = 256 * 1024


def describe_validation_error(error: ValidationError) -> str:
    """'field.path: message' for each problem, so a hospital engineer can fix the record."""
    parts = []
    for problem in error.errors()[:10]:
        location = ".".join(str(item) for item in problem["loc"]) or "(record)"
        parts.append(f"{location}: {problem['msg']}")
    return "; ".join(parts)


def parse_event(document: dict[str, Any]) -> EventEnvelope:
    """Validate one already-parsed JSON object as the event type it names."""
    type_name = document.get("type")
    if not isinstance(type_name, str) or type_name not in EVENT_TYPES:
        raise InvalidEvent("unknown_type", f"type {type_name!r} is not one of {sorted(EVENT_TYPES)}")
    model = EVENT_TYPES[type_name]
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidEvent("schema", describe_validation_error(error)) from None


def decode_event(raw: bytes | None, topic: str | None = None) -> EventEnvelope:
    """Decode one Kafka message value; raise InvalidEvent with a short reason category on any defect."""
    if not raw:
        raise InvalidEvent("empty", "message has no value")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent("oversize", f"{len(raw)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidEvent("not_utf8", f"byte {error.start} is not valid UTF-8") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidEvent("not_json", f"line {error.lineno} column {error.colno}: {error.msg}") from None
    if not isinstance(document, dict):
        raise InvalidEvent("not_json", f"expected a JSON object, got {type(document).__name__}")
    event = parse_event(document)
    if topic is not None and event.topic != topic:
        raise InvalidEvent("wrong_topic", f"a {event.type!r} event belongs on {event.topic}, not {topic}")
    return event


def encode_event(event: EventEnvelope) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()
