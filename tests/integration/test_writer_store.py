"""The store writer without a broker (streams/writer.py): what a batch returns to the worker, and the child process.

The worker relies on the writer's reply alone to publish alerts, page, move offsets and keep /metrics complete,
so the reply must say exactly what the store now holds. Run on a real DuckDB file and a real child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from pvwatch import metrics
from pvwatch.events import AdverseEventReported, encode_event
from pvwatch.streams.pipeline import record_metrics
from pvwatch.streams.writer import (
    IDLE_CHECKPOINT_BYTES,
    IDLE_CHECKPOINT_S,
    RawMessage,
    StoreWriter,
    WriterFailed,
    start_writer,
)
from tests.integration.test_pipeline import cohort_events

pytestmark = pytest.mark.integration
AE_TOPIC = AdverseEventReported.topic


def raw_batch(events: list[AdverseEventReported], extra: list[bytes] = ()) -> list[RawMessage]:
    values = [encode_event(event) for event in events] + list(extra)
    return [(AE_TOPIC, 0, offset, value, 1_700_000_000.0, {}) for offset, value in enumerate(values)]


def test_a_batch_reply_carries_the_stored_alerts_and_the_metric_facts(tmp_path: Path, demo_pseudonymiser):
    events = cohort_events(60, seed=11, pseudonymiser=demo_pseudonymiser)
    serious_cases = {e.case_id for e in events if e.seriousness.is_serious}  # ICH E2A seriousness criteria
    writer = StoreWriter(tmp_path / "store.duckdb", None, None)
    try:
        # the whole batch, its first event again (a redelivery) and one message that is not JSON
        reply = writer.process(raw_batch(events, [encode_event(events[0]), b"{not json"]))
        writer.mark_published([alert.alert_id for alert in reply.new_alerts], [])  # the outbox sent them
        again = writer.process(raw_batch(events[:5]))
    finally:
        writer.close()

    con = duckdb.connect(str(tmp_path / "store.duckdb"), read_only=True)
    stored = {str(row[0]): row[1] for row in con.execute("SELECT alert_id, rule_id FROM alerts").fetchall()}
    unpublished = con.execute("SELECT count(*) FROM alerts WHERE published_at IS NULL").fetchone()[0]
    con.close()
    assert unpublished == 0, "the alerts sent are marked published"
    assert {alert.alert_id for alert in reply.new_alerts} == set(stored), "the reply names every stored alert"
    published = [json.loads(alert.value) for alert in reply.new_alerts]
    assert {a["case_id"] for a in published if a["rule_id"] == "serious-ae"} == serious_cases
    assert all(alert.key == json.loads(alert.value)["alert_id"].encode() for alert in reply.new_alerts)
    assert all(alert.critical == (json.loads(alert.value)["severity"] == "critical") for alert in reply.new_alerts)
    assert all(alert.evidence_produced_at == 1_700_000_000.0 for alert in reply.new_alerts)
    assert reply.new_dead_letters

    facts = reply.metrics
    assert facts.ingested == Counter({"adverse-event": len(events)})
    assert facts.duplicates == Counter({"adverse-event": 1})
    assert facts.rejected == Counter({(AE_TOPIC, "not_json"): 1})
    assert facts.dead_letters_change == 1
    assert sum(facts.alerts_raised.values()) == len(stored)
    assert facts.batch_size == len(events) and len(facts.store_latencies) == len(events)
    assert again.new_alerts == [] and again.metrics.duplicates == Counter({"adverse-event": 5})

    before = metrics.REGISTRY.get_sample_value("pv_events_ingested_total", {"type": "adverse-event"}) or 0.0
    record_metrics(facts)
    after = metrics.REGISTRY.get_sample_value("pv_events_ingested_total", {"type": "adverse-event"})
    assert after == before + len(events), "recorded where /metrics is served"


def test_the_writer_process_stores_a_batch_and_reports_its_own_death(tmp_path: Path, demo_pseudonymiser):
    events = cohort_events(30, seed=12, pseudonymiser=demo_pseudonymiser)
    failures: list[WriterFailed] = []

    async def scenario() -> None:
        writer, opening = await start_writer(tmp_path / "store.duckdb", None, None, in_process=False,
                                             on_failure=failures.append)
        assert opening.pending_alerts == [] and opening.metrics.dead_letters_open == 0
        reply = await writer.process(raw_batch(events))
        assert reply.metrics.ingested == Counter({"adverse-event": len(events)})
        os.kill(writer.child.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        with pytest.raises(WriterFailed, match="exited with code -9"):
            await writer.process(raw_batch(events))
        await writer.close()

    asyncio.run(scenario())
    assert len(failures) == 1, "the worker's failure handler is told once"
    con = duckdb.connect(str(tmp_path / "store.duckdb"), read_only=True)  # the lock went with the child
    assert con.execute("SELECT count(*) FROM event_log").fetchone()[0] == len(events)
    con.close()


def test_a_writer_told_to_stop_by_sigterm_leaves_every_stored_batch_in_the_store_file_itself(
    tmp_path: Path, demo_pseudonymiser
):
    """The writer gets SIGTERM when its worker dies (PR_SET_PDEATHSIG) or when a stop reaches the process group.
    It closes the store then, so the committed batches are checkpointed into the .duckdb file: a copy of that
    file alone (what an operator backs up, what replay tests copy) holds them, not only the .wal beside it."""
    events = cohort_events(30, seed=13, pseudonymiser=demo_pseudonymiser)
    store = tmp_path / "store.duckdb"

    async def scenario() -> None:
        writer, _ = await start_writer(store, None, None, in_process=False, on_failure=lambda failure: None)
        await writer.process(raw_batch(events))
        child = writer.child  # type: ignore[attr-defined]
        os.kill(child.pid, signal.SIGTERM)
        child.join(30)
        assert child.exitcode == 0, "SIGTERM ends the writer's loop, it does not kill it"
        await writer.close()

    asyncio.run(scenario())
    assert not Path(f"{store}.wal").exists(), "the store was closed and checkpointed"
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(store.read_bytes())
    con = duckdb.connect(str(copy), read_only=True)
    assert con.execute("SELECT count(*) FROM event_log").fetchone()[0] == len(events)
    con.close()


def test_checkpoint_if_due_checkpoints_only_once_the_wal_passes_its_bound(tmp_path: Path, demo_pseudonymiser):
    """A checkpoint blocks the writer, so the child calls checkpoint_if_due between batches (after a reply, or when
    the traffic pauses), never inside a batch's COMMIT as DuckDB's own does: below the bound the WAL is left to
    grow; past it, the store file alone holds every batch. (Where serve() calls it is read in review, not here.)"""
    events = cohort_events(200, seed=14, pseudonymiser=demo_pseudonymiser)
    store = tmp_path / "store.duckdb"
    writer = StoreWriter(store, None, None)
    try:
        writer.process(raw_batch(events[:100]))
        wal = writer.store.wal_bytes()
        assert wal > 0, "a committed batch is in the WAL until a checkpoint"
        assert not writer.checkpoint_if_due(wal + 1)
        assert writer.store.wal_bytes() == wal
        writer.process(raw_batch(events[100:]))
        assert writer.checkpoint_if_due(wal + 1)
        assert writer.store.wal_bytes() == 0, "checkpointed into the store file"
        copy = tmp_path / "copy.duckdb"
        copy.write_bytes(store.read_bytes())  # the store file alone, while the writer still holds it
    finally:
        writer.close()
    con = duckdb.connect(str(copy), read_only=True)
    assert con.execute("SELECT count(*) FROM event_log").fetchone()[0] == len(events)
    con.close()


def test_a_writer_process_left_idle_checkpoints_what_it_stored(tmp_path: Path, demo_pseudonymiser):
    """When the traffic pauses the writer checkpoints (IDLE_CHECKPOINT_S), so the checkpoint costs no batch any
    time and the store file alone holds every batch stored before the pause."""
    events = cohort_events(300, seed=15, pseudonymiser=demo_pseudonymiser)
    store = tmp_path / "store.duckdb"

    async def scenario() -> None:
        writer, _ = await start_writer(store, None, None, in_process=False, on_failure=lambda failure: None)
        try:
            await writer.process(raw_batch(events))
            assert Path(f"{store}.wal").stat().st_size >= IDLE_CHECKPOINT_BYTES, "enough for an idle checkpoint"
            deadline = time.monotonic() + 10 * IDLE_CHECKPOINT_S + 5
            while Path(f"{store}.wal").exists() and Path(f"{store}.wal").stat().st_size and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            copy = tmp_path / "copy.duckdb"
            copy.write_bytes(store.read_bytes())  # while the writer still runs and holds the store
        finally:
            await writer.close()
        con = duckdb.connect(str(copy), read_only=True)
        assert con.execute("SELECT count(*) FROM event_log").fetchone()[0] == len(events)
        con.close()

    asyncio.run(scenario())


def test_a_batch_redelivered_in_part_stores_and_alerts_its_new_events_once(tmp_path: Path, demo_pseudonymiser):
    """The writer inserts a batch's events as new first (cheaper); one stored before (a redelivery after a restart
    or a rebalance) voids that try, and the batch is stored again skipping it: the new events once, their rules run
    once, the outbox's marks carried by the batch kept."""
    events = cohort_events(60, seed=16, pseudonymiser=demo_pseudonymiser)
    store = tmp_path / "store.duckdb"
    writer = StoreWriter(store, None, None)
    try:
        first = writer.process(raw_batch(events[:30]))
        sent = [alert.alert_id for alert in first.new_alerts]
        second = writer.process(raw_batch(events[20:]), sent)
    finally:
        writer.close()
    assert len(events) > 35, "new events after the redelivered ones"
    assert second.metrics.ingested == Counter({"adverse-event": len(events) - 30})
    assert second.metrics.duplicates == Counter({"adverse-event": 10})
    serious_later = {e.case_id for e in events[30:] if e.seriousness.is_serious}  # ICH E2A seriousness criteria
    assert {json.loads(a.value)["case_id"] for a in second.new_alerts
            if json.loads(a.value)["rule_id"] == "serious-ae"} == serious_later
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM event_log").fetchone() == (len(events),) * 2
    rows = con.execute("SELECT alert_id FROM alerts WHERE published_at IS NULL").fetchall()
    unpublished = {str(row[0]) for row in rows}
    con.close()
    assert sent and unpublished == {alert.alert_id for alert in second.new_alerts}, "the first batch's marks kept"


