"""Published snapshots on a real DuckDB file: analysts read while the writer inserts and republishes.

Section 4 of /work/shared/notes/streaming-measurements.md measured that a second process cannot open the store
while the worker holds it, not even read-only; these tests prove the snapshot path around that: a reader process
opening the snapshot read-only in a loop never sees a lock error, a half-written file or a count that goes back.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from pvwatch.cohort import generate_cohort
from pvwatch.config import Settings
from pvwatch.events import AdverseEventReported
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.store.eventstore import EventStore, MessageOrigin, connect
from pvwatch.store.snapshot import SnapshotError, analyst_snapshot_path, publish_snapshot, read_snapshot_meta
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for

pytestmark = pytest.mark.integration
ORIGIN = MessageOrigin("pv.clinical.adverse-event.v1", 0, None)

#: Opens the snapshot read-only as fast as it can until told to stop; prints one JSON line per open.
#: It opens as every pvwatch reader does (the dashboard, `pvwatch sql`): a bare `duckdb.connect` can pair one
#: snapshot's headers with the next one's blocks when a publish lands between DuckDB's three opens of the file.
READER = r"""
import json, os, sys, time
from pathlib import Path
from pvwatch.store.eventstore import connect
path, stop = Path(sys.argv[1]), sys.argv[2]
while not os.path.exists(stop):
    try:
        con = connect(path, read_only=True)
        meta = con.execute("SELECT event_count FROM snapshot_meta").fetchone()[0]
        rows = con.execute("SELECT count(*) FROM event_log").fetchone()[0]
        serious = con.execute("SELECT count(*) FROM serious_events").fetchone()[0]
        con.close()
        print(json.dumps({"meta": meta, "rows": rows, "serious": serious}), flush=True)
    except Exception as error:
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
    time.sleep(0.005)
