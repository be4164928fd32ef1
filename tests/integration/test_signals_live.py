"""The live signal timer on the real broker and a real worker: adverse events in, the signals table recomputed
over the store, the new signal published once on pv.safety.signal.v1 and counted in the metrics."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import duckdb
import pytest

from pvwatch.events import AdverseEventReported
from pvwatch.events.registry import SIGNAL_TOPIC
from pvwatch.metrics_client import scrape_labelled
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for
from tests.integration.test_pipeline import consume_all

pytestmark = pytest.mark.integration


def case(n: int, term: str, product: str) -> AdverseEventReported:
    at = datetime.now(UTC) - timedelta(days=3)
    return AdverseEventReported(
        event_id=uuid4(), occurred_at=at, recorded_at=at, source="test", patient=f"pt-{n:020x}", case_id=f"S{n}",
        reporter_type="clinician", awareness_date=at.date(), term=term, products=[{"name": product}])


def test_worker_recomputes_signals_and_publishes_a_new_one_once(workers: Workers) -> None:
    # 6 MSC fever cases among 60: MSC-UC / Pyrexia has a=6, E=6*6/60=0.6, IC025 = log2(Gamma(6.5).ppf(.025)/1.1)
    # = 1.0 > 0 (Noren 2013): one new IC signal; the Methotrexate background pairs are not signals.
    events = [case(n, "Pyrexia", "MSC-UC") for n in range(6)]
    events += [case(n, ("Nausea", "Rash", "Headache")[n % 3], "Methotrexate") for n in range(6, 60)]
    worker = workers.start(env={"PVWATCH_SIGNAL_INTERVAL_S": "1", "PVWATCH_SNAPSHOT_INTERVAL_S": "1"})
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            publisher.publish(event)

    def raised_ic() -> float:
        values = scrape_labelled(worker.metrics_url, "pv_signals_raised_total")
        ic_labels = {("method", "ic"), ("threshold", "ic025>0")}  # Noren 2013's IC025 > 0
        return sum(v for labels, v in values.items() if ic_labels <= set(labels))

    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(events), 30, what="events stored")
    wait_for(lambda: raised_ic() >= 1, 30, what="IC signal raised")
    records = consume_all(workers.broker.bootstrap, SIGNAL_TOPIC, expected=1, timeout_s=10)
    published = [json.loads(r.value) for r in records]
    ic = [p for p in published if p["method"] == "ic"]
    assert [(p["product"], p["event"], p["kind"], p["a"]) for p in ic] == [("MSC-UC", "Pyrexia", "new", 6)]
    assert all("pt-" not in r.value.decode() for r in records)  # no patient data in signals
    # later ticks find nothing new: still exactly one IC signal on the topic
    wait_for(lambda: workers.metric(worker, "pv_signals_active") >= 1, 10, what="active gauge")
    again = consume_all(workers.broker.bootstrap, SIGNAL_TOPIC, expected=len(records) + 1, timeout_s=3)
    assert len(again) == len(records)
    worker.stop()
    con = duckdb.connect(str(workers.db), read_only=True)
    try:
        row = con.execute("SELECT a, b, c, d, signal_ic FROM signals WHERE product = 'MSC-UC'").fetchone()
    finally:
        con.close()
    assert row == (6, 0, 0, 54, True)


def test_every_signal_counter_is_at_0_from_the_start_so_the_alerting_rules_see_the_first(workers: Workers) -> None:
    """SafetySignalRaised and MaxSprtBoundaryCrossed fire on increase(pv_signals_raised_total): a counter child
    created by its first inc() is first scraped at 1, which increase() does not count, so the first signal of a
    worker would page nobody. The timer creates every method's series at 0 when the worker starts."""
    worker = workers.start(env={"PVWATCH_SIGNAL_INTERVAL_S": "3600", "PVWATCH_MAXSPRT_TERM": "Pyrexia"})
    raised = scrape_labelled(worker.metrics_url, "pv_signals_raised_total")
    worker.stop()
    assert {dict(labels)["method"]: value for labels, value in raised.items()} == \
        {"prr": 0, "ebgm": 0, "ic": 0, "maxsprt": 0}
    thresholds = {dict(labels)["method"]: dict(labels)["threshold"] for labels in raised}
    assert thresholds["ic"] == "ic025>0" and thresholds["maxsprt"] == "llr>=critical_value"  # as the timer labels


def test_worker_publishes_a_maxsprt_crossing_once_and_counts_it(workers: Workers) -> None:
    """MaxSPRT through the real worker's timer (issue 6: "alerting when crossed"): 20 MSC infusions at a background
    rate of 0.05 fevers per infusion expect 1 case; 5 fevers the next day give LLR = -4 + 5 ln 5 = 4.047, past the
    exact critical value 2.921561 for alpha 0.05, T = 10, M = 4 (R Sequential CV.Poisson, pv-rules-and-standards.md).
    The counter it raises is what MaxSprtBoundaryCrossed pages on."""
    from pvwatch.events.infusion import MscInfusionGiven

    given = datetime.now(UTC) - timedelta(days=10)
    events: list = [MscInfusionGiven(event_id=uuid4(), occurred_at=given, recorded_at=given, source="test",
                                     patient=f"pt-{n:020x}", clinic="Clinic A") for n in range(20)]
    fever = given + timedelta(days=1)
    events += [AdverseEventReported(
        event_id=uuid4(), occurred_at=fever, recorded_at=fever, source="test", patient=f"pt-{n:020x}",
        case_id=f"F{n}", reporter_type="clinician", awareness_date=fever.date(), onset_date=fever.date(),
        term="Pyrexia", products=[{"name": "MSC-UC"}]) for n in range(5)]
    worker = workers.start(env={"PVWATCH_SIGNAL_INTERVAL_S": "1", "PVWATCH_MAXSPRT_TERM": "Pyrexia",
                                "PVWATCH_MAXSPRT_RATE": "0.05", "PVWATCH_MAXSPRT_LENGTH": "10",
                                "PVWATCH_MAXSPRT_MIN_EVENTS": "4", "PVWATCH_MAXSPRT_WINDOW_DAYS": "1"})
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            publisher.publish(event)

    def crossings() -> float:
        values = scrape_labelled(worker.metrics_url, "pv_signals_raised_total")
        return sum(v for labels, v in values.items() if ("method", "maxsprt") in labels)

    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(events), 30, what="events stored")
    wait_for(lambda: crossings() >= 1, 30, what="MaxSPRT crossing published")
    time.sleep(2.5)  # two more ticks: the surveillance has ended, nothing is published again
    assert crossings() == 1
    worker.stop()
    published = [json.loads(r.value) for r in consume_all(workers.broker.bootstrap, SIGNAL_TOPIC, expected=1,
                                                          timeout_s=10)]
    maxsprt = [p for p in published if p["method"] == "maxsprt"]
    assert [(p["event"], p["a"], round(p["llr"], 3), round(p["critical_value"], 6)) for p in maxsprt] == \
        [("Pyrexia", 5, 4.047, 2.921561)]
