"""Expedited-report clocks from day 0.

Sources: ICH E2A III.A.1 (fatal or life-threatening unexpected ADR: 7 calendar days, complete report within 8
more), III.A.2 (other serious unexpected: 15 calendar days); ICH E2D 3.2 (day 0 = first awareness of the four
minimum criteria). The worked example in the notes: day 0 on a Monday -> the 7-day report is due next Monday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from pvwatch.domain.expedited import (
    ClockCategory,
    ClockParameters,
    ClockStatus,
    QualifyingReport,
    ReportSubmission,
    clocks_for_case,
)

P = ClockParameters()
MONDAY = date(2026, 3, 2)


def version(day0: date, fatal: bool) -> QualifyingReport:
    return QualifyingReport(uuid4(), "C-1", day0, fatal, "IB v3")


def by_category(clocks):
    return {c.category: c for c in clocks}


def test_fatal_unexpected_case_is_due_in_7_calendar_days():
    clocks = by_category(clocks_for_case([version(MONDAY, True)], [], P))
    assert clocks[ClockCategory.FATAL_OR_LIFE_THREATENING].due_date == date(2026, 3, 9)  # next Monday
    assert clocks[ClockCategory.FATAL_OR_LIFE_THREATENING].due_date.weekday() == 0
    assert clocks[ClockCategory.FATAL_FOLLOW_UP].due_date == date(2026, 3, 17)  # 8 more days: day 15
    assert ClockCategory.OTHER_SERIOUS not in clocks


def test_other_susar_is_due_in_15_calendar_days():
    clocks = clocks_for_case([version(MONDAY, False)], [], P)
    assert [(c.category, c.due_date) for c in clocks] == [(ClockCategory.OTHER_SERIOUS, date(2026, 3, 17))]


def test_follow_up_keeps_the_case_clock():
    first, follow_up = version(MONDAY, False), version(MONDAY + timedelta(days=5), False)
    (clock,) = clocks_for_case([follow_up, first], [], P)
    assert clock.day0 == MONDAY
    assert clock.evidence_event_ids == (first.event_id, follow_up.event_id)


def test_follow_up_reporting_a_death_starts_a_7_day_clock_from_its_own_day_0():
    later = MONDAY + timedelta(days=4)
    clocks = by_category(clocks_for_case([version(MONDAY, False), version(later, True)], [], P))
    assert clocks[ClockCategory.OTHER_SERIOUS].due_date == date(2026, 3, 17)
    assert clocks[ClockCategory.FATAL_OR_LIFE_THREATENING].day0 == later
    assert clocks[ClockCategory.FATAL_OR_LIFE_THREATENING].due_date == later + timedelta(days=7)


def test_status_open_due_soon_overdue_at_the_boundaries():
    (clock,) = clocks_for_case([version(MONDAY, False)], [], P)
    due_at = datetime(2026, 3, 18, tzinfo=UTC)  # end of the due date
    assert clock.due_at == due_at
    assert clock.status(due_at - timedelta(hours=48, seconds=1), P) is ClockStatus.OPEN
    assert clock.status(due_at - timedelta(hours=48), P) is ClockStatus.DUE_SOON
    assert clock.status(due_at - timedelta(seconds=1), P) is ClockStatus.DUE_SOON
    assert clock.status(due_at, P) is ClockStatus.OVERDUE
    assert clock.seconds_until_due(due_at - timedelta(hours=1)) == 3600


def test_submission_stops_the_clock_and_records_lateness():
    report = version(MONDAY, False)
    on_time = ReportSubmission(uuid4(), "C-1", ClockCategory.OTHER_SERIOUS, datetime(2026, 3, 17, 23, 59, tzinfo=UTC))
    (clock,) = clocks_for_case([report], [on_time], P)
    assert clock.status(datetime(2026, 4, 1, tzinfo=UTC), P) is ClockStatus.SUBMITTED
    assert not clock.became_overdue(datetime(2026, 4, 1, tzinfo=UTC))
    late = ReportSubmission(uuid4(), "C-1", ClockCategory.OTHER_SERIOUS, datetime(2026, 3, 18, 0, 1, tzinfo=UTC))
    (clock,) = clocks_for_case([report], [late], P)
    assert clock.status(datetime(2026, 4, 1, tzinfo=UTC), P) is ClockStatus.SUBMITTED_LATE
    assert clock.became_overdue(datetime(2026, 4, 1, tzinfo=UTC))


def test_submission_of_one_category_leaves_the_other_running():
    report = version(MONDAY, True)
    seven = ReportSubmission(uuid4(), "C-1", ClockCategory.FATAL_OR_LIFE_THREATENING,
                             datetime(2026, 3, 5, tzinfo=UTC))
    clocks = by_category(clocks_for_case([report], [seven], P))
    assert clocks[ClockCategory.FATAL_OR_LIFE_THREATENING].submitted_at is not None
    assert clocks[ClockCategory.FATAL_FOLLOW_UP].submitted_at is None


def test_case_recorded_after_its_deadline_is_overdue_without_a_due_soon_warning():
    late = QualifyingReport(uuid4(), "C-1", MONDAY, False, None, recorded_at=datetime(2026, 4, 1, tzinfo=UTC))
    (clock,) = clocks_for_case([late], [], P)
    now = datetime(2026, 4, 2, tzinfo=UTC)
    assert clock.became_overdue(now)
    assert not clock.became_due_soon(now, P)
    in_time = QualifyingReport(uuid4(), "C-1", MONDAY, False, None, recorded_at=datetime(2026, 3, 2, 9, tzinfo=UTC))
    (clock,) = clocks_for_case([in_time], [], P)
    assert clock.became_due_soon(now, P) and clock.became_overdue(now)
