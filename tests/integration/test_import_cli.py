"""The import commands as a user runs them with `--out` (no broker): counts, exit codes, --strict, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli_commands import pvwatch

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "data"
DEMO = {"PVWATCH_DEMO_MODE": "1", "PVWATCH_PSEUDONYM_KEY": None}
SCENARIO_1 = DATA / "e2b" / "FAERS2022Scenario1.xml"


def test_import_e2b_out_writes_the_events_and_reports_the_counts(tmp_path):
    out = tmp_path / "case.jsonl"
    run = pvwatch("import", "e2b", str(SCENARIO_1), "--out", str(out), env=DEMO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("accepted 3  rejected 0")  # two reactions E.i and the patient update
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["adverse-event", "adverse-event", "patient-updated"]


def test_strict_writes_nothing_when_a_record_is_invalid(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text(SCENARIO_1.read_text().replace('<low value="20141010"/>', '<low value="20141310"/>', 1))
    out = tmp_path / "out.jsonl"
    strict = pvwatch("import", "e2b", str(bad), "--out", str(out), "--strict", env=DEMO)
    assert strict.returncode == 1 and "nothing written or sent (--strict)" in strict.stderr
    assert not out.exists()
    lenient = pvwatch("import", "e2b", str(bad), "--out", str(out), env=DEMO)
    assert lenient.returncode == 1, "a rejected record makes the exit status non-zero"
    assert "accepted 2  rejected 1" in lenient.stdout
    assert "bad.xml ICSR US-APHARMA-8744554B reaction 1: schema: onset_date (E.i.4/E.i.5)" in lenient.stderr


def test_a_file_that_is_not_an_icsr_is_refused_with_exit_2(tmp_path):
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "bbbbbbbb">]><a>&b;&b;</a>')
    run = pvwatch("import", "e2b", str(bomb), "--out", str(tmp_path / "x.jsonl"), env=DEMO)
    assert run.returncode == 2 and "DOCTYPE" in run.stderr
    assert "Traceback" not in run.stderr


def test_imports_refuse_to_run_without_a_pseudonym_key(tmp_path):
    run = pvwatch("import", "fhir", str(DATA / "fhir" / "msc-story-bundle.json"), "--out", str(tmp_path / "x"),
                  env={"PVWATCH_DEMO_MODE": None, "PVWATCH_PSEUDONYM_KEY": None})
    assert run.returncode == 2 and "PVWATCH_PSEUDONYM_KEY" in run.stderr


def test_import_csv_rejects_an_unknown_kind_and_lists_skipped_fhir_resources(tmp_path):
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("patient_ref,term\nMRN-1,Rash\n")
    wrong = pvwatch("import", "csv", "--kind", "horoscope", str(csv_file), env=DEMO)
    assert wrong.returncode == 2 and "horoscope" in wrong.stderr
    story = pvwatch("import", "fhir", str(DATA / "fhir" / "msc-story-bundle.json"), "--out",
                    str(tmp_path / "story.jsonl"), env=DEMO)
    assert story.returncode == 0 and "note msc-story-bundle.json entry 11 (Encounter/visit-1): skipped" in story.stderr


@pytest.mark.parametrize("command", ["import", "ingest"])
def test_an_unreachable_broker_is_a_clear_error_that_says_a_retry_is_safe(command, tmp_path):
    from pvwatch.cohort import generate_cohort
    from pvwatch.streams.broker import free_port

    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(record) + "\n" for record in generate_cohort(1, seed=1)))
    arguments = ("import", "e2b", str(SCENARIO_1)) if command == "import" else ("ingest", str(events))
    run = pvwatch(*arguments, "--bootstrap-servers", f"127.0.0.1:{free_port()}", env=DEMO)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "nothing is stored twice" in run.stderr
