"""A safety alert: a derived fact, published on pv.safety.alert.v1 and stored in the `alerts` table.

An alert the complete log no longer supports (a late result removed the condition it stood on: docs/rules.md,
"Late and out-of-order events") is withdrawn: deleted from `alerts` and published once more on the same topic,
under the same alert_id, with `withdrawal` saying why and which event made it untrue. Messages without
`withdrawal` (every message before it existed) are raised or revised alerts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from pvwatch.events.envelope import Pseudonym

#: Namespace for deterministic alert ids: the same evidence always yields the same alert id, so redelivery,
#: restarts and replay can never raise an alert twice.
ALERT_NAMESPACE = UUID("5b0c3c3e-7d0a-4d4e-9a53-0b8f4f1c9a11")

AlertDetail = str | int | float | bool | list[str] | None


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


def alert_id_for(rule_id: str, rule_version: int, dedupe_key: str) -> UUID:
    """Deterministic id: one alert per (rule, version, the thing it is about)."""
    return uuid5(ALERT_NAMESPACE, f"{rule_id}/{rule_version}/{dedupe_key}")


class AlertWithdrawal(BaseModel):
    """Why an alert was withdrawn: the reason in the officer's words and the event that made it untrue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=300)]
    event_id: UUID | None = Field(
        default=None, description="The event whose arrival made the alert untrue; none when `pvwatch replay` removed "
        "it (the rules in force, e.g. a new rule version, no longer derive it from the complete log).")
    withdrawn_at: AwareDatetime = Field(description="When pvwatch withdrew the alert.")


class SafetyAlert(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: ClassVar[str] = "pv.safety.alert.v1"

    alert_id: UUID
    rule_id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}$")]
    rule_version: int = Field(ge=1)
    severity: Severity
    patient: Pseudonym
    case_id: str | None = None
    evidence_event_ids: tuple[UUID, ...] = Field(min_length=1)
    occurred_at: AwareDatetime = Field(description="When the evidence happened (the latest evidence event).")
    raised_at: AwareDatetime = Field(description="When pvwatch raised the alert.")
    summary: Annotated[str, StringConstraints(max_length=300)]
    details: dict[str, AlertDetail] = Field(default_factory=dict)
    withdrawal: AlertWithdrawal | None = Field(
        default=None, description="Set on the message that withdraws the alert; absent while it stands.")

    @property
    def withdrawn(self) -> bool:
        return self.withdrawal is not None

    def wire_json(self) -> bytes:
        """The message for pv.safety.alert.v1: `withdrawal` only when set, so a standing alert's message is what it
        was before withdrawals existed (a consumer built on that schema still reads it)."""
        return self.model_dump_json(exclude=None if self.withdrawn else {"withdrawal"}).encode()
