"""Direct post of critical safety alerts to Alertmanager's v2 API, so a person is paged in under a second.

Prometheus's pull path adds a scrape interval and an evaluation interval (up to ~10 s with the shipped 5 s +
5 s) before Alertmanager even hears of a serious adverse event. The worker therefore also posts each new
critical alert straight to Alertmanager (`POST /api/v2/alerts`), off the hot path, with retries. The labels
are read from the shipped alerting rules (dashboards/monitoring/prometheus/rules/pvwatch-alerts.yml): an
alerting rule with a static `rule` label pages for that pvwatch rule (SeriousAdverseEvent), the catch-all
CriticalSafetyAlert for every other critical rule it does not exclude.

One page per alert: the post carries the rule's labels (so it routes like the rule's alert) PLUS `alert_id`,
pvwatch's alert id (`alert_id_for`: a uuid5 of rule, rule version and what the alert is about, e.g. the case;
neither a patient pseudonym nor an event id). Alertmanager identifies an alert by its label set, so each
serious adverse event is its own Alertmanager alert and its own notification; without `alert_id` a second
serious AE within the rule's 10-minute window would merge into the first alert and page nobody. Alertmanager
labels are not Prometheus series (this alert is never scraped or stored in a TSDB), so a label per alert costs
no cardinality. alertmanager.yml groups the safety officer's route by `alert_id` and lets a direct alert
inhibit the rule's alert of the same alertname and rule (which has no `alert_id`): the officer gets one page
per alert while the direct post works, and the rule's alert still pages (the safety net) when it failed. That
mute is per rule, so a failed post while another direct alert of its rule fires would page nobody through the
rule: the failure counter pages on its own (SafetyPageFailed, which nothing mutes).
Annotations carry the alert id and summary (event term and seriousness criteria), never a narrative.

A withdrawn alert (a late event made it untrue: docs/rules.md) is posted again with the same labels and `endsAt`
now, which resolves it in Alertmanager (the v2 API: an alert whose endsAt has passed is resolved); the description
says why it was withdrawn.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from pvwatch import metrics
from pvwatch.domain.engine import RULE_IDS
from pvwatch.errors import ConfigError
from pvwatch.events.alert import SafetyAlert, Severity

log = logging.getLogger("pvwatch.alertmanager")

#: The alerting rules docker-compose mounts into Prometheus; the single source of the alerts' labels.
ALERT_RULES = files("pvwatch.dashboards") / "monitoring" / "prometheus" / "rules" / "pvwatch-alerts.yml"
#: The rule's `increase(...[10m])` window: its alert fires until the window no longer holds the sample before
#: the increase, i.e. at most 10 min + one scrape (5 s) + one evaluation (5 s) after the alert was counted.
RULE_WINDOW = timedelta(minutes=10)
#: How long a direct alert stays firing (its `endsAt`, from the post). It must outlive the rule's alert for the
#: same event, else the rule's alert is no longer inhibited and pages the officer again, late. The rule's alert
#: ends in Alertmanager when Prometheus sends it resolved (<= 10 min 10 s after the count, above) or, if that
#: message is lost, at the `endsAt` of its last firing send: Prometheus sets it 4 x max(evaluation interval,
#: --rules.alert.resend-delay 1 m) = 4 min ahead, so <= 14 min 10 s. 15 min covers both (recomputed from the
#: shipped files by tests/integration/test_alertmanager_notifier.py; the 4 min seen in tests/e2e/test_alert_path.py).
DIRECT_ALERT_FIRING = RULE_WINDOW + timedelta(minutes=5)
#: Waits before the 2nd, 3rd and 4th attempt: about 3 s in all, well inside the rule path's ~10 s.
RETRY_DELAYS_S = (0.1, 0.5, 2.0)


@dataclass(frozen=True)
class DirectRoute:
    """How critical alerts of a pvwatch rule look in Alertmanager: the alerting rule's name, labels and texts.

    A rule with a static `rule` label pages for that pvwatch rule alone; one without it (CriticalSafetyAlert)
    aggregates `by (rule)`, so the alert it makes carries the pvwatch rule id as its `rule` label."""

    alertname: str
    labels: dict[str, str]
    summary: str
    runbook_url: str

    def alert_labels(self, rule_id: str) -> dict[str, str]:
        """The labels of the rule's alert as Prometheus sends it (after its `sum by (rule)`)."""
        return {"alertname": self.alertname, "rule": rule_id, **self.labels}

    def rendered_summary(self, rule_id: str) -> str:
        """The summary with `{{ $labels.X }}` filled in, as Prometheus's template would render it."""
        labels = self.alert_labels(rule_id)
        return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), self.summary)


@dataclass(frozen=True)
class DirectRoutes:
    """Which alerting rule pages for each pvwatch rule's critical alerts (None: not paged directly)."""

    by_rule: dict[str, DirectRoute]
    other_critical: DirectRoute | None = None
    #: rules the catch-all leaves to other alerts (e.g. expedited-overdue: ExpeditedReportOverdue, from a gauge)
    left_to_other_alerts: frozenset[str] = frozenset()

    def route_for(self, rule_id: str) -> DirectRoute | None:
        if rule_id in self.by_rule:
            return self.by_rule[rule_id]
        if rule_id in self.left_to_other_alerts:
            return None
        return self.other_critical


