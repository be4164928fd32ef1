"""An alert a late event made untrue is withdrawn live: deleted from `alerts` in the batch's transaction, its
withdrawal published on pv.safety.alert.v1 (through the outbox: not lost if the worker dies after the commit),
resolved in Alertmanager and counted in pv_alerts_withdrawn_total{rule}.

The story (FDA DILI guidance, July 2009, III.A; ALP >= 2 x ULN and 30 days are the rules.yaml conventions): ALT
4 x ULN on day 1 and total bilirubin 3 x ULN on day 3 arrive: a potential Hy's law case. An ALP of 2.5 x ULN taken on
day 2 arrives after: a cholestatic pattern within the window of both results, so the complete log holds no case.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from pvwatch.cli import cli
from pvwatch.events import ALERT_TOPIC, encode_event
from pvwatch.events.alert import AlertWithdrawal, SafetyAlert
from pvwatch.events.alert_action import AlertAction, AlertActionRecorded
from pvwatch.events.envelope import EventEnvelope
from pvwatch.metrics_client import scrape_labelled
from pvwatch.store.snapshot import publish_snapshot
from pvwatch.streams.alertmanager import alertmanager_alert, load_direct_routes
from pvwatch.streams.producer import EventPublisher
from pvwatch.streams.writer import RawMessage, StoreWriter
from tests.conftest import Workers, wait_for
from tests.integration.test_dashboard_access import NOW, dashboard_config, login, run
from tests.integration.test_pipeline import consume_all
from tests.unit.test_rule_withdrawal import ALP, ALT, BILIRUBIN, case_version, lab

pytestmark = pytest.mark.integration


def story() -> tuple[EventEnvelope, EventEnvelope, EventEnvelope]:
    return lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3), lab(ALP, 2.5, 2)


def raw(events: list[EventEnvelope], first_offset: int = 0) -> list[RawMessage]:
    return [(event.topic, 0, first_offset + i, encode_event(event), None, {}) for i, event in enumerate(events)]


def stored(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_writer_deletes_the_alert_and_keeps_its_withdrawal_for_the_outbox(tmp_path: Path):
    alt, bilirubin, alp = story()
    db = tmp_path / "store.duckdb"
    writer = StoreWriter(db, None, None)
    try:
        raised = writer.process(raw([alt, bilirubin]))
        (hys_law,) = [a for a in raised.new_alerts if a.alert().rule_id == "hys-law"]
        writer.mark_published([hys_law.alert_id], [])  # the outbox sent it
        reply = writer.process(raw([alp], 2))
    finally:
        writer.close()  # as a worker killed after the commit: the withdrawal was never sent
    (withdrawn,) = reply.withdrawn_alerts
    message = withdrawn.alert()
    assert withdrawn.alert_id == hys_law.alert_id and withdrawn.key == hys_law.key and withdrawn.critical
    assert message.withdrawal is not None and message.withdrawal.event_id == alp.event_id
    assert "ALP 2.5 x ULN" in message.withdrawal.reason
    assert message.model_dump(exclude={"withdrawal"}) == hys_law.alert().model_dump(exclude={"withdrawal"})
    assert "withdrawal" not in json.loads(hys_law.value), "a standing alert's message is as it always was"
    assert reply.new_alerts == [] and reply.metrics.alerts_withdrawn == {"hys-law": 1}
    assert stored(db, "SELECT count(*) FROM alerts WHERE rule_id = 'hys-law'") == [(0,)]

    restarted = StoreWriter(db, None, None)
    try:
        pending = restarted.opening().pending_alerts
        assert [(p.alert_id, p.value) for p in pending] == [(withdrawn.alert_id, withdrawn.value)], "not lost"
        restarted.mark_published([withdrawn.alert_id], [])
        assert restarted.opening().pending_alerts == []
        again = restarted.process(raw([alp], 2))  # a redelivery: nothing withdrawn twice
        assert again.withdrawn_alerts == [] and again.metrics.alerts_withdrawn == {}
    finally:
        restarted.close()
    assert stored(db, "SELECT count(*), count(published_at) FROM alert_withdrawals") == [(1, 1)]


def test_a_withdrawal_after_marks_that_found_none_is_marked_published_when_sent(tmp_path: Path):
    """The marks skip alert_withdrawals while it holds nothing unpublished (EventStore._withdrawals_unpublished):
    a withdrawal made after such a mark is still marked, by the next batch's transaction as the outbox does it."""
    alt, bilirubin, alp = story()
    writer = StoreWriter(tmp_path / "store.duckdb", None, None)
    try:
        raised = writer.process(raw([alt, bilirubin]))
        (hys_law,) = [a for a in raised.new_alerts if a.alert().rule_id == "hys-law"]
        writer.process([], [str(hys_law.alert_id)])  # marked: no withdrawal waits, so later marks skip the table
        (withdrawn,) = writer.process(raw([alp], 2), [str(hys_law.alert_id)]).withdrawn_alerts
        counts = "SELECT count(*), count(published_at) FROM alert_withdrawals"
        assert writer.store.con.execute(counts).fetchall() == [(1, 0)]
        writer.process([], [str(withdrawn.alert_id)])  # the outbox sent the withdrawal: the next batch marks it
        assert writer.store.con.execute(counts).fetchall() == [(1, 1)]
        assert writer.opening().pending_alerts == []
    finally:
        writer.close()


