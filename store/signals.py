"""The 2x2 tables of every product-event pair over distinct reports, their statistics, OUT.csv and `signals`.

The report-product-event rows come as integer codes (ReportRows, from a CSV or from the event log:
pvwatch.store.signal_reports); pvwatch.domain.signals.counting gives per pair a (reports with both), the
product's and the event's report counts, N (distinct reports) and the expected count E. With strata, E is summed
over strata as openEBGM's processRaw does (E = sum_s n_product,s n_event,s / N_s), in DuckDB over `signal_rows`.

`compute_signals` then scores every pair (numpy, vectorised) and registers the result as one Arrow table in
DuckDB, which fills the `signals` table (migration 005) without a round trip through Python objects; OUT.csv is
formatted from the same table by Arrow and orjson, block by block on two threads (`write_csv`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from pvwatch.config import Settings
from pvwatch.domain.signals.counting import tabulate
from pvwatch.domain.signals.criteria import SignalMethod, SignalThresholds, is_news, signal_flags, strength
from pvwatch.domain.signals.disproportionality import (
    CountArray,
    FloatArray,
    PairCounts,
    empirical_bayes,
    frequentist,
    information_component,
)
from pvwatch.domain.signals.ebgm_fit import PriorFit, PriorFitFailed, distinct_points, fit_prior
from pvwatch.errors import PvwatchError
from pvwatch.events.signal import SignalDetected, signal_id_for
from pvwatch.store.output_files import OutputNotWritten as OutputNotWritten  # re-exported: write_csv raises it
from pvwatch.store.output_files import write_output
from pvwatch.store.signal_reports import ReportRows, ReportsInvalid, load_reports_store
from pvwatch.store.signal_reports import load_reports_csv as load_reports_csv  # re-exported beside the counting


def thresholds_from_settings(settings: Settings) -> SignalThresholds:
    """The signal thresholds configured by PVWATCH_SIGNAL_* (pvwatch.config)."""
    return SignalThresholds(
        prr_min=settings.signal_prr_min, chi2_min=settings.signal_chi2_min, a_min=settings.signal_a_min,
        eb05_min=settings.signal_eb05_min, ic025_min=settings.signal_ic025_min,
        strengthen_ratio=settings.signal_strengthen_ratio,
    )


@dataclass(frozen=True)
class PairTable:
    """Every product-event pair with at least one report, with its 2x2 cells and expected count."""

    counts: PairCounts
    expected: FloatArray
    reports: int
    #: each element's row in `signal_pairs`
    pair_index: CountArray
    #: the pairs' product and event names (Arrow dictionary arrays: codes into the distinct names)
    product: pa.DictionaryArray
    event: pa.DictionaryArray
    strata: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.counts.a.size)


def count_pairs(con: duckdb.DuckDBPyConnection, rows: ReportRows, stratify: Sequence[str] = ()) -> PairTable:
    """a, b, c, d and E of every pair of `rows`, as columns; also registered in `con` as `signal_pairs`."""
    counted = tabulate(rows.report, rows.product, rows.event, reports=len(rows.report_ids),
                       products=len(rows.products), events=len(rows.events))
    pair_index = np.arange(counted.counts.a.size, dtype=np.int64)
    product = pa.DictionaryArray.from_arrays(counted.product.astype(np.int32), rows.products)
    event = pa.DictionaryArray.from_arrays(counted.event.astype(np.int32), rows.events)
    table = PairTable(counted.counts, counted.expected, counted.reports, pair_index, product, event, tuple(stratify))
    _register_pairs(con, table)
    if stratify:  # E over strata, from the pairs just registered
        table = replace(table, expected=_stratified_expected(con, stratify, pair_index.size))
        _register_pairs(con, table)
    return table


def _register_pairs(con: duckdb.DuckDBPyConnection, table: PairTable) -> None:
    counts = table.counts
    con.register("signal_pairs", pa.table({
        "pair_index": table.pair_index, "product": table.product, "event": table.event, "a": counts.a,
        "b": counts.b, "c": counts.c, "d": counts.d, "expected": table.expected}))


def _stratified_expected(con: duckdb.DuckDBPyConnection, stratify: Sequence[str], pairs: int) -> FloatArray:
    """E = sum over strata of n_product,s n_event,s / N_s (openEBGM processRaw), each report in one stratum (its
    first value if a report disagrees with itself)."""
    key = ", ".join(f'"{name}"' for name in stratify)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE signal_report_stratum AS
        SELECT report_id, min(concat_ws('|', {key})) AS stratum FROM signal_rows GROUP BY report_id""")
    found = con.execute("""
        WITH r AS (SELECT DISTINCT s.product, s.event, s.report_id, t.stratum
                   FROM signal_rows s JOIN signal_report_stratum t USING (report_id)),
        n_s AS (SELECT stratum, count(*) AS n FROM signal_report_stratum GROUP BY stratum),
        p_s AS (SELECT product, stratum, count(DISTINCT report_id) AS n FROM r GROUP BY ALL),
        e_s AS (SELECT event, stratum, count(DISTINCT report_id) AS n FROM r GROUP BY ALL),
        s AS (SELECT pairs.product, pairs.event, sum(p_s.n * e_s.n / n_s.n) AS expected
              FROM (SELECT DISTINCT product, event FROM r) pairs JOIN p_s USING (product)
              JOIN e_s ON e_s.event = pairs.event AND e_s.stratum = p_s.stratum
              JOIN n_s ON n_s.stratum = p_s.stratum GROUP BY ALL)
        SELECT p.pair_index, s.expected FROM signal_pairs p JOIN s USING (product, event)""").fetchnumpy()
    expected = np.full(pairs, np.nan)
    expected[np.asarray(found["pair_index"], dtype=np.int64)] = np.asarray(found["expected"], dtype=np.float64)
    return expected


