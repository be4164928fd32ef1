"""The rule engine: patient histories in, alerts out. The live worker and `pvwatch replay` both use it.

`SafetyEngine.apply` takes newly stored events, adds them to the histories and runs every rule on each of
them; rules are pure functions of (new event, patient history, parameters). Because alert ids are derived
from the evidence, the same log yields the same alerts whether it arrives live, late, out of order or is
replayed in bulk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pvwatch.domain import duplicate_case, serious_ae
from pvwatch.domain.history import History
from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.envelope import EventEnvelope

RULE_IDS: tuple[str, ...] = (serious_ae.RULE_ID, duplicate_case.RULE_ID)


@dataclass
class EngineOutput:
    alerts: list[SafetyAlert] = field(default_factory=list)
    evaluations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULE_IDS, 0))


class SafetyEngine:
    def __init__(self) -> None:
        self.history = History()

    def remember(self, events: Iterable[EventEnvelope]) -> None:
        """Load history without evaluating (worker start-up: these events were evaluated before)."""
        for event in events:
            self.history.add(event)

    def apply(self, events: Iterable[EventEnvelope], now: datetime) -> EngineOutput:
        output = EngineOutput()
        ordered = sorted(events, key=lambda e: (e.occurred_at, e.event_id))
        for event in ordered:
            patient = self.history.add(event)
            if isinstance(event, AdverseEventReported):
                output.evaluations[serious_ae.RULE_ID] += 1
                alert = serious_ae.evaluate(event, now)
                if alert is not None:
                    output.alerts.append(alert)
                output.evaluations[duplicate_case.RULE_ID] += 1
                output.alerts.extend(duplicate_case.evaluate(event, patient, now))
        return output


def evaluate_events(events: Iterable[EventEnvelope], now: datetime) -> tuple[list[SafetyAlert], dict[str, int]]:
    """Alerts raised by `events` alone, with a fresh history (for tests and one-off checks)."""
    output = SafetyEngine().apply(events, now)
    return output.alerts, output.evaluations