def test_a_withdrawal_marked_in_a_transaction_that_rolls_back_is_marked_by_the_retry(tmp_path: Path):
    """A batch whose first try rolls back (a redelivered event: EventsAlreadyStored) after its marks ran carries the
    withdrawal's mark into the second try; EventStore._withdrawals_unpublished must not take the rolled-back UPDATE
    for done (the count comes before it), or the withdrawal, sent, would stay unpublished and be sent again."""
    alt, bilirubin, alp = story()
    writer = StoreWriter(tmp_path / "store.duckdb", None, None)
    try:
        writer.process(raw([alt, bilirubin]))
        (withdrawn,) = writer.process(raw([alp], 2)).withdrawn_alerts
        counts = "SELECT count(*), count(published_at) FROM alert_withdrawals"
        assert writer.store.con.execute(counts).fetchall() == [(1, 0)]
        # the outbox sent the withdrawal; the next batch redelivers the ALT (a rebalance) and carries the mark
        writer.process(raw([alt]), [str(withdrawn.alert_id)])
        assert writer.store.con.execute(counts).fetchall() == [(1, 1)]
        assert writer.opening().pending_alerts == []
    finally:
        writer.close()


def test_an_alert_raised_before_a_restart_is_withdrawn_after_it(tmp_path: Path):
    alt, bilirubin, alp = story()
    db = tmp_path / "store.duckdb"
    writer = StoreWriter(db, None, None)
    try:
        writer.process(raw([alt, bilirubin]))
    finally:
        writer.close()
    restarted = StoreWriter(db, None, None)
    try:
        reply = restarted.process(raw([alp], 2))
    finally:
        restarted.close()
    assert [a.alert().rule_id for a in reply.withdrawn_alerts] == ["hys-law"]


def test_a_withdrawn_critical_alert_is_resolved_in_alertmanager():
    alt, bilirubin, alp = story()
    routes = load_direct_routes()
    route = routes.route_for("hys-law")
    assert route is not None, "hys-law pages through the catch-all critical rule"
    raised = SafetyAlert(alert_id="5b0c3c3e-7d0a-4d4e-9a53-0b8f4f1c9a12", rule_id="hys-law", rule_version=1,
                         severity="critical", patient=alt.patient,
                         evidence_event_ids=(alt.event_id, bilirubin.event_id), occurred_at=bilirubin.occurred_at,
                         raised_at=datetime(2026, 11, 30, 9, tzinfo=UTC), summary="Potential Hy's law case")
    posted = datetime(2026, 11, 30, 10, tzinfo=UTC)
    firing = alertmanager_alert(raised, route, posted)
    withdrawn = raised.model_copy(update={"withdrawal": AlertWithdrawal(reason="ALP 2.5 x ULN", event_id=alp.event_id,
                                                                        withdrawn_at=posted)})
    resolved = alertmanager_alert(withdrawn, route, posted)
    assert resolved["labels"] == firing["labels"], "the same Alertmanager alert"
    assert resolved["endsAt"] == posted.isoformat() < firing["endsAt"]
    assert "withdrawn: ALP 2.5 x ULN" in resolved["annotations"]["description"]


def test_a_late_alp_withdraws_the_hys_law_alert_through_the_broker_and_worker(workers: Workers, tmp_path: Path):
    alt, bilirubin, alp = story()
    worker = workers.start()
    with EventPublisher(workers.broker.bootstrap) as publisher:
        publisher.publish(alt)
        publisher.publish(bilirubin)
        publisher.flush()
        wait_for(lambda: workers.metric(worker, "pv_alerts_raised_total") >= 1, 30, what="Hy's law raised")
        (raised,) = consume_all(workers.broker.bootstrap, ALERT_TOPIC, 1)
        publisher.publish(alp)
        publisher.flush()
    wait_for(lambda: workers.metric(worker, "pv_alerts_withdrawn_total") >= 1, 30, what="Hy's law withdrawn")
    assert scrape_labelled(worker.metrics_url, "pv_alerts_withdrawn_total")[(("rule", "hys-law"),)] == 1
    messages = [json.loads(record.value) for record in consume_all(workers.broker.bootstrap, ALERT_TOPIC, 2)]
    worker.stop()

    first = json.loads(raised.value)
    assert first["rule_id"] == "hys-law" and "withdrawal" not in first
    assert [m["alert_id"] for m in messages] == [first["alert_id"]] * 2
    withdrawal = messages[1]["withdrawal"]
    assert withdrawal["event_id"] == str(alp.event_id) and "cholestatic" in withdrawal["reason"]
    assert stored(workers.db, "SELECT count(*) FROM alerts") == [(0,)]
    assert stored(workers.db, "SELECT count(*) FROM alert_withdrawals WHERE published_at IS NOT NULL") == [(1,)]

    result = CliRunner().invoke(cli, ["replay", "--db", str(workers.db)])
    assert result.exit_code == 0, result.output
    assert stored(workers.db, "SELECT count(*) FROM alerts") == [(0,)], "replay derives no case either"


