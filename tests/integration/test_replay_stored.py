"""`pvwatch replay` of a store whose derived tables are already what the log implies writes nothing (the file is
left as it was); any difference in a column replay writes, in one alert or one expedited clock, is found and
rewritten (store/replay.py StoredTables, store/expedited.py clocks_equal)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pvwatch.store.replay import replay
from tests.integration.test_replay_processes import derived_tables, stored_cohort

pytestmark = pytest.mark.integration

ONE_ALERT = "(SELECT alert_id FROM alerts ORDER BY alert_id LIMIT 1)"
ONE_CASE_ALERT = "(SELECT alert_id FROM alerts WHERE case_id IS NOT NULL ORDER BY alert_id LIMIT 1)"
ONE_CLOCK = "(SELECT case_id FROM expedited_reports GROUP BY case_id HAVING count(*) = 1 ORDER BY case_id LIMIT 1)"
#: One change per column replay writes (and a missing or stray row), each as small as the column allows.
CHANGES = {
    "alert severity": f"UPDATE alerts SET severity = severity || '-' WHERE alert_id = {ONE_ALERT}",
    "alert patient": f"UPDATE alerts SET patient = patient || '0' WHERE alert_id = {ONE_ALERT}",
    "alert case": f"UPDATE alerts SET case_id = case_id || ' ' WHERE alert_id = {ONE_CASE_ALERT}",
    "alert case gone": f"UPDATE alerts SET case_id = NULL WHERE alert_id = {ONE_CASE_ALERT}",
    "alert evidence": f"UPDATE alerts SET evidence_event_ids = list_reverse(evidence_event_ids || [uuid()]) "
                      f"WHERE alert_id = {ONE_ALERT}",
    "alert occurred_at": f"UPDATE alerts SET occurred_at = occurred_at + INTERVAL 1 MICROSECOND "
                         f"WHERE alert_id = {ONE_ALERT}",
    "alert summary": f"UPDATE alerts SET summary = summary || ' ' WHERE alert_id = {ONE_ALERT}",
    "alert details": f"UPDATE alerts SET details = '{{}}' WHERE alert_id = {ONE_ALERT}",
    "alert rule version": f"UPDATE alerts SET rule_version = rule_version + 1 WHERE alert_id = {ONE_ALERT}",
    "alert missing": f"DELETE FROM alerts WHERE alert_id = {ONE_ALERT}",
    "alert stray": f"INSERT INTO alerts SELECT * REPLACE (uuid() AS alert_id) FROM alerts WHERE alert_id = {ONE_ALERT}",
    "clock status": f"UPDATE expedited_reports SET status = 'submitted-late' WHERE case_id = {ONE_CLOCK}",
    "clock patient": f"UPDATE expedited_reports SET patient = patient || '0' WHERE case_id = {ONE_CLOCK}",
    "clock day 0": f"UPDATE expedited_reports SET day0 = day0 - 1 WHERE case_id = {ONE_CLOCK}",
    "clock due date": f"UPDATE expedited_reports SET due_date = due_date + 1 WHERE case_id = {ONE_CLOCK}",
    "clock due_at": f"UPDATE expedited_reports SET due_at = due_at + INTERVAL 1 MICROSECOND "
                    f"WHERE case_id = {ONE_CLOCK}",
    "clock rsi version": f"UPDATE expedited_reports SET rsi_version = NULL WHERE case_id = {ONE_CLOCK}",
    "clock evidence": f"UPDATE expedited_reports SET evidence_event_ids = evidence_event_ids || [uuid()] "
                      f"WHERE case_id = {ONE_CLOCK}",
    "clock submitted": f"UPDATE expedited_reports SET submitted_at = due_at, submission_event_id = uuid() "
                       f"WHERE case_id = {ONE_CLOCK}",
    "clock missing": f"DELETE FROM expedited_reports WHERE case_id = {ONE_CLOCK}",
    "clock stray": f"INSERT INTO expedited_reports SELECT * REPLACE (case_id || '-2' AS case_id) "
                   f"FROM expedited_reports WHERE case_id = {ONE_CLOCK}",
}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Path:
    """A store of the cohort and every planted story, its derived tables rebuilt once."""
    from pvwatch.pseudonym import Pseudonymiser

    path = tmp_path_factory.mktemp("stored") / "store.duckdb"
    stored_cohort(path, Pseudonymiser.from_secret(None, demo_mode=True))
    replay(path)
    alerts, clocks = derived_tables(path)
    assert len(alerts) > 100 and clocks, "the cohort raises alerts and starts expedited clocks"
    return path


@pytest.mark.parametrize("processes", [1, 2])
def test_a_replay_of_tables_already_right_leaves_the_file_as_it_was(replayed, tmp_path, processes):
    path = tmp_path / "store.duckdb"
    path.write_bytes(replayed.read_bytes())
    report = replay(path, processes=processes)
    assert (report.alerts_added, report.alerts_removed) == (0, 0)
    assert path.read_bytes() == replayed.read_bytes()
    assert not Path(f"{path}.wal").exists()


@pytest.mark.parametrize(("change", "processes"),
                         [(change, 2) for change in CHANGES] + [("alert details", 1), ("clock due_at", 1)])
def test_a_replay_rewrites_any_difference_in_a_column_it_writes(replayed, tmp_path, change, processes):
    path = tmp_path / "store.duckdb"
    path.write_bytes(replayed.read_bytes())
    con = duckdb.connect(str(path))
    changed = con.execute(CHANGES[change]).fetchall()
    con.close()
    assert changed == [(1,)], "the change touched exactly one row"
    assert derived_tables(path) != derived_tables(replayed)
    replay(path, processes=processes)
    assert derived_tables(path) == derived_tables(replayed)
