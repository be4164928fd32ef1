"""`pvwatch worker` as an operator configures it: Kafka from `--bootstrap-servers` or PVWATCH_KAFKA_BOOTSTRAP
(issue 3), and the direct page to Alertmanager discoverable in --help, reaching the worker's settings, a mistyped
URL stopping the worker at start instead of silently leaving people paged only by the slower Prometheus rule path
(docs/operations.md, "How an alert reaches a person")."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pvwatch import cli as cli_module
from pvwatch.cli import cli
from pvwatch.config import Settings
from pvwatch.errors import ConfigError


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings `pvwatch worker` would run with (the worker itself is not started)."""
    runs: list[Settings] = []
    monkeypatch.setattr("pvwatch.streams.worker.run_worker", lambda settings, loglevel: runs.append(settings))
    monkeypatch.setattr(cli_module, "_owner_only_files", lambda: None)  # leaves the test process's umask alone
    monkeypatch.delenv("PVWATCH_ALERTMANAGER_URL", raising=False)
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


def test_worker_help_says_how_to_page_through_alertmanager_at_once():
    shown = CliRunner().invoke(cli, ["worker", "--help"])
    assert shown.exit_code == 0
    assert "--alertmanager-url" in shown.output and "PVWATCH_ALERTMANAGER_URL" in shown.output


def test_alertmanager_url_option_reaches_the_worker_settings(started: list[Settings]):
    ran = CliRunner().invoke(cli, ["worker", "--alertmanager-url", "http://alertmanager:9093"])
    assert ran.exit_code == 0, ran.output
    assert [s.alertmanager_url for s in started] == ["http://alertmanager:9093"]


def test_environment_alone_still_configures_the_direct_page(started: list[Settings]):
    ran = CliRunner().invoke(cli, ["worker"], env={"PVWATCH_ALERTMANAGER_URL": "https://am.example:9093"})
    assert ran.exit_code == 0, ran.output
    assert [s.alertmanager_url for s in started] == ["https://am.example:9093"]


@pytest.mark.parametrize("url", ["alertmanager:9093", "ftp://alertmanager:9093", "http://", "9093"])
def test_a_url_alertmanager_cannot_be_reached_at_is_refused_at_start(started: list[Settings], url: str):
    ran = CliRunner().invoke(cli, ["worker", "--alertmanager-url", url])
    assert isinstance(ran.exception, ConfigError) and started == []  # the `pvwatch` entry point prints it, exits 2
    assert "PVWATCH_ALERTMANAGER_URL" in str(ran.exception) and "http://alertmanager:9093" in str(ran.exception)
