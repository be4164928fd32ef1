"""The engine reads only the event types in RULE_INPUT_TYPES: replay leaves the others out of it (before decoding
them) and must derive exactly the alerts and expedited clocks an engine given every event derives."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from pvwatch.cohort import generate_cohort
from pvwatch.domain.engine import RULE_INPUT_TYPES, SafetyEngine
from pvwatch.events.codec import parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import EVENT_TYPES
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.rulebook import load_rule_parameters
from tests.scenarios.stories import all_stories

NOW = datetime.now(UTC)


def derived(events: list[EventEnvelope]) -> tuple[dict, dict]:
    """Every alert (its last derivation) and clock an engine derives from `events`, fed in batches of 200."""
    engine = SafetyEngine(load_rule_parameters())
    alerts = {}
    for start in range(0, len(events), 200):
        alerts.update({a.alert_id: a.model_copy(update={"raised_at": NOW})
                       for a in engine.apply(events[start:start + 200], NOW).alerts})
    alerts.update({a.alert_id: a for a in engine.clock_alerts(NOW)})
    return alerts, dict(engine.clocks)


def test_rule_input_types_are_event_types():
    assert RULE_INPUT_TYPES.issubset(EVENT_TYPES)


def test_leaving_out_the_types_no_rule_reads_derives_the_same_alerts_and_clocks():
    """The synthetic cohort (every event type, treatment starts and dose changes included) plus every planted
    story (so every rule fires), in a shuffled arrival order."""
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    events = [parse_event(pseudonymiser.pseudonymise_record(r)) for r in generate_cohort(60, 7)]
    events += [event for story in all_stories() for event in story.events]
    random.Random(5).shuffle(events)
    left_out = {e.type for e in events} - RULE_INPUT_TYPES
    assert {"treatment-started", "treatment-dose-changed"} <= left_out, "the test must leave something out"

    every_event = derived(events)
    rule_inputs = derived([e for e in events if e.type in RULE_INPUT_TYPES])

    assert rule_inputs == every_event
    assert {a.rule_id for a in every_event[0].values()} >= {
        "serious-ae", "duplicate-case", "ctcae-lab", "hys-law", "expedited-clock", "infusion-temporal",
        "lot-cluster", "flare-after-taper", "undocumented-benefit"}
