"""The worker's direct post to Alertmanager (streams/alertmanager.py) against a real HTTP server on loopback:
the labels are the alerting rule's, failures are retried, a rejected body is not, and every outcome is counted.
The whole path with the real Alertmanager binary is tests/e2e/test_alert_path.py."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import yaml
from aiohttp import web

from pvwatch.events.alert import SafetyAlert, Severity
from pvwatch.metrics import REGISTRY
from pvwatch.streams.alertmanager import (
    ALERT_RULES,
    DIRECT_ALERT_FIRING,
    AlertmanagerNotifier,
    initialise_alert_series,
    load_direct_routes,
)
from pvwatch.streams.broker import free_port
from tests.alerting_stack import parse_duration_s

pytestmark = pytest.mark.integration
RAISED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def safety_alert(
    rule_id: str = "serious-ae", severity: Severity = Severity.CRITICAL, raised_at: datetime = RAISED
) -> SafetyAlert:
    return SafetyAlert(
        alert_id=uuid4(), rule_id=rule_id, rule_version=1, severity=severity, patient="pt-" + "a" * 20,
        case_id="CASE-1", evidence_event_ids=(uuid4(),), occurred_at=RAISED, raised_at=raised_at,
        summary="Serious adverse event (hospitalisation): Lupus nephritis",
    )


def notifications(outcome: str) -> float:
    return REGISTRY.get_sample_value("pv_alert_notifications_total", {"outcome": outcome}) or 0.0


def run_against(statuses: list[int], alerts: list[SafetyAlert]) -> list[list[dict]]:
    """Serve /api/v2/alerts answering with `statuses` in turn (then 200), post `alerts`, return the bodies seen."""
    received: list[list[dict]] = []

    async def scenario() -> None:
        async def post_alerts(request: web.Request) -> web.Response:
            received.append(await request.json())
            status = statuses[len(received) - 1] if len(received) <= len(statuses) else 200
            return web.Response(status=status, text="{}")

        app = web.Application()
        app.router.add_post("/api/v2/alerts", post_alerts)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        notifier = AlertmanagerNotifier(f"http://127.0.0.1:{port}/", load_direct_routes(), retry_delays_s=(0.01,) * 3)
        notifier.post(alerts)
        await notifier.close()
        await runner.cleanup()

    asyncio.run(scenario())
    return received


def test_the_post_carries_the_labels_of_the_serious_adverse_event_rule_and_its_own_alert_id():
    rules = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    rule = next(r for g in rules for r in g["rules"] if r.get("alert") == "SeriousAdverseEvent")
    alert = safety_alert(raised_at=datetime.now(UTC))
    sent_before = notifications("sent")

    received = run_against([], [alert, safety_alert("duplicate-case", Severity.WARNING)])

    assert len(received) == 1 and len(received[0]) == 1, "one post, and only the critical alert"
    posted = received[0][0]
    # routed like the rule's alert, yet one Alertmanager alert (one page) per pvwatch alert
    assert posted["labels"] == {"alertname": "SeriousAdverseEvent", **rule["labels"], "alert_id": str(alert.alert_id)}
    assert posted["annotations"]["runbook_url"] == rule["annotations"]["runbook_url"]
    assert posted["annotations"]["pvwatch_alert_id"] == str(alert.alert_id)
    assert "pt-" not in str(posted), "no patient pseudonym leaves for the pager"
    assert datetime.fromisoformat(posted["startsAt"]) == alert.raised_at
    # The rule's alert for this event lasts <= 10 min (its increase window) + scrape + evaluation, or 4 min past
    # its last resend if Prometheus's resolve is lost: the direct alert must outlive it to keep it inhibited.
    fires_for = datetime.fromisoformat(posted["endsAt"]) - alert.raised_at
    assert timedelta(minutes=15) <= fires_for < timedelta(minutes=15, seconds=5), "15 min from the post"
    assert notifications("sent") == sent_before + 1


def test_a_direct_alert_outlives_the_rule_alert_of_the_same_event_with_the_shipped_settings():
    """Else the rule's alert stops being muted and pages the officer again, late (alertmanager.yml). The rule's
    alert ends <= window + scrape + evaluation after the count when Prometheus's resolve arrives, or, if it is
    lost, at the endsAt of its last firing send: 4 x max(evaluation interval, resend delay) later (Prometheus
    rules/alerting.go sends `ValidUntil = ts + 4 * resendDelay`; `--rules.alert.resend-delay` defaults to 1m)."""
    prometheus = yaml.safe_load((ALERT_RULES.parents[1] / "prometheus.yml").read_text())
    scrape = parse_duration_s(next(j for j in prometheus["scrape_configs"] if j["job_name"] == "pvwatch")
                              .get("scrape_interval", prometheus["global"]["scrape_interval"]))
    routes = load_direct_routes()
    paged = {routes.by_rule["serious-ae"].alertname, routes.other_critical.alertname if routes.other_critical else ""}
    for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]:
        evaluation = parse_duration_s(group.get("interval", prometheus["global"]["evaluation_interval"]))
        for rule in (r for r in group["rules"] if r.get("alert") in paged):
            [window] = re.findall(r"increase\([^\[]*\[(\w+)\]\)", rule["expr"])
            longest = parse_duration_s(window) + scrape + evaluation + 4 * max(evaluation, 60)
            assert DIRECT_ALERT_FIRING.total_seconds() > longest, (rule["alert"], longest)
            paged.discard(rule["alert"])
    assert paged == set(), f"not found in the rules: {paged}"


def test_two_serious_adverse_events_are_two_alertmanager_alerts():
    first, second = safety_alert(), safety_alert()
    [body] = run_against([], [first, second])
    assert [a["labels"]["alert_id"] for a in body] == [str(first.alert_id), str(second.alert_id)]
    assert body[0]["labels"] != body[1]["labels"], "Alertmanager would merge them into one alert and one page"


def test_an_alert_raised_long_ago_and_posted_now_outlives_the_rule_alert_its_count_starts_now():
    """A worker re-paging a crashed worker's alert (raised an hour ago) counts it now: the rule's alert fires
    for the next 10 minutes, so the direct alert must not have ended already (it would mute nothing)."""
    alert = safety_alert(raised_at=datetime.now(UTC) - timedelta(hours=1))
    before = datetime.now(UTC)
    [[posted]] = run_against([], [alert])
    assert datetime.fromisoformat(posted["startsAt"]) == alert.raised_at
    assert datetime.fromisoformat(posted["endsAt"]) >= before + timedelta(minutes=15)


def test_other_critical_rules_post_as_the_catch_all_rule_would_fire_them():
    rules = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    catch_all = next(r for g in rules for r in g["rules"] if r.get("alert") == "CriticalSafetyAlert")

    received = run_against([], [safety_alert("hys-law"), safety_alert("expedited-overdue"), safety_alert()])

    posted = {a["labels"]["alertname"]: a for a in received[0]}
    assert set(posted) == {"SeriousAdverseEvent", "CriticalSafetyAlert"}, (
        "expedited-overdue is paged by ExpeditedReportOverdue (the gauge), not posted")
    hys_law = posted["CriticalSafetyAlert"]
    assert hys_law["labels"] == {"alertname": "CriticalSafetyAlert", "rule": "hys-law", **catch_all["labels"],
                                 "alert_id": hys_law["annotations"]["pvwatch_alert_id"]}
    assert posted["CriticalSafetyAlert"]["annotations"]["summary"] == "Critical safety alert from pvwatch rule hys-law"


def test_every_paged_rule_has_its_critical_series_at_zero_before_its_first_alert():
    routes = load_direct_routes()
    initialise_alert_series(routes, ["serious-ae", "hys-law", "expedited-overdue", "a-rule-added-later"])
    def critical_count(rule: str) -> float | None:
        return REGISTRY.get_sample_value("pv_alerts_raised_total", {"rule": rule, "severity": "critical"})

    for rule in ("serious-ae", "hys-law"):  # other tests in this process may have counted some
        assert critical_count(rule) is not None
    assert critical_count("a-rule-added-later") == 0
    assert routes.route_for("expedited-overdue") is None


def test_unavailable_alertmanager_is_retried_until_it_accepts():
    sent_before, failed_before = notifications("sent"), notifications("failed")
    received = run_against([503, 503], [safety_alert()])
    assert len(received) == 3
    assert received[0] == received[2], "the same alert each time"
    assert (notifications("sent"), notifications("failed")) == (sent_before + 1, failed_before)


def test_rejected_body_is_not_retried_and_counted_as_failed():
    failed_before = notifications("failed")
    received = run_against([400], [safety_alert()])
    assert len(received) == 1
    assert notifications("failed") == failed_before + 1


def test_unreachable_alertmanager_gives_up_after_every_attempt_and_counts_a_failure():
    failed_before = notifications("failed")

    async def scenario() -> None:
        notifier = AlertmanagerNotifier(f"http://127.0.0.1:{free_port()}", load_direct_routes(),
                                        retry_delays_s=(0.01, 0.01))
        notifier.post([safety_alert()])
        await notifier.close()

    asyncio.run(scenario())
    assert notifications("failed") == failed_before + 1