def test_the_dashboard_keeps_working_when_an_officer_acted_on_an_alert_since_withdrawn(tmp_path: Path):
    """The officer's acknowledgement stays in the log (an event); the queue, the patient page and the API leave the
    withdrawn alert out of their standing alerts, and a new action on it is refused with 409 saying it was withdrawn
    (the withdrawn view and its API: test_withdrawn_view.py)."""
    alt, bilirubin, alp = story()
    db = tmp_path / "pvwatch.duckdb"
    writer = StoreWriter(db, None, None)
    try:
        (raised,) = [a.alert() for a in writer.process(raw([alt, bilirubin])).new_alerts]
        acknowledged = AlertActionRecorded(
            event_id=uuid.uuid4(), occurred_at=NOW, recorded_at=NOW, source="pvwatch-dashboard",
            patient=raised.patient, alert_id=raised.alert_id, action=AlertAction.ACKNOWLEDGE, actor="olivia")
        writer.process(raw([acknowledged, alp], 2))
        info = publish_snapshot(writer.store.con, tmp_path / "pvwatch.duckdb.snapshot.duckdb")
    finally:
        writer.close()
    assert stored(db, "SELECT count(*) FROM alert_actions") == [(1,)], "the action stays in the log"
    config = dashboard_config(tmp_path, info.path, "127.0.0.1:1")

    async def scenario(client: TestClient) -> None:
        token = await login(client, "olivia")
        queue = await client.get("/api/alerts")
        assert queue.status == 200 and str(raised.alert_id) not in await queue.text()
        for page in ("/alerts", f"/patients/{raised.patient}"):
            response = await client.get(page)
            assert response.status == 200, (page, await response.text())
        response = await client.post(f"/api/alerts/{raised.alert_id}/actions", json={"action": "close"},
                                     headers={"X-CSRF-Token": token})
        assert response.status == 409 and "was withdrawn" in await response.text()

    run(config, scenario)


