"""The report sets `pvwatch signals` counts: report-product-event rows as integer codes (ReportRows).

Two sources give them: a CSV of report-product-event rows (a repeated row stays; it counts once because the
counting is over distinct reports), or the adverse events in the event log. Both also leave the relation
`signal_rows(report_id, product, event[, strata])` in the DuckDB connection, for the stratified expected counts.
The CSV is read by Arrow's multithreaded reader with the columns dictionary-encoded as they are parsed, so the
names are hashed once per chunk and the rows become integer codes without a string column being built (at 10M
reports this read and the counting on codes take about a third of the CPU of DuckDB's grouped
count(DISTINCT report_id) on strings: docs/signals.md, Speed). This module imports no numpy-heavy statistics,
so `pvwatch signals` starts reading while scipy is still being imported.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from numpy.typing import NDArray

from pvwatch.errors import PvwatchError

REQUIRED_COLUMNS = ("report_id", "product", "event")
#: Comma-separated with a header, every column text; a malformed line is an error, never skipped.
_CSV_OPTIONS = "header = true, delim = ',', quote = '\"', all_varchar = true, strict_mode = true"
#: Stratum columns `--stratify` accepts, and how the event store derives them.
STRATUM_COLUMNS = ("age_group", "sex")
_NAMES = pa.dictionary(pa.int32(), pa.string())


def _memory_pool() -> pa.MemoryPool:
    """jemalloc where the Arrow build has it: at 10M reports the read and the dictionary unification cost ~3 s
    less system time (page faults) than with Arrow's default mimalloc on the 2-core machine (docs/signals.md)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


_POOL = _memory_pool()


class ReportsInvalid(PvwatchError):
    """The report set cannot be counted: missing file or column, or no report at all."""


@dataclass(frozen=True)
class ReportRows:
    """One element per report-product-event row: each column as codes into its own list of distinct, trimmed
    names (report ids, products, events). The codes number names in order of first appearance."""

    report: NDArray[np.int32]
    product: NDArray[np.int32]
    event: NDArray[np.int32]
    report_ids: pa.Array
    products: pa.Array
    events: pa.Array

    def __len__(self) -> int:
        return int(self.report.size)


def load_reports_csv(con: duckdb.DuckDBPyConnection, path: Path, stratify: Sequence[str] = (),
                     parsed: threading.Event | None = None) -> ReportRows:
    """The rows of a CSV with a header naming at least report_id, product and event, values trimmed of spaces;
    repeated (report, product, event) rows are kept, and count once because pairs and margins count distinct
    reports. Empty report_id, product or event cells are refused. Also registers `signal_rows` in `con`.

    `parsed` is set once the file is parsed (or the read failed): the parse keeps every core busy, the encoding
    of the report ids that follows only one (`pvwatch signals` imports its statistics then)."""
    try:
        return _load_reports_csv(con, path, stratify, parsed)
    finally:
        if parsed is not None:
            parsed.set()


def _load_reports_csv(con: duckdb.DuckDBPyConnection, path: Path, stratify: Sequence[str],
                      parsed: threading.Event | None) -> ReportRows:
    if not path.is_file():
        raise ReportsInvalid(f"{path}: no such file")
    header = _header(path)
    wanted = (*REQUIRED_COLUMNS, *stratify)
    missing = [name for name in wanted if name not in header]
    if missing:
        raise ReportsInvalid(f"{path}: header lacks column(s) {', '.join(missing)} (it has {', '.join(header)})")
    # every column dictionary-encoded as it is parsed (report ids read as plain strings parse ~1 s faster at 10M
    # reports but fault in more memory: no clear gain in CPU time in all, up to 0.25 GB more at the peak)
    types = {name: _NAMES for name in wanted}
    try:
        table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(
            column_types=types, include_columns=list(wanted), strings_can_be_null=False,
            quoted_strings_can_be_null=False), memory_pool=_POOL)
    except pa.ArrowInvalid:
        # Arrow's message echoes the offending line and has no line number: DuckDB's reader names the line
        # (or reads what Arrow refuses, e.g. a line break inside a quoted value)
        _read_with_duckdb(con, path, stratify)
        return _rows_from_relation(con, str(path))
    if parsed is not None:
        parsed.set()
    return _rows_from_arrow(con, table, str(path), stratify)


