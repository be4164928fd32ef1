"""Replay's bulk write of `alerts` (store/replay_tables.py) stores exactly the rows the live worker's write stores,
whatever the session's time zone: the columns carry times as microseconds since the epoch and evidence ids as
comma-separated text, converted in SQL; the comparison with the store (StoredTables) reads them back the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest

from pvwatch.events.alert import SafetyAlert, Severity, alert_id_for
from pvwatch.store.eventstore import EventStore
from pvwatch.store.replay_tables import Derived, StoredTables, alert_columns, replace_alerts

pytestmark = pytest.mark.integration

INDIA = timezone(timedelta(hours=5, minutes=30))
BRASILIA = timezone(timedelta(hours=-3))
EVENTS = [UUID(int=n * 0x1F2E3D4C5B6A79881726354453627180) for n in range(1, 4)]
#: Events in other offsets than UTC, microseconds, several evidence ids, no case id, non-ASCII text.
ALERTS = [
    SafetyAlert(alert_id=alert_id_for("lot-cluster", 2, "lot|L-1|count|x"), rule_id="lot-cluster", rule_version=2,
                severity=Severity.CRITICAL, patient="pt-440f4ef5ca92cca5465a", case_id="CASE-1",
                evidence_event_ids=tuple(EVENTS), occurred_at=datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=INDIA),
                raised_at=datetime(2026, 11, 30, 9, 0, 0, 1, tzinfo=BRASILIA), summary="3 adverse events — lot L-1",
                details={"cases": ["CASE-1", "CASE-2"], "events": 3, "ratio": 0.1, "ok": True, "none": None}),
    SafetyAlert(alert_id=alert_id_for("undocumented-benefit", 1, "claim|x"), rule_id="undocumented-benefit",
                rule_version=1, severity=Severity.INFO, patient="pt-440f4ef5ca92cca5465a",
                evidence_event_ids=(EVENTS[0],), occurred_at=datetime(2026, 10, 25, 0, 59, 59, 999999, tzinfo=UTC),
                raised_at=datetime(2026, 11, 30, 12, tzinfo=UTC), summary="parent reports 'Müdigkeit' improved",
                details={}),
]
ROWS = "SELECT * FROM alerts ORDER BY alert_id"


def rows(path: Path) -> list[tuple[object, ...]]:
    store = EventStore(path)
    try:
        return store.con.execute(ROWS).fetchall()
    finally:
        store.close()


def rebuilt_as_live(tmp_path: Path, alerts: list[SafetyAlert], zone: str) -> list[tuple]:
    """The rows a rebuild (replace_alerts into the emptied table, session TimeZone `zone`) stores for `alerts`,
    checked equal to the live path's rows and recognised by StoredTables as the derivation."""
    live = EventStore(tmp_path / "live.duckdb")
    with live.transaction():
        live.insert_alerts(alerts)
    live.close()
    rebuilt = EventStore(tmp_path / "replayed.duckdb")
    rebuilt.con.execute(f"SET TimeZone = '{zone}'")
    with rebuilt.transaction():
        assert replace_alerts(rebuilt.con, alert_columns(alerts)) == (len(alerts), 0)  # a plain insert
    assert StoredTables.read(rebuilt.con).hold(Derived(0, alert_columns(alerts), []))
    rebuilt.close()
    stored = rows(tmp_path / "replayed.duckdb")
    assert stored == rows(tmp_path / "live.duckdb")
    return stored


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/Sao_Paulo"])
def test_a_rebuild_stores_the_rows_the_live_path_stores_in_any_session_time_zone(tmp_path, zone):
    assert len(rebuilt_as_live(tmp_path, ALERTS, zone)) == 2


def test_replay_over_stored_alerts_revises_and_keeps_raised_at(tmp_path):
    """The merge path (the table holds alerts): a changed derivation is revised in place, raised_at kept."""
    store = EventStore(tmp_path / "store.duckdb")
    store.con.execute("SET TimeZone = 'Asia/Kolkata'")
    older = ALERTS[0].model_copy(update={"summary": "2 adverse events", "raised_at": datetime(2026, 11, 1, tzinfo=UTC)})
    with store.transaction():
        store.insert_alerts([older])
    with store.transaction():
        assert replace_alerts(store.con, alert_columns(ALERTS)) == (1, 0)
    # what replay compares is now the derivation (raised_at, kept, is not compared)
    assert StoredTables.read(store.con).hold(Derived(0, alert_columns(ALERTS), []))
    stored = {row[0]: row for row in store.con.execute(
        "SELECT alert_id, summary, raised_at, occurred_at, evidence_event_ids FROM alerts").fetchall()}
    store.close()
    assert stored[ALERTS[0].alert_id][1:] == (ALERTS[0].summary, older.raised_at, ALERTS[0].occurred_at, EVENTS)
    assert stored[ALERTS[1].alert_id][3:] == (ALERTS[1].occurred_at, [EVENTS[0]])


#: Instants where an integer of microseconds since the epoch is easy to get wrong: the last microsecond before the
#: epoch (floor, not truncation, of a negative count), a date before 1893 (Berlin on local mean time, +00:53:28),
#: the instants Berlin's clocks go forward and back (2026-03-29 01:00 UTC, 2026-10-25 01:00 UTC), and the last
#: microsecond a pydantic datetime holds (a float of seconds would round it).
EDGE_TIMES = [
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1880, 6, 1, 12, 0, 0, 1, tzinfo=BRASILIA),
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/Sao_Paulo"])
def test_a_rebuild_stores_times_before_1970_at_clock_changes_and_far_ahead_as_the_live_path(tmp_path, zone):
    """Each alert one evidence id (one comma-free text), its occurred_at one of EDGE_TIMES, raised_at another."""
    alerts = [ALERTS[1].model_copy(update={
        "alert_id": alert_id_for("undocumented-benefit", 1, f"claim|edge-{n}"), "evidence_event_ids": (EVENTS[n % 3],),
        "occurred_at": at, "raised_at": EDGE_TIMES[-1 - n]}) for n, at in enumerate(EDGE_TIMES)]
    stored = rebuilt_as_live(tmp_path, alerts, zone)
    assert {row[0]: row[7] for row in stored} == {alert.alert_id: alert.occurred_at for alert in alerts}
