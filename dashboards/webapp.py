"""The safety officer's web dashboard (aiohttp): alert queue, withdrawn alerts, cases, patient timelines, expedited
reports, signals, pipeline health and the analyst's SQL page, behind login, roles, CSRF tokens and an audit log.

It reads only the published snapshots (pvwatch.store.snapshot): the safety officer's pages the full one, everything an
analyst sees (pages and the SQL page) the analyst snapshot, which has no narrative or other identifying free text.
It writes only two things: its own audit log and
alert-action events, which it publishes to Kafka like any producer, so the worker stores them in the event log.
Everything is served from this package (templates and static files): no CDN, no build step.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import secrets
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypedDict

import duckdb
import jinja2
from aiohttp import web
from pydantic import ValidationError

from pvwatch.dashboards.audit import AuditLog
from pvwatch.dashboards.readmodel import (
    AlertFilters,
    QueryRejected,
    ReadModel,
    Snapshot,
    SnapshotUnavailable,
    run_readonly_query,
)
from pvwatch.dashboards.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    LoginRateLimiter,
    Session,
    SessionCodec,
    csrf_matches,
)
from pvwatch.dashboards.timeline import lane_of, render_timeline, reported_by_parent
from pvwatch.dashboards.users import Permission, User, UserStore
from pvwatch.domain.expectedness import ReferenceSafetyInformation
from pvwatch.events.alert_action import AlertAction, AlertActionRecorded
from pvwatch.events.codec import describe_validation_error
from pvwatch.rulebook import load_rsi
from pvwatch.store.snapshot import analyst_snapshot_path

log = logging.getLogger("pvwatch.dashboard")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = ("/login", "/static/")
ACTION_SOURCE = "pvwatch-dashboard"


@dataclass(frozen=True)
class DashboardConfig:
    #: the full snapshot (narratives included): only users who may view narratives read it
    snapshot: Path
    users_file: Path
    audit_log: Path
    #: Kafka bootstrap servers for alert-action events; None disables actions (read-only dashboard).
    bootstrap: str | None = None
    metrics_url: str | None = None
    grafana_url: str | None = None
    #: Signs the session cookies; random per start unless given (then sessions survive a restart).
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    secure_cookies: bool = False
    session_max_age_s: int = 8 * 3600
    sql_max_rows: int = 1000
    sql_timeout_s: float = 10.0
    login_failures_per_minute: int = 5
    poll_interval_s: float = 2.0
    #: reference safety information for expectedness on the case page; default: the packaged rsi.yaml (as the rules)
    rsi_file: Path | None = None
    #: the analyst snapshot; default: published next to `snapshot` (pvwatch.store.snapshot.analyst_snapshot_path)
    analyst_snapshot: Path | None = None
    #: the rules file the worker runs (PVWATCH_RULES_FILE), edited on /admin/rules; None: the packaged one (read-only)
    rules_file: Path | None = None
    #: reverse proxies (addresses or networks) whose X-Forwarded-For names the client; from anyone else it is ignored
    trusted_proxies: tuple[str, ...] = ()

    @property
    def analyst_snapshot_path(self) -> Path:
        return self.analyst_snapshot or analyst_snapshot_path(self.snapshot)


#: counters the health page turns into per-second rates
RATE_COUNTERS = ("pv_events_ingested_total", "pv_events_rejected_total", "pv_alerts_raised_total")


@dataclass
class CounterRates:
    """Per-second rates of the worker's counters between two scrapes by the health page (the page reloads itself
    every 10 s). A counter that went down (the worker restarted) has no rate until the next look."""

    previous: tuple[float, dict[str, float]] | None = None
    min_interval_s: float = 2.0

    def observe(self, at: float, counters: dict[str, float]) -> tuple[dict[str, float], float] | None:
        """Rates since the previous scrape and over how many seconds, or None on the first look."""
        before = self.previous
        if before is None or at - before[0] >= self.min_interval_s:
            self.previous = (at, counters)
        if before is None or at <= before[0]:
            return None
        seconds = at - before[0]
        rates = {name: (counters.get(name, 0.0) - before[1].get(name, 0.0)) / seconds for name in RATE_COUNTERS}
        return ({name: rate for name, rate in rates.items() if rate >= 0}, seconds)


class ActionPublisher:
    """Publishes alert-action events with kafka-python, connecting on first use, waiting for the broker's ack."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._publisher: Any = None

    def publish(self, event: AlertActionRecorded, timeout_s: float = 10.0) -> None:
        from pvwatch.streams.producer import EventPublisher

        if self._publisher is None:
            self._publisher = EventPublisher(self.bootstrap, linger_ms=0, client_id="pvwatch-dashboard")
        self._publisher.publish(event).get(timeout=timeout_s)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()


# --- keys into the aiohttp app and request --------------------------------------------------------------------

