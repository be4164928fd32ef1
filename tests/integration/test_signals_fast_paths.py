"""Properties of `pvwatch signals`' fast paths (issue 6): whatever the names, numbers and order of a report set,
OUT.csv is the text DuckDB's COPY writes, and report ids are coded to one code per distinct trimmed id.

The writer formats OUT.csv itself (Arrow and orjson, store/signals.py) and the reader codes report ids that come in
order without hashing (store/signal_reports.py); both are checked here against the plain definition on inputs
hypothesis draws, beyond the examples of test_signals_csv.py.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pvwatch.domain.signals.criteria import SignalThresholds
from pvwatch.store.signal_reports import _codes
from pvwatch.store.signals import OUTPUT_COLUMNS, SignalComputation, compute_signals, load_reports_csv, write_csv

pytestmark = pytest.mark.integration

_STATISTICS = OUTPUT_COLUMNS[6:]


@pytest.fixture(scope="module")
def computation(tmp_path_factory: pytest.TempPathFactory) -> SignalComputation:
    """A real computation whose `results` each example replaces (write_csv reads nothing else)."""
    reports = tmp_path_factory.mktemp("signals") / "reports.csv"
    reports.write_text("report_id,product,event\nR1,P1,E1\nR2,P1,E2\nR3,P2,E1\n")
    con = duckdb.connect()
    return compute_signals(con, load_reports_csv(con, reports), SignalThresholds(), require_fit=False)


def _results(products: list[str], events: list[str], rows: list[list[float]]) -> pa.Table:
    """A results table as compute_signals builds it: names dictionary-encoded, NaN (undefined) as null."""
    size = len(rows)
    columns: dict[str, pa.Array] = {
        "product": pa.DictionaryArray.from_arrays(pa.array(np.arange(size) % len(products), pa.int32()),
                                                  pa.array(products, pa.string())),
        "event": pa.DictionaryArray.from_arrays(pa.array(np.arange(size)[::-1] % len(events), pa.int32()),
                                                pa.array(events, pa.string())),
    }
    for cell in ("a", "b", "c", "d"):
        columns[cell] = pa.array(np.arange(size, dtype=np.int64) * 7919)
    for j, name in enumerate(_STATISTICS):
        columns[name] = pa.array([row[j] for row in rows], pa.float64(), from_pandas=True)
    return pa.table(columns)


def _sorted_lines(path: Path) -> list[bytes]:
    header, *rows = path.read_bytes().split(b"\n")
    return [header, *sorted(rows)]


# names: any text, including quotes, commas, '#', line breaks, non-ASCII and the empty name; doubles: any,
# including NaN, infinities, -0.0, subnormals and the largest finite values
names = st.lists(st.text(st.sampled_from(list(',"#\r\n \t;|\\\'aZé日')) | st.characters(exclude_categories=["Cs"]),
                         max_size=8),
                 min_size=1, max_size=4, unique=True)
# (drawn from every decade too: plain floats seldom fall where spellings switch, 1e-4 to repr's exponent form,
# 1e16, or where orjson and repr part, below 1e-4)
doubles = st.floats(allow_nan=True, allow_infinity=True) | st.builds(
    lambda mantissa, exponent: mantissa * 10.0 ** exponent, st.floats(-10, 10), st.integers(-320, 300))
#: names and doubles at each place where a spelling changes, each name on a row of its own
EDGE_NAMES = ["#1", 'VIT "D"', "A, B", "two\nlines", "cr\r", "Sjögren", "", "plain"]
EDGE_DOUBLES = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1e-05, 9.999999999999999e-05, 1e-4, 1e16, 1.5e16,
                1.7976931348623157e308]
rows = st.lists(st.lists(doubles, min_size=len(_STATISTICS), max_size=len(_STATISTICS)), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names, names, rows)
@example(EDGE_NAMES, EDGE_NAMES[::-1], [EDGE_DOUBLES[i:] + EDGE_DOUBLES[:i] for i in range(len(EDGE_NAMES))])
def test_out_csv_is_the_text_duckdb_copy_writes_for_any_names_and_doubles(
    computation: SignalComputation, tmp_path: Path, products: list[str], events: list[str], rows: list[list[float]],
) -> None:
    results = _results(products, events, rows)
    write_csv(replace(computation, results=results), tmp_path / "out.csv")
    con = duckdb.connect()
    con.register("signal_results", results)
    con.execute(f"COPY (SELECT {', '.join(OUTPUT_COLUMNS)} FROM signal_results) TO '{tmp_path / 'duckdb.csv'}' "
                "(HEADER, DELIMITER ',')")
    assert _sorted_lines(tmp_path / "out.csv") == _sorted_lines(tmp_path / "duckdb.csv")


# ids that sort differently by bytes and by length ("R10" < "R2" < "R9" byte-wise, not shortest first), that
# are equal once trimmed of spaces, the empty id, and ids other spaces or Unicode forms keep apart
report_ids = st.sampled_from(["R1", "R2", "R9", "R10", "R11", "R100", "1", "2", "10", "01", "001", " R1", "R1 ",
                              "R 1", "", " ", "a", "ab", "b", "Z", "é", "e\u0301", "R1\u00a0"])


@settings(max_examples=600, deadline=None)
@given(st.lists(report_ids, min_size=1, max_size=40), st.sampled_from(["as sent", "byte order", "shortest first"]),
       st.lists(st.integers(0, 12), max_size=5), st.booleans())
def test_report_ids_get_one_code_per_distinct_trimmed_id_in_any_order(ids: list[str], order: str,
                                                                      block_sizes: list[int],
                                                                      dictionary: bool) -> None:
    # the file's order, or sorted as exports list reports (byte by byte, or shortest first: R9 before R10), cut
    # into blocks as Arrow's reader cuts a file (each block with a dictionary of its own), or plain strings as
    # the event store and DuckDB's reader give them; equal ids far apart must still be one report
    if order == "byte order":
        ids = sorted(ids, key=str.encode)
    elif order == "shortest first":
        ids = sorted(ids, key=lambda name: (len(name.encode()), name.encode()))
    bounds = [*np.cumsum([0, *block_sizes]).clip(max=len(ids)).tolist(), len(ids)]
    blocks = [pa.array(ids[start:end], pa.string()) for start, end in itertools.pairwise(bounds)]
    if dictionary:
        column = pa.chunked_array([block.dictionary_encode() for block in blocks],
                                  pa.dictionary(pa.int32(), pa.string()))
    else:
        column = pa.chunked_array(blocks, pa.string())
    codes, names, empty = _codes(column)
    distinct = names.to_pylist()
    assert [distinct[code] for code in codes.tolist()] == [name.strip(" ") for name in ids]
    assert len(set(distinct)) == len(distinct)
    assert empty == sum(name.strip(" ") == "" for name in ids)
