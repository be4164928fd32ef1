"""The admin role manages users from the admin page (add, change role, disable/enable, reset password), each change
audited, never leaving the dashboard without an enabled admin; over real HTTP like test_dashboard_access."""

from __future__ import annotations

import hashlib
import re
from html import unescape as html_unescape
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from pvwatch.dashboards.rules_editor import packaged_rules_text
from pvwatch.dashboards.users import Role, UserStore
from pvwatch.dashboards.webapp import DashboardConfig
from pvwatch.rulebook import load_rule_parameters
from tests.integration.test_dashboard_access import CSRF, PASSWORDS, audit_entries, login, page, run

pytestmark = pytest.mark.integration


@pytest.fixture
def config(tmp_path: Path) -> DashboardConfig:
    """The users of test_dashboard_access; no snapshot is needed for the admin page (the admin sees no patient)."""
    users = UserStore(tmp_path / "users.yaml")
    users.add("olivia", Role.OFFICER, PASSWORDS["olivia"])
    users.add("anders", Role.ANALYST, PASSWORDS["anders"])
    users.add("ada", Role.ADMIN, PASSWORDS["ada"])
    return DashboardConfig(snapshot=tmp_path / "no-snapshot.duckdb", users_file=tmp_path / "users.yaml",
                           audit_log=tmp_path / "audit.jsonl", bootstrap=None)


async def admin_change(client: TestClient, token: str, **form: str) -> str:
    response = await client.post("/admin", data={**form, "csrf_token": token})
    assert response.status == 200, await response.text()
    return await response.text()


async def signs_in(client: TestClient, name: str, password: str) -> bool:
    """Try the login form in a fresh cookie jar of the same client; sign out again if it worked."""
    jar = client.session.cookie_jar
    kept = [(c.key, c.value) for c in jar]
    jar.clear()
    form_page = await (await client.get("/login")).text()
    response = await client.post("/login", data={"username": name, "password": password, "next": "/",
                                                 "csrf_token": CSRF.search(form_page).group(1)},
                                 allow_redirects=False)
    jar.clear()
    jar.update_cookies(dict(kept), client.make_url("/"))
    return response.status == 302


def test_the_admin_changes_a_role_disables_enables_and_resets_a_password_each_audited(config):
    """Olivia's open session (another browser) ends when she is disabled and again when her password is reset:
    a copied session cookie is refused; a role change applies to the next request."""

    async def scenario(client: TestClient) -> None:
        jar = client.session.cookie_jar
        await login(client, "olivia")
        olivia_cookie = next(c.value for c in jar if c.key == "pvwatch_session")
        jar.clear()
        token = await login(client, "ada")
        admin_cookie = next(c.value for c in jar if c.key == "pvwatch_session")

        def as_olivia() -> None:
            jar.update_cookies({"pvwatch_session": olivia_cookie}, client.make_url("/"))

        def as_ada() -> None:
            jar.update_cookies({"pvwatch_session": admin_cookie}, client.make_url("/"))

        assert "Users and configuration" in await page(client, "/admin")
        html = await admin_change(client, token, op="role", username="olivia", role="analyst")
        assert "User olivia now has role analyst." in html
        as_olivia()
        assert (await client.get("/sql")).status == 200, "the new role applies to her open session at once"
        as_ada()
        await admin_change(client, token, op="role", username="olivia", role="officer")

        html = await admin_change(client, token, op="disable", username="olivia")
        assert "User olivia is disabled" in html
        assert '<tr data-user="olivia"><td>olivia</td><td>officer</td>\n<td>disabled</td>' in html
        as_olivia()
        assert (await client.get("/api/alerts")).status == 401, "her session ended"
        assert not await signs_in(client, "olivia", PASSWORDS["olivia"]), "a disabled user cannot sign in"
        as_ada()
        html = await admin_change(client, token, op="enable", username="olivia")
        assert "User olivia is enabled" in html
        as_olivia()
        assert (await client.get("/api/alerts")).status == 401, "the session ended at the disable stays ended"
        assert await signs_in(client, "olivia", PASSWORDS["olivia"])

        as_ada()
        await login(client, "olivia")
        olivia_cookie = next(c.value for c in jar if c.key == "pvwatch_session")
        as_ada()
        short = await admin_change(client, token, op="password", username="olivia", password="short")
        assert "Not saved: the password must have at least 12 characters" in short
        html = await admin_change(client, token, op="password", username="olivia", password="olivia-new-pass-1")
        assert "Password of olivia reset; their sessions have ended." in html
        as_olivia()
        assert (await client.get("/api/alerts")).status == 401, "whoever held the old session is signed out"
        assert not await signs_in(client, "olivia", PASSWORDS["olivia"])
        assert await signs_in(client, "olivia", "olivia-new-pass-1")
        as_ada()
        exists = await admin_change(client, token, op="add", username="olivia", role="admin",
                                    password="olivia-takeover-1")
        assert "Not saved: user olivia exists" in exists, "adding never silently replaces a user"

    run(config, scenario)
    users = UserStore(config.users_file).users()
    assert users["olivia"].role is Role.OFFICER and not users["olivia"].disabled
    changes = [(e["actor"], e["action"], {k: v for k, v in e["detail"].items() if k != "client"})
               for e in audit_entries(config) if e["action"].startswith("user-")]
    assert changes == [
        ("ada", "user-role-changed", {"user": "olivia", "role": "analyst", "previous_role": "officer"}),
        ("ada", "user-role-changed", {"user": "olivia", "role": "officer", "previous_role": "analyst"}),
        ("ada", "user-disabled", {"user": "olivia"}),
        ("ada", "user-enabled", {"user": "olivia"}),
        ("ada", "user-password-reset", {"user": "olivia"}),
    ]
    assert "olivia-new-pass-1" not in config.audit_log.read_text() + config.users_file.read_text()


