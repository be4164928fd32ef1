"""What the dashboard reads, always from the published read-only snapshot (never the worker's store).

Each call opens the snapshot file read-only and closes it: the worker renames a fresh snapshot over it every few
seconds and a new connection sees the newest one. Tables and views that another part of pvwatch has not created
yet (an older store, a feature not deployed) make their page say "not available" instead of failing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from pvwatch.errors import PvwatchError
from pvwatch.store.eventstore import connect, connect_sealed


class SnapshotUnavailable(PvwatchError):
    """No snapshot has been published yet at the configured path."""


@dataclass(frozen=True)
class AlertFilters:
    rule: str | None = None
    severity: str | None = None
    status: str | None = None
    site: str | None = None
    product: str | None = None
    lot: str | None = None
    patient: str | None = None
    case_id: str | None = None

    def active(self) -> dict[str, str]:
        return {key: value for key, value in self.__dict__.items() if value}


@dataclass
class Table:
    """A query result ready to render: column names and JSON-friendly rows."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    seconds: float = 0.0


@dataclass
class Snapshot:
    """Staleness of the snapshot the page was built from."""

    taken_at: datetime | None
    event_count: int | None
    relations: set[str] = field(default_factory=set)

    @property
    def age_s(self) -> float | None:
        return None if self.taken_at is None else (datetime.now(UTC) - self.taken_at).total_seconds()


