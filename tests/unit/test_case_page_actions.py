"""The case page labels each action with the life of its alert it was taken on (dashboards/webapp.py
_actions_labelled): an alert withdrawn, raised again under the same id (a flare's baseline changing back,
docs/rules.md "Late and out-of-order events") and withdrawn again has two lives, and each action belongs to the
one that stood when the officer took it."""

from __future__ import annotations

from pvwatch.dashboards.webapp import _actions_labelled

ALERT = "5f4e3011-3f87-5ff7-bca9-aa763c733565"


def acted(action: str, at: str) -> dict[str, str]:
    return {"alert_id": ALERT, "action": action, "actor": "olivia", "acted_at": f"2026-11-30T{at}:00+00:00"}


def withdrawal(at: str) -> dict[str, str]:
    return {"alert_id": ALERT, "rule_id": "flare-after-taper", "severity": "warning",
            "withdrawn_at": f"2026-11-30T{at}:00+00:00"}


def labels(history: list[dict[str, str]], standing_raised_at: str | None,
           withdrawals: list[dict[str, str]]) -> list[tuple[str, str | None]]:
    alerts = [] if standing_raised_at is None else [
        {"alert_id": ALERT, "rule_id": "flare-after-taper", "severity": "warning",
         "raised_at": f"2026-11-30T{standing_raised_at}:00+00:00"}]
    return [(row["action"], row["withdrawn_at"] and row["withdrawn_at"][11:16])
            for row in _actions_labelled(history, alerts, withdrawals)]


def test_each_action_belongs_to_the_life_that_stood_when_it_was_taken() -> None:
    # raised 09:00, acknowledged 09:10, withdrawn 10:00; raised again 11:00, assigned 11:10, withdrawn again 12:00;
    # raised a third time 13:00 and closed 13:10
    history = [acted("acknowledge", "09:10"), acted("assign", "11:10"), acted("close", "13:10")]
    assert labels(history, "13:00", [withdrawal("12:00"), withdrawal("10:00")]) == [
        ("acknowledge", "10:00"), ("assign", "12:00"), ("close", None)]


def test_an_action_landing_between_a_withdrawal_and_the_raise_again_is_on_the_withdrawn_life() -> None:
    # sent from a snapshot that still showed the first life (withdrawn 10:00) before it was raised again at 11:00
    history = [acted("acknowledge", "10:00"), acted("close", "10:05"), acted("assign", "11:10")]
    assert labels(history, "11:00", [withdrawal("10:00")]) == [
        ("acknowledge", "10:00"), ("close", "10:00"), ("assign", None)]
    assert labels(history, None, [withdrawal("10:00")]) == [
        ("acknowledge", "10:00"), ("close", "10:00"), ("assign", "10:00")]
