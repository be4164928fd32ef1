"""An alert withdrawn because a late event made it untrue and raised again later under the same alert_id (the same
rule, version and subject, true again on new evidence) comes back to the officers' open queue: its status counts
only the actions on the life that stands now (migration 010), while every action stays in alert_actions and the
withdrawn view's "status when withdrawn" counts only the actions on the life that withdrawal ended.

The story is test_withdrawn_view.py's flare (SELENA flare index: a SLEDAI-2K rise of 3 or more after a taper,
rules.yaml's default rise; the baseline is the latest score before the taper, docs/rules.md "flare-after-taper"):
scores 4 on day 0 and 8 on day 30 around a taper on day 10 raise it; a late score of 6 dated day 5 becomes the
baseline (rise 2: no flare) and withdraws it; a later-arriving score of 4 dated day 7 restores a baseline of 4 and
raises it again; a score of 6 dated day 8 withdraws it a second time, one of 4 dated day 9 raises it a third time.
Officers' actions are alert-action events timed by the wall clock, as the dashboard sends them.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from aiohttp.test_utils import TestClient

from pvwatch.dashboards.readmodel import AlertFilters, ReadModel
from pvwatch.dashboards.users import Role, UserStore
from pvwatch.dashboards.webapp import DashboardConfig, _actions_labelled
from pvwatch.events.alert_action import AlertAction, AlertActionRecorded
from pvwatch.events.envelope import EventEnvelope
from pvwatch.store.eventstore import EventStore
from pvwatch.store.migrations import _migration_files, latest_version, migrate
from pvwatch.store.snapshot import publish_snapshot
from pvwatch.streams.writer import StoreWriter
from tests.integration.test_alert_withdrawal import raw
from tests.integration.test_dashboard_access import PASSWORDS, csrf_of, login, run
from tests.unit.test_rule_withdrawal import ALT, BILIRUBIN, PATIENT, lab, sledai, taper

pytestmark = pytest.mark.integration

FLARE = "flare-after-taper"
#: migration 003's alert_status (every action on the id counts: the defect) as a temporary view, to compare with
_MIGRATION_003 = next(sql for version, _, sql in _migration_files() if version == 3)
STATUS_003 = _MIGRATION_003[_MIGRATION_003.index("CREATE VIEW alert_status"):].split(";")[0].replace(
    "CREATE VIEW alert_status", "CREATE TEMP VIEW status_003")


def acted(alert_id: str, kind: AlertAction, **extra: str) -> AlertActionRecorded:
    """An officer's action now (the dashboard stamps actions with its wall clock, as the worker stamps raises and
    withdrawals)."""
    now = datetime.now(UTC)
    return AlertActionRecorded(event_id=uuid.uuid4(), occurred_at=now, recorded_at=now, source="pvwatch-dashboard",
                               patient=PATIENT, alert_id=uuid.UUID(alert_id), action=kind, actor="olivia", **extra)


@dataclass
class Story:
    """The writer over one store, feeding batches and publishing a snapshot when asked."""

    path: Path
    writer: StoreWriter
    offset: int = 0

    def feed(self, *events: EventEnvelope) -> list[str]:
        """Process one batch; the ids of the flare alerts it raised (again)."""
        outcome = self.writer.process(raw(list(events), self.offset))
        self.offset += len(events)
        return [str(a.alert().alert_id) for a in outcome.new_alerts if a.alert().rule_id == FLARE]

    def snapshot(self, name: str) -> Path:
        return publish_snapshot(self.writer.store.con, self.path.parent / f"{name}.snapshot.duckdb").path


def dashboard(tmp_path: Path, snapshot: Path) -> DashboardConfig:
    users = UserStore(tmp_path / "users.yaml")
    for name, role in (("olivia", Role.OFFICER), ("anders", Role.ANALYST), ("ada", Role.ADMIN)):
        if users.get(name) is None:
            users.add(name, role, PASSWORDS[name])
    return DashboardConfig(snapshot=snapshot, users_file=tmp_path / "users.yaml", audit_log=tmp_path / "audit.jsonl",
                           bootstrap="127.0.0.1:1")


def read_as_each_role(config: DashboardConfig, *paths: str) -> dict[str, dict[str, tuple[int, object]]]:
    """{user: {path: (status, JSON body or page text)}} for the officer, the analyst and the admin."""
    seen: dict[str, dict[str, tuple[int, object]]] = {}

    async def scenario(client: TestClient) -> None:
        for user in ("olivia", "anders", "ada"):
            await login(client, user)
            seen[user] = {}
            for path in paths:
                response = await client.get(path)
                body = await response.json() if path.startswith("/api/") and response.status == 200 \
                    else await response.text()
                seen[user][path] = (response.status, body)
            await client.post("/logout", data={"csrf_token": await csrf_of(client)})

    run(config, scenario)
    return seen


def test_a_flare_closed_then_withdrawn_comes_back_open_when_raised_again(tmp_path: Path) -> None:
    path = tmp_path / "pvwatch.duckdb"
    story = Story(path, StoreWriter(path, None, None))
    try:
        (flare,) = story.feed(sledai(4, 0), taper(10), sledai(8, 30))
        (pair,) = [str(a.alert().alert_id) for a in story.writer.process(
            raw([lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3)], 100)).new_alerts]  # Hy's law: never withdrawn
        story.feed(acted(flare, AlertAction.ACKNOWLEDGE), acted(flare, AlertAction.ASSIGN, assignee="dr-lindqvist"),
                   acted(flare, AlertAction.CLOSE, reason="reviewed: not a flare"),
                   acted(pair, AlertAction.ACKNOWLEDGE), acted(pair, AlertAction.CLOSE, reason="known cholangitis"))
        assert story.feed(sledai(6, 5)) == []  # withdrawn
        # sent from a snapshot that still showed the first life: lands after its withdrawal, before the raise again
        story.feed(acted(flare, AlertAction.ACKNOWLEDGE))
        assert story.feed(sledai(4, 7)) == [flare], "raised again under the same id"
        second_life = story.snapshot("second-life")
        assert story.feed(sledai(6, 8)) == []  # withdrawn again, nobody acted on the second life
        withdrawn_twice = story.snapshot("withdrawn-twice")
        assert story.feed(sledai(4, 9)) == [flare], "raised a third time"
        story.feed(acted(flare, AlertAction.ACKNOWLEDGE))
        third_life = story.snapshot("third-life")
    finally:
        story.writer.close()

    # raised again: open in the queue (it was closed in its first life), no assignee; the closed Hy's law alert
    # never withdrawn stays closed
    seen = read_as_each_role(dashboard(tmp_path, second_life), "/api/alerts", "/api/alerts/withdrawn",
                             "/api/alerts?status=open", f"/patients/{PATIENT}")
    assert seen["ada"]["/api/alerts"][0] == 403 and seen["ada"]["/api/alerts/withdrawn"][0] == 403
    assert seen["ada"][f"/patients/{PATIENT}"][0] == 403
    for user in ("olivia", "anders"):
        status, body = seen[user]["/api/alerts"]
        assert status == 200
        queue = {a["alert_id"]: a for a in body["alerts"]}  # type: ignore[index]
        assert (queue[flare]["status"], queue[flare]["assignee"], queue[flare]["last_action_at"]) == \
            ("open", None, None), user
        assert queue[pair]["status"] == "closed", "an alert never withdrawn: every action counts, as before"
        (first,) = seen[user]["/api/alerts/withdrawn"][1]["withdrawn"]  # type: ignore[index]
        assert (first["status_when_withdrawn"], first["assignee_when_withdrawn"], first["raised_again"]) == \
            ("closed", None, True), "the first life's status when it went is kept"
        open_queue = seen[user]["/api/alerts?status=open"][1]["alerts"]  # type: ignore[index]
        assert [a["alert_id"] for a in open_queue] == [flare], "back in the officers' open queue"
        patient = str(seen[user][f"/patients/{PATIENT}"][1])
        assert re.search(r"· flare-after-taper · [^<]* · open\s", patient), "the patient page's alert list says open"

    # withdrawn a second time: its status when withdrawn is the second life's (nobody acted on it: open), neither
    # the first life's close nor the late acknowledgement of the first life; an action on it is refused (409)
    # naming the second withdrawal
    config = dashboard(tmp_path, withdrawn_twice)
    seen = read_as_each_role(config, "/api/alerts", "/api/alerts/withdrawn")
    for user in ("olivia", "anders"):
        assert flare not in {a["alert_id"] for a in seen[user]["/api/alerts"][1]["alerts"]}  # type: ignore[index]
        rows = seen[user]["/api/alerts/withdrawn"][1]["withdrawn"]  # type: ignore[index]
        assert [(w["reason"][:18], w["status_when_withdrawn"], w["assignee_when_withdrawn"]) for w in rows] == [
            ("SLEDAI-2K 6 (clini", "open", None), ("SLEDAI-2K 6 (clini", "closed", None)], user
        assert rows[0]["withdrawn_at"] > rows[1]["withdrawn_at"], "newest withdrawal first"
    refused: list[tuple[int, str]] = []

    async def act(client: TestClient) -> None:
        token = await login(client, "olivia")
        response = await client.post(f"/api/alerts/{flare}/actions", json={"action": "close", "reason": "again"},
                                     headers={"X-CSRF-Token": token})
        refused.append((response.status, await response.text()))

    run(config, act)
    ((status, text),) = refused
    assert status == 409 and "was withdrawn" in text and rows[0]["withdrawn_at"] in text, "the latest withdrawal"

    # raised a third time and acknowledged: the queue shows that life's action only
    seen = read_as_each_role(dashboard(tmp_path, third_life), "/api/alerts", f"/patients/{PATIENT}")
    for user in ("olivia", "anders"):
        queue = {a["alert_id"]: a for a in seen[user]["/api/alerts"][1]["alerts"]}  # type: ignore[index]
        assert (queue[flare]["status"], queue[flare]["assignee"]) == ("acknowledged", None), user
        assert seen[user][f"/patients/{PATIENT}"][0] == 200
    assert seen["ada"][f"/patients/{PATIENT}"][0] == 403

    # the audit trail keeps every action, each labelled with the life it was taken on, agreeing with the status
    con = duckdb.connect(str(third_life), read_only=True)
    try:
        read = ReadModel(third_life)
        alerts = read.alerts(con, AlertFilters(rule=FLARE))
        withdrawn = read.withdrawn_alerts(con, rule=FLARE) or []
        history = _actions_labelled(read.alert_history(con, [flare]), alerts, withdrawn)
    finally:
        con.close()
    first_withdrawal, second_withdrawal = sorted(w["withdrawn_at"] for w in withdrawn)
    assert [(h["action"], h["withdrawn_at"]) for h in history] == [
        ("acknowledge", first_withdrawal), ("assign", first_withdrawal), ("close", first_withdrawal),
        ("acknowledge", first_withdrawal), ("acknowledge", None)], \
        "three lives: the first's actions (the late one too), none on the second, the standing one's"
    assert second_withdrawal > first_withdrawal


def status_rows(con: duckdb.DuckDBPyConnection, view: str = "alert_status") -> dict[str, tuple]:
    rows = con.execute(f"SELECT alert_id::VARCHAR, status, assignee, acknowledged_at, closed_at, close_reason, "
                       f"last_actor, last_action_at, action_count FROM {view}").fetchall()
    return {row[0]: row[1:] for row in rows}


def test_the_view_on_a_store_migrated_from_009_counts_only_the_standing_life(tmp_path: Path) -> None:
    """A store written before migration 010 (003's view) is migrated in place: the re-raised flare goes from
    'closed' to 'open'; an action that landed between the withdrawal and the raise again (sent from a snapshot still
    showing the first life) stays on the first life; alerts never withdrawn read exactly as under 003."""
    written = tmp_path / "written.duckdb"
    story = Story(written, StoreWriter(written, None, None))
    try:
        (flare,) = story.feed(sledai(4, 0), taper(10), sledai(8, 30))
        (pair,) = [str(a.alert().alert_id) for a in story.writer.process(
            raw([lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3)], 100)).new_alerts]
        story.feed(acted(flare, AlertAction.ACKNOWLEDGE), acted(flare, AlertAction.ASSIGN, assignee="dr-lindqvist"),
                   acted(flare, AlertAction.CLOSE, reason="reviewed: not a flare"),
                   acted(pair, AlertAction.ASSIGN, assignee="dr-okafor"))
        story.feed(sledai(6, 5))
        story.feed(acted(flare, AlertAction.ACKNOWLEDGE))  # landed after the withdrawal, before the raise again
        assert story.feed(sledai(4, 7)) == [flare]
    finally:
        story.writer.close()

    old = tmp_path / "old.duckdb"
    con = duckdb.connect(str(old))
    try:
        migrate(con, [f for f in _migration_files() if f[0] <= 9])
        con.execute(f"ATTACH '{written}' AS written (READ_ONLY)")
        for table in ("event_log", "alerts", "alert_withdrawals"):
            con.execute(f"INSERT INTO {table} SELECT * FROM written.{table}")
        con.execute("DETACH written")
        before = status_rows(con)
    finally:
        con.close()
    assert (before[flare][0], before[flare][-1]) == ("acknowledged", 4), "003: the first life's actions count"

    store = EventStore(old)  # migrates the old store to 010
    try:
        assert store.con.execute("SELECT max(version) FROM schema_migrations").fetchone() == (latest_version(),)
        described = store.con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'alerts' "
                                      "AND column_name = 'raised_at'").fetchone()
        after = status_rows(store.con)
        store.con.execute(STATUS_003)
        as_003 = status_rows(store.con, "status_003")
        kept = store.con.execute("SELECT count(*) FROM alert_actions WHERE alert_id::VARCHAR = ?", [flare]).fetchone()
    finally:
        store.close()
    assert after[flare] == ("open", None, None, None, None, None, None, 0), "a new life: nothing done on it yet"
    assert after[pair] == as_003[pair] and after[pair][:2] == ("assigned", "dr-okafor"), "never withdrawn: as 003"
    assert {k: v for k, v in after.items() if k != flare} == {k: v for k, v in as_003.items() if k != flare}
    assert kept == (4,), "every action stays in the audit trail"
    assert described is not None and "raised again after a withdrawal" in described[0], "011: what raised_at means now"


def test_replay_keeps_every_withdrawal_and_the_standing_life_s_status(tmp_path: Path) -> None:
    """`pvwatch replay` never deletes from alert_withdrawals, so the status still starts after the latest one: a replay
    that finds the re-raised flare standing keeps its raised_at and the second life's assignment; a rebuild (alerts
    emptied first) keeps the withdrawals too, and the first life's close still does not count."""
    from pvwatch.store.replay import replay

    path = tmp_path / "pvwatch.duckdb"
    story = Story(path, StoreWriter(path, None, None))
    try:
        (flare,) = story.feed(sledai(4, 0), taper(10), sledai(8, 30))
        story.feed(acted(flare, AlertAction.ACKNOWLEDGE), acted(flare, AlertAction.CLOSE, reason="not a flare"))
        story.feed(sledai(6, 5))
        assert story.feed(sledai(4, 7)) == [flare]
        story.feed(acted(flare, AlertAction.ASSIGN, assignee="dr-okafor"))
    finally:
        story.writer.close()

    def read() -> tuple[tuple, list[tuple]]:
        con = duckdb.connect(str(path), read_only=True)
        try:
            withdrawals = con.execute("SELECT withdrawal_id, alert_id, withdrawn_at, reason FROM alert_withdrawals "
                                      "ORDER BY withdrawn_at").fetchall()
            return status_rows(con)[flare], withdrawals
        finally:
            con.close()

    written, withdrawals = read()
    assert written[:2] == ("assigned", "dr-okafor") and written[-1] == 1 and len(withdrawals) == 1
    replay(path, processes=1)
    assert read() == (written, withdrawals), "replay found the flare standing: raised_at and status kept"

    con = duckdb.connect(str(path))
    try:
        con.execute("DELETE FROM alerts")
        con.execute("DELETE FROM expedited_reports")
    finally:
        con.close()
    replay(path, processes=2)
    rebuilt, kept = read()
    assert kept == withdrawals, "a rebuild keeps every withdrawal"
    assert rebuilt[0] != "closed" and rebuilt[3:6] == (None, None, None), "the first life's close never counts"
