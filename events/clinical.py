"""The base of every clinical fact: an envelope whose fact cannot have happened after it was recorded."""

from __future__ import annotations

from datetime import timedelta

from pydantic import model_validator

from pvwatch.events.envelope import EventEnvelope

#: Clock skew tolerated between the clinic's clock (occurred_at) and the recording system's (recorded_at).
CLOCK_SKEW = timedelta(hours=1)


class ClinicalEvent(EventEnvelope):
    """A fact about one patient's care, reported by a clinic, a parent app, a lab or an importer."""

    @model_validator(mode="after")
    def _not_recorded_before_it_happened(self) -> ClinicalEvent:
        if self.occurred_at > self.recorded_at + CLOCK_SKEW:
            raise ValueError("occurred_at is after recorded_at: a fact cannot be recorded before it happens")
        return self
