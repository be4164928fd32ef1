"""The report sets `pvwatch signals` counts: the relation `signal_rows(report_id, product, event[, strata])`.

Two sources give it: a CSV of report-product-event rows (a repeated row stays; it counts once because the
counting is over distinct reports), or the adverse events in the event log. This module needs only DuckDB, so
`pvwatch signals` starts reading the CSV while the statistics (numpy, scipy) are still being imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from pvwatch.errors import PvwatchError

REQUIRED_COLUMNS = ("report_id", "product", "event")
#: Comma-separated with a header, every column text; a malformed line is an error, never skipped.
_CSV_OPTIONS = "header = true, delim = ',', quote = '\"', all_varchar = true, strict_mode = true"
#: Stratum columns `--stratify` accepts, and how the event store derives them.
STRATUM_COLUMNS = ("age_group", "sex")


class ReportsInvalid(PvwatchError):
    """The report set cannot be counted: missing file or column, or no report at all."""


def load_reports_csv(con: duckdb.DuckDBPyConnection, path: Path, stratify: Sequence[str] = ()) -> None:
    """Create the temporary relation `signal_rows` from a CSV with a header naming at least report_id, product
    and event, values trimmed; repeated (report, product, event) rows are kept, and count once because pairs and
    margins count distinct reports (count_pairs). Empty product or event cells are refused."""
    if not path.is_file():
        raise ReportsInvalid(f"{path}: no such file")
    try:
        header = [row[0] for row in con.execute(
            f"DESCRIBE SELECT * FROM read_csv(?, {_CSV_OPTIONS})", [str(path)]).fetchall()]
    except duckdb.Error as error:
        raise ReportsInvalid(f"{path}: cannot read as CSV: {_csv_problem(error)}") from None
    wanted = (*REQUIRED_COLUMNS, *stratify)
    missing = [name for name in wanted if name not in header]
    if missing:
        raise ReportsInvalid(f"{path}: header lacks column(s) {', '.join(missing)} (it has {', '.join(header)})")
    strata = "".join(f', coalesce(trim("{name}"), \'\') AS "{name}"' for name in stratify)
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE signal_rows AS SELECT trim(report_id) AS report_id, "
            f"trim(product) AS product, trim(event) AS event{strata} "
            f"FROM read_csv(?, {_CSV_OPTIONS})", [str(path)])
    except duckdb.Error as error:  # e.g. a malformed line far into the file: name it, do not count around it
        raise ReportsInvalid(f"{path}: {_csv_problem(error)}") from None
    _check_rows(con, str(path))


def _csv_problem(error: duckdb.Error) -> str:
    """DuckDB's line number and reason, without its echo of the offending line or its option dump."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines[1:] if not line.startswith(("Original Line", "Possible Solution", "file ="))
               and " = " not in line]
    return "; ".join(lines[:1] + reasons[:1])


def load_reports_store(con: duckdb.DuckDBPyConnection, stratify: Sequence[str] = ()) -> None:
    """Create `signal_rows` from the adverse events in the event log: one report per case (its latest version,
    so a follow-up replaces its initial report instead of counting twice), its suspect and interacting
    products (concomitant ones are not suspected of the event) and its reported term.

    Strata come from the patient's latest enrolment/update (the `patients` view): sex, and the age group at the
    case's awareness date in the ICH E11 paediatric categories (0-23 months, 2-11 years, 12-17 years; 18+).
    """
    strata, join = "", ""
    if stratify:
        months = "date_diff('month', strptime(pt.birth_year_month || '-01', '%Y-%m-%d')::DATE, l.awareness)"
        strata = (f", coalesce(pt.sex, 'unknown') AS sex, CASE WHEN {months} IS NULL THEN 'unknown' "
                  f"WHEN {months} < 24 THEN '0-23 months' WHEN {months} < 144 THEN '2-11 years' "
                  f"WHEN {months} < 216 THEN '12-17 years' ELSE '18+ years' END AS age_group")
        join = "LEFT JOIN patients pt ON pt.patient = l.patient"
    chosen = "".join(f', "{name}"' for name in stratify)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE signal_rows AS
        WITH latest AS (
            SELECT payload->>'case_id' AS report_id, patient, payload,
                   TRY_CAST(payload->>'awareness_date' AS DATE) AS awareness
            FROM event_log WHERE type = 'adverse-event'
            QUALIFY row_number() OVER (PARTITION BY payload->>'case_id' ORDER BY recorded_at DESC, log_seq DESC) = 1
        ), products AS (
            SELECT l.report_id, trim(l.payload->>'term') AS event{strata},
                   unnest(from_json(l.payload->'products', '[{{"name": "VARCHAR", "role": "VARCHAR"}}]')) AS product
            FROM latest l {join}
        )
        SELECT DISTINCT report_id, trim(product.name) AS product, event{chosen}
        FROM products WHERE coalesce(product.role, 'suspect') IN ('suspect', 'interacting')
    """)
    _check_rows(con, "the event store")


def _check_rows(con: duckdb.DuckDBPyConnection, where: str) -> None:
    empty = con.execute("SELECT count(*) FROM signal_rows WHERE report_id IS NULL OR report_id = '' "
                        "OR product IS NULL OR product = '' OR event IS NULL OR event = ''").fetchone()
    if empty and empty[0]:
        raise ReportsInvalid(f"{where}: {empty[0]} row(s) with an empty report_id, product or event")
    total = con.execute("SELECT count(*) FROM signal_rows").fetchone()
    if not total or not total[0]:
        raise ReportsInvalid(f"{where}: no report-product-event rows")
