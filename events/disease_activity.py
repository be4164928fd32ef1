"""A disease-activity score and who gave it: the clinician's documented measure or the parent's report.

Ranges: SLEDAI-2K 0-105 in whole points (Gladman 2002, J Rheumatol 29:288); JADAS10 0-40, JADAS27 0-57,
cJADAS10 0-30 (Consolaro 2009, Arthritis Rheum 61:658; McErlane 2013 for cJADAS); physician and parent global
assessments on a 0-10 scale (the JADAS components). A rise of SLEDAI-2K by 3 or more is a flare (SELENA flare
index, Petri 2005, Lupus 14 suppl; see docs/events.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from pvwatch.events.clinical import ClinicalEvent
from pvwatch.events.vocabulary import Assessor, Finite


class Instrument(StrEnum):
    SLEDAI_2K = "SLEDAI-2K"
    JADAS10 = "JADAS10"
    JADAS27 = "JADAS27"
    CJADAS10 = "cJADAS10"
    PHYSICIAN_GLOBAL = "physician-global"
    PARENT_GLOBAL = "parent-global"


#: Highest possible score of each instrument (sources in the module docstring).
SCORE_MAXIMUM: dict[Instrument, float] = {
    Instrument.SLEDAI_2K: 105, Instrument.JADAS10: 40, Instrument.JADAS27: 57, Instrument.CJADAS10: 30,
    Instrument.PHYSICIAN_GLOBAL: 10, Instrument.PARENT_GLOBAL: 10,
}


class DiseaseActivityAssessed(ClinicalEvent):
    """One score; occurred_at is when the child was assessed."""

    topic: ClassVar[str] = "pv.clinical.disease-activity.v1"

    type: Literal["disease-activity"] = "disease-activity"
    instrument: Instrument = Field(description="The scoring instrument; it fixes the range of `score`.")
    score: Finite = Field(ge=0, description="The score on the instrument's scale.")
    assessed_by: Assessor = Field(description="clinician, parent or patient: who gave the score.")
    documented: bool = Field(
        description="True when the score is in the clinical record from a structured examination; False for a "
        "reported impression (e.g. a parent's score in an app).")

    @model_validator(mode="after")
    def _possible(self) -> DiseaseActivityAssessed:
        maximum = SCORE_MAXIMUM[self.instrument]
        if self.score > maximum:
            raise ValueError(f"score {self.score:g} is above the {self.instrument.value} maximum of {maximum:g}")
        if self.instrument is Instrument.SLEDAI_2K and not float(self.score).is_integer():
            raise ValueError("SLEDAI-2K scores are whole numbers (sums of item weights)")
        clinician_only = (Instrument.SLEDAI_2K, Instrument.PHYSICIAN_GLOBAL)
        if self.instrument in clinician_only and self.assessed_by is not Assessor.CLINICIAN:
            raise ValueError(f"{self.instrument.value} is scored by a clinician, not by a {self.assessed_by.value}")
        if self.instrument is Instrument.PARENT_GLOBAL and self.assessed_by is Assessor.CLINICIAN:
            raise ValueError("parent-global is the parent's (or patient's) assessment, not the clinician's")
        return self
