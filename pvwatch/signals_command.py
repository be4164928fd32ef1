"""`pvwatch signals` and `pvwatch maxsprt`: the command bodies (registered in pvwatch.cli)."""

from __future__ import annotations

import ctypes
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import click
import duckdb
from tqdm import tqdm

from pvwatch.config import Settings
from pvwatch.errors import ConfigError
from pvwatch.store.output_files import check_writable, write_output
from pvwatch.store.signal_reports import STRATUM_COLUMNS, load_reports_csv, load_reports_store

if TYPE_CHECKING:
    from pvwatch.store.signals import SignalComputation


#: Fewest DuckDB threads for `pvwatch signals` (measured on 2 cores; see run_signals).
MIN_DUCKDB_THREADS = 4


def parse_strata(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in STRATUM_COLUMNS]
    if unknown:
        raise click.BadParameter(f"unknown stratum {', '.join(unknown)}; choose from {', '.join(STRATUM_COLUMNS)}")
    return names


def _numpy_small_pages() -> None:
    """numpy asks for transparent huge pages for arrays of 4 MB and more. On the 2-core VM a fresh huge page
    costs far more to fault in than the small pages it replaces: `pvwatch signals` at 10M reports spent
    6.0-6.4 s of system time with them and 3.9-4.1 s without, for the same user time (docs/signals.md, Speed).
    The command is its own process, so it turns them off, unless NUMPY_MADVISE_HUGEPAGE (numpy's own switch,
    read at import) says otherwise."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    try:
        import numpy._core.multiarray as multiarray  # numpy's own switch lives here from numpy 2 on
    except ImportError:
        return

    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)


#: glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit systems.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX = -1, -3, 32 << 20


def _glibc() -> bool:
    """Whether this process runs on glibc (which alone answers CS_GNU_LIBC_VERSION)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or a name this C library lacks
        return False


def _keep_freed_memory() -> None:
    """glibc hands every freed block over its mmap threshold (128 KB, rising with use) back to the OS, and the
    next allocation of that size faults fresh pages in: on this VM about 1 s of system time per GB. The
    command's numpy arrays of one value per pair (22 MB at 10M reports) come and go by the dozen; with the
    threshold at its maximum (32 MB) and no trimming they are served from memory already faulted in (10M
    reports: 0.85 GB fewer page faults; docs/signals.md, Speed). Only this process: the worker is left as is.
    Another C library (musl, macOS, Windows) keeps its own policy: the parameter numbers are glibc's, and musl's
    mallopt ignores them anyway."""
    if not _glibc():
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def run_signals(settings: Settings, *, reports: Path | None, from_store: bool, db: Path | None, out: Path,
                hyperparameters_out: Path | None, stratify: Sequence[str], plot: Path | None, top: int) -> None:
    if (reports is None) == (not from_store):
        raise ConfigError("give exactly one source: --reports FILE.csv or --from-store")
    if plot is not None and plot.suffix.lower() not in {".png", ".svg"}:
        raise ConfigError(f"--plot {plot}: the file name must end in .png or .svg")
    # every output is checked before the computation (minutes at 10M reports), so a bad path fails at once
    for path, what in ((out, "OUT.csv"), (hyperparameters_out, "HYPER.json"), (plot, "the plot")):
        if path is not None:
            check_writable(path, what)
    _numpy_small_pages()
    _keep_freed_memory()
    if from_store:
        from pvwatch.store.eventstore import connect

        con = connect(db or settings.db, read_only=True)
    else:
        con = duckdb.connect()
    # no result relies on insertion order (pairs are matched by pair_index), so DuckDB may work in parallel
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")  # our own bar shows the stages
    # At least 4 DuckDB threads (its default is one per core): on 2 cores the grouped count(DISTINCT report_id)
    # aggregates take about a third less CPU with 4 threads than with 2 (docs/signals.md, Speed). The setting is
    # this process's own: the command always opens its own connection.
    default_threads = con.execute("SELECT current_setting('threads')").fetchone()
    con.execute(f"SET threads = {max(MIN_DUCKDB_THREADS, int(default_threads[0]) if default_threads else 1)}")
    try:
        # the reports are read (without the GIL) while Python imports the statistics (numpy, scipy: ~0.5-1 s of
        # CPU); from a CSV once it is parsed, while one core encodes the report ids and the other would wait
        with ThreadPoolExecutor(max_workers=1) as pool:
            if reports is not None:
                parsed = threading.Event()
                loading = pool.submit(load_reports_csv, con, reports, stratify, parsed)
                parsed.wait()
            else:
                loading = pool.submit(load_reports_store, con, stratify)
            from pvwatch.store.signals import STAGES, compute_signals, thresholds_from_settings, write_csv

            rows = loading.result()
        with tqdm(total=len(STAGES) + 1, desc="signals", unit="step", leave=False) as bar:
            def stage(name: str) -> None:
                if name in STAGES:
                    bar.set_postfix_str(name)
                    bar.update(0 if name == STAGES[0] else 1)

            computation = compute_signals(con, rows, thresholds_from_settings(settings), stratify=stratify,
                                          on_stage=stage)
            bar.set_postfix_str("write OUT.csv")
            write_csv(computation, out)
            bar.update(bar.total - bar.n)
        if hyperparameters_out is not None and computation.fit is not None:
            hyper = (json.dumps(computation.fit.as_json(), indent=2) + "\n").encode()
            write_output(hyperparameters_out, "HYPER.json", lambda file: file.write(hyper))
        if plot is not None:
            plot_top_signals(con, plot, top)
    finally:
        con.close()
    _summary(computation, out)


