"""The typed clinical views on a real DuckDB file, and in the analyst snapshot the worker publishes.

Events are stored as the worker stores them (payload as received); the views must read them back typed, keep
who assessed a score, recompute the infusion documentation flag, order case versions and carry their comments
into the snapshot.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pvwatch.events.codec import encode_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.store.eventstore import EventStore, MessageOrigin, connect
from pvwatch.store.snapshot import publish_snapshot
from tests.unit.test_events_models import EXAMPLES, accepted, example

pytestmark = pytest.mark.integration

CLINICAL_VIEWS = ("patients", "treatments", "infusions", "adverse_events", "labs", "disease_activity", "outcomes")


def store_events(store: EventStore, events: list[EventEnvelope], payloads: list[bytes] | None = None) -> None:
    with store.transaction():
        store.insert_events([(e, MessageOrigin(e.topic)) for e in events], datetime.now(UTC),
                            payloads or [encode_event(e) for e in events])


def rows(store: EventStore, sql: str) -> list[dict[str, Any]]:
    cursor = store.con.execute(sql)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return EventStore(tmp_path / "pvwatch.duckdb")


def test_every_documented_example_reads_back_typed_from_its_view(store: EventStore) -> None:
    store_events(store, [accepted(record) for record in EXAMPLES.values()])
    patient = rows(store, "SELECT * FROM patients")
    assert len(patient) == 1
    assert patient[0]["birth_year_month"] == "2014-06" and patient[0]["conditions"] == ["SLE"]
    assert patient[0]["weight_kg"] == 40.1  # the later patient-updated wins over the enrolment's 38.5
    changes = rows(store, "SELECT change, drug, dose, reason FROM treatments ORDER BY occurred_at")
    assert [(c["change"], c["drug"]) for c in changes] == [
        ("started", "methotrexate"), ("dose-changed", "prednisolone"), ("tapered", "prednisolone"),
        ("stopped", "methotrexate")]
    assert changes[2]["dose"] == 5.0 and changes[2]["reason"] == "taper after MSC therapy"
    infusion = rows(store, "SELECT * FROM infusions")[0]
    assert infusion["lot_id"] == "UC-2026-014" and infusion["cells_per_kg"] == 1e6
    assert infusion["premedication"] == ["paracetamol", "cetirizine"] and infusion["incompletely_documented"] is False
    case = rows(store, "SELECT * FROM adverse_events")[0]
    assert case["is_serious"] and case["hospitalisation"] and not case["death"]
    assert case["suspect_products"] == ["UC-MSC"] and case["concomitant_products"] == ["methotrexate"]
    assert case["suspect_lots"] == ["UC-2026-014"] and case["ctcae_grade"] == 2
    assert str(case["products"][0]["infusion_event_id"]) == EXAMPLES["msc-infusion"]["event_id"]
    assert "narrative" not in case and case["has_narrative"] is True
    lab = rows(store, "SELECT * FROM labs")[0]
    assert (lab["loinc_code"], lab["value"], lab["unit"], lab["below_range"]) == ("751-8", 0.8, "10*9/L", True)
    score = rows(store, "SELECT * FROM disease_activity")[0]
    assert (score["instrument"], score["score"], score["assessed_by"], score["documented"]) == (
        "SLEDAI-2K", 10.0, "clinician", True)
    claim = rows(store, "SELECT * FROM outcomes")[0]
    assert (claim["claimed_by"], claim["has_documented_measure"]) == ("parent", False)


def test_every_view_and_every_column_is_documented(store: EventStore) -> None:
    undocumented_views = store.con.execute(
        "SELECT view_name FROM duckdb_views() WHERE view_name IN (SELECT unnest($v)) AND comment IS NULL",
        {"v": list(CLINICAL_VIEWS)}).fetchall()
    assert undocumented_views == []
    columns = store.con.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE table_name IN (SELECT unnest($v))",
        {"v": list(CLINICAL_VIEWS)}).fetchall()
    assert {table for table, _, _ in columns} == set(CLINICAL_VIEWS)
    assert [(table, column) for table, column, comment in columns if not comment] == []


def test_the_infusion_flag_is_recomputed_from_the_payload_not_trusted(store: EventStore) -> None:
    # A producer writing straight to Kafka may omit the computed flag or claim completeness it lacks.
    lying = example("msc-infusion", lot_id=None, event_id="0b7c4a3e-1f6d-4c1e-8a52-3d1f0e9c2b01")
    event = accepted(lying)
    raw = json.dumps({**json.loads(encode_event(event)), "incompletely_documented": False}).encode()
    store_events(store, [event], [raw])
    flagged = rows(store, "SELECT lot_id, incompletely_documented FROM infusions")
    assert flagged == [{"lot_id": None, "incompletely_documented": True}]


def test_case_versions_are_ordered_by_recorded_at_whatever_the_arrival_order(store: EventStore) -> None:
    initial = accepted(example("adverse-event"))
    follow_up = accepted(example(
        "adverse-event", event_id="0b7c4a3e-1f6d-4c1e-8a52-3d1f0e9c2b02", report_kind="follow-up",
        follow_up_number=1, recorded_at="2026-03-10T09:00:00+01:00", outcome="recovered-with-sequelae"))
    other_case = accepted(example("adverse-event", event_id="0b7c4a3e-1f6d-4c1e-8a52-3d1f0e9c2b03",
                                  case_id="CASE-LYON-0043"))
    store_events(store, [follow_up])  # the follow-up arrives first
    store_events(store, [other_case, initial])
    versions = rows(store, "SELECT case_id, version_number, is_latest, report_kind, outcome FROM adverse_events "
                           "ORDER BY case_id, version_number")
    assert versions == [
        {"case_id": "CASE-LYON-0042", "version_number": 1, "is_latest": False, "report_kind": "initial",
         "outcome": "recovered"},
        {"case_id": "CASE-LYON-0042", "version_number": 2, "is_latest": True, "report_kind": "follow-up",
         "outcome": "recovered-with-sequelae"},
        {"case_id": "CASE-LYON-0043", "version_number": 1, "is_latest": True, "report_kind": "initial",
         "outcome": "recovered"},
    ]
    latest = rows(store, "SELECT case_id, outcome FROM adverse_events WHERE is_latest ORDER BY case_id")
    assert [r["outcome"] for r in latest] == ["recovered-with-sequelae", "recovered"]


def test_a_late_update_about_an_earlier_moment_does_not_overwrite_a_newer_value(store: EventStore) -> None:
    enrolled = accepted(example("patient-enrolled"))
    newer = accepted(example("patient-updated"))  # 2026-04-02, 40.1 kg
    older = accepted(example("patient-updated", event_id="0b7c4a3e-1f6d-4c1e-8a52-3d1f0e9c2b04", weight_kg=39.0,
                             site="site-porto", occurred_at="2026-02-01T10:00:00+01:00",
                             recorded_at="2026-04-03T10:00:00+02:00"))
    store_events(store, [enrolled, newer])
    store_events(store, [older])  # arrives last, happened in between
    patient = rows(store, "SELECT weight_kg, site, patient_event_count FROM patients")[0]
    assert patient == {"weight_kg": 40.1, "site": "site-porto", "patient_event_count": 3}


def test_clinician_documented_and_parent_reported_scores_stay_apart(store: EventStore) -> None:
    clinician = accepted(example("disease-activity", instrument="JADAS10", score=3.5))
    parent = accepted(example("disease-activity", event_id="0b7c4a3e-1f6d-4c1e-8a52-3d1f0e9c2b05",
                              instrument="parent-global", score=2, assessed_by="parent", documented=False))
    store_events(store, [clinician, parent])
    by_assessor = rows(store, "SELECT assessed_by, instrument, documented FROM disease_activity ORDER BY 1")
    assert by_assessor == [{"assessed_by": "clinician", "instrument": "JADAS10", "documented": True},
                           {"assessed_by": "parent", "instrument": "parent-global", "documented": False}]


def test_the_analyst_snapshot_has_every_clinical_view_with_its_comments(store: EventStore, tmp_path: Path) -> None:
    store_events(store, [accepted(record) for record in EXAMPLES.values()])
    info = publish_snapshot(store.con, tmp_path / "snap.duckdb")
    assert set(CLINICAL_VIEWS) <= set(info.views) and info.skipped_views == {}
    con = connect(info.path, read_only=True)
    for view in CLINICAL_VIEWS:
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone()[0] >= 1, view
    commented = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'infusions' "
                            "AND comment IS NOT NULL").fetchone()[0]
    total = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'infusions'").fetchone()[0]
    assert commented == total > 0
    con.close()


def test_the_documented_clinical_analyses_run_on_the_snapshot(store: EventStore, tmp_path: Path) -> None:
    """docs/analysts.md, the block on the clinical views: each query runs and gives what the examples imply."""
    import re

    store_events(store, [accepted(record) for record in EXAMPLES.values()])
    info = publish_snapshot(store.con, tmp_path / "snap.duckdb")
    doc = (Path(__file__).resolve().parents[2] / "docs" / "analysts.md").read_text()
    block = re.findall(r"```sql\n(.*?)```", doc, re.S)[2]
    by_lot, infusion_to_onset, flares, benefit = [s for s in block.split(";") if s.strip()]
    con = connect(info.path, read_only=True)
    # One infusion of lot UC-2026-014 and one AE (onset the same day): 100 AEs per 100 infusions.
    assert con.execute(by_lot).fetchall() == [("UC-2026-014", 1, 1, 100.0)]
    assert [row[2] for row in con.execute(infusion_to_onset).fetchall()] == [0]
    # The prednisolone taper on 16 March is followed on 2 April by a clinician-documented SLEDAI-2K of 10.
    flare = con.execute(flares).fetchall()
    assert [(r[1], r[3], r[4], r[6], r[7]) for r in flare] == [("prednisolone", "SLEDAI-2K", 10.0, "clinician", True)]
    assert con.execute(benefit).fetchall() == [("parent", 1, 0)]
    con.close()


def test_the_documented_clinical_analyses_find_the_cohorts_planted_stories(store: EventStore, tmp_path: Path) -> None:
    import re

    from pvwatch.cohort import CLUSTER_LOT, generate_cohort, planted_stories
    from pvwatch.pseudonym import DEMO_KEY, Pseudonymiser

    edge = Pseudonymiser(DEMO_KEY)
    store_events(store, [accepted(record) for record in generate_cohort(60, 7)])
    info = publish_snapshot(store.con, tmp_path / "snap.duckdb")
    doc = (Path(__file__).resolve().parents[2] / "docs" / "analysts.md").read_text()
    by_lot, _, flares, benefit = [s for s in re.findall(r"```sql\n(.*?)```", doc, re.S)[2].split(";") if s.strip()]
    con = connect(info.path, read_only=True)
    lots = {row[0]: row[1:] for row in con.execute(by_lot).fetchall()}
    assert lots[CLUSTER_LOT] == (3, 3, 100.0), "three children, three adverse events within 14 days of the lot"
    flare_patient = edge.pseudonym(planted_stories(60, 7)["flare-after-taper"].patient_ref)
    rows = [r for r in con.execute(flares).fetchall() if r[0] == flare_patient and r[3] == "SLEDAI-2K"]
    assert [r[4] for r in rows][:2] == [10.0, 8.0] and all(r[6] == "clinician" for r in rows)
    claims = dict((row[0], row[1:]) for row in con.execute(benefit).fetchall())
    assert claims["parent"][0] > 0 and claims["parent"][1] == 0, "parents' claims: none documented"
    assert claims["clinician"][1] == claims["clinician"][0], "clinicians' claims: each with its measure"
    con.close()
