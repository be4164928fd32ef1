"""Every planted story (tests/scenarios/*.yaml) through the rule engine with the shipped rules.yaml and RSI:
in the order written, in reverse and shuffled (rules go by occurred_at, so arrival order must not matter)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from pvwatch.domain.engine import SafetyEngine
from pvwatch.rulebook import load_rule_parameters
from tests.scenarios.stories import Story, all_stories

PARAMETERS = load_rule_parameters()
STORIES = all_stories()
LATER = datetime(2026, 12, 31, tzinfo=UTC)


def run(story: Story, events) -> tuple[list, SafetyEngine]:
    engine = SafetyEngine(PARAMETERS)
    now = story.now or LATER
    alerts = []
    for event in events:  # one event per batch: the worst case for late arrival
        alerts.extend(engine.apply([event], now).alerts)
    alerts.extend(engine.clock_alerts(now))
    unique = {a.alert_id: a for a in alerts}
    return list(unique.values()), engine


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_story_raises_exactly_its_alerts(story: Story):
    alerts, _ = run(story, story.events)
    story.check(alerts)


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_story_alerts_do_not_depend_on_arrival_order(story: Story):
    forward, _ = run(story, story.events)
    shuffled = list(story.events)
    random.Random(7).shuffle(shuffled)
    for order in (list(reversed(story.events)), shuffled):
        again, _ = run(story, order)
        assert {a.alert_id for a in again} == {a.alert_id for a in forward}
        story.check(again)


@pytest.mark.parametrize("story", [s for s in STORIES if s.clocks is not None], ids=lambda s: s.name)
def test_story_expedited_clocks(story: Story):
    _, engine = run(story, story.events)
    assert story.now is not None
    far_future = datetime(2100, 1, 1, tzinfo=UTC)  # status from the log alone: only a submission stops a clock
    found = sorted((row.clock.case_id, row.clock.category.value, row.clock.day0.isoformat(),
                    row.clock.due_date.isoformat(),
                    "open" if row.clock.submitted_at is None else row.clock.status(far_future, PARAMETERS.clocks).value,
                    row.clock.status(story.now, PARAMETERS.clocks).value)
                   for row in engine.clocks.values())
    expected = sorted((c["case"], c["category"], str(c["day0"]), str(c["due_date"]), c["status"], c["status_now"])
                      for c in story.clocks or [])
    assert found == expected


def test_a_disabled_rule_neither_evaluates_nor_alerts():
    from dataclasses import replace

    story = next(s for s in STORIES if s.name == "lot-cluster")
    parameters = replace(PARAMETERS, disabled=frozenset({"lot-cluster"}))
    output = SafetyEngine(parameters).apply(story.events, LATER)
    assert not [a for a in output.alerts if a.rule_id == "lot-cluster"]
    assert output.evaluations["lot-cluster"] == 0
    assert output.evaluations["serious-ae"] == 3  # the other rules still run


def test_a_claimed_worsening_is_not_an_undocumented_benefit():
    story = next(s for s in STORIES if s.name == "undocumented-benefit")
    claim = next(e for e in story.events if e.event_id == story.event_id("claim"))
    worse = claim.model_copy(update={"direction": "worsened"})
    alerts = SafetyEngine(PARAMETERS).apply([worse], LATER).alerts
    assert alerts == []


def test_a_submission_arriving_after_the_deadline_withdraws_the_overdue_alert():
    """pvwatch judged the clock with what it knew then; the on-time submission, arriving later, withdraws it."""
    story = next(s for s in STORIES if s.name == "fatal-susar")
    submission = [e for e in story.events if e.type == "report-submitted"]
    rest = [e for e in story.events if e.type != "report-submitted"]
    live = SafetyEngine(PARAMETERS)
    live.apply(rest, LATER)
    seen = {(a.rule_id, a.details["category"]): a.alert_id for a in live.clock_alerts(LATER)}
    withdrawn = live.apply(submission, LATER).withdrawn
    assert ("expedited-overdue", "7-day") in seen  # raised while the on-time submission was unknown
    # sent 2026-03-06 15:00, before the due-soon window (from 2026-03-08 00:00) and the deadline (end of 03-09)
    assert set(withdrawn) == {seen[("expedited-overdue", "7-day")], seen[("expedited-due-soon", "7-day")]}
    replayed = SafetyEngine(PARAMETERS)
    replayed.apply(story.events, LATER)
    assert ("expedited-overdue", "7-day") not in {(a.rule_id, a.details["category"])
                                                  for a in replayed.clock_alerts(LATER)}