#: OUT.csv columns, in order (issue 6).
OUTPUT_COLUMNS = ("product", "event", "a", "b", "c", "d", "expected", "prr", "chi2", "chi2_yates", "ror",
                  "ror_lo95", "ror_hi95", "ic", "ic025", "ebgm", "eb05", "eb95")
STAGES = ("count reports", "PRR, ROR, IC", "fit EBGM prior", "EBGM scores")


@dataclass(frozen=True)
class SignalComputation:
    """Every pair's statistics (`results`, also registered as the relation signal_results of `con`, beside
    signal_pairs)."""

    table: PairTable
    results: pa.Table
    fit: PriorFit | None
    fit_error: str | None
    flags: dict[SignalMethod, NDArray[np.bool_]]
    seconds: float
    stage_seconds: dict[str, float]


def compute_signals(con: duckdb.DuckDBPyConnection, rows: ReportRows, thresholds: SignalThresholds, *,
                    stratify: Sequence[str] = (), require_fit: bool = True,
                    on_stage: Callable[[str], None] | None = None) -> SignalComputation:
    """Count, score and flag every pair of `rows`; the EBGM prior is fitted on the distinct (a, E) values.

    With require_fit the command fails when the prior fit does not converge (PriorFitFailed); otherwise (the live
    timer) EBGM, EB05 and EB95 are left empty and the reason is kept, so PRR and IC signals still flow.
    """
    started = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    current: list[tuple[str, float]] = []

    def stage(name: str) -> None:
        now = time.perf_counter()
        if current:
            stage_seconds[current[0][0]] = now - current[0][1]
        current[:] = [(name, now)]
        if on_stage:
            on_stage(name)

    stage(STAGES[0])
    table = count_pairs(con, rows, stratify)
    stage(STAGES[1])
    # PRR and ROR in a second thread (numpy releases the GIL) while IC, the fit and EBGM run here
    with ThreadPoolExecutor(max_workers=1) as pool:
        frequent_pending = pool.submit(frequentist, table.counts)
        # IC and EBGM depend on a pair only through (a, E): compute them once per distinct (a, E).
        points, key_of_pair = distinct_points(table.counts.a, table.expected)
        key_a = points.n.astype(np.int64)
        key_ic, key_ic025 = information_component(key_a, points.expected)
        ic, ic025 = key_ic[key_of_pair], key_ic025[key_of_pair]
        stage(STAGES[2])
        fit: PriorFit | None = None
        fit_error: str | None = None
        try:
            fit = fit_prior(points)
        except PriorFitFailed as error:
            if require_fit:
                raise
            fit_error = str(error)
        stage(STAGES[3])
        missing = np.full(len(table), np.nan)
        ebgm, eb05, eb95 = missing, missing, missing
        if fit is not None:
            scores = empirical_bayes(fit.prior, key_a, points.expected)
            ebgm, eb05, eb95 = scores.ebgm[key_of_pair], scores.eb05[key_of_pair], scores.eb95[key_of_pair]
        frequent = frequent_pending.result()
    flags = signal_flags(thresholds, table.counts.a, frequent.prr, frequent.chi2_yates, eb05, ic025)
    counts = table.counts
    statistics = {
        "prr": frequent.prr, "chi2": frequent.chi2, "chi2_yates": frequent.chi2_yates, "ror": frequent.ror,
        "ror_lo95": frequent.ror_lo95, "ror_hi95": frequent.ror_hi95, "ic": ic, "ic025": ic025,
        "ebgm": ebgm, "eb05": eb05, "eb95": eb95,
    }
    # one relation in pair order (no join to write it); NaN, an undefined statistic, becomes NULL: an empty cell
    results = pa.table({
        "product": table.product, "event": table.event, "a": counts.a, "b": counts.b, "c": counts.c,
        "d": counts.d, "expected": table.expected,
        **{name: pa.array(values, from_pandas=True) for name, values in statistics.items()},
        "signal_prr": flags[SignalMethod.PRR], "signal_ebgm": flags[SignalMethod.EBGM],
        "signal_ic": flags[SignalMethod.IC],
    })
    con.register("signal_results", results)
    stage("done")
    return SignalComputation(table, results, fit, fit_error, flags, time.perf_counter() - started, stage_seconds)


