"""`pvwatch replay` in two processes rebuilds exactly the tables one process rebuilds (store/replay.py: patients are
split between two engines, lot clusters counted across both)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import duckdb
import pytest

from pvwatch.cohort import generate_cohort
from pvwatch.domain.engine import RULE_INPUT_TYPES
from pvwatch.events.codec import parse_event
from pvwatch.store.eventstore import EventStore, StoreLocked
from pvwatch.store.replay import _LOG_FROM, _RULE_INPUTS, HELPER_PATIENTS, StoredEventInvalid, _decode, replay
from tests.conftest import wait_for
from tests.integration.test_replay import DERIVED_ALERT_COLUMNS, expedited_reports_of
from tests.scenarios.stories import all_stories

pytestmark = pytest.mark.integration


def derived_tables(path) -> tuple[list[tuple], list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        alerts = con.execute(f"SELECT {DERIVED_ALERT_COLUMNS} FROM alerts ORDER BY alert_id").fetchall()
    finally:
        con.close()
    return alerts, expedited_reports_of(path)


def stored_cohort(path, pseudonymiser) -> list:
    """Every planted story (a lot cluster across three patients among them) in a cohort of every event type."""
    events = [parse_event(pseudonymiser.pseudonymise_record(r)) for r in generate_cohort(60, seed=21)]
    events += [event for story in all_stories() for event in story.events]
    store = EventStore(path)
    with store.transaction():
        store.insert_events([(event, None) for event in events], datetime.now(UTC))
    store.close()
    return events


def test_two_processes_derive_the_same_tables_as_one(demo_pseudonymiser, tmp_path):
    one, two = tmp_path / "one.duckdb", tmp_path / "two.duckdb"
    events = stored_cohort(one, demo_pseudonymiser)
    store = EventStore(one)
    patients = store.con.execute(f"SELECT count(DISTINCT {HELPER_PATIENTS}) FROM event_log").fetchone()
    store.close()
    assert patients == (2,), "both processes must get patients"
    shutil.copy(one, two)

    single = replay(one, processes=1)
    double = replay(two, processes=2)

    alerts, clocks = derived_tables(two)
    assert (alerts, clocks) == derived_tables(one)
    assert double.events == single.events == len({event.event_id for event in events})
    rules = {row[1] for row in alerts}
    assert {"lot-cluster", "infusion-temporal", "expedited-clock", "duplicate-case"} <= rules
    assert clocks, "the stories start expedited clocks"
    con = duckdb.connect(str(two), read_only=True)
    share = dict(con.execute(f"SELECT event_id, {HELPER_PATIENTS} FROM event_log").fetchall())
    con.close()
    across = [row for row in alerts if row[1] == "lot-cluster" and len({share[e] for e in row[6]}) == 2]
    assert across, "a lot cluster whose patients are derived in different processes"


def _edit_one_lab(path, helper_share: bool, old: str, new: str):
    """Rewrite one stored lab result's payload text (as an older pvwatch, or a corrupted file, would have left it);
    drop the serious-ae alerts so a replay has something to rebuild. Returns (event_id, alerts left)."""
    con = duckdb.connect(str(path))
    (event_id,) = con.execute(
        f"""SELECT event_id FROM event_log WHERE type = 'lab-result' AND ({HELPER_PATIENTS}) = $helper
            AND contains(payload::VARCHAR, $old) ORDER BY event_id LIMIT 1""",
        {"helper": helper_share, "old": old}).fetchone()
    con.execute("UPDATE event_log SET payload = replace(payload::VARCHAR, $old, $new)::JSON WHERE event_id = $id",
                {"id": event_id, "old": old, "new": new})
    con.execute("DELETE FROM alerts WHERE rule_id = 'serious-ae'")
    left = con.execute("SELECT count(*) FROM alerts").fetchone()
    con.close()
    return event_id, left


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("helper_share", [False, True], ids=["parent's patient", "helper's patient"])
def test_a_unit_stored_before_ucum_checking_still_loads_and_replays(demo_pseudonymiser, tmp_path, processes,
                                                                    helper_share):
    """"mcg" passed the unit's form check before the UCUM grammar tightened it (2026-11-30): the store's log is read
    as it was accepted (docs/events.md, Schema evolution), so replay and the worker's start-up still read it."""
    path = tmp_path / "store.duckdb"
    stored_cohort(path, demo_pseudonymiser)
    replay(path, processes=1)
    con = duckdb.connect(str(path), read_only=True)
    before = con.execute("SELECT count(*) FROM alerts").fetchone()
    con.close()
    event_id, left = _edit_one_lab(path, helper_share, '"unit":"U/L"', '"unit":"mcg"')
    assert left < before

    replay(path, processes=processes)
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM alerts").fetchone() == before, "the deleted alerts are rebuilt"
    con.close()
    store = EventStore(path)  # what the worker does at start: rebuild the rules' memory from the log
    edited = [e for batch in store.iter_events() for e in batch if e.event_id == event_id]
    store.close()
    assert [e.unit for e in edited] == ["mcg"]


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("helper_share", [False, True], ids=["parent's patient", "helper's patient"])
def test_a_stored_event_this_version_rejects_stops_replay_naming_it(demo_pseudonymiser, tmp_path, processes,
                                                                     helper_share):
    """A stored lab unit that is not even a string (a corrupted or hand-edited file: no pvwatch ever accepted it):
    replay says which event and why, and writes nothing, whichever process reads it."""
    path = tmp_path / "store.duckdb"
    stored_cohort(path, demo_pseudonymiser)
    replay(path, processes=1)
    event_id, left = _edit_one_lab(path, helper_share, '"unit":"U/L"', '"unit":["U/L"]')

    with pytest.raises(StoredEventInvalid, match=f"stored event {event_id} \\(lab-result\\).*unit.*string"):
        replay(path, processes=processes)
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM alerts").fetchone() == left, "nothing written"
    con.close()