def test_the_last_enabled_admin_cannot_be_disabled_or_demoted(config):
    async def scenario(client: TestClient) -> None:
        token = await login(client, "ada")
        for form in ({"op": "disable", "username": "ada"}, {"op": "role", "username": "ada", "role": "officer"}):
            html = await admin_change(client, token, **form)
            assert "Not saved: ada is the last enabled admin: make another user admin first" in html, form
        await admin_change(client, token, op="add", username="alma", role="admin", password="alma-password-12")
        await admin_change(client, token, op="disable", username="alma")
        html = await admin_change(client, token, op="disable", username="ada")
        assert "Not saved: ada is the last enabled admin" in html, "a disabled admin does not count"
        await admin_change(client, token, op="enable", username="alma")
        html = await admin_change(client, token, op="role", username="ada", role="officer")
        assert "User ada now has role officer." in html, "with another enabled admin, ada may step down"
        assert (await client.get("/admin")).status == 403, "and her next request is an officer's"

    run(config, scenario)
    users = UserStore(config.users_file).users()
    assert (users["ada"].role, users["alma"].role, users["alma"].disabled) == (Role.OFFICER, Role.ADMIN, False)


def test_no_other_role_can_change_a_user(config):
    async def scenario(client: TestClient) -> None:
        for name in ("olivia", "anders"):
            token = await login(client, name)
            for form in ({"op": "role", "username": name, "role": "admin"}, {"op": "disable", "username": "ada"},
                         {"op": "password", "username": "ada", "password": "taken-over-12345"}):
                response = await client.post("/admin", data={**form, "csrf_token": token})
                assert response.status == 403, (name, form)
            client.session.cookie_jar.clear()

    run(config, scenario)
    users = UserStore(config.users_file).users()
    assert users["olivia"].role is Role.OFFICER and users["anders"].role is Role.ANALYST and not users["ada"].disabled
    assert UserStore(config.users_file).authenticate("ada", PASSWORDS["ada"]) is not None


# --- the rules file (PVWATCH_RULES_FILE) -----------------------------------------------------------------------

RULES_TEXT = re.compile(r'<textarea name="rules" id="rules-text"[^>]*>(.*?)</textarea>', re.S)
SHOWN_SHA = re.compile(r'<input type="hidden" name="sha256" value="([0-9a-f]{64})">')


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """The officer's own copy of the packaged rules, as PVWATCH_RULES_FILE would name it."""
    path = tmp_path / "etc" / "rules.yaml"
    path.parent.mkdir()
    path.write_text(packaged_rules_text())
    return path


