"""Treatment courses: started, dose changed, tapered, stopped (DMARDs, biologics, JAK inhibitors, steroids).

The taper matters most: children given MSC infusions at private clinics often taper their immunosuppressants
afterwards, on the clinic's or the parents' advice, and a flare after a taper is one of the stories pvwatch
watches for. Each change is its own event so the log keeps the whole dosing history, in occurred_at order.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from pvwatch.events.clinical import ClinicalEvent
from pvwatch.events.envelope import ShortText
from pvwatch.events.vocabulary import AtcCode, CourseId, DrugClass, Finite, Route, UcumUnit


class ChangeReason(StrEnum):
    """Why a treatment was started, changed, tapered or stopped."""

    TAPER_AFTER_MSC = "taper after MSC therapy"
    PARENT_DECISION = "parent decision"
    DISEASE_ACTIVITY = "disease activity"
    REMISSION = "remission"
    ADVERSE_EVENT = "adverse event"
    INEFFICACY = "inefficacy"
    PROTOCOL = "protocol"
    OTHER = "other"


Dose = Field(default=None, gt=0, le=100_000, description="Dose per administration, in `dose_unit`.")


class TreatmentChange(ClinicalEvent):
    """What every treatment event says: which drug, and why."""

    course_id: CourseId | None = Field(default=None, description="Links the events of one course of one drug.")
    drug: ShortText = Field(description="Active substance (INN), e.g. 'methotrexate'.")
    atc_code: AtcCode | None = Field(default=None, description="WHO ATC code, e.g. L04AC07 (tocilizumab).")
    drug_class: DrugClass = Field(description="csDMARD, bDMARD, tsDMARD (JAK inhibitors), glucocorticoid, other.")
    reason: ChangeReason | None = Field(default=None, description="Why the treatment was started or changed.")
    reason_detail: ShortText | None = Field(default=None, description="Free text; no identifiers.")


class _Dosed(TreatmentChange):
    dose_unit: UcumUnit | None = Field(default=None, description="UCUM (checked): mg, mg/kg, mg/m2, ug (not mcg).")
    route: Route = Field(default=Route.UNKNOWN, description="Route of administration.")
    frequency: ShortText | None = Field(default=None, description="e.g. 'once weekly', 'twice daily', 'every 4 weeks'.")

    def _dose_has_unit(self, dose: float | None) -> None:
        if dose is not None and self.dose_unit is None:
            raise ValueError("dose_unit is missing: a dose without a unit cannot be compared")


class TreatmentStarted(_Dosed):
    type: Literal["treatment-started"] = "treatment-started"
    topic: ClassVar[str] = "pv.clinical.treatment-started.v1"

    dose: Finite | None = Dose

    @model_validator(mode="after")
    def _possible(self) -> TreatmentStarted:
        self._dose_has_unit(self.dose)
        return self


class TreatmentDoseChanged(_Dosed):
    """A new dose (up or down) that is not a deliberate taper."""

    type: Literal["treatment-dose-changed"] = "treatment-dose-changed"
    topic: ClassVar[str] = "pv.clinical.treatment-dose-changed.v1"

    dose: Finite = Field(gt=0, le=100_000, description="The new dose per administration, in `dose_unit`.")
    previous_dose: Finite | None = Dose

    @model_validator(mode="after")
    def _possible(self) -> TreatmentDoseChanged:
        self._dose_has_unit(self.dose)
        return self


class TreatmentTapered(_Dosed):
    """A deliberate step down (lower dose or longer interval) on the way to stopping or a maintenance dose."""

    type: Literal["treatment-tapered"] = "treatment-tapered"
    topic: ClassVar[str] = "pv.clinical.treatment-tapered.v1"

    dose: Finite = Field(gt=0, le=100_000, description="The reduced dose per administration, in `dose_unit`.")
    previous_dose: Finite | None = Dose

    @model_validator(mode="after")
    def _possible(self) -> TreatmentTapered:
        self._dose_has_unit(self.dose)
        if self.previous_dose is not None and self.dose > self.previous_dose:
            raise ValueError("dose is higher than previous_dose: a taper lowers the dose (use treatment-dose-changed)")
        return self


class TreatmentStopped(TreatmentChange):
    type: Literal["treatment-stopped"] = "treatment-stopped"
    topic: ClassVar[str] = "pv.clinical.treatment-stopped.v1"

    previous_dose: Finite | None = Dose
    dose_unit: UcumUnit | None = Field(default=None, description="UCUM unit of previous_dose.")
