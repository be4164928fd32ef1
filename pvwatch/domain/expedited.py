"""Expedited-report clocks (rule `expedited-clock`, with `expedited-due-soon` and `expedited-overdue`).

Sources:
- ICH E2A (1994) section III.A.1-2: a fatal or life-threatening unexpected adverse drug reaction is reported
  "as soon as possible but no later than 7 calendar days after first knowledge", followed by "as complete a
  report as possible within 8 additional calendar days"; other serious, unexpected reactions "no later than
  15 calendar days after first knowledge".
- ICH E2D (2003) section 3.2: day 0 is the date any staff first hold the four minimum criteria (identifiable
  patient, identifiable reporter, suspect product, event): the report's `awareness_date`.

A clock belongs to a case and a category. Follow-up versions keep the case's clock (the first qualifying
version's day 0); a follow-up that first makes the case qualify for a category (e.g. reports a death)
starts that category's clock from its own awareness date. A submitted report stops the clock.

Due dates are calendar dates; a clock is due at the end of its due date in `ClockParameters.zone` (UTC by
default), so a report sent on the due date is on time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from uuid import UUID


class ClockCategory(StrEnum):
    FATAL_OR_LIFE_THREATENING = "7-day"  # ICH E2A III.A.1: initial report within 7 calendar days
    FATAL_FOLLOW_UP = "7-day-follow-up"  # ICH E2A III.A.1: complete report within 8 more days (day 15)
    OTHER_SERIOUS = "15-day"  # ICH E2A III.A.2


class ClockStatus(StrEnum):
    OPEN = "open"
    DUE_SOON = "due-soon"
    OVERDUE = "overdue"
    SUBMITTED = "submitted"
    SUBMITTED_LATE = "submitted-late"


@dataclass(frozen=True)
class ClockParameters:
    fatal_days: int = 7  # ICH E2A III.A.1
    fatal_follow_up_extra_days: int = 8  # ICH E2A III.A.1 ("within 8 additional calendar days")
    other_days: int = 15  # ICH E2A III.A.2
    due_soon_hours: float = 48.0  # pvwatch: warn this long before the deadline

    def days_for(self, category: ClockCategory) -> int:
        if category is ClockCategory.FATAL_OR_LIFE_THREATENING:
            return self.fatal_days
        if category is ClockCategory.FATAL_FOLLOW_UP:
            return self.fatal_days + self.fatal_follow_up_extra_days
        return self.other_days


@dataclass(frozen=True)
class QualifyingReport:
    """One version of a case that is a SUSAR (serious, unexpected, suspect product)."""

    event_id: UUID
    case_id: str
    awareness_date: date
    fatal_or_life_threatening: bool
    rsi_version: str | None
    recorded_at: datetime | None = None  # when this version reached the system (None: unknown)


@dataclass(frozen=True)
class ReportSubmission:
    event_id: UUID
    case_id: str
    category: ClockCategory
    submitted_at: datetime


@dataclass(frozen=True)
class ExpeditedClock:
    case_id: str
    category: ClockCategory
    day0: date
    due_date: date
    due_at: datetime  # end of the due date: the instant the clock runs out
    rsi_version: str | None
    evidence_event_ids: tuple[UUID, ...]
    submitted_at: datetime | None = None
    submission_event_id: UUID | None = None
    known_at: datetime | None = None  # when the first qualifying version was recorded

    def status(self, now: datetime, p: ClockParameters) -> ClockStatus:
        if self.submitted_at is not None:
            return ClockStatus.SUBMITTED if self.submitted_at < self.due_at else ClockStatus.SUBMITTED_LATE
        if now >= self.due_at:
            return ClockStatus.OVERDUE
        if now >= self.due_soon_at(p):
            return ClockStatus.DUE_SOON
        return ClockStatus.OPEN

    def due_soon_at(self, p: ClockParameters) -> datetime:
        return self.due_at - timedelta(hours=p.due_soon_hours)

    def seconds_until_due(self, now: datetime) -> float:
        return (self.due_at - now).total_seconds()

    def became_due_soon(self, now: datetime, p: ClockParameters) -> bool:
        """True once the clock has entered its due-soon window unsubmitted (a fact that stays true). A case first
        recorded after its deadline (a back-filled or late-imported report) is only overdue: there was never a
        moment to warn before it."""
        if self.known_at is not None and self.known_at >= self.due_at:
            return False
        stopped = self.submitted_at if self.submitted_at is not None else now
        return stopped >= self.due_soon_at(p)

    def became_overdue(self, now: datetime) -> bool:
        stopped = self.submitted_at if self.submitted_at is not None else now
        return stopped >= self.due_at


def due_at_end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def clocks_for_case(
    reports: Iterable[QualifyingReport], submissions: Iterable[ReportSubmission], p: ClockParameters
) -> list[ExpeditedClock]:
    """The clocks one case's qualifying versions start, each stopped by its category's earliest submission."""
    ordered = sorted(reports, key=lambda r: (r.awareness_date, str(r.event_id)))
    if not ordered:
        return []
    first_by_category: dict[ClockCategory, QualifyingReport] = {}
    for report in ordered:
        if report.fatal_or_life_threatening:
            first_by_category.setdefault(ClockCategory.FATAL_OR_LIFE_THREATENING, report)
            first_by_category.setdefault(ClockCategory.FATAL_FOLLOW_UP, report)
        else:
            first_by_category.setdefault(ClockCategory.OTHER_SERIOUS, report)
    if ClockCategory.FATAL_OR_LIFE_THREATENING in first_by_category:
        fatal_day0 = first_by_category[ClockCategory.FATAL_OR_LIFE_THREATENING].awareness_date
        other = first_by_category.get(ClockCategory.OTHER_SERIOUS)
        if other is not None and other.awareness_date >= fatal_day0:
            del first_by_category[ClockCategory.OTHER_SERIOUS]  # the 7-day clock already covers it
    earliest: dict[ClockCategory, ReportSubmission] = {}
    for submission in sorted(submissions, key=lambda s: (s.submitted_at, str(s.event_id))):
        earliest.setdefault(submission.category, submission)
    clocks = []
    for category, first in sorted(first_by_category.items()):
        due = first.awareness_date + timedelta(days=p.days_for(category))
        evidence = tuple(r.event_id for r in ordered if r.awareness_date >= first.awareness_date)
        stop = earliest.get(category)
        clocks.append(ExpeditedClock(
            case_id=first.case_id, category=category, day0=first.awareness_date, due_date=due,
            due_at=due_at_end_of(due), rsi_version=first.rsi_version, evidence_event_ids=evidence,
            submitted_at=stop.submitted_at if stop else None, submission_event_id=stop.event_id if stop else None,
            known_at=first.recorded_at,
        ))
    return clocks