CONFIG = web.AppKey("config", DashboardConfig)
USERS = web.AppKey("users", UserStore)
AUDIT = web.AppKey("audit", AuditLog)
SESSIONS = web.AppKey("sessions", SessionCodec)
LIMITER = web.AppKey("limiter", LoginRateLimiter)
READ = web.AppKey("read", ReadModel)
ANALYST_READ = web.AppKey("analyst_read", ReadModel)
RSI = web.AppKey("rsi", ReferenceSafetyInformation)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
PUBLISHER = web.AppKey("publisher", ActionPublisher)
#: alert-action events this process published, by event id, until the snapshot holds them: {event_id: alert_id}
PENDING = web.AppKey("pending", dict)
RATES = web.AppKey("rates", CounterRates)
#: the children the alert queue API last listed to each session (audited again only when that set changes)
LISTED = web.AppKey("listed", dict)
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)
SESSION = web.RequestKey("session", Session)
USER = web.RequestKey("user", User)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, which must be one object: anything else is a 400 that says so, never a 500."""
    try:
        body = await request.json()
    except ValueError:  # json.JSONDecodeError and a body that is not UTF-8
        raise web.HTTPBadRequest(text="the body is not valid JSON; send one JSON object") from None
    if not isinstance(body, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(body), "a number")
        raise web.HTTPBadRequest(text=f"the body is {kind}; send one JSON object")
    return body


def current_user(request: web.Request) -> User:
    user = request.get(USER)
    if not isinstance(user, User):
        raise web.HTTPUnauthorized()
    return user


def requires(permission: Permission) -> Callable[[Handler], Handler]:
    """403 for a signed-in user whose role lacks `permission` (anonymous users never get this far)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            user = current_user(request)
            if not user.may(permission):
                audit(request, "forbidden", path=request.path, needed=permission.value)
                if request.path.startswith("/api/"):
                    raise web.HTTPForbidden(text=f"the {user.role.value} role may not {permission.value}")
                return render(request, "error.html", status=403,
                              message=f"Your role ({user.role.value}) may not {permission.value.replace('-', ' ')}.")
            return await handler(request)

        return guarded

    return decorate


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest address in its
    X-Forwarded-For that is not a trusted proxy (read from the right: a client can write any address on the left,
    each proxy appends the one it saw; OWASP Authentication Cheat Sheet on throttling behind proxies)."""
    peer = request.remote or "unknown"
    trusted = request.app[TRUSTED_PROXIES]
    if not trusted or not _is_in(peer, trusted):
        return peer
    hops = [hop.strip() for header in request.headers.getall("X-Forwarded-For", []) for hop in header.split(",")]
    for hop in reversed(hops):
        if not _is_in(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # the proxy wrote something that is not an address: count it as the proxy's
    return peer


def _is_in(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def audit(request: web.Request, action: str, /, *, patient: str | None = None, **detail: Any) -> None:
    user = request.get(USER)
    actor = user.name if isinstance(user, User) else "anonymous"
    request.app[AUDIT].append(actor, action, patient=patient, client=client_address(request), **detail)


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    session = request.get(SESSION)
    user = request.get(USER)
    config = request.app[CONFIG]
    page = request.app[TEMPLATES].get_template(template).render(
        user=user, csrf_token=session.csrf_token if isinstance(session, Session) else "",
        Permission=Permission, grafana_url=config.grafana_url, request_path=request.path, **context)
    return web.Response(text=page, content_type="text/html", status=status)


async def in_snapshot(request: web.Request, work: Callable[[duckdb.DuckDBPyConnection, ReadModel], Any]) -> Any:
    """Run `work` on a fresh read-only connection to the snapshot the user may see, off the event loop: the full
    one for those who may read narratives, the analyst snapshot (free text removed) for everyone else."""
    read = request.app[READ] if current_user(request).may(Permission.VIEW_NARRATIVES) else request.app[ANALYST_READ]

    def run() -> Any:
        with read.connect() as con:
            return work(con, read)

    return await asyncio.to_thread(run)


# --- middlewares ---------------------------------------------------------------------------------------------


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page and API needs a signed-in user: anonymous API calls get 401, pages redirect to the login."""
    if request.path == "/login" or request.path.startswith("/static/"):
        return await handler(request)
    if request.path == "/favicon.ico":
        raise web.HTTPNotFound()
    session = request.app[SESSIONS].decode(request.cookies.get(SESSION_COOKIE))
    user = request.app[USERS].get(session.user) if session and session.user else None
    if session is None or user is None or not user.accepts_session(session.signed_in_at):  # disabled, or reset
        if request.path.startswith("/api/"):
            raise web.HTTPUnauthorized(text="sign in first", headers={"WWW-Authenticate": 'Cookie realm="pvwatch"'})
        target = request.path_qs if request.method == "GET" else "/"
        raise web.HTTPFound("/login?" + urllib.parse.urlencode({"next": target}))
    request[SESSION] = session
    request[USER] = user
    return await handler(request)


@web.middleware
async def csrf_protection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every state-changing request must carry the session's CSRF token (the login form: the login cookie's)."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.path.startswith("/static/"):
        return await handler(request)
    if request.path == "/login":
        session = request.app[SESSIONS].decode(request.cookies.get(LOGIN_COOKIE))
    else:
        session = request.get(SESSION)
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = str((await request.post()).get("csrf_token", "")) or None
    if not isinstance(session, Session) or not csrf_matches(session.csrf_token, given):
        request.app[AUDIT].append(session.user or "anonymous" if isinstance(session, Session) else "anonymous",
                                  "csrf-rejected", path=request.path, client=client_address(request))
        raise web.HTTPForbidden(text="missing or invalid CSRF token; reload the page and try again")
    return await handler(request)


# --- login -------------------------------------------------------------------------------------------------


def _set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    config = request.app[CONFIG]
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Strict", path="/",
                        secure=config.secure_cookies)


