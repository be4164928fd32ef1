"""Counting a CSV report set: repeated rows count once and names are trimmed, over distinct reports (issue 6)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pvwatch.store.signal_reports import ReportsInvalid
from pvwatch.store.signals import count_pairs, load_reports_csv

pytestmark = pytest.mark.integration


def test_repeated_and_space_padded_rows_count_once_per_report(tmp_path: Path) -> None:
    reports = tmp_path / "reports.csv"
    reports.write_text("report_id,product,event\n"
                       "R1,P1,E1\n"
                       "R1,P1,E1\n"      # the same row again: still one report
                       "R1, P1 ,E2\n"    # padded: the same product P1
                       "R2,P1,E1\n"
                       "R3,P2,E1\n"
                       "R4,P2,E2\n")
    con = duckdb.connect()
    table = count_pairs(con, load_reports_csv(con, reports))
    assert table.reports == 4
    rows = con.execute("SELECT product, event, a, b, c, d, expected FROM signal_pairs ORDER BY ALL").fetchall()
    # Worked by hand from the definitions: a = reports with both, b = the product without the event,
    # c = the event without the product, d = neither, expected = (a+b)(a+c)/N with N = 4 reports.
    assert rows == [
        ("P1", "E1", 2, 0, 1, 1, 2 * 3 / 4),
        ("P1", "E2", 1, 1, 1, 1, 2 * 2 / 4),
        ("P2", "E1", 1, 1, 2, 0, 2 * 3 / 4),
        ("P2", "E2", 1, 1, 1, 1, 2 * 2 / 4),
    ]
    # the arrays handed to the statistics follow signal_pairs' pair_index, whatever DuckDB's order
    by_index = dict(zip(table.pair_index.tolist(), table.counts.a.tolist(), strict=True))
    assert by_index == dict(con.execute("SELECT pair_index, a FROM signal_pairs").fetchall())


def test_a_line_break_inside_quotes_is_read_by_the_fallback_reader_with_the_same_counts(tmp_path: Path) -> None:
    # Arrow's reader refuses a line break inside a quoted value; DuckDB's reader takes the file instead
    reports = tmp_path / "reports.csv"
    reports.write_text('report_id,product,event\nR1,"P1",E1\nR2,"P 1\nbis",E1\nR2,P2,E2\n')
    con = duckdb.connect()
    table = count_pairs(con, load_reports_csv(con, reports))
    assert table.reports == 2
    rows = con.execute("SELECT product, event, a, b, c, d FROM signal_pairs ORDER BY ALL").fetchall()
    assert rows == [("P 1\nbis", "E1", 1, 0, 1, 0), ("P1", "E1", 1, 0, 1, 0), ("P2", "E2", 1, 0, 0, 1)]


def test_empty_cells_are_refused_and_counted(tmp_path: Path) -> None:
    reports = tmp_path / "reports.csv"
    reports.write_text("report_id,product,event\nR1,P1,E1\nR2,  ,E1\n,P2,E2\nR3,P3,\n")
    with pytest.raises(ReportsInvalid, match="3 row\\(s\\) with an empty report_id, product or event"):
        load_reports_csv(duckdb.connect(), reports)
