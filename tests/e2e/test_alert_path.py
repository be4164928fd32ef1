"""A serious adverse event reaches a person: embedded broker, a real worker, real Prometheus and Alertmanager
(Debian binaries, loopback, temp storage) and a webhook receiver standing in for the safety officer's pager.

Direct path: the worker posts the alert to Alertmanager itself (under a second, the issue's target).
Rule path: Prometheus scrapes the worker, its SeriousAdverseEvent rule fires and Alertmanager notifies: the
safety net when the direct post fails. Both give the same labels, so Alertmanager pages once, not twice.
Prometheus runs with 1 s scrape and evaluation intervals here; bench/bench_alert_path.py measures the shipped ones.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import duckdb
import pytest
import yaml

from pvwatch.demo import WorkerProcess
from pvwatch.events import AdverseEventReported, encode_event
from pvwatch.events.alert import alert_id_for
from pvwatch.metrics_client import scrape_labelled
from pvwatch.streams.alertmanager import ALERT_RULES
from pvwatch.streams.broker import free_port
from pvwatch.streams.producer import EventPublisher
from pvwatch.streams.writer import StoreWriter
from tests.alerting_stack import Alertmanager, Prometheus, WebhookReceiver, first_serious_event
from tests.conftest import Workers, wait_for

pytestmark = pytest.mark.e2e
#: The labels of the SeriousAdverseEvent rule (dashboards/monitoring/prometheus/rules/pvwatch-alerts.yml).
SERIOUS_AE_LABELS = {"alertname": "SeriousAdverseEvent", "rule": "serious-ae", "severity": "critical", "team": "safety"}


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: WebhookReceiver) -> Iterator[Alertmanager]:
    server = Alertmanager(tmp_path / "alertmanager", webhook.url)
    yield server
    server.stop()


def start_prometheus(tmp_path: Path, worker_metrics_url: str, alertmanager: Alertmanager) -> Prometheus:
    worker_port = int(worker_metrics_url.split(":")[-1].split("/")[0])
    prometheus = Prometheus(tmp_path / "prometheus", worker_port, alertmanager.port, interval="1s")
    # the worker creates the serious-ae series at 0; the rule needs one scrape of it before the increase
    wait_for(lambda: prometheus.query('pv_alerts_raised_total{rule="serious-ae"}'), 20, 0.2, "first scrape")
    return prometheus


def stored_alert(workers: Workers, worker: WorkerProcess, alert_id: UUID) -> tuple[str, str, bool] | None:
    """pvwatch's own record of an alert (rule, severity, published to pv.safety.alert.v1), read from the
    store once the worker has stopped (DuckDB has one writer); None if it is not there."""
    worker.stop()

    def opened() -> duckdb.DuckDBPyConnection | None:
        try:
            return duckdb.connect(str(workers.db), read_only=True)
        except duckdb.IOException:  # the worker's writer child is still releasing its lock
            return None

    con = wait_for(opened, 15, 0.2, "the stopped worker's store")
    try:
        row = con.execute("SELECT rule_id, severity, published_at IS NOT NULL FROM alerts WHERE alert_id = ?",
                          [alert_id]).fetchone()
    finally:
        con.close()
    return None if row is None else (row[0], row[1], row[2])


def publish(bootstrap: str, event: AdverseEventReported) -> float:
    """Send one event; returns the wall-clock time just before the send (the start of the measured path)."""
    with EventPublisher(bootstrap, linger_ms=0) as publisher:
        sent_at = time.time()
        publisher.publish(event)
    return sent_at


def test_serious_adverse_event_reaches_the_safety_officer_in_under_a_second_and_pages_once(
    tmp_path, workers: Workers, alertmanager: Alertmanager, webhook: WebhookReceiver, demo_pseudonymiser
):
    worker = workers.start(env={"PVWATCH_ALERTMANAGER_URL": alertmanager.url})
    prometheus = start_prometheus(tmp_path, worker.metrics_url, alertmanager)
    try:
        event = first_serious_event(demo_pseudonymiser)
        sent_at = publish(workers.broker.bootstrap, event)

        notification = webhook.wait_for("SeriousAdverseEvent", timeout_s=10)
        elapsed = notification.received_at - sent_at
        print(f"\nevent to webhook, direct path: {elapsed * 1000:.0f} ms")
        assert elapsed < 1.0, f"the safety officer was paged {elapsed:.2f} s after the event (target < 1 s)"
        assert notification.receiver == "safety-officer"
        [paged] = notification.alerts("SeriousAdverseEvent")
        assert paged["labels"] == SERIOUS_AE_LABELS
        assert paged["annotations"]["pvwatch_alert_id"] == str(alert_id_for("serious-ae", 1, event.case_id))
        assert paged["annotations"]["runbook_url"] == "docs/runbooks.md#seriousadverseevent"
        assert event.patient not in json.dumps(notification.body), "no patient pseudonym leaves for the pager"

        # the rule path fires too, on the same alert: Alertmanager holds one alert and pages no second time
        wait_for(lambda: prometheus.firing("SeriousAdverseEvent"), 15, 0.2, "the Prometheus rule firing")
        wait_for(lambda: any(a["annotations"].get("description", "").startswith("pvwatch raised")
                             for a in alertmanager.alerts()), 15, 0.2, "Prometheus's alert in Alertmanager")
        held = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "SeriousAdverseEvent"]
        assert [a["labels"] for a in held] == [SERIOUS_AE_LABELS]
        time.sleep(2)
        assert sum(1 for n in webhook.notifications if n.alerts("SeriousAdverseEvent")) == 1
        # The case is a life-threatening SUSAR (unexpected per the RSI), so its 7-day clocks are critical
        # expedited-clock alerts (ICH E2A III.A): posted too, as the catch-all rule would fire them, just as fast.
        # Its clocks are long overdue, but expedited-overdue is paged by ExpeditedReportOverdue, never posted.
        clock = webhook.wait_for("CriticalSafetyAlert", timeout_s=5)
        assert clock.received_at - sent_at < 1.0 and clock.receiver == "safety-officer"
        assert [a["labels"] for a in clock.alerts("CriticalSafetyAlert")] == [
            {"alertname": "CriticalSafetyAlert", "rule": "expedited-clock", "severity": "critical", "team": "safety"}]
        posted_rules = {a["labels"]["rule"] for n in webhook.notifications for a in n.alerts("CriticalSafetyAlert")}
        assert "expedited-overdue" not in posted_rules
        posts = scrape_labelled(worker.metrics_url, "pv_alert_notifications_total")
        assert posts[(("outcome", "sent"),)] >= 1 and posts[(("outcome", "failed"),)] == 0
    finally:
        prometheus.stop()
    # never only in Alertmanager: the paged alert is in pvwatch's own record, and was published on its topic
    paged_id = alert_id_for("serious-ae", 1, event.case_id)
    assert stored_alert(workers, worker, paged_id) == ("serious-ae", "critical", True)


def test_prometheus_rule_pages_the_safety_officer_when_the_direct_post_fails(
    tmp_path, workers: Workers, alertmanager: Alertmanager, webhook: WebhookReceiver, demo_pseudonymiser
):
    unreachable = f"http://127.0.0.1:{free_port()}"
    worker = workers.start(env={"PVWATCH_ALERTMANAGER_URL": unreachable})
    prometheus = start_prometheus(tmp_path, worker.metrics_url, alertmanager)
    try:
        event = first_serious_event(demo_pseudonymiser)
        sent_at = publish(workers.broker.bootstrap, event)

        notification = webhook.wait_for("SeriousAdverseEvent", timeout_s=30)
        elapsed = notification.received_at - sent_at
        print(f"\nevent to webhook, Prometheus rule path (1 s scrape, 1 s evaluation): {elapsed * 1000:.0f} ms")
        assert notification.receiver == "safety-officer"
        [paged] = notification.alerts("SeriousAdverseEvent")
        assert paged["labels"] == SERIOUS_AE_LABELS
        assert "pvwatch_alert_id" not in paged["annotations"], "this one came from the rule, not the worker"
        assert paged["annotations"]["description"].startswith("pvwatch raised at least one serious")
        assert elapsed < 6.0, "1 s scrape + 1 s evaluation + Alertmanager should page within a few seconds"
        wait_for(lambda: scrape_labelled(worker.metrics_url, "pv_alert_notifications_total").get(
            (("outcome", "failed"),), 0) >= 1, 10, 0.2, "the failed direct post counted")
        assert scrape_labelled(worker.metrics_url, "pv_alert_notifications_total")[(("outcome", "sent"),)] == 0
    finally:
        prometheus.stop()
    # the direct post failed, yet the alert is not only in Prometheus: pvwatch's own record holds it
    paged_id = alert_id_for("serious-ae", 1, event.case_id)
    assert stored_alert(workers, worker, paged_id) == ("serious-ae", "critical", True)


def test_a_serious_alert_stored_but_never_published_by_a_crashed_worker_pages_when_the_next_one_starts(
    workers: Workers, alertmanager: Alertmanager, webhook: WebhookReceiver, demo_pseudonymiser
):
    """A worker killed between its DuckDB commit and its post/publish leaves the alert unpublished in the store
    (transactional outbox); nobody may have been paged. The next worker must page it, not only publish it."""
    event = first_serious_event(demo_pseudonymiser)
    crashed = StoreWriter(workers.db, None, None)  # what the killed worker had committed, and nothing more
    try:
        reply = crashed.process([(event.topic, 0, 0, encode_event(event), time.time(), {})])
    finally:
        crashed.close()
    paged_id = alert_id_for("serious-ae", 1, event.case_id)
    assert str(paged_id) in {str(alert.alert_id) for alert in reply.new_alerts}

    workers.start(env={"PVWATCH_ALERTMANAGER_URL": alertmanager.url})

    notification = webhook.wait_for("SeriousAdverseEvent", timeout_s=15)
    assert notification.receiver == "safety-officer"
    [paged] = notification.alerts("SeriousAdverseEvent")
    assert paged["labels"] == SERIOUS_AE_LABELS
    assert paged["annotations"]["pvwatch_alert_id"] == str(paged_id)


def shipped_alert_labels() -> dict[str, dict[str, str]]:
    """Each shipped alerting rule's alert as Alertmanager receives it: its static labels, plus the labels its
    expression keeps (`rule` for the per-rule safety alerts, instance/job for the per-worker ones)."""
    rules = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    alerts = {}
    for rule in (r for group in rules for r in group["rules"] if "alert" in r):
        kept = {"rule": "hys-law"} if "by (rule)" in rule["expr"] else {"instance": "worker:9464", "job": "pvwatch"}
        if rule["alert"] == "ConsumerLagGrowing":
            kept["topic"] = "pv.clinical.adverse-event.v1"
        alerts[rule["alert"]] = {"alertname": rule["alert"], **kept, **rule["labels"]}
    return alerts


@pytest.mark.parametrize(("firing", "expected_muted"), [
    # every alert at once: overdue mutes due-soon; worker down mutes lag and ingest stalled (docs/runbooks.md)
    ("all", {"ExpeditedReportDueSoon", "ConsumerLagGrowing", "IngestStalled"}),
    # a serious-AE or other critical safety page mutes nothing: due-soon and every pipeline warning still go out
    ("all but ExpeditedReportOverdue and WorkerDown", set()),
], ids=["every-alert", "no-critical-counterpart"])
def test_a_critical_alert_mutes_exactly_the_warnings_of_its_team_and_component(
    alertmanager: Alertmanager, webhook: WebhookReceiver, firing: str, expected_muted: set[str]
):
    shipped = shipped_alert_labels()
    names = set(shipped) - ({"ExpeditedReportOverdue", "WorkerDown"} if firing != "all" else set())
    now = datetime.now(UTC)
    window = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=5)).isoformat()}
    body = json.dumps([{"labels": shipped[name], **window} for name in names]).encode()
    request = urllib.request.Request(f"{alertmanager.url}/api/v2/alerts", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200

    notification = webhook.wait_for("SeriousAdverseEvent", timeout_s=5)
    assert notification.receiver == "safety-officer", "critical safety alerts go out at once (group_wait 0s)"

    def states() -> dict[str, str]:
        return {a["labels"]["alertname"]: a["status"]["state"] for a in alertmanager.alerts()}

    expected = {name: "suppressed" if name in expected_muted else "active" for name in names}
    try:
        wait_for(lambda: states() == expected, 5, 0.1, "inhibition to settle")
    except AssertionError:
        assert states() == expected  # shows which alert is muted or not
        raise