def _safe_next(target: str | None) -> str:
    """Only a local path: never redirect a user to another site after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_page(request: web.Request) -> web.StreamResponse:
    # Keep the token of a login form already open (another tab, or the browser's favicon request that was
    # redirected here) so that its form still posts.
    pending = request.app[SESSIONS].decode(request.cookies.get(LOGIN_COOKIE)) or Session.new(None)
    request[SESSION] = pending
    response = render(request, "login.html", next=_safe_next(request.query.get("next")), error=None)
    _set_cookie(response, request, LOGIN_COOKIE, request.app[SESSIONS].encode(pending), 3600)
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    address = client_address(request)
    limiter = request.app[LIMITER]
    wait = limiter.retry_after_s(name, address)
    if wait is not None:
        request.app[AUDIT].append(name or "anonymous", "login-throttled", client=address)
        raise web.HTTPTooManyRequests(text=f"too many failed sign-ins; try again in {wait:.0f} s",
                                      headers={"Retry-After": str(int(wait) + 1)})
    user = await asyncio.to_thread(request.app[USERS].authenticate, name, password)
    if user is None:
        limiter.record_failure(name, address)
        request.app[AUDIT].append(name or "anonymous", "login-failed", client=address)
        request[SESSION] = request.app[SESSIONS].decode(request.cookies.get(LOGIN_COOKIE))  # type: ignore[misc]
        return render(request, "login.html", status=401, next=target, error="Unknown user or wrong password.")
    limiter.reset(name, address)
    session = Session.new(user.name)
    request.app[AUDIT].append(user.name, "login", client=address, role=user.role.value)
    response = web.HTTPFound(target)
    _set_cookie(response, request, SESSION_COOKIE, request.app[SESSIONS].encode(session),
                request.app[CONFIG].session_max_age_s)
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    request.app[SESSIONS].revoke(session)
    request.app[LISTED].pop(session.session_id, None)
    audit(request, "logout")
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    raise web.HTTPFound("/alerts" if user.may(Permission.VIEW_ALERTS) else "/admin")


# --- alerts ------------------------------------------------------------------------------------------------


def _filters(request: web.Request) -> AlertFilters:
    query = request.query
    return AlertFilters(**{name: (query.get(name) or None) for name in AlertFilters.__dataclass_fields__})


def _snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    return {"taken_at": snapshot.taken_at.isoformat() if snapshot.taken_at else None,
            "age_s": snapshot.age_s, "event_count": snapshot.event_count}


def _patients_of(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({row["patient"] for row in rows if row.get("patient")})


def _audit_listing(request: web.Request, action: str, patients: list[str], **detail: Any) -> None:
    """The queue lists children: audit each page load, and an API answer only when the set of children it lists
    to this session differs from the last one audited for it (not every 2 s poll; docs/analysts.md)."""
    listed = request.app[LISTED]
    session_id = request[SESSION].session_id
    if action != "view-alert-queue" and listed.get(session_id) == patients:
        return
    if len(listed) > 10_000:  # sessions that ended without a sign-out: forgetting them only audits more
        listed.clear()
    listed[session_id] = patients
    audit(request, action, patients=patients, **detail)


@requires(Permission.VIEW_ALERTS)
async def alerts_page(request: web.Request) -> web.StreamResponse:
    try:
        choices, snapshot, patients = await in_snapshot(request, lambda con, read: (
            read.filter_choices(con), read.snapshot(con), _patients_of(read.alerts(con, _filters(request)))))
    except SnapshotUnavailable as error:
        return render(request, "error.html", status=503, message=str(error))
    _audit_listing(request, "view-alert-queue", patients, filters=_filters(request).active())
    return render(request, "alerts.html", choices=choices, filters=_filters(request).active(), snapshot=snapshot,
                  poll_ms=int(request.app[CONFIG].poll_interval_s * 1000),
                  can_act=current_user(request).may(Permission.ACT_ON_ALERTS) and request.app[CONFIG].bootstrap)


@requires(Permission.VIEW_ALERTS)
async def alerts_api(request: web.Request) -> web.StreamResponse:
    filters = _filters(request)
    pending = request.app[PENDING]

    def work(con: duckdb.DuckDBPyConnection, read: ReadModel) -> dict[str, Any]:
        landed = read.actions_landed(con, list(pending))
        for event_id in landed:
            pending.pop(event_id, None)
        return {"alerts": read.alerts(con, filters), "snapshot": _snapshot_json(read.snapshot(con)),
                "withdrawn_count": read.withdrawn_count(con)}

    try:
        body = await in_snapshot(request, work)
    except SnapshotUnavailable as error:
        return web.json_response({"error": str(error), "alerts": []}, status=503)
    _audit_listing(request, "list-alerts", _patients_of(body["alerts"]), filters=filters.active())
    waiting = {alert_id: action for alert_id, action in pending.values()}
    for alert in body["alerts"]:
        alert["pending_action"] = waiting.get(alert["alert_id"])
    return web.json_response(body)


@requires(Permission.ACT_ON_ALERTS)
async def alert_action(request: web.Request) -> web.StreamResponse:
    """Acknowledge, assign, close (with a reason) or reopen: published as an alert-action event."""
    config = request.app[CONFIG]
    user = current_user(request)
    wants_json = request.content_type == "application/json"
    data = await json_object(request) if wants_json else {k: str(v) for k, v in (await request.post()).items()}
    alert_id = request.match_info["alert_id"]
    if config.bootstrap is None:
        raise web.HTTPServiceUnavailable(text="actions are disabled: the dashboard has no --bootstrap-servers")
    try:
        alert = await in_snapshot(request, lambda con, read: read.alert(con, alert_id))
    except SnapshotUnavailable as error:
        raise web.HTTPServiceUnavailable(text=str(error)) from None
    if alert is None:
        return await _refuse_action_on_missing(request, alert_id, wants_json)
    now = datetime.now(UTC)
    try:
        event = AlertActionRecorded.model_validate({
            "event_id": uuid.uuid4(), "occurred_at": now, "recorded_at": now, "source": ACTION_SOURCE,
            "patient": alert["patient"], "alert_id": alert_id, "action": AlertAction(str(data.get("action"))),
            "actor": user.name, "assignee": data.get("assignee") or None, "reason": data.get("reason") or None})
    except ValidationError as error:
        raise web.HTTPBadRequest(text=f"invalid action: {describe_validation_error(error)}") from None
    except ValueError:
        raise web.HTTPBadRequest(text=f"invalid action {data.get('action')!r}: expected one of "
                                      f"{[a.value for a in AlertAction]}") from None
    try:
        await asyncio.to_thread(request.app[PUBLISHER].publish, event)
    except Exception as error:  # kafka-python raises many types; the officer must learn the action did not go
        log.warning("alert action not published: %s", type(error).__name__)
        raise web.HTTPServiceUnavailable(text="the action could not be sent to Kafka; it was not recorded") from None
    request.app[PENDING][str(event.event_id)] = (alert_id, event.action.value)
    audit(request, "alert-action", patient=alert["patient"], alert_id=alert_id, action=event.action.value,
          assignee=event.assignee, reason=event.reason, event_id=str(event.event_id))
    if wants_json:
        return web.json_response({"event_id": str(event.event_id), "status": "sent"}, status=202)
    raise web.HTTPFound(str(data.get("back") or "/alerts") if str(data.get("back", "")).startswith("/") else "/alerts")


async def _refuse_action_on_missing(request: web.Request, alert_id: str, wants_json: bool) -> web.StreamResponse:
    """An action on an alert not in the queue: 409 saying when and why it was withdrawn if a later event made it
    untrue (docs/rules.md, "Late and out-of-order events"), else 404."""
    try:
        found = await in_snapshot(request, lambda con, read: read.withdrawn_alerts(con, alert_id=alert_id, limit=1))
    except SnapshotUnavailable as error:
        raise web.HTTPServiceUnavailable(text=str(error)) from None
    if not found:
        if wants_json:
            raise web.HTTPNotFound(text=f"no alert {alert_id} in the snapshot")
        return render(request, "error.html", status=404, message=f"No alert {alert_id} in the snapshot.")
    withdrawn = found[0]
    event = withdrawn["withdrawn_by_event_id"]  # None: pvwatch replay removed it (migration 009)
    cause = f" (made untrue by {withdrawn['withdrawn_by_event_type'] or 'event'} {event})" if event else ""
    message = (f"Alert {alert_id} ({withdrawn['rule_id']}: {withdrawn['summary']}) was withdrawn at "
               f"{withdrawn['withdrawn_at']}: {withdrawn['reason']}{cause}. It no longer stands, so it cannot be "
               "acknowledged, assigned, closed or reopened; see /alerts/withdrawn.")
    audit(request, "alert-action-refused", patient=withdrawn["patient"], alert_id=alert_id, why="withdrawn")
    if wants_json:
        raise web.HTTPConflict(text=message)
    return render(request, "error.html", status=409, message=message,
                  link=("/alerts/withdrawn?patient=" + urllib.parse.quote(withdrawn["patient"]), "Withdrawn alerts"))


class WithdrawnFilters(TypedDict):
    """The withdrawn view's filters (query parameters of /alerts/withdrawn and its API)."""

    rule: str | None
    patient: str | None
    case_id: str | None


