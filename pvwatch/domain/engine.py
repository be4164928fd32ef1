"""The rule engine: one pure function from newly stored events to the alerts they raise.

The live worker and `pvwatch replay` both call `evaluate_events`, so a rule lives in one place and a replay
of the log derives exactly what the live path derived.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pvwatch.domain import serious_ae
from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.envelope import EventEnvelope

RULE_IDS: tuple[str, ...] = (serious_ae.RULE_ID,)


def evaluate_events(events: Iterable[EventEnvelope], now: datetime) -> tuple[list[SafetyAlert], dict[str, int]]:
    """Alerts raised by `events` (in occurred_at order) and the number of evaluations per rule."""
    alerts: list[SafetyAlert] = []
    evaluations = dict.fromkeys(RULE_IDS, 0)
    for event in sorted(events, key=lambda e: (e.occurred_at, str(e.event_id))):
        if isinstance(event, AdverseEventReported):
            evaluations[serious_ae.RULE_ID] += 1
            alert = serious_ae.evaluate(event, now)
            if alert is not None:
                alerts.append(alert)
    return alerts, evaluations
