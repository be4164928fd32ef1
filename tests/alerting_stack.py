"""Real Prometheus and Alertmanager (the Debian binaries) on loopback, configured from the shipped files, and
a webhook receiver standing in for the person who gets paged, and the serious adverse event they send. Used by
tests/e2e/test_alert_path.py, tests/integration/test_monitoring_config.py and bench/bench_alert_path.py.

The configurations are the ones docker-compose mounts, changed only where a local run must differ: target
addresses (loopback ports instead of service names), every receiver's webhook URL (the receiver below, with
the receiver's name as the path) and, when asked, shorter scrape and rule-evaluation intervals.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from pvwatch.cohort import generate_cohort
from pvwatch.events import AdverseEventReported
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.streams.broker import die_with_parent, free_port

MONITORING = Path(__file__).resolve().parents[1] / "dashboards" / "monitoring"


@dataclass(frozen=True)
class Notification:
    """One webhook call from Alertmanager, stamped with the wall-clock time it arrived."""

    received_at: float
    receiver: str
    body: dict[str, Any]

    def alerts(self, alertname: str) -> list[dict[str, Any]]:
        return [a for a in self.body["alerts"] if a["labels"].get("alertname") == alertname]


class WebhookReceiver:
    """An HTTP server in a thread that records every Alertmanager webhook call (webhook_config JSON)."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.time()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()
                with receiver._arrived:
                    receiver.notifications.append(Notification(arrived, self.path.strip("/"), body))
                    receiver._arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, alertname: str, timeout_s: float, after: int = 0) -> Notification:
        """The first notification (from index `after` on) holding a firing `alertname`."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while True:
                for notification in self.notifications[after:]:
                    if any(a["status"] == "firing" for a in notification.alerts(alertname)):
                        return notification
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {alertname} notification within {timeout_s} s: {self.notifications}")
                self._arrived.wait(remaining)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def first_serious_event(pseudonymiser: Pseudonymiser, seed: int = 5) -> AdverseEventReported:
    """The synthetic cohort's first adverse event meeting an ICH E2A seriousness criterion (30 patients, `seed`).
    Each seed's cohort plants its serious event in a case of its own (seed 5: CASE-5-..., seed 6: CASE-6-...)."""
    for record in generate_cohort(30, seed):
        if record["type"] != "adverse-event":
            continue
        event = AdverseEventReported.model_validate(pseudonymiser.pseudonymise_record(record))
        if event.seriousness.is_serious:
            return event
    raise AssertionError(f"the synthetic cohort (30 patients, seed {seed}) holds a serious adverse event")


def http_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


class _Server:
    """A binary run on a loopback port until stop(); its output kept in a log file."""

    def __init__(self, command: list[str], port: int, log_path: Path) -> None:
        if shutil.which(command[0]) is None:
            raise RuntimeError(f"{command[0]} is not installed: run `bash scripts/install.sh --system`")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, preexec_fn=die_with_parent)
        self._wait_ready(30.0)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log_path.stem} exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.log_path.stem} not ready after {timeout_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Alertmanager(_Server):
    """prometheus-alertmanager with the shipped routes, every receiver posting to `webhook_url`/<receiver>."""

    def __init__(self, workdir: Path, webhook_url: str, port: int | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load((MONITORING / "alertmanager" / "alertmanager.yml").read_text())
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                webhook["url"] = f"{webhook_url}/{receiver['name']}"
        config_file = workdir / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        data = workdir / "alertmanager-data"
        shutil.rmtree(data, ignore_errors=True)
        port = port or free_port()
        super().__init__(
            ["prometheus-alertmanager", f"--config.file={config_file}", f"--storage.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            port, workdir / "alertmanager.log",
        )

    def alerts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = http_json(f"{self.url}/api/v2/alerts")
        return result

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts, as the worker or Prometheus would (`postableAlerts`)."""
        request = urllib.request.Request(f"{self.url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            if response.status != 200:
                raise RuntimeError(f"Alertmanager answered {response.status} to {alerts}")


class Prometheus(_Server):
    """prometheus with the shipped rules scraping one worker; `interval` (e.g. "1s") shortens the scrape and
    every rule group's evaluation interval; None keeps the shipped intervals."""

    def __init__(self, workdir: Path, worker_port: int, alertmanager_port: int, interval: str | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
        config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]
        targets = {"pvwatch": f"127.0.0.1:{worker_port}", "prometheus": f"127.0.0.1:{port}"}
        for job in config["scrape_configs"]:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
            if interval:
                job["scrape_interval"] = interval
        if interval:
            config["global"].update(scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval)
        (workdir / "rules").mkdir(exist_ok=True)
        for rule_file in config["rule_files"]:
            rules = yaml.safe_load((MONITORING / "prometheus" / rule_file).read_text())
            if interval:
                for group in rules["groups"]:
                    group["interval"] = interval
            (workdir / rule_file).write_text(yaml.safe_dump(rules, sort_keys=False))
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        data = workdir / "prometheus-data"
        shutil.rmtree(data, ignore_errors=True)
        super().__init__(
            ["prometheus", f"--config.file={config_file}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}"],
            port, workdir / "prometheus.log",
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        from urllib.parse import quote

        result: list[dict[str, Any]] = http_json(f"{self.url}/api/v1/query?query={quote(promql)}")["data"]["result"]
        return result

    def query_range_samples(self, promql: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        from urllib.parse import urlencode

        params = urlencode({"query": promql, "start": start, "end": end, "step": step})
        result = http_json(f"{self.url}/api/v1/query_range?{params}")["data"]["result"]
        return [(float(t), float(v)) for series in result for t, v in series["values"]]

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        alerts = http_json(f"{self.url}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def parse_duration_s(text: str) -> float:
    """Prometheus durations as the shipped files use them ("5s", "1m", "1m30s")."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


def iso_to_unix(timestamp: str) -> float:
    """RFC 3339 with nanoseconds (as Prometheus and Alertmanager write it) to Unix seconds."""
    from datetime import datetime

    match = re.fullmatch(r"(.+?\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", timestamp)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {timestamp!r}")
    base, fraction, zone = match.groups()
    whole = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone)).timestamp()
    return whole + (float(fraction) if fraction else 0.0)