def _withdrawn_filters(request: web.Request) -> WithdrawnFilters:
    query = request.query
    return WithdrawnFilters(rule=query.get("rule") or None, patient=query.get("patient") or None,
                            case_id=query.get("case_id") or None)


@requires(Permission.VIEW_ALERTS)
async def withdrawn_page(request: web.Request) -> web.StreamResponse:
    """Alerts a later event made untrue, newest first: an officer who acted on one sees where it went and why."""
    filters = _withdrawn_filters(request)
    try:
        found = await in_snapshot(request, lambda con, read: {"withdrawn": read.withdrawn_alerts(con, **filters),
                                                              "snapshot": read.snapshot(con)})
    except SnapshotUnavailable as error:
        return render(request, "error.html", status=503, message=str(error))
    chosen = {k: v for k, v in filters.items() if v}
    audit(request, "view-withdrawn-alerts", patients=_patients_of(found["withdrawn"] or []), filters=chosen)
    return render(request, "withdrawn.html", filters=chosen, **found)


@requires(Permission.VIEW_ALERTS)
async def withdrawn_api(request: web.Request) -> web.StreamResponse:
    filters = _withdrawn_filters(request)

    def work(con: duckdb.DuckDBPyConnection, read: ReadModel) -> dict[str, Any]:
        return {"withdrawn": read.withdrawn_alerts(con, **filters), "snapshot": _snapshot_json(read.snapshot(con))}

    try:
        body = await in_snapshot(request, work)
    except SnapshotUnavailable as error:
        return web.json_response({"error": str(error), "withdrawn": []}, status=503)
    if body["withdrawn"] is None:
        body.update(withdrawn=[], error="this store has no alert_withdrawals table (migration 008) yet")
    audit(request, "list-withdrawn-alerts", patients=_patients_of(body["withdrawn"]),
          filters={k: v for k, v in filters.items() if v})
    return web.json_response(body)


# --- cases and patients ------------------------------------------------------------------------------------


