"""`pvwatch export e2b` validated against the ICH ICSR XML schema set (ICH E2B(R3), HL7 v3 multicacheschemas).

No package ships the ICH schema set (docs/interop.md "Validation" says what was searched), and it holds HL7 core
schemas that pvwatch does not redistribute, so this test runs where the set is on disk: set
PVWATCH_E2B_SCHEMA_DIR to the folder that holds `multicacheschemas/` and `coreschemas/`. Elsewhere it is skipped,
saying why. The schema is read from disk only (network and entities off). FDA's six example ICSRs must validate
first, which proves the folder is the right schema set.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.codec import parse_event
from pvwatch.interop.e2b_export import build_icsr, patient_facts
from pvwatch.interop.e2b_import import import_e2b
from pvwatch.pseudonym import DEMO_KEY, Pseudonymiser
from tests.unit.test_events_models import EXAMPLES

FDA_EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "data" / "e2b").glob("*.xml"))
SCHEMA_DIR = os.environ.get("PVWATCH_E2B_SCHEMA_DIR")
EDGE = Pseudonymiser(DEMO_KEY)
PARSER = etree.XMLParser(no_network=True, resolve_entities=False)

pytestmark = pytest.mark.skipif(
    not SCHEMA_DIR, reason="PVWATCH_E2B_SCHEMA_DIR is not set: the ICH E2B(R3) schema set is not shipped")


@pytest.fixture(scope="module")
def ich_schema() -> etree.XMLSchema:
    root = Path(str(SCHEMA_DIR)) / "multicacheschemas" / "MCCI_IN200100UV01.xsd"
    return etree.XMLSchema(etree.parse(str(root), PARSER))


def problems(schema: etree.XMLSchema, document: bytes) -> list[str]:
    valid = schema.validate(etree.fromstring(document, PARSER).getroottree())
    return [] if valid else [f"line {e.line}: {e.message}" for e in schema.error_log]


@pytest.mark.parametrize("example", FDA_EXAMPLES, ids=lambda path: path.name)
def test_fda_example_and_its_pvwatch_export_are_schema_valid(ich_schema, example):
    assert problems(ich_schema, example.read_bytes()) == []
    events = import_e2b(example, EDGE).events
    reactions = [e for e in events if isinstance(e, AdverseEventReported)]
    exported = build_icsr(reactions, sender="PVWATCH", receiver="ZZFDA", now=datetime.now(UTC),
                          patient=patient_facts(e for e in events if e.type == "patient-updated"))
    assert problems(ich_schema, exported) == []


def test_a_pvwatch_native_case_exports_schema_valid_and_a_broken_one_does_not(ich_schema):
    native = parse_event(EDGE.pseudonymise_record(EXAMPLES["adverse-event"]))  # docs/events.md example
    assert isinstance(native, AdverseEventReported)
    exported = build_icsr([native], sender="PVWATCH", receiver="ZZFDA", now=datetime.now(UTC),
                          patient={"sex": "female", "birth_year_month": "2014-06"})
    assert problems(ich_schema, exported) == []
    broken = exported.replace(b"<investigationEvent", b"<investigationEvent pvwatch=\"1\"", 1)
    assert any("investigationEvent" in problem for problem in problems(ich_schema, broken))
