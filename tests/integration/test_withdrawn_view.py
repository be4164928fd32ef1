"""Officers see withdrawn alerts in the dashboard (issue 5): the withdrawn view and its API, the patient page, and an
action on a withdrawn alert that says when and why it was withdrawn, through the dashboard's HTTP client with
each role's session.

The story is test_alert_withdrawal.py's (FDA DILI guidance, July 2009, III.A; ALP >= 2 x ULN and 30 days are the
rules.yaml conventions): ALT 4 x ULN on day 1 and total bilirubin 3 x ULN on day 3 raise a potential Hy's law case,
which an officer acknowledges and assigns; an ALP of 2.5 x ULN taken on day 2 arrives after and withdraws it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pytest
from aiohttp.test_utils import TestClient

from pvwatch.dashboards.webapp import DashboardConfig
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.alert_action import AlertAction, AlertActionRecorded
from pvwatch.store.snapshot import analyst_snapshot_path, publish_snapshot
from pvwatch.streams.writer import StoreWriter
from tests.integration.test_alert_withdrawal import raw, story
from tests.integration.test_dashboard_access import NOW, audit_entries, csrf_of, dashboard_config, login, run

pytestmark = pytest.mark.integration


def action(alert: SafetyAlert, kind: AlertAction, **extra: str) -> AlertActionRecorded:
    return AlertActionRecorded(event_id=uuid.uuid4(), occurred_at=NOW, recorded_at=NOW, source="pvwatch-dashboard",
                               patient=alert.patient, alert_id=alert.alert_id, action=kind, actor="olivia", **extra)


@pytest.fixture
def withdrawn_story(tmp_path: Path) -> tuple[DashboardConfig, SafetyAlert, str]:
    """The store after the story, published as both snapshots; (config, the withdrawn alert, the ALP's event id)."""
    alt, bilirubin, alp = story()
    writer = StoreWriter(tmp_path / "pvwatch.duckdb", None, None)
    try:
        (raised,) = [a.alert() for a in writer.process(raw([alt, bilirubin])).new_alerts]
        writer.process(raw([action(raised, AlertAction.ACKNOWLEDGE),
                            action(raised, AlertAction.ASSIGN, assignee="dr-lindqvist")], 2))
        writer.process(raw([alp], 4))
        info = publish_snapshot(writer.store.con, tmp_path / "pvwatch.duckdb.snapshot.duckdb")
    finally:
        writer.close()
    config = dashboard_config(tmp_path, info.path, "127.0.0.1:1")
    return config, raised, str(alp.event_id)


def snapshot_rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_both_snapshots_carry_alert_withdrawals_as_the_store_holds_it(withdrawn_story):
    """The dashboard reads snapshots only: the withdrawal reaches both, the analysts' one unchanged like `alerts`."""
    config, raised, alp = withdrawn_story
    sql = "SELECT alert_id::VARCHAR, rule_id, patient, reason, withdrawn_by_event_id::VARCHAR FROM alert_withdrawals"
    full = snapshot_rows(config.snapshot, sql)
    assert [(row[0], row[1], row[4]) for row in full] == [(str(raised.alert_id), "hys-law", alp)]
    assert snapshot_rows(analyst_snapshot_path(config.snapshot), sql) == full


def test_officer_and_analyst_see_the_withdrawn_hys_law_alert_with_its_reason(withdrawn_story):
    config, raised, alp = withdrawn_story
    alert_id = str(raised.alert_id)
    seen: dict[str, list[dict]] = {}

    async def scenario(client: TestClient) -> None:
        for user in ("olivia", "anders"):
            await login(client, user)
            queue = await (await client.get("/api/alerts")).json()
            assert alert_id not in {a["alert_id"] for a in queue["alerts"]}, "withdrawn: not in the queue"
            assert queue["withdrawn_count"] == 1, "the queue's link to the withdrawn view says how many"
            response = await client.get("/api/alerts/withdrawn")
            assert response.status == 200
            seen[user] = (await response.json())["withdrawn"]

            page = await client.get("/alerts/withdrawn")
            text = await page.text()
            assert page.status == 200 and f'data-alert-id="{alert_id}"' in text
            assert "a cholestatic pattern, not a potential Hy&#39;s law case" in text and raised.patient in text
            patient = await (await client.get(f"/patients/{raised.patient}")).text()
            assert 'id="patient-withdrawn"' in patient and f'data-alert-id="{alert_id}"' in patient
            assert "ALP 2.5 x ULN" in patient, "the patient page says why"
            filtered = await (await client.get("/api/alerts/withdrawn", params={"patient": "pt-" + "0" * 20})).json()
            assert filtered["withdrawn"] == []
            await client.post("/logout", data={"csrf_token": await csrf_of(client)})

    run(config, scenario)
    (row,) = seen["olivia"]
    assert row["alert_id"] == alert_id and row["rule_id"] == "hys-law" and row["severity"] == "critical"
    assert row["patient"] == raised.patient and row["summary"] == raised.summary and row["case_id"] is None
    assert row["raised_at"][:19] == raised.raised_at.isoformat()[:19]
    assert row["reason"].startswith("ALP 2.5 x ULN") and "cholestatic" in row["reason"]
    assert row["withdrawn_by_event_id"] == alp and row["withdrawn_by_event_type"] == "lab-result"
    assert (row["status_when_withdrawn"], row["assignee_when_withdrawn"]) == ("assigned", "dr-lindqvist")
    assert row["raised_again"] is False
    assert seen["anders"] == seen["olivia"], "the analyst's snapshot holds the same row: nothing more, nothing less"
    listed = [e for e in audit_entries(config) if e["action"] in ("view-withdrawn-alerts", "list-withdrawn-alerts")]
    assert {e["actor"] for e in listed} == {"olivia", "anders"}
    assert all(e["detail"]["patients"] in ([raised.patient], []) for e in listed), "names the children shown"


def test_admin_is_refused_and_anonymous_must_sign_in(withdrawn_story):
    config, _, _ = withdrawn_story

    async def scenario(client: TestClient) -> None:
        assert (await client.get("/api/alerts/withdrawn")).status == 401
        anonymous = await client.get("/alerts/withdrawn", allow_redirects=False)
        assert anonymous.status == 302 and anonymous.headers["Location"].startswith("/login")
        await login(client, "ada")
        assert (await client.get("/api/alerts/withdrawn")).status == 403
        page = await client.get("/alerts/withdrawn")
        assert page.status == 403 and "may not view alerts" in await page.text()

    run(config, scenario)


def test_an_action_on_a_withdrawn_alert_says_it_was_withdrawn_and_why(withdrawn_story):
    """409 (not a bare 404) from the API and from the case/queue form post, naming the reason; an unknown id is 404."""
    config, raised, alp = withdrawn_story
    alert_id = str(raised.alert_id)

    async def scenario(client: TestClient) -> None:
        token = await login(client, "olivia")
        response = await client.post(f"/api/alerts/{alert_id}/actions", json={"action": "close", "reason": "done"},
                                     headers={"X-CSRF-Token": token})
        text = await response.text()
        assert response.status == 409, text
        assert "was withdrawn" in text and "ALP 2.5 x ULN" in text and alp in text
        form = await client.post(f"/api/alerts/{alert_id}/actions",
                                 data={"action": "acknowledge", "csrf_token": token, "back": "/alerts"},
                                 allow_redirects=False)
        page = await form.text()
        assert form.status == 409 and "was withdrawn" in page and "cholestatic" in page
        assert f'href="/alerts/withdrawn?patient={raised.patient}"' in page
        unknown = await client.post(f"/api/alerts/{uuid.uuid4()}/actions", json={"action": "close"},
                                    headers={"X-CSRF-Token": token})
        assert unknown.status == 404

    run(config, scenario)
    refused = [e for e in audit_entries(config) if e["action"] == "alert-action-refused"]
    assert [(e["detail"]["alert_id"], e["detail"]["why"], e["patient"]) for e in refused] == \
        [(alert_id, "withdrawn", raised.patient)] * 2
    assert not [e for e in audit_entries(config) if e["action"] == "alert-action"], "nothing was sent"


def test_a_flare_raised_again_and_the_case_page_s_withdrawn_clock_alerts(tmp_path: Path):
    """A flare (SLEDAI-2K rise of 3 or more after a taper: SELENA flare index, rules.yaml's default rise) is withdrawn
    by a late score that becomes its baseline, then raised again by a later-arriving score that restores the
    baseline: the withdrawal stays listed, marked raised again. A late fatal version of case C-WD-2 covers its 15-day
    clock (ICH E2A III.A.1): the case page lists the clock's withdrawn alerts with the reason, the case naming the
    cause."""
    from tests.unit.test_rule_withdrawal import case_version, sledai, taper

    writer = StoreWriter(tmp_path / "pvwatch.duckdb", None, None)
    try:
        offset = 0
        for batch in ([sledai(4, 0), taper(10), sledai(8, 30)], [sledai(6, 5)], [sledai(4, 7)],
                      [case_version(2.1, death=False)], [case_version(2.0, death=True)]):
            writer.process(raw(batch, offset))
            offset += len(batch)
        info = publish_snapshot(writer.store.con, tmp_path / "pvwatch.duckdb.snapshot.duckdb")
    finally:
        writer.close()
    config = dashboard_config(tmp_path, info.path)
    found: dict[str, object] = {}

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        found["flares"] = (await (await client.get("/api/alerts/withdrawn", params={"rule": "flare-after-taper"}))
                           .json())["withdrawn"]
        queue = await client.get("/api/alerts", params={"rule": "flare-after-taper"})
        found["queue"] = (await queue.json())["alerts"]
        found["clocks"] = (await (await client.get("/api/alerts/withdrawn", params={"case_id": "C-WD-2"}))
                           .json())["withdrawn"]
        found["case"] = await (await client.get("/cases/C-WD-2")).text()

    run(config, scenario)
    (flare,) = found["flares"]
    assert flare["raised_again"] is True and flare["reason"].startswith("SLEDAI-2K 6 (clinician)")
    assert [a["alert_id"] for a in found["queue"]] == [flare["alert_id"]], "standing again, in the queue"
    clocks = found["clocks"]
    assert sorted(w["rule_id"] for w in clocks) == ["expedited-clock", "expedited-due-soon", "expedited-overdue"]
    assert all("fatal or life-threatening version" in w["reason"] and w["withdrawn_by_case_id"] == "C-WD-2"
               and w["withdrawn_by_event_type"] == "adverse-event" and not w["raised_again"] for w in clocks)
    case = str(found["case"])
    assert 'id="case-withdrawn"' in case and case.count('<li class="withdrawn"') == 3
    assert "fatal or life-threatening version" in case


def test_an_alert_pvwatch_replay_removed_is_listed_without_a_withdrawing_event(tmp_path: Path):
    """Replay with hys-law disabled removes the pair's alert and keeps its withdrawal with no event (migration 009):
    the view says replay removed it, and an action on it says so, never 'event None'."""
    from dataclasses import replace as changed

    from pvwatch.domain.engine import HYS_LAW
    from pvwatch.rulebook import load_rule_parameters
    from pvwatch.store.eventstore import EventStore
    from pvwatch.store.replay import replay
    from tests.integration.test_replay_withdrawals import store_with_a_hys_law_pair

    path = tmp_path / "pvwatch.duckdb"
    store_with_a_hys_law_pair(path)
    parameters = load_rule_parameters()
    replay(path, processes=1, parameters=changed(parameters, disabled=frozenset(parameters.disabled | {HYS_LAW})))
    store = EventStore(path)
    try:
        info = publish_snapshot(store.con, tmp_path / "pvwatch.duckdb.snapshot.duckdb")
    finally:
        store.close()
    config = dashboard_config(tmp_path, info.path, "127.0.0.1:1")
    found: dict[str, object] = {}

    async def scenario(client: TestClient) -> None:
        token = await login(client, "olivia")
        (row,) = (await (await client.get("/api/alerts/withdrawn")).json())["withdrawn"]
        found["row"] = row
        found["page"] = await (await client.get("/alerts/withdrawn")).text()
        refused = await client.post(f"/api/alerts/{row['alert_id']}/actions", json={"action": "acknowledge"},
                                    headers={"X-CSRF-Token": token})
        found["refused"] = (refused.status, await refused.text())

    run(config, scenario)
    row = found["row"]
    assert row["rule_id"] == "hys-law" and row["withdrawn_by_event_id"] is None and not row["raised_again"]
    assert row["reason"].startswith("pvwatch replay: the rules in force")
    assert "no single event: <code>pvwatch replay</code>" in str(found["page"]) and "None" not in str(found["page"])
    status, text = found["refused"]  # type: ignore[misc]
    assert status == 409 and "pvwatch replay: the rules in force" in text and "None" not in text