class RecordingTopic:
    """Stands in for a Faust topic: records what is sent (the outbox awaits send, then the future)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, bytes]] = []

    async def send(self, key: object, value: bytes, headers: dict[str, bytes] | None = None) -> asyncio.Future[None]:
        self.sent.append(headers or {})
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_the_outbox_sends_each_dead_letter_once_and_forgets_it_once_its_mark_is_stored(tmp_path: Path,
                                                                                        demo_pseudonymiser):
    from pvwatch.streams.app import Outbox
    from pvwatch.streams.writer import InProcessWriter

    events = cohort_events(10, seed=12, pseudonymiser=demo_pseudonymiser)

    async def scenario() -> tuple[int, int, int, int]:
        writer = InProcessWriter(StoreWriter(tmp_path / "store.duckdb", None, None))
        letters = RecordingTopic()
        outbox = Outbox(writer, RecordingTopic(), letters, [])  # type: ignore[arg-type]
        try:
            outbox.add(await writer.process(raw_batch(events[:5], [b"{not json"])))
            await outbox.flush()  # sends the dead letter; its mark waits for the next batch
            outbox.has_pending_letters = True
            await outbox.flush()  # still unpublished in the store: not sent again
            sent_before_mark, remembered = len(letters.sent), len(outbox.dead_letters_sent)
            outbox.add(await writer.process(raw_batch(events[5:]), *outbox.take_marks()))  # carries the mark
            outbox.has_pending_letters = True
            await outbox.flush()
            return sent_before_mark, remembered, len(letters.sent), len(outbox.dead_letters_sent)
        finally:
            await writer.close()

    sent_before_mark, remembered, sent, left = asyncio.run(scenario())
    assert (sent_before_mark, remembered) == (1, 1)
    assert sent == 1, "a dead letter is published once"
    assert left == 0, "once its mark is stored the outbox forgets it: the set does not grow with every bad message"


def test_a_report_under_another_patients_case_id_is_dead_lettered_not_merged(tmp_path: Path, demo_pseudonymiser):
    """Clocks and case alerts are keyed on the case id, so a second patient's report under it would overwrite the
    first patient's clock and serious-ae alert. It is refused with a reason instead, in a later batch, in the same
    batch, and after a restart (the engine's memory of the log knows whose case it is)."""
    first = cohort_events(1, seed=21, pseudonymiser=demo_pseudonymiser)[0]
    other = next(e for e in cohort_events(40, seed=22, pseudonymiser=demo_pseudonymiser) if e.patient != first.patient)
    imposter = other.model_copy(update={"case_id": first.case_id})
    follow_up = first.model_copy(update={"event_id": uuid.uuid4(), "report_kind": "follow-up"})
    db = tmp_path / "store.duckdb"
    writer = StoreWriter(db, None, None)
    try:
        writer.process(raw_batch([first]))
        later = writer.process(raw_batch([imposter, follow_up]))
    finally:
        writer.close()
    writer = StoreWriter(db, None, None)  # a restarted worker
    try:
        again = writer.process(raw_batch([imposter.model_copy(update={"event_id": uuid.uuid4()})]))
    finally:
        writer.close()
    fresh = tmp_path / "fresh.duckdb"
    writer = StoreWriter(fresh, None, None)
    try:
        same_batch = writer.process(raw_batch([first, imposter]))
    finally:
        writer.close()

    for reply in (later, again, same_batch):
        assert reply.metrics.rejected == Counter({(AE_TOPIC, "case_conflict"): 1}) and reply.new_dead_letters
    assert later.metrics.ingested == Counter({"adverse-event": 1}), "the first patient's follow-up is stored"
    con = duckdb.connect(str(db), read_only=True)
    try:
        patients = con.execute("SELECT DISTINCT patient FROM event_log WHERE type = 'adverse-event'").fetchall()
        detail = con.execute("SELECT reason, detail FROM dead_letters").fetchall()
    finally:
        con.close()
    assert patients == [(first.patient,)]
    assert all(reason == "case_conflict" and first.case_id in text and other.patient not in text
               for reason, text in detail) and len(detail) == 2