@pytest.mark.parametrize("processes", [1, 2])
def test_replay_migrates_a_store_that_never_had_the_schema(tmp_path, processes):
    """A DuckDB file without pvwatch's tables (two processes read it only once it is migrated)."""
    path = tmp_path / "store.duckdb"
    duckdb.connect(str(path)).close()

    report = replay(path, processes=processes)

    assert (report.events, report.alerts) == (0, 0)
    store = EventStore(path)
    try:
        assert store.event_count() == 0
        assert store.con.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    finally:
        store.close()


def test_the_log_is_read_in_the_engines_order(demo_pseudonymiser, tmp_path):
    """Replay hands each chunk to the engine as read (SafetyEngine.apply(in_order=True): no sort), so the log's
    ORDER BY occurred_at, event_id must be the engine's order: instants across time zones, ties by the UUID as an
    integer (ids either side of the sign bit DuckDB flips in its UUID storage)."""
    path = tmp_path / "order.duckdb"
    events = [parse_event(demo_pseudonymiser.pseudonymise_record(r)) for r in generate_cohort(5, seed=3)]
    same_instant = events[0].occurred_at.astimezone(timezone(timedelta(hours=5)))
    ids = (0, 1, (1 << 63) - 1, 1 << 63, (1 << 127) - 1, 1 << 127, (1 << 128) - 1)
    inputs = [event for event in events if event.type in RULE_INPUT_TYPES]
    tied = [inputs[i % len(inputs)].model_copy(update={
        "event_id": UUID(int=n), "occurred_at": same_instant if i % 2 else events[0].occurred_at})
        for i, n in enumerate(ids)]
    store = EventStore(path)
    with store.transaction():
        store.insert_events([(event, None) for event in [*events, *tied]], datetime.now(UTC))
        rows = store.con.execute(_LOG_FROM.format(quiet=""), _RULE_INPUTS).fetchall()  # unscreened
    store.close()
    read = [(event.occurred_at, event.event_id.int) for event in (_decode(*row) for row in rows)]
    assert {n for _, n in read} >= set(ids) and read == sorted(read)


