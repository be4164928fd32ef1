"""A deterministic synthetic cohort for the demo and the tests (no real patient is described).

Shaped like the published case series that motivates pvwatch: children with refractory SLE, MCTD or JIA on
DMARDs, biologics and JAK inhibitors, many given MSC infusions at private clinics (several clinics, several lots,
some infusions with no lot or dose on record), who then taper their immunosuppressants ("taper after MSC
therapy", "parent decision"), with regular labs, clinician-documented disease activity (SLEDAI-2K, JADAS10),
parent-reported global scores and parent-reported benefit that no measure documents.

Background patients are kept clinically quiet, so that the rules fire on the PLANTED safety stories and tests
can find them with `planted_stories()`: an infusion reaction within hours, a lot cluster, a flare after a
taper, a grade 3 neutropenia, a death, a Hy's-law lab pair and a duplicate report. Records carry a raw-looking
`patient_ref` (a synthetic MRN), and adverse events a raw-looking `reporter_ref` (the parent's e-mail, or the
treating rheumatologist's at the patient's site), so that every run exercises pseudonymisation at the edge.

Doses are weight-based approximations of the paediatric labels (e.g. etanercept 0.8 mg/kg weekly, max 50 mg;
tocilizumab 8 mg/kg IV; tofacitinib 4 mg twice daily from 20 kg, 5 mg from 40 kg); ATC codes are the WHO ATC/DDD
index 2024 ones (JAK inhibitors L04AF, monoclonal antibodies L04AG since 2024). Laboratory reference intervals
are typical paediatric ones by age band (shaped like the CALIPER intervals, Colantonio 2012, Clin Chem 58:854);
every value carries its own range, so no rule depends on these numbers being exact.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

#: Story kinds, in the order they are planted (the first ones survive in small cohorts).
STORY_KINDS = ("infusion-reaction", "neutropenia", "flare-after-taper", "death", "hys-law", "duplicate-report",
               "lot-cluster")
_STORY_PATIENTS = {"lot-cluster": 3}  # patients a story needs; one otherwise
_STORY_TEXT = {
    "infusion-reaction": "fever 39.4 C four hours after an MSC infusion",
    "neutropenia": "absolute neutrophil count 0.8 x10^9/L on tocilizumab (CTCAE v5 grade 3: <1.0-0.5)",
    "flare-after-taper": "SLEDAI-2K from 4 to 10 five weeks after a mycophenolate taper after MSC therapy",
    "death": "pulmonary embolism 9 days after an umbilical-cord MSC infusion; follow-up: fatal",
    "hys-law": "ALT 4.5 x ULN with total bilirubin 2.6 x ULN and ALP below 2 x ULN on methotrexate",
    "duplicate-report": "the same herpes zoster reported by the parent and by the clinician as two cases",
    "lot-cluster": "three children with adverse events within three weeks of infusions from one lot",
}

#: The lot every lot-cluster patient receives (a lot no background patient is given).
CLUSTER_LOT = "UCB-2603-99"


@dataclass(frozen=True)
class PlantedStory:
    """A safety story the rules must catch: who (raw patient_refs, as generated) and which events show it."""

    kind: str
    patient_refs: tuple[str, ...]
    event_ids: tuple[str, ...]
    what: str

    @property
    def patient_ref(self) -> str:
        return self.patient_refs[0]


# --- the clinical material -------------------------------------------------------------------------------

_SITES = (("site-lyon", "FR"), ("site-porto", "PT"), ("site-tallinn", "EE"), ("site-leuven", "BE"))

#: ILAR JIA categories (Petty 2004) with their WHO ICD-10 (2019) code, and their share of JIA (roughly as
#: published). Codes checked against WHO ICD-10 2019 (docs/interop.md "Codes checked"): M08.0 juvenile rheumatoid
#: arthritis, M08.1 juvenile ankylosing spondylitis, M08.2 systemic onset, M08.3 seronegative polyarthritis, M08.4
#: pauciarticular, M09.0 juvenile arthritis in psoriasis, M08.9 unspecified.
_JIA = (("JIA-oligoarticular", "M08.4", 40), ("JIA-polyarticular-RF-negative", "M08.3", 25),
        ("JIA-polyarticular-RF-positive", "M08.0", 5), ("JIA-systemic", "M08.2", 10),
        ("JIA-enthesitis-related", "M08.1", 10), ("JIA-psoriatic", "M09.0", 5), ("JIA-undifferentiated", "M08.9", 5))


@dataclass(frozen=True)
class _Clinic:
    name: str
    country: str
    tissue: str
    donor: str
    lot_prefix: str
    product: str


_CLINICS = (
    _Clinic("clinic-alpha", "PA", "umbilical-cord", "allogeneic", "UCA", "UC-MSC"),
    _Clinic("clinic-beta", "MX", "umbilical-cord", "allogeneic", "UCB", "Wharton jelly MSC"),
    _Clinic("clinic-gamma", "UA", "adipose", "autologous", "ADG", "AD-MSC"),
    _Clinic("clinic-delta", "DE", "bone-marrow", "allogeneic", "BMD", "BM-MSC"),
)


@dataclass(frozen=True)
class _Drug:
    name: str
    atc: str
    drug_class: str
    route: str
    frequency: str


_HCQ = _Drug("hydroxychloroquine", "P01BA02", "csDMARD", "oral", "once daily")
_MTX = _Drug("methotrexate", "L04AX03", "csDMARD", "subcutaneous", "once weekly")
_MMF = _Drug("mycophenolate mofetil", "L04AA06", "csDMARD", "oral", "twice daily")
_PRED = _Drug("prednisolone", "H02AB06", "glucocorticoid", "oral", "once daily")
_TCZ = _Drug("tocilizumab", "L04AC07", "bDMARD", "intravenous", "every 2 weeks")
_ADA = _Drug("adalimumab", "L04AB04", "bDMARD", "subcutaneous", "every 2 weeks")
_ETN = _Drug("etanercept", "L04AB01", "bDMARD", "subcutaneous", "once weekly")
_RTX = _Drug("rituximab", "L01FA01", "bDMARD", "intravenous", "two doses 2 weeks apart, every 6 months")
_BEL = _Drug("belimumab", "L04AG04", "bDMARD", "intravenous", "every 4 weeks")
_TOFA = _Drug("tofacitinib", "L04AF01", "tsDMARD", "oral", "twice daily")
_BARI = _Drug("baricitinib", "L04AF02", "tsDMARD", "oral", "once daily")


def _dose(drug: _Drug, weight: float) -> float:
    """Per-administration dose in mg from the paediatric labels, capped at the adult dose, rounded as given."""
    if drug.name == "tofacitinib":  # weight bands of the JIA label
        return 3.2 if weight < 20 else 4.0 if weight < 40 else 5.0
    if drug.name == "baricitinib":
        return 2.0 if weight < 30 else 4.0
    per_kg, cap, step = {
        "hydroxychloroquine": (5.0, 400, 100), "methotrexate": (0.5, 25, 2.5), "mycophenolate mofetil": (20, 1000, 250),
        "prednisolone": (0.5, 40, 5), "tocilizumab": (8.0, 800, 20), "adalimumab": (1.0, 40, 20),
        "etanercept": (0.8, 50, 5), "rituximab": (15, 1000, 100), "belimumab": (10, 1000, 20),
    }[drug.name]
    return max(step, min(cap, round(per_kg * weight / step) * step))


#: (LOINC, name, UCUM unit); the codes the rules grade (CTCAE v5, Hy's law).
_ANC = ("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*9/L")
_PLT = ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*9/L")
_HB = ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/L")
_ALT = ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L")
_AST = ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L")
_BILI = ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL")
_ALP = ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L")
_CREA = ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL")


def _reference_range(test: tuple[str, str, str], age: int, sex: str) -> tuple[float, float]:
    """Typical paediatric reference interval by age band and sex (see the module docstring)."""
    adolescent_male = age >= 12 and sex == "male"
    if test is _ANC:
        return (1.5, 8.5) if age < 6 else (1.8, 8.0)
    if test is _PLT:
        return (150, 450)
    if test is _HB:
        return (115, 155) if age < 12 else ((130, 170) if adolescent_male else (120, 160))
    if test is _ALT:
        return (5, 30) if age < 12 else ((5, 40) if adolescent_male else (5, 35))
    if test is _AST:
        return (15, 50) if age < 7 else (10, 40)
    if test is _BILI:
        return (0.1, 1.2)
    if test is _ALP:
        return (150, 420) if age < 10 else ((130, 530) if age < 15 else (50, 200))
    if test is _CREA:
        return (0.2, 0.4) if age < 6 else ((0.3, 0.6) if age < 12 else ((0.4, 0.8) if age < 15 else (0.5, 1.0)))
    raise ValueError(test[0])


_QUIET_AE_TERMS = ("Headache", "Nausea", "Abdominal pain", "Rash", "Fatigue", "Alopecia", "Mouth ulceration",
                   "Dizziness", "Vomiting", "Cough")
#: Serious background events are placed before any MSC infusion, so they are not attributed to a lot.
_SERIOUS_BACKGROUND = (
    ("Lupus nephritis", {"hospitalisation": True}),
    ("Macrophage activation syndrome", {"hospitalisation": True, "life_threatening": True}),
    ("Pancreatitis", {"hospitalisation": True}),
)
_BENEFIT_CLAIMS = ("joint pain", "energy", "rash", "morning stiffness", "school attendance", "appetite", "mood")


# --- the generator ----------------------------------------------------------------------------------------


@dataclass
class _Patient:
    """One child's records, built in clinical order; `stories` collects what was planted in them."""

    index: int
    seed: int
    rng: random.Random
    mrn: str
    records: list[dict[str, Any]] = field(default_factory=list)
    stories: dict[str, list[str]] = field(default_factory=dict)

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add(self, type_name: str, at: datetime, delay: timedelta, source: str, **fields: Any) -> str:
        event_id = self.uid()
        self.records.append({
            "event_id": event_id, "type": type_name, "occurred_at": at.isoformat(),
            "recorded_at": (at + delay).isoformat(), "source": source, "patient_ref": self.mrn,
            **{key: value for key, value in fields.items() if value is not None},
        })
        return event_id

    def planted(self, kind: str, *event_ids: str) -> None:
        self.stories.setdefault(kind, []).extend(event_ids)