_RESULT_SQL = "SELECT " + ", ".join(OUTPUT_COLUMNS) + "{extra} FROM signal_results"


#: Rows OUT.csv formats at a time, two blocks in flight: about 16 MB of text at the 10M benchmark's row width,
#: so each block's buffers stay under glibc's 32 MB mmap threshold and are reused, not faulted in afresh (at
#: 2^18 rows the write faulted in 0.65-1.1 GB and spent 1.1-1.9 s of system time, at 2^16 15-30 MB and 0.3-0.6 s).
CSV_BLOCK_ROWS = 1 << 16
#: OUT.csv's columns of doubles (after product, event and the four counts).
_DOUBLE_COLUMNS = OUTPUT_COLUMNS[6:]
#: The smallest magnitude Python's repr writes in positional notation (below it: 1e-05).
_REPR_POSITIONAL_MIN = 1e-4
#: Where Arrow spells a double as Python's repr and DuckDB do, apart from integral values (Arrow "5", repr
#: "5.0"): shortest round-trip digits, positional notation. Checked on 3.5M random doubles of 1-17 digits
#: between 1e-6 and 1e9 (tests/unit/test_signals_csv_text.py checks the boundaries).
_ARROW_AS_REPR = (1e-4, 1e9)


def write_csv(computation: SignalComputation, path: Path) -> None:
    """OUT.csv: one row per pair in pair order, OUTPUT_COLUMNS, empty where a statistic is undefined.

    The text is what DuckDB's COPY wrote before (the same bytes, row order aside): doubles in their shortest
    round-trip spelling as Python's repr gives it, names quoted where they contain a comma, a quote, '#' or a
    line break. It is formatted block by block on two threads: at 10M reports DuckDB's writer spent ~6 s of
    CPU, mostly on its float formatting, this one ~2 s (docs/signals.md, Speed)."""
    results = computation.results.select(list(OUTPUT_COLUMNS))
    names = {name: _csv_names(_dictionary(results.column(name))) for name in ("product", "event")}
    write_output(path, "OUT.csv", lambda out: _write_csv_rows(out, results, names))


def _write_csv_rows(out: BinaryIO, results: pa.Table, names: dict[str, pa.Array]) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        out.write((",".join(OUTPUT_COLUMNS) + "\n").encode())
        pending: list[Future[list[memoryview]]] = []
        for start in range(0, results.num_rows, CSV_BLOCK_ROWS):
            pending.append(pool.submit(_csv_lines, results.slice(start, CSV_BLOCK_ROWS), names))
            if len(pending) > 2:
                out.writelines(pending.pop(0).result())
        for block in pending:
            out.writelines(block.result())


def _dictionary(column: pa.ChunkedArray) -> pa.Array:
    dictionary: pa.Array = column.chunk(0).dictionary if column.num_chunks else pa.array([], pa.string())
    return dictionary


def _csv_names(names: pa.Array) -> pa.Array:
    """Names as DuckDB's CSV writer spells them: quoted (inner quotes doubled) when they contain a comma, a
    quote, '#' or a line break, or are empty (DuckDB 2.0's rule, which is also RFC 4180's plus '#')."""
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(names, '"', '""'), '"', "")
    needs_quotes = pc.or_(pc.match_substring_regex(names, '[,"#\r\n]'), pc.equal(names, ""))
    return pc.if_else(needs_quotes, quoted, names)


