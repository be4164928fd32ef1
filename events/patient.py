"""A patient enters the monitor (enrolled) or their baseline changes (updated): the minimum needed, no more.

Data minimisation for children (GDPR art. 5(1)(c)): birth year and month, never the full date; the pseudonym,
never the MRN or the name (the ingest edge drops those, see pvwatch.pseudonym).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pvwatch.events.clinical import ClinicalEvent
from pvwatch.events.envelope import ShortText
from pvwatch.events.vocabulary import CountryCode, Finite, Icd10Code, YearMonth, year_month_of


class Sex(StrEnum):
    """E2B(R3) D.5 sex (1 male, 2 female; unknown when not given)."""

    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class Condition(StrEnum):
    """The rheumatic diseases pvwatch monitors. JIA categories follow the ILAR classification (Petty 2004,
    J Rheumatol 31:390); the usual ICD-10 codes are M32.x (SLE), M35.1 (MCTD), M08.x (JIA)."""

    SLE = "SLE"
    MCTD = "MCTD"
    JIA_SYSTEMIC = "JIA-systemic"
    JIA_OLIGOARTICULAR = "JIA-oligoarticular"
    JIA_POLYARTICULAR_RF_NEGATIVE = "JIA-polyarticular-RF-negative"
    JIA_POLYARTICULAR_RF_POSITIVE = "JIA-polyarticular-RF-positive"
    JIA_PSORIATIC = "JIA-psoriatic"
    JIA_ENTHESITIS_RELATED = "JIA-enthesitis-related"
    JIA_UNDIFFERENTIATED = "JIA-undifferentiated"
    OTHER = "other"


class Diagnosis(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    condition: Condition
    icd10_code: Icd10Code
    onset_date: date | None = Field(default=None, description="Onset of the disease (first symptoms).")
    diagnosed_date: date | None = None

    @model_validator(mode="after")
    def _diagnosed_after_onset(self) -> Diagnosis:
        if self.onset_date and self.diagnosed_date and self.diagnosed_date < self.onset_date:
            raise ValueError("diagnosed_date is before onset_date")
        return self


DIAGNOSES = "The child's rheumatic diagnoses, each with its ICD-10 code."
COUNTRY = "Country of the treating site, ISO 3166-1 alpha-2."

#: Weight bounds that no child can be outside (kg); per-kg doses are computed with it.
Weight = Field(default=None, gt=0.3, le=250, description="Body weight in kg (per-kg doses are computed with it).")


class _PatientFacts(ClinicalEvent):
    def _check_dates(self, birth_year_month: str | None, diagnoses: list[Diagnosis]) -> None:
        recorded = year_month_of(self.recorded_at)
        if birth_year_month is not None and birth_year_month > recorded:
            raise ValueError(f"birth_year_month {birth_year_month} is in the future of recorded_at ({recorded})")
        for index, diagnosis in enumerate(diagnoses):
            for name in ("onset_date", "diagnosed_date"):
                when: date | None = getattr(diagnosis, name)
                if when is None:
                    continue
                if when > self.recorded_at.date():
                    raise ValueError(f"diagnoses.{index}.{name} is after recorded_at")
                if birth_year_month is not None and year_month_of(when) < birth_year_month:
                    raise ValueError(f"diagnoses.{index}.{name} is before birth_year_month")


class PatientEnrolled(_PatientFacts):
    """A child enters monitoring: the baseline every later rule and per-kg dose is computed against."""

    topic: ClassVar[str] = "pv.clinical.patient-enrolled.v1"

    type: Literal["patient-enrolled"] = "patient-enrolled"
    birth_year_month: YearMonth = Field(description="YYYY-MM; the full birth date never leaves the edge.")
    sex: Sex = Field(description="E2B(R3) D.5 sex.")
    diagnoses: list[Diagnosis] = Field(min_length=1, max_length=20, description=DIAGNOSES)
    weight_kg: Finite | None = Weight
    site: ShortText = Field(description="Treating site (clinic or hospital department).")
    country: CountryCode | None = Field(default=None, description=COUNTRY)

    @model_validator(mode="after")
    def _possible(self) -> PatientEnrolled:
        self._check_dates(self.birth_year_month, self.diagnoses)
        return self


class PatientUpdated(_PatientFacts):
    """A change to the baseline (new weight, new diagnosis, new site); fields not sent are unchanged.

    `diagnoses`, when sent, is the complete current list (it replaces the previous one).
    """

    topic: ClassVar[str] = "pv.clinical.patient-updated.v1"

    type: Literal["patient-updated"] = "patient-updated"
    birth_year_month: YearMonth | None = Field(default=None, description="A correction of the enrolled value.")
    sex: Sex | None = Field(default=None, description="E2B(R3) D.5 sex.")
    diagnoses: list[Diagnosis] | None = Field(default=None, min_length=1, max_length=20,
                                              description=DIAGNOSES + " Replaces the previous list.")
    weight_kg: Finite | None = Weight
    site: ShortText | None = Field(default=None, description="Treating site, when it changes.")
    country: CountryCode | None = Field(default=None, description=COUNTRY)

    @model_validator(mode="after")
    def _possible(self) -> PatientUpdated:
        self._check_dates(self.birth_year_month, self.diagnoses or [])
        return self
