"""Property: nothing a producer can put on a topic makes decoding raise anything but InvalidEvent.

A worker that raised anything else on one message would stop consuming for every patient; InvalidEvent is what
sends a message to the dead-letter topic with its reason. Three generators: arbitrary bytes, arbitrary JSON
objects, and the documented examples with one field replaced by arbitrary JSON (the inputs most likely to reach
the deeper validators).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pvwatch.errors import InvalidEvent
from pvwatch.events.codec import MAX_MESSAGE_BYTES, decode_event
from pvwatch.events.registry import SOURCE_TOPICS
from tests.unit.test_events_models import EDGE, EXAMPLES

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
ON_THE_TOPIC = [EDGE.pseudonymise_record(record) for record in EXAMPLES.values()]
FIELDS = sorted({key for record in ON_THE_TOPIC for key in record})
KNOWN = st.sampled_from(["event_id", "type", "occurred_at", "recorded_at", "patient", *FIELDS])


def decodes_or_is_invalid(raw: bytes, topic: str | None) -> None:
    try:
        event = decode_event(raw, topic)
    except InvalidEvent as error:
        assert error.reason in {"empty", "oversize", "not_utf8", "not_json", "unknown_type", "schema", "wrong_topic"}
        assert error.detail
    else:
        assert topic is None or event.topic == topic


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.sampled_from([None, *SOURCE_TOPICS]))
def test_arbitrary_bytes_never_raise_anything_but_invalid_event(raw, topic):
    decodes_or_is_invalid(raw, topic)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.one_of(KNOWN, st.text(max_size=12)), json_values, max_size=12))
def test_arbitrary_json_objects_never_raise_anything_but_invalid_event(document):
    decodes_or_is_invalid(json.dumps(document).encode(), None)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ON_THE_TOPIC), st.lists(st.tuples(KNOWN, json_values | st.just(None)), min_size=1, max_size=3),
       st.booleans())
def test_a_documented_example_with_any_field_replaced_decodes_or_is_invalid(record, replacements, on_its_topic):
    document: dict[str, Any] = dict(record)
    for key, value in replacements:
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    decodes_or_is_invalid(json.dumps(document).encode(), f"pv.clinical.{record['type']}.v1" if on_its_topic else None)


def test_deeply_nested_and_oversize_messages_are_invalid_not_a_crash():
    valid = json.dumps(ON_THE_TOPIC[0])
    nested = (valid[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    decodes_or_is_invalid(nested, None)
    padded = json.dumps({**ON_THE_TOPIC[0], "extra": "x" * MAX_MESSAGE_BYTES}).encode()
    try:
        decode_event(padded)
    except InvalidEvent as error:
        assert error.reason == "oversize"
    else:
        raise AssertionError("an oversize message must be refused")
