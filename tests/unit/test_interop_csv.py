"""`pvwatch import csv --kind KIND`: every event type from a spreadsheet, with the wire contract's own examples.

Each type's documented example line (docs/events.md, the public wire contract) is flattened to one CSV row as
docs/interop.md describes the columns; importing it must give exactly the event the JSON line gives.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from pvwatch.events.codec import encode_event, parse_event
from pvwatch.interop.common import ImportFileError
from pvwatch.interop.csv_import import CSV_KINDS, import_csv
from pvwatch.pseudonym import DEMO_KEY, Pseudonymiser
from tests.unit.test_events_models import documented_examples

EDGE = Pseudonymiser(DEMO_KEY)
EXAMPLES = documented_examples()


def flatten(record: dict[str, Any]) -> dict[str, str]:
    """A JSON event as CSV cells: nested objects with dotted columns, lists as JSON, the rest as text."""
    cells: dict[str, str] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            cells.update({f"{key}.{inner}": json.dumps(v) if isinstance(v, list | dict) else str(v).lower()
                          if isinstance(v, bool) else str(v) for inner, v in value.items()})
        elif isinstance(value, list):
            cells[key] = json.dumps(value)
        elif isinstance(value, bool):
            cells[key] = str(value).lower()
        elif value is not None:
            cells[key] = str(value)
    cells.pop("type", None)
    return cells


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(column for row in rows for column in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("kind", [kind for kind in CSV_KINDS if kind in EXAMPLES])
def test_the_documented_example_of_every_type_imports_from_csv_as_the_same_event(tmp_path, kind):
    example = EXAMPLES[kind]
    result = import_csv(write_csv(tmp_path / f"{kind}.csv", [flatten(example)]), kind, EDGE)
    assert [r.message() for r in result.rejections] == []
    (event,) = result.events
    expected = parse_event(EDGE.pseudonymise_record(example))
    assert json.loads(encode_event(event)) == json.loads(encode_event(expected))


def test_every_importable_type_has_a_documented_example():
    assert set(CSV_KINDS) <= set(EXAMPLES)


def test_raw_patient_ref_is_pseudonymised_and_never_written(tmp_path):
    row = flatten(EXAMPLES["lab-result"])
    row.pop("patient", None)
    row["patient_ref"] = "MRN-778899"
    (event,) = import_csv(write_csv(tmp_path / "labs.csv", [row]), "lab-result", EDGE).events
    assert event.patient == EDGE.pseudonym("MRN-778899")
    assert b"778899" not in encode_event(event)


def test_without_an_event_id_column_the_same_row_gets_the_same_id(tmp_path):
    row = flatten(EXAMPLES["lab-result"])
    row.pop("event_id")
    path = write_csv(tmp_path / "labs.csv", [row])
    first, second = (import_csv(path, "lab-result", EDGE).events[0].event_id for _ in range(2))
    assert first == second


def test_a_bad_row_is_rejected_naming_row_and_field_and_the_others_are_kept(tmp_path):
    good = flatten(EXAMPLES["lab-result"])
    bad_unit = {**good, "event_id": "7d7a7a0e-2b8e-4c9e-8f2a-000000000001", "loinc_code": "751-9"}  # check digit 8
    bad_value = {**good, "event_id": "7d7a7a0e-2b8e-4c9e-8f2a-000000000002", "value": "high"}
    result = import_csv(write_csv(tmp_path / "labs.csv", [good, bad_unit, bad_value]), "lab-result", EDGE)
    assert len(result.events) == 1
    messages = [rejection.message() for rejection in result.rejections]
    assert messages[0].startswith("labs.csv:row 3: schema: loinc_code")
    assert messages[1].startswith("labs.csv:row 4: schema: value")


def test_an_unknown_column_stops_the_import_before_anything_is_sent(tmp_path):
    row = {**flatten(EXAMPLES["lab-result"]), "home_address": "1 Main St"}
    with pytest.raises(ImportFileError, match="home_address"):
        import_csv(write_csv(tmp_path / "labs.csv", [row]), "lab-result", EDGE)


def test_a_file_that_is_not_utf8_is_refused_as_a_whole(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("patient_ref,term\nMRN-1,Fi\xe8vre\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="not valid UTF-8"):
        import_csv(path, "adverse-event", EDGE)


def test_a_list_cell_that_is_not_json_is_rejected_naming_the_column(tmp_path):
    row = {**flatten(EXAMPLES["adverse-event"]), "products": "methotrexate"}
    (rejection,) = import_csv(write_csv(tmp_path / "ae.csv", [row]), "adverse-event", EDGE).rejections
    assert "products: not a JSON array" in rejection.message()


def test_a_list_cell_nested_too_deeply_is_rejected_not_a_crash(tmp_path):
    row = {**flatten(EXAMPLES["adverse-event"]), "products": "[" * 20_000 + "]" * 20_000}
    (rejection,) = import_csv(write_csv(tmp_path / "ae.csv", [row]), "adverse-event", EDGE).rejections
    assert "products: JSON nested too deeply" in rejection.message()


def test_a_cell_above_the_csv_field_limit_refuses_the_file_not_a_crash(tmp_path):
    row = {**flatten(EXAMPLES["adverse-event"]), "narrative": "x" * 200_000}
    with pytest.raises(ImportFileError, match="after line 1: field larger than field limit"):
        import_csv(write_csv(tmp_path / "ae.csv", [row]), "adverse-event", EDGE)


def test_a_patient_s_birth_date_column_keeps_only_year_and_month(tmp_path):
    row = flatten(EXAMPLES["patient-enrolled"])
    row.pop("birth_year_month")
    row["birth_date"] = "2012-05-14"
    (event,) = import_csv(write_csv(tmp_path / "patients.csv", [row]), "patient-enrolled", EDGE).events
    assert event.birth_year_month == "2012-05"
    assert b"2012-05-14" not in encode_event(event)
