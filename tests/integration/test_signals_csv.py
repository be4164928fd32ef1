"""Counting a CSV report set: repeated rows count once and names are trimmed, over distinct reports (issue 6)."""

from __future__ import annotations

import csv
import errno
import os
import re
import stat
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pvwatch.domain.signals.criteria import SignalThresholds
from pvwatch.store import signals
from pvwatch.store.signal_reports import ReportsInvalid
from pvwatch.store.signals import (
    OUTPUT_COLUMNS,
    OutputNotWritten,
    compute_signals,
    count_pairs,
    load_reports_csv,
    write_csv,
)
from tests.conftest import TEST_DATA

pytestmark = pytest.mark.integration

CAERS = TEST_DATA / "caers" / "caers-2012.csv"


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


def _copy_lines(con: duckdb.DuckDBPyConnection, path: Path) -> list[bytes]:
    """signal_results as DuckDB's CSV writer spells it (pvwatch's OUT.csv writer until 30 Nov), lines sorted."""
    columns = ", ".join(OUTPUT_COLUMNS)
    con.execute(f"COPY (SELECT {columns} FROM signal_results) TO '{path}' (HEADER, DELIMITER ',')")
    header, *rows = path.read_bytes().split(b"\n")
    return [header, *sorted(rows)]


def _out_lines(path: Path) -> list[bytes]:
    header, *rows = path.read_bytes().split(b"\n")
    return [header, *sorted(rows)]


def test_out_csv_is_byte_for_byte_what_duckdb_wrote_on_caers(tmp_path: Path) -> None:
    # The real CAERS set has names with commas, quotes and '#', and chi2 values below 1e-4 (spelt 1e-05 style)
    con = duckdb.connect()
    computation = compute_signals(con, load_reports_csv(con, CAERS), SignalThresholds())
    write_csv(computation, tmp_path / "out.csv")
    assert _out_lines(tmp_path / "out.csv") == _copy_lines(con, tmp_path / "duckdb.csv")


def test_out_csv_quotes_names_and_leaves_undefined_statistics_empty(tmp_path: Path) -> None:
    reports = tmp_path / "reports.csv"
    reports.write_text('report_id,product,event\nR1,"ASPIRIN, 81 MG",NAUSEA\nR1,"VIT ""D""",#1 RASH\n'
                       "R2,\"ASPIRIN, 81 MG\",NAUSEA\nR3,PLAIN,NAUSEA\n")
    con = duckdb.connect()
    # three reports cannot identify the EBGM prior: its columns stay empty too
    computation = compute_signals(con, load_reports_csv(con, reports), SignalThresholds(), require_fit=False)
    write_csv(computation, tmp_path / "out.csv")
    assert _out_lines(tmp_path / "out.csv") == _copy_lines(con, tmp_path / "duckdb.csv")
    with (tmp_path / "out.csv").open(newline="") as handle:
        rows = {(r["product"], r["event"]): r for r in csv.DictReader(handle)}
    assert set(rows) == {("ASPIRIN, 81 MG", "NAUSEA"), ('VIT "D"', "#1 RASH"), ("PLAIN", "NAUSEA")}
    # ASPIRIN / NAUSEA: a = 2, b = 0, c = 1, d = 0: no ROR, an empty cell (issue 6: "empty where a cell is 0")
    assert rows[("ASPIRIN, 81 MG", "NAUSEA")]["ror"] == ""


@pytest.mark.parametrize("order", ["by report id", "shuffled"])
def test_reports_spanning_read_blocks_count_once_in_either_row_order(tmp_path: Path, order: str) -> None:
    # ~2.5 MB: Arrow reads it in three 1 MB blocks, and with 6-12 rows a report both block boundaries fall inside
    # a report (seed 6), whose id is then in two blocks' dictionaries. Ids R1, R2, ... R10, ... in order take the
    # no-hashing path (equal ids adjacent); shuffled rows take the hashing one.
    rng = np.random.default_rng(6)
    reports = 20_000
    rows_per_report = rng.integers(6, 13, reports)
    report = np.repeat(np.arange(1, reports + 1), rows_per_report)
    product, event = rng.integers(0, 40, report.size), rng.integers(0, 60, report.size)
    lines = [f"R{r},P{p},E{e}\n" for r, p, e in zip(report.tolist(), product.tolist(), event.tolist(), strict=True)]
    if order == "shuffled":
        rng.shuffle(lines)
    path = tmp_path / "reports.csv"
    path.write_text("report_id,product,event\n" + "".join(lines))
    con = duckdb.connect()
    table = count_pairs(con, load_reports_csv(con, path))
    assert table.reports == reports
    counted = con.execute("SELECT product, event, a, a + b, a + c FROM signal_pairs ORDER BY ALL").fetchall()
    # the definition, straight from the file: distinct reports per pair, per product and per event
    expected = con.execute(f"""
        WITH r AS (SELECT * FROM read_csv('{path}', header = true, all_varchar = true)),
        p AS (SELECT product, count(DISTINCT report_id) AS n FROM r GROUP BY ALL),
        e AS (SELECT event, count(DISTINCT report_id) AS n FROM r GROUP BY ALL)
        SELECT product, event, count(DISTINCT report_id), any_value(p.n), any_value(e.n)
        FROM r JOIN p USING (product) JOIN e USING (event) GROUP BY ALL ORDER BY ALL""").fetchall()
    assert counted == expected


def test_a_write_that_fails_midway_leaves_no_truncated_out_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A disk that fills up after a few blocks: the error names the file and the cause, no partial OUT.csv is left
    # to be read as complete, and the previous OUT.csv is left whole (the new one is written beside it, renamed
    # over it only when complete: store/output_files.py)
    con = duckdb.connect()
    computation = compute_signals(con, load_reports_csv(con, CAERS), SignalThresholds())
    out = tmp_path / "out.csv"
    out.write_text("an older OUT.csv\n")
    monkeypatch.setattr(signals, "CSV_BLOCK_ROWS", 64)
    blocks = 0
    format_block = signals._csv_lines

    def disk_fills_up(*args: object) -> list[memoryview]:
        nonlocal blocks
        blocks += 1
        if blocks == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return format_block(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(signals, "_csv_lines", disk_fills_up)
    with pytest.raises(OutputNotWritten, match=re.escape(f"{out}: OUT.csv not written: No space left on device")):
        write_csv(computation, out)
    assert blocks >= 5 and out.read_text() == "an older OUT.csv\n"
    assert sorted(tmp_path.iterdir()) == [out], "no partial file left beside it"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_device_is_a_clear_error_and_the_device_is_left_alone() -> None:
    con = duckdb.connect()
    computation = compute_signals(con, load_reports_csv(con, CAERS), SignalThresholds())
    with pytest.raises(OutputNotWritten, match=re.escape("/dev/full: OUT.csv not written: No space left on device")):
        write_csv(computation, Path("/dev/full"))
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)


def test_an_unwritable_out_path_is_a_clear_error(tmp_path: Path) -> None:
    con = duckdb.connect()
    computation = compute_signals(con, load_reports_csv(con, CAERS), SignalThresholds())
    (tmp_path / "taken").write_text("a file where the directory should be\n")
    with pytest.raises(OutputNotWritten, match=re.escape("OUT.csv not written")):
        write_csv(computation, tmp_path / "taken" / "out.csv")
    assert (tmp_path / "taken").read_text() == "a file where the directory should be\n"
