"""The analyst's read path (issue 8, "Analyst access to DuckDB"): the analyst snapshot a worker publishes, opened as
an analyst opens it, with the documentation the issue names."""

from __future__ import annotations

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
