"""Alert actions are events in the log; the alert_status view derives each alert's status from them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from pvwatch.cohort import generate_cohort
from pvwatch.domain.engine import evaluate_events
from pvwatch.events import AdverseEventReported
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.alert_action import AlertAction, AlertActionRecorded
from pvwatch.events.codec import decode_event, encode_event
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.store.eventstore import EventStore, MessageOrigin

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def action(alert: SafetyAlert, kind: AlertAction, minutes: int, actor: str = "officer1", **fields: str) -> (
        AlertActionRecorded):
    at = T0 + timedelta(minutes=minutes)
    return AlertActionRecorded(event_id=uuid.uuid4(), occurred_at=at, recorded_at=at, source="pvwatch-dashboard",
                               patient=alert.patient, alert_id=alert.alert_id, action=kind, actor=actor, **fields)


@pytest.fixture
def store_with_alerts(tmp_path):
    p = Pseudonymiser.from_secret(None, demo_mode=True)
    events = [AdverseEventReported.model_validate(p.pseudonymise_record(r)) for r in generate_cohort(40, seed=4)
              if r["type"] == "adverse-event"]
    derived, _ = evaluate_events(events, T0)
    alerts = list({alert.alert_id: alert for alert in derived}.values())  # a follow-up re-derives its case's alert
    store = EventStore(tmp_path / "s.duckdb")
    with store.transaction():
        store.insert_events([(e, None) for e in events], T0)
        store.insert_alerts(alerts)
    assert len(alerts) >= 3
    yield store, alerts
    store.close()


def status_of(store: EventStore, alert: SafetyAlert) -> tuple:
    return store.con.execute(
        "SELECT status, assignee, close_reason, last_actor, action_count FROM alert_status WHERE alert_id = ?",
        [str(alert.alert_id)],
    ).fetchone()


def test_status_follows_the_latest_action_and_the_log_keeps_every_action(store_with_alerts):
    store, alerts = store_with_alerts
    first, second, untouched = alerts[0], alerts[1], alerts[2]
    actions = [
        action(first, AlertAction.ACKNOWLEDGE, 1),
        action(first, AlertAction.ASSIGN, 2, assignee="officer2"),
        action(first, AlertAction.CLOSE, 3, actor="officer2", reason="reported to the regulator; no new signal"),
        action(second, AlertAction.ASSIGN, 1, assignee="officer2"),
    ]
    # Stored in a different order than they happened: status follows when they happened.
    with store.transaction():
        store.insert_events([(a, MessageOrigin(AlertActionRecorded.topic, 0, i)) for i, a in
                             enumerate(reversed(actions))], T0)

    assert status_of(store, first) == ("closed", None, "reported to the regulator; no new signal", "officer2", 3)
    assert status_of(store, second) == ("assigned", "officer2", None, "officer1", 1)
    assert status_of(store, untouched) == ("open", None, None, None, 0)
    total = store.con.execute("SELECT count(*) FROM alert_status").fetchone()[0]
    assert total == len(alerts), "every alert appears once, acted on or not"

    with store.transaction():
        store.insert_events([(action(first, AlertAction.REOPEN, 4, reason="follow-up: fatal outcome"), None)], T0)
    assert status_of(store, first)[:2] == ("open", None)
    audit = store.con.execute("SELECT action, actor FROM alert_actions WHERE alert_id = ? ORDER BY acted_at",
                              [str(first.alert_id)]).fetchall()
    assert audit == [("acknowledge", "officer1"), ("assign", "officer1"), ("close", "officer2"),
                     ("reopen", "officer1")]


def test_an_action_event_round_trips_on_its_topic_and_rejects_incomplete_actions(store_with_alerts):
    _, alerts = store_with_alerts
    event = action(alerts[0], AlertAction.CLOSE, 1, reason="duplicate of another case")
    assert decode_event(encode_event(event), "pv.safety.alert-action.v1") == event
    with pytest.raises(ValidationError, match="close needs a reason"):
        action(alerts[0], AlertAction.CLOSE, 1)
    with pytest.raises(ValidationError, match="assign needs an assignee"):
        action(alerts[0], AlertAction.ASSIGN, 1)
