"""Every planted story (tests/scenarios/*.yaml) through the real broker, a real worker process and its DuckDB
file, arriving shuffled: the alerts each story must raise (and no forbidden one), the expedited clocks in the
`expedited_reports` table, the derived adverse event, and the clock gauges the Prometheus rules read."""

from __future__ import annotations

import json
import shutil
from operator import attrgetter

import duckdb
import pytest
from click.testing import CliRunner

from pvwatch.cli import cli
from pvwatch.events.alert import SafetyAlert
from pvwatch.metrics_client import scrape_labelled
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for
from tests.scenarios.stories import all_stories, late_and_out_of_order

pytestmark = pytest.mark.integration


def stored_alerts(path) -> list[SafetyAlert]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT alert_id, rule_id, rule_version, severity, patient, case_id, evidence_event_ids, "
                           "occurred_at, raised_at, summary, details FROM alerts").fetchall()
    finally:
        con.close()
    return [SafetyAlert(alert_id=r[0], rule_id=r[1], rule_version=r[2], severity=r[3], patient=r[4], case_id=r[5],
                        evidence_event_ids=tuple(r[6]), occurred_at=r[7], raised_at=r[8], summary=r[9],
                        details=json.loads(r[10])) for r in rows]


def test_every_story_raises_its_alerts_through_broker_and_worker(workers: Workers):
    stories = all_stories()
    events = [event for story in stories for event in story.events]
    events = late_and_out_of_order(events, seed=5)  # across patients and stories
    worker = workers.start(env={"PVWATCH_CLOCK_INTERVAL_S": "1"})
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            publisher.publish(event)
    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(events), 60, what="all stored")
    # the fatal SUSAR's follow-up clock ran out in March 2026: the timer must report it
    wait_for(lambda: workers.metric(worker, "pv_expedited_reports_overdue") == 1, 20, what="overdue gauge")
    open_clocks = scrape_labelled(worker.metrics_url, "pv_expedited_clocks_open")
    assert open_clocks[(("category", "7-day-follow-up"),)] == 1
    assert open_clocks[(("category", "7-day"),)] == 0  # submitted on time: the clock stopped
    assert workers.metric(worker, "pv_expedited_nearest_deadline_seconds") < 0
    wait_for(lambda: workers.metric(worker, "pv_alerts_raised_total") >= sum(len(s.must_raise) for s in stories),
             20, what="every alert")
    worker.stop()

    alerts = stored_alerts(workers.db)
    for story in stories:
        patients = {event.patient for event in story.events}
        story.check([a for a in alerts if a.patient in patients])

    con = duckdb.connect(str(workers.db), read_only=True)
    try:
        clocks = con.execute("SELECT case_id, category, day0::VARCHAR, due_date::VARCHAR, status "
                             "FROM expedited_reports ORDER BY category").fetchall()
        derived = con.execute("SELECT ctcae_term, ctcae_grade FROM derived_adverse_events").fetchall()
        status_now = con.execute("SELECT category, status_now FROM expedited_report_status ORDER BY 1").fetchall()
    finally:
        con.close()
    assert clocks == [("C-PE-1", "7-day", "2026-03-02", "2026-03-09", "submitted"),
                      ("C-PE-1", "7-day-follow-up", "2026-03-02", "2026-03-17", "open")]
    assert status_now == [("7-day", "submitted"), ("7-day-follow-up", "overdue")]
    assert derived == [("Neutrophil count decreased", 3)]


def test_a_restarted_worker_continues_every_rule_where_the_last_one_stopped(workers: Workers, tmp_path):
    """Half the stories' events, a worker restart (histories and clocks rebuilt from the log), then the rest: the
    stored alerts and clocks are exactly what `pvwatch replay` derives from the whole log, nothing twice."""
    stories = all_stories()
    events = [event for story in stories for event in story.events]
    events = late_and_out_of_order(events, seed=9)
    half = len(events) // 2
    first = workers.start(env={"PVWATCH_CLOCK_INTERVAL_S": "1"})
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events[:half]:
            publisher.publish(event)
    wait_for(lambda: workers.metric(first, "pv_events_ingested_total") >= half, 60, what="first half stored")
    assert first.stop() == 0, "a clean stop (SIGTERM) closes and checkpoints the store"
    second = workers.start(env={"PVWATCH_CLOCK_INTERVAL_S": "1"})
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events[half:]:
            publisher.publish(event)
    wait_for(lambda: workers.metric(second, "pv_events_ingested_total") >= len(events) - half, 60, what="rest")
    wait_for(lambda: workers.metric(second, "pv_expedited_reports_overdue") == 1, 20, what="clock timer ran")
    assert second.stop() == 0, "a clean stop (SIGTERM) closes and checkpoints the store"

    live = stored_alerts(workers.db)
    assert len({a.alert_id for a in live}) == len(live)
    for story in stories:
        story.check([a for a in live if a.patient in {e.patient for e in story.events}])
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copy(workers.db, rebuilt)
    result = CliRunner().invoke(cli, ["replay", "--db", str(rebuilt)])
    assert result.exit_code == 0, result.output
    assert f"{len(live)} alerts (0 added, 0 removed)" in result.output
    by_id = attrgetter("alert_id")
    assert [a.model_dump(exclude={"raised_at"}) for a in sorted(stored_alerts(rebuilt), key=by_id)] == \
        [a.model_dump(exclude={"raised_at"}) for a in sorted(live, key=by_id)]