def _expectedness(rsi: ReferenceSafetyInformation, versions: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Per version, each suspect product's expectedness against the RSI version in force at the case's day 0 (the
    earliest awareness date: EU CT-3 7.2.3.2, ICH E2F), as the rules judge it (pvwatch.domain.expectedness)."""
    day0 = min(date.fromisoformat(v["payload"]["awareness_date"]) for v in versions)
    found = []
    for version in versions:
        payload = version["payload"]
        found.append([{"product": product["name"], **asdict(rsi.assess(product["name"], payload["term"],
                                                                    payload.get("meddra_pt_code"), day0))}
                      for product in payload.get("products") or [] if product.get("role") == "suspect"])
    return found


def _actions_labelled(history: list[dict[str, Any]], alerts: list[dict[str, Any]],
                      withdrawn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The case's alert actions, each with the alert it was taken on (rule, severity) and, when that alert was later
    withdrawn, `withdrawn_at`: an action belongs to a withdrawn alert when a withdrawal of its id came after it (an
    alert raised again after its withdrawal keeps the same id, and the actions after it are on the standing one),
    as ReadModel.withdrawn_alerts derives the officers' status when it went. An action that landed after the last
    withdrawal while no life of its alert was raised before it (sent from a snapshot that still showed the alert
    standing: the dashboard refuses actions against its snapshot) is on the withdrawn alert, never a standing one;
    likewise one that landed between a withdrawal and the raise of a later withdrawn life (its withdrawal message's
    raised_at), as ReadModel.withdrawn_alerts and alert_status (migration 010) count it."""
    rules = {a["alert_id"]: (a["rule_id"], a["severity"]) for a in (*withdrawn, *alerts)}
    standing_since = {a["alert_id"]: datetime.fromisoformat(a["raised_at"]) for a in alerts}
    labelled = []
    for action in history:
        acted = datetime.fromisoformat(action["acted_at"])
        # the alert's lives in order, (ended, withdrawn_at, raised): each withdrawn one, then the standing one
        lives: list[tuple[datetime | None, str | None, datetime | None]] = sorted(
            ((datetime.fromisoformat(w["withdrawn_at"]), w["withdrawn_at"],
              datetime.fromisoformat(w["raised_at"]) if w.get("raised_at") else None)
             for w in withdrawn if w["alert_id"] == action["alert_id"]), key=lambda life: life[0] or acted)
        if action["alert_id"] in standing_since:
            lives.append((None, None, standing_since[action["alert_id"]]))
        # the first life that had not ended when the action was taken; the one before if it was not raised yet
        taken_on = next((i for i, (ended, _, _) in enumerate(lives) if ended is None or ended >= acted),
                        len(lives) - 1)
        raised = lives[taken_on][2] if lives else None
        if taken_on > 0 and raised is not None and raised > acted:
            taken_on -= 1
        withdrawn_at = lives[taken_on][1] if lives else None
        rule, severity = rules.get(action["alert_id"], ("", ""))
        labelled.append({**action, "rule_id": rule, "severity": severity, "withdrawn_at": withdrawn_at})
    return labelled


@requires(Permission.VIEW_PATIENTS)
async def case_page(request: web.Request) -> web.StreamResponse:
    case_id = request.match_info["case_id"]

    def work(con: duckdb.DuckDBPyConnection, read: ReadModel) -> dict[str, Any]:
        versions = read.case_versions(con, case_id)
        alerts = read.alerts(con, AlertFilters(case_id=case_id))
        withdrawn = read.withdrawn_alerts(con, case_id=case_id) or []
        history = read.alert_history(con, list({alert["alert_id"]: None for alert in (*alerts, *withdrawn)}))
        return {"versions": versions, "alerts": alerts, "history": _actions_labelled(history, alerts, withdrawn),
                "clocks": read.clocks(con, case_id), "withdrawn": withdrawn, "snapshot": read.snapshot(con)}

    try:
        found = await in_snapshot(request, work)
    except SnapshotUnavailable as error:
        return render(request, "error.html", status=503, message=str(error))
    if not found["versions"]:
        return render(request, "error.html", status=404, message=f"No case {case_id} in the snapshot.")
    patient = found["versions"][0]["patient"]
    audit(request, "read-case", patient=patient, case_id=case_id)
    user = current_user(request)
    return render(request, "case.html", case_id=case_id, patient=patient, **found,
                  expectedness=_expectedness(request.app[RSI], found["versions"]),
                  show_narrative=user.may(Permission.VIEW_NARRATIVES), can_export=user.may(Permission.EXPORT_E2B),
                  can_act=user.may(Permission.ACT_ON_ALERTS) and request.app[CONFIG].bootstrap)


@requires(Permission.EXPORT_E2B)
async def case_e2b(request: web.Request) -> web.StreamResponse:
    """The case's latest version as an ICH E2B(R3) ICSR (pvwatch.interop.e2b_export, as `pvwatch export e2b`),
    from the full snapshot; every export is audited."""
    from pvwatch.interop.e2b_export import export_case

    case_id = request.match_info["case_id"]
    try:
        versions = await in_snapshot(request, lambda con, read: read.case_versions(con, case_id))
        if not versions:
            return render(request, "error.html", status=404, message=f"No case {case_id} in the snapshot.")
        document = await asyncio.to_thread(export_case, request.app[CONFIG].snapshot, case_id)
    except SnapshotUnavailable as error:
        return render(request, "error.html", status=503, message=str(error))
    audit(request, "export-e2b", patient=versions[-1]["patient"], case_id=case_id, bytes=len(document))
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in case_id)
    return web.Response(body=document, content_type="application/xml", headers={
        "Content-Disposition": f'attachment; filename="{safe_name}-e2b-r3.xml"'})


@requires(Permission.VIEW_PATIENTS)
async def patient_page(request: web.Request) -> web.StreamResponse:
    patient = request.match_info["patient"]

    def work(con: duckdb.DuckDBPyConnection, read: ReadModel) -> dict[str, Any]:
        return {"events": read.patient_events(con, patient), "alerts": read.alerts(con, AlertFilters(patient=patient)),
                "withdrawn": read.withdrawn_alerts(con, patient=patient) or [],
                "summary": read.patient_summary(con, patient), "snapshot": read.snapshot(con)}

    try:
        found = await in_snapshot(request, work)
    except SnapshotUnavailable as error:
        return render(request, "error.html", status=503, message=str(error))
    audit(request, "read-patient", patient=patient, events=len(found["events"]))
    # the grade the rules gave a lab value (ctcae-lab alert, derived adverse event): {lab event id: grade}
    lab_grades = {alert["evidence"][0]: int(alert["details"]["derived_ae_grade"]) for alert in found["alerts"]
                  if alert["rule_id"] == "ctcae-lab" and alert["details"].get("derived_ae_grade") is not None}
    rows = [{**event, "lane": lane_of(event["type"]), "parent": reported_by_parent(event)} for event in found["events"]]
    return render(request, "patient.html", patient=patient, svg=render_timeline(found["events"], found["alerts"],
                                                                                lab_grades, found["withdrawn"]),
                  rows=rows, alerts=found["alerts"], withdrawn=found["withdrawn"], summary=found["summary"],
                  snapshot=found["snapshot"],
                  show_narrative=current_user(request).may(Permission.VIEW_NARRATIVES))


# --- expedited reports, lots and clinics, signals, health ------------------------------------------------------


@requires(Permission.VIEW_ALERTS)
async def expedited_page(request: web.Request) -> web.StreamResponse:
    """Open clocks (not yet submitted), nearest deadline first: overdue red, due within 48 h highlighted."""
    try:
        found = await in_snapshot(request, lambda con, read: {"clocks": read.clocks(con, open_only=True),
                                                              "snapshot": read.snapshot(con)})
    except SnapshotUnavailable as error:
        return render(request, "error.html", status=503, message=str(error))
    audit(request, "view-expedited-board", patients=_patients_of(found["clocks"] or []),
          clocks=len(found["clocks"] or []))
    return render(request, "expedited.html", **found)


