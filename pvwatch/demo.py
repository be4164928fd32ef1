"""`pvwatch demo`: the whole pipeline on one machine, on the embedded broker, with a synthetic cohort."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
from tqdm import tqdm

from pvwatch.cohort import generate_cohort
from pvwatch.errors import PvwatchError
from pvwatch.metrics_client import processed, scrape, scrape_labelled
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.stop import StopRequests
from pvwatch.store.eventstore import connect
from pvwatch.streams.broker import EmbeddedBroker, die_with_parent, free_port
from pvwatch.streams.ingest import IngestReport, prepare, read_lines, send_prepared
from pvwatch.streams.producer import EventPublisher
from pvwatch.streams.topics import ensure_topics


@dataclass(frozen=True)
class DemoOptions:
    db: Path
    workdir: Path
    events_file: Path | None = None
    patients: int = 60
    seed: int = 7
    forever: bool = False
    dashboard_port: int = 0
    metrics_port: int = 0
    session_timeout_s: float = 4.0
    timeout_s: float = 300.0
    #: the default store is the demo's scratch and starts empty each run; a store the user names is kept
    fresh_store: bool = False


class ChildProcess:
    """A pvwatch command run as a child process with its log kept; stopped with SIGTERM (graceful)."""

    def __init__(self, arguments: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pvwatch", *arguments], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**os.environ, "PVWATCH_DEMO_MODE": "1", **(env or {})},
                start_new_session=True, preexec_fn=die_with_parent,
            )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
            raise PvwatchError(f"`pvwatch {self.log_path.stem}` exited with code {self.process.returncode}:\n"
                               + "\n".join(tail))

    def kill(self) -> None:
        """SIGKILL: a crash, for the tests that prove nothing is lost or stored twice."""
        self.process.kill()
        self.process.wait()

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class WorkerProcess(ChildProcess):
    """`pvwatch worker` against `bootstrap`, serving /metrics on `metrics_port`."""

    def __init__(
        self, bootstrap: str, db: Path, metrics_port: int, log_path: Path, session_timeout_s: float,
        env: dict[str, str] | None = None,
    ) -> None:
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        super().__init__(
            ["worker", "--bootstrap-servers", bootstrap, "--db", str(db), "--metrics-port", str(metrics_port),
             "--session-timeout", str(session_timeout_s)],
            log_path, env,
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the worker reports itself up (store open, partitions assigned); its log tail if it dies first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if scrape(self.metrics_url).get("pv_worker_up") == 1:
                    return
            except OSError:
                pass  # /metrics is not served yet
            time.sleep(0.1)
        raise PvwatchError(f"the worker was not up within {timeout_s:.0f} s (log {self.log_path})")


def start_dashboard(bootstrap: str, db: Path, metrics_url: str, workdir: Path, port: int) -> ChildProcess:
    """The officer's dashboard over the worker's snapshot, with fresh demo accounts printed once."""
    from pvwatch.dashboards.serve import write_demo_users

    users = workdir / "users.yaml"
    users.unlink(missing_ok=True)
    accounts = write_demo_users(users)
    dashboard = ChildProcess(
        ["dashboard", "--snapshot", str(db.with_name(db.name + ".snapshot.duckdb")), "--users", str(users),
         "--bootstrap-servers", bootstrap, "--metrics-url", metrics_url, "--port", str(port)],
        workdir / "dashboard.log",
    )
    url = f"http://127.0.0.1:{port}/"
    _wait_until_serving(dashboard, url + "login")  # the printed URL answers at once (it was refused for ~1 s)
    click.echo(f"dashboard {url} (log {workdir / 'dashboard.log'}); demo accounts:")
    for role, (name, password) in accounts.items():
        click.echo(f"  {role.value:8s} {name} / {password}")
    return dashboard


def _wait_until_serving(process: ChildProcess, url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        process.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise PvwatchError(f"nothing answered at {url} in {timeout_s:.0f} s (log {process.log_path})") from None
            time.sleep(0.1)


def _input_lines(options: DemoOptions) -> Iterator[tuple[str, bytes]]:
    if options.events_file is not None:
        with options.events_file.open("rb") as handle:
            yield from read_lines(handle, options.events_file.name)
    else:
        records = generate_cohort(options.patients, options.seed)
        yield from read_lines((json.dumps(record).encode() for record in records), "cohort")


def _wait_until_processed(worker: WorkerProcess, expected: int, timeout_s: float,
                          stop: StopRequests) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    totals: dict[str, float] = {}
    with tqdm(total=expected, desc="processed", unit="ev") as bar:
        while True:
            worker.check_alive()
            try:
                totals = scrape(worker.metrics_url)
            except OSError:
                totals = {}
            done = processed(totals)
            bar.n = min(done, expected)
            bar.set_postfix(alerts=int(totals.get("pv_alerts_raised_total", 0)),
                            dead_lettered=int(totals.get("pv_events_rejected_total", 0)))
            bar.refresh()
            if done >= expected:
                return totals
            if time.monotonic() > deadline:
                raise PvwatchError(f"only {done} of {expected} events processed after {timeout_s:.0f} s")
            stop.wait(0.2)


def _publish(lines: Iterable[tuple[str, bytes]], bootstrap: str, stop: StopRequests) -> IngestReport:
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    prepared = (prepare(where, line, pseudonymiser) for where, line in stop.until_requested(lines))
    with EventPublisher(bootstrap) as publisher:
        return send_prepared(tqdm(prepared, desc="sent", unit="ev"), publisher)


class DemoInterrupted(PvwatchError):
    """Ctrl-C (or SIGTERM) before every event was processed: everything was stopped, the run is incomplete."""


def _start_afresh(db: Path) -> None:
    """Remove the previous run's default store, so every `make demo` shows the cohort stored and its alerts
    raised (into a kept store, a second run finds every event a duplicate and raises nothing). A store a running
    worker holds is left alone: StoreLocked says so."""
    if db.exists():
        connect(db, read_only=True).close()
    for path in (db, db.with_name(db.name + ".wal")):
        path.unlink(missing_ok=True)


def run_demo(options: DemoOptions) -> IngestReport:
    """Broker, worker, events in, summary out; with `forever`, keep serving until Ctrl-C.

    A Ctrl-C (or SIGTERM) at any moment stops the dashboard, the worker (which commits what it stored) and the
    broker in that order; before the summary it raises DemoInterrupted, after it (the way `--forever` ends) it
    returns normally.
    """
    stop = StopRequests()
    stop.install()
    if options.fresh_store:
        _start_afresh(options.db)
    options.workdir.mkdir(parents=True, exist_ok=True)
    broker_log = options.workdir / "broker.log"
    worker_log = options.workdir / "worker.log"
    metrics_port = options.metrics_port or free_port()
    report: IngestReport | None = None
    with EmbeddedBroker(log_path=broker_log) as broker:
        click.echo(f"broker   {broker.bootstrap} (embedded, in memory; log {broker_log})")
        worker: WorkerProcess | None = None
        dashboard = None
        summarised = False
        try:
            ensure_topics(broker.bootstrap, partitions=4)
            stop.check()
            worker = WorkerProcess(broker.bootstrap, options.db, metrics_port, worker_log, options.session_timeout_s,
                                   # signals every 15 s, not 300 (under 0.1 s each on the demo cohort): the
                                   # dashboard's signals page is filled soon after the demo serves it
                                   env={"PVWATCH_SNAPSHOT_INTERVAL_S": "2", "PVWATCH_SIGNAL_INTERVAL_S": "15"})
            click.echo(f"worker   metrics {worker.metrics_url} (log {worker_log})")
            click.echo(f"store    {options.db}")
            report = _publish(_input_lines(options), broker.bootstrap, stop)
            expected = report.accepted + len(report.rejected)
            totals = _wait_until_processed(worker, expected, options.timeout_s, stop)
            _print_summary(report, totals)
            _print_alerts_by_rule(scrape_labelled(worker.metrics_url, "pv_alerts_raised_total"))
            summarised = True
            if options.forever:
                dashboard = start_dashboard(broker.bootstrap, options.db, worker.metrics_url, options.workdir,
                                            options.dashboard_port or free_port())
                click.echo(f"running until Ctrl-C; metrics at {worker.metrics_url}")
                while True:
                    worker.check_alive()
                    dashboard.check_alive()
                    stop.wait(1)
        except KeyboardInterrupt:
            click.echo("stopping")
        finally:
            if dashboard is not None:
                dashboard.stop()
            if worker is not None:
                worker.stop()
    if summarised:
        _publish_final_snapshot(options.db)
    click.echo(f"query the store:  pvwatch sql --db {options.db} \"SELECT rule_id, severity, summary FROM alerts\"")
    if not summarised or report is None:
        raise DemoInterrupted("interrupted before every event was processed; broker and worker stopped")
    return report


def _publish_final_snapshot(db: Path) -> None:
    """The worker publishes snapshots on a timer while it runs; a short run can end before the first one. Publish
    the stored state once the worker has stopped, so the documented read-only copies (the analyst's
    `<db>.snapshot.analyst.duckdb` for the `duckdb` CLI, docs/analysts.md) exist after every finished demo."""
    from pvwatch.store.eventstore import EventStore
    from pvwatch.store.snapshot import publish_snapshot

    store = EventStore(db)
    try:
        info = publish_snapshot(store.con, db.with_name(db.name + ".snapshot.duckdb"))
    finally:
        store.close()
    duckdb_cli = Path(sys.executable).parent / "duckdb"  # installed with pvwatch (duckdb-cli)
    click.echo(f"analysts: {duckdb_cli} -readonly {info.analyst_path}  (read-only copy, free text removed)")


def _print_summary(report: IngestReport, totals: dict[str, float]) -> None:
    click.echo(
        f"sent {report.accepted + len(report.rejected)}  stored {int(totals.get('pv_events_ingested_total', 0))}  "
        f"duplicates {int(totals.get('pv_events_duplicate_total', 0))}  "
        f"dead-lettered {int(totals.get('pv_events_rejected_total', 0))}  "
        f"alerts {int(totals.get('pv_alerts_raised_total', 0))}"
    )
    for rejection in report.rejected[:10]:
        click.echo(f"  rejected {rejection.message()}", err=True)
    if len(report.rejected) > 10:
        click.echo(f"  ... and {len(report.rejected) - 10} more rejected lines", err=True)


def _print_alerts_by_rule(samples: dict[tuple[tuple[str, str], ...], float]) -> None:
    """One line per rule with its alerts by severity, so the demo shows which safety stories it caught."""
    by_rule: dict[str, dict[str, int]] = {}
    for labels, value in samples.items():
        named = dict(labels)
        if value:
            by_rule.setdefault(named["rule"], {})[named["severity"]] = int(value)
    for rule, severities in sorted(by_rule.items()):
        detail = ", ".join(f"{severity} {count}" for severity, count in sorted(severities.items()))
        click.echo(f"  {rule:<24} {sum(severities.values()):>4}  ({detail})")