def test_a_late_fatal_version_removes_the_15_day_clock_row_and_withdraws_its_alerts(tmp_path: Path):
    """ICH E2A III.A.1: the fatal version's 7-day report covers the case; its 15-day clock, raised from the
    hospitalisation reported the same day that arrived first, goes with its alerts, as replay never derives it."""
    fatal, hospitalised = case_version(2.0, death=True), case_version(2.1, death=False)
    db = tmp_path / "store.duckdb"
    writer = StoreWriter(db, None, None)
    try:
        first = writer.process(raw([hospitalised]))
        second = writer.process(raw([fatal], 1))
    finally:
        writer.close()
    fifteen = {a.alert().rule_id for a in first.new_alerts if a.alert().details.get("category") == "15-day"}
    assert fifteen == {"expedited-clock", "expedited-due-soon", "expedited-overdue"}  # NOW is past its deadline
    assert sorted(a.alert().rule_id for a in second.withdrawn_alerts) == sorted(fifteen)
    clocks = "SELECT case_id, category FROM expedited_reports ORDER BY category"
    assert stored(db, clocks) == [("C-WD-2", "7-day"), ("C-WD-2", "7-day-follow-up")]
    live = stored(db, "SELECT alert_id, details FROM alerts ORDER BY alert_id")
    result = CliRunner().invoke(cli, ["replay", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert stored(db, clocks) == [("C-WD-2", "7-day"), ("C-WD-2", "7-day-follow-up")]
    assert stored(db, "SELECT alert_id, details FROM alerts ORDER BY alert_id") == live


class RecordingAlertTopic:
    """Stands in for the Faust alert topic: records the messages the outbox sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, key: object, value: bytes, headers: dict[str, bytes] | None = None) -> asyncio.Future[None]:
        self.sent.append(value)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_the_send_of_an_alert_does_not_mark_its_later_withdrawal_published(tmp_path: Path):
    """The store marks an alert and its withdrawal by the id they share. The alert's send completes after the next
    batch (the withdrawal's) was handed to the writer; were that send's mark carried by the batch after, the
    withdrawal would be marked published unsent, and lost to a crash before its own send."""
    from pvwatch.streams.app import Outbox
    from pvwatch.streams.writer import InProcessWriter

    alt, bilirubin, alp = story()
    db = tmp_path / "store.duckdb"

    async def scenario() -> tuple[list[bytes], list[str]]:
        writer = InProcessWriter(StoreWriter(db, None, None))
        topic = RecordingAlertTopic()
        outbox = Outbox(writer, topic, RecordingAlertTopic(), [])  # type: ignore[arg-type]
        try:
            outbox.add(await writer.process(raw([alt, bilirubin])))
            withdrawing = writer.process(raw([alp], 2))  # handed over before the raise's send completes
            await outbox.flush()  # sends the raise
            outbox.add(await withdrawing)
            await writer.process(raw([lab(ALT, 1.0, 60)], 3), *outbox.take_marks())  # the next batch, with marks
        finally:
            await writer.close()  # the worker dies before the withdrawal's send
        restarted = StoreWriter(db, None, None)
        try:
            return topic.sent, [p.alert_id for p in restarted.opening().pending_alerts]
        finally:
            restarted.close()

    sent, pending = asyncio.run(scenario())
    (raised,) = [json.loads(message) for message in sent]
    assert "withdrawal" not in raised
    assert pending == [raised["alert_id"]], "the withdrawal is still waiting for the outbox after the crash"


def test_a_restart_resends_an_id_pending_twice_unless_both_messages_are_on_the_topic(broker):
    """A withdrawal and the alert raised again after it share an id, which marks both in the store: the next worker
    counts the id as sent only when both messages are on the topic (streams/alert_resend.py)."""
    from kafka import KafkaProducer

    from pvwatch.streams.alert_resend import already_on_topic
    from pvwatch.streams.writer import publishable

    alt, _, alp = story()
    raised = SafetyAlert(alert_id="5b0c3c3e-7d0a-4d4e-9a53-0b8f4f1c9a13", rule_id="flare-after-taper",
                         rule_version=1, severity="warning", patient=alt.patient, evidence_event_ids=(alt.event_id,),
                         occurred_at=alt.occurred_at, raised_at=NOW, summary="flare")
    withdrawn = raised.model_copy(update={"withdrawal": AlertWithdrawal(reason="new baseline", event_id=alp.event_id,
                                                                        withdrawn_at=NOW)})
    again = raised.model_copy(update={"raised_at": datetime(2026, 11, 25, tzinfo=UTC)})
    pending = [publishable(withdrawn), publishable(again)]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    producer.send(ALERT_TOPIC, key=pending[0].key, value=pending[0].value)
    producer.flush()
    assert already_on_topic(broker.bootstrap, ALERT_TOPIC, pending) == set(), "only the withdrawal was sent"
    producer.send(ALERT_TOPIC, key=pending[1].key, value=pending[1].value)
    producer.flush()
    producer.close()
    assert already_on_topic(broker.bootstrap, ALERT_TOPIC, pending) == {str(raised.alert_id)}


def test_a_stop_publishes_alerts_the_writer_stored_that_never_reached_the_outbox(tmp_path: Path):
    """A clock tick cancelled by the stop after the writer stored its alerts leaves them unknown to the outbox; the
    stop sends them too, so a clean stop leaves nothing for the next worker (a CI run of the kill -9 test found 63
    alerts unpublished after the restarted worker's clean stop)."""
    from pvwatch.streams.app import Outbox, _stop_outbox
    from pvwatch.streams.writer import InProcessWriter

    alt, bilirubin, _ = story()
    db = tmp_path / "store.duckdb"

    paged: list[str] = []

    async def scenario() -> list[bytes]:
        writer = InProcessWriter(StoreWriter(db, None, None))
        topic = RecordingAlertTopic()
        outbox = Outbox(writer, topic, RecordingAlertTopic(), [])  # type: ignore[arg-type]
        try:
            await writer.process(raw([alt, bilirubin]))  # stored; its reply never reaches the outbox
            await _stop_outbox(outbox, lambda alerts: paged.extend(alert.alert_id for alert in alerts))
        finally:
            await writer.close()
        return topic.sent

    sent = asyncio.run(scenario())
    assert [json.loads(message)["rule_id"] for message in sent] == ["hys-law"]
    assert paged == [json.loads(sent[0])["alert_id"]], "never paged before: the stop pages it"
    assert stored(db, "SELECT count(*) FROM alerts WHERE published_at IS NULL") == [(0,)]
    assert stored(db, "SELECT count(*) FROM alerts") == [(1,)]