def _csv_lines(block: pa.Table, names: dict[str, pa.Array]) -> list[memoryview]:
    """The CSV text of `block`'s rows, one line each ending in a line feed, as views of Arrow buffers."""
    cells = [pa.chunked_array([pc.take(names[name], chunk.indices) for chunk in block.column(name).chunks],
                              pa.string()) for name in ("product", "event")]
    cells += [pc.cast(block.column(name), pa.string()) for name in ("a", "b", "c", "d")]
    doubles = np.empty((block.num_rows, len(_DOUBLE_COLUMNS)))
    for j, name in enumerate(_DOUBLE_COLUMNS):
        doubles[:, j] = block.column(name).to_numpy()
    lines = pc.binary_join_element_wise(*cells, csv_double_rows(doubles), ",")
    lines = pc.binary_join_element_wise(lines, "\n", "")
    views = []
    for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
        if len(chunk):
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32, count=len(chunk) + 1, offset=chunk.offset * 4)
            views.append(memoryview(chunk.buffers()[2])[int(offsets[0]):int(offsets[-1])])
    return views


def csv_double_rows(matrix: FloatArray) -> pa.Array:
    """Each row of a 2-D array of doubles as CSV cells ("v1,v2,..."), each double in its shortest round-trip
    spelling as Python's repr writes it, NaN as an empty cell.

    orjson writes finite doubles of magnitude 1e-4 and above, and zeros, exactly as repr does, in about a third
    of Arrow's time (its JSON text of a 2-D array is these rows between brackets). A row holding anything else
    (NaN, infinity, or a magnitude below 1e-4, which orjson writes 0.00001 or 1e-7 where repr writes 1e-05 and
    1e-07) is spelt by double_text instead: about 1% of the rows at 10M reports."""
    if matrix.shape[0] == 0:
        return pa.array([], pa.string())
    text = orjson.dumps(np.ascontiguousarray(matrix), option=orjson.OPT_SERIALIZE_NUMPY)
    inner = pa.py_buffer(np.array([2, len(text) - 2], dtype=np.int32))  # without the outer "[[" and "]]"
    rows = pc.split_pattern(pa.Array.from_buffers(pa.binary(), 1, [None, inner, pa.py_buffer(text)]), "],[")
    text_rows = rows.values.view(pa.string())
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(matrix)
        unlike_repr = (((magnitude < _REPR_POSITIONAL_MIN) & (magnitude != 0)) | ~np.isfinite(matrix)).any(axis=1)
    if unlike_repr.any():
        rows_to_fix = np.flatnonzero(unlike_repr)
        fixed = pc.binary_join_element_wise(*[double_text(matrix[rows_to_fix, j]) for j in range(matrix.shape[1])],
                                            ",", null_handling="replace", null_replacement="")
        text_rows = pc.replace_with_mask(text_rows, pa.array(unlike_repr), fixed)
    return text_rows


def double_text(values: FloatArray) -> pa.Array:
    """Each double's shortest round-trip text as Python's repr (and DuckDB) spells it; NaN is null (an empty
    cell). Arrow's cast gives the digits; values outside _ARROW_AS_REPR are spelt by repr itself, and integral
    ones get repr's ".0". (OUT.csv's rows that orjson would spell otherwise: csv_double_rows.)"""
    text = pc.cast(pa.array(values, from_pandas=True), pa.string())
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore"):
        arrow_as_repr = ((magnitude >= _ARROW_AS_REPR[0]) & (magnitude < _ARROW_AS_REPR[1])) | (magnitude == 0)
        integral = arrow_as_repr & (values == np.trunc(values))
        other = ~arrow_as_repr & ~np.isnan(values)
    if integral.any():
        text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    if other.any():
        text = pc.replace_with_mask(text, other, pa.array([repr(value) for value in values[other].tolist()],
                                                          pa.string()))
    return text



def write_signals_table(con: duckdb.DuckDBPyConnection, computation: SignalComputation, computed_at: datetime) -> None:
    """Replace the `signals` table (migration 005) and record the run, in one transaction."""
    hyper = json.dumps(computation.fit.as_json()) if computation.fit else None
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM signals")
        flags = ", signal_prr, signal_ebgm, signal_ic, $at"
        con.execute(f"INSERT INTO signals {_RESULT_SQL.format(extra=flags)}", {"at": computed_at})
        con.execute("INSERT INTO signal_runs VALUES ($at, $reports, $pairs, $hyper, $error, $seconds)",
                    {"at": computed_at, "reports": computation.table.reports, "pairs": len(computation.table),
                     "hyper": hyper, "error": computation.fit_error, "seconds": computation.seconds})
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


