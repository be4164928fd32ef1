"""The clinical event model: every documented example is accepted; impossible facts are rejected at the edge.

The example lines are the ones published in docs/events.md (the wire contract), so the doc cannot drift from
the code. Rejections name the field, so a hospital engineer can fix the record.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pvwatch.errors import InvalidEvent
from pvwatch.events import EVENT_TYPES, AdverseEventReported, MscInfusionGiven, PatientEnrolled
from pvwatch.events.clinical import ClinicalEvent
from pvwatch.events.codec import decode_event, encode_event, parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import SOURCE_TOPICS, TOPIC_OF_TYPE
from pvwatch.events.vocabulary import loinc_check_digit
from pvwatch.pseudonym import DEMO_KEY, Pseudonymiser
from tests.conftest import REPO

DOC = REPO / "docs" / "events.md"
EDGE = Pseudonymiser(DEMO_KEY)


def documented_examples() -> dict[str, dict[str, Any]]:
    """type -> the example line under its `### type` heading in docs/events.md."""
    examples: dict[str, dict[str, Any]] = {}
    heading = ""
    lines = DOC.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("### "):
            heading = line[4:].strip()
        elif line == "```json":
            record = json.loads(lines[number + 1])
            assert record["type"] == heading, f"example under {heading} has type {record['type']}"
            assert heading not in examples, f"two examples for {heading}"
            examples[heading] = record
    return examples


EXAMPLES = documented_examples()


def accepted(record: dict[str, Any]) -> EventEnvelope:
    return parse_event(EDGE.pseudonymise_record(record))


def rejected(record: dict[str, Any]) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        accepted(record)
    return caught.value


def example(type_name: str, **changes: Any) -> dict[str, Any]:
    record = json.loads(json.dumps(EXAMPLES[type_name]))
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def test_the_doc_has_one_example_for_every_clinical_type():
    clinical = {name for name, model in EVENT_TYPES.items()
                if issubclass(model, ClinicalEvent) or model is AdverseEventReported}
    assert len(clinical) == 11
    assert set(EXAMPLES) == clinical


@pytest.mark.parametrize("type_name", sorted(EXAMPLES))
def test_every_documented_example_is_accepted_and_round_trips_on_its_own_topic(type_name):
    event = accepted(EXAMPLES[type_name])
    assert event.type == type_name
    assert event.topic == TOPIC_OF_TYPE[type_name] and event.topic.endswith(".v1")
    assert decode_event(encode_event(event), event.topic) == event
    assert "MRN-000123" not in encode_event(event).decode()


def test_every_type_has_its_own_topic():
    assert len(SOURCE_TOPICS) == len(EVENT_TYPES)


def test_an_infusion_without_lot_or_dose_is_accepted_and_flagged():
    event = accepted(example("msc-infusion", lot_id=None, cells_per_kg=None, total_cells=None))
    assert isinstance(event, MscInfusionGiven)
    assert event.incompletely_documented
    assert event.missing_documentation == ["lot_id", "cell_dose"]
    assert json.loads(encode_event(event))["incompletely_documented"] is True


def test_an_infusion_with_lot_and_total_cells_only_is_complete():
    event = accepted(example("msc-infusion", cells_per_kg=None))
    assert isinstance(event, MscInfusionGiven)
    assert not event.incompletely_documented and event.missing_documentation == []


def test_a_producer_cannot_declare_its_own_infusion_complete():
    event = accepted(example("msc-infusion", lot_id=None, incompletely_documented=False, missing_documentation=[]))
    assert isinstance(event, MscInfusionGiven)
    assert event.incompletely_documented and event.missing_documentation == ["lot_id"]


@pytest.mark.parametrize(
    ("type_name", "changes", "field"),
    [
        ("treatment-started", {"dose": -15}, "dose"),
        ("treatment-started", {"dose_unit": None}, "dose_unit"),
        ("treatment-tapered", {"dose": 30}, "previous_dose"),
        ("treatment-tapered", {"dose": 0}, "dose"),
        ("treatment-started", {"atc_code": "methotrexate"}, "atc_code"),
        ("treatment-started", {"drug_class": "antibiotic"}, "drug_class"),
        ("msc-infusion", {"cells_per_kg": -1}, "cells_per_kg"),
        ("msc-infusion", {"viability_percent": 120}, "viability_percent"),
        ("msc-infusion", {"tissue_origin": "placenta-ish"}, "tissue_origin"),
        ("patient-enrolled", {"birth_year_month": "2027-01"}, "birth_year_month"),
        ("patient-enrolled", {"birth_year_month": "2014-13"}, "birth_year_month"),
        ("patient-enrolled", {"birth_year_month": "2023-01"}, "before birth_year_month"),
        ("patient-enrolled", {"diagnoses": [{"condition": "SLE", "icd10_code": "32.1"}]}, "icd10_code"),
        ("patient-enrolled", {"weight_kg": 0}, "weight_kg"),
        ("patient-enrolled", {"diagnoses": []}, "diagnoses"),
        ("adverse-event", {"resolution_date": "2026-03-01"}, "resolution_date is before onset_date"),
        ("adverse-event", {"onset_date": "2026-03-04"}, "onset_date"),
        ("adverse-event", {"ctcae_grade": 5}, "ctcae_grade 5"),
        ("adverse-event", {"meddra_pt_code": "1003766"}, "meddra_pt_code"),
        ("adverse-event", {"products": [{"name": "UC-MSC", "causality": "likely-ish"}]}, "causality"),
        ("lab-result", {"loinc_code": "751-9"}, "check digit should be 8"),
        ("lab-result", {"reference_low": 9.0}, "reference_low is above reference_high"),
        ("lab-result", {"specimen_at": "2026-03-10T08:15:00+01:00"}, "specimen_at"),
        ("lab-result", {"unit": "10^9 per L"}, "unit"),
        ("disease-activity", {"score": 106}, "maximum of 105"),
        ("disease-activity", {"score": 4.5}, "whole numbers"),
        ("disease-activity", {"assessed_by": "parent"}, "scored by a clinician"),
        ("disease-activity", {"instrument": "DAS28"}, "instrument"),
        ("disease-activity", {"documented": None}, "documented"),
        ("outcome-claim", {"claimed_by": None}, "claimed_by"),
        ("outcome-claim", {"occurred_at": "2026-03-21T19:00:00+01:00"}, "occurred_at is after recorded_at"),
    ],
)
def test_impossible_or_malformed_values_are_rejected_naming_the_field(type_name, changes, field):
    error = rejected(example(type_name, **changes))
    assert error.reason == "schema"
    assert field in error.detail


@pytest.mark.parametrize(
    ("number", "check"),
    # Published LOINC codes (loinc.org): neutrophils 751-8, ALT 1742-6, AST 1920-8, total bilirubin 1975-2,
    # platelets 777-3, haemoglobin 718-7, creatinine 2160-0 (a check digit of 0), neutrophils 26499-4.
    [("751", 8), ("1742", 6), ("1920", 8), ("1975", 2), ("777", 3), ("718", 7), ("2160", 0), ("26499", 4)],
)
def test_loinc_check_digit_matches_published_codes(number, check):
    assert loinc_check_digit(number) == check


def test_a_v1_consumer_reads_an_event_with_fields_added_by_a_newer_producer():
    # Schema evolution rule (docs/events.md): new optional fields may appear on a .v1 topic at any time.
    newer = example("lab-result", method="flow cytometry", schema_version=2)
    event = accepted(newer)
    assert event.type == "lab-result"
    assert (event.model_extra or {})["method"] == "flow cytometry"
    assert json.loads(encode_event(event))["method"] == "flow cytometry"


def test_a_clinic_identifier_in_the_patient_field_is_rejected_at_the_edge_without_its_value():
    record = {**example("lab-result", patient_ref=None), "patient": "MRN-000123"}
    error = rejected(record)
    assert error.detail.startswith("patient: not a pseudonym") and "MRN-000123" not in error.detail


def test_a_full_birth_date_is_reduced_to_year_and_month_at_the_edge():
    event = accepted(example("patient-enrolled", birth_year_month=None, birth_date="2014-06-15"))
    assert isinstance(event, PatientEnrolled) and event.birth_year_month == "2014-06"
    assert "2014-06-15" not in encode_event(event).decode()
    assert rejected(example("patient-enrolled", birth_year_month=None, birth_date="15/06/2014")).detail.startswith(
        "birth_date: expected YYYY-MM-DD")
