"""The stories planted in the synthetic cohort (pvwatch.cohort.planted_stories) each raise the alert a safety
officer would expect, and the background patients raise none of the story rules: every ctcae-lab, hys-law,
duplicate-case, infusion-temporal and flare-after-taper alert of the cohort belongs to a planted story."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from pvwatch.cohort import generate_cohort, planted_stories
from pvwatch.domain.engine import SafetyEngine
from pvwatch.events.codec import parse_event
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.rulebook import load_rule_parameters

PATIENTS, SEED = 60, 7
EXPECTED_RULES = {
    "infusion-reaction": {"infusion-temporal"},
    "neutropenia": {"ctcae-lab"},
    "flare-after-taper": {"flare-after-taper"},
    "death": {"serious-ae", "expedited-clock", "infusion-temporal"},
    "hys-law": {"hys-law"},
    "duplicate-report": {"duplicate-case"},
    "lot-cluster": {"lot-cluster"},
}
STORY_ONLY_RULES = {"ctcae-lab", "hys-law", "duplicate-case", "infusion-temporal", "flare-after-taper"}


@pytest.fixture(scope="module")
def cohort_alerts():
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    events = [parse_event(pseudonymiser.pseudonymise_record(r)) for r in generate_cohort(PATIENTS, SEED)]
    random.Random(3).shuffle(events)
    engine = SafetyEngine(load_rule_parameters())
    now = datetime.now(UTC)
    alerts = {}
    for start in range(0, len(events), 500):
        for alert in engine.apply(events[start:start + 500], now).alerts:
            alerts[alert.alert_id] = alert
    return list(alerts.values())


@pytest.mark.parametrize("kind", sorted(EXPECTED_RULES))
def test_each_planted_story_raises_its_alerts(cohort_alerts, kind):
    story = planted_stories(PATIENTS, SEED)[kind]
    evidence = {str(event_id) for event_id in story.event_ids}
    raised = {a.rule_id for a in cohort_alerts if evidence & {str(e) for e in a.evidence_event_ids}}
    assert EXPECTED_RULES[kind] <= raised, f"{kind}: raised {sorted(raised)}"


def test_background_patients_raise_none_of_the_story_rules(cohort_alerts):
    planted = {str(e) for story in planted_stories(PATIENTS, SEED).values() for e in story.event_ids}
    stray = [a for a in cohort_alerts if a.rule_id in STORY_ONLY_RULES
             and not planted & {str(e) for e in a.evidence_event_ids}]
    assert stray == [], [a.summary for a in stray]
