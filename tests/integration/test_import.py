"""The importers as a user runs them, through the real embedded broker and a real worker into DuckDB:
FDA's FAERS example ICSRs (tests/data/e2b), the FHIR MSC-story bundle (tests/data/fhir), a bad record to the
dead-letter topic with its reason, a re-import stored once, and `pvwatch export e2b` round-tripping a stored case.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from pvwatch.interop.e2b_import import import_e2b
from pvwatch.pseudonym import DEMO_KEY, Pseudonymiser
from tests.conftest import Workers, wait_for
from tests.integration.test_cli_commands import pvwatch

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "data"
#: Six FDA example files, two reactions E.i each; every (file, reaction) differs in content (scenarios 2 and 3
#: reuse identifiers, 5-1 and 5-2 too), so 12 adverse-event versions are stored.
FDA_FILES = sorted((DATA / "e2b").glob("*.xml"))


def _read_only(db: Path, query: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_fda_icsrs_and_a_fhir_bundle_reach_the_typed_views_and_a_bad_record_the_dead_letters(
        workers: Workers, tmp_path):
    worker = workers.start()
    env: dict[str, str | None] = {"PVWATCH_KAFKA_BOOTSTRAP": workers.broker.bootstrap, "PVWATCH_DEMO_MODE": "1"}
    for path in FDA_FILES:
        run = pvwatch("import", "e2b", str(path), env=env)
        assert run.returncode == 0, run.stderr
        assert "rejected 0" in run.stdout, path.name
    again = pvwatch("import", "e2b", str(FDA_FILES[0]), env=env)  # a resend: the store keeps one copy
    assert again.returncode == 0, again.stderr

    bad = tmp_path / "bad-onset.xml"
    bad.write_text(FDA_FILES[0].read_text().replace('<low value="20141010"/>', '<low value="20141310"/>', 1))
    rejected = pvwatch("import", "e2b", str(bad), env=env)
    assert rejected.returncode == 1
    assert "accepted 2  rejected 1" in rejected.stdout  # reaction 2 and the patient update; reaction 1 rejected
    assert "reaction 1: schema: onset_date (E.i.4/E.i.5)" in rejected.stderr

    story = pvwatch("import", "fhir", str(DATA / "fhir" / "msc-story-bundle.json"), env=env)
    assert story.returncode == 0, story.stderr
    assert "accepted 10  rejected 0" in story.stdout
    assert "skipped, pvwatch does not import Encounter" in story.stderr

    # Stored once each: 12 FDA reactions, their patient updates (identical ones count once) and 10 FHIR events.
    # The resend of scenario 1 and the bad file's valid reaction 2 (identical to scenario 1's) are duplicates.
    distinct = {e.event_id for path in FDA_FILES for e in import_e2b(path, Pseudonymiser(DEMO_KEY)).events}
    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(distinct) + 10
             and workers.metric(worker, "pv_events_duplicate_total") >= 3
             and workers.metric(worker, "pv_events_rejected_total") >= 1, 60, what="imports stored")
    worker.stop()

    db = workers.db
    versions = _read_only(db, "SELECT case_id, count(*) FROM adverse_events WHERE source = 'e2b-import' "
                              "GROUP BY case_id ORDER BY case_id")
    assert versions == [("US-APHARMA-222222222", 2), ("US-APHARMA-234545656", 4), ("US-APHARMA-8744554B", 6)]
    flags = _read_only(db, "SELECT meddra_pt_code, disability, medically_important, outcome FROM adverse_events "
                           "WHERE case_id = 'US-APHARMA-8744554B' AND recorded_at = TIMESTAMPTZ "
                           "'2022-06-14 15:10:10+00' ORDER BY meddra_pt_code")
    assert ("10027940", True, True, "not-recovered") in flags and ("10009896", False, True, "recovered") in flags
    (reason,) = _read_only(db, "SELECT reason FROM dead_letters")
    assert reason == ("schema",)
    assert _read_only(db, "SELECT count(*) FROM infusions") == [(2,)]
    assert ("male", "2001-06") in _read_only(db, "SELECT sex, birth_year_month FROM patients")  # scenario 1 D.5, D.2.1
    assert _read_only(db, "SELECT assessed_by FROM disease_activity ORDER BY assessed_by") == [
        ("clinician",), ("parent",)]
    text = "\n".join(str(row) for row in _read_only(db, "SELECT payload FROM event_log"))
    for raw in ("JD", "20010615", "MSC-DEMO-0007", "2012-05-14"):  # D.1 initials, D.2.1, FHIR MRN, birthDate
        assert raw not in text

    exported = tmp_path / "case.xml"
    run = pvwatch("export", "e2b", "US-APHARMA-222222222", "--db", str(db), "--out", str(exported))
    assert run.returncode == 0, run.stderr
    back = tmp_path / "back.jsonl"
    reimport = pvwatch("import", "e2b", str(exported), "--out", str(back), env=env)
    assert reimport.returncode == 0, reimport.stderr
    stored = {row[0] for row in _read_only(
        db, "SELECT event_id::VARCHAR FROM event_log WHERE payload->>'case_id' = 'US-APHARMA-222222222'")}
    back_events = [json.loads(line) for line in back.read_text().splitlines()]
    assert {e["event_id"] for e in back_events if e["type"] == "adverse-event"} == stored

    missing = pvwatch("export", "e2b", "NO-SUCH-CASE", "--db", str(db))
    assert missing.returncode == 2 and "NO-SUCH-CASE" in missing.stderr


def test_fhir_tapers_and_benefit_claims_reach_the_treatments_and_outcomes_views(workers: Workers):
    """tests/data/fhir/msc-taper-claims-bundle.json (synthetic, ours): a prednisolone course tapered twice and
    stopped, a mycophenolate request replaced by a lower dose, a parent's undocumented claim and a clinician's
    claim documented by two SLEDAI-2K scores."""
    worker = workers.start()
    env: dict[str, str | None] = {"PVWATCH_KAFKA_BOOTSTRAP": workers.broker.bootstrap, "PVWATCH_DEMO_MODE": "1"}
    run = pvwatch("import", "fhir", str(DATA / "fhir" / "msc-taper-claims-bundle.json"), env=env)
    assert run.returncode == 0, run.stderr
    assert "accepted 14  rejected 0" in run.stdout
    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= 14, 60, what="bundle stored")
    worker.stop()
    db = workers.db
    assert _read_only(db, "SELECT change, dose, previous_dose, reason FROM treatments WHERE drug = 'prednisolone' "
                          "ORDER BY occurred_at") == [
        ("started", 20.0, None, None), ("tapered", 10.0, 20.0, "taper after MSC therapy"),
        ("tapered", 5.0, 10.0, "parent decision"), ("stopped", None, 5.0, "parent decision")]
    claims = _read_only(db, "SELECT claimed_by, direction, has_documented_measure, measure_before, measure_after, "
                            "measure_event_id = (SELECT event_id FROM disease_activity WHERE score = 6) "
                            "FROM outcomes ORDER BY occurred_at")
    assert claims == [("parent", "improved", False, None, None, None),
                      ("clinician", "improved", True, 12.0, 6.0, True),
                      ("patient", "unchanged", False, None, None, None)]
