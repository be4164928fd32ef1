"""Bytes on the wire <-> validated events. Validation happens once, here, at the edge of the worker.

Decoding is one pass in pydantic-core: the JSON is parsed and validated against the union of every event
type, dispatched on its `type` field (a discriminated union), without building a Python dict first.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from pvwatch.errors import InvalidEvent
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import EVENT_TYPES
from pvwatch.events.vocabulary import ucum_problem

#: Larger messages are rejected before parsing (a narrative is capped at 20k characters).
MAX_MESSAGE_BYTES = 256 * 1024

_NOT_AN_OBJECT = {"model_attributes_type", "dict_type", "model_type"}
_NO_KNOWN_TYPE = {"union_tag_invalid", "union_tag_not_found"}


@cache
def _any_event() -> TypeAdapter[EventEnvelope]:
    models = tuple(EVENT_TYPES.values())
    if len(models) == 1:
        return TypeAdapter(models[0])
    return TypeAdapter(Annotated[Union[models], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007


def load_validators() -> None:
    """Load now what validation otherwise loads at its first event (the UCUM grammar, ~0.4 s): at the worker's
    start rather than in its first lab batch, and before replay forks, so both its processes share it."""
    ucum_problem("mg")


def describe_validation_error(error: ValidationError) -> str:
    """'field.path: message' for each problem, so a hospital engineer can fix the record."""
    parts = []
    for problem in error.errors()[:10]:
        location = [str(item) for item in problem["loc"]]
        if location and location[0] in EVENT_TYPES:
            location = location[1:]  # the union's branch name, not a field
        parts.append(f"{'.'.join(location) or '(record)'}: {problem['msg']}")
    return "; ".join(parts)


def _invalid(error: ValidationError) -> InvalidEvent:
    first = error.errors()[0]
    kind = first["type"]
    if kind == "json_invalid":
        return InvalidEvent("not_json", str(first["msg"]))
    if kind in _NOT_AN_OBJECT and len(first["loc"]) == 0:
        return InvalidEvent("not_json", "expected a JSON object")
    if kind in _NO_KNOWN_TYPE:
        return InvalidEvent("unknown_type", f"'type' must be one of {sorted(EVENT_TYPES)}")
    if kind == "ucum_unit":  # vocabulary.UcumUnit: a unit that cannot be compared or converted
        return InvalidEvent("invalid_unit", describe_validation_error(error))
    return InvalidEvent("schema", describe_validation_error(error))


def parse_event(document: dict[str, Any]) -> EventEnvelope:
    """Validate one already-parsed JSON object as the event type it names."""
    try:
        return _any_event().validate_python(document)
    except ValidationError as error:
        raise _invalid(error) from None


def decode_event(raw: bytes | None, topic: str | None = None) -> EventEnvelope:
    """Decode one Kafka message value; raise InvalidEvent with a short reason category on any defect."""
    if not raw:
        raise InvalidEvent("empty", "message has no value")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent("oversize", f"{len(raw)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidEvent("not_utf8", f"byte {error.start} is not valid UTF-8") from None
    try:
        event = _any_event().validate_json(raw)
    except ValidationError as error:
        raise _invalid(error) from None
    if topic is not None and event.topic != topic:
        raise InvalidEvent("wrong_topic", f"a {event.type!r} event belongs on {event.topic}, not {topic}")
    return event


def encode_event(event: EventEnvelope) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()
