"""The DuckDB store on a real file: idempotent on event_id, alert_id and dead-letter identity."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from pvwatch.cohort import generate_cohort
from pvwatch.domain.engine import evaluate_events
from pvwatch.events import AdverseEventReported
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.store.eventstore import DeadLetter, EventStore, MessageOrigin
from pvwatch.store.migrations import latest_version, migrate

NOW = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.fixture
def events():
    p = Pseudonymiser.from_secret(None, demo_mode=True)
    return [AdverseEventReported.model_validate(p.pseudonymise_record(r)) for r in generate_cohort(20, seed=2)
            if r["type"] == "adverse-event"]


def test_writing_the_same_events_twice_stores_them_once(tmp_path, events):
    store = EventStore(tmp_path / "s.duckdb")
    origin = MessageOrigin("pv.clinical.adverse-event.v1", 0, 1)
    with store.transaction():
        first = store.insert_events([(e, origin) for e in events], NOW)
    with store.transaction():
        second = store.insert_events([(e, origin) for e in events], NOW)
    assert len(first) == len(events)
    assert second == set()
    assert store.con.execute("SELECT count(*) FROM event_log").fetchone()[0] == len(events)


def test_alerts_and_dead_letters_are_idempotent_and_survive_reopening(tmp_path, events):
    path = tmp_path / "s.duckdb"
    store = EventStore(path)
    alerts, _ = evaluate_events(events, NOW)
    letter = DeadLetter(MessageOrigin("t", 0, 5), "not_json", "column 1", b"{", NOW)
    with store.transaction():
        distinct = {alert.alert_id for alert in alerts}  # a re-derived alert appears again, stored once
        assert {alert.alert_id for alert in store.insert_alerts(alerts)} == distinct and distinct
        assert store.insert_dead_letters([letter]) == [letter]
    with store.transaction():
        assert store.insert_alerts(alerts) == []
        assert store.insert_dead_letters([letter]) == []
    store.close()

    reopened = EventStore(path)
    assert reopened.schema_version == latest_version()
    assert {a.alert_id for a in reopened.unpublished_alerts()} == {a.alert_id for a in alerts}
    reopened.mark_published([a.alert_id for a in alerts], [letter.dead_letter_id])
    assert reopened.unpublished_alerts() == []
    assert reopened.unpublished_dead_letters() == []


def test_a_failed_batch_leaves_nothing_behind(tmp_path, events):
    store = EventStore(tmp_path / "s.duckdb")
    with pytest.raises(RuntimeError), store.transaction():
        store.insert_events([(e, None) for e in events], NOW)
        raise RuntimeError("crash inside the batch")
    assert store.con.execute("SELECT count(*) FROM event_log").fetchone()[0] == 0



def test_a_migration_that_lands_later_with_a_lower_number_is_still_applied(tmp_path):
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    one = (1, "001_a.sql", "CREATE TABLE a (x INTEGER);")
    two = (2, "002_b.sql", "CREATE TABLE b (x INTEGER);")
    three = (3, "003_c.sql", "CREATE TABLE c (x INTEGER);")
    assert migrate(con, [one, three]) == 3
    assert migrate(con, [one, two, three]) == 3
    tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {"a", "b", "c"} <= tables
    assert [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()] == [1, 2, 3]