def test_the_admin_edits_the_rules_file_checked_by_the_workers_loader_kept_and_audited(config, rules_file):
    """An edit the worker's loader refuses is shown with its error and changes nothing; an accepted one replaces the
    file whole, keeps the previous version beside it and is audited with both SHA-256s; an edit of a version that
    changed meanwhile is refused."""
    config = DashboardConfig(**{**config.__dict__, "rules_file": rules_file})
    original = rules_file.read_text()
    assert "  alert_from_grade: 3 " in original, "the packaged ctcae-lab rule alerts from CTCAE grade 3"
    edited = original.replace("  alert_from_grade: 3 ", "  alert_from_grade: 4 ").replace(
        "ctcae-lab:\n  version: 1", "ctcae-lab:\n  version: 2")
    seen: dict[str, str] = {}

    async def scenario(client: TestClient) -> None:
        token = await login(client, "ada")
        html = await page(client, "/admin/rules")
        assert str(rules_file) in html and "The worker applies the rules at its next start" in html
        assert "part of every alert id" in html and "<tr><td>ctcae-lab</td><td>1</td></tr>" in html
        assert html_unescape(RULES_TEXT.search(html).group(1)) == original
        shown = SHOWN_SHA.search(html).group(1)
        assert shown == hashlib.sha256(original.encode()).hexdigest()

        async def submit(text: str, sha: str = shown) -> str:
            response = await client.post("/admin/rules", data={"rules": text, "sha256": sha, "csrf_token": token})
            assert response.status == 200
            return html_unescape(await response.text())

        typo = await submit(original.replace("alert_from_grade: 3", "alert_from_grad: 3"))
        assert f"Not saved: {rules_file}: ctcae-lab: unknown parameter 'alert_from_grad'" in typo
        assert "alert_from_grad: 3" in typo, "the rejected edit stays in the form to be corrected"
        assert "Not saved" in await submit(original.replace("alert_from_grade: 3", "alert_from_grade: three"))
        assert "is not valid YAML" in await submit("ctcae-lab: [unclosed\n")
        assert rules_file.read_text() == original and sorted(p.name for p in rules_file.parent.iterdir()) == \
            ["rules.yaml"], "nothing saved, no backup, no half-written file"

        saved = await submit(edited.replace("\n", "\r\n"))  # browsers send a textarea's lines with CRLF
        assert f"Saved {rules_file}; the previous version is kept as {rules_file}." in saved
        assert "The worker applies it at its next start." in saved
        assert "<tr><td>ctcae-lab</td><td>2</td></tr>" in saved
        seen["stale"] = await submit(edited.replace("alert_from_grade: 4", "alert_from_grade: 5"), sha=shown)

    run(config, scenario)
    assert rules_file.read_text() == edited
    assert "changed since you opened it" in seen["stale"], "the edit was of the version before the save"
    parameters = load_rule_parameters(rules_file)  # what the worker loads at its next start
    assert (parameters.ctcae_lab.alert_from_grade, parameters.versions["ctcae-lab"]) == (4, 2)
    backups = [p for p in rules_file.parent.iterdir() if p.name.startswith("rules.yaml.")]
    assert len(backups) == 1 and backups[0].read_text() == original
    assert re.fullmatch(r"rules\.yaml\.\d{8}T\d{6}\.\d{6}Z", backups[0].name)
    entries = [e for e in audit_entries(config) if e["action"].startswith("rules-file-")]
    assert [(e["actor"], e["action"]) for e in entries] == [("ada", "rules-file-rejected")] * 3 + [
        ("ada", "rules-file-saved"), ("ada", "rules-file-rejected")]
    saved_entry = entries[3]["detail"]
    assert (saved_entry["sha256_before"], saved_entry["sha256_after"]) == (
        hashlib.sha256(original.encode()).hexdigest(), hashlib.sha256(edited.encode()).hexdigest())
    assert saved_entry["backup"] == str(backups[0]) and saved_entry["versions_changed"] == {"ctcae-lab": [1, 2]}
    assert saved_entry["path"] == str(rules_file) and entries[3]["at"]


def test_without_pvwatch_rules_file_the_packaged_rules_are_shown_read_only_with_how_to_set_it(config):
    packaged = packaged_rules_text()

    async def scenario(client: TestClient) -> None:
        token = await login(client, "ada")
        html = await page(client, "/admin/rules")
        assert "the packaged <code>pvwatch/rules.yaml</code>" in html and "set <code>PVWATCH_RULES_FILE</code>" in html
        assert "<textarea" not in html and html_unescape(html).count(packaged) == 1
        refused = await client.post("/admin/rules", data={"rules": "serious-ae:\n  version: 2\n",
                                                          "sha256": hashlib.sha256(packaged.encode()).hexdigest(),
                                                          "csrf_token": token})
        assert "Not saved: the rules in force are the packaged file" in await refused.text()

    run(config, scenario)
    assert packaged_rules_text() == packaged


def test_only_the_admin_sees_or_edits_the_rules_file(config, rules_file):
    config = DashboardConfig(**{**config.__dict__, "rules_file": rules_file})
    original = rules_file.read_text()

    async def scenario(client: TestClient) -> None:
        for name in ("olivia", "anders"):
            token = await login(client, name)
            assert (await client.get("/admin/rules")).status == 403, name
            response = await client.post("/admin/rules", data={
                "rules": "serious-ae:\n  enabled: false\n", "csrf_token": token,
                "sha256": hashlib.sha256(original.encode()).hexdigest()})
            assert response.status == 403, name
            client.session.cookie_jar.clear()

    run(config, scenario)
    assert rules_file.read_text() == original


def test_pvwatch_dashboard_edits_the_rules_file_the_worker_is_given_in_pvwatch_rules_file(monkeypatch, tmp_path,
                                                                                       rules_file):
    """The dashboard reads PVWATCH_RULES_FILE (and PVWATCH_RSI_FILE) as the worker does (pvwatch.config.Settings)."""
    from click.testing import CliRunner

    import pvwatch.dashboards.serve
    from pvwatch.cli import cli
    from pvwatch.config import Settings

    started: list[DashboardConfig] = []
    monkeypatch.setattr(pvwatch.dashboards.serve, "serve", lambda config, *args: started.append(config))
    environment = {"PVWATCH_RULES_FILE": str(rules_file)}
    result = CliRunner().invoke(cli, ["dashboard", "--snapshot", str(tmp_path / "s.duckdb"), "--users",
                                      str(tmp_path / "users.yaml"), "--read-only"], env=environment)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("PVWATCH_RULES_FILE", str(rules_file))
    assert started[0].rules_file == Settings().rules_file == rules_file
