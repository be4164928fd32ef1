"""The command line issue 3 promises: `pvwatch --help` lists the skeleton's commands (the worker's Kafka settings:
test_cli_worker.py)."""

from __future__ import annotations

import re

from click.testing import CliRunner

from pvwatch.cli import cli


def test_help_lists_demo_broker_worker_ingest_and_sql():
    shown = CliRunner().invoke(cli, ["--help"])
    assert shown.exit_code == 0
    listed = set(re.findall(r"^  (\w+)  ", shown.output.split("Commands:")[1], re.MULTILINE))
    assert {"demo", "broker", "worker", "ingest", "sql"} <= listed
    sql_line = next(line for line in shown.output.splitlines() if line.startswith("  sql "))
    assert "read-only" in sql_line and not sql_line.endswith("e.g."), sql_line  # click cut it at "e.g."
