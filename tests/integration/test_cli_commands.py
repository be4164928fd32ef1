"""The skeleton's commands as a user runs them: `pvwatch broker`, `ingest`, `worker` and `sql`."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from pvwatch.cohort import generate_cohort
from pvwatch.errors import BrokerError
from pvwatch.events import ALL_TOPICS
from pvwatch.streams.broker import free_port, wait_for_port
from tests.conftest import Workers, wait_for

pytestmark = pytest.mark.integration


def pvwatch(*arguments: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI; an env value of None removes that variable."""
    merged = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pvwatch", *arguments], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in merged.items() if v is not None})


def test_broker_command_serves_the_kafka_protocol_with_the_topics_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pvwatch", "broker", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port("127.0.0.1", port, 15)
        wait_for(lambda: _topics(port) >= set(ALL_TOPICS), 15, 0.3, "pvwatch topics created")
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    assert f"broker listening on 127.0.0.1:{port}" in output
    time.sleep(0.2)
    with pytest.raises(BrokerError, match="nothing listening"):
        wait_for_port("127.0.0.1", port, 1)


def test_broker_command_stops_on_ctrl_c_while_it_creates_the_topics():
    """A CI run sent Ctrl-C as the topics appeared: kafka-python, still creating them, swallowed it and the broker
    ran on. The Ctrl-C is now a flag read after the topics are made."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pvwatch", "broker", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port("127.0.0.1", port, 15)  # Tansu listens; pvwatch is now creating the topics
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    with pytest.raises(BrokerError, match="nothing listening"):
        wait_for_port("127.0.0.1", port, 1)


def test_broker_command_refuses_a_port_something_else_listens_on():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = pvwatch("broker", "--port", str(port))
    # before: another Kafka broker there was taken for this one ("listening", exit 0); anything else there gave
    # "no Kafka broker" after 20 s
    assert refused.returncode == 2, refused.stdout
    assert "already in use" in refused.stderr and "listening" not in refused.stdout


def test_broker_command_exits_non_zero_when_the_broker_dies_under_it(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pvwatch", "broker", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and "broker listening" in process.stdout.readline()  # topics created
        tansu = [int(c.parent.name) for c in Path("/proc").glob("[0-9]*/cmdline")
                 if b"tansu" in _read(c) and f"127.0.0.1:{port}".encode() in _read(c)]
        assert len(tansu) == 1, tansu
        os.kill(tansu[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2 and "stopped by itself" in stderr, stderr


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""  # the process exited meanwhile


def _topics(port: int) -> set[str]:
    try:
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
    except Exception:
        return set()
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_ingest_then_sql_read_the_same_events_back(workers: Workers, tmp_path):
    records = [r for r in generate_cohort(8, seed=9) if r["type"] == "adverse-event"]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in records) + "\n" + '{"type": "adverse-event"}\n')
    worker = workers.start()
    env: dict[str, str | None] = {"PVWATCH_KAFKA_BOOTSTRAP": workers.broker.bootstrap}

    missing_key = pvwatch("ingest", str(source), env={**env, "PVWATCH_PSEUDONYM_KEY": None, "PVWATCH_DEMO_MODE": None})
    assert missing_key.returncode == 2 and "PVWATCH_PSEUDONYM_KEY" in missing_key.stderr

    strict = pvwatch("ingest", "--strict", str(source), env={**env, "PVWATCH_DEMO_MODE": "1"})
    assert strict.returncode == 1 and "nothing sent" in strict.stderr
    assert f"events.jsonl:{len(records) + 1}: schema" in strict.stderr

    result = pvwatch("ingest", str(source), env={**env, "PVWATCH_DEMO_MODE": "1"})
    assert result.returncode == 1, "a rejected line makes the exit code non-zero"
    assert f"accepted {len(records)}  rejected 1" in result.stdout
    assert re.search(rf"sent: 100%.*\b{len(records) + 1}/{len(records) + 1}\b", result.stderr), "a progress bar"
    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(records)
             and workers.metric(worker, "pv_events_rejected_total") >= 1, 30, what="ingested")
    worker.stop()

    table = pvwatch("sql", "--db", str(workers.db), "SELECT type, count(*) AS n FROM event_log GROUP BY type")
    assert table.returncode == 0, table.stderr
    assert "adverse-event" in table.stdout and f"{len(records)}" in table.stdout and "(1 row)" in table.stdout
    as_csv = pvwatch("sql", "--db", str(workers.db), "--csv", "SELECT reason FROM dead_letters")
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [["reason"], ["schema"]]
    write = pvwatch("sql", "--db", str(workers.db), "DELETE FROM event_log")
    assert write.returncode != 0 and "read-only" in write.stderr.lower()


def test_ctrl_c_during_ingest_stops_between_lines_and_says_how_to_resume(broker, tmp_path):
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(record) + "\n" for record in generate_cohort(300, seed=9)))
    env = {**os.environ, "PVWATCH_KAFKA_BOOTSTRAP": broker.bootstrap, "PVWATCH_DEMO_MODE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "pvwatch", "ingest", str(source)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stderr is not None
    shown = b""
    while b"sent:" not in shown:  # the progress bar appears as the producer connects: Ctrl-C lands there
        chunk = os.read(process.stderr.fileno(), 4096)
        assert chunk, f"ingest ended before sending: {shown.decode(errors='replace')}"
        shown += chunk
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    stderr = (shown + rest).decode(errors="replace")
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted after handing" in stderr and "run the same command again" in stderr
    assert "Traceback" not in stderr
