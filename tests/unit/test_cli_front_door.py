"""The command line issue 3 promises: `pvwatch --help` lists the skeleton's commands, and `pvwatch worker` runs
against any Kafka given by `--bootstrap-servers` or by PVWATCH_KAFKA_BOOTSTRAP."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from pvwatch import cli as cli_module
from pvwatch.cli import cli
from pvwatch.config import Settings


def test_help_lists_demo_broker_worker_ingest_and_sql():
    shown = CliRunner().invoke(cli, ["--help"])
    assert shown.exit_code == 0
    listed = set(re.findall(r"^  (\w+)  ", shown.output.split("Commands:")[1], re.MULTILINE))
    assert {"demo", "broker", "worker", "ingest", "sql"} <= listed
    sql_line = next(line for line in shown.output.splitlines() if line.startswith("  sql "))
    assert "read-only" in sql_line and not sql_line.endswith("e.g."), sql_line  # click cut it at "e.g."


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings `pvwatch worker` would run with (the Faust worker itself is not started)."""
    runs: list[Settings] = []
    monkeypatch.setattr("pvwatch.streams.worker.run_worker", lambda settings, loglevel: runs.append(settings))
    monkeypatch.setattr(cli_module, "_owner_only_files", lambda: None)  # leaves the test process's umask alone
    monkeypatch.delenv("PVWATCH_KAFKA_BOOTSTRAP", raising=False)
    return runs


def test_worker_takes_its_bootstrap_servers_from_the_environment(started: list[Settings]):
    ran = CliRunner().invoke(cli, ["worker"], env={"PVWATCH_KAFKA_BOOTSTRAP": "kafka-1:9092,kafka-2:9092"})
    assert ran.exit_code == 0, ran.output
    assert [s.kafka_bootstrap for s in started] == ["kafka-1:9092,kafka-2:9092"]


def test_worker_bootstrap_servers_option_overrides_the_environment(started: list[Settings]):
    ran = CliRunner().invoke(cli, ["worker", "--bootstrap-servers", "broker.internal:19092"],
                             env={"PVWATCH_KAFKA_BOOTSTRAP": "kafka-1:9092"})
    assert ran.exit_code == 0, ran.output
    assert [s.kafka_bootstrap for s in started] == ["broker.internal:19092"]
