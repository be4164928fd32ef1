"""The worker's signal timer counts every tick's outcome per part, so a timer that keeps failing is seen by
Prometheus (SignalRecomputationFailing) and not only in the worker's log; a failure is never raised into the
worker, and a failing disproportionality recomputation never stops the MaxSPRT surveillance of MSC infusions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import duckdb

from pvwatch import metrics
from pvwatch.config import Settings
from pvwatch.domain.signals.criteria import SignalMethod, SignalThresholds
from pvwatch.store.signals import MaxSprtMonitor, SignalRefresh, check_maxsprt, refresh_signals, unpublished_signals
from pvwatch.streams.signal_timer import initialise_signal_series, refresh_and_publish

MONITOR = MaxSprtMonitor.from_settings(Settings(maxsprt_term="Pyrexia"))
PARTS = {"disproportionality": ("ok", "ebgm-fit-failed", "failed"), "maxsprt": ("ok", "failed")}


class StoreThatAnswers:
    """Stands in for the writer process: answers the timer's store calls as a store would, or fails them."""

    def __init__(self, refresh: SignalRefresh | Exception, maxsprt: Exception | None = None) -> None:
        self.refresh, self.maxsprt, self.asked = refresh, maxsprt, []

    async def run_on_store(self, name: str, function: Callable[..., Any], *args: Any) -> Any:
        self.asked.append(function)
        if function is refresh_signals:
            if isinstance(self.refresh, Exception):
                raise self.refresh
            return self.refresh
        if function is check_maxsprt:
            if self.maxsprt is not None:
                raise self.maxsprt
            return None  # the boundary not crossed
        assert function is unpublished_signals, function
        return []  # nothing to publish: the topic is never used


def counts() -> dict[tuple[str, str], float]:
    return {(part, outcome): metrics.REGISTRY.get_sample_value(
        "pv_signal_recomputations_total", {"part": part, "outcome": outcome}) or 0.0
        for part, outcomes in PARTS.items() for outcome in outcomes}


def tick(store: StoreThatAnswers) -> dict[tuple[str, str], float]:
    before = counts()
    asyncio.run(refresh_and_publish(store, None, SignalThresholds(), MONITOR))  # type: ignore[arg-type]
    after = counts()
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}


DONE = SignalRefresh({method: 0 for method in SignalMethod}, [], None, 12)


def test_each_tick_is_counted_by_part_and_outcome():
    ebgm_empty = SignalRefresh({method: 0 for method in SignalMethod}, [], "no product-event pair with a >= 1", 0)
    assert tick(StoreThatAnswers(DONE)) == {("disproportionality", "ok"): 1, ("maxsprt", "ok"): 1}
    assert tick(StoreThatAnswers(ebgm_empty)) == {("disproportionality", "ebgm-fit-failed"): 1, ("maxsprt", "ok"): 1}


def test_a_failing_recomputation_is_counted_and_never_stops_the_maxsprt_surveillance():
    store = StoreThatAnswers(duckdb.IOException("could not read the store"))
    assert tick(store) == {("disproportionality", "failed"): 1, ("maxsprt", "ok"): 1}
    assert check_maxsprt in store.asked
    assert tick(StoreThatAnswers(DONE, maxsprt=duckdb.IOException("could not read the infusions"))) == \
        {("disproportionality", "ok"): 1, ("maxsprt", "failed"): 1}


def test_every_outcome_series_exists_from_the_start():
    initialise_signal_series(SignalThresholds(), MONITOR)
    assert all(metrics.REGISTRY.get_sample_value("pv_signal_recomputations_total",
                                                 {"part": part, "outcome": outcome}) is not None
               for part, outcomes in PARTS.items() for outcome in outcomes)
