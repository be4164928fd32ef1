"""A laboratory result with the reference range the lab reported with it (age-specific in children).

Grading (CTCAE v5) and Hy's law compare a value with its own upper or lower limit of normal, so the range
travels with the value; a result without a range can be stored but not graded against ULN/LLN.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field, model_validator

from pvwatch.events.clinical import CLOCK_SKEW, ClinicalEvent
from pvwatch.events.envelope import ShortText
from pvwatch.events.vocabulary import Finite, LoincCode, UcumUnit


class LabResultReported(ClinicalEvent):
    """One numeric result; occurred_at is the specimen collection time (as `specimen_at`)."""

    topic: ClassVar[str] = "pv.clinical.lab-result.v1"

    type: Literal["lab-result"] = "lab-result"
    loinc_code: LoincCode = Field(description="LOINC code, e.g. 751-8 (neutrophils, blood), 1742-6 (ALT).")
    test_name: ShortText | None = Field(default=None, description="Display name as the lab reports it.")
    value: Finite = Field(description="The numeric result, in `unit`.")
    comparator: Literal["<", "<=", ">", ">="] | None = Field(
        default=None, description="For results reported as beyond a limit, e.g. '<' for '<0.1'.")
    unit: UcumUnit = Field(description="UCUM unit, e.g. 10*9/L, U/L, umol/L, g/L; checked against the UCUM grammar "
                           "and essence at ingest (mcg, IU/L are refused: ug, [IU]/L).")
    reference_low: Finite | None = Field(default=None, description="Lower limit of normal, in `unit`.")
    reference_high: Finite | None = Field(default=None, description="Upper limit of normal, in `unit`.")
    specimen_at: AwareDatetime = Field(description="Specimen collection time.")
    lab: ShortText | None = Field(default=None, description="Performing laboratory.")

    @model_validator(mode="after")
    def _possible(self) -> LabResultReported:
        if (self.reference_low is not None and self.reference_high is not None
                and self.reference_low > self.reference_high):
            raise ValueError("reference_low is above reference_high")
        if self.specimen_at > self.recorded_at + CLOCK_SKEW:
            raise ValueError("specimen_at is after recorded_at: a result cannot precede its specimen")
        return self
