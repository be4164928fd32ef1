"""The expedited-clock gauges kept clock by clock (streams/pipeline.py OpenClockGauges) say what the clocks say.

The reference is the clocks' own reading (ExpeditedClock.became_overdue, seconds_until_due; ICH E2A III.A: a
fatal or life-threatening SUSAR within 7 calendar days, another within 15, due at the end of the due date), counted
over every clock as the worker did before it kept the gauges up to date per batch.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from pvwatch.cohort import generate_cohort
from pvwatch.domain.engine import ClockRow, EngineOutput, SafetyEngine
from pvwatch.domain.expedited import ClockCategory, ExpeditedClock, due_at_end_of
from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.codec import parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.report_submission import ExpeditedReportSubmitted
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.streams.pipeline import ClockGauges, OpenClockGauges
from tests.scenarios.stories import all_stories
from tests.unit.test_rule_withdrawal import NOW, PARAMETERS, case_version, envelope

DAY0 = date(2026, 3, 2)


def clock_row(case_id: str, category: ClockCategory, day0: date, submitted_at: datetime | None = None) -> ClockRow:
    days = 7 if category is ClockCategory.FATAL_OR_LIFE_THREATENING else 15  # ICH E2A III.A.1, III.A.2
    due = day0 + timedelta(days=days)
    clock = ExpeditedClock(case_id, category, day0, due, due_at_end_of(due), "rsi-1", (uuid4(),),
                           submitted_at=submitted_at)
    return ClockRow("patient-1", clock)


def recount(clocks: dict[tuple[str, str], ClockRow], now: datetime) -> ClockGauges:
    """Every clock read again, as the worker did in each batch before OpenClockGauges."""
    open_clocks = [row.clock for row in clocks.values() if row.clock.submitted_at is None]
    return ClockGauges(
        {category.value: sum(1 for clock in open_clocks if clock.category is category) for category in ClockCategory},
        min((clock.seconds_until_due(now) for clock in open_clocks), default=float("inf")),
        sum(1 for clock in open_clocks if clock.became_overdue(now)),
    )


def assert_same(kept: ClockGauges, expected: ClockGauges) -> None:
    assert kept.open_by_category == expected.open_by_category
    assert kept.overdue == expected.overdue
    assert kept.nearest_deadline_s == pytest.approx(expected.nearest_deadline_s, abs=1e-3)


def test_the_kept_gauges_follow_every_kind_of_clock_change() -> None:
    fatal = ("case-1", ClockCategory.FATAL_OR_LIFE_THREATENING.value)
    other = ("case-2", ClockCategory.OTHER_SERIOUS.value)
    done = ("case-3", ClockCategory.OTHER_SERIOUS.value)
    clocks = {
        fatal: clock_row("case-1", ClockCategory.FATAL_OR_LIFE_THREATENING, DAY0),
        other: clock_row("case-2", ClockCategory.OTHER_SERIOUS, DAY0),
        done: clock_row("case-3", ClockCategory.OTHER_SERIOUS, DAY0, submitted_at=datetime(2026, 3, 5, tzinfo=UTC)),
    }
    gauges = OpenClockGauges(clocks)
    due_7 = clocks[fatal].clock.due_at  # 2026-03-10 00:00 UTC: the end of day 0 + 7
    for now in (due_7 - timedelta(seconds=1), due_7, due_7 + timedelta(days=30)):
        assert_same(gauges.gauges(now), recount(clocks, now))
    assert gauges.gauges(due_7 - timedelta(seconds=1)).overdue == 0
    assert gauges.gauges(due_7).overdue == 1  # at the deadline itself the 7-day clock has run out
    assert gauges.gauges(due_7).open_by_category["7-day"] == 1

    # a late version with an earlier awareness date moves a clock's deadline: moved, not counted twice
    clocks[other] = clock_row("case-2", ClockCategory.OTHER_SERIOUS, DAY0 - timedelta(days=3))
    gauges.update({other: clocks[other]}, ())
    # the report is submitted: the clock is no longer open
    clocks[fatal] = clock_row("case-1", ClockCategory.FATAL_OR_LIFE_THREATENING, DAY0,
                              submitted_at=datetime(2026, 3, 6, tzinfo=UTC))
    gauges.update({fatal: clocks[fatal]}, ())
    now = datetime(2026, 3, 15, tzinfo=UTC)
    assert_same(gauges.gauges(now), recount(clocks, now))
    assert gauges.gauges(now).open_by_category == {"7-day": 0, "7-day-follow-up": 0, "15-day": 1}

    # a fatal version covering the 15-day clock removes it (EngineOutput.removed_clocks)
    gauges.update({}, [other])
    del clocks[other]
    assert_same(gauges.gauges(now), recount(clocks, now))
    assert gauges.gauges(now).nearest_deadline_s == float("inf")
    assert gauges.gauges(now).overdue == 0


def test_the_gauges_kept_from_the_engines_batches_equal_a_recount_of_its_clocks() -> None:
    """The worker updates the gauges from each batch's EngineOutput (clocks, removed_clocks) only; they must equal a
    recount of the engine's clocks after every batch, whatever the engine changed: the cohort and every planted story
    in shuffled batches of 1-60 after a restart (`remember`), then case C-WD-2 (tests/unit/test_rule_withdrawal.py):
    a hospitalised version opens a 15-day clock, its 15-day report is submitted, a late fatal version with the same
    day 0 removes that clock and opens the 7-day ones (ICH E2A III.A.1), the 7-day report is submitted; and a second
    case whose 15-day clock is opened and removed in one batch."""
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    events = [parse_event(pseudonymiser.pseudonymise_record(r)) for r in generate_cohort(60, 7)]
    events += [event for story in all_stories() for event in story.events]
    random.Random(5).shuffle(events)
    engine = SafetyEngine(PARAMETERS)
    engine.remember(events[:len(events) // 3])  # a restart: the stored log rebuilt, nothing evaluated
    gauges = OpenClockGauges(engine.clocks)
    times = (NOW, datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))

    def apply(batch: list[EventEnvelope]) -> EngineOutput:
        output = engine.apply(batch, NOW)
        gauges.update(output.clocks, output.removed_clocks)
        for now in times:
            assert_same(gauges.gauges(now), recount(engine.clocks, now))
        return output

    batches = random.Random(6)
    rest = events[len(events) // 3:]
    while rest:
        size = batches.randint(1, 60)
        apply(rest[:size])
        rest = rest[size:]

    def version(case_id: str, days: float, *, death: bool) -> AdverseEventReported:
        return case_version(days, death=death).model_copy(update={"case_id": case_id})

    open_15_day = gauges.gauges(NOW).open_by_category["15-day"]
    hospitalised, fatal = version("C-WD-2", 2.1, death=False), version("C-WD-2", 2.0, death=True)
    apply([hospitalised])
    assert gauges.gauges(NOW).open_by_category["15-day"] == open_15_day + 1
    assert apply([fatal]).removed_clocks.keys() == {("C-WD-2", "15-day")}  # an open clock removed
    assert gauges.gauges(NOW).open_by_category["15-day"] == open_15_day
    apply([submitted(fatal, "7-day", 4.0)])
    # opened and removed within one batch: never in the gauges
    assert not apply([version("C-WD-3", 5.1, death=False), version("C-WD-3", 5.0, death=True)]).removed_clocks
    assert {key for key in engine.clocks if key[0] == "C-WD-3"} == {("C-WD-3", "7-day"), ("C-WD-3", "7-day-follow-up")}
    later = version("C-WD-4", 6.0, death=False)
    apply([later])
    apply([submitted(later, "15-day", 7.0)])  # its report submitted: the clock is no longer open
    assert gauges.gauges(NOW).open_by_category["15-day"] == open_15_day


def submitted(version: AdverseEventReported, category: str, days: float) -> ExpeditedReportSubmitted:
    return ExpeditedReportSubmitted(**envelope(days), case_id=version.case_id, category=category,
                                    authority="EMA EudraVigilance")
