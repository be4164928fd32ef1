"""Event-to-webhook latency of a serious adverse event: the worker's direct post against the Prometheus rule path.

Setup (one machine, all on loopback): embedded broker, one `pvwatch worker` process, the Debian
`prometheus-alertmanager` with the shipped routes whose receivers post to a webhook server in this process,
and for the rule path the Debian `prometheus` with the shipped prometheus.yml and rules, unchanged intervals
(worker scraped every 5 s, safety rules evaluated every 5 s).

Each sample publishes one serious adverse event (a new case, so a new alert) and waits for the webhook.
Alertmanager pages once per alert label set, so each sample gets a fresh Alertmanager (new data dir), and each
rule-path sample a fresh Prometheus too, started and scraped once before the event is sent at a random phase
of the scrape cycle. Hops, from timestamps the components record themselves:
  direct path: send -> alert raised (worker; raised_at on pv.safety.alert.v1) -> received by Alertmanager
               (its updatedAt) -> webhook;
  rule path:   send -> scraped (timestamp of the first sample showing the increase) -> rule fired (activeAt)
               -> received by Alertmanager -> webhook.
The baseline is the direct path measured in the same run: the rule path is reported as a ratio to it.

    .venv/bin/python bench/bench_alert_path.py [--direct-samples 30] [--rule-samples 10]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import yaml
from kafka import KafkaConsumer
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.alerting_stack: the harness the e2e test uses

from pvwatch.cohort import generate_cohort
from pvwatch.demo import WorkerProcess
from pvwatch.events import ALERT_TOPIC, AdverseEventReported
from pvwatch.events.alert import alert_id_for
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.streams.broker import EmbeddedBroker, free_port
from pvwatch.streams.producer import EventPublisher
from pvwatch.streams.topics import ensure_topics
from tests.alerting_stack import (
    MONITORING,
    Alertmanager,
    Prometheus,
    WebhookReceiver,
    iso_to_unix,
    parse_duration_s,
)

ALERTNAME = "SeriousAdverseEvent"


@dataclass
class Sample:
    sent_at: float
    alert_id: str
    marks: dict[str, float] = field(default_factory=dict)  # hop name -> wall-clock time it was reached


def serious_events(count: int) -> list[AdverseEventReported]:
    """`count` serious adverse events, each its own case (so each raises its own alert): copies of the first
    serious report in the synthetic cohort with new event and case ids."""
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    template = next(
        event for record in generate_cohort(30, 5) if record["type"] == "adverse-event"
        for event in [AdverseEventReported.model_validate(pseudonymiser.pseudonymise_record(record))]
        if event.seriousness.is_serious
    )
    return [template.model_copy(update={"event_id": uuid4(), "case_id": f"BENCH-{i:04d}"}) for i in range(count)]


def start_worker(broker: EmbeddedBroker, workdir: Path, name: str, env: dict[str, str]) -> WorkerProcess:
    worker = WorkerProcess(broker.bootstrap, workdir / "pvwatch.duckdb", free_port(), workdir / f"{name}.log",
                           4.0, env=env)
    worker.wait_ready()
    return worker


def send(publisher: EventPublisher, event: AdverseEventReported) -> Sample:
    sent_at = time.time()
    publisher.publish(event)
    publisher.flush()
    return Sample(sent_at, str(alert_id_for("serious-ae", 1, event.case_id)))


def alertmanager_received(alertmanager: Alertmanager) -> float:
    [held] = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == ALERTNAME]
    return iso_to_unix(held["updatedAt"])


def direct_path(broker: EmbeddedBroker, workdir: Path, events: list[AdverseEventReported]) -> list[Sample]:
    webhook, am_port = WebhookReceiver(), free_port()
    worker = start_worker(broker, workdir, "worker-direct", {"PVWATCH_ALERTMANAGER_URL": f"http://127.0.0.1:{am_port}"})
    samples: list[Sample] = []
    try:
        with EventPublisher(broker.bootstrap, linger_ms=0) as publisher:
            for event in tqdm(events, desc="direct path", unit="alert"):
                alertmanager = Alertmanager(workdir / "am-direct", webhook.url, port=am_port)
                try:
                    seen = len(webhook.notifications)
                    sample = send(publisher, event)
                    notification = webhook.wait_for(ALERTNAME, 30, after=seen)
                    sample.marks["received by Alertmanager"] = alertmanager_received(alertmanager)
                    sample.marks["webhook"] = notification.received_at
                    samples.append(sample)
                finally:
                    alertmanager.stop()
    finally:
        worker.stop()
        webhook.close()
    return samples


def rule_path(broker: EmbeddedBroker, workdir: Path, events: list[AdverseEventReported]) -> list[Sample]:
    webhook = WebhookReceiver()
    worker = start_worker(broker, workdir, "worker-rule", {})
    worker_port = int(worker.metrics_url.split(":")[-1].split("/")[0])
    scrape_interval = parse_duration_s(_shipped_scrape_interval())
    series = 'pv_alerts_raised_total{rule="serious-ae"}'
    samples: list[Sample] = []
    try:
        with EventPublisher(broker.bootstrap, linger_ms=0) as publisher:
            for event in tqdm(events, desc="rule path", unit="alert"):
                alertmanager = Alertmanager(workdir / "am-rule", webhook.url)
                prometheus = Prometheus(workdir / "prometheus", worker_port, alertmanager.port)
                try:
                    _wait(lambda p=prometheus: p.query(series), 30)
                    time.sleep(random.uniform(0, scrape_interval))  # a random phase of the scrape cycle
                    before = float(prometheus.query(series)[0]["value"][1])
                    seen = len(webhook.notifications)
                    sample = send(publisher, event)
                    notification = webhook.wait_for(ALERTNAME, 60, after=seen)
                    raw = prometheus.query(f"{series}[5m]")[0]["values"]
                    sample.marks["scraped"] = next(float(t) for t, v in raw if float(v) > before)
                    [fired] = prometheus.firing(ALERTNAME)
                    sample.marks["rule fired"] = iso_to_unix(fired["activeAt"])
                    sample.marks["received by Alertmanager"] = alertmanager_received(alertmanager)
                    sample.marks["webhook"] = notification.received_at
                    samples.append(sample)
                finally:
                    prometheus.stop()
                    alertmanager.stop()
    finally:
        worker.stop()
        webhook.close()
    return samples


def _shipped_scrape_interval() -> str:
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    return str(next(j for j in config["scrape_configs"] if j["job_name"] == "pvwatch")["scrape_interval"])


def _shipped_evaluation_interval() -> str:
    rules = yaml.safe_load((MONITORING / "prometheus" / "rules" / "pvwatch-alerts.yml").read_text())
    return str(next(g for g in rules["groups"] if any(r.get("alert") == ALERTNAME for r in g["rules"]))["interval"])


def _wait(predicate, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.1)


def add_raised_times(bootstrap: str, samples: list[Sample]) -> None:
    """raised_at of every alert, from the worker's own record on pv.safety.alert.v1."""
    consumer = KafkaConsumer(ALERT_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    raised = {}
    for record in consumer:
        alert = json.loads(record.value)
        raised[alert["alert_id"]] = iso_to_unix(alert["raised_at"].replace("+00:00", "Z"))
    consumer.close()
    for sample in samples:
        sample.marks["alert raised"] = raised[sample.alert_id]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def report(title: str, samples: list[Sample]) -> float:
    totals = [s.marks["webhook"] - s.sent_at for s in samples]
    print(f"\n{title}: {len(samples)} alerts, event to webhook p50 {percentile(totals, 50) * 1000:.0f} ms, "
          f"p99 {percentile(totals, 99) * 1000:.0f} ms, max {max(totals) * 1000:.0f} ms")
    hops = sorted(samples[0].marks, key=lambda name: statistics.mean(s.marks[name] for s in samples))
    previous = "sent"
    for hop in hops:
        spans = [s.marks[hop] - (s.sent_at if previous == "sent" else s.marks[previous]) for s in samples]
        share = sum(spans) / sum(totals)
        print(f"  {previous:>25} -> {hop:<25} mean {statistics.mean(spans) * 1000:7.1f} ms  "
              f"p50 {percentile(spans, 50) * 1000:7.1f} ms  share {share:6.1%}")
        previous = hop
    return percentile(totals, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direct-samples", type=int, default=30)
    parser.add_argument("--rule-samples", type=int, default=10)
    args = parser.parse_args()
    events = serious_events(args.direct_samples + args.rule_samples)
    with tempfile.TemporaryDirectory(prefix="pv-bench-alert-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            ensure_topics(broker.bootstrap, partitions=4)
            direct = direct_path(broker, workdir, events[: args.direct_samples])
            rule = rule_path(broker, workdir, events[args.direct_samples:])
            add_raised_times(broker.bootstrap, direct + rule)
        retried = sum(line.count("alertmanager post attempt") for line in (workdir / "worker-direct.log").open())
    direct_p50 = report("direct post (worker -> Alertmanager v2 API)", direct)
    print(f"  direct posts retried: {retried}")
    rule_p50 = report(f"Prometheus rule path (shipped: worker scraped every {_shipped_scrape_interval()}, "
                      f"safety rules evaluated every {_shipped_evaluation_interval()})", rule)
    print(f"\nrule path p50 / direct path p50 = {rule_p50 / direct_p50:.0f}x")


if __name__ == "__main__":
    main()
