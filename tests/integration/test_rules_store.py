"""The derived-table writes behind the rules, on a real DuckDB file: an alert re-derived with new evidence is
revised in place (same id, raised_at kept, published again), an identical re-derivation changes nothing, and the
expedited_reports upsert keeps one row per case and category."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from pvwatch.domain.engine import ClockRow
from pvwatch.domain.expedited import ClockParameters, QualifyingReport, ReportSubmission, clocks_for_case
from pvwatch.events.alert import SafetyAlert, Severity, alert_id_for
from pvwatch.store.eventstore import EventStore
from pvwatch.store.expedited import replace_clocks, upsert_clocks

pytestmark = pytest.mark.integration
PATIENT = "pt-" + "4" * 20
T0 = datetime(2026, 4, 25, 8, tzinfo=UTC)


def cluster_alert(evidence: tuple, raised_at: datetime) -> SafetyAlert:
    return SafetyAlert(
        alert_id=alert_id_for("lot-cluster", 1, "lot|L1|k-events|first"), rule_id="lot-cluster", rule_version=1,
        severity=Severity.CRITICAL, patient=PATIENT, evidence_event_ids=evidence, occurred_at=T0, raised_at=raised_at,
        summary=f"{len(evidence)} adverse events within 90 days after infusions from lot L1",
        details={"events": len(evidence)})


def test_a_re_derived_alert_is_revised_in_place_and_published_again(tmp_path):
    store = EventStore(tmp_path / "pv.duckdb")
    first = cluster_alert((uuid4(), uuid4(), uuid4()), T0)
    with store.transaction():
        assert store.insert_alerts([first]) == [first]
    store.mark_published([first.alert_id], [])
    assert store.revise_alerts([first.model_copy(update={"raised_at": T0 + timedelta(days=1)})]) == []
    later = cluster_alert((*first.evidence_event_ids, uuid4()), T0 + timedelta(days=2))
    with store.transaction():
        assert store.insert_alerts([later]) == []  # the same alert: never raised twice
        assert store.revise_alerts([later]) == [later]
    row = store.con.execute("SELECT len(evidence_event_ids), summary, raised_at, published_at FROM alerts").fetchall()
    assert row == [(4, later.summary, T0, None)]  # raised_at kept, unpublished so the outbox sends the revision
    assert [a.alert_id for a in store.unpublished_alerts()] == [first.alert_id]
    store.close()


def test_expedited_clock_rows_are_upserted_per_case_and_category(tmp_path):
    store = EventStore(tmp_path / "pv.duckdb")
    report = QualifyingReport(uuid4(), "C-9", date(2026, 3, 2), False, "UC-MSC: no RSI")
    open_clock = clocks_for_case([report], [], ClockParameters())
    with store.transaction():
        upsert_clocks(store.con, [ClockRow(PATIENT, c) for c in open_clock])
    sent = ReportSubmission(uuid4(), "C-9", open_clock[0].category, datetime(2026, 3, 20, tzinfo=UTC))
    stopped = clocks_for_case([report], [sent], ClockParameters())
    with store.transaction():
        upsert_clocks(store.con, [ClockRow(PATIENT, c) for c in stopped])
    rows = store.con.execute("SELECT case_id, category, due_date::VARCHAR, status FROM expedited_reports").fetchall()
    assert rows == [("C-9", "15-day", "2026-03-17", "submitted-late")]
    with store.transaction():
        replace_clocks(store.con, [])
    assert store.con.execute("SELECT count(*) FROM expedited_reports").fetchone() == (0,)
    store.close()