"""


def cohort(patients: int, seed: int) -> list[AdverseEventReported]:
    p = Pseudonymiser.from_secret(None, demo_mode=True)
    return [AdverseEventReported.model_validate(p.pseudonymise_record(r)) for r in generate_cohort(patients, seed)
            if r["type"] == "adverse-event"]


def test_a_second_process_cannot_open_the_store_but_can_open_the_snapshot(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "pvwatch.duckdb")
    events = cohort(10, seed=3)
    with store.transaction():
        store.insert_events([(e, ORIGIN) for e in events], datetime.now(UTC))
    info = publish_snapshot(store.con, tmp_path / "pvwatch.duckdb.snapshot.duckdb")

    probe = "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True).execute('SELECT 1')"
    held = subprocess.run([sys.executable, "-c", probe, str(store.path)], capture_output=True, text=True)
    assert held.returncode != 0 and "lock" in held.stderr.lower()  # the problem snapshots exist for
    ok = subprocess.run([sys.executable, "-c", probe, str(info.path)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert info.event_count == len(events) == info.tables["event_log"]
    store.close()


def test_readers_never_see_a_lock_error_or_a_partial_snapshot_while_the_writer_inserts(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "pvwatch.duckdb")
    # A view defined in the store, as migrations define them: it must exist inside every snapshot too.
    store.con.execute("CREATE VIEW serious_events AS SELECT event_id FROM event_log "
                      "WHERE (payload->'seriousness'->>'hospitalisation')::BOOLEAN "
                      "OR (payload->'seriousness'->>'death')::BOOLEAN "
                      "OR (payload->'seriousness'->>'life_threatening')::BOOLEAN "
                      "OR (payload->'seriousness'->>'medically_important')::BOOLEAN")
    target = tmp_path / "pvwatch.duckdb.snapshot.duckdb"
    publish_snapshot(store.con, target)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(target), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    events = cohort(1200, seed=5)  # ~900 adverse events: enough batches for several snapshots while writing
    batches = [events[i:i + 20] for i in range(0, len(events), 20)]
    writer_done = threading.Event()
    writer_errors: list[BaseException] = []

    def write() -> None:
        # The worker's own connection keeps writing in transactions while snapshots are taken from a cursor.
        try:
            for batch in batches:
                with store.transaction():
                    store.insert_events([(e, ORIGIN) for e in batch], datetime.now(UTC))
                time.sleep(0.01)
        except BaseException as error:
            writer_errors.append(error)
        finally:
            writer_done.set()

    writer = threading.Thread(target=write)
    published = []
    try:
        time.sleep(0.3)  # let the reader start opening the first snapshot
        writer.start()
        while not writer_done.is_set():
            published.append(publish_snapshot(store.con, target))
        published.append(publish_snapshot(store.con, target))
        time.sleep(0.3)
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=30)
        writer.join()
    assert not writer_errors
    assert reader.returncode == 0, err
    reads = [json.loads(line) for line in out.splitlines()]
    errors = [r["error"] for r in reads if "error" in r]
    assert errors == [], errors[:3]
    assert len(published) >= 3, "the writer must have republished while inserting"
    assert len(reads) >= 20
    counts = [r["rows"] for r in reads]
    assert all(r["meta"] == r["rows"] for r in reads), "snapshot_meta must describe the snapshot it is in"
    assert counts == sorted(counts), "a reader must never see the log shrink"
    assert counts[-1] == len(events)
    assert len(set(counts)) >= 3, "readers saw intermediate snapshots, not just the first and the last"
    print(f"{len(published)} snapshots published, {len(reads)} reads, {len(set(counts))} distinct counts, "
          f"publish {max(p.seconds for p in published) * 1000:.0f} ms at most")
    expected_serious = sum(1 for e in events if e.seriousness.is_serious)
    assert reads[-1]["serious"] == expected_serious
    assert not list(tmp_path.glob("*.tmp-*")), "no temporary file may be left behind"
    store.close()


def test_snapshot_keeps_documentation_and_staleness_and_is_read_only(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "pvwatch.duckdb")
    events = cohort(5, seed=9)
    with store.transaction():
        store.insert_events([(e, ORIGIN) for e in events], datetime.now(UTC))
    before = datetime.now(UTC)
    info = publish_snapshot(store.con, tmp_path / "snap.duckdb")
    con = connect(info.path, read_only=True)
    taken_at, count = read_snapshot_meta(con) or (None, None)
    assert taken_at is not None and abs((taken_at - before).total_seconds()) < 5
    assert count == len(events)
    described = "SELECT comment FROM duckdb_tables() WHERE table_name = 'event_log'"
    assert con.execute(described).fetchone()[0] == store.con.execute(described).fetchone()[0] != None  # noqa: E711
    with pytest.raises(duckdb.Error, match="read-only"):
        con.execute("DELETE FROM event_log")
    con.close()
    with pytest.raises(SnapshotError, match="not in the store"):
        publish_snapshot(store.con, tmp_path / "other.duckdb", tables=["no_such_table"])
    assert not (tmp_path / "other.duckdb").exists()
    store.close()


def test_the_documented_example_analyses_run_on_a_snapshot_of_the_cohort(tmp_path: Path) -> None:
    """docs/analysts.md: the queries marked as tested must run and agree with the cohort's serious reports."""
    import re

    from pvwatch.domain.engine import evaluate_events

    events = cohort(60, seed=7)
    derived, _ = evaluate_events(events, datetime.now(UTC))
    alerts = list({alert.alert_id: alert for alert in derived}.values())  # a follow-up re-derives its case's alert
    store = EventStore(tmp_path / "pvwatch.duckdb")
    with store.transaction():
        store.insert_events([(e, ORIGIN) for e in events], datetime.now(UTC))
        store.insert_alerts(alerts)
    info = publish_snapshot(store.con, tmp_path / "snap.duckdb")
    store.close()
    doc = (Path(__file__).resolve().parents[2] / "docs" / "analysts.md").read_text()
    tested = re.findall(r"```sql\n(.*?)```", doc, re.S)[1]
    by_product, awareness_to_alert, queue = [s for s in tested.split(";") if s.strip()]
    con = connect(info.path, read_only=True)
    serious = [e for e in events if e.seriousness.is_serious]
    assert sum(n for _, n in con.execute(by_product).fetchall()) == sum(len(e.products) for e in serious)
    assert len(con.execute(awareness_to_alert).fetchall()) == len(alerts)
    by_rule = Counter(alert.rule_id for alert in alerts)
    assert sorted(con.execute(queue).fetchall()) == sorted((rule, "open", n) for rule, n in by_rule.items())
    con.close()


def test_only_the_analyst_snapshot_is_group_readable_whatever_the_umask(tmp_path: Path) -> None:
    """The full snapshot holds narratives: owner-only even when the worker runs with a permissive umask."""
    store = EventStore(tmp_path / "pvwatch.duckdb")
    with store.transaction():
        store.insert_events([(e, ORIGIN) for e in cohort(5, seed=9)], datetime.now(UTC))
    previous = os.umask(0)
    try:
        info = publish_snapshot(store.con, tmp_path / "snap.duckdb")
    finally:
        os.umask(previous)
    assert info.analyst_path is not None
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(info.analyst_path.stat().st_mode) == 0o640
    store.close()