def load_direct_routes(rules_file: Path | None = None) -> DirectRoutes:
    """Critical alerting rules over `pv_alerts_raised_total`: those naming a pvwatch rule in a static `rule`
    label, and the catch-all that groups `by (rule)` with the rules it excludes in a `rule!~"a|b"` matcher."""
    source = rules_file or ALERT_RULES
    by_rule: dict[str, DirectRoute] = {}
    catch_all: list[tuple[DirectRoute, frozenset[str]]] = []
    for group in yaml.safe_load(source.read_text())["groups"]:
        for rule in group["rules"]:
            labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
            expr = " ".join(str(rule.get("expr", "")).split())
            if "alert" not in rule or labels.get("severity") != Severity.CRITICAL.value:
                continue
            if "pv_alerts_raised_total" not in expr or "by (rule)" not in expr:
                continue
            annotations = rule.get("annotations") or {}
            route = DirectRoute(
                alertname=rule["alert"], labels={k: v for k, v in labels.items() if k != "rule"},
                summary=str(annotations.get("summary", rule["alert"])),
                runbook_url=str(annotations.get("runbook_url", "")),
            )
            if "rule" in labels:
                if labels["rule"] in by_rule:
                    raise ConfigError(f"{source}: two critical alerting rules for rule={labels['rule']}")
                by_rule[labels["rule"]] = route
            else:
                matcher = re.search(r'rule\s*!~\s*"([^"]*)"', expr)
                catch_all.append((route, frozenset(matcher.group(1).split("|")) if matcher else frozenset()))
    if len(catch_all) > 1:
        names = [route.alertname for route, _ in catch_all]
        raise ConfigError(f"{source}: more than one catch-all critical alerting rule: {names}")
    if not catch_all:
        return DirectRoutes(by_rule)
    route, excluded = catch_all[0]
    return DirectRoutes(by_rule, route, excluded - set(by_rule))


def initialise_alert_series(routes: DirectRoutes, rule_ids: Iterable[str] = RULE_IDS) -> None:
    """Create the critical-alert counter of every paged rule at 0, so the rules' increase() sees the first."""
    for rule_id in rule_ids:
        if routes.route_for(rule_id) is not None:
            metrics.ALERTS_RAISED.labels(rule_id, Severity.CRITICAL.value)


def alertmanager_alert(alert: SafetyAlert, route: DirectRoute, posted_at: datetime | None = None) -> dict[str, Any]:
    """One element of the v2 `postableAlerts` body (Alertmanager OpenAPI spec, `postableAlert`): the rule's
    labels plus `alert_id`. It fires for DIRECT_ALERT_FIRING from when it is posted, not from when it was
    raised: a crashed worker's alert re-paged by the next worker an hour later must not arrive already ended.
    A withdrawn alert ends when it is posted: Alertmanager resolves it."""
    posted_at = posted_at or datetime.now(UTC)
    description = f"pvwatch alert {alert.alert_id}: {alert.summary}"
    ends_at = max(alert.raised_at, posted_at)
    if alert.withdrawal is not None:
        description = f"pvwatch alert {alert.alert_id} withdrawn: {alert.withdrawal.reason}"
    else:
        ends_at += DIRECT_ALERT_FIRING
    return {
        "labels": {**route.alert_labels(alert.rule_id), "alert_id": str(alert.alert_id)},
        "annotations": {
            "summary": route.rendered_summary(alert.rule_id),
            "description": description,
            "runbook_url": route.runbook_url,
            "pvwatch_alert_id": str(alert.alert_id),
        },
        "startsAt": alert.raised_at.isoformat(),
        "endsAt": ends_at.isoformat(),
    }


class AlertmanagerNotifier:
    """Posts critical alerts in background tasks; the agent never waits for Alertmanager."""

    def __init__(
        self, base_url: str, routes: DirectRoutes, *, timeout_s: float = 2.0,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
    ) -> None:
        self.url = base_url.rstrip("/") + "/api/v2/alerts"
        self.routes = routes
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry_delays_s = retry_delays_s
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent = metrics.ALERT_NOTIFICATIONS.labels("sent")
        self._failed = metrics.ALERT_NOTIFICATIONS.labels("failed")

    def post(self, alerts: Iterable[SafetyAlert]) -> None:
        """Schedule a post of every critical alert that a shipped alerting rule pages for (a withdrawn one: its
        resolution); returns at once."""
        body = [
            alertmanager_alert(alert, route) for alert in alerts
            if alert.severity is Severity.CRITICAL and (route := self.routes.route_for(alert.rule_id)) is not None
        ]
        if body:
            task = asyncio.get_running_loop().create_task(self._send(body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, body: list[dict[str, Any]]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        problem = ""
        for attempt, delay in enumerate((0.0, *self.retry_delays_s), start=1):
            await asyncio.sleep(delay)
            try:
                async with self._session.post(self.url, json=body) as response:
                    if response.status == 200:
                        self._sent.inc(len(body))
                        return
                    problem = f"HTTP {response.status}: {(await response.text())[:200]}"
                    if response.status < 500 and response.status != 429:
                        break  # Alertmanager rejected the body: sending it again cannot help
            except (aiohttp.ClientError, TimeoutError) as error:
                problem = f"{type(error).__name__}: {error}"
            log.warning("alertmanager post attempt=%d failed url=%s reason=%s", attempt, self.url, problem)
        self._failed.inc(len(body))
        ids = ",".join(a["annotations"]["pvwatch_alert_id"] for a in body)
        log.error("alertmanager post gave up alerts=%s reason=%s (the Prometheus rule path remains)", ids, problem)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let posts in flight finish (briefly) at shutdown, then release the HTTP session."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        if self._session is not None:
            await self._session.close()
            self._session = None