def plain(value: Any) -> Any:
    """A DuckDB value as JSON-friendly data (timestamps as ISO strings, JSON columns parsed)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


class ReadModel:
    def __init__(self, snapshot_path: Path) -> None:
        self.snapshot_path = snapshot_path

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.snapshot_path.exists():
            raise SnapshotUnavailable(
                f"no snapshot at {self.snapshot_path} yet: the worker publishes one every few seconds "
                "(PVWATCH_SNAPSHOT_PATH, PVWATCH_SNAPSHOT_INTERVAL_S)"
            )
        con = connect(self.snapshot_path, read_only=True)
        try:
            yield con
        finally:
            con.close()

    @staticmethod
    def relations(con: duckdb.DuckDBPyConnection) -> set[str]:
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal UNION "
            "SELECT view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
        return {row[0] for row in rows}

    def snapshot(self, con: duckdb.DuckDBPyConnection) -> Snapshot:
        relations = self.relations(con)
        if "snapshot_meta" not in relations:
            return Snapshot(None, None, relations)
        row = con.execute("SELECT taken_at, event_count FROM snapshot_meta").fetchone()
        return Snapshot(row[0], int(row[1]), relations) if row else Snapshot(None, None, relations)

    # --- alerts -------------------------------------------------------------------------------------------

    def alerts(self, con: duckdb.DuckDBPyConnection, filters: AlertFilters, limit: int = 500) -> list[dict[str, Any]]:
        """The alert queue, newest first, with site, products and lots taken from the alert's latest evidence."""
        relations = self.relations(con)
        if "alerts" not in relations:
            return []
        has_status = "alert_status" in relations
        status = "coalesce(s.status, 'open')" if has_status else "'open'"
        assignee = "s.assignee" if has_status else "NULL"
        last_action = "s.last_action_at" if has_status else "NULL"
        status_join = "LEFT JOIN alert_status s ON s.alert_id = a.alert_id" if has_status else ""
        # site: the patient's enrolling site (patients view); products and lots: named by the alert's details
        # (infusion-temporal, lot-cluster) or by its evidence (adverse-event suspect products and their lot_id,
        # msc-infusion product_name and lot_id, treatment drug)
        site = "p.site" if "patients" in relations else "NULL"
        patients_join = "LEFT JOIN patients p ON p.patient = a.patient" if "patients" in relations else ""
        sql = f"""
            WITH evidence AS (
                SELECT a.alert_id,
                       flatten(list(coalesce(json_extract_string(e.payload, '$.products[*].name'), [])
                                    || [e.payload->>'product_name', e.payload->>'drug'])) AS products,
                       flatten(list(coalesce(json_extract_string(e.payload, '$.products[*].lot_id'), [])
                                    || [e.payload->>'lot_id'])) AS lots,
                       list(e.payload->>'clinic') AS clinics
                FROM alerts a, unnest(a.evidence_event_ids) AS u(event_id)
                JOIN event_log e ON e.event_id = u.event_id
                GROUP BY a.alert_id
            ),
            queue AS (
                SELECT a.alert_id::VARCHAR AS alert_id, a.rule_id, a.severity, a.patient, a.case_id,
                       a.occurred_at, a.raised_at, a.summary, {status} AS status, {assignee} AS assignee,
                       {last_action} AS last_action_at, {site} AS site,
                       list_sort(list_distinct(list_filter(coalesce(ev.products, [])
                           || [a.details->>'product', a.details->>'drug'], lambda x: x IS NOT NULL))) AS products,
                       list_sort(list_distinct(list_filter(coalesce(ev.lots, []) || [a.details->>'lot'],
                           lambda x: x IS NOT NULL))) AS lots,
                       list_sort(list_distinct(list_filter(coalesce(ev.clinics, []) || [a.details->>'clinic'],
                           lambda x: x IS NOT NULL))) AS clinics,
                       a.details::VARCHAR AS details,
                       list_transform(a.evidence_event_ids, lambda x: x::VARCHAR) AS evidence
                FROM alerts a
                {status_join}
                {patients_join}
                LEFT JOIN evidence ev ON ev.alert_id = a.alert_id
            )
            SELECT * FROM queue
            WHERE ($rule IS NULL OR rule_id = $rule)
              AND ($severity IS NULL OR severity = $severity)
              AND ($status IS NULL OR status = $status)
              AND ($site IS NULL OR site = $site)
              AND ($product IS NULL OR list_contains(products, $product))
              AND ($lot IS NULL OR list_contains(lots, $lot))
              AND ($patient IS NULL OR patient = $patient)
              AND ($case_id IS NULL OR case_id = $case_id)
            -- newest first; alerts raised together (one batch): critical first, then latest clinical time
            ORDER BY raised_at DESC, CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                     occurred_at DESC, alert_id
            LIMIT {int(limit)}
        """
        cursor = con.execute(sql, {key: value or None for key, value in filters.__dict__.items()})
        columns = [d[0] for d in cursor.description or []]
        rows = [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in cursor.fetchall()]
        for row in rows:
            row["details"] = json.loads(row["details"]) if row["details"] else {}
        return rows

    def alert(self, con: duckdb.DuckDBPyConnection, alert_id: str) -> dict[str, Any] | None:
        row = con.execute("SELECT alert_id::VARCHAR, patient, case_id, rule_id FROM alerts WHERE alert_id::VARCHAR = ?",
                          [alert_id]).fetchone()
        return None if row is None else {"alert_id": row[0], "patient": row[1], "case_id": row[2], "rule_id": row[3]}

    def filter_choices(self, con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
        """Values offered in the queue's filter menus."""
        queue = self.alerts(con, AlertFilters(), limit=5000)
        choices: dict[str, set[str]] = {"rule": set(), "severity": set(), "status": set(), "site": set(),
                                        "product": set(), "lot": set()}
        for alert in queue:
            choices["rule"].add(alert["rule_id"])
            choices["severity"].add(alert["severity"])
            choices["status"].add(alert["status"])
            if alert["site"]:
                choices["site"].add(alert["site"])
            choices["product"].update(alert["products"] or [])
            choices["lot"].update(alert["lots"] or [])
        choices["status"] |= {"open", "acknowledged", "assigned", "closed"}
        return {key: sorted(values) for key, values in choices.items()}

    def withdrawn_alerts(self, con: duckdb.DuckDBPyConnection, *, rule: str | None = None,
                         patient: str | None = None, case_id: str | None = None,
                         alert_id: str | None = None, limit: int = 500) -> list[dict[str, Any]] | None:
        """Alerts a later event made untrue (alert_withdrawals, docs/rules.md "Late and out-of-order events"),
        newest withdrawal first: the alert as it was, why and by which event it was withdrawn, the officers' status
        of it when it went (the actions on the life it ended: if it was raised again, those after the previous
        withdrawal and not before that raise, the message's raised_at; derived as alert_status derives it) and
        whether the rules have raised it again since. None when the store has no alert_withdrawals table (before
        migration 008, which comes after the event log, alerts and alert_actions it is joined with here)."""
        if "alert_withdrawals" not in self.relations(con):
            return None
        cursor = con.execute(f"""
            WITH lives AS (
                SELECT withdrawal_id, alert_id, withdrawn_at, CAST(message->>'raised_at' AS TIMESTAMPTZ) AS raised_at,
                       lag(withdrawn_at) OVER (PARTITION BY alert_id ORDER BY withdrawn_at, withdrawal_id)
                           AS previous_withdrawn_at
                FROM alert_withdrawals
            ),
            acted AS (
                SELECT w.withdrawal_id,
                       arg_max(x.action, (x.acted_at, x.log_seq)) AS action,
                       arg_max(x.actor, (x.acted_at, x.log_seq)) AS actor,
                       arg_max(x.assignee, (x.acted_at, x.log_seq)) FILTER (WHERE x.action = 'assign') AS assignee,
                       max(x.acted_at) FILTER (WHERE x.action = 'assign') AS assigned_at,
                       max(x.acted_at) FILTER (WHERE x.action IN ('close', 'reopen')) AS closed_or_reopened_at
                FROM lives w
                JOIN alert_actions x ON x.alert_id = w.alert_id AND x.acted_at <= w.withdrawn_at
                     AND (w.previous_withdrawn_at IS NULL
                          OR (x.acted_at > w.previous_withdrawn_at AND x.acted_at >= w.raised_at))
                GROUP BY w.withdrawal_id
            )
            SELECT w.alert_id::VARCHAR AS alert_id, w.rule_id, w.message->>'severity' AS severity, w.patient,
                   w.message->>'case_id' AS case_id, w.message->>'summary' AS summary,
                   CAST(w.message->>'occurred_at' AS TIMESTAMPTZ) AS occurred_at,
                   CAST(w.message->>'raised_at' AS TIMESTAMPTZ) AS raised_at,
                   w.withdrawn_at, w.reason, w.withdrawn_by_event_id::VARCHAR AS withdrawn_by_event_id,
                   e.type AS withdrawn_by_event_type, e.occurred_at AS withdrawn_by_event_occurred_at,
                   e.payload->>'case_id' AS withdrawn_by_case_id,
                   CASE x.action WHEN 'acknowledge' THEN 'acknowledged' WHEN 'assign' THEN 'assigned'
                                 WHEN 'close' THEN 'closed' ELSE 'open' END AS status_when_withdrawn,
                   CASE WHEN x.assigned_at IS NOT NULL
                             AND (x.closed_or_reopened_at IS NULL OR x.assigned_at > x.closed_or_reopened_at)
                        THEN x.assignee END AS assignee_when_withdrawn,
                   x.actor AS last_actor,
                   a.alert_id IS NOT NULL AS raised_again
            FROM alert_withdrawals w
            LEFT JOIN event_log e ON e.event_id = w.withdrawn_by_event_id
            LEFT JOIN acted x ON x.withdrawal_id = w.withdrawal_id
            LEFT JOIN alerts a ON a.alert_id = w.alert_id
            WHERE ($rule IS NULL OR w.rule_id = $rule)
              AND ($patient IS NULL OR w.patient = $patient)
              AND ($case_id IS NULL OR w.message->>'case_id' = $case_id)
              AND ($alert_id IS NULL OR w.alert_id::VARCHAR = $alert_id)
            ORDER BY w.withdrawn_at DESC, w.alert_id
            LIMIT {int(limit)}
        """, {"rule": rule, "patient": patient, "case_id": case_id, "alert_id": alert_id})
        return self._rows(cursor)

    def withdrawn_count(self, con: duckdb.DuckDBPyConnection) -> int | None:
        """How many withdrawals the store holds (the queue shows it beside its link to the withdrawn view)."""
        if "alert_withdrawals" not in self.relations(con):
            return None
        row = con.execute("SELECT count(*) FROM alert_withdrawals").fetchone()
        return int(row[0]) if row else 0

    def actions_landed(self, con: duckdb.DuckDBPyConnection, event_ids: Sequence[str]) -> set[str]:
        """Which of these alert-action events the snapshot already holds (the rest are still on their way)."""
        if not event_ids or "event_log" not in self.relations(con):
            return set()
        rows = con.execute("SELECT event_id::VARCHAR FROM event_log WHERE event_id::VARCHAR IN (SELECT unnest(?))",
                           [list(event_ids)]).fetchall()
        return {row[0] for row in rows}

    def alert_history(self, con: duckdb.DuckDBPyConnection, alert_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not alert_ids or "alert_actions" not in self.relations(con):
            return []
        cursor = con.execute(
            "SELECT alert_id::VARCHAR AS alert_id, action, actor, assignee, reason, acted_at FROM alert_actions "
            "WHERE alert_id::VARCHAR IN (SELECT unnest(?)) ORDER BY acted_at, log_seq", [list(alert_ids)])
        columns = [d[0] for d in cursor.description or []]
        return [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in cursor.fetchall()]

    # --- patient records -------------------------------------------------------------------------------------

    def patient_events(self, con: duckdb.DuckDBPyConnection, patient: str) -> list[dict[str, Any]]:
        """Every stored event of one patient in clinical time order: type, times, source and the full payload."""
        rows = con.execute(
            "SELECT event_id::VARCHAR, type, occurred_at, recorded_at, source, payload FROM event_log "
            "WHERE patient = ? AND type <> 'alert-action' ORDER BY occurred_at, log_seq", [patient]).fetchall()
        return [{"event_id": r[0], "type": r[1], "occurred_at": r[2], "recorded_at": r[3], "source": r[4],
                 "payload": json.loads(r[5])} for r in rows]

    def case_versions(self, con: duckdb.DuckDBPyConnection, case_id: str) -> list[dict[str, Any]]:
        """Initial report and follow-ups of one case, in the order they were recorded."""
        rows = con.execute(
            "SELECT event_id::VARCHAR, patient, recorded_at, source, payload FROM event_log "
            "WHERE type = 'adverse-event' AND payload->>'case_id' = ? ORDER BY recorded_at, log_seq",
            [case_id]).fetchall()
        return [{"event_id": r[0], "patient": r[1], "recorded_at": r[2], "source": r[3], "payload": json.loads(r[4])}
                for r in rows]

    def patient_summary(self, con: duckdb.DuckDBPyConnection, patient: str) -> dict[str, Any] | None:
        """The patients view row (birth year-month, sex, conditions, site), None before enrolment is stored."""
        if "patients" not in self.relations(con):
            return None
        return self._one(con, "SELECT patient, birth_year_month, sex, conditions, site, country, weight_kg "
                              "FROM patients WHERE patient = ?", [patient])

    def clocks(self, con: duckdb.DuckDBPyConnection, case_id: str | None = None,
               open_only: bool = False) -> list[dict[str, Any]] | None:
        """Expedited-report clocks as of now (expedited_report_status: status_now open, due-soon, overdue,
        submitted, submitted-late), nearest deadline first; None when the store has no clocks table."""
        if "expedited_report_status" not in self.relations(con):
            return None
        cursor = con.execute(
            "SELECT case_id, category, patient, day0, due_date, due_at, rsi_version, submitted_at, status, "
            "status_now, seconds_until_due FROM expedited_report_status "
            "WHERE ($case IS NULL OR case_id = $case) AND (NOT $open OR submitted_at IS NULL) "
            "ORDER BY due_at, case_id, category", {"case": case_id, "open": open_only})
        return self._rows(cursor)

    # --- MSC lots and clinics ----------------------------------------------------------------------------------

    #: an adverse event counts for an infusion when its onset is within this many days after it (the window of
    #: the documented analysis "AE rate per 100 infusions by lot", docs/analysts.md)
    EXPOSURE_WINDOW_DAYS = 14

    def exposure(self, con: duckdb.DuckDBPyConnection, scope: str, value: str | None = None) -> list[dict[str, Any]]:
        """Per lot (scope "lot") or clinic ("clinic"): MSC infusions, children, incompletely documented infusions,
        adverse-event cases (latest version) with onset within EXPOSURE_WINDOW_DAYS after one of its infusions,
        the serious ones (ICH E2A), and the rate per 100 infusions."""
        column = {"lot": "lot_id", "clinic": "clinic"}[scope]
        if "infusions" not in self.relations(con):
            return []
        params = {"value": value, "days": self.EXPOSURE_WINDOW_DAYS}
        given = self._rows(con.execute(
            f"SELECT {column} AS key, count(*) AS infusions, count(DISTINCT patient) AS children, "
            "count(*) FILTER (WHERE incompletely_documented) AS incompletely_documented, "
            "list_sort(list_distinct(list(product_name) FILTER (WHERE product_name IS NOT NULL))) AS products, "
            f"list_sort(list_distinct(list({'clinic' if scope == 'lot' else 'lot_id'}) "
            f"FILTER (WHERE {'clinic' if scope == 'lot' else 'lot_id'} IS NOT NULL))) AS other "
            f"FROM infusions WHERE $value IS NULL OR {column} = $value GROUP BY ALL "
            "ORDER BY infusions DESC, key NULLS LAST", {"value": value}))
        cases = {row["key"]: row for row in self._rows(con.execute(
            f"SELECT i.{column} AS key, count(DISTINCT ae.case_id) AS adverse_events, "
            "count(DISTINCT ae.case_id) FILTER (WHERE ae.is_serious) AS serious "
            "FROM infusions i JOIN adverse_events ae ON ae.patient = i.patient AND ae.is_latest "
            "AND ae.onset_date BETWEEN CAST(i.occurred_at AS DATE) AND CAST(i.occurred_at AS DATE) + $days "
            f"WHERE $value IS NULL OR i.{column} = $value GROUP BY ALL", params))}
        for row in given:
            found = cases.get(row["key"], {})
            row["adverse_events"] = found.get("adverse_events", 0)
            row["serious"] = found.get("serious", 0)
            row["ae_per_100_infusions"] = round(100.0 * row["adverse_events"] / row["infusions"], 1)
        return sorted(given, key=lambda r: (-r["ae_per_100_infusions"], -r["infusions"], str(r["key"])))

    def infusions_of(self, con: duckdb.DuckDBPyConnection, scope: str, value: str) -> list[dict[str, Any]]:
        column = {"lot": "lot_id", "clinic": "clinic"}[scope]
        return self._rows(con.execute(
            "SELECT event_id::VARCHAR AS event_id, patient, occurred_at, product_name, clinic, lot_id, cells_per_kg, "
            f"total_cells, infusion_number, incompletely_documented FROM infusions WHERE {column} = ? "
            "ORDER BY occurred_at", [value]))

    def cases_after(self, con: duckdb.DuckDBPyConnection, scope: str, value: str) -> list[dict[str, Any]]:
        """The adverse-event cases counted for this lot or clinic by `exposure`, with days from the infusion."""
        column = {"lot": "lot_id", "clinic": "clinic"}[scope]
        return self._rows(con.execute(
            "SELECT ae.case_id, ae.patient, ae.term, ae.onset_date, ae.is_serious, ae.ctcae_grade, "
            "min(ae.onset_date - CAST(i.occurred_at AS DATE)) AS days_after_infusion "
            "FROM infusions i JOIN adverse_events ae ON ae.patient = i.patient AND ae.is_latest "
            "AND ae.onset_date BETWEEN CAST(i.occurred_at AS DATE) AND CAST(i.occurred_at AS DATE) + $days "
            f"WHERE i.{column} = $value GROUP BY ALL ORDER BY ae.onset_date",
            {"value": value, "days": self.EXPOSURE_WINDOW_DAYS}))

    @staticmethod
    def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
        columns = [d[0] for d in cursor.description or []]
        return [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in cursor.fetchall()]

    def _one(self, con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        rows = self._rows(con.execute(sql, list(params)))
        return rows[0] if rows else None

    # --- optional tables: expedited reports, signals ------------------------------------------------------------

    def table(self, con: duckdb.DuckDBPyConnection, name: str, order_by: str | None = None,
              where: str = "", params: Sequence[Any] = (), limit: int = 1000) -> Table | None:
        """All columns of a table or view that may not exist yet (None when it does not)."""
        if name not in self.relations(con):
            return None
        order = f" ORDER BY {order_by}" if order_by else ""
        cursor = con.execute(f'SELECT * FROM "{name}" {where}{order} LIMIT {int(limit)}', list(params))
        columns = [d[0] for d in cursor.description or []]
        return Table(columns, [[plain(v) for v in row] for row in cursor.fetchall()])

    @staticmethod
    def columns(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
        return [row[0] for row in con.execute(f'DESCRIBE "{name}"').fetchall()]


# --- the analyst's SQL page ----------------------------------------------------------------------------------


class QueryRejected(PvwatchError):
    """The SQL was refused before it ran (not a single read-only SELECT) or was stopped by the time limit."""


def run_readonly_query(snapshot_path: Path, sql: str, *, max_rows: int, timeout_s: float) -> Table:
    """Run one SELECT on the snapshot with a row limit and a time limit (con.interrupt() from a timer).

    The snapshot is opened read-only and external access is switched off and locked before the query runs, so a
    query can neither change the snapshot nor read or write other files (read_csv, COPY ... TO, ATTACH).
    """
    if not snapshot_path.exists():
        raise SnapshotUnavailable(f"no snapshot at {snapshot_path} yet")
    con = connect_sealed(snapshot_path)
    try:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as error:
            raise QueryRejected(str(error).splitlines()[0]) from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise QueryRejected("only one SELECT statement (WITH ... SELECT included) may run here")
        timer = threading.Timer(timeout_s, con.interrupt)
        started = datetime.now(UTC)
        timer.start()
        try:
            cursor = con.execute(sql)
            rows = cursor.fetchmany(max_rows + 1)
        except duckdb.InterruptException:
            raise QueryRejected(f"the query ran longer than {timeout_s:g} s and was stopped") from None
        except duckdb.Error as error:
            if "interrupt" in str(error).lower():
                raise QueryRejected(f"the query ran longer than {timeout_s:g} s and was stopped") from None
            raise QueryRejected(str(error).splitlines()[0]) from None
        finally:
            timer.cancel()
        columns = [d[0] for d in cursor.description or []]
        seconds = (datetime.now(UTC) - started).total_seconds()
        return Table(columns, [[plain(v) for v in row] for row in rows[:max_rows]], len(rows) > max_rows, seconds)
    finally:
        con.close()