# --- the live table: recomputed over the store by the worker's timer, new or strengthened signals published ----

#: What a recomputation over the store may raise and its callers report rather than let through (the worker's
#: timer counts it and retries; `pvwatch replay` warns): pvwatch's own errors, DuckDB's, and pyarrow's ValueErrors.
RECOMPUTATION_ERRORS = (PvwatchError, duckdb.Error, ValueError)


@dataclass(frozen=True)
class SignalRefresh:
    """One recomputation over the store: what is active now and what is news (to publish)."""

    active: dict[SignalMethod, int]
    news: list[SignalDetected]
    fit_error: str | None
    pairs: int


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and np.isfinite(value) else None


def refresh_signals(con: duckdb.DuckDBPyConnection, thresholds: SignalThresholds, now: datetime) -> SignalRefresh:
    """Recompute the `signals` table from the event log and record new or strengthened signals in the outbox.

    Runs on its own cursor (its temporary tables and transaction are its own). The EBGM prior may fail to
    converge on a small store: then EBGM columns stay empty, the reason is kept in signal_runs, and PRR and IC
    signals still flow. A store without any adverse event yet is not an error: nothing changes.
    """
    cur = con.cursor()
    try:
        cur.execute("SET enable_progress_bar = false")  # no progress bars in the worker's log
        try:
            rows = load_reports_store(cur)
        except ReportsInvalid:
            return SignalRefresh({method: 0 for method in SignalMethod}, [], None, 0)
        computation = compute_signals(cur, rows, thresholds, require_fit=False)
        write_signals_table(cur, computation, now)
        news = _record_news(cur, thresholds, now)
        active = {method: int(mask.sum()) for method, mask in computation.flags.items()}
        return SignalRefresh(active, news, computation.fit_error, len(computation.table))
    finally:
        cur.close()


def _record_news(cur: duckdb.DuckDBPyConnection, thresholds: SignalThresholds, now: datetime) -> list[SignalDetected]:
    rows = cur.execute("""
        WITH flagged AS (
            SELECT product, event, 'prr' AS method, * EXCLUDE (product, event) FROM signals WHERE signal_prr
            UNION ALL SELECT product, event, 'ebgm', * EXCLUDE (product, event) FROM signals WHERE signal_ebgm
            UNION ALL SELECT product, event, 'ic', * EXCLUDE (product, event) FROM signals WHERE signal_ic),
        last AS (SELECT product, event, method, arg_max(strength, detected_at) AS strength
                 FROM signal_publications GROUP BY ALL)
        SELECT f.method, f.product, f.event, f.a, f.expected, f.prr, f.chi2_yates, f.ror, f.ror_lo95, f.ic025,
               f.ebgm, f.eb05, f.eb95, last.strength
        FROM flagged f LEFT JOIN last USING (product, event, method)
        ORDER BY f.method, f.product, f.event""").fetchall()
    news: list[SignalDetected] = []
    for method_name, product, event, a, expected, prr, chi2_yates, ror, ror_lo95, ic025, ebgm, eb05, eb95, last in rows:
        method = SignalMethod(method_name)
        current = strength(method, prr, eb05, ic025)
        kind = is_news(thresholds, current, last)
        if kind is None:
            continue
        news.append(SignalDetected(
            signal_id=signal_id_for(product, event, method.value, current), product=product, event=event,
            method=method.value, kind=kind, strength=current, previous_strength=last, a=a, expected=expected,
            prr=_finite(prr), chi2_yates=_finite(chi2_yates), ror=_finite(ror), ror_lo95=_finite(ror_lo95),
            ic025=ic025, ebgm=_finite(ebgm), eb05=_finite(eb05), eb95=_finite(eb95), detected_at=now))
    if news:
        cur.execute("BEGIN TRANSACTION")
        try:
            cur.executemany(
                "INSERT OR IGNORE INTO signal_publications VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [[str(s.signal_id), s.product, s.event, s.method, s.kind, s.strength, s.model_dump_json(),
                  s.detected_at] for s in news])
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
    return news


def unpublished_signals(con: duckdb.DuckDBPyConnection) -> list[SignalDetected]:
    """Signals recorded but not yet on pv.safety.signal.v1 (published by the next flush, also after a crash)."""
    rows = con.cursor().execute(
        "SELECT payload FROM signal_publications WHERE published_at IS NULL ORDER BY detected_at, signal_id"
    ).fetchall()
    return [SignalDetected.model_validate_json(row[0]) for row in rows]


