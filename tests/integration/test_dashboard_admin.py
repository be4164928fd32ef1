"""The admin role manages users from the admin page (add, change role, disable/enable, reset password), each change
audited, never leaving the dashboard without an enabled admin; over real HTTP like test_dashboard_access."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from pvwatch.dashboards.users import Role, UserStore
from pvwatch.dashboards.webapp import DashboardConfig
from tests.integration.test_dashboard_access import PASSWORDS, audit_entries, login, page, run

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
    from tests.integration.test_dashboard_access import CSRF

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
