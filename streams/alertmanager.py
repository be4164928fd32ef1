"""Direct post of critical safety alerts to Alertmanager's v2 API, so a person is paged in under a second.

Prometheus's pull path adds a scrape interval and an evaluation interval (up to ~10 s with the shipped 5 s +
5 s) before Alertmanager even hears of a serious adverse event. The worker therefore also posts each new
critical alert straight to Alertmanager (`POST /api/v2/alerts`), off the hot path, with retries. The labels
are read from the shipped alerting rules (dashboards/monitoring/prometheus/rules/pvwatch-alerts.yml): an
alerting rule with a static `rule` label pages for that pvwatch rule, and the post carries exactly
{alertname} + that rule's labels. Alertmanager identifies an alert by its label set, so both paths make one
alert and one notification; the Prometheus rule remains the safety net if every attempt here fails.
Annotations carry the alert id and summary (event term and seriousness criteria), never a narrative.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from pvwatch import metrics
from pvwatch.errors import ConfigError
from pvwatch.events.alert import SafetyAlert, Severity

log = logging.getLogger("pvwatch.alertmanager")

#: The alerting rules docker-compose mounts into Prometheus; the single source of the alerts' labels.
ALERT_RULES = files("pvwatch.dashboards") / "monitoring" / "prometheus" / "rules" / "pvwatch-alerts.yml"
#: Matches the rule's `increase(...[10m])` window: the rule path keeps the alert firing that long, so the
#: direct post asks Alertmanager to keep it just as long (Prometheus, when it sees it, keeps it refreshed).
FIRING_WINDOW = timedelta(minutes=10)
#: Waits before the 2nd, 3rd and 4th attempt: about 3 s in all, well inside the rule path's ~10 s.
RETRY_DELAYS_S = (0.1, 0.5, 2.0)


@dataclass(frozen=True)
class DirectRoute:
    """How one pvwatch rule's critical alerts look in Alertmanager: the alerting rule's labels and texts."""

    alertname: str
    labels: dict[str, str]
    summary: str
    runbook_url: str

    @property
    def rule(self) -> str:
        return self.labels["rule"]

    @property
    def severity(self) -> str:
        return self.labels["severity"]


def load_direct_routes(rules_file: Path | None = None) -> dict[str, DirectRoute]:
    """Critical alerting rules that name a pvwatch rule in a static `rule` label, keyed by that rule id."""
    text = rules_file.read_text() if rules_file is not None else ALERT_RULES.read_text()
    routes: dict[str, DirectRoute] = {}
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
            if "alert" not in rule or "rule" not in labels or labels.get("severity") != Severity.CRITICAL.value:
                continue
            annotations = rule.get("annotations") or {}
            if labels["rule"] in routes:
                raise ConfigError(f"{rules_file or ALERT_RULES}: two critical alerting rules for rule={labels['rule']}")
            routes[labels["rule"]] = DirectRoute(
                alertname=rule["alert"], labels=labels,
                summary=str(annotations.get("summary", rule["alert"])),
                runbook_url=str(annotations.get("runbook_url", "")),
            )
    return routes


def initialise_alert_series(routes: Iterable[DirectRoute]) -> None:
    """Create each paged rule's counter at 0, so the rule's increase() sees even the first alert."""
    for route in routes:
        metrics.ALERTS_RAISED.labels(route.rule, route.severity)


def alertmanager_alert(alert: SafetyAlert, route: DirectRoute) -> dict[str, Any]:
    """One element of the v2 `postableAlerts` body (Alertmanager OpenAPI spec, `postableAlert`)."""
    return {
        "labels": {"alertname": route.alertname, **route.labels},
        "annotations": {
            "summary": route.summary,
            "description": f"pvwatch alert {alert.alert_id}: {alert.summary}",
            "runbook_url": route.runbook_url,
            "pvwatch_alert_id": str(alert.alert_id),
        },
        "startsAt": alert.raised_at.isoformat(),
        "endsAt": (alert.raised_at + FIRING_WINDOW).isoformat(),
    }


class AlertmanagerNotifier:
    """Posts critical alerts in background tasks; the agent never waits for Alertmanager."""

    def __init__(
        self, base_url: str, routes: dict[str, DirectRoute], *, timeout_s: float = 2.0,
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
        """Schedule a post of every critical alert that a shipped alerting rule pages for; returns at once."""
        body = [
            alertmanager_alert(alert, self.routes[alert.rule_id]) for alert in alerts
            if alert.severity is Severity.CRITICAL and alert.rule_id in self.routes
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
