"""Live and replay derive identical tables: the same log, through the real worker or `pvwatch replay`."""

from __future__ import annotations

import shutil
import time

import duckdb
import pytest
from click.testing import CliRunner

from pvwatch.cli import cli
from pvwatch.cohort import generate_cohort
from pvwatch.domain import ctcae
from pvwatch.domain.engine import RULE_IDS, WITHDRAWABLE_RULES
from pvwatch.events.codec import parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.metrics_client import scrape_labelled
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for
from tests.scenarios.stories import all_stories, late_and_out_of_order
from tests.unit.test_rule_withdrawal import ALP, ALT, BILIRUBIN, case_version, lab, sledai, taper

pytestmark = pytest.mark.integration

DERIVED_ALERT_COLUMNS = (
    "alert_id, rule_id, rule_version, severity, patient, case_id, evidence_event_ids, occurred_at, summary, details"
)


def alerts_of(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT {DERIVED_ALERT_COLUMNS} FROM alerts ORDER BY alert_id").fetchall()
    finally:
        con.close()


def expedited_reports_of(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT * FROM expedited_reports ORDER BY case_id, category").fetchall()
    finally:
        con.close()


def assert_same(rebuilt: list[tuple], live: list[tuple]) -> None:
    only_replay = [row for row in rebuilt if row not in live]
    only_live = [row for row in live if row not in rebuilt]
    assert not only_replay and not only_live, f"replay only: {only_replay}\nlive only: {only_live}"


def late_results(events: list[EventEnvelope]) -> list[EventEnvelope]:
    """The events whose late arrival can make an alert untrue (docs/rules.md): report submissions (an overdue
    clock that was not), ALP results (a cholestatic pattern near a Hy's law pair) and, before each taper or stop,
    the latest disease-activity score of each kind (the flare's baseline, which an earlier score stood in for)."""
    alp = ctcae.Analyte.ALP
    late: list[EventEnvelope] = [e for e in events if e.type == "report-submitted"
                                 or (e.type == "lab-result" and ctcae.LOINC_ANALYTES.get(e.loinc_code) is alp)]
    scores = sorted((e for e in events if e.type == "disease-activity"), key=lambda e: e.occurred_at)
    for change in (e for e in events if e.type in ("treatment-tapered", "treatment-stopped")):
        before: dict[tuple[str, str], EventEnvelope] = {}
        for score in scores:
            if score.patient == change.patient and score.occurred_at <= change.occurred_at:
                before[(score.instrument, score.assessed_by)] = score
        late += before.values()
    return list({e.event_id: e for e in late}.values())


def test_replay_rebuilds_exactly_what_the_live_worker_derived(workers: Workers, demo_pseudonymiser, tmp_path):
    """A cohort of every event type plus every planted story (so every rule fires), arriving shuffled, and the
    results that can make an alert untrue arriving after a clock tick: the worker withdraws the alerts they make
    untrue (a cholestatic ALP near a Hy's law pair, the real baseline of a flare, an on-time submission of a clock
    reported overdue), and replay of the complete log never raises them."""
    events = [parse_event(demo_pseudonymiser.pseudonymise_record(r)) for r in generate_cohort(30, seed=21)]
    events += [event for story in all_stories() for event in story.events]
    # The brief's stories (tests/unit/test_rule_withdrawal.py): ALT 4 x ULN day 1, bilirubin 3 x ULN day 3, a late
    # ALP 2.5 x ULN day 2 (FDA DILI guidance 2009: cholestasis); SLEDAI-2K 4, a taper, 8 (a rise of 4: SELENA), and a
    # late 6 before the taper, the real baseline (a rise of 2).
    events += [lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3), lab(ALP, 2.5, 2)]
    events += [sledai(4, 0), taper(10), sledai(8, 30), sledai(6, 5)]
    # and a case's fatal version arriving after its hospitalisation known the same day (ICH E2A III.A.1: the 7-day
    # report covers the case, so its 15-day clock goes)
    fatal = case_version(2.0, death=True)
    events += [case_version(2.1, death=False), fatal]
    # and an ALT of 6 x ULN (CTCAE v5.0 grade 3) of another patient whose first ALT, 2.5 x ULN, arrives after it:
    # against that abnormal baseline it is 2.4 x baseline, grade 1
    other = {"patient": "pt-" + "8" * 20}
    first_alt = lab(ALT, 2.5, -5).model_copy(update=other)
    events += [first_alt, lab(ALT, 6.0, 40).model_copy(update=other)]
    events = late_and_out_of_order(events, seed=4)  # rules go by occurred_at, not arrival
    late = {e.event_id for e in late_results(events)} | {fatal.event_id, first_alt.event_id}
    worker = workers.start(env={"PVWATCH_CLOCK_INTERVAL_S": "1"})
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            if event.event_id not in late:
                publisher.publish(event)
        publisher.flush()
        wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(events) - len(late), 60,
                 what="all but the late results stored")
        wait_for(lambda: workers.metric(worker, "pv_expedited_reports_overdue") >= 1, 20, what="clock timer ran")
        for event in events:
            if event.event_id in late:
                publisher.publish(event)
    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(events), 60, what="all stored")
    time.sleep(1.5)  # one more timer tick after the last batch: every due-soon/overdue alert is stored
    withdrawn = scrape_labelled(worker.metrics_url, "pv_alerts_withdrawn_total")
    worker.stop()
    assert all(withdrawn[(("rule", rule),)] >= 1 for rule in WITHDRAWABLE_RULES), withdrawn

    live = alerts_of(workers.db)
    live_clocks = expedited_reports_of(workers.db)
    rules = {row[1] for row in live}
    assert rules == set(RULE_IDS), f"the cohort must exercise every rule; missing {set(RULE_IDS) - rules}"
    assert live_clocks, "the cohort must start expedited clocks"

    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copy(workers.db, rebuilt)
    con = duckdb.connect(str(rebuilt))
    con.execute("DELETE FROM alerts")
    con.execute("DELETE FROM expedited_reports")
    con.close()
    result = CliRunner().invoke(cli, ["replay", "--db", str(rebuilt)])
    assert result.exit_code == 0, result.output
    replayed = alerts_of(rebuilt)
    assert_same(replayed, live)
    assert f"{len(replayed)} alerts ({len(replayed)} added, 0 removed)" in result.output
    assert expedited_reports_of(rebuilt) == live_clocks

    again = CliRunner().invoke(cli, ["replay", "--db", str(rebuilt)])
    assert "(0 added, 0 removed)" in again.output, "replay is idempotent"
    assert alerts_of(rebuilt) == live
    assert expedited_reports_of(rebuilt) == live_clocks