@requires(Permission.VIEW_ALERTS)
async def exposure_index(request: web.Request) -> web.StreamResponse:
    try:
        found = await in_snapshot(request, lambda con, read: {
            "lots": read.exposure(con, "lot"), "clinics": read.exposure(con, "clinic"), "snapshot": read.snapshot(con)})
    except SnapshotUnavailable as error:
        return render(request, "error.html", status=503, message=str(error))
    return render(request, "exposure.html", window=ReadModel.EXPOSURE_WINDOW_DAYS, scope=None, **found)


def _exposure_page(scope: str) -> Handler:
    @requires(Permission.VIEW_ALERTS)
    async def page(request: web.Request) -> web.StreamResponse:
        value = request.match_info["value"]

        def work(con: duckdb.DuckDBPyConnection, read: ReadModel) -> dict[str, Any]:
            return {"summary": read.exposure(con, scope, value), "infusions": read.infusions_of(con, scope, value),
                    "cases": read.cases_after(con, scope, value), "snapshot": read.snapshot(con),
                    "alerts": [a for a in read.alerts(con, AlertFilters(lot=value if scope == "lot" else None))
                               if scope == "lot" or value in (a["clinics"] or [])]}

        try:
            found = await in_snapshot(request, work)
        except SnapshotUnavailable as error:
            return render(request, "error.html", status=503, message=str(error))
        if not found["infusions"]:
            return render(request, "error.html", status=404, message=f"No MSC infusion from {scope} {value}.")
        # the page shows these children's infusions and adverse events: name them, as a patient page read does
        shown = sorted({row["patient"] for row in found["infusions"]} | {row["patient"] for row in found["cases"]})
        audit(request, f"read-{scope}", **{scope: value}, patients=shown)
        return render(request, "exposure.html", window=ReadModel.EXPOSURE_WINDOW_DAYS, scope=scope, value=value,
                      **found)

    return page


@requires(Permission.VIEW_ALERTS)
async def signals_page(request: web.Request) -> web.StreamResponse:
    def work(con: duckdb.DuckDBPyConnection, read: ReadModel) -> dict[str, Any]:
        # strongest first (issue 6's `signals` table: EB05 is NULL when the prior fit was refused)
        table = read.table(con, "signals", order_by="eb05 DESC NULLS LAST, ic025 DESC, a DESC, product, event")
        return {"table": table, "snapshot": read.snapshot(con)}

    try:
        found = await in_snapshot(request, work)
    except SnapshotUnavailable as error:
        return render(request, "error.html", status=503, message=str(error))
    table = found["table"]
    rows = [dict(zip(table.columns, row, strict=True)) for row in table.rows] if table is not None else []
    return render(request, "signals.html", plot=_ebgm_plot(table), rows=rows, **found)


def _ebgm_plot(table: Any) -> str | None:
    """EBGM with its EB05-EB95 interval per product-event pair (DuMouchel 1999), when the table has them."""
    if table is None or not {"ebgm", "eb05", "eb95"} <= set(table.columns):
        return None
    from html import escape

    idx = {name: table.columns.index(name) for name in ("ebgm", "eb05", "eb95")}
    label_cols = [c for c in ("product", "drug", "event", "term", "pt") if c in table.columns]
    rows = [r for r in table.rows if all(isinstance(r[i], int | float) for i in idx.values())][:40]
    if not rows:
        return None
    # the axis runs from 0 past max(EB95, 1): the dashed line at 1 (no disproportionality) is always on the plot
    top = max(1.0, *(float(r[idx["eb95"]]) for r in rows)) * 1.05
    width, left, line = 900, 260, 18

    def x(value: float) -> float:
        return left + (width - left - 20) * value / top

    parts = [f'<line x1="{x(1):.1f}" y1="0" x2="{x(1):.1f}" y2="{len(rows) * line + 5}" stroke="#999" '
             'stroke-dasharray="4 3"/>']
    for n, row in enumerate(rows):
        y = n * line + 12
        label = " / ".join(str(row[table.columns.index(c)]) for c in label_cols) or f"pair {n + 1}"
        # red: flagged by the worker's EBGM threshold (signal_ebgm, PVWATCH_SIGNAL_EB05_MIN), else EB05 >= 2 (FDA)
        flagged = row[table.columns.index("signal_ebgm")] if "signal_ebgm" in table.columns else row[idx["eb05"]] >= 2
        colour = "#c62828" if flagged else "#1565c0"
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{escape(label[:40])}</text>'
                     f'<line x1="{x(row[idx["eb05"]]):.1f}" y1="{y}" x2="{x(row[idx["eb95"]]):.1f}" y2="{y}" '
                     f'stroke="{colour}" stroke-width="2"/><circle cx="{x(row[idx["ebgm"]]):.1f}" cy="{y}" r="4" '
                     f'fill="{colour}"/>')
    height = len(rows) * line + 30
    parts.append(f'<text x="{x(0):.1f}" y="{height - 4}" text-anchor="start">0</text>'
                 f'<text x="{x(1):.1f}" y="{height - 4}" text-anchor="middle">1</text>')
    if x(top) - x(1) > 40:  # the end of the axis, when it does not crowd the 1
        parts.append(f'<text x="{x(top):.1f}" y="{height - 4}" text-anchor="end">{top:.1f}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11" '
            f'font-family="sans-serif" role="img" aria-label="EBGM intervals">' + "".join(parts) + "</svg>")


