"""`pvwatch sql` is a read-only query of the store (issue 3): it reads the store's tables and views, and no query
can copy children's records out to a file, read other files or switch that protection off."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pvwatch.cohort import generate_cohort
from pvwatch.events import AdverseEventReported
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.store.eventstore import EventStore, MessageOrigin

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, int]:
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    events = [AdverseEventReported.model_validate(pseudonymiser.pseudonymise_record(r))
              for r in generate_cohort(10, seed=4) if r["type"] == "adverse-event"]
    path = tmp_path / "pvwatch.duckdb"
    written = EventStore(path)
    with written.transaction():
        written.insert_events([(e, MessageOrigin(e.topic, 0, i)) for i, e in enumerate(events)],
                              datetime(2026, 11, 30, tzinfo=UTC))
    written.close()
    return path, len({e.case_id for e in events})


def sql(db: Path, query: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pvwatch", "sql", "--db", str(db), *options, query],
                          capture_output=True, text=True, timeout=60)


def test_sql_reads_the_views_of_the_store(store):
    db, cases = store
    read = sql(db, "SELECT count(DISTINCT case_id) AS cases FROM adverse_events", "--csv")
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["cases", str(cases)]


@pytest.mark.parametrize("query", [
    "COPY (SELECT event_id, payload FROM event_log) TO '{out}'",
    "COPY event_log TO '{out}' (FORMAT parquet)",
    "SELECT content FROM read_text('{other}')",
    "SET enable_external_access = true; COPY event_log TO '{out}'",
    "ATTACH '{out}' AS elsewhere",
])
def test_no_query_writes_or_reads_another_file(store, tmp_path, query):
    db, _ = store
    out = tmp_path / "copied-out"
    other = tmp_path / "another-file.txt"
    other.write_text("not the store's\n")
    refused = sql(db, query.format(out=out, other=other))
    assert refused.returncode != 0, refused.stdout
    assert not out.exists(), "the store's records were written to another file"
    assert refused.stderr.startswith("Error: "), refused.stderr  # a one-line error, not a traceback


def test_sql_on_the_store_a_running_worker_holds_says_what_to_do(store):
    db, _ = store
    worker_holds_it = EventStore(db)  # DuckDB's one writer, as the worker is
    try:
        refused = sql(db, "SELECT count(*) FROM event_log")
    finally:
        worker_holds_it.close()
    assert refused.returncode == 2
    assert "held by another process" in refused.stderr and "snapshot" in refused.stderr
    assert "Traceback" not in refused.stderr
