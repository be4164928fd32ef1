"""Adverse event reports: initial and follow-up versions of one case."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from pvwatch.events.envelope import EventEnvelope, ShortText
from pvwatch.events.vocabulary import AtcCode, LotId

CaseId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
#: Keyed-hash pseudonym of the person who reported (pvwatch.pseudonym, reporter domain): the raw name, e-mail or
#: registration number is replaced at the edge (`reporter_ref`) and never travels.
REPORTER_PSEUDONYM_PATTERN = r"^rp-[0-9a-f]{20}$"
ReporterPseudonym = Annotated[str, StringConstraints(pattern=REPORTER_PSEUDONYM_PATTERN)]


class SeriousnessCriteria(BaseModel):
    """ICH E2A section II.B: a serious adverse event at any dose is one that results in death, is
    life-threatening (risk of death at the time of the event), requires inpatient hospitalisation or
    prolongation of existing hospitalisation, results in persistent or significant disability/incapacity,
    is a congenital anomaly/birth defect, or is another medically important event. These map one to one to
    E2B(R3) E.i.3.2a-f. Severity (a CTCAE grade) is a different axis: a grade 3 event need not be serious.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    death: bool = False  # E.i.3.2a results in death
    life_threatening: bool = False  # E.i.3.2b
    hospitalisation: bool = False  # E.i.3.2c caused or prolonged hospitalisation
    disability: bool = False  # E.i.3.2d
    congenital_anomaly: bool = False  # E.i.3.2e
    medically_important: bool = False  # E.i.3.2f other medically important condition

    @property
    def is_serious(self) -> bool:
        return any(
            (self.death, self.life_threatening, self.hospitalisation, self.disability,
             self.congenital_anomaly, self.medically_important)
        )

    def met(self) -> list[str]:
        """Names of the criteria met, in E2B order, for alert evidence."""
        return [name for name, value in self.model_dump().items() if value]


class ReporterType(StrEnum):
    PARENT = "parent"
    PATIENT = "patient"
    CLINICIAN = "clinician"
    PHARMACIST = "pharmacist"
    LAB = "lab"
    LITERATURE = "literature"


class Outcome(StrEnum):
    """E2B(R3) E.i.7 reaction outcome; the code in brackets is E2B's (0 is unknown)."""

    UNKNOWN = "unknown"  # 0
    RECOVERED = "recovered"  # 1
    RECOVERING = "recovering"  # 2
    NOT_RECOVERED = "not-recovered"  # 3
    RECOVERED_WITH_SEQUELAE = "recovered-with-sequelae"  # 4
    FATAL = "fatal"  # 5


class SuspectProduct(BaseModel):
    """A suspect, concomitant or interacting product (E2B(R3) G.k.1 drug role), with the reporter's causality.

    WHO-UMC causality categories (who-umc.org, "The use of the WHO-UMC system for standardised case causality
    assessment"): certain, probable/likely, possible, unlikely, conditional/unclassified, unassessable.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    name: ShortText
    role: Literal["suspect", "concomitant", "interacting"] = "suspect"
    causality: Literal["certain", "probable", "possible", "unlikely", "conditional", "unassessable"] | None = Field(
        default=None, description="Reporter's WHO-UMC causality category."
    )
    atc_code: AtcCode | None = None
    lot_id: LotId | None = Field(default=None, description="Lot/batch of the product given (E2B(R3) G.k.4.r.7).")
    infusion_event_id: UUID | None = Field(
        default=None, description="The msc-infusion event this product was given in, when known.")


class AdverseEventReported(EventEnvelope):
    """One version (initial or follow-up) of an adverse event case."""

    topic: ClassVar[str] = "pv.clinical.adverse-event.v1"

    type: Literal["adverse-event"] = "adverse-event"
    case_id: CaseId = Field(description="Stable case id; follow-ups carry the same id.")
    report_kind: Literal["initial", "follow-up"] = Field(
        default="initial", description="initial, or follow-up (a new version of the same case_id).")
    reporter_type: ReporterType = Field(description="Primary source qualification (E2B(R3) C.2.r.4).")
    reporter: ReporterPseudonym | None = Field(
        default=None, description="Pseudonym of the primary source (E2B(R3) C.2.r.1-2), 'rp-' and 20 hex digits: "
                                  "send the raw identifier as reporter_ref, the edge replaces it. Optional.")
    awareness_date: date = Field(description="ICH day 0: first awareness of the four minimum criteria.")
    onset_date: date | None = Field(default=None, description="Start of the event (E2B(R3) E.i.4).")
    resolution_date: date | None = Field(default=None, description="When the event resolved (E2B(R3) E.i.5).")
    follow_up_number: int | None = Field(default=None, ge=1, le=999, description="1 for the first follow-up, ...")
    term: ShortText = Field(description="Reported term (MedDRA PT when coded).")
    meddra_pt_code: Annotated[str, StringConstraints(pattern=r"^\d{8}$")] | None = Field(
        default=None, description="MedDRA preferred-term code, 8 digits (MedDRA is licensed: no dictionary shipped).")
    meddra_version: Annotated[str, StringConstraints(pattern=r"^\d{1,2}\.\d$")] | None = Field(
        default=None, description="MedDRA release of the code, e.g. '27.1' (E2B(R3) E.i.2.1a).")
    ctcae_term: ShortText | None = Field(
        default=None, description="CTCAE v5.0 term, e.g. 'Neutrophil count decreased'.")
    ctcae_grade: int | None = Field(
        default=None, ge=1, le=5, description="CTCAE v5.0 grade (severity, not seriousness).")
    seriousness: SeriousnessCriteria = Field(
        default_factory=SeriousnessCriteria, description="The six ICH E2A criteria (E2B(R3) E.i.3.2a-f), each a flag.")
    outcome: Outcome = Field(default=Outcome.UNKNOWN, description="E2B(R3) E.i.7 outcome of the event.")
    products: list[SuspectProduct] = Field(
        default_factory=list, max_length=50, description="Suspect, concomitant and interacting products.")
    narrative: Annotated[str, StringConstraints(max_length=20_000)] | None = Field(
        default=None, description="Free text; kept out of Kafka keys, logs, metrics and alert labels."
    )

    @model_validator(mode="after")
    def _dates_are_possible(self) -> AdverseEventReported:
        if self.onset_date is not None and self.onset_date > self.awareness_date:
            raise ValueError("onset_date is after awareness_date: an event cannot be known before it starts")
        if self.awareness_date > self.recorded_at.date():
            raise ValueError("awareness_date is after recorded_at: day 0 cannot be in the future of the record")
        if self.outcome is Outcome.FATAL and not self.seriousness.death:
            raise ValueError("outcome is fatal but seriousness.death is false")
        if self.resolution_date is not None:
            if self.onset_date is not None and self.resolution_date < self.onset_date:
                raise ValueError("resolution_date is before onset_date")
            if self.resolution_date > self.recorded_at.date():
                raise ValueError("resolution_date is after recorded_at: a resolution cannot be reported in advance")
        # CTCAE v5.0: "Grade 5 Death related to AE".
        if self.ctcae_grade == 5 and not self.seriousness.death:
            raise ValueError("ctcae_grade 5 means death related to the AE, but seriousness.death is false")
        if self.report_kind == "initial" and self.follow_up_number is not None:
            raise ValueError("an initial report has no follow_up_number")
        return self
