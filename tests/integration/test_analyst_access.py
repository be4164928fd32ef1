"""The analyst's read path (issue 8, "Analyst access to DuckDB"): the analyst snapshot a worker publishes, opened as
an analyst opens it, with the documentation the issue names."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pvwatch.cohort import generate_cohort
from pvwatch.events.codec import parse_event
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.store.eventstore import EventStore, connect
from pvwatch.store.snapshot import publish_snapshot

pytestmark = pytest.mark.integration

#: the views issue 8 requires documented "with column descriptions"
DOCUMENTED = ("adverse_events", "infusions", "treatments", "labs", "disease_activity", "alerts", "expedited_reports",
              "signals")


@pytest.fixture(scope="module")
def analyst_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small cohort stored as the worker stores it, published as the worker publishes it."""
    folder = tmp_path_factory.mktemp("analyst")
    p = Pseudonymiser.from_secret(None, demo_mode=True)
    store = EventStore(folder / "pvwatch.duckdb")
    with store.transaction():
        store.insert_events([(parse_event(p.pseudonymise_record(r)), None) for r in generate_cohort(10, 3)],
                            datetime.now(UTC))
    info = publish_snapshot(store.con, folder / "pvwatch.duckdb.snapshot.duckdb")
    store.close()
    assert info.analyst_path is not None
    return info.analyst_path


def test_every_view_the_issue_names_and_each_of_its_columns_is_described_in_the_analyst_snapshot(
        analyst_snapshot: Path) -> None:
    con = connect(analyst_snapshot, read_only=True)
    try:
        relations = dict(con.execute(
            "SELECT view_name, comment FROM duckdb_views() WHERE view_name IN (SELECT unnest($names)) UNION ALL "
            "SELECT table_name, comment FROM duckdb_tables() WHERE table_name IN (SELECT unnest($names))",
            {"names": list(DOCUMENTED)}).fetchall())
        columns = con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE table_name IN (SELECT unnest($n))",
            {"n": list(DOCUMENTED)}).fetchall()
    finally:
        con.close()
    assert sorted(relations) == sorted(DOCUMENTED)
    assert [name for name, comment in relations.items() if not comment] == []
    assert {table for table, _, _ in columns} == set(DOCUMENTED)
    assert [(table, column) for table, column, comment in columns if not comment] == []


def duckdb_cli() -> Path:
    """The `duckdb` command the project installs next to pvwatch (the duckdb-cli dependency)."""
    return Path(sys.executable).parent / "duckdb"


def test_the_duckdb_cli_reads_the_analyst_snapshot_while_the_writer_holds_the_store(tmp_path: Path) -> None:
    """docs/analysts.md: `duckdb -readonly <db>.snapshot.analyst.duckdb "SELECT ..."` with the worker running; the
    first publish copies the store, the next one appends to it, and the CLI reads both."""
    import csv
    import io
    import re

    p = Pseudonymiser.from_secret(None, demo_mode=True)
    records = list(generate_cohort(10, 3))
    events = [parse_event(p.pseudonymise_record(r)) for r in records]
    half = len(events) // 2
    store = EventStore(tmp_path / "pvwatch.duckdb")  # holds DuckDB's write lock until closed, as the worker does
    try:
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        section = readme[readme.index("## The dashboard and analyst access"):]
        by_lot = re.findall(r"```sql\n(.*?)```", section, re.S)[0].split(";")[0]
        for stored in (events[:half], events[half:]):
            with store.transaction():
                store.insert_events([(e, None) for e in stored], datetime.now(UTC))
            info = publish_snapshot(store.con, tmp_path / "pvwatch.duckdb.snapshot.duckdb")
            assert info.analyst_path is not None
            count = subprocess.run([str(duckdb_cli()), "-readonly", "-csv", str(info.analyst_path),
                                    "SELECT count(*) AS n FROM event_log"], capture_output=True, text=True, timeout=60)
            assert count.returncode == 0, count.stderr
            assert count.stdout.split() == ["n", str(info.event_count)]
        assert info.incremental, "the second publish appended to the first"
        assert info.event_count == len(events)

        shown = subprocess.run([str(duckdb_cli()), "-readonly", "-csv", str(info.analyst_path), "-c", by_lot],
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        con = connect(info.analyst_path, read_only=True)
        expected = con.execute(by_lot).fetchall()
        con.close()
        rows = list(csv.reader(io.StringIO(shown.stdout)))
        assert rows[0] == ["lot_id", "infusions", "adverse_events", "ae_per_100_infusions"]
        # the same rows (the query orders by rate only: lots with equal rates may come in any order)
        assert len(expected) > 1 and sorted(rows[1:]) == sorted([["" if v is None else str(v) for v in row]
                                                                 for row in expected])
    finally:
        store.close()


def test_after_a_demo_run_the_printed_duckdb_command_reads_the_analyst_snapshot(tmp_path: Path) -> None:
    """`make demo` then the analyst's command it prints: a run shorter than the worker's snapshot timer left no
    snapshot before, so the documented `duckdb -readonly <db>.snapshot.analyst.duckdb` found no database."""
    import re

    db = tmp_path / "demo.duckdb"
    run = subprocess.run([sys.executable, "-m", "pvwatch", "demo", "--patients", "10", "--db", str(db), "--workdir",
                          str(tmp_path / "run")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = re.search(r"^analysts: (\S+) -readonly (\S+)  \(", run.stdout, re.MULTILINE)
    assert printed, run.stdout
    cli, analyst = printed.groups()
    assert Path(cli) == duckdb_cli() and Path(analyst) == db.with_name(db.name + ".snapshot.analyst.duckdb")
    count = subprocess.run([cli, "-readonly", "-csv", analyst, "-c", "SELECT count(*) AS n FROM event_log"],
                           capture_output=True, text=True, timeout=60)
    assert count.returncode == 0, count.stderr
    assert count.stdout.split() == ["n", str(len(list(generate_cohort(10, 7))))]