def mark_signals_published(con: duckdb.DuckDBPyConnection, signal_ids: Sequence[str]) -> None:
    if signal_ids:
        con.cursor().execute("UPDATE signal_publications SET published_at = now() WHERE signal_id IN "
                             "(SELECT unnest(?::UUID[]))", [list(signal_ids)])


# --- MaxSPRT over the store: MSC infusions as exposure ----------------------------------------------------------


@dataclass(frozen=True)
class InfusionExposure:
    """MSC infusions given so far and the cases of one term that began within the window after one of them."""

    infusions: int
    cases: int


def msc_infusion_exposure(con: duckdb.DuckDBPyConnection, term: str, window_days: int) -> InfusionExposure:
    """Exposure and events for Poisson MaxSPRT on MSC infusions (Kulldorff 2011): the expected count is
    infusions x the background rate per infusion; a case counts (once, by its latest version) when its onset,
    or its awareness date when onset is unknown, is 0..window_days after an infusion of the same patient."""
    cur = con.cursor()
    try:
        infusions = cur.execute("SELECT count(*) FROM infusions").fetchone()
        cases = cur.execute("""
            SELECT count(DISTINCT ae.case_id) FROM adverse_events ae JOIN infusions i USING (patient)
            WHERE ae.is_latest AND lower(ae.term) = lower($term)
              AND coalesce(ae.onset_date, ae.awareness_date)
                  BETWEEN i.occurred_at::DATE AND i.occurred_at::DATE + $window""",
            {"term": term, "window": window_days}).fetchone()
    except duckdb.CatalogException as error:
        raise ReportsInvalid(f"the store has no clinical views yet: {str(error).splitlines()[0]}") from None
    finally:
        cur.close()
    return InfusionExposure(int(infusions[0]) if infusions else 0, int(cases[0]) if cases else 0)


MSC_PRODUCT_LABEL = "MSC infusion"


@dataclass(frozen=True)
class MaxSprtMonitor:
    """A configured MaxSPRT surveillance of one term after MSC infusions, with its exact critical value."""

    term: str
    rate: float
    length: float
    min_events: int
    window_days: int
    critical_value: float

    @classmethod
    def from_settings(cls, settings: Settings) -> MaxSprtMonitor | None:
        if not settings.maxsprt_term:
            return None
        from pvwatch.domain.signals.maxsprt import critical_value

        return cls(settings.maxsprt_term, settings.maxsprt_rate, settings.maxsprt_length,
                   settings.maxsprt_min_events, settings.maxsprt_window_days,
                   critical_value(settings.maxsprt_alpha, settings.maxsprt_length, settings.maxsprt_min_events))


def check_maxsprt(con: duckdb.DuckDBPyConnection, monitor: MaxSprtMonitor, now: datetime) -> SignalDetected | None:
    """Test the accumulated MSC-infusion cases once; a first crossing is recorded in the signal outbox (a MaxSPRT
    signal ends the surveillance of that term, so it is never republished)."""
    from pvwatch.domain.signals.maxsprt import monitor as decide

    exposure = msc_infusion_exposure(con, monitor.term, monitor.window_days)
    expected = exposure.infusions * monitor.rate
    if expected <= 0:
        return None
    decision = decide(exposure.cases, expected, monitor.critical_value, monitor.min_events)
    if not decision.signal:
        return None
    cur = con.cursor()
    try:
        done = cur.execute("SELECT count(*) FROM signal_publications WHERE method = 'maxsprt' AND product = ? "
                           "AND lower(event) = lower(?)", [MSC_PRODUCT_LABEL, monitor.term]).fetchone()
        if done and done[0]:
            return None
        signal = SignalDetected(
            signal_id=signal_id_for(MSC_PRODUCT_LABEL, monitor.term, "maxsprt", decision.llr),
            product=MSC_PRODUCT_LABEL, event=monitor.term, method="maxsprt", kind="new", strength=decision.llr,
            a=exposure.cases, expected=expected, llr=decision.llr, critical_value=monitor.critical_value,
            detected_at=now)
        cur.execute("INSERT OR IGNORE INTO signal_publications VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                    [str(signal.signal_id), signal.product, signal.event, signal.method, signal.kind,
                     signal.strength, signal.model_dump_json(), now])
        return signal
    finally:
        cur.close()
