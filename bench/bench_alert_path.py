"""Event-to-webhook latency of a serious adverse event: the worker's direct post against the Prometheus rule path.

Setup (one machine, all on loopback): embedded broker, one `pvwatch worker` process, the Debian
`prometheus-alertmanager` with the shipped routes whose receivers post to a webhook server in this process,
and for the rule path the Debian `prometheus` with the shipped prometheus.yml and rules, unchanged intervals
(worker scraped every 5 s, safety rules evaluated every 5 s).

Each sample publishes one serious adverse event (a new case, so a new alert) and waits for the webhook.
Each sample gets a fresh Alertmanager (new data dir: no earlier sample's alerts, groups or inhibitions), and each
rule-path sample a fresh Prometheus too (the rule's alert is muted while a direct alert of its rule fires),
started and scraped once before the event is sent at a random phase of the scrape cycle.
Hops, from timestamps the components record themselves:
  direct path: send -> alert raised (worker; raised_at on pv.safety.alert.v1) -> received by Alertmanager
               (its updatedAt) -> webhook;
  rule path:   send -> scraped (timestamp of the first sample showing the increase) -> rule fired (activeAt)
               -> received by Alertmanager -> webhook.
The baseline is the direct path measured in the same run: the rule path is reported as a ratio to it.

With --background-rate N the direct path is measured a second time, in the same run, while another process
sends the synthetic cohort's clinical events at N events/s to the same worker (every type but adverse events and
labs: those raise alerts of their own, paged beside the measured one and adding pages to the load). Reported
as a ratio to the idle direct path.

    .venv/bin/python bench/bench_alert_path.py [--direct-samples 30] [--rule-samples 10] [--background-rate 1000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import yaml
from kafka import KafkaConsumer
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.alerting_stack: the harness the e2e test uses

from pvwatch.cohort import generate_cohort
from pvwatch.demo import WorkerProcess
from pvwatch.events import ALERT_TOPIC, AdverseEventReported, parse_event
from pvwatch.events.alert import alert_id_for
from pvwatch.metrics_client import processed, scrape
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.streams.broker import EmbeddedBroker, free_port
from pvwatch.streams.producer import EventPublisher
from pvwatch.streams.topics import ensure_topics
from tests.alerting_stack import (
    MONITORING,
    Alertmanager,
    Prometheus,
    WebhookReceiver,
    first_serious_event,
    iso_to_unix,
    parse_duration_s,
)
from tests.conftest import wait_for

ALERTNAME = "SeriousAdverseEvent"
#: Background traffic that pages nobody for a serious adverse event (see the module docstring).
NOT_IN_BACKGROUND = frozenset({"adverse-event", "lab-result"})
#: How long a sample waits for its page.
PAGE_TIMEOUT_S = 30
#: Distinct background events built: this many seconds' worth; then they are sent again under new event ids.
BACKGROUND_DISTINCT_S = 30


@dataclass
class Sample:
    sent_at: float
    alert_id: str
    marks: dict[str, float] = field(default_factory=dict)  # hop name -> wall-clock time it was reached


def serious_events(count: int) -> list[AdverseEventReported]:
    """`count` serious adverse events, each its own case (so each raises its own alert): copies of the first
    serious report in the synthetic cohort with new event and case ids."""
    template = first_serious_event(Pseudonymiser.from_secret(None, demo_mode=True))
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


def send_background(bootstrap: str, rate: int, ready: Any, stop: Any, sent: Any, progress: Any) -> None:
    """In its own process (its sending must not hold this process's GIL while the webhook arrives): the cohort's
    events but NOT_IN_BACKGROUND, at `rate`/s until `stop` is set, counting them in `progress`; then puts
    (events sent, seconds) on `sent`."""
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    wanted = rate * BACKGROUND_DISTINCT_S
    events = []
    for record in generate_cohort(max(10, wanted // 20), seed=17):
        if record["type"] not in NOT_IN_BACKGROUND:
            events.append(parse_event(pseudonymiser.pseudonymise_record(record)))
            if len(events) == wanted:
                break
    with EventPublisher(bootstrap, linger_ms=5) as publisher:
        ready.set()
        start = time.perf_counter()
        count = 0
        while not stop.is_set():
            event = events[count % len(events)]
            if count >= len(events):  # a new event to the store, not a duplicate it would skip
                event = event.model_copy(update={"event_id": uuid4()})
            count += 1
            pause = start + count / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            publisher.publish(event)
            progress.value = count
        sent.put((count, time.perf_counter() - start))


def direct_path(broker: EmbeddedBroker, workdir: Path, events: list[AdverseEventReported],
                background_rate: int = 0) -> tuple[list[Sample], str]:
    """Samples of the direct path, and the worker's log name (to count retried posts)."""
    name = f"worker-direct-{background_rate}" if background_rate else "worker-direct"
    webhook, am_port = WebhookReceiver(), free_port()
    worker = start_worker(broker, workdir, name, {"PVWATCH_ALERTMANAGER_URL": f"http://127.0.0.1:{am_port}"})
    samples: list[Sample] = []
    sent_samples = 0
    background = None
    if background_rate:
        context = multiprocessing.get_context("spawn")
        ready, stop, sent, progress = context.Event(), context.Event(), context.Queue(), context.Value("q", 0)
        background = context.Process(target=send_background, args=(broker.bootstrap, background_rate, ready,
                                                                   stop, sent, progress), daemon=True)
        background.start()
        if not ready.wait(300):
            raise RuntimeError("the background sender did not get ready")
        time.sleep(5)  # the worker settles into the background traffic before the first sample
    desc = f"direct path, {background_rate} events/s background" if background_rate else "direct path"
    try:
        with EventPublisher(broker.bootstrap, linger_ms=0) as publisher:
            for event in tqdm(events, desc=desc, unit="alert"):
                alertmanager = Alertmanager(workdir / "am-direct", webhook.url, port=am_port)
                try:
                    seen = len(webhook.notifications)
                    sample = send(publisher, event)
                    sent_samples += 1
                    try:
                        notification = webhook.wait_for(ALERTNAME, PAGE_TIMEOUT_S, after=seen)
                    except AssertionError:
                        if background is None:
                            raise
                        behind = progress.value + sent_samples - processed(scrape(worker.metrics_url))
                        print(f"\nsample {len(samples) + 1} not paged within {PAGE_TIMEOUT_S} s: the worker is "
                              f"{behind} events behind the {background_rate}/s background; stopping this phase")
                        break
                    sample.marks["received by Alertmanager"] = alertmanager_received(alertmanager)
                    sample.marks["webhook"] = notification.received_at
                    samples.append(sample)
                finally:
                    alertmanager.stop()
        if background is not None:
            behind = progress.value + sent_samples - processed(scrape(worker.metrics_url))
            stop.set()
            count, seconds = sent.get(timeout=30)
            background.join(30)
            print(f"\nbackground: {count} events in {seconds:.1f} s = {count / seconds:.0f} events/s "
                  f"(asked {background_rate}/s); the worker was {behind} events behind at the end")
            if background.exitcode != 0:
                raise RuntimeError(f"the background sender failed (exit code {background.exitcode})")
    finally:
        if background is not None and background.is_alive():
            background.terminate()
        worker.stop()
        webhook.close()
    return samples, name


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
                    wait_for(lambda p=prometheus: p.query(series), 30, what="the first scrape")
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


def report(title: str, samples: list[Sample]) -> tuple[float, float]:
    """Prints the percentiles and each hop's share; returns (p50, p99) of event to webhook."""
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
    return percentile(totals, 50), percentile(totals, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direct-samples", type=int, default=30)
    parser.add_argument("--rule-samples", type=int, default=10, help="0 skips the Prometheus rule path")
    parser.add_argument("--background-rate", type=int, default=0, metavar="EVENTS_PER_S",
                        help="also measure the direct path while clinical events arrive at this rate (0: not)")
    args = parser.parse_args()
    loaded_samples = args.direct_samples if args.background_rate else 0
    events = serious_events(args.direct_samples + loaded_samples + args.rule_samples)
    with tempfile.TemporaryDirectory(prefix="pv-bench-alert-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            ensure_topics(broker.bootstrap, partitions=4)
            direct, direct_log = direct_path(broker, workdir, events[: args.direct_samples])
            loaded: list[Sample] = []
            if loaded_samples:
                loaded, loaded_log = direct_path(broker, workdir, events[args.direct_samples:][:loaded_samples],
                                                 args.background_rate)
            rule = rule_path(broker, workdir, events[args.direct_samples + loaded_samples:])
            add_raised_times(broker.bootstrap, direct + loaded + rule)
        retried = {log: sum(line.count("alertmanager post attempt") for line in (workdir / f"{log}.log").open())
                   for log in ([direct_log, loaded_log] if loaded else [direct_log])}
    direct_p50, direct_p99 = report("direct post (worker -> Alertmanager v2 API)", direct)
    print(f"  direct posts retried: {retried[direct_log]}")
    if loaded:
        loaded_p50, loaded_p99 = report(f"direct post, {args.background_rate} clinical events/s in the background",
                                        loaded)
        print(f"  direct posts retried (any alert, Alertmanager restarts between samples): {retried[loaded_log]}")
        print(f"\nunder background load / idle: p50 {loaded_p50 / direct_p50:.2f}x, p99 {loaded_p99 / direct_p99:.2f}x")
    if rule:
        rule_p50, _ = report(f"Prometheus rule path (shipped: worker scraped every {_shipped_scrape_interval()}, "
                             f"safety rules evaluated every {_shipped_evaluation_interval()})", rule)
        print(f"\nrule path p50 / direct path p50 = {rule_p50 / direct_p50:.0f}x")


if __name__ == "__main__":
    main()
