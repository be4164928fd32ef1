"""A safety alert: a derived fact, published on pv.safety.alert.v1 and stored in the `alerts` table.

An alert the complete log no longer supports (a late result removed the condition it stood on: docs/rules.md,
"Late and out-of-order events") is withdrawn: deleted from `alerts` and published once more on the same topic,
under the same alert_id, with `withdrawal` saying why and which event made it untrue. Messages without
`withdrawal` (every message before it existed) are raised or revised alerts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from hashlib import sha1
from typing import Annotated, ClassVar
from uuid import UUID

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


#: SHA-1 state after the namespace's bytes: every alert id hashes them first (RFC 4122 section 4.3).
_NAMESPACE_SHA1 = sha1(ALERT_NAMESPACE.bytes)


def alert_id_for(rule_id: str, rule_version: int, dedupe_key: str) -> UUID:
    """Deterministic id: one alert per (rule, version, the thing it is about). uuid.uuid5(ALERT_NAMESPACE, name),
    from the namespace's SHA-1 state hashed once (3.0 -> 1.9 us an id, measured; replay derives ~24k ids per
    30k adverse events)."""
    digest = _NAMESPACE_SHA1.copy()
    digest.update(f"{rule_id}/{rule_version}/{dedupe_key}".encode())
    return UUID(bytes=digest.digest()[:16], version=5)


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

    @classmethod
    def derived(cls, *, alert_id: UUID, rule_id: str, rule_version: int, severity: Severity, patient: str,
                case_id: str | None, evidence_event_ids: tuple[UUID, ...], occurred_at: datetime,
                raised_at: datetime, summary: str, details: dict[str, AlertDetail]) -> SafetyAlert:
        """An alert the rule engine derives, built without validation, as `model_construct` builds one: every
        value is already of its field's type (ids derived by alert_id_for or taken from validated events, times
        aware, a rule id constant, a Severity, details of AlertDetail values, a tuple of evidence). Validating
        cost ~8 us an alert, a third of an adverse event's evaluation (replay builds 24k alerts per 30k adverse
        events); tests/unit/test_alert_derived.py validates every alert the engine derives from the cohort's log.
        `summary` is cut to the field's 300 characters (a long reported term would otherwise fail validation)."""
        alert = object.__new__(cls)
        _set(alert, "__dict__", {
            "alert_id": alert_id, "rule_id": rule_id, "rule_version": rule_version, "severity": severity,
            "patient": patient, "case_id": case_id, "evidence_event_ids": evidence_event_ids,
            "occurred_at": occurred_at, "raised_at": raised_at, "summary": summary[:300], "details": details,
            "withdrawal": None})
        _set(alert, "__pydantic_fields_set__", set(_DERIVED_FIELDS))
        _set(alert, "__pydantic_extra__", None)
        _set(alert, "__pydantic_private__", None)
        return alert

    @property
    def withdrawn(self) -> bool:
        return self.withdrawal is not None

    def wire_json(self) -> bytes:
        """The message for pv.safety.alert.v1: `withdrawal` only when set, so a standing alert's message is what it
        was before withdrawals existed (a consumer built on that schema still reads it)."""
        return self.model_dump_json(exclude=None if self.withdrawn else {"withdrawal"}).encode()


#: The fields SafetyAlert.derived sets (as a call with them all would: `withdrawal` keeps its default).
_DERIVED_FIELDS = frozenset(SafetyAlert.model_fields) - {"withdrawal"}
#: Sets an attribute of a frozen model, as pydantic's own model_construct does.
_set = object.__setattr__
