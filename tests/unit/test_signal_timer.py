"""The worker's signal timer counts every tick's outcome, so a timer that keeps failing is seen by Prometheus
(SignalRecomputationFailing) and not only in the worker's log; a failure is never raised into the worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import duckdb

from pvwatch import metrics
from pvwatch.domain.signals.criteria import SignalMethod, SignalThresholds
from pvwatch.store.signals import SignalRefresh, refresh_signals, unpublished_signals
from pvwatch.streams.signal_timer import initialise_signal_series, refresh_and_publish


class StoreThatAnswers:
    """Stands in for the writer process: answers the timer's store calls with what a store would return."""

    def __init__(self, refresh: SignalRefresh | Exception) -> None:
        self.refresh = refresh

    async def run_on_store(self, name: str, function: Callable[..., Any], *args: Any) -> Any:
        if function is refresh_signals:
            if isinstance(self.refresh, Exception):
                raise self.refresh
            return self.refresh
        assert function is unpublished_signals, function
        return []  # nothing to publish: the topic is never used


def outcomes() -> dict[str, float]:
    return {outcome: metrics.REGISTRY.get_sample_value("pv_signal_recomputations_total", {"outcome": outcome}) or 0.0
            for outcome in ("ok", "ebgm-fit-failed", "failed")}


def tick(store: StoreThatAnswers) -> dict[str, float]:
    before = outcomes()
    asyncio.run(refresh_and_publish(store, None, SignalThresholds()))  # type: ignore[arg-type]
    after = outcomes()
    return {outcome: after[outcome] - before[outcome] for outcome in after if after[outcome] != before[outcome]}


def test_each_tick_is_counted_by_its_outcome_and_a_failure_stays_in_the_timer():
    done = SignalRefresh({method: 0 for method in SignalMethod}, [], None, 12)
    ebgm_empty = SignalRefresh({method: 0 for method in SignalMethod}, [], "no product-event pair with a >= 1", 0)
    assert tick(StoreThatAnswers(done)) == {"ok": 1}
    assert tick(StoreThatAnswers(ebgm_empty)) == {"ebgm-fit-failed": 1}
    assert tick(StoreThatAnswers(duckdb.IOException("could not read the store"))) == {"failed": 1}


def test_every_outcome_series_exists_from_the_start():
    initialise_signal_series(SignalThresholds())
    assert all(value is not None for value in (
        metrics.REGISTRY.get_sample_value("pv_signal_recomputations_total", {"outcome": outcome})
        for outcome in ("ok", "ebgm-fit-failed", "failed")))
