"""An operator closes dead letters with `pvwatch dlq`: the worker records who and why, the open count falls
(so the "DLQ not empty" alert can clear) and stays fallen through a worker restart."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from pvwatch.events import DEAD_LETTER_TOPIC, AdverseEventReported
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for
from tests.integration.test_cli_commands import pvwatch

pytestmark = pytest.mark.integration


def listed(snapshot: Path, *flags: str) -> list[dict[str, str]]:
    run = pvwatch("dlq", "list", "--db", str(snapshot), "--csv", *flags)
    assert run.returncode == 0, run.stderr
    return list(csv.DictReader(io.StringIO(run.stdout)))


def test_resolved_dead_letters_close_with_actor_and_reason_and_stay_closed_after_restart(workers: Workers):
    worker = workers.start()
    with EventPublisher(workers.broker.bootstrap) as publisher:
        publisher.publish_raw(AdverseEventReported.topic, b"{not json", key=b"pt-bad")
        publisher.publish_raw(AdverseEventReported.topic, b'{"type": "horoscope"}', key=b"pt-bad")
    wait_for(lambda: workers.metric(worker, "pv_dead_letter_messages") == 2, 30, what="two dead letters")
    snapshot = workers.db.with_name(workers.db.name + ".snapshot.duckdb")
    wait_for(lambda: snapshot.exists() and len(listed(snapshot)) == 2, 30, what="the snapshot to list them")
    rows = listed(snapshot)
    assert {row["reason"] for row in rows} == {"not_json", "unknown_type"}
    not_json = next(row["dead_letter_id"] for row in rows if row["reason"] == "not_json")

    refused = pvwatch("dlq", "resolve", "not-an-id", "--actor", "ops", "--reason", "x",
                      "--bootstrap-servers", workers.broker.bootstrap)
    assert refused.returncode == 2 and "64 hex digits" in refused.stderr

    run = pvwatch("dlq", "resolve", not_json, "--actor", "ops-anna", "--reason", "test message, discarded",
                  "--bootstrap-servers", workers.broker.bootstrap)
    assert run.returncode == 0, run.stderr
    wait_for(lambda: workers.metric(worker, "pv_dead_letter_messages") == 1, 30, what="one dead letter closed")
    wait_for(lambda: len(listed(snapshot)) == 1, 30, what="the snapshot to drop it from the open list")
    closed = [row for row in listed(snapshot, "--all") if row["dead_letter_id"] == not_json]
    assert closed[0]["status"] == "resolved" and closed[0]["resolved_by"] == "ops-anna"
    assert closed[0]["resolution"] == "test message, discarded"

    again = pvwatch("dlq", "resolve", not_json, "--actor", "ops-bob", "--reason", "again",
                    "--bootstrap-servers", workers.broker.bootstrap)
    assert again.returncode == 0
    # a marker behind the second resolution in the same partition: once it is stored, the resolution was seen
    with EventPublisher(workers.broker.bootstrap) as publisher:
        publisher.publish_raw(DEAD_LETTER_TOPIC, b"marker", key=not_json.encode(), headers=[("pv-reason", b"schema")])
    wait_for(lambda: workers.metric(worker, "pv_dead_letter_messages") == 2, 30, what="the marker stored")
    worker.stop()
    restarted = workers.start()
    assert workers.metric(restarted, "pv_dead_letter_messages") == 2, "the open count comes from the store"
    wait_for(lambda: len(listed(snapshot, "--all")) == 3, 30, what="a snapshot from the restarted worker")
    assert next(row for row in listed(snapshot, "--all") if row["dead_letter_id"] == not_json)["resolved_by"] \
        == "ops-anna", "a second resolution of a closed dead letter changes nothing"
