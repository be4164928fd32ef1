"""Running the dashboard as a process (`pvwatch dashboard`), optionally with TLS."""

from __future__ import annotations

import secrets
import ssl
from pathlib import Path

from aiohttp import web

from pvwatch.dashboards.users import Role, UserStore
from pvwatch.dashboards.webapp import DashboardConfig, build_dashboard
from pvwatch.errors import ConfigError


def read_secret(path: Path | None) -> bytes:
    """The cookie-signing secret from a file (sessions survive restarts), or a fresh random one."""
    if path is None:
        return secrets.token_bytes(32)
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ConfigError(f"{path}: the session secret must be at least 32 bytes (e.g. `openssl rand -hex 32`)")
    return secret


def serve(config: DashboardConfig, host: str, port: int, tls_cert: Path | None = None,
          tls_key: Path | None = None) -> None:
    if not UserStore(config.users_file).users():
        raise ConfigError(f"{config.users_file} has no users: add one with "
                          f"`pvwatch user add NAME --role officer --users {config.users_file}`")
    context = None
    if tls_cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)
    scheme = "https" if context else "http"
    app = build_dashboard(config)  # a bad setting (e.g. --trusted-proxy) fails before the URL is printed
    print(f"dashboard {scheme}://{host}:{port}/ (snapshot {config.snapshot}; audit log {config.audit_log})",
          flush=True)
    web.run_app(app, host=host, port=port, ssl_context=context, print=None, access_log=None)


def write_demo_users(path: Path) -> dict[Role, tuple[str, str]]:
    """Demo accounts with fresh random passwords: {role: (name, password)}; printed by the demo, never reused."""
    store = UserStore(path)
    made: dict[Role, tuple[str, str]] = {}
    for role, name in ((Role.OFFICER, "demo-officer"), (Role.ANALYST, "demo-analyst"), (Role.ADMIN, "demo-admin")):
        password = secrets.token_urlsafe(12)
        store.add(name, role, password)
        made[role] = (name, password)
    return made
