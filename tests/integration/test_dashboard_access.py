"""Role boundaries, sessions, CSRF, the login rate limit and the audit chain of the dashboard, over real HTTP
against a snapshot built from the synthetic cohort (and the real embedded broker for actions)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import stat
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kafka import KafkaConsumer

from pvwatch.cohort import generate_cohort, planted_stories
from pvwatch.dashboards.audit import verify_audit_log
from pvwatch.dashboards.users import Role, UserStore
from pvwatch.dashboards.webapp import DashboardConfig, build_dashboard
from pvwatch.events.alert_action import AlertAction, AlertActionRecorded
from pvwatch.events.codec import parse_event
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.store.eventstore import EventStore
from pvwatch.store.replay import replay
from pvwatch.store.snapshot import REDACTED, analyst_snapshot_path, publish_snapshot

pytestmark = pytest.mark.integration
PASSWORDS = {"olivia": "officer-password-1", "anders": "analyst-password-1", "ada": "admin-password-12"}
NOW = datetime(2026, 11, 24, tzinfo=UTC)


#: the cohort every page is checked against (`pvwatch generate --patients 60 --seed 7`: every event type and the
#: planted stories, pvwatch.cohort.STORY_KINDS)
COHORT = (60, 7)
#: an officer's free-text reason for closing an alert, stored in the log like any alert-action event
CLOSE_REASON = "Same child as the report phoned in by the mother on Tuesday"


def cohort_records() -> list[dict[str, Any]]:
    return list(generate_cohort(*COHORT))


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> tuple[Path, list[Any]]:
    """The whole cohort stored as the worker stores it, alerts and expedited clocks derived by `pvwatch replay`
    (the live path's rules), one alert closed with a free-text reason, published as both snapshots."""
    folder = tmp_path_factory.mktemp("store")
    p = Pseudonymiser.from_secret(None, demo_mode=True)
    events = [parse_event(p.pseudonymise_record(r)) for r in cohort_records()]
    path = folder / "pvwatch.duckdb"
    store = EventStore(path)
    with store.transaction():
        store.insert_events([(e, None) for e in events], NOW)
    store.close()
    replay(path)
    store = EventStore(path)
    alerts = store.unpublished_alerts()  # all of them: nothing was published (no broker here)
    closed = next(a for a in alerts if a.case_id)
    action = AlertActionRecorded(event_id=uuid.uuid4(), occurred_at=NOW, recorded_at=NOW, source="pvwatch-dashboard",
                                 patient=closed.patient, alert_id=closed.alert_id, action=AlertAction.CLOSE,
                                 actor="olivia", reason=CLOSE_REASON)
    with store.transaction():
        store.insert_events([(action, None)], NOW)
    info = publish_snapshot(store.con, folder / "pvwatch.duckdb.snapshot.duckdb")
    store.close()
    assert alerts and info.analyst_path is not None
    open_alerts = [a for a in alerts if a.alert_id != closed.alert_id]
    return info.path, sorted(open_alerts, key=lambda a: (a.case_id is None, str(a.alert_id)))  # cases first


def dashboard_config(tmp_path: Path, snapshot: Path, bootstrap: str | None = None) -> DashboardConfig:
    """A dashboard on `snapshot` for the three test users: olivia (officer), anders (analyst), ada (admin)."""
    users = UserStore(tmp_path / "users.yaml")
    users.add("olivia", Role.OFFICER, PASSWORDS["olivia"])
    users.add("anders", Role.ANALYST, PASSWORDS["anders"])
    users.add("ada", Role.ADMIN, PASSWORDS["ada"])
    return DashboardConfig(snapshot=snapshot, users_file=tmp_path / "users.yaml", audit_log=tmp_path / "audit.jsonl",
                           bootstrap=bootstrap, sql_timeout_s=1.0, sql_max_rows=50)


@pytest.fixture
def config(tmp_path: Path, snapshot) -> DashboardConfig:
    return dashboard_config(tmp_path, snapshot[0])


def run(config: DashboardConfig, scenario: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(build_dashboard(config))) as client:
            await scenario(client)

    asyncio.run(main())


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def login(client: TestClient, name: str, password: str | None = None) -> str:
    """Sign in through the form; return the session's CSRF token."""
    page = await (await client.get("/login")).text()
    response = await client.post("/login", data={"username": name, "password": password or PASSWORDS[name],
                                                 "csrf_token": CSRF.search(page).group(1), "next": "/"},
                                 allow_redirects=False)
    assert response.status == 302, await response.text()
    return await csrf_of(client)


async def csrf_of(client: TestClient) -> str:
    page = await (await client.get("/health")).text()
    match = re.search(r'<meta name="csrf-token" content="([^"]*)">', page)
    assert match
    return match.group(1)


def audit_entries(config: DashboardConfig) -> list[dict[str, Any]]:
    return [json.loads(line) for line in config.audit_log.read_text().splitlines()]


def test_anonymous_requests_get_401_from_the_api_and_a_redirect_from_pages(config):
    async def scenario(client: TestClient) -> None:
        for path in ("/api/alerts",):
            assert (await client.get(path)).status == 401
        response = await client.post("/api/sql", json={"sql": "SELECT 1"})
        assert response.status in (401, 403)  # no session: refused before anything runs
        for path in ("/", "/alerts", "/sql", "/admin", "/health", "/signals", "/expedited", "/lots",
                     "/lots/UCB-2603-99", "/clinics/clinic-beta", "/patients/pt-00000000000000000000",
                     "/cases/CASE-8-000010", "/cases/CASE-8-000010/e2b"):
            response = await client.get(path, allow_redirects=False)
            assert response.status == 302, path
            assert response.headers["Location"].startswith("/login?next=")
        login_page = await client.get("/login")
        assert login_page.status == 200
        assert (await client.get("/static/app.js")).status == 200

    run(config, scenario)


def test_every_route_of_the_dashboard_refuses_an_anonymous_request(config):
    """Walks the app's own route table, so a page or API added later is covered without editing this test: every
    method of every route except the login form and the static files is refused before its handler runs (API:
    401, pages: a redirect to the login), so nothing reaches the audit log either."""
    app = build_dashboard(config)
    public = {"/login"}
    routes = sorted({(route.method, route.resource.canonical) for route in app.router.routes()
                     if route.method != "HEAD" and route.resource is not None})
    placeholders = {"{alert_id}": str(uuid.uuid4()), "{case_id}": "CASE-8-000010", "{value}": "UCB-2603-99",
                    "{patient}": "pt-00000000000000000000"}
    checked = []

    async def scenario(client: TestClient) -> None:
        for method, canonical in routes:
            if canonical in public or canonical.startswith("/static"):
                continue
            path = canonical
            for name, value in placeholders.items():
                path = path.replace(name, value)
            assert "{" not in path, f"no placeholder value for {canonical}"
            response = await client.request(method, path, allow_redirects=False,
                                            **({"json": {"action": "acknowledge", "sql": "SELECT 1"}}
                                               if method == "POST" else {}))
            if path.startswith("/api/"):
                assert response.status == 401, (method, path, response.status)
            else:
                assert response.status == 302, (method, path, response.status)
                assert response.headers["Location"].startswith("/login"), (method, path)
            checked.append((method, canonical))

    run(config, scenario)
    assert {("POST", "/api/alerts/{alert_id}/actions"), ("POST", "/api/sql"), ("POST", "/sql"), ("POST", "/admin"),
            ("POST", "/logout"), ("GET", "/cases/{case_id}/e2b"), ("GET", "/clinics/{value}")} <= set(checked)
    assert not config.audit_log.exists() or audit_entries(config) == [], "no handler ran"


def test_session_cookie_is_httponly_and_samesite_strict_and_a_forged_cookie_is_refused(config):
    async def scenario(client: TestClient) -> None:
        page = await (await client.get("/login")).text()
        response = await client.post("/login", data={"username": "olivia", "password": PASSWORDS["olivia"],
                                                     "csrf_token": CSRF.search(page).group(1)},
                                     allow_redirects=False)
        cookie = response.cookies["pvwatch_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert (await client.get("/api/alerts")).status == 200
        jar = client.session.cookie_jar
        jar.clear()
        jar.update_cookies({"pvwatch_session": cookie.value[:-4] + "AAAA"}, client.make_url("/"))
        assert (await client.get("/api/alerts")).status == 401
        jar.clear()
        jar.update_cookies({"pvwatch_session": cookie.value}, client.make_url("/"))
        assert (await client.get("/api/alerts")).status == 200, "the genuine cookie still works"

    run(config, scenario)


def test_analyst_cannot_act_officer_cannot_run_sql_admin_sees_no_patients(config, snapshot):
    alert = snapshot[1][0]

    async def scenario(client: TestClient) -> None:
        token = await login(client, "anders")
        response = await client.post(f"/api/alerts/{alert.alert_id}/actions", json={"action": "acknowledge"},
                                     headers={"X-CSRF-Token": token})
        assert response.status == 403
        sql = await client.post("/api/sql", json={"sql": "SELECT count(*) AS n FROM alerts"},
                                headers={"X-CSRF-Token": token})
        distinct_alerts = len({a.alert_id for a in snapshot[1]}) + 1  # + the closed one
        assert sql.status == 200 and (await sql.json())["rows"] == [[distinct_alerts]]
        assert (await client.get("/admin")).status == 403
        await client.post("/logout", data={"csrf_token": token})
        assert (await client.get("/api/alerts")).status == 401, "logout ends the session"

        token = await login(client, "olivia")
        sql = await client.post("/api/sql", json={"sql": "SELECT 1"}, headers={"X-CSRF-Token": token})
        assert sql.status == 403
        assert (await client.get("/sql")).status == 403
        await client.post("/logout", data={"csrf_token": token})

        await login(client, "ada")
        assert (await client.get("/api/alerts")).status == 403
        assert (await client.get(f"/patients/{alert.patient}")).status == 403
        assert (await client.get("/admin")).status == 200

    run(config, scenario)
    forbidden = [e for e in audit_entries(config) if e["action"] == "forbidden"]
    assert {e["actor"] for e in forbidden} == {"anders", "olivia", "ada"}


def test_a_missing_or_forged_csrf_token_fails(config, snapshot):
    alert = snapshot[1][0]

    async def scenario(client: TestClient) -> None:
        token = await login(client, "anders")
        for headers in ({}, {"X-CSRF-Token": "forged-" + token[7:]}, {"X-CSRF-Token": ""}):
            response = await client.post("/api/sql", json={"sql": "SELECT 1"}, headers=headers)
            assert response.status == 403, headers
            assert "CSRF" in await response.text()
        form = await client.post("/sql", data={"sql": "SELECT 1", "csrf_token": "not-the-token"})
        assert form.status == 403
        # The login form is protected too: a cross-site login (without the login cookie's token) fails.
        response = await client.post("/login", data={"username": "anders", "password": PASSWORDS["anders"],
                                                     "csrf_token": "guess"}, allow_redirects=False)
        assert response.status == 403
        # The officer's token does not work for an action from the analyst's session, and vice versa.
        ok = await client.post("/api/sql", json={"sql": "SELECT 1 AS one"}, headers={"X-CSRF-Token": token})
        assert ok.status == 200
        await client.post("/logout", data={"csrf_token": token})
        officer_token = await login(client, "olivia")
        assert officer_token != token
        response = await client.post(f"/api/alerts/{alert.alert_id}/actions", json={"action": "acknowledge"},
                                     headers={"X-CSRF-Token": token})
        assert response.status == 403

    run(config, scenario)


def test_login_is_rate_limited_to_five_failures_per_minute_per_user_and_address(config):
    async def scenario(client: TestClient) -> None:
        page = await (await client.get("/login")).text()
        token = CSRF.search(page).group(1)
        statuses = []
        for _ in range(6):
            response = await client.post("/login", data={"username": "olivia", "password": "wrong-password",
                                                          "csrf_token": token}, allow_redirects=False)
            statuses.append(response.status)
        assert statuses == [401] * 5 + [429]
        # Even the right password is refused while throttled ...
        response = await client.post("/login", data={"username": "olivia", "password": PASSWORDS["olivia"],
                                                      "csrf_token": token}, allow_redirects=False)
        assert response.status == 429 and int(response.headers["Retry-After"]) > 0
        # ... but another user from the same address is not locked out.
        response = await client.post("/login", data={"username": "anders", "password": PASSWORDS["anders"],
                                                     "csrf_token": token}, allow_redirects=False)
        assert response.status == 302

    run(config, scenario)
    actions = [e["action"] for e in audit_entries(config)]
    assert actions.count("login-failed") == 5 and actions.count("login-throttled") == 2


def test_behind_a_trusted_proxy_the_login_rate_limit_counts_the_forwarded_client_address(config, tmp_path):
    """The test client connects from 127.0.0.1, standing in for a TLS proxy. Trusted (--trusted-proxy), its
    X-Forwarded-For names the client: one client is throttled, another behind the same proxy is not, and an address
    a client writes on the left of the header changes nothing. Not trusted: the header is ignored."""

    async def attempts(client: TestClient, forwarded: list[str]) -> list[int]:
        token = CSRF.search(await (await client.get("/login")).text()).group(1)
        statuses = []
        for header in forwarded:
            response = await client.post("/login", data={"username": "olivia", "password": "wrong-password",
                                                         "csrf_token": token},
                                         headers={"X-Forwarded-For": header}, allow_redirects=False)
            statuses.append(response.status)
        return statuses

    async def behind_trusted_proxy(client: TestClient) -> None:
        # five failures of 203.0.113.5, the last two with a forged address prepended by the client
        assert await attempts(client, ["203.0.113.5"] * 3 + ["198.51.100.1, 203.0.113.5"] * 2) == [401] * 5
        assert await attempts(client, ["192.0.2.99, 203.0.113.5"]) == [429]
        assert await attempts(client, ["203.0.113.6"]) == [401], "another client behind the proxy is not locked out"

    async def proxy_not_trusted(client: TestClient) -> None:
        headers = [f"203.0.113.{n}" for n in range(10, 16)]  # a client varying the header to dodge the limit
        assert await attempts(client, headers) == [401] * 5 + [429]

    trusted = DashboardConfig(**{**config.__dict__, "trusted_proxies": ("127.0.0.0/8",)})
    run(trusted, behind_trusted_proxy)
    clients = [e["detail"]["client"] for e in audit_entries(trusted) if e["action"].startswith("login-")]
    assert clients == ["203.0.113.5"] * 6 + ["203.0.113.6"], "the audit log names the client, not the proxy"
    untrusted = DashboardConfig(**{**config.__dict__, "audit_log": tmp_path / "untrusted.jsonl"})
    run(untrusted, proxy_not_trusted)
    assert {e["detail"]["client"] for e in audit_entries(untrusted)} == {"127.0.0.1"}


def test_pvwatch_dashboard_refuses_a_trusted_proxy_that_is_not_an_address(tmp_path):
    UserStore(tmp_path / "users.yaml").add("ada", Role.ADMIN, PASSWORDS["ada"])
    result = subprocess.run([sys.executable, "-m", "pvwatch", "dashboard", "--snapshot", str(tmp_path / "s.duckdb"),
                             "--users", str(tmp_path / "users.yaml"), "--read-only", "--port", "0",
                             "--trusted-proxy", "proxy.example"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--trusted-proxy 'proxy.example' is not an IP address or network" in result.stderr
    assert "dashboard http" not in result.stdout, "no URL printed for a dashboard that never serves"


def test_sql_page_is_read_only_row_limited_and_time_limited(config):
    async def scenario(client: TestClient) -> None:
        token = await login(client, "anders")

        async def query(sql: str) -> tuple[int, dict[str, Any]]:
            response = await client.post("/api/sql", json={"sql": sql}, headers={"X-CSRF-Token": token})
            return response.status, await response.json()

        status, body = await query("SELECT * FROM range(1000)")
        assert status == 200 and len(body["rows"]) == 50 and body["truncated"]
        for sql in ("DELETE FROM alerts", "SELECT 1; DROP TABLE alerts", "COPY alerts TO '/tmp/x.csv'",
                    "ATTACH '/tmp/other.duckdb'"):
            status, body = await query(sql)
            assert status == 400 and "one SELECT" in body["error"], sql
        status, body = await query("SELECT * FROM read_text('/etc/hostname')")
        assert status == 400 and "disabled" in body["error"]
        status, body = await query("SELECT count(*) FROM range(10000000000000) a")
        assert status == 400 and "longer than 1 s" in body["error"]

    run(config, scenario)
    assert any(e["action"] == "sql" and "range(1000)" in e["detail"]["sql"] for e in audit_entries(config))


def test_patient_reads_and_actions_are_audited_and_audit_verify_detects_an_edit(config, snapshot, broker):
    alert = snapshot[1][0]
    config = DashboardConfig(**{**config.__dict__, "bootstrap": broker.bootstrap})

    async def scenario(client: TestClient) -> None:
        token = await login(client, "olivia")
        page = await client.get(f"/patients/{alert.patient}")
        assert page.status == 200
        html = await page.text()
        assert "<svg" in html and alert.case_id in html
        assert (await client.get(f"/cases/{alert.case_id}")).status == 200
        response = await client.post(f"/api/alerts/{alert.alert_id}/actions",
                                     json={"action": "close", "reason": "duplicate report"},
                                     headers={"X-CSRF-Token": token})
        assert response.status == 202, await response.text()
        incomplete = await client.post(f"/api/alerts/{alert.alert_id}/actions", json={"action": "close"},
                                       headers={"X-CSRF-Token": token})
        assert incomplete.status == 400 and "reason" in await incomplete.text()
        queue = await (await client.get("/api/alerts")).json()
        mine = next(a for a in queue["alerts"] if a["alert_id"] == str(alert.alert_id))
        assert mine["pending_action"] == "close", "sent but not yet in the snapshot: shown as on its way"

    run(config, scenario)

    consumer = KafkaConsumer(AlertActionRecorded.topic, bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    published = [json.loads(record.value) for record in consumer]
    consumer.close()
    assert len(published) == 1
    event = published[0]
    assert (event["type"], event["action"], event["actor"], event["reason"], event["patient"]) == \
        ("alert-action", "close", "olivia", "duplicate report", alert.patient)

    entries = audit_entries(config)
    reads = [e for e in entries if e["action"] in ("read-patient", "read-case")]
    assert [(e["action"], e["actor"], e["patient"]) for e in reads] == [
        ("read-patient", "olivia", alert.patient), ("read-case", "olivia", alert.patient)]
    acted = [e for e in entries if e["action"] == "alert-action"]
    assert len(acted) == 1 and acted[0]["detail"]["event_id"] == event["event_id"]

    verify = [sys.executable, "-m", "pvwatch", "audit", "verify", str(config.audit_log)]
    intact = subprocess.run(verify, capture_output=True, text=True)
    assert intact.returncode == 0 and f"{len(entries)} entries" in intact.stdout, intact.stderr

    lines = config.audit_log.read_text().splitlines(keepends=True)
    edited = [line.replace('"actor":"olivia"', '"actor":"someone"', 1) if '"read-patient"' in line else line
              for line in lines]
    assert edited != lines
    config.audit_log.write_text("".join(edited))
    broken = subprocess.run(verify, capture_output=True, text=True)
    assert broken.returncode == 1
    assert "was edited" in broken.stderr


def test_audit_verify_detects_deletion_reordering_and_a_cut_tail(tmp_path):
    from pvwatch.dashboards.audit import AuditChainBroken, AuditLog

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for n in range(5):
        log.append("olivia", "read-patient", patient=f"pt-{n:020x}")
    head = log.head
    lines = path.read_text().splitlines(keepends=True)
    assert verify_audit_log(path, expect_head=head).intact

    path.write_text("".join(lines[:2] + lines[3:]))
    assert any("removed" in p for p in verify_audit_log(path).problems)
    path.write_text("".join([lines[1], lines[0], *lines[2:]]))
    assert not verify_audit_log(path).intact
    path.write_text("".join(lines[:4]))
    assert verify_audit_log(path).intact, "a cut tail keeps a valid chain ..."
    assert not verify_audit_log(path, expect_head=head).intact, "... which the recorded head exposes"
    path.write_text("".join(lines[:2] + lines[3:]))
    with pytest.raises(AuditChainBroken):
        AuditLog(path)


def test_the_audit_log_is_owner_only_whatever_the_umask(tmp_path):
    """It names the child whose record each user read and keeps officers' free-text reasons: like the full snapshot
    (store.snapshot.FULL_SNAPSHOT_MODE) only its owner, the dashboard's service account, may read it."""
    import os

    from pvwatch.dashboards.audit import AuditLog

    path = tmp_path / "audit.jsonl"
    permissive = os.umask(0)
    try:
        AuditLog(path).append("olivia", "alert-action", patient="pt-00000000000000000001", reason=CLOSE_REASON)
    finally:
        os.umask(permissive)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # a log written before the mode was enforced
    AuditLog(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert verify_audit_log(path).intact


def free_texts(records: list[dict[str, Any]]) -> list[str]:
    """Every free text of the cohort that may identify a child (store.snapshot.ANALYST_REDACTIONS)."""
    found = [r[name] for r in records for name in ("narrative", "reason_detail") if r.get(name)]
    return [*found, CLOSE_REASON]


def test_the_analyst_snapshot_holds_no_narrative_or_free_text_of_the_cohort(snapshot):
    full, analyst = snapshot[0], analyst_snapshot_path(snapshot[0])
    texts = free_texts(cohort_records())
    assert len(texts) >= 2, "the cohort's infusion-reaction story has a narrative"

    def occurrences(path: Path) -> dict[str, int]:
        """How often each text appears in any text column of any table of the snapshot."""
        import duckdb

        con = duckdb.connect(str(path), read_only=True)
        try:
            columns = con.execute(
                "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal AND "
                "table_name IN (SELECT table_name FROM duckdb_tables()) AND data_type IN ('VARCHAR', 'JSON')"
            ).fetchall()
            found = dict.fromkeys(texts, 0)
            for table, column in columns:
                for text in texts:
                    row = con.execute(f'SELECT count(*) FROM "{table}" WHERE contains("{column}"::VARCHAR, ?)',
                                      [text]).fetchone()
                    found[text] += row[0]
            return found
        finally:
            con.close()

    assert all(n >= 1 for n in occurrences(full).values()), "the officer's snapshot keeps them (the test can fail)"
    assert occurrences(analyst) == dict.fromkeys(texts, 0)
    for text in texts:
        assert text.encode() not in analyst.read_bytes()

    import duckdb

    con = duckdb.connect(str(analyst), read_only=True)
    try:
        # the analyses still run: the views are there, a narrative that was sent still counts as sent
        assert con.execute("SELECT count(*) FROM adverse_events WHERE has_narrative").fetchone()[0] == \
            sum(1 for r in cohort_records() if r.get("narrative"))
        assert con.execute("SELECT count(*) FROM event_log WHERE payload->>'narrative' = ?",
                           [REDACTED]).fetchone()[0] >= 1
        assert con.execute("SELECT close_reason FROM alert_status WHERE status = 'closed'").fetchall() == [(REDACTED,)]
    finally:
        con.close()


def test_the_sql_page_reads_the_analyst_snapshot(config):
    async def scenario(client: TestClient) -> None:
        token = await login(client, "anders")
        response = await client.post("/api/sql", json={"sql": "SELECT payload->>'narrative' AS n FROM event_log "
                                                               "WHERE payload->>'narrative' IS NOT NULL"},
                                     headers={"X-CSRF-Token": token})
        body = await response.json()
        assert response.status == 200 and body["rows"] and {row[0] for row in body["rows"]} == {REDACTED}
        form = await client.post("/sql", data={"sql": "SELECT reason FROM alert_actions", "csrf_token": token})
        assert CLOSE_REASON not in await form.text()

    run(config, scenario)


# --- the pages over the clinical event model, checked against the cohort's planted stories --------------------------

def story(kind: str) -> tuple[str, list[dict[str, Any]]]:
    """(patient pseudonym, the cohort records of that patient) of a planted story (pvwatch.cohort.planted_stories)."""
    p = Pseudonymiser.from_secret(None, demo_mode=True)
    ref = planted_stories(*COHORT)[kind].patient_refs[0]
    return p.pseudonym(ref), [r for r in cohort_records() if r["patient_ref"] == ref]


async def page(client: TestClient, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status, (path, response.status)
    return await response.text()


def test_patient_timeline_draws_every_lane_from_the_real_event_types(config):
    flare, flare_records = story("flare-after-taper")
    neutropenia, _ = story("neutropenia")
    reaction, reaction_records = story("infusion-reaction")

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        html = await page(client, f"/patients/{flare}")
        svg = html[html.index("<svg xmlns"):]
        # the taper of the story, drawn on its course with its new dose
        taper = next(r for r in flare_records if r["type"] == "treatment-tapered")
        assert '<g class="tapered">' in svg and f"taper {taper['dose']:g} {taper['dose_unit']}" in svg
        assert svg.count('<g class="course">') == len({r["course_id"] for r in flare_records
                                                       if r["type"].startswith("treatment-")})
        # disease activity: one chart per instrument; clinician SLEDAI-2K solid, parent-global dashed and hollow
        assert 'data-instrument="SLEDAI-2K"' in svg and 'data-instrument="parent-global"' in svg
        assert 'class="activity clinician-documented"' in svg and 'class="activity parent-reported"' in svg
        assert 'stroke-dasharray="6 4"' in svg and 'class="legend parent-reported"' in svg
        # labs named by analyte, never by LOINC code
        assert ">Neutrophils</text>" in svg and ">751-8<" not in svg
        assert '<g class="infusion' in svg and '<g class="alert-flag' in svg

        html = await page(client, f"/patients/{neutropenia}")
        # ANC 0.8 x10^9/L is CTCAE v5.0 "Neutrophil count decreased" grade 3 (<1000-500/mm3), as the ctcae-lab
        # alert says (planted story "neutropenia")
        assert '<g class="lab grade-3">' in html and "Neutrophil count decreased grade 3" in html

        html = await page(client, f"/patients/{reaction}")
        assert '<g class="adverse-event' in html and "Pyrexia" in html and 'href="/lots/' in html
        # the story's MSC infusion with its lot, clinic and cell dose (pvwatch.cohort: 1.5e6 cells/kg)
        infusion = next(r for r in reaction_records if r["type"] == "msc-infusion")
        assert (f"lot {infusion['lot_id']}, {infusion['clinic']}, {infusion['cells_per_kg']:.2g} cells/kg, "
                f"{infusion['occurred_at'][:10]}") in html
        assert f'<a href="/lots/{infusion["lot_id"]}"><g class="infusion">' in html

        # a child with an MSC infusion recorded without a lot (model field missing_documentation) is marked
        incomplete = next(r for r in cohort_records() if r["type"] == "msc-infusion" and not r.get("lot_id"))
        pseudonym = Pseudonymiser.from_secret(None, demo_mode=True).pseudonym(incomplete["patient_ref"])
        html = await page(client, f"/patients/{pseudonym}")
        assert '<g class="infusion incomplete">' in html and "missing lot_id" in html
        claims = [r for r in cohort_records() if r["type"] == "outcome-claim" and not r.get("documented_measure")]
        pseudonym = Pseudonymiser.from_secret(None, demo_mode=True).pseudonym(claims[0]["patient_ref"])
        assert '<g class="outcome undocumented">' in await page(client, f"/patients/{pseudonym}")

    run(config, scenario)


def test_case_view_shows_versions_expectedness_clock_and_exports_e2b_for_the_officer_only(config):
    patient, records = story("death")
    versions = [r for r in records if r["type"] == "adverse-event"]
    case_id = versions[0]["case_id"]
    day0 = min(date.fromisoformat(v["awareness_date"]) for v in versions)

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        html = await page(client, f"/cases/{case_id}")
        assert html.count("<td>follow-up") + html.count("<td>initial") == len(versions) == 2
        assert "death" in html and "life threatening" in html
        # a clinic-made MSC product has no RSI: unexpected (pvwatch/rsi.yaml policy, EU CT-3 7.2.3.2)
        assert "UC-MSC: unexpected" in html and "no reference safety information" in html
        # WHO-UMC causality of each product as the reporter assessed it, per version
        suspect = versions[-1]["products"][0]
        assert f"{suspect['name']} ({suspect['role']}, {suspect['causality']}, " in html
        assert html.count(f"({suspect['role']}, {suspect['causality']}, ") == len(versions)
        # fatal or life-threatening SUSAR: 7 calendar days from day 0 (ICH E2A III.A.1)
        assert str(day0 + timedelta(days=7)) in html and "7-day" in html
        assert 'id="export-e2b"' in html

        response = await client.get(f"/cases/{case_id}/e2b")
        assert response.status == 200 and response.content_type == "application/xml"
        assert "attachment" in response.headers["Content-Disposition"]
        from lxml import etree

        document = etree.fromstring(await response.read())
        assert "Pulmonary embolism" in etree.tostring(document).decode() and patient not in (await response.text())
        await client.post("/logout", data={"csrf_token": await csrf_of(client)})

        await login(client, "anders")
        html = await page(client, f"/cases/{case_id}")
        assert 'id="export-e2b"' not in html
        assert (await client.get(f"/cases/{case_id}/e2b")).status == 403

    run(config, scenario)
    entries = audit_entries(config)
    exports = [e for e in entries if e["action"] == "export-e2b"]
    assert [(e["actor"], e["patient"], e["detail"]["case_id"]) for e in exports] == [("olivia", patient, case_id)]
    assert any(e["action"] == "forbidden" and e["actor"] == "anders" and e["detail"]["path"].endswith("/e2b")
               for e in entries)


def test_an_analyst_never_sees_a_narrative_on_the_case_or_patient_page(config):
    _, records = story("infusion-reaction")
    narrated = next(r for r in records if r.get("narrative"))

    async def scenario(client: TestClient) -> None:
        pseudonym = Pseudonymiser.from_secret(None, demo_mode=True).pseudonym(narrated["patient_ref"])
        await login(client, "olivia")
        assert narrated["narrative"] in await page(client, f"/cases/{narrated['case_id']}")
        await client.post("/logout", data={"csrf_token": await csrf_of(client)})
        await login(client, "anders")
        for path in (f"/cases/{narrated['case_id']}", f"/patients/{pseudonym}", "/api/alerts"):
            assert narrated["narrative"] not in await page(client, path), path

    run(config, scenario)


def test_expedited_board_lists_open_clocks_by_deadline_with_overdue_in_red(config, snapshot):
    import duckdb

    con = duckdb.connect(str(snapshot[0]), read_only=True)
    expected = con.execute("SELECT case_id, category, due_at < now() FROM expedited_reports "
                           "WHERE submitted_at IS NULL ORDER BY due_at, case_id, category").fetchall()
    con.close()
    assert expected, "the cohort's SUSARs start clocks"

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        html = await page(client, "/expedited")
        rows = re.findall(r'<tr class="([a-z-]+)" data-case-id="([^"]+)">', html)
        assert [case for _, case in rows] == [case for case, _, _ in expected]
        assert [css == "overdue" for css, _ in rows] == [late for _, _, late in expected]

    run(config, scenario)


def test_viewing_the_alert_queue_or_the_expedited_board_is_audited_with_the_children_listed(config, snapshot):
    """Both pages list children (pseudonyms and summaries): each page load is an audit entry naming them; the
    queue's 2 s poll of /api/alerts adds one only when the set of children it lists to the session changes."""
    import duckdb

    from pvwatch.cohort import CLUSTER_LOT

    con = duckdb.connect(str(snapshot[0]), read_only=True)
    on_board = sorted(p for (p,) in con.execute("SELECT DISTINCT patient FROM expedited_reports "
                                                "WHERE submitted_at IS NULL").fetchall())
    con.close()
    queued = sorted({str(a.patient) for a in snapshot[1]})  # every open alert's child
    seen: dict[str, list[dict[str, Any]]] = {}

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        assert (await client.get("/alerts")).status == 200
        for _ in range(3):  # the page's live polls: the same children, no new entry
            assert (await client.get("/api/alerts")).status == 200
        cluster = [(await (await client.get("/api/alerts", params={"lot": CLUSTER_LOT})).json())["alerts"]
                   for _ in range(2)]
        assert cluster[0] == cluster[1] and cluster[0]
        seen["cluster"] = cluster[0]
        await page(client, "/expedited")

    run(config, scenario)
    listings = [e for e in audit_entries(config)
                if e["action"] in ("view-alert-queue", "list-alerts", "view-expedited-board")]
    assert [(e["action"], e["actor"]) for e in listings] == [
        ("view-alert-queue", "olivia"), ("list-alerts", "olivia"), ("view-expedited-board", "olivia")]
    whole, cluster_listing, board = listings
    assert set(whole["detail"]["patients"]) >= set(queued) and whole["detail"]["filters"] == {}
    assert cluster_listing["detail"]["filters"] == {"lot": CLUSTER_LOT}
    assert cluster_listing["detail"]["patients"] == sorted({a["patient"] for a in seen["cluster"]})
    assert board["detail"]["patients"] == on_board and on_board


def test_queue_filters_by_rule_severity_status_site_product_and_lot(config, snapshot):
    from pvwatch.cohort import CLUSTER_LOT

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")

        async def queue(**filters: str) -> list[dict[str, Any]]:
            response = await client.get("/api/alerts", params=filters)
            return (await response.json())["alerts"]

        everything = await queue()
        assert len(everything) == len(snapshot[1]) + 1
        for name, key in (("rule", "rule_id"), ("severity", "severity"), ("status", "status"), ("site", "site")):
            for value in {a[key] for a in everything}:
                assert {a["alert_id"] for a in await queue(**{name: value})} == \
                    {a["alert_id"] for a in everything if a[key] == value}, (name, value)
        assert [a["status"] for a in await queue(status="closed")] == ["closed"]
        cluster = await queue(lot=CLUSTER_LOT)
        assert {a["rule_id"] for a in cluster} >= {"lot-cluster"}
        assert all(CLUSTER_LOT in a["lots"] for a in cluster)
        # the lot's product (every alert about the lot names it; a clinic's alert may name other products too)
        product = min(set.intersection(*(set(a["products"]) for a in cluster)))
        assert {a["alert_id"] for a in cluster} <= {a["alert_id"] for a in await queue(product=product)}
        assert await queue(lot="NO-SUCH-LOT") == []

    run(config, scenario)


def test_lot_view_counts_infusions_and_adverse_events_per_100_infusions(config):
    from pvwatch.cohort import CLUSTER_LOT

    async def scenario(client: TestClient) -> None:
        await login(client, "anders")
        html = await page(client, f"/lots/{CLUSTER_LOT}")
        # the planted lot cluster: three children infused from the lot, three adverse events within 14 days
        # (as the documented analysis finds it, tests/integration/test_event_model_views.py)
        assert re.search(r"<td>3</td><td>3</td>\s*<td>0</td><td>3</td><td[^>]*>0</td>\s*<td>100.0</td>", html)
        assert "lot-cluster" in html
        index = await page(client, "/lots")
        assert f'href="/lots/{CLUSTER_LOT}"' in index and 'href="/clinics/clinic-beta"' in index
        await page(client, "/lots/NO-SUCH-LOT", status=404)

    run(config, scenario)


def test_the_readme_example_analyses_run_on_the_analyst_snapshot_and_find_the_lot_cluster(snapshot):
    import duckdb

    from pvwatch.cohort import CLUSTER_LOT

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## The dashboard and analyst access"):]
    by_lot, to_onset, flares = [q for q in re.findall(r"```sql\n(.*?)```", section, re.S)[0].split(";") if q.strip()]
    con = duckdb.connect(str(analyst_snapshot_path(snapshot[0])), read_only=True)
    try:
        lots = {row[0]: row[1:] for row in con.execute(by_lot).fetchall()}
        assert lots[CLUSTER_LOT] == (3, 3, 100.0), "planted: three children, three AEs within 14 days of the lot"
        # the infusion-reaction story: fever four hours after the infusion, the same day
        onset = {row[0]: row[2] for row in con.execute(to_onset).fetchall()}
        reaction = next(r for r in cohort_records() if r.get("narrative"))
        assert onset[reaction["case_id"]] == 0
        assert any(row[3] == "SLEDAI-2K" and row[5] == "clinician" for row in con.execute(flares).fetchall())
    finally:
        con.close()


def test_pipeline_health_links_each_shipped_grafana_dashboard_when_grafana_is_deployed(config):
    async def without(client: TestClient) -> None:
        await login(client, "olivia")
        assert 'id="grafana"' not in await page(client, "/health")

    run(config, without)
    config = DashboardConfig(**{**config.__dict__, "grafana_url": "http://127.0.0.1:3000/"})
    shipped = sorted(json.loads(path.read_text())["uid"] for path in
                     (Path(__file__).resolve().parents[2] / "dashboards/monitoring/grafana/dashboards").glob("*.json"))

    async def linked(client: TestClient) -> None:
        await login(client, "olivia")
        html = await page(client, "/health")
        assert sorted(re.findall(r'href="http://127.0.0.1:3000/d/([^"]+)"', html)) == shipped

    run(config, linked)


def test_expedited_board_highlights_a_clock_due_within_48_hours(tmp_path, config):
    """A life-threatening SUSAR (clinic-made MSC: no RSI) known since 6 days ago: its 7-day clock (ICH E2A III.A.1)
    ends at the end of tomorrow, inside the 48 h due-soon window of expedited_report_status."""
    p = Pseudonymiser.from_secret(None, demo_mode=True)
    now = datetime.now(UTC)
    day0 = now.date() - timedelta(days=6)
    event = parse_event(p.pseudonymise_record({
        "event_id": str(uuid.uuid4()), "type": "adverse-event", "occurred_at": (now - timedelta(days=7)).isoformat(),
        "recorded_at": now.isoformat(), "source": "site-lyon", "patient_ref": "MRN-DUE-SOON-1",
        "case_id": "CASE-DUE-SOON-1", "reporter_type": "clinician", "awareness_date": day0.isoformat(),
        "term": "Anaphylactic reaction", "seriousness": {"life_threatening": True}, "outcome": "recovering",
        "products": [{"name": "UC-MSC", "role": "suspect", "causality": "probable"}]}))
    path = tmp_path / "due-soon.duckdb"
    store = EventStore(path)
    with store.transaction():
        store.insert_events([(event, None)], now)
    store.close()
    replay(path)
    store = EventStore(path)
    info = publish_snapshot(store.con, tmp_path / "due-soon.snapshot.duckdb")
    store.close()
    config = DashboardConfig(**{**config.__dict__, "snapshot": info.path})

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        html = await page(client, "/expedited")
        # the 7-day report, then its completion by day 15 (ICH E2A III.A.1: "within 8 additional days")
        assert re.findall(r'<tr class="([a-z-]+)" data-case-id="([^"]+)">', html) == [
            ("due-soon", "CASE-DUE-SOON-1"), ("open", "CASE-DUE-SOON-1")]
        assert html.index(f"<td>{day0 + timedelta(days=7)}</td>") < html.index(f"<td>{day0 + timedelta(days=15)}</td>")

    run(config, scenario)


def test_health_rates_are_counter_increase_per_second_between_two_scrapes():
    from pvwatch.dashboards.webapp import CounterRates

    rates = CounterRates()
    assert rates.observe(100.0, {"pv_events_ingested_total": 500.0}) is None, "one look: no rate yet"
    found, seconds = rates.observe(110.0, {"pv_events_ingested_total": 800.0, "pv_alerts_raised_total": 5.0})
    assert seconds == 10.0 and found["pv_events_ingested_total"] == 30.0 and found["pv_alerts_raised_total"] == 0.5
    found, _ = rates.observe(120.0, {"pv_events_ingested_total": 10.0})  # the worker restarted: counter reset
    assert "pv_events_ingested_total" not in found


def test_signals_page_shows_every_pair_rounded_with_exact_sort_keys_strongest_first(tmp_path, config, snapshot):
    import shutil

    import duckdb

    from pvwatch.config import Settings
    from pvwatch.store.signals import refresh_signals, thresholds_from_settings

    shutil.copy(snapshot[0].parent / "pvwatch.duckdb", tmp_path / "pvwatch.duckdb")
    store = EventStore(tmp_path / "pvwatch.duckdb")
    refresh_signals(store.con, thresholds_from_settings(Settings()), NOW)
    info = publish_snapshot(store.con, tmp_path / "signals.snapshot.duckdb")
    store.close()
    con = duckdb.connect(str(info.path), read_only=True)
    expected = con.execute("SELECT product, event, prr FROM signals "
                           "ORDER BY eb05 DESC NULLS LAST, ic025 DESC, a DESC, product, event").fetchall()
    # the EBGM interval plot: one row per pair with EBGM and its EB05-EB95 interval, strongest first (at most 40)
    plotted = con.execute("SELECT product || ' / ' || event, eb05, ebgm, eb95, signal_ebgm FROM signals "
                          "WHERE ebgm IS NOT NULL AND eb05 IS NOT NULL AND eb95 IS NOT NULL "
                          "ORDER BY eb05 DESC NULLS LAST, ic025 DESC, a DESC, product, event LIMIT 40").fetchall()
    con.close()
    assert plotted
    config = DashboardConfig(**{**config.__dict__, "snapshot": info.path})

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        html = await page(client, "/signals")
        shown = re.findall(r"<tr[^>]*>\s*<td>([^<]+)</td><td>([^<]+)</td><td data-sort", html)
        assert shown == [(product, event) for product, event, _ in expected]
        prr = next(value for _, _, value in expected if value is not None)
        assert f'data-sort="{prr}">{prr:.3g}</td>' in html, "rounded to 3 digits, sorted by the exact value"
        svg = html[html.index('aria-label="EBGM intervals"'):html.index("</svg>")]
        labels = re.findall(r'text-anchor="end">([^<]+)</text><line x1="([\d.]+)" y1="\d+" x2="([\d.]+)"[^>]*'
                            r'stroke="(#[0-9a-f]+)"[^>]*/><circle cx="([\d.]+)"', svg)
        assert [label for label, *_ in labels] == [row[0][:40] for row in plotted]
        # the dashed reference line at EBGM 1 (no disproportionality) lies on the plot, with axis labels that do not
        # run into each other (also when every EB95 is below 1: the axis still reaches 1)
        plot = html[html.rindex("<svg", 0, html.index('aria-label="EBGM intervals"')):html.index("</svg>")]
        width, height = (float(v) for v in re.search(r'width="(\d+)" height="(\d+)"', plot).groups())
        one = float(re.search(r'<line x1="([\d.]+)" y1="0" x2="[\d.]+" y2="\d+" stroke="#999"', plot)[1])
        assert one < width
        ticks = sorted(float(x) for x in re.findall(rf'<text x="([\d.]+)" y="{height - 4:g}"', plot))
        assert one in ticks and all(b - a > 25 for a, b in itertools.pairwise(ticks)), ticks
        for (_, low, high, colour, point), (_, eb05, ebgm, eb95, flagged) in zip(labels, plotted, strict=True):
            assert float(low) <= float(point) <= float(high), "EBGM drawn inside its EB05-EB95 interval"
            assert (colour == "#c62828") == bool(flagged), "red: flagged by the worker's EBGM threshold"
            if eb95 - eb05 > 1e-3:  # EBGM sits where it is between EB05 and EB95 (one linear axis)
                where = (float(point) - float(low)) / (float(high) - float(low))
                assert abs(where - (ebgm - eb05) / (eb95 - eb05)) < 0.05

    run(config, scenario)


# --- users, passwords and cookies as an operator sets them up ----------------------------------------------------


def test_pvwatch_user_add_stores_only_an_argon2id_hash_owner_only_and_that_user_signs_in(tmp_path, config):
    users = tmp_path / "operator" / "users.yaml"
    add = [sys.executable, "-m", "pvwatch", "user", "add", "nina", "--role", "analyst", "--users", str(users),
           "--password-stdin"]
    short = subprocess.run(add, input="short-pass\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "at least 12 characters" in short.stderr and not users.exists()
    made = subprocess.run(add, input="nina-password-12\n", capture_output=True, text=True, timeout=60)
    assert made.returncode == 0 and f"user nina (analyst) saved in {users}" in made.stdout, made.stderr
    text = users.read_text()
    # Argon2id (RFC 9106) with argon2-cffi's RFC 9106 low-memory parameters; the password itself is nowhere
    assert "password_hash: $argon2id$v=19$m=65536,t=3,p=4$" in text and "nina-password-12" not in text
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    config = DashboardConfig(**{**config.__dict__, "users_file": users})

    async def scenario(client: TestClient) -> None:
        token = await login(client, "nina", "nina-password-12")
        sql = await client.post("/api/sql", json={"sql": "SELECT 1 AS one"}, headers={"X-CSRF-Token": token})
        assert sql.status == 200, "signed in with the analyst role"
        assert (await client.get("/admin")).status == 403

    run(config, scenario)


def test_users_from_a_toml_configuration_file_sign_in_and_are_never_rewritten(tmp_path, config):
    from argon2 import PasswordHasher

    users = tmp_path / "users.toml"
    users.write_text('[users.tove]\nrole = "officer"\n'
                     f'password_hash = "{PasswordHasher().hash("tove-password-12")}"\n')
    before = users.read_text()
    config = DashboardConfig(**{**config.__dict__, "users_file": users})

    async def scenario(client: TestClient) -> None:
        await login(client, "tove", "tove-password-12")
        assert (await client.get("/api/alerts")).status == 200, "signed in with the officer role"

    run(config, scenario)
    add = subprocess.run([sys.executable, "-m", "pvwatch", "user", "add", "tom", "--role", "admin", "--users",
                          str(users), "--password-stdin"], input="tom-password-123\n", capture_output=True,
                         text=True, timeout=60)
    assert add.returncode == 2 and "TOML user files are read-only" in add.stderr
    assert users.read_text() == before


def test_over_tls_every_cookie_is_secure(tmp_path, snapshot):
    """`pvwatch dashboard --tls-cert` marks the login and session cookies Secure (never sent over plain HTTP)."""
    import http.cookiejar
    import shutil
    import ssl
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    from pvwatch.streams.broker import free_port

    openssl = shutil.which("openssl")
    assert openssl, "scripts/install.sh --system installs openssl"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    UserStore(tmp_path / "users.yaml").add("olivia", Role.OFFICER, PASSWORDS["olivia"])
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pvwatch", "dashboard", "--snapshot", str(snapshot[0]), "--users",
         str(tmp_path / "users.yaml"), "--port", str(port), "--read-only", "--tls-cert", str(cert), "--tls-key",
         str(key)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    jar = http.cookiejar.CookieJar()
    https = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                        urllib.request.HTTPCookieProcessor(jar))
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = https.open(base + "/login", timeout=2).read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and server.poll() is None, "the dashboard did not start"
                time.sleep(0.2)
        assert {cookie.name: cookie.secure for cookie in jar} == {"pvwatch_login": True}
        token = CSRF.search(page).group(1)
        form = urllib.parse.urlencode({"username": "olivia", "password": PASSWORDS["olivia"], "csrf_token": token,
                                       "next": "/alerts"}).encode()
        assert "/alerts" in https.open(base + "/login", form, timeout=10).geturl()
        cookies = {cookie.name: cookie for cookie in jar}
        assert cookies["pvwatch_session"].secure, "the session cookie is Secure"
    finally:
        server.terminate()
        server.wait(10)


def test_clinic_view_counts_every_infusion_of_the_clinic_and_adverse_events_per_100_infusions(config, snapshot):
    """The clinic view applies the documented "AE rate per 100 infusions" analysis (docs/analysts.md, 14 days
    after an infusion) to one clinic; expected figures from the analyst snapshot, computed here independently."""
    import duckdb

    clinic = "clinic-beta"  # the planted lot cluster's clinic (pvwatch.cohort)
    con = duckdb.connect(str(analyst_snapshot_path(snapshot[0])), read_only=True)
    try:
        infusions, children, lots, shown_children = con.execute(
            "SELECT count(*), count(DISTINCT patient), list_sort(list_distinct(list(lot_id))), "
            "list_sort(list_distinct(list(patient))) FROM infusions WHERE clinic = ?", [clinic]).fetchone()
        cases = con.execute(
            "SELECT count(DISTINCT ae.case_id), count(DISTINCT ae.case_id) FILTER (WHERE ae.is_serious) "
            "FROM infusions i JOIN adverse_events ae ON ae.patient = i.patient AND ae.is_latest "
            "AND ae.onset_date BETWEEN CAST(i.occurred_at AS DATE) AND CAST(i.occurred_at AS DATE) + 14 "
            "WHERE i.clinic = ?", [clinic]).fetchone()
    finally:
        con.close()
    assert infusions > 0 and cases[0] > 0

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        html = await page(client, f"/clinics/{clinic}")
        summary = html[html.index('id="exposure-summary"'):]
        row = re.search(r"<tbody><tr>(.*?)</tr>", summary, re.S).group(1)
        cells = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        assert cells[0] == clinic and cells[2] == ", ".join(lots)
        assert (int(cells[3]), int(cells[4])) == (infusions, children)
        assert (int(cells[6]), int(cells[7])) == cases
        assert cells[8] == f"{round(100.0 * cases[0] / infusions, 1)}"
        assert "lot-cluster" in html, "the cluster alert of this clinic's lot is listed"
        await page(client, "/clinics/no-such-clinic", status=404)

    run(config, scenario)
    reads = [e for e in audit_entries(config) if e["action"] == "read-clinic"]
    assert [e["detail"]["clinic"] for e in reads] == [clinic]
    assert reads[0]["detail"]["patients"] == shown_children, "whose infusions and adverse events the page showed"


def test_an_officer_assigns_an_alert_and_the_assignment_is_an_event_with_who_and_when(config, snapshot, broker):
    alert = snapshot[1][1]
    config = DashboardConfig(**{**config.__dict__, "bootstrap": broker.bootstrap})

    async def scenario(client: TestClient) -> None:
        token = await login(client, "olivia")
        missing = await client.post(f"/api/alerts/{alert.alert_id}/actions", json={"action": "assign"},
                                    headers={"X-CSRF-Token": token})
        assert missing.status == 400 and "assignee" in await missing.text()
        sent = await client.post(f"/api/alerts/{alert.alert_id}/actions",
                                 json={"action": "assign", "assignee": "dr-lindqvist"},
                                 headers={"X-CSRF-Token": token})
        assert sent.status == 202, await sent.text()
        queue = await (await client.get("/api/alerts")).json()
        assert next(a for a in queue["alerts"] if a["alert_id"] == str(alert.alert_id))["pending_action"] == "assign"

    before = datetime.now(UTC)
    run(config, scenario)
    consumer = KafkaConsumer(AlertActionRecorded.topic, bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    published = [AlertActionRecorded.model_validate_json(record.value) for record in consumer]
    consumer.close()
    assert [(e.action, e.assignee, e.actor, e.alert_id, e.patient) for e in published] == [
        (AlertAction.ASSIGN, "dr-lindqvist", "olivia", alert.alert_id, alert.patient)]
    assert before <= published[0].occurred_at <= datetime.now(UTC), "when: the moment the officer acted"
    acted = [e for e in audit_entries(config) if e["action"] == "alert-action"]
    assert [(e["actor"], e["detail"]["action"], e["detail"]["assignee"]) for e in acted] == [
        ("olivia", "assign", "dr-lindqvist")]


def test_a_malformed_json_body_gets_a_400_that_says_what_to_send_never_a_500(config, snapshot):
    alert = snapshot[1][0]

    async def scenario(client: TestClient) -> None:
        for user, path in (("anders", "/api/sql"), ("olivia", f"/api/alerts/{alert.alert_id}/actions")):
            token = await login(client, user)
            for body, says in ((b"SELECT 1", "not valid JSON"), (b"\xff\xfe", "not valid JSON"),
                               (b'["SELECT 1"]', "is an array"), (b'"SELECT 1"', "is a string"),
                               (b"42", "is a number"), (b"null", "is null")):
                response = await client.post(path, data=body, headers={"X-CSRF-Token": token,
                                                                       "Content-Type": "application/json"})
                assert response.status == 400 and says in await response.text(), (path, body)
            await client.post("/logout", data={"csrf_token": token})
        token = await login(client, "anders")
        for body in ({}, {"sql": 5}, {"query": "SELECT 1"}):
            response = await client.post("/api/sql", json=body, headers={"X-CSRF-Token": token})
            assert response.status == 400 and '{"sql": "SELECT ..."}' in await response.text(), body

    run(config, scenario)


def test_the_admin_manages_users_and_sees_the_configuration_and_no_other_role_can(config):
    async def scenario(client: TestClient) -> None:
        token = await login(client, "ada")
        html = await page(client, "/admin")
        for setting in ("SQL row limit", "SQL time limit (s)", "audit head", "failed logins allowed per minute"):
            assert f"<th>{setting}</th>" in html
        assert "<td>olivia</td><td>officer</td>" in html and "argon2" not in html, "names and roles, never hashes"
        short = await client.post("/admin", data={"username": "omar", "role": "officer", "password": "too-short",
                                                  "csrf_token": token})
        assert "Not saved: the password must have at least 12 characters" in await short.text()
        saved = await client.post("/admin", data={"username": "omar", "role": "officer",
                                                  "password": "omar-password-12", "csrf_token": token})
        assert "User omar saved with role officer." in await saved.text()
        await client.post("/logout", data={"csrf_token": token})

        token = await login(client, "omar", "omar-password-12")
        assert (await client.get("/api/alerts")).status == 200, "the new officer signs in at once"
        await client.post("/logout", data={"csrf_token": token})
        for user in ("olivia", "anders"):
            token = await login(client, user)
            refused = await client.post("/admin", data={"username": "eve", "role": "admin",
                                                        "password": "eve-password-123", "csrf_token": token})
            assert refused.status == 403, user
            assert (await client.get("/admin")).status == 403, user
            await client.post("/logout", data={"csrf_token": token})

    run(config, scenario)
    assert set(UserStore(config.users_file).users()) == {"olivia", "anders", "ada", "omar"}, "eve was never added"
    added = [e for e in audit_entries(config) if e["action"] == "user-added"]
    assert [(e["actor"], e["detail"]["user"], e["detail"]["role"]) for e in added] == [("ada", "omar", "officer")]


def test_pipeline_health_shows_lag_dead_letters_and_rates_summed_over_the_workers_labels(config):
    """The health page over a /metrics exposition shaped like the worker's (pvwatch.metrics names and labels):
    lag summed over partitions, dead letters over topics and reasons, and per-second rates between two looks."""
    import time

    from aiohttp import web
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

    registry = CollectorRegistry()
    lag = Gauge("pv_consumer_lag_messages", "lag", ["topic", "partition"], registry=registry)
    lag.labels("pv.clinical.adverse-event.v1", "0").set(30)
    lag.labels("pv.clinical.lab-result.v1", "3").set(12)
    rejected = Counter("pv_events_rejected", "rejected", ["topic", "reason"], registry=registry)
    rejected.labels("pv.clinical.adverse-event.v1", "schema").inc(4)
    rejected.labels("pv.clinical.lab-result.v1", "invalid_unit").inc(1)
    Gauge("pv_dead_letter_messages", "waiting", registry=registry).set(3)
    stored = Counter("pv_events_ingested", "stored", ["type"], registry=registry)
    stored.labels("adverse-event").inc(1000)
    Gauge("pv_worker_up", "up", registry=registry).set(1)
    Gauge("pv_last_event_processed_timestamp_seconds", "last", registry=registry).set(time.time() - 30)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    async def scenario(client: TestClient) -> None:
        await login(client, "olivia")
        html = await page(client, "/health")
        assert "<th>Consumer lag (messages)</th><td>42</td>" in html
        assert "<th>Dead-lettered</th><td>5</td>" in html
        assert "<th>Dead letters awaiting a person</th><td>3</td>" in html and "<th>Worker up</th><td>yes</td>" in html
        age = re.search(r"<th>Last batch processed</th><td>(\d+) s ago</td>", html)
        assert age and 30 <= int(age.group(1)) <= 60
        stored.labels("adverse-event").inc(500)
        rejected.labels("pv.clinical.adverse-event.v1", "schema").inc(2)
        html = await page(client, "/health")
        rates = re.search(r'<td id="rates">([\d.]+) events/s stored,\s*([\d.]+)/s dead-lettered', html)
        assert rates, html
        assert abs(float(rates.group(1)) / float(rates.group(2)) / 250 - 1) < 0.03, "500 stored, 2 rejected meanwhile"

    async def main() -> None:
        worker = web.Application()
        worker.router.add_get("/metrics", metrics)
        async with TestServer(worker) as server:
            watched = DashboardConfig(**{**config.__dict__, "metrics_url": str(server.make_url("/metrics"))})
            async with TestClient(TestServer(build_dashboard(watched))) as client:
                await scenario(client)

    asyncio.run(main())


def test_the_ebgm_plot_reaches_ebgm_1_with_readable_axis_labels_when_every_interval_is_below_1():
    """A small store (the demo's 20 children) has every EB95 below 1; the line at 1 (no disproportionality) must
    still be on the plot and its label must not run into the axis end's (they were drawn 6 px apart)."""
    from pvwatch.dashboards.readmodel import Table
    from pvwatch.dashboards.webapp import _ebgm_plot

    table = Table(["product", "event", "ebgm", "eb05", "eb95", "signal_ebgm"],
                  [["rituximab", "Vomiting", 0.892, 0.844, 0.943, False], ["UC-MSC", "Pyrexia", 0.893, 0.845, 0.943,
                                                                           False]])
    plot = _ebgm_plot(table)
    assert plot is not None
    width = float(re.search(r'width="(\d+)"', plot)[1])
    one = float(re.search(r'<line x1="([\d.]+)" y1="0"[^>]*stroke-dasharray', plot)[1])
    intervals = [(float(a), float(b)) for a, b in re.findall(r'<line x1="([\d.]+)" y1="\d+" x2="([\d.]+)" y2="\d+" '
                                                              r'stroke="#1565c0"', plot)]
    assert len(intervals) == 2 and all(high < one < width for _, high in intervals)
    ticks = sorted(float(x) for x in re.findall(r'<text x="([\d.]+)" y="\d+" text-anchor="(?:start|middle|end)">'
                                                r'[\d.]+</text>', plot))
    assert one in ticks and all(b - a > 25 for a, b in itertools.pairwise(ticks)), ticks


def test_a_session_cookie_replayed_after_sign_out_or_past_its_lifetime_is_refused(config):
    """Sign-out revokes the session on the server, not only in the browser (a copied cookie stays dead), and a
    session ends after session_max_age_s (OWASP Session Management Cheat Sheet: idle and absolute timeouts)."""
    import time

    async def scenario(client: TestClient) -> None:
        jar = client.session.cookie_jar
        token = await login(client, "olivia")
        copied = next(c.value for c in jar if c.key == "pvwatch_session")
        assert (await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)).status == 302
        jar.update_cookies({"pvwatch_session": copied}, client.make_url("/"))
        assert (await client.get("/api/alerts")).status == 401, "revoked on the server"

        jar.clear()
        await login(client, "olivia")
        assert (await client.get("/api/alerts")).status == 200
        time.sleep(5.1)  # the signature's timestamp has whole seconds: past 4 s for sure
        assert (await client.get("/api/alerts")).status == 401, "expired"
        response = await client.get("/alerts", allow_redirects=False)
        assert response.status == 302 and response.headers["Location"].startswith("/login")

    run(DashboardConfig(**{**config.__dict__, "session_max_age_s": 4}), scenario)


def test_a_signed_out_session_stays_refused_after_the_dashboard_restarts(config):
    """With a fixed --secret-file a restarted dashboard accepts the cookies it signed before; a signed-out one must
    stay dead (the sign-out is kept next to the audit log, owner-only)."""
    copied: dict[str, str] = {}

    async def sign_out(client: TestClient) -> None:
        token = await login(client, "olivia")
        copied["cookie"] = next(c.value for c in client.session.cookie_jar if c.key == "pvwatch_session")
        await login(client, "anders")  # another session of the same dashboard, still signed in at the restart
        copied["kept"] = next(c.value for c in client.session.cookie_jar if c.key == "pvwatch_session")
        client.session.cookie_jar.update_cookies({"pvwatch_session": copied["cookie"]}, client.make_url("/"))
        await client.post("/logout", data={"csrf_token": token})

    async def after_restart(client: TestClient) -> None:
        jar = client.session.cookie_jar
        jar.update_cookies({"pvwatch_session": copied["cookie"]}, client.make_url("/"))
        assert (await client.get("/api/alerts")).status == 401, "signed out before the restart"
        jar.update_cookies({"pvwatch_session": copied["kept"]}, client.make_url("/"))
        assert (await client.get("/sql")).status == 200, "a session not signed out survives the restart"

    run(config, sign_out)
    run(config, after_restart)  # a new app: same secret, same files
    revoked = config.audit_log.with_name(config.audit_log.name + ".revoked-sessions")
    assert stat.S_IMODE(revoked.stat().st_mode) == 0o600
