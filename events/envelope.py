"""The envelope every pvwatch event carries, whatever its type.

The wire format is JSON Lines; one line is one event. The envelope is a public contract (see docs/events.md):
fields are only ever added (optional, with defaults); a change of meaning gets a new topic version (`.v2`).
Consumers are tolerant readers: unknown fields from a newer producer are kept, never rejected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

#: Keyed-hash pseudonym (see pvwatch.pseudonym): raw MRNs, names and birth dates never travel.
PSEUDONYM_PATTERN = r"^pt-[0-9a-f]{20}$"
Pseudonym = Annotated[str, StringConstraints(pattern=PSEUDONYM_PATTERN)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class EventEnvelope(BaseModel):
    """Fields common to every event; subclasses add the clinical payload and fix `type`."""

    model_config = ConfigDict(frozen=True, extra="allow", str_strip_whitespace=True)

    #: Kafka topic of this event type; versioned so a breaking change gets a new topic.
    topic: ClassVar[str]

    event_id: UUID = Field(description="Unique id chosen by the producer; a resend with the same id is stored once.")
    type: str = Field(description="Event type name, e.g. 'adverse-event'.")
    schema_version: int = Field(default=1, ge=1, description="Schema version of this type's payload.")
    occurred_at: AwareDatetime = Field(description="When the fact happened in the clinic (rules order by this).")
    recorded_at: AwareDatetime = Field(description="When the source system recorded the fact.")
    source: ShortText = Field(description="Producing system, e.g. 'clinic-emr', 'parent-app', 'e2b-import'.")
    patient: Pseudonym = Field(description="Patient pseudonym (keyed hash); never a raw identifier.")

    @property
    def kafka_key(self) -> bytes:
        """Per-patient ordering: every event of one patient lands on one partition."""
        return self.patient.encode()

    def occurred(self) -> datetime:
        return self.occurred_at
