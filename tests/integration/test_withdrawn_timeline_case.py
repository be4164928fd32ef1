"""Officers see withdrawn alerts wherever an alert appears (issue 5 leftovers): the patient timeline draws them as
struck, hollow flags saying when and why, with a legend entry; the case page's action history keeps the actions
taken on the case's withdrawn alerts, labelled as such. Through the dashboard's HTTP client with each role.

Stories: test_withdrawn_view.py's Hy's law withdrawal (FDA DILI guidance, July 2009, III.A: ALT 4 x ULN and
bilirubin 3 x ULN raise it, a late ALP of 2.5 x ULN, cholestatic, withdraws it) and case C-WD-2 of
tests/unit/test_rule_withdrawal.py (ICH E2A III.A.1: a serious unexpected case has a 15-day clock; a late fatal
version dated the same day replaces it with the 7-day one).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from pvwatch.dashboards.users import Role, UserStore
from pvwatch.dashboards.webapp import DashboardConfig
from pvwatch.events.alert_action import AlertAction
from pvwatch.store.snapshot import publish_snapshot
from pvwatch.streams.writer import StoreWriter
from tests.integration.test_alert_withdrawal import raw
from tests.integration.test_dashboard_access import audit_entries, csrf_of, dashboard_config, login, run
from tests.integration.test_withdrawn_view import action, withdrawn_story  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration


def timeline_of(page: str) -> str:
    start = page.index('<svg xmlns="http://www.w3.org/2000/svg" class="timeline"')
    return page[start:page.index("</svg>", start)]


def test_the_timeline_draws_the_withdrawn_hys_law_alert_struck_with_when_and_why(withdrawn_story):  # noqa: F811
    config, raised, _ = withdrawn_story
    users = UserStore(config.users_file)
    pages: dict[str, str] = {}

    async def scenario(client: TestClient) -> None:
        anonymous = await client.get(f"/patients/{raised.patient}", allow_redirects=False)
        assert anonymous.status == 302 and anonymous.headers["Location"].startswith("/login")
        for user in ("olivia", "anders", "ada"):
            await login(client, user)
            response = await client.get(f"/patients/{raised.patient}")
            pages[user] = await response.text()
            assert response.status == (403 if users.get(user).role is Role.ADMIN else 200), user
            await client.post("/logout", data={"csrf_token": await csrf_of(client)})

    run(config, scenario)
    for user in ("olivia", "anders"):
        svg = timeline_of(pages[user])
        (flag,) = re.findall(r'<g class="alert-flag withdrawn critical" data-alert-id="([^"]+)"><title>([^<]*)</title>',
                             svg)
        assert flag[0] == str(raised.alert_id)
        title = unescape(flag[1])
        # "withdrawn <when>: <reason>", the rule's words; the withdrawal happened when the ALP was stored (now)
        assert re.search(r"withdrawn \d{4}-\d\d-\d\d \d\d:\d\d: ALP 2\.5 x ULN", title), title
        assert title.startswith("hys-law: ") and "cholestatic" in title
        assert 'class="strike"' in svg and 'fill="white" stroke="#c62828"' in svg, "hollow and struck, not filled"
        assert '<g class="legend alert-withdrawn">' in svg and ">withdrawn</text>" in svg
        assert '<g class="legend alert-raised">' in svg
        assert "alert withdrawn (a later event made it untrue" in pages[user], "the page's legend above the timeline"
        assert '<g class="alert-flag critical">' not in svg, "no longer drawn as a standing alert"
    assert "may not view" in pages["ada"] and "<svg" not in pages["ada"]
    reads = [(e["actor"], e["patient"]) for e in audit_entries(config) if e["action"] == "read-patient"]
    assert reads == [("olivia", raised.patient), ("anders", raised.patient)]


@pytest.fixture
def case_story(tmp_path: Path) -> tuple[DashboardConfig, dict[str, str]]:
    """C-WD-2 hospitalised: its 15-day clock alert is acknowledged and assigned; then the late fatal version of the
    same day withdraws the 15-day clock and raises the 7-day one, which is acknowledged. {rule: alert id}."""
    return case_store(tmp_path)


def case_store(tmp_path: Path, *, closed_after_withdrawal: bool = False) -> tuple[DashboardConfig, dict[str, str]]:
    """case_story's store; `closed_after_withdrawal`: a close of the 15-day clock alert lands after the fatal version
    withdrew it (sent from a snapshot that still showed it standing: the dashboard checks the snapshot)."""
    from tests.unit.test_rule_withdrawal import case_version

    writer = StoreWriter(tmp_path / "pvwatch.duckdb", None, None)
    try:
        first = [a.alert() for a in writer.process(raw([case_version(2.1, death=False)])).new_alerts]
        (fifteen_day,) = [a for a in first if a.rule_id == "expedited-clock"]
        writer.process(raw([action(fifteen_day, AlertAction.ACKNOWLEDGE),
                            action(fifteen_day, AlertAction.ASSIGN, assignee="dr-lindqvist")], 1))
        later = [a.alert() for a in writer.process(raw([case_version(2.0, death=True)], 3)).new_alerts]
        (seven_day,) = [a for a in later if a.rule_id == "expedited-clock" and a.details["category"] == "7-day"]
        writer.process(raw([action(seven_day, AlertAction.ACKNOWLEDGE)], 4))
        if closed_after_withdrawal:
            late = action(fifteen_day, AlertAction.CLOSE, reason="reported").model_copy(
                update={"occurred_at": datetime.now(UTC), "recorded_at": datetime.now(UTC)})
            writer.process(raw([late], 5))
        info = publish_snapshot(writer.store.con, tmp_path / "pvwatch.duckdb.snapshot.duckdb")
    finally:
        writer.close()
    config = dashboard_config(tmp_path, info.path)
    return config, {"withdrawn": str(fifteen_day.alert_id), "standing": str(seven_day.alert_id)}


def test_the_case_page_lists_the_actions_on_its_withdrawn_alerts_labelled_withdrawn(case_story):
    config, ids = case_story
    pages: dict[str, tuple[int, str]] = {}

    async def scenario(client: TestClient) -> None:
        anonymous = await client.get("/cases/C-WD-2", allow_redirects=False)
        assert anonymous.status == 302 and anonymous.headers["Location"].startswith("/login")
        for user in ("olivia", "anders", "ada"):
            await login(client, user)
            response = await client.get("/cases/C-WD-2")
            pages[user] = (response.status, await response.text())
            await client.post("/logout", data={"csrf_token": await csrf_of(client)})

    run(config, scenario)
    assert pages["ada"][0] == 403
    for user in ("olivia", "anders"):
        status, page = pages[user]
        assert status == 200
        table = page[page.index('id="case-actions"'):]
        table = table[:table.index("</table>")]
        rows = re.findall(r'<tr class="(on-withdrawn|on-standing)" data-alert-id="([^"]+)">(.*?)</tr>', table, re.S)
        labelled = [(kind, alert_id, re.findall(r"<td>(acknowledge|assign)</td>", cells)[0]) for kind, alert_id, cells
                    in rows]
        assert labelled == [("on-withdrawn", ids["withdrawn"], "acknowledge"),
                            ("on-withdrawn", ids["withdrawn"], "assign"),
                            ("on-standing", ids["standing"], "acknowledge")], "every action, in the order taken"
        withdrawn_rows = [cells for kind, _, cells in rows if kind == "on-withdrawn"]
        assert all('<span class="badge withdrawn">withdrawn</span>' in cells and "expedited-clock" in cells
                   for cells in withdrawn_rows)
        assert "dr-lindqvist" in withdrawn_rows[1]
        assert "badge withdrawn" not in next(cells for kind, _, cells in rows if kind == "on-standing")
        assert "Pulmonary embolism" in page and "C-WD-2" in page
    reads = [(e["actor"], e["detail"].get("case_id")) for e in audit_entries(config) if e["action"] == "read-case"]
    assert reads == [("olivia", "C-WD-2"), ("anders", "C-WD-2")]


def case_actions(config: DashboardConfig) -> list[tuple[str, str, str]]:
    """The officer's case page's action rows: (on-withdrawn or on-standing, alert id, action)."""
    pages: list[str] = []

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        response = await client.get("/cases/C-WD-2")
        assert response.status == 200
        pages.append(await response.text())

    run(config, scenario)
    table = pages[0][pages[0].index('id="case-actions"'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r'<tr class="(on-withdrawn|on-standing)" data-alert-id="([^"]+)">(.*?)</tr>', table, re.S)
    return [(kind, alert_id, re.findall(r"<td>(acknowledge|assign|close)</td>", cells)[0])
            for kind, alert_id, cells in rows]


def test_an_action_that_lands_after_its_alert_was_withdrawn_is_labelled_withdrawn(tmp_path: Path) -> None:
    # the officer closed the 15-day clock alert from a snapshot that still showed it (the worker had withdrawn it a
    # moment before): the close is on the withdrawn alert, never shown as an action on a standing one
    config, ids = case_store(tmp_path, closed_after_withdrawal=True)
    assert case_actions(config) == [("on-withdrawn", ids["withdrawn"], "acknowledge"),
                                    ("on-withdrawn", ids["withdrawn"], "assign"),
                                    ("on-standing", ids["standing"], "acknowledge"),
                                    ("on-withdrawn", ids["withdrawn"], "close")]
