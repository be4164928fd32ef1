"""`pvwatch schema`: the JSON Schema a hospital system codes against accepts the documented examples and refuses
what pvwatch refuses, checked with an independent validator (jsonschema, draft 2020-12)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator, FormatChecker

from pvwatch.cli import cli
from pvwatch.errors import InvalidEvent
from pvwatch.events.codec import decode_event, encode_event
from pvwatch.events.registry import EVENT_TYPES, TOPIC_OF_TYPE
from pvwatch.events.schema import all_schemas, event_schema
from tests.unit.test_events_models import EDGE, EXAMPLES, accepted, example


def validator(type_name: str, *, ingest: bool = True) -> Draft202012Validator:
    schema = event_schema(type_name, ingest=ingest)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@pytest.mark.parametrize("type_name", sorted(EXAMPLES))
def test_every_documented_example_is_valid_against_the_printed_schema(type_name):
    record = EXAMPLES[type_name]
    assert list(validator(type_name).iter_errors(record)) == []
    on_topic = json.loads(encode_event(accepted(record)))
    assert list(validator(type_name, ingest=False).iter_errors(on_topic)) == []
    assert not validator(type_name, ingest=False).is_valid(record), "the topic form has no patient_ref"


@pytest.mark.parametrize(
    ("type_name", "changes"),
    [
        ("msc-infusion", {"clinic": None}),
        ("msc-infusion", {"tissue_origin": "placenta"}),
        ("lab-result", {"value": "low"}),
        ("lab-result", {"loinc_code": "LOINC-751"}),
        ("disease-activity", {"assessed_by": "teacher"}),
        ("adverse-event", {"seriousness": {"death": "maybe"}}),
        ("treatment-started", {"dose": -1}),
        ("patient-enrolled", {"birth_year_month": "2014-06-15"}),
        ("outcome-claim", {"event_id": "not-a-uuid"}),
        ("outcome-claim", {"patient_ref": None}),
    ],
)
def test_what_the_schema_refuses_pvwatch_refuses_too(type_name, changes):
    record = example(type_name, **changes)
    assert not validator(type_name).is_valid(record)
    with pytest.raises(InvalidEvent):
        accepted(record)


def test_every_type_has_a_schema_naming_its_topic_and_requiring_its_type():
    schemas = all_schemas()
    assert set(schemas) == set(EVENT_TYPES)
    for name, schema in schemas.items():
        assert schema["x-pvwatch-topic"] == TOPIC_OF_TYPE[name]
        assert schema["properties"]["type"]["const"] == name and "type" in schema["required"]


def test_the_computed_infusion_flag_is_not_part_of_the_input_contract():
    assert "incompletely_documented" not in event_schema("msc-infusion")["properties"]


def test_pvwatch_schema_prints_one_type_or_all_and_refuses_an_unknown_type():
    runner = CliRunner()
    one = runner.invoke(cli, ["schema", "lab-result"])
    assert one.exit_code == 0, one.output
    assert json.loads(one.output)["title"] == "LabResultReported"
    every = runner.invoke(cli, ["schema"])
    assert set(json.loads(every.output)) == set(EVENT_TYPES)
    listed = runner.invoke(cli, ["schema", "--list"])
    assert "pv.clinical.msc-infusion.v1" in listed.output
    unknown = runner.invoke(cli, ["schema", "lab-results"])
    assert unknown.exit_code == 2 and "known types" in unknown.output


def test_a_v1_consumer_reads_a_message_from_a_newer_producer_with_added_fields(tmp_path):
    # docs/events.md, schema evolution: v1 topics only ever gain optional fields; old consumers keep reading.
    newer: dict[str, Any] = json.loads(encode_event(accepted(example("msc-infusion"))))
    newer.update({"schema_version": 2, "cryopreserved": True, "cell_markers": {"CD73": 98.5, "CD142": 41.0}})
    event = decode_event(json.dumps(newer).encode(), "pv.clinical.msc-infusion.v1")
    assert event.type == "msc-infusion" and event.schema_version == 2
    assert (event.model_extra or {})["cell_markers"] == {"CD73": 98.5, "CD142": 41.0}
    assert json.loads(encode_event(event))["cryopreserved"] is True, "an added field is passed on, not dropped"
    assert EDGE.pseudonym("MRN-000123") == event.patient


@pytest.mark.parametrize("type_name", sorted(EXAMPLES))
def test_every_field_of_the_clinical_contract_is_described(type_name):
    schema = event_schema(type_name)
    assert [name for name, field in schema["properties"].items() if not field.get("description")] == []
