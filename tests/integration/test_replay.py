"""Live and replay derive identical tables: the same log, through the real worker or `pvwatch replay`."""

from __future__ import annotations

import random
import shutil
from uuid import uuid4

import duckdb
import pytest
from click.testing import CliRunner

from pvwatch.cli import cli
from pvwatch.cohort import generate_cohort
from pvwatch.events import AdverseEventReported
from pvwatch.events.adverse_event import ReporterType
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for

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


def duplicate_report(original: AdverseEventReported) -> AdverseEventReported:
    """The same episode reported again by the other kind of reporter, under a new case id."""
    other = ReporterType.CLINICIAN if original.reporter_type == "parent" else ReporterType.PARENT
    return original.model_copy(update={"event_id": uuid4(), "case_id": original.case_id + "-DUP",
                                       "reporter_type": other})


def test_replay_rebuilds_exactly_what_the_live_worker_derived(workers: Workers, demo_pseudonymiser, tmp_path):
    events = [AdverseEventReported.model_validate(demo_pseudonymiser.pseudonymise_record(r))
              for r in generate_cohort(80, seed=21)]
    events += [duplicate_report(events[3]), duplicate_report(events[10])]
    random.Random(4).shuffle(events)  # late and out-of-order arrival: rules go by occurred_at
    worker = workers.start()
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            publisher.publish(event)
    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(events), 30, what="all stored")
    worker.stop()

    live = alerts_of(workers.db)
    rules = {row[1] for row in live}
    assert rules == {"serious-ae", "duplicate-case"}, "the scenario must exercise a stateful rule too"

    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copy(workers.db, rebuilt)
    con = duckdb.connect(str(rebuilt))
    con.execute("DELETE FROM alerts")
    con.close()
    result = CliRunner().invoke(cli, ["replay", "--db", str(rebuilt)])
    assert result.exit_code == 0, result.output
    assert f"{len(live)} alerts ({len(live)} added, 0 removed)" in result.output
    assert alerts_of(rebuilt) == live

    again = CliRunner().invoke(cli, ["replay", "--db", str(rebuilt)])
    assert "(0 added, 0 removed)" in again.output, "replay is idempotent"
    assert alerts_of(rebuilt) == live