def rebuild_signals(settings: Settings, db: Path) -> None:
    """`pvwatch replay`'s last step: recompute the `signals` table from the event log, as the worker's signal timer
    does (new or strengthened signals go to the outbox, published by the next worker); the worker is stopped.

    The rules' tables are rebuilt by then: a signal recomputation that fails is reported and leaves the table as it
    was (the worker's timer recomputes it, and counts its own failures), it does not undo the replay."""
    from datetime import UTC, datetime

    from pvwatch.store.eventstore import EventStore
    from pvwatch.store.signals import RECOMPUTATION_ERRORS, refresh_signals, thresholds_from_settings

    store = EventStore(db)
    try:
        refresh = refresh_signals(store.con, thresholds_from_settings(settings), datetime.now(UTC))
    except RECOMPUTATION_ERRORS as error:
        click.echo(f"warning: the signals table was not rebuilt: {str(error).splitlines()[0]}", err=True)
        return
    finally:
        store.close()
    active = "  ".join(f"{method.value} {count}" for method, count in refresh.active.items())
    click.echo(f"signals: {refresh.pairs:,} product-event pairs, active {active}; {len(refresh.news)} new or "
               "strengthened (published by the next worker)")
    if refresh.fit_error:
        click.echo(f"note: EBGM columns left empty: {refresh.fit_error}", err=True)


def _summary(computation: SignalComputation, out: Path) -> None:
    table, fit = computation.table, computation.fit
    flagged = "  ".join(f"{method.value} {int(mask.sum())}" for method, mask in computation.flags.items())
    click.echo(f"{table.reports:,} reports, {len(table):,} product-event pairs -> {out} "
               f"({computation.seconds:.2f} s)")
    if fit is not None:
        p = fit.prior
        click.echo(f"EBGM prior alpha1 {p.alpha1:.4f} beta1 {p.beta1:.4f} alpha2 {p.alpha2:.4f} beta2 {p.beta2:.4f} "
                   f"p {p.p:.4f}; negative log-likelihood {fit.negative_log_likelihood:.3f} "
                   f"({fit.agreeing_starts} starts agree)")
        if fit.at_bound:
            click.echo(f"note: {', '.join(fit.at_bound)} on the bound of its range: the data barely identify a "
                       "two-component prior (small or near-null report set); EBGM shrinks hard", err=True)
    click.echo(f"signals: {flagged}")
    click.echo("time: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in computation.stage_seconds.items()))


def plot_top_signals(con: duckdb.DuckDBPyConnection, path: Path, top: int) -> None:
    """EBGM with its EB05-EB95 interval for the `top` pairs of highest EB05 (DuMouchel 1999), log scale."""
    import matplotlib
    import matplotlib.ticker
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = con.execute(
        "SELECT left(product, 32) || ' / ' || left(event, 32), ebgm, eb05, eb95, a FROM signal_results "
        "WHERE eb05 IS NOT NULL ORDER BY eb05 DESC, a DESC LIMIT ?",
        [top]).fetchall()
    if not rows:
        raise ConfigError("nothing to plot: no pair has EBGM scores")
    labels = [f"{label} (a={a})" for label, _, _, _, a in rows][::-1]
    ebgm = np.array([r[1] for r in rows])[::-1]
    low = np.array([r[2] for r in rows])[::-1]
    high = np.array([r[3] for r in rows])[::-1]
    figure, axes = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))
    axes.errorbar(ebgm, y, xerr=[ebgm - low, high - ebgm], fmt="o", color="#1565c0", ecolor="#90caf9",
                  capsize=2, markersize=4)
    axes.axvline(2.0, color="#c62828", linestyle="--", linewidth=1, label="EB05 = 2 (screening threshold)")
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.set_yticks(y, labels, fontsize=7)
    axes.set_xlabel("EBGM with EB05-EB95 interval (log scale)")
    axes.set_title(f"Top {len(rows)} product-event pairs by EB05")
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    try:
        write_output(path, "the plot", lambda file: figure.savefig(file, format=path.suffix[1:].lower()))
    finally:
        plt.close(figure)


def run_maxsprt(*, alpha: float, length: float, min_events: int, observed: int | None, expected: float | None,
                db: Path | None = None, term: str | None = None, rate: float | None = None,
                window_days: int = 1) -> None:
    from pvwatch.domain.signals.maxsprt import critical_value, monitor

    if db is not None:
        if term is None or rate is None:
            raise ConfigError("--db needs --term and --rate (background cases per infusion)")
        from pvwatch.store.eventstore import connect
        from pvwatch.store.signals import msc_infusion_exposure

        con = connect(db, read_only=True)
        try:
            exposure = msc_infusion_exposure(con, term, window_days)
        finally:
            con.close()
        observed, expected = exposure.cases, exposure.infusions * rate
        click.echo(f"{exposure.infusions} MSC infusions x rate {rate:g} = {expected:g} {term} cases expected; "
                   f"{observed} observed within {window_days} day(s) after an infusion")
        if expected <= 0:
            raise ConfigError("no MSC infusion in the store yet: nothing to test")
    cv = critical_value(alpha, length, min_events)
    click.echo(f"critical value {cv:.6f} (alpha {alpha}, surveillance length {length:g} expected events, "
               f"minimum {min_events} events)")
    if observed is not None and expected is not None:
        decision = monitor(observed, expected, cv, min_events)
        verdict = "SIGNAL: LLR crossed the critical value" if decision.signal else "no signal"
        click.echo(f"observed {observed}, expected {expected:g}: LLR {decision.llr:.6f} -> {verdict}")
        if expected > length:
            click.echo(f"note: the expected count {expected:g} is past the surveillance length {length:g}: "
                       "surveillance has ended", err=True)
        if decision.signal:
            raise SystemExit(1)
