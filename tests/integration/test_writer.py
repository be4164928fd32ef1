"""The worker's store writer process (streams/writer.py): the batch step runs in a child of the worker.

What an operator relies on: the worker writes through its child by default; if that child dies, the worker stops
at once with a clear error and a non-zero exit instead of consuming on without a store; and a restart then stores
every event exactly once (offsets move only after a batch is durable; the store deduplicates on event_id).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import duckdb
import pytest

from pvwatch.events import AdverseEventReported
from pvwatch.metrics_client import scrape_labelled
from pvwatch.streams.app import EXIT_WRITER_FAILED
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for
from tests.integration.test_pipeline import cohort_events

pytestmark = pytest.mark.integration


def writer_pid(worker_pid: int) -> int | None:
    """The worker's writer: its spawned child (multiprocessing's resource tracker is the other child)."""
    for task in Path(f"/proc/{worker_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                return int(child)
    return None


def stored_ids(db: Path) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [row[0] for row in con.execute("SELECT event_id::VARCHAR FROM event_log").fetchall()]
    finally:
        con.close()


def test_writer_death_stops_the_worker_and_a_restart_stores_every_event_once(workers: Workers, demo_pseudonymiser):
    events = cohort_events(2500, seed=7, pseudonymiser=demo_pseudonymiser)
    small_batches = {"PVWATCH_BATCH_MAX_EVENTS": "50"}
    first = workers.start(env=small_batches)
    pid = wait_for(lambda: writer_pid(first.process.pid), 10, what="the writer process")
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            publisher.publish(event)
    wait_for(lambda: workers.metric(first, "pv_events_ingested_total") >= 300, 60, 0.02, "first batches stored")

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while first.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.process.returncode == EXIT_WRITER_FAILED, "the worker stops when its writer dies"
    log = first.log_path.read_text(errors="replace")
    assert "store writer process" in log and "exited with code -9" in log, "the error says what happened"
    stored_before_restart = len(stored_ids(workers.db))
    assert 0 < stored_before_restart < len(events), "the writer died mid-stream"

    second = workers.start(env=small_batches)
    assert writer_pid(second.process.pid) is not None
    # Wait for the events stored, not for a group lag of 0: the embedded broker reports end offsets below the
    # true end (8 after 26 records), so the lag can read 0 before the restarted worker has caught up.
    rest = len(events) - stored_before_restart
    wait_for(lambda: workers.metric(second, "pv_events_ingested_total") >= rest, 90, 0.5,
             "the restarted worker stored the rest")
    second.stop()

    assert_each_event_stored_once_and_serious_cases_alerted(workers.db, events)


def test_in_process_writer_stores_and_alerts_the_same(workers: Workers, demo_pseudonymiser):
    """PVWATCH_WRITER_PROCESS=false (debugging) runs the same batch step in the worker: same store, same alerts."""
    events = cohort_events(300, seed=8, pseudonymiser=demo_pseudonymiser)
    worker = workers.start(env={"PVWATCH_WRITER_PROCESS": "false"})
    assert writer_pid(worker.process.pid) is None
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            publisher.publish(event)
    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") == len(events), 60, what="all stored")
    serious_cases = {e.case_id for e in events if e.seriousness.is_serious}
    alerted = scrape_labelled(worker.metrics_url, "pv_alerts_raised_total")
    assert sum(v for labels, v in alerted.items() if ("rule", "serious-ae") in labels) == len(serious_cases)
    worker.stop()
    assert_each_event_stored_once_and_serious_cases_alerted(workers.db, events)


def assert_each_event_stored_once_and_serious_cases_alerted(db: Path, events: list[AdverseEventReported]) -> None:
    assert sorted(stored_ids(db)) == sorted(str(e.event_id) for e in events), "every event stored, none twice"
    con = duckdb.connect(str(db), read_only=True)
    try:
        alerts = [r[0] for r in con.execute("SELECT case_id FROM alerts WHERE rule_id = 'serious-ae'").fetchall()]
    finally:
        con.close()
    serious_cases = {e.case_id for e in events if e.seriousness.is_serious}
    assert sorted(alerts) == sorted(serious_cases), "each serious case alerted once (ICH E2A seriousness)"
