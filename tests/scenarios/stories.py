"""Planted safety stories: one YAML file per story with its events and the alerts it must and must not raise.

Event ids are short aliases in the files (`infusion`, `fever`); they become UUIDs derived from the story name,
so expectations can name their evidence. `recorded_at` defaults to `occurred_at`, `source` to "scenario".
Time-driven rules (expedited-due-soon, expedited-overdue) are judged at the story's `now`.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import yaml

from pvwatch.events.alert import SafetyAlert
from pvwatch.events.codec import parse_event
from pvwatch.events.envelope import EventEnvelope

HERE = Path(__file__).parent
STORY_NAMESPACE = UUID("9a4f3c1e-51d2-4b8e-a1c7-3f0e5b6d7a21")
TIME_DRIVEN = frozenset({"expedited-due-soon", "expedited-overdue"})


@dataclass
class Story:
    name: str
    path: Path
    events: list[EventEnvelope]
    ids: dict[str, UUID]
    must_raise: list[dict[str, Any]]
    must_not_raise: list[str]
    now: datetime | None
    clocks: list[dict[str, Any]] | None

    def event_id(self, alias: str) -> UUID:
        return self.ids[alias]

    def check(self, alerts: list[SafetyAlert], *, time_driven: bool = True) -> None:
        """Assert the alerts are exactly what the story says (per rule), and none of the forbidden rules fired."""
        considered = [a for a in alerts if time_driven or a.rule_id not in TIME_DRIVEN]
        expected = [e for e in self.must_raise if time_driven or e["rule"] not in TIME_DRIVEN]
        counts = Counter(e["rule"] for e in expected)
        raised = Counter(a.rule_id for a in considered)
        for rule, count in counts.items():
            assert raised[rule] == count, f"{self.name}: {rule} raised {raised[rule]}x, expected {count}x: " + \
                "; ".join(a.summary for a in considered if a.rule_id == rule)
        for forbidden in self.must_not_raise:
            assert raised[forbidden] == 0, f"{self.name}: {forbidden} must not fire: " + \
                "; ".join(a.summary for a in considered if a.rule_id == forbidden)
        unmatched = list(considered)
        for expectation in expected:
            match = next((a for a in unmatched if self._matches(a, expectation)), None)
            assert match is not None, f"{self.name}: no alert matches {expectation}; raised: " + \
                "; ".join(f"{a.rule_id} {a.severity} {a.case_id} {a.details}" for a in considered)
            unmatched.remove(match)

    def _matches(self, alert: SafetyAlert, expectation: dict[str, Any]) -> bool:
        if alert.rule_id != expectation["rule"]:
            return False
        if "severity" in expectation and alert.severity.value != expectation["severity"]:
            return False
        if "case" in expectation and alert.case_id != expectation["case"]:
            return False
        evidence = {self.ids[alias] for alias in expectation.get("evidence", [])}
        if not evidence <= set(alert.evidence_event_ids):
            return False
        return all(alert.details.get(key) == value for key, value in expectation.get("details", {}).items())


def _event(story: str, raw: dict[str, Any], patients: dict[str, str], ids: dict[str, UUID]) -> EventEnvelope:
    record = dict(raw)
    alias = record.pop("id")
    ids[alias] = uuid5(STORY_NAMESPACE, f"{story}/{alias}")
    record["event_id"] = str(ids[alias])
    record["patient"] = patients[record["patient"]]
    record.setdefault("recorded_at", record["occurred_at"])
    record.setdefault("source", "scenario")
    return parse_event(record)


def load(path: Path) -> Story:
    document = yaml.safe_load(path.read_text())
    ids: dict[str, UUID] = {}
    events = [_event(document["story"], raw, document["patients"], ids) for raw in document["events"]]
    return Story(document["story"], path, events, ids, document.get("must_raise", []),
                 document.get("must_not_raise", []), document.get("now"), document.get("clocks"))


def all_stories() -> list[Story]:
    return [load(path) for path in sorted(HERE.glob("*.yaml"))]


def late_and_out_of_order(events: list[EventEnvelope], seed: int) -> list[EventEnvelope]:
    """The events in a shuffled arrival order.

    Any order will do, submissions included: due-soon and overdue are judged against the wall clock, which is months
    past these stories' deadlines, so a case that arrives before its on-time submission is, as far as pvwatch then
    knows, overdue; the submission withdraws that alert when it arrives (docs/rules.md, "Late and out-of-order
    events"; tests/unit/test_rule_scenarios.py shows it).
    """
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    return shuffled