def test_the_worker_writes_the_store_owner_only_and_opens_only_the_analyst_snapshot_to_its_group(
    workers: Workers, demo_pseudonymiser: Pseudonymiser
) -> None:
    events = [AdverseEventReported.model_validate(demo_pseudonymiser.pseudonymise_record(r))
              for r in generate_cohort(3, 4) if r["type"] == "adverse-event"]
    previous = os.umask(0o002)  # a permissive operator umask, inherited by the worker process
    try:
        worker = workers.start(env={"PVWATCH_SNAPSHOT_INTERVAL_S": "0.5"})
    finally:
        os.umask(previous)
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for event in events:
            publisher.publish(event)
    wait_for(lambda: workers.metric(worker, "pv_events_ingested_total") >= len(events), 30, what="events stored")
    analyst = analyst_snapshot_path(Settings(db=workers.db).snapshot_target)
    wait_for(lambda: analyst.exists() and read_snapshot_meta_count(analyst) >= len(events), 30,
             what="a snapshot holding the events")
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in workers.tmp_path.rglob("*")
             if not path.name.endswith(".log")}
    assert modes.pop(analyst.name) == 0o640
    assert modes.pop(workers.db.name) == 0o600
    readable = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert readable == {}, "only the analyst snapshot may be readable beyond the worker's account"


def read_snapshot_meta_count(path: Path) -> int:
    con = connect(path, read_only=True)
    try:
        return (read_snapshot_meta(con) or (None, 0))[1]
    finally:
        con.close()


def _rows(path: Path) -> dict[str, list[tuple]]:
    """Every table of a snapshot (meta aside), rows sorted: what a reader of the file can see."""
    con = connect(path, read_only=True)
    try:
        tables = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {name: sorted(con.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
                for name in tables if name != "snapshot_meta"}
    finally:
        con.close()


def test_an_appended_snapshot_equals_a_full_copy_for_officers_and_analysts(tmp_path: Path) -> None:
    """The second publish appends the new events to a copy of the first and rewrites the derived tables; both
    files must hold exactly what a full copy of the store at that moment holds, the analyst's redacted alike."""
    from pvwatch.domain.engine import SafetyEngine
    from pvwatch.events.registry import EVENT_TYPES

    p = Pseudonymiser.from_secret(None, demo_mode=True)
    events = [EVENT_TYPES[r["type"]].model_validate(p.pseudonymise_record(r)) for r in generate_cohort(30, 21)]
    narratives = {e.narrative for e in events if getattr(e, "narrative", None)}
    assert narratives
    store = EventStore(tmp_path / "pvwatch.duckdb")
    engine = SafetyEngine()
    target = tmp_path / "pvwatch.duckdb.snapshot.duckdb"
    first = [e for e in events if not getattr(e, "narrative", None)][: len(events) // 2]
    parts = (first, [e for e in events if e not in first])  # the narratives arrive after the first publish
    for part in parts:
        with store.transaction():
            store.insert_events([(e, ORIGIN) for e in part], datetime.now(UTC))
            store.insert_alerts(engine.apply(part, datetime.now(UTC)).alerts)
        info = publish_snapshot(store.con, target)
    assert info.incremental and info.event_count == len(events)
    full = publish_snapshot(store.con, tmp_path / "full.duckdb")
    assert not full.incremental
    assert _rows(target) == _rows(full.path)
    assert info.analyst_path is not None and full.analyst_path is not None
    assert _rows(info.analyst_path) == _rows(full.analyst_path)
    analyst_bytes = info.analyst_path.read_bytes()
    assert not [n for n in narratives if n.encode() in analyst_bytes], "no narrative in the appended analyst file"
    con = connect(target, read_only=True)
    assert read_snapshot_meta(con)[1] == len(events)
    con.close()

    # the store's schema changes (a migration adds a view): the next publish is a full copy that has it
    store.con.execute("CREATE VIEW recent_events AS SELECT event_id FROM event_log")
    again = publish_snapshot(store.con, target)
    assert not again.incremental and "recent_events" in again.views
    store.close()


def test_repeated_appended_snapshots_do_not_grow_the_file_without_bound(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "pvwatch.duckdb")
    events = cohort(200, seed=8)
    with store.transaction():
        store.insert_events([(e, ORIGIN) for e in events], datetime.now(UTC))
    target = tmp_path / "snap.duckdb"
    first = publish_snapshot(store.con, target)
    sizes = [publish_snapshot(store.con, target).size_bytes for _ in range(15)]
    assert sizes[-1] <= 2 * first.size_bytes, (first.size_bytes, sizes)
    store.close()