@requires(Permission.VIEW_HEALTH)
async def health_page(request: web.Request) -> web.StreamResponse:
    from pvwatch.metrics_client import scrape

    config = request.app[CONFIG]
    metrics: dict[str, float] | None = None
    metrics_error = None
    if config.metrics_url:
        try:
            metrics = await asyncio.to_thread(scrape, config.metrics_url)
        except OSError as error:
            metrics_error = f"{config.metrics_url}: {error}"
    try:
        snapshot = await in_snapshot(request, lambda con, read: read.snapshot(con))
    except SnapshotUnavailable as error:
        snapshot, metrics_error = None, metrics_error or str(error)
    last = metrics.get("pv_last_event_processed_timestamp_seconds") if metrics else None
    rates = request.app[RATES].observe(datetime.now(UTC).timestamp(), metrics) if metrics else None
    return render(request, "health.html", metrics=metrics, metrics_error=metrics_error, snapshot=snapshot, rates=rates,
                  metrics_url=config.metrics_url, grafana_links=_grafana_links(config.grafana_url),
                  last_batch_age_s=(datetime.now(UTC).timestamp() - last) if last else None)


@functools.cache
def _grafana_dashboards() -> tuple[tuple[str, str], ...]:
    """(title, uid) of the Grafana dashboards shipped in monitoring/grafana/dashboards (provisioned by compose)."""
    import json

    folder = resources.files("pvwatch.dashboards") / "monitoring" / "grafana" / "dashboards"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            document = json.loads(entry.read_text())
            found.append((str(document["title"]), str(document["uid"])))
    return tuple(sorted(found))


def _grafana_links(grafana_url: str | None) -> list[tuple[str, str]]:
    """Links to each shipped dashboard by its stable uid (Grafana serves /d/<uid>), when Grafana is deployed."""
    if not grafana_url:
        return []
    base = grafana_url.rstrip("/")
    return [(title, f"{base}/d/{urllib.parse.quote(uid)}") for title, uid in _grafana_dashboards()]


# --- SQL ---------------------------------------------------------------------------------------------------


