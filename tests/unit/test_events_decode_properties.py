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
from pvwatch.events.codec import MAX_MESSAGE_BYTES, decode_event, encode_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import SOURCE_TOPICS
from pvwatch.streams.ingest import Rejection, prepare
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
        assert error.reason in {"empty", "oversize", "not_utf8", "not_json", "unknown_type", "schema", "wrong_topic",
                                "invalid_unit"}
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


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_the_ingest_edge_turns_any_line_into_an_event_or_a_rejection(line):
    assert isinstance(prepare("events.jsonl:1", line, EDGE), EventEnvelope | Rejection)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(EXAMPLES.values())), st.from_regex(r"MRN-[0-9]{6,9}", fullmatch=True),
       st.from_regex(r"Name-[0-9]{6}", fullmatch=True),
       st.lists(st.tuples(KNOWN, json_values | st.just(None)), max_size=3),
       st.from_regex(r"reporter-[0-9]{6}@example\.org", fullmatch=True))
def test_whatever_the_edge_decides_the_raw_identifiers_do_not_travel(record, mrn, name, replacements, reporter):
    document: dict[str, Any] = {**record, "patient_ref": mrn, "patient_name": name, "birth_date": "2012-02-29",
                                "reporter_ref": reporter}
    for key, value in replacements:
        if key != "patient_ref":
            document[key] = value
    result = prepare("events.jsonl:1", json.dumps(document).encode(), EDGE)
    travelling = result.clean_payload or b"" if isinstance(result, Rejection) else encode_event(result)
    for secret in (mrn, name, "2012-02-29", reporter):
        assert secret.encode() not in travelling
    if isinstance(result, Rejection):
        assert mrn not in result.detail and name not in result.detail and reporter not in result.detail
