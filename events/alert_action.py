"""What a safety officer did with an alert: acknowledged, assigned, closed (with a reason) or reopened.

Actions are events like any other, stored once in the event log, so the log is also the audit trail of who did
what to which alert and when; the `alert_status` view derives each alert's current status from them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from pvwatch.events.envelope import EventEnvelope

#: A staff user name from the dashboard's user file, never a patient identifier.
UserName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class AlertAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    CLOSE = "close"
    REOPEN = "reopen"


class AlertActionRecorded(EventEnvelope):
    """One action on one alert; the envelope's `patient` is the alert's patient pseudonym (same partition)."""

    topic: ClassVar[str] = "pv.safety.alert-action.v1"

    type: Literal["alert-action"] = "alert-action"
    alert_id: UUID
    action: AlertAction
    actor: UserName = Field(description="The dashboard user who acted.")
    assignee: UserName | None = Field(default=None, description="Who now owns the alert (assign only).")
    reason: Reason | None = Field(default=None, description="Why it was closed or reopened; required to close.")

    @model_validator(mode="after")
    def _action_has_what_it_needs(self) -> AlertActionRecorded:
        if self.action is AlertAction.ASSIGN and self.assignee is None:
            raise ValueError("assign needs an assignee")
        if self.action is not AlertAction.ASSIGN and self.assignee is not None:
            raise ValueError(f"{self.action.value} takes no assignee")
        if self.action is AlertAction.CLOSE and self.reason is None:
            raise ValueError("close needs a reason")
        return self