@requires(Permission.RUN_SQL)
async def sql_page(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    query = ""
    result = error = None
    if request.method == "POST":
        query = str((await request.post()).get("sql", "")).strip()
        result, error = await _run_sql(request, query)
    try:
        relations = await in_snapshot(request, lambda con, read: sorted(read.relations(con)))  # the analyst one
    except SnapshotUnavailable:
        relations = []
    return render(request, "sql.html", query=query, result=result, error=error, relations=relations,
                  max_rows=config.sql_max_rows, timeout_s=config.sql_timeout_s)


@requires(Permission.RUN_SQL)
async def sql_api(request: web.Request) -> web.StreamResponse:
    body = await json_object(request)
    if not isinstance(body.get("sql"), str):
        raise web.HTTPBadRequest(text='send {"sql": "SELECT ..."}: the query as a JSON string')
    result, error = await _run_sql(request, body["sql"])
    if error is not None:
        return web.json_response({"error": error}, status=400)
    assert result is not None
    return web.json_response({"columns": result.columns, "rows": result.rows, "truncated": result.truncated,
                              "seconds": result.seconds})


async def _run_sql(request: web.Request, query: str) -> tuple[Any, str | None]:
    config = request.app[CONFIG]
    audit(request, "sql", sql=query[:5000])
    try:
        result = await asyncio.to_thread(run_readonly_query, config.analyst_snapshot_path, query,
                                         max_rows=config.sql_max_rows, timeout_s=config.sql_timeout_s)
    except (QueryRejected, SnapshotUnavailable) as error:
        return None, str(error)
    return result, None


# --- admin -------------------------------------------------------------------------------------------------


#: the admin page's user changes: the form's `op` -> the audit action
USER_CHANGES = {"add": "user-added", "role": "user-role-changed", "disable": "user-disabled",
                "enable": "user-enabled", "password": "user-password-reset"}


def _change_user(request: web.Request, form: Any) -> str:
    """Apply one user change from the admin page's forms, audit it and say what was done (ConfigError if not)."""
    from pvwatch.dashboards.users import Role
    from pvwatch.errors import ConfigError

    users = request.app[USERS]
    op = str(form.get("op", "add"))
    name = str(form.get("username", "")).strip()
    if op not in USER_CHANGES:
        raise ConfigError(f"unknown change {op!r}")
    before = users.get(name)
    if op == "add":
        if before is not None:
            raise ConfigError(f"user {name} exists: change their role, password or access in the table")
        try:
            role = Role(str(form.get("role", "")))
        except ValueError:
            raise ConfigError(f"role must be one of {[r.value for r in Role]}") from None
        users.add(name, role, str(form.get("password", "")))
        audit(request, "user-added", user=name, role=role.value)
        return f"User {name} saved with role {role.value}."
    if before is None:
        raise ConfigError(f"no user {name!r}")
    if op == "role":
        try:
            role = Role(str(form.get("role", "")))
        except ValueError:
            raise ConfigError(f"role must be one of {[r.value for r in Role]}") from None
        changed = users.set_role(name, role)
        audit(request, "user-role-changed", user=name, role=role.value, previous_role=before.role.value)
        return f"User {name} now has role {changed.role.value}."
    if op in ("disable", "enable"):
        users.set_disabled(name, op == "disable")
        audit(request, USER_CHANGES[op], user=name)
        return (f"User {name} is disabled: they cannot sign in and their sessions have ended." if op == "disable"
                else f"User {name} is enabled: they can sign in again.")
    users.reset_password(name, str(form.get("password", "")))
    audit(request, "user-password-reset", user=name)
    return f"Password of {name} reset; their sessions have ended."


@requires(Permission.ADMINISTER)
async def admin_page(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    message = None
    if request.method == "POST":
        from pvwatch.errors import ConfigError

        form = await request.post()
        try:
            message = await asyncio.to_thread(_change_user, request, form)
        except ConfigError as error:
            message = f"Not saved: {error}"
    users = sorted(request.app[USERS].users().values(), key=lambda u: u.name)
    settings = {"snapshot": str(config.snapshot), "analyst snapshot": str(config.analyst_snapshot_path),
                "users file": str(config.users_file),
                "audit log": str(config.audit_log), "audit head": request.app[AUDIT].head,
                "Kafka bootstrap": config.bootstrap or "(actions disabled)", "worker metrics": config.metrics_url,
                "Grafana": config.grafana_url, "secure cookies": config.secure_cookies,
                "session lifetime (s)": config.session_max_age_s, "SQL row limit": config.sql_max_rows,
                "SQL time limit (s)": config.sql_timeout_s,
                "failed logins allowed per minute": config.login_failures_per_minute}
    from pvwatch.dashboards.users import MIN_PASSWORD_LENGTH, Role

    return render(request, "admin.html", users=users, settings=settings, message=message, roles=[r.value for r in Role],
                  min_password=MIN_PASSWORD_LENGTH)


@requires(Permission.ADMINISTER)
async def rules_page(request: web.Request) -> web.StreamResponse:
    """The rules file in force, and an edit validated by the worker's own loader before it replaces the file."""
    from pvwatch.dashboards.rules_editor import RulesRejected, rules_in_force, save_rules
    from pvwatch.errors import ConfigError

    config = request.app[CONFIG]
    message = error = None
    submitted = None
    if request.method == "POST":
        form = await request.post()
        submitted = str(form.get("rules", ""))
        try:
            saved = await asyncio.to_thread(save_rules, config.rules_file, submitted, str(form.get("sha256", "")),
                                            config.rsi_file)
        except RulesRejected as rejected:
            error = str(rejected)
            audit(request, "rules-file-rejected", path=str(config.rules_file), error=error[:2000])
        else:
            submitted = None
            audit(request, "rules-file-saved", path=str(saved.path), sha256_before=saved.sha256_before,
                  sha256_after=saved.sha256_after, backup=str(saved.backup) if saved.backup else None,
                  versions_changed={rule: list(pair) for rule, pair in saved.versions_changed.items()})
            message = (f"Saved {saved.path}" + (f"; the previous version is kept as {saved.backup}" if saved.backup
                                               else "") + ". The worker applies it at its next start.")
    try:
        in_force = await asyncio.to_thread(rules_in_force, config.rules_file)
    except ConfigError as unreadable:
        return render(request, "error.html", status=500, message=str(unreadable))
    return render(request, "rules.html", in_force=in_force, versions=in_force.versions, message=message,
                  error=error, text=in_force.text if submitted is None else submitted)


# --- the app -----------------------------------------------------------------------------------------------


def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pvwatch.dashboards", "templates"),
        autoescape=jinja2.select_autoescape(["html"]))

    def age(seconds: float | None) -> str:
        if seconds is None:
            return "unknown"
        return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"

    environment.filters["age"] = age
    environment.filters["quote"] = lambda text: urllib.parse.quote(str(text), safe="")
    return environment


def trusted_proxy_networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse --trusted-proxy values (an address, or a network such as 10.0.0.0/8); a bad one is a ConfigError."""
    from pvwatch.errors import ConfigError

    networks = []
    for proxy in proxies:
        try:
            networks.append(ipaddress.ip_network(proxy.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"--trusted-proxy {proxy!r} is not an IP address or network (e.g. 10.0.0.5, "
                              "10.0.0.0/8)") from None
    return tuple(networks)


def build_dashboard(config: DashboardConfig, publisher: ActionPublisher | None = None) -> web.Application:
    app = web.Application(middlewares=[security_headers, authentication, csrf_protection],
                          client_max_size=256 * 1024)
    app[CONFIG] = config
    app[USERS] = UserStore(config.users_file)
    app[AUDIT] = AuditLog(config.audit_log)
    app[SESSIONS] = SessionCodec(config.secret, config.session_max_age_s,
                                 revoked_file=config.audit_log.with_name(config.audit_log.name + ".revoked-sessions"))
    app[LIMITER] = LoginRateLimiter(config.login_failures_per_minute, 60.0)
    app[READ] = ReadModel(config.snapshot)
    app[ANALYST_READ] = ReadModel(config.analyst_snapshot_path)
    app[RSI] = load_rsi(config.rsi_file)
    app[TEMPLATES] = _templates()
    app[PENDING] = {}
    app[RATES] = CounterRates()
    app[LISTED] = {}
    app[TRUSTED_PROXIES] = trusted_proxy_networks(config.trusted_proxies)
    if publisher is None and config.bootstrap:
        publisher = ActionPublisher(config.bootstrap)
    if publisher is not None:
        app[PUBLISHER] = publisher

        async def close_publisher(app: web.Application) -> None:
            await asyncio.to_thread(app[PUBLISHER].close)

        app.on_cleanup.append(close_publisher)
    static = resources.files("pvwatch.dashboards") / "static"
    app.router.add_get("/", home)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/alerts", alerts_page)
    app.router.add_get("/api/alerts", alerts_api)
    app.router.add_get("/alerts/withdrawn", withdrawn_page)
    app.router.add_get("/api/alerts/withdrawn", withdrawn_api)
    app.router.add_post("/api/alerts/{alert_id}/actions", alert_action)
    app.router.add_get("/cases/{case_id}", case_page)
    app.router.add_get("/cases/{case_id}/e2b", case_e2b)
    app.router.add_get("/lots", exposure_index)
    app.router.add_get("/lots/{value}", _exposure_page("lot"))
    app.router.add_get("/clinics/{value}", _exposure_page("clinic"))
    app.router.add_get("/patients/{patient}", patient_page)
    app.router.add_get("/expedited", expedited_page)
    app.router.add_get("/signals", signals_page)
    app.router.add_get("/health", health_page)
    app.router.add_get("/sql", sql_page)
    app.router.add_post("/sql", sql_page)
    app.router.add_post("/api/sql", sql_api)
    app.router.add_get("/admin", admin_page)
    app.router.add_post("/admin", admin_page)
    app.router.add_get("/admin/rules", rules_page)
    app.router.add_post("/admin/rules", rules_page)
    app.router.add_static("/static/", Path(str(static)), show_index=False)
    return app
