"""An expedited report was submitted to an authority: the event that stops a case's expedited-report clock.

Submitting is a fact like any other, stored in the log, so who sent which report when is part of the audit
trail and a replay re-derives exactly which clocks were stopped, on time or late. `occurred_at` is the moment
of submission (the gateway acknowledgement time when there is one).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from pvwatch.events.adverse_event import CaseId
from pvwatch.events.alert_action import UserName
from pvwatch.events.envelope import EventEnvelope, ShortText

#: The clock categories of ICH E2A III.A (see pvwatch.domain.expedited.ClockCategory, whose values these are).
ReportCategory = Literal["7-day", "7-day-follow-up", "15-day"]


class ExpeditedReportSubmitted(EventEnvelope):
    """One expedited report for one case and clock category; the envelope's `patient` is the case's patient."""

    topic: ClassVar[str] = "pv.safety.report-submitted.v1"

    type: Literal["report-submitted"] = "report-submitted"
    case_id: CaseId
    category: ReportCategory = Field(description="Which clock it stops: 7-day, 7-day-follow-up or 15-day.")
    authority: ShortText = Field(description="Where it was sent, e.g. 'EMA EudraVigilance', 'FDA FAERS'.")
    reference: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        default=None, description="The authority's acknowledgement or safety report id (E2B C.1.1).")
    submitted_by: UserName | None = Field(default=None, description="Staff user who sent it.")
