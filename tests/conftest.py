"""Shared fixtures: a real embedded broker per test, real worker processes, helpers to wait on them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pvwatch.demo import WorkerProcess
from pvwatch.metrics_client import scrape
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.streams.broker import EmbeddedBroker, free_port
from pvwatch.streams.topics import ensure_topics

REPO = Path(__file__).resolve().parents[1]
#: Real, published data the tests check against, with its provenance in tests/data/README.md.
TEST_DATA = REPO / "tests" / "data"
#: Group sessions of 4 s make a worker ready in about 4 s on the embedded broker (a join waits session/2).
TEST_SESSION_TIMEOUT_S = 4.0


def wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(interval_s)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as running:
        ensure_topics(running.bootstrap, partitions=4)
        yield running


class Workers:
    """Starts `pvwatch worker` processes against the test broker; all are stopped at teardown."""

    def __init__(self, broker: EmbeddedBroker, tmp_path: Path) -> None:
        self.broker = broker
        self.tmp_path = tmp_path
        self.db = tmp_path / "pvwatch.duckdb"
        self.started: list[WorkerProcess] = []

    def start(self, env: dict[str, str] | None = None, wait_ready: bool = True) -> WorkerProcess:
        log = self.tmp_path / f"worker-{len(self.started)}.log"
        worker = WorkerProcess(self.broker.bootstrap, self.db, free_port(), log, TEST_SESSION_TIMEOUT_S, env=env)
        self.started.append(worker)
        if wait_ready:
            wait_for(lambda: self.metric(worker, "pv_worker_up") == 1, 30, what="worker ready")
        return worker

    def metric(self, worker: WorkerProcess, name: str) -> float:
        worker.check_alive()
        try:
            return scrape(worker.metrics_url).get(name, 0.0)
        except OSError:
            return 0.0

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def workers(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(broker, tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def demo_pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser.from_secret(None, demo_mode=True)


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)
