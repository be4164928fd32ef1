"""Writes of the derived `expedited_reports` table (migration 004): upserts from the live worker, a full
replacement from `pvwatch replay`. Every column is a function of the log, so live and replay rows are equal.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from pvwatch.domain.engine import ClockRow
from pvwatch.domain.expedited import ClockStatus


def _row(row: ClockRow) -> dict[str, object]:
    clock = row.clock
    if clock.submitted_at is None:
        status = ClockStatus.OPEN
    else:
        status = ClockStatus.SUBMITTED if clock.submitted_at < clock.due_at else ClockStatus.SUBMITTED_LATE
    return {
        "case_id": clock.case_id, "category": clock.category.value, "patient": row.patient,
        "day0": clock.day0.isoformat(), "due_date": clock.due_date.isoformat(), "due_at": clock.due_at.isoformat(),
        "rsi_version": clock.rsi_version, "evidence": [str(e) for e in clock.evidence_event_ids],
        "submitted_at": clock.submitted_at.isoformat() if clock.submitted_at else None,
        "submission": str(clock.submission_event_id) if clock.submission_event_id else None,
        "status": status.value,
    }


def upsert_clocks(con: duckdb.DuckDBPyConnection, rows: Iterable[ClockRow]) -> int:
    """Insert or update clocks (the caller holds the batch transaction); returns how many were written."""
    records = [_row(row) for row in rows]
    if not records:
        return 0
    con.execute(
        """INSERT OR REPLACE INTO expedited_reports (case_id, category, patient, day0, due_date, due_at, rsi_version,
               evidence_event_ids, submitted_at, submission_event_id, status)
           SELECT r.case_id, r.category, r.patient, r.day0::DATE, r.due_date::DATE, r.due_at::TIMESTAMPTZ,
               r.rsi_version, r.evidence::UUID[], r.submitted_at::TIMESTAMPTZ, r.submission::UUID, r.status
           FROM (SELECT unnest($rows) AS r)""",
        {"rows": records},
    )
    return len(records)


def replace_clocks(con: duckdb.DuckDBPyConnection, rows: Iterable[ClockRow]) -> int:
    """Make `rows` the whole table (replay)."""
    con.execute("DELETE FROM expedited_reports")
    return upsert_clocks(con, rows)