def _story_slots(patients: int) -> dict[int, tuple[str, int]]:
    """patient index -> (story kind, which of the story's patients), spread evenly through the cohort."""
    wanted = [(kind, n) for kind in STORY_KINDS for n in range(_STORY_PATIENTS.get(kind, 1))][:patients]
    for kind, need in _STORY_PATIENTS.items():  # a story that needs several patients is planted whole or not at all
        if 0 < sum(1 for k, _ in wanted if k == kind) < need:
            wanted = [(k, n) for k, n in wanted if k != kind]
    return {(slot * patients) // len(wanted): story for slot, story in enumerate(wanted)} if wanted else {}


def generate_cohort(patients: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Yield wire records (JSON objects, with raw `patient_ref`), patient by patient, each in clinical order."""
    for patient in _build(patients, seed):
        yield from patient.records


def planted_stories(patients: int, seed: int = 7) -> dict[str, PlantedStory]:
    """The safety stories planted in `generate_cohort(patients, seed)`: kind -> patients and event ids.

    Stories need patients: below len(STORY_KINDS) + 2 patients the last stories are left out.
    """
    found: dict[str, tuple[list[str], list[str]]] = {}
    for patient in _build(patients, seed):
        for kind, event_ids in patient.stories.items():
            refs, ids = found.setdefault(kind, ([], []))
            refs.append(patient.mrn)
            ids.extend(event_ids)
    return {kind: PlantedStory(kind, tuple(refs), tuple(ids), _STORY_TEXT[kind]) for kind, (refs, ids) in found.items()}


def _build(patients: int, seed: int) -> Iterator[_Patient]:
    slots = _story_slots(patients)
    for index in range(patients):
        story = slots.get(index)
        patient = _Patient(index, seed, random.Random(f"pvwatch-cohort:{seed}:{index}"), f"MRN-{seed:03d}-{index:06d}")
        _PatientStory(patient, story[0] if story else None, story[1] if story else 0).write()
        patient.records.sort(key=lambda r: (r["occurred_at"], r["recorded_at"]))
        yield patient


class _PatientStory:
    """Writes one child's timeline: enrolment, treatments, infusions, tapers, visits, claims, a story if any."""

    def __init__(self, patient: _Patient, story: str | None, story_part: int) -> None:
        self.p = patient
        self.rng = patient.rng
        self.story = story
        self.story_part = story_part
        rng = self.rng
        self.condition, self.icd10 = self._condition()
        self.lupus_like = self.condition in ("SLE", "MCTD")
        female_share = 0.85 if self.lupus_like else 0.7
        self.sex = "female" if rng.random() < female_share else "male"
        low_age = 9 if self.lupus_like else 3
        if story in ("duplicate-report", "neutropenia"):
            low_age = 10  # tofacitinib from 10 kg, tocilizumab dosing as for 30 kg+
        self.age = rng.randint(low_age, 17)
        self.weight = round((self.age * 3.2 + 6) * rng.uniform(0.85, 1.15), 1)
        self.enrolled = _EPOCH + timedelta(days=rng.randint(0, 45), hours=rng.randint(0, 6))
        self.end = self.enrolled + timedelta(days=rng.randint(245, 300))
        self.site, self.country = rng.choice(_SITES)
        self.infusions: list[tuple[datetime, str, str | None]] = []  # (time, event id, lot)
        self.sledai = rng.randint(6, 12)
        self.jadas = round(rng.uniform(5, 14), 1)
        self.courses: dict[str, tuple[_Drug, float, str]] = {}
        self.taper: tuple[datetime, str] | None = None  # the flare story's taper (time, event id)
        self.death_at: datetime | None = None
        self.parent_global = rng.uniform(5, 7)
        self.last_score = 0.0

    def _condition(self) -> tuple[str, str]:
        rng = self.rng
        if self.story in ("flare-after-taper", "death"):
            return "SLE", "M32.1"
        if self.story in ("neutropenia",):
            return "JIA-systemic", "M08.2"
        if self.story in ("duplicate-report",):
            return "JIA-polyarticular-RF-negative", "M08.3"
        roll = rng.random()
        if roll < 0.4:
            return "SLE", rng.choice(("M32.1", "M32.9"))
        if roll < 0.55:
            return "MCTD", "M35.1"
        weights = [share for _, _, share in _JIA]
        name, code, _ = rng.choices(_JIA, weights=weights)[0]
        return name, code

    # --- the timeline ---

    def write(self) -> None:
        self._enrol()
        self._treatments()
        msc = self.story in ("infusion-reaction", "flare-after-taper", "death", "lot-cluster") or (
            self.story is None and self.rng.random() < 0.75)
        if msc:
            self._infusions()
            self._tapers()
            self._claims()
        self._visits()
        self._background_adverse_events()
        self._plant()
        if self.death_at is not None:
            self.p.records = [r for r in self.p.records if datetime.fromisoformat(r["occurred_at"]) <= self.death_at]

    def _enrol(self) -> None:
        rng = self.rng
        birth = self.enrolled - timedelta(days=int(self.age * 365.25 + rng.randint(30, 330)))
        onset = self.enrolled - timedelta(days=rng.randint(365, min(5 * 365, int((self.age - 1.5) * 365))))
        self.p.add("patient-enrolled", self.enrolled, timedelta(minutes=30), "clinic-emr",
                   birth_year_month=f"{birth.year:04d}-{birth.month:02d}", sex=self.sex,
                   diagnoses=[{"condition": self.condition, "icd10_code": self.icd10,
                               "onset_date": onset.date().isoformat(),
                               "diagnosed_date": (onset + timedelta(days=rng.randint(20, 120))).date().isoformat()}],
                   weight_kg=self.weight, site=self.site, country=self.country)

    def _start(self, drug: _Drug, at: datetime, reason: str = "disease activity") -> None:
        course = f"{drug.name[:4].upper()}-{self.p.index}"
        dose = _dose(drug, self.weight)
        self.courses[drug.name] = (drug, dose, course)
        self.p.add("treatment-started", at, timedelta(hours=1) if at >= self.enrolled else self.enrolled - at,
                   "clinic-emr", course_id=course, drug=drug.name, atc_code=drug.atc, drug_class=drug.drug_class,
                   dose=dose, dose_unit="mg", route=drug.route, frequency=drug.frequency, reason=reason)

    def _change_dose(self, drug: _Drug, at: datetime, factor: float) -> None:
        _, dose, course = self.courses[drug.name]
        new_dose = round(dose * factor / 2.5) * 2.5
        self.courses[drug.name] = (drug, new_dose, course)
        self.p.add("treatment-dose-changed", at, timedelta(hours=1), "clinic-emr", course_id=course, drug=drug.name,
                   atc_code=drug.atc, drug_class=drug.drug_class, dose=new_dose, previous_dose=dose, dose_unit="mg",
                   route=drug.route, frequency=drug.frequency, reason="disease activity")

    def _stop(self, drug: _Drug, at: datetime, reason: str, source: str = "clinic-emr") -> None:
        _, dose, course = self.courses.pop(drug.name)
        self.p.add("treatment-stopped", at, timedelta(hours=2) if at >= self.enrolled else self.enrolled - at,
                   source, course_id=course, drug=drug.name, atc_code=drug.atc, drug_class=drug.drug_class,
                   previous_dose=dose, dose_unit="mg", reason=reason)

    def _treatments(self) -> None:
        """A refractory course: first-line drugs years ago, a biologic that failed, the current regimen."""
        rng = self.rng
        before = self.enrolled - timedelta(days=rng.randint(300, 500))
        switch = self.enrolled - timedelta(days=rng.randint(60, 200))
        if self.lupus_like:
            self._start(_HCQ, before)
            self._start(_PRED, before + timedelta(days=1))
            self._start(_MMF if self.condition == "SLE" else _MTX, before + timedelta(days=rng.randint(20, 60)))
            self._start(_BEL if self.condition == "SLE" and rng.random() < 0.6 else _RTX, switch)
            if self.story == "hys-law" and "methotrexate" not in self.courses:
                self._start(_MTX, switch + timedelta(days=3))
            if rng.random() < 0.4:  # active disease at enrolment: the steroid goes up before anything else
                self._change_dose(_PRED, self.enrolled + timedelta(days=rng.randint(3, 10), hours=2), 1.5)
            return
        self._start(_MTX, before)
        if self.story == "neutropenia" or self.condition == "JIA-systemic":
            self._start(_PRED, before + timedelta(days=2))
            self._start(_TCZ, switch)
            return
        first = _ETN if rng.random() < 0.6 else _ADA
        self._start(first, before + timedelta(days=rng.randint(90, 150)))
        self._stop(first, switch - timedelta(days=14), "inefficacy")
        jak = _TOFA if self.story == "duplicate-report" or rng.random() < 0.5 else _BARI
        self._start(jak if self.weight >= 20 else (_ADA if first is _ETN else _ETN), switch)

    def _infusions(self) -> None:
        rng = self.rng
        clinic = _CLINICS[1] if self.story in ("lot-cluster", "death") else rng.choice(_CLINICS)
        at = self.enrolled + timedelta(days=rng.randint(14, 50), hours=rng.randint(1, 5))
        if self.story == "lot-cluster":  # one lot, given within three weeks to the story's three children
            at = _EPOCH + timedelta(days=70 + 7 * self.story_part, hours=10)
        count = 1 if self.story in ("lot-cluster", "death", "infusion-reaction") else rng.randint(1, 3)
        for number in range(1, count + 1):
            lot: str | None = f"{clinic.lot_prefix}-{at:%y%m}-{rng.randint(1, 3):02d}"
            if self.story == "lot-cluster":
                lot = CLUSTER_LOT
            elif self.story is None and rng.random() < 0.15:
                lot = None
            dosed = self.story is not None or rng.random() >= 0.1
            cells_per_kg = rng.choice((1e6, 1.5e6, 2e6)) if dosed else None
            event_id = self.p.add(
                "msc-infusion", at, timedelta(hours=rng.randint(3, 30)), "clinic-emr",
                product_name=clinic.product, clinic=clinic.name, tissue_origin=clinic.tissue,
                donor_type=clinic.donor, lot_id=lot, cells_per_kg=cells_per_kg,
                total_cells=round(cells_per_kg * self.weight) if cells_per_kg else None,
                viability_percent=round(rng.uniform(85, 97), 1) if dosed else None,
                passage=rng.randint(2, 5) if clinic.donor == "allogeneic" else None, route="intravenous",
                protocol_id=f"{clinic.lot_prefix}-P{rng.randint(1, 3)}", infusion_number=number,
                premedication=rng.sample(["paracetamol", "cetirizine", "hydrocortisone"], rng.randint(0, 2)),
                administering_site=f"{clinic.name} day unit", country=clinic.country)
            self.infusions.append((at, event_id, lot))
            at += timedelta(days=rng.randint(28, 42))

    def _tapers(self) -> None:
        """After the last infusion, the clinic or the parents step the immunosuppression down."""
        rng = self.rng
        after = self.infusions[-1][0] + timedelta(days=rng.randint(10, 21))
        tapered = [name for name in ("prednisolone", "mycophenolate mofetil", "methotrexate") if name in self.courses]
        if self.story == "flare-after-taper":
            tapered = ["mycophenolate mofetil"]
        elif self.story is not None or rng.random() < 0.25:
            tapered = tapered[:1]
        for name in tapered:
            drug, dose, course = self.courses[name]
            reason = "taper after MSC therapy" if self.story == "flare-after-taper" or rng.random() < 0.7 \
                else "parent decision"
            new_dose = max(1.0, round(dose / 2, 1))
            event_id = self.p.add(
                "treatment-tapered", after, timedelta(hours=3), "parent-app" if reason == "parent decision"
                else "clinic-emr", course_id=course, drug=name, atc_code=drug.atc, drug_class=drug.drug_class,
                dose=new_dose, previous_dose=dose, dose_unit="mg", route=drug.route, frequency=drug.frequency,
                reason=reason)
            self.courses[name] = (drug, new_dose, course)
            if self.story == "flare-after-taper":
                self.taper = (after, event_id)
            after += timedelta(days=rng.randint(7, 21))
        if self.story is None and "methotrexate" in self.courses and rng.random() < 0.15:
            self._stop(_MTX, after + timedelta(days=20), "parent decision", "parent-app")

    def _claims(self) -> None:
        rng = self.rng
        first = self.infusions[0][0]
        for weeks in range(4, 30, rng.randint(4, 8)):
            at = first + timedelta(weeks=weeks, hours=10)
            if at >= self.end:
                break
            self.parent_global = max(0.0, self.parent_global - rng.uniform(0, 1.2))
            self.p.add("disease-activity", at, timedelta(minutes=2), "parent-app", instrument="parent-global",
                       score=round(self.parent_global, 1), assessed_by="parent", documented=False)
        if rng.random() < 0.8:
            at = first + timedelta(weeks=rng.randint(3, 8), hours=19)
            self.p.add("outcome-claim", at, timedelta(minutes=3), "parent-app",
                       what=" and ".join(rng.sample(_BENEFIT_CLAIMS, rng.randint(1, 2))), direction="improved",
                       claimed_by="parent", attributed_to="MSC")

    def _visits(self) -> None:
        """Clinic visits every 6-10 weeks: labs and a clinician-documented disease-activity score."""
        rng = self.rng
        at = self.enrolled + timedelta(hours=1)
        previous: tuple[str, float] | None = None
        visit = 0
        while at < self.end:
            visit += 1
            self._labs(at)
            if visit == 3 and rng.random() < 0.5:
                self.weight = round(self.weight * rng.uniform(1.02, 1.08), 1)
                self.p.add("patient-updated", at + timedelta(minutes=5), timedelta(minutes=30), "clinic-emr",
                           weight_kg=self.weight)
            if self.taper is not None and at > self.taper[0] - timedelta(days=7):
                break  # the flare story writes this patient's visits from a week before the taper
            score_id = self._score(at)
            if previous and rng.random() < 0.2 and self.infusions:
                self.p.add("outcome-claim", at + timedelta(hours=1), timedelta(minutes=20), "clinic-emr",
                           what="disease activity", direction="improved" if self.last_score < previous[1]
                           else "unchanged", claimed_by="clinician",
                           documented_measure={"name": self._instrument, "before": previous[1],
                                               "after": self.last_score, "evidence_event_id": score_id})
            previous = (score_id, self.last_score)
            at += timedelta(weeks=rng.randint(6, 10))

    @property
    def _instrument(self) -> str:
        return "SLEDAI-2K" if self.lupus_like else "JADAS10"

    def _score(self, at: datetime) -> str:
        """Background activity never worsens (no spurious flare): it stays or improves a little."""
        rng = self.rng
        if self.lupus_like:
            self.sledai = max(0, self.sledai - rng.choice((0, 0, 1, 2)))
            self.last_score = float(self.sledai)
        else:
            self.jadas = round(max(0.0, self.jadas - rng.choice((0.0, 0.5, 1.0))), 1)
            self.last_score = self.jadas
        return self.p.add("disease-activity", at + timedelta(minutes=30), timedelta(hours=2), "clinic-emr",
                          instrument=self._instrument, score=self.last_score, assessed_by="clinician",
                          documented=True)

    def _lab(self, at: datetime, test: tuple[str, str, str], value: float | None = None) -> str:
        low, high = _reference_range(test, self.age, self.sex)
        if value is None:
            value = low + (high - low) * self.rng.uniform(0.2, 0.75)
        digits = 2 if high < 10 else 0 if high > 100 else 1
        specimen = at.replace(minute=15)
        return self.p.add("lab-result", specimen, timedelta(hours=5), "lab-lis", loinc_code=test[0],
                          test_name=test[1], value=round(value, digits), unit=test[2], reference_low=low,
                          reference_high=high, specimen_at=specimen.isoformat(), lab=f"{self.site}-lab")

    def _labs(self, at: datetime) -> None:
        for test in (_ANC, _PLT, _HB, _ALT, _AST, _CREA):
            self._lab(at, test)

    def _background_adverse_events(self) -> None:
        """0-2 quiet events per child, never in the 35 days after an infusion; a few serious ones pre-infusion."""
        rng = self.rng
        first_infusion = self.infusions[0][0] if self.infusions else self.end
        for term in rng.sample(_QUIET_AE_TERMS, rng.choice((0, 0, 1, 1, 2))):
            onset = self.enrolled + timedelta(days=rng.randint(1, (self.end - self.enrolled).days - 5), hours=9)
            if any(at <= onset <= at + timedelta(days=35) for at, _, _ in self.infusions):
                continue
            self._adverse_event(onset, term, rng.choice(("parent", "clinician")), {})
        if self.story is None and rng.random() < 0.12 and (first_infusion - self.enrolled).days > 6:
            term, criteria = rng.choice(_SERIOUS_BACKGROUND)
            onset = self.enrolled + timedelta(days=rng.randint(2, (first_infusion - self.enrolled).days - 3))
            self._adverse_event(onset, term, "clinician", criteria, outcome="recovered")

    def _reporter_ref(self, reporter: str) -> str:
        """The child's parent, or one of three rheumatologists at the child's site: the same person for every
        report of that type about this child. Derived from the patient, never drawn from `rng`, so adding it left
        every other record of the cohort as it was."""
        if reporter == "parent":
            return f"parent.{self.p.seed:03d}.{self.p.index:06d}@parents.example"
        return f"rheumatologist.{self.p.index % 3 + 1}@{self.site}.example"

    def _adverse_event(self, onset: datetime, term: str, reporter: str, criteria: dict[str, bool], *,
                       outcome: str = "recovered", case: str | None = None, aware_days: int | None = None,
                       **fields: Any) -> str:
        rng = self.rng
        aware = onset + timedelta(days=rng.randint(0, 2) if aware_days is None else aware_days, hours=2)
        suspects = [{"name": drug.name, "role": "suspect", "causality": "possible", "atc_code": drug.atc}
                    for drug, _, _ in list(self.courses.values())[-1:]]
        fields.setdefault("products", suspects)
        return self.p.add(
            "adverse-event", onset, aware - onset + timedelta(hours=3),
            "parent-app" if reporter == "parent" else "clinic-emr",
            case_id=case or f"CASE-{self.p.seed}-{self.p.index:06d}-{self.p.uid()[:8]}", report_kind="initial",
            reporter_type=reporter, reporter_ref=self._reporter_ref(reporter),
            awareness_date=aware.date().isoformat(), onset_date=onset.date().isoformat(), term=term,
            seriousness=criteria, outcome=outcome, **fields)

    # --- the planted stories ---

    def _plant(self) -> None:
        story = self.story
        if story is None:
            return
        rng = self.rng
        p = self.p
        if story == "infusion-reaction":
            at, infusion_id, lot = self.infusions[0]
            ae = self._adverse_event(
                at + timedelta(hours=4), "Pyrexia", "clinician", {}, aware_days=1, ctcae_term="Fever", ctcae_grade=2,
                meddra_pt_code="10037660", resolution_date=(at + timedelta(days=1)).date().isoformat(),
                products=[{"name": "MSC infusion", "role": "suspect", "causality": "probable", "lot_id": lot,
                           "infusion_event_id": infusion_id}],
                narrative="Fever 39.4 C four hours after the MSC infusion; paracetamol; settled overnight.")
            p.planted(story, infusion_id, ae)
        elif story == "neutropenia":
            at = self.enrolled + timedelta(days=rng.randint(60, 120), hours=1)
            baseline = self._lab(at - timedelta(days=28), _ANC, 3.1)
            low = self._lab(at, _ANC, 0.8)
            p.planted(story, baseline, low)
        elif story == "flare-after-taper":
            assert self.taper is not None
            tapered_at, taper_id = self.taper
            before = self._score_at(tapered_at - timedelta(days=6), 4)
            flare = self._score_at(tapered_at + timedelta(weeks=5), 10)
            self._labs(tapered_at + timedelta(weeks=5))
            self._score_at(tapered_at + timedelta(weeks=12), 8)
            p.add("disease-activity", tapered_at + timedelta(weeks=5, hours=-20), timedelta(minutes=2),
                  "parent-app", instrument="parent-global", score=2.0, assessed_by="parent", documented=False)
            p.planted(story, before, taper_id, flare)
        elif story == "death":
            at, infusion_id, lot = self.infusions[0]
            onset = at + timedelta(days=9, hours=6)
            case = f"CASE-{p.seed}-{p.index:06d}-PE"
            products = [{"name": "UC-MSC", "role": "suspect", "causality": "possible", "lot_id": lot,
                         "infusion_event_id": infusion_id}]
            initial = self._adverse_event(
                onset, "Pulmonary embolism", "clinician", {"hospitalisation": True, "life_threatening": True},
                outcome="not-recovered", case=case, meddra_pt_code="10037377", ctcae_term="Thromboembolic event",
                ctcae_grade=4, products=products)
            self.death_at = onset + timedelta(days=2)
            follow_up = p.add(
                "adverse-event", onset, self.death_at - onset + timedelta(days=1), "clinic-emr", case_id=case,
                report_kind="follow-up", follow_up_number=1, reporter_type="clinician",
                reporter_ref=self._reporter_ref("clinician"),
                awareness_date=onset.date().isoformat(), onset_date=onset.date().isoformat(),
                term="Pulmonary embolism", meddra_pt_code="10037377", ctcae_term="Thromboembolic event",
                ctcae_grade=5, seriousness={"death": True, "life_threatening": True, "hospitalisation": True},
                outcome="fatal", products=products)
            p.planted(story, infusion_id, initial, follow_up)
        elif story == "hys-law":
            at = self.enrolled + timedelta(days=rng.randint(70, 140), hours=1)
            alt_high = _reference_range(_ALT, self.age, self.sex)[1]
            bili_high = _reference_range(_BILI, self.age, self.sex)[1]
            alp_high = _reference_range(_ALP, self.age, self.sex)[1]
            alt = self._lab(at, _ALT, 4.5 * alt_high)
            bili = self._lab(at, _BILI, 2.6 * bili_high)
            alp = self._lab(at, _ALP, 1.2 * alp_high)
            p.planted(story, alt, bili, alp)
        elif story == "duplicate-report":
            onset = self.enrolled + timedelta(days=rng.randint(50, 100), hours=8)
            products = [{"name": "tofacitinib", "role": "suspect", "causality": "probable", "atc_code": "L04AF01"}]
            by_parent = self._adverse_event(onset, "Herpes zoster", "parent", {}, meddra_pt_code="10019974",
                                            products=products)
            by_clinician = self._adverse_event(onset + timedelta(days=1), "Herpes zoster", "clinician", {},
                                               meddra_pt_code="10019974", ctcae_grade=2, products=products)
            p.planted(story, by_parent, by_clinician)
        elif story == "lot-cluster":
            at, infusion_id, lot = self.infusions[0]
            term = ("Urticaria", "Arthralgia", "Myalgia")[self.story_part]
            ae = self._adverse_event(
                at + timedelta(days=5 + 4 * self.story_part), term, "clinician", {},
                products=[{"name": "Wharton jelly MSC", "role": "suspect", "causality": "possible", "lot_id": lot,
                           "infusion_event_id": infusion_id}])
            p.planted(story, infusion_id, ae)

    def _score_at(self, at: datetime, score: int) -> str:
        return self.p.add("disease-activity", at, timedelta(hours=2), "clinic-emr", instrument="SLEDAI-2K",
                          score=score, assessed_by="clinician", documented=True)