def _header(path: Path) -> list[str]:
    with path.open("rb") as handle:
        first = handle.readline()
    try:
        return next(csv.reader([first.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise ReportsInvalid(f"{path}: cannot read the header as CSV: {error}") from None


def _read_with_duckdb(con: duckdb.DuckDBPyConnection, path: Path, stratify: Sequence[str]) -> None:
    strata = "".join(f', coalesce(trim("{name}"), \'\') AS "{name}"' for name in stratify)
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE signal_rows AS SELECT trim(report_id) AS report_id, "
            f"trim(product) AS product, trim(event) AS event{strata} "
            f"FROM read_csv(?, {_CSV_OPTIONS})", [str(path)])
    except duckdb.Error as error:  # e.g. a malformed line far into the file: name it, do not count around it
        raise ReportsInvalid(f"{path}: {_csv_problem(error)}") from None


def _csv_problem(error: duckdb.Error) -> str:
    """DuckDB's line number and reason, without its echo of the offending line or its option dump."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines[1:] if not line.startswith(("Original Line", "Possible Solution", "file ="))
               and " = " not in line]
    return "; ".join(lines[:1] + reasons[:1])


def _codes(column: pa.ChunkedArray) -> tuple[NDArray[np.int32], pa.Array, int]:
    """Codes into the distinct trimmed names, and how many rows are null or empty once trimmed.

    Names that come in order (the report ids of most exports) are coded without hashing (_ordered_codes).
    Otherwise: the reader's chunks of a dictionary column each have a dictionary of their own, and each
    chunk's codes go straight into one array through a map from its dictionary to the distinct names (the
    dictionaries concatenated and encoded once; Arrow's unify_dictionaries would also build a transposed copy
    of every chunk's indices, 4 bytes a row more to allocate and fault in: docs/signals.md); a column of plain
    strings is hashed once, and its chunks then share that one dictionary."""
    ordered = None if pa.types.is_dictionary(column.type) else _ordered_codes(column)
    if ordered is not None:
        codes, names = ordered
        padded = _padded(names)
    else:
        codes, names, padded = _gathered_codes(column)
    if padded:  # padded names: the same name once trimmed
        renumbered = pc.dictionary_encode(pc.utf8_trim(names, " ", memory_pool=_POOL), memory_pool=_POOL)
        codes = np.asarray(renumbered.indices, dtype=np.int32)[codes]
        names = renumbered.dictionary
    empty_code = pc.index(names, "").as_py()
    empty = int(np.count_nonzero(codes == empty_code)) if empty_code >= 0 else 0
    return codes, names, empty + column.null_count


def _gathered_codes(column: pa.ChunkedArray) -> tuple[NDArray[np.int32], pa.Array, bool]:
    codes = np.empty(len(column), dtype=np.int32)
    if column.num_chunks == 0:
        return codes, pa.array([], pa.string()), False
    if pa.types.is_dictionary(column.type):
        dictionaries = [chunk.dictionary for chunk in column.chunks]
        entries = pa.concat_arrays(dictionaries, memory_pool=_POOL)
        ordered = _ordered_codes(entries)
        if ordered is None:
            encoded = pc.dictionary_encode(entries, memory_pool=_POOL)
            ordered = np.asarray(encoded.indices, dtype=np.int32), encoded.dictionary
        code_of_entry, names = ordered
        lookups = np.split(code_of_entry, np.cumsum([len(dictionary) for dictionary in dictionaries])[:-1])
    else:
        column = pc.dictionary_encode(column, memory_pool=_POOL)
        if column.num_chunks == 0:
            return codes, pa.array([], pa.string()), False
        names = column.chunk(0).dictionary
        lookups = [np.arange(len(names), dtype=np.int32)] * column.num_chunks
    start = 0
    for chunk, lookup in zip(column.chunks, lookups, strict=True):
        if lookup.size:  # (a chunk of nulls only has an empty dictionary: its rows are counted as null)
            indices = chunk.indices if chunk.null_count == 0 else pc.fill_null(chunk.indices, 0)
            np.take(lookup, np.asarray(indices), out=codes[start:start + len(chunk)])
        else:
            codes[start:start + len(chunk)] = 0
        start += len(chunk)
    return codes, names, _padded(names)


def _ordered_codes(strings: pa.ChunkedArray | pa.Array) -> tuple[NDArray[np.int32], pa.Array] | None:
    """Codes without hashing when equal names are next to each other, which is certain when the names where
    they change come in increasing order, byte by byte or shortest first (ids numbered 1, 2, ..., 10 without
    padding): a name is then new exactly where it differs from the one before. Exports that list reports by id
    come so; at 10M reports this takes ~0.3 s where hashing the report ids took ~2 s on one core. None when
    the order is neither."""
    if len(strings) == 0 or strings.null_count or not pa.types.is_string(strings.type):
        return None
    new = np.empty(len(strings), dtype=np.bool_)
    start, previous = 0, None
    for chunk in strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]:
        size = len(chunk)
        if size == 0:
            continue
        new[start] = previous is None or chunk[0].as_py() != previous
        if size > 1:
            new[start + 1:start + size] = np.asarray(
                pc.not_equal(chunk.slice(0, size - 1), chunk.slice(1), memory_pool=_POOL), dtype=np.bool_)
        previous = chunk[size - 1].as_py()
        start += size
    names = pc.filter(strings, pa.array(new), memory_pool=_POOL)
    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks(memory_pool=_POOL)
    if not _increasing(names):
        return None
    codes = np.cumsum(new, dtype=np.int32)
    codes -= 1
    return codes, names


def _increasing(names: pa.Array) -> bool:
    """Whether each name sorts after the one before: byte by byte, or shorter first and byte by byte between
    names of one length (either is a total order, so equal names cannot be apart)."""
    if len(names) < 2:
        return True
    less = np.asarray(pc.less(names.slice(0, len(names) - 1), names.slice(1), memory_pool=_POOL), dtype=np.bool_)
    if less.all():
        return True
    lengths = np.diff(_offsets(names))
    return bool(((lengths[:-1] < lengths[1:]) | ((lengths[:-1] == lengths[1:]) & less)).all())


def _offsets(strings: pa.Array) -> NDArray[np.int32]:
    return np.frombuffer(strings.buffers()[1], dtype=np.int32, count=len(strings) + 1, offset=strings.offset * 4)


def _padded(names: pa.Array) -> bool:
    """Whether a name starts or ends with a space (read from the string buffers: no trimmed copy)."""
    if not pa.types.is_string(names.type):
        return pc.any(pc.not_equal(pc.utf8_trim(names, " "), names)).as_py() is True
    if len(names) == 0:
        return False
    offsets = _offsets(names)
    data = np.frombuffer(names.buffers()[2] or b"\0", dtype=np.uint8)
    filled = offsets[1:] > offsets[:-1]
    first, last = data[np.minimum(offsets[:-1], data.size - 1)], data[np.maximum(offsets[1:] - 1, 0)]
    return bool((filled & ((first == 0x20) | (last == 0x20))).any())


def _rows_from_arrow(con: duckdb.DuckDBPyConnection, table: pa.Table, where: str,
                     stratify: Sequence[str]) -> ReportRows:
    # the report ids (millions of distinct names) are unified in a second thread while the products and events
    # are; Arrow releases the GIL
    with ThreadPoolExecutor(max_workers=1) as pool:
        reports = pool.submit(_codes, table.column("report_id"))
        product, products, empty_product = _codes(table.column("product"))
        event, events, empty_event = _codes(table.column("event"))
        report, report_ids, empty_report = reports.result()
    if empty_report or empty_product or empty_event:
        bad = np.zeros(report.size, dtype=np.bool_)
        for name in REQUIRED_COLUMNS:
            column = table.column(name)
            if pa.types.is_dictionary(column.type):
                column = column.cast(pa.string())
            bad |= np.asarray(pc.fill_null(pc.equal(pc.utf8_trim(column, " "), ""), True), dtype=np.bool_)
        raise ReportsInvalid(f"{where}: {int(bad.sum())} row(s) with an empty report_id, product or event")
    if report.size == 0:
        raise ReportsInvalid(f"{where}: no report-product-event rows")
    rows = ReportRows(report, product, event, report_ids, products, events)
    strata = {name: pc.utf8_trim(table.column(name).cast(pa.string()), " ") for name in stratify}
    _register_rows(con, rows, strata)
    return rows


def _register_rows(con: duckdb.DuckDBPyConnection, rows: ReportRows, strata: dict[str, pa.ChunkedArray]) -> None:
    """`signal_rows` over the codes (report_id is the report's code; products and events by name)."""
    relation = pa.table({
        "report_id": rows.report,
        "product": pa.DictionaryArray.from_arrays(rows.product, rows.products),
        "event": pa.DictionaryArray.from_arrays(rows.event, rows.events),
        **strata,
    })
    con.register("signal_rows", relation)


def _rows_from_relation(con: duckdb.DuckDBPyConnection, where: str) -> ReportRows:
    """ReportRows from the DuckDB relation `signal_rows` (a small set: the event store, or a CSV Arrow refused)."""
    _check_rows(con, where)
    table = con.sql("SELECT report_id, product, event FROM signal_rows").to_arrow_table()
    report, report_ids, _ = _codes(table.column("report_id"))
    product, products, _ = _codes(table.column("product"))
    event, events, _ = _codes(table.column("event"))
    return ReportRows(report, product, event, report_ids, products, events)


def load_reports_store(con: duckdb.DuckDBPyConnection, stratify: Sequence[str] = ()) -> ReportRows:
    """The rows of the adverse events in the event log (also left as `signal_rows`): one report per case (its
    latest version, so a follow-up replaces its initial report instead of counting twice), its suspect and
    interacting products (concomitant ones are not suspected of the event) and its reported term.

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
    return _rows_from_relation(con, "the event store")


def _check_rows(con: duckdb.DuckDBPyConnection, where: str) -> None:
    # fetchall, not fetchone: DuckDB refuses the next statement on a connection whose result is not read to its end
    [(empty,)] = con.execute("SELECT count(*) FROM signal_rows WHERE report_id IS NULL OR report_id = '' "
                             "OR product IS NULL OR product = '' OR event IS NULL OR event = ''").fetchall()
    if empty:
        raise ReportsInvalid(f"{where}: {empty} row(s) with an empty report_id, product or event")
    [(total,)] = con.execute("SELECT count(*) FROM signal_rows").fetchall()
    if not total:
        raise ReportsInvalid(f"{where}: no report-product-event rows")
