"""The worker's signal timer: recompute the signals table over the store, publish what is news, update metrics.

The recomputation runs where the store is (the worker's writer, streams/writer.py) on its own DuckDB cursor;
new or strengthened signals are recorded in the signal_publications outbox first and published to
pv.safety.signal.v1 after, so a signal recorded before a crash is published by the next run (and a published one
never twice: deterministic signal ids).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import faust

from pvwatch import metrics
from pvwatch.domain.signals.criteria import SignalMethod, SignalThresholds
from pvwatch.store.signals import (
    RECOMPUTATION_ERRORS,
    MaxSprtMonitor,
    check_maxsprt,
    mark_signals_published,
    refresh_signals,
    unpublished_signals,
)

if TYPE_CHECKING:
    from pvwatch.streams.writer import WriterClient

log = logging.getLogger("pvwatch.signals")

#: `pv_signal_recomputations_total{part, outcome}`: a failing timer is seen by Prometheus (SignalRecomputationFailing).
DISPROPORTIONALITY_OUTCOMES = ("ok", "ebgm-fit-failed", "failed")
MAXSPRT_OUTCOMES = ("ok", "failed")


def initialise_signal_series(thresholds: SignalThresholds, msc_monitor: MaxSprtMonitor | None = None) -> None:
    """Create the signal counter of every method and the recomputation counter of every outcome at 0 when the timer
    starts, so the alerting rules' increase() sees the first (a child created by its first inc() is first scraped
    at 1: no increase)."""
    for method in SignalMethod:
        metrics.SIGNALS_RAISED.labels(method.value, thresholds.criterion(method))
    for outcome in DISPROPORTIONALITY_OUTCOMES:
        metrics.SIGNAL_RECOMPUTATIONS.labels("disproportionality", outcome)
    if msc_monitor is not None:
        metrics.SIGNALS_RAISED.labels("maxsprt", _threshold(thresholds, "maxsprt"))
        for outcome in MAXSPRT_OUTCOMES:
            metrics.SIGNAL_RECOMPUTATIONS.labels("maxsprt", outcome)


async def refresh_and_publish(writer: WriterClient, topic: faust.TopicT, thresholds: SignalThresholds,
                              msc_monitor: MaxSprtMonitor | None = None) -> None:
    """One timer tick; a failure is logged, counted and retried at the next tick, never raised into the worker.

    The MaxSPRT surveillance of MSC infusions runs whether or not the disproportionality recomputation worked: a
    failure of one never silences the other."""
    now = datetime.now(UTC)
    try:
        refresh = await writer.run_on_store("signals", refresh_signals, thresholds, now)
    except RECOMPUTATION_ERRORS as error:
        log.warning("signal recomputation failed (retried at the next tick): %s", error)
        metrics.SIGNAL_RECOMPUTATIONS.labels("disproportionality", "failed").inc()
    else:
        metrics.SIGNAL_RECOMPUTATIONS.labels("disproportionality",
                                             "ebgm-fit-failed" if refresh.fit_error else "ok").inc()
        for method, count in refresh.active.items():
            metrics.SIGNALS_ACTIVE.labels(method.value, thresholds.criterion(method)).set(count)
        if refresh.fit_error:
            log.warning("EBGM columns left empty this run: %s", refresh.fit_error)
    if msc_monitor is not None:
        try:
            crossed = await writer.run_on_store("signals", check_maxsprt, msc_monitor, now)
        except RECOMPUTATION_ERRORS as error:
            log.warning("MaxSPRT check failed (retried at the next tick): %s", error)
            metrics.SIGNAL_RECOMPUTATIONS.labels("maxsprt", "failed").inc()
        else:
            metrics.SIGNAL_RECOMPUTATIONS.labels("maxsprt", "ok").inc()
            if crossed is not None:
                log.warning("MaxSPRT boundary crossed: %s after MSC infusions (LLR %.3f >= CV %.3f)",
                            crossed.event, crossed.llr, crossed.critical_value)
    try:
        pending = await writer.run_on_store("signals", unpublished_signals)
    except RECOMPUTATION_ERRORS as error:
        log.warning("reading the signal outbox failed (retried at the next tick): %s", error)
        return
    if not pending:
        return
    try:
        futures = [await topic.send(key=f"{s.product}\x1f{s.event}".encode(), value=s.model_dump_json().encode())
                   for s in pending]
        await asyncio.gather(*futures)
    except Exception as error:  # broker unavailable: the signals stay in the outbox for the next tick
        log.warning("publishing %d signal(s) failed (kept in the outbox, retried): %s", len(pending), error)
        return
    await writer.run_on_store("signals", mark_signals_published, [str(s.signal_id) for s in pending])
    for signal in pending:
        metrics.SIGNALS_RAISED.labels(signal.method, _threshold(thresholds, signal.method)).inc()
    log.info("published %d signal(s) (new or strengthened)", len(pending))


def _threshold(thresholds: SignalThresholds, method: str) -> str:
    """The metric label of a published signal's threshold; MaxSPRT's is its exact critical value (docs/signals.md)."""
    if method == "maxsprt":
        return "llr>=critical_value"
    return thresholds.criterion(SignalMethod(method))