@pytest.mark.parametrize("processes", [1, 2])
def test_replay_of_a_store_another_process_holds_says_so_and_leaves_no_helper(tmp_path, processes):
    """The worker holds the store read-write (DuckDB allows one writer): replay stops with the store's own error,
    whichever process meets the lock first, and leaves no helper process behind."""
    path = tmp_path / "store.duckdb"
    EventStore(path).close()
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, sys; con = duckdb.connect({str(path)!r}); "
                               "print('holding', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(StoreLocked, match="held by another process"):
            replay(path, processes=processes)
        assert not multiprocessing.active_children()
    finally:
        holder.communicate("", timeout=30)

    assert replay(path, processes=processes).events == 0  # and it runs once the store is free


#: Run in a process of its own (a hang is a timeout, not a stuck test run): the helper finds the store not current
#: (as when another process migrates it between the helper's check and the parent's), the parent finds it current.
_HELPER_SEES_AN_OLD_STORE = """
import multiprocessing, sys
from pathlib import Path
import pvwatch.store.replay as replay_module
found_current = replay_module._attach_current
def helper_sees_an_old_store(con, path):
    if multiprocessing.parent_process() is not None:  # the forked helper
        return False
    return found_current(con, path)
replay_module._attach_current = helper_sees_an_old_store
report = replay_module.replay(Path(sys.argv[1]), processes=2)
print(report.alerts_added, flush=True)
"""


def test_a_rebuild_whose_helper_waits_for_a_migration_the_parent_did_not_need_finishes(demo_pseudonymiser, tmp_path):
    """The helper found the store needing migration and waits for the go-ahead; the parent found it current (another
    process migrated it between the two checks) and its share shows a rebuild: it must let the helper read, not wait
    for it to let go of a store it never opened."""
    path = tmp_path / "store.duckdb"
    stored_cohort(path, demo_pseudonymiser)
    replay(path, processes=1)
    alerts, clocks = derived_tables(path)
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM alerts")
    con.execute("DELETE FROM expedited_reports")
    con.close()

    done = subprocess.run([sys.executable, "-c", _HELPER_SEES_AN_OLD_STORE, str(path)], capture_output=True,
                          text=True, timeout=60, start_new_session=True)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(alerts))]
    assert derived_tables(path) == (alerts, clocks)


_PARENT_KILLED_WHILE_THE_HELPER_WAITS = """
import multiprocessing, os, signal, sys
from pathlib import Path
import pvwatch.store.replay as replay_module
def helper_sees_an_old_store(con, path):
    return False  # both processes: the helper waits for the go-ahead of a migration
def killed_outright(con, path, helper, *args, **kwargs):
    helper.wait_until_idle()
    print(helper._process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
replay_module._attach_current = helper_sees_an_old_store
replay_module.derive_in_two = killed_outright
replay_module.replay(Path(sys.argv[1]), processes=2)
"""


def _running(pid: int) -> bool:
    """Whether process `pid` still runs (an exited orphan may stay a zombie where nothing reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_helper_left_waiting_by_a_parent_killed_outright_exits(tmp_path):
    """The parent killed with SIGKILL while the helper waits for its go-ahead: the helper sees the pipe end and exits
    (it kept the parent's end of the pipe open, forked with it, and waited forever)."""
    path = tmp_path / "store.duckdb"
    EventStore(path).close()
    done = subprocess.run([sys.executable, "-c", _PARENT_KILLED_WHILE_THE_HELPER_WAITS, str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    helper = int(done.stdout)
    try:
        wait_for(lambda: not _running(helper), 10, what="the orphaned helper's exit")
    finally:
        if _running(helper):
            os.kill(helper, signal.SIGKILL)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_store_whose_path_has_quotes_and_spaces_replays(demo_pseudonymiser, tmp_path, processes):
    """Two processes attach the store by its path written into SQL (eventstore.attach): a quote or a space in a
    folder or file name is the file's name, not SQL; the rebuild is written and checkpointed (no .wal left)."""
    path = tmp_path / "O'Brien's clinic" / "store 'a'.duckdb"
    path.parent.mkdir()
    stored_cohort(path, demo_pseudonymiser)
    replay(path, processes=1)
    alerts, clocks = derived_tables(path)
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM alerts")
    con.close()

    report = replay(path, processes=processes)

    assert report.alerts_added == len(alerts) > 0
    assert derived_tables(path) == (alerts, clocks)
    assert not Path(f"{path}.wal").exists()
