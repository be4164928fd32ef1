"""HL7 FHIR R4 (4.0.1) Bundle import: the clinical story of a child as pvwatch events.

Resource -> event (docs/interop.md has the element-by-element table):
* Patient -> `patient-enrolled` when the bundle holds a Condition with an ICD-10 code for that patient and a
  managing organisation (the site), otherwise `patient-updated` (birth year-month and sex only). The birth date
  is cut to year-month and names, addresses and identifiers are dropped here: the pseudonym is the keyed hash of
  the MRN (identifier of type MR), else of the first identifier, else of the patient's FHIR reference;
* MedicationStatement / MedicationRequest series of one drug -> one course: `treatment-started`, then
  `treatment-tapered` for a lower dose, `treatment-dose-changed` for another, `treatment-stopped` at the end, each
  with the reason its statusReason gives (BundleReader._plan_courses); drug class from the WHO ATC code;
  a MedicationAdministration of an ordinary drug -> `treatment-started`;
* MedicationAdministration or Procedure whose product or code names mesenchymal stromal/stem cells -> `msc-infusion`
  (lot from Medication.batch.lotNumber, clinic from Medication.manufacturer or an Organization performer);
* Observation with a LOINC code and a quantity -> `lab-result`; an Observation naming a disease-activity
  instrument (SLEDAI-2K, JADAS10/27, cJADAS10, physician or parent global) -> `disease-activity`, assessed by a
  clinician (Practitioner), a parent (RelatedPerson) or the patient (Patient); an Observation whose value says
  something improved, worsened or did not change -> `outcome-claim`, by its performer, credited to its focus,
  documented by the scores or labs it is derivedFrom (none: reported, not documented);
* AdverseEvent -> `adverse-event`. R4 has one seriousness code, not the six ICH E2A criteria: "serious" without
  the criteria becomes E.i.3.2f "other medically important condition" (it stays serious, never silently
  non-serious), and a note says so.
Resources pvwatch does not model (an appendectomy, an Encounter, ...) are listed as skipped, never dropped silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pvwatch.errors import InvalidEvent
from pvwatch.interop.common import ImportFileError, ImportResult, content_digest, import_event_id, read_limited
from pvwatch.pseudonym import Pseudonymiser

SOURCE = "fhir-import"
MAX_FILE_BYTES = 128 * 1024 * 1024
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ATC = "http://www.whocc.no/atc"
MEDDRA = "http://terminology.hl7.org/CodeSystem/mdr"
ICD10_SYSTEMS = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")
#: SNOMED CT route codes (FHIR R4 value set route-codes) -> pvwatch Route.
ROUTES = {"26643006": "oral", "47625008": "intravenous", "34206005": "subcutaneous", "78421000": "intramuscular",
          "12130007": "intra-articular", "72607000": "intrathecal", "6064005": "topical"}
#: WHO ATC/DDD index codes and prefixes -> therapeutic class (EULAR nomenclature, Smolen 2014 Ann Rheum Dis 73:3).
#: Checked against the WHO index as published on 2024-07-31 and 2026-04-25 (and 2021-12-03 for the pre-2024
#: codes), docs/interop.md "ATC codes". The 2024 revision moved the JAK inhibitors to L04AF, belimumab to L04AG
#: and leflunomide to L04AK; the old codes stay so that earlier records still classify.
ATC_CLASSES = (
    ("H02AB", "glucocorticoid"),
    ("L04AF", "tsDMARD"), ("L04AA29", "tsDMARD"), ("L04AA37", "tsDMARD"), ("L04AA44", "tsDMARD"),  # JAK inhibitors
    ("L04AB", "bDMARD"), ("L04AC", "bDMARD"), ("L04AG", "bDMARD"), ("L04AA24", "bDMARD"), ("L04AA26", "bDMARD"),
    ("L01FA01", "bDMARD"),  # rituximab
    ("P01BA02", "csDMARD"), ("L01BA01", "csDMARD"), ("L04AX03", "csDMARD"), ("L04AA06", "csDMARD"),
    ("L04AX01", "csDMARD"), ("A07EC01", "csDMARD"), ("L04AK01", "csDMARD"), ("L04AA13", "csDMARD"),
    ("L04AD01", "csDMARD"), ("L04AD02", "csDMARD"), ("L01AA01", "csDMARD"),
)


def drug_class_of(atc: str | None) -> str:
    """csDMARD, bDMARD, tsDMARD, glucocorticoid or other, from a WHO ATC code (other without one)."""
    return next((name for prefix, name in ATC_CLASSES if atc and atc.startswith(prefix)), "other")


#: WHO ICD-10 chapter XIII codes -> pvwatch Condition (JIA categories per ILAR, Petty 2004 J Rheumatol 31:390).
ICD10_CONDITIONS = (("M32", "SLE"), ("M35.1", "MCTD"), ("M08.0", "JIA-polyarticular-RF-positive"),
                    ("M08.1", "JIA-enthesitis-related"), ("M08.2", "JIA-systemic"),
                    ("M08.3", "JIA-polyarticular-RF-negative"), ("M08.4", "JIA-oligoarticular"),
                    ("M09.0", "JIA-psoriatic"), ("M08", "JIA-undifferentiated"))
#: Words that name an MSC product; "stem cell" alone would also match haematopoietic stem cell transplants.
MSC_WORDS = re.compile(r"mesenchymal|stromal cell|\bMSCs?\b", re.IGNORECASE)
TISSUES = (("umbilical", "umbilical-cord"), ("wharton", "umbilical-cord"), ("bone marrow", "bone-marrow"),
           ("adipose", "adipose"))
INSTRUMENTS = (("sledai", "SLEDAI-2K"), ("cjadas", "cJADAS10"), ("jadas-27", "JADAS27"), ("jadas27", "JADAS27"),
               ("jadas", "JADAS10"), ("physician global", "physician-global"), ("parent global", "parent-global"),
               ("parent/patient global", "parent-global"))
ASSESSORS = {"Practitioner": "clinician", "PractitionerRole": "clinician", "RelatedPerson": "parent",
             "Patient": "patient"}
AE_OUTCOMES = {"resolved": "recovered", "recovering": "recovering", "ongoing": "not-recovered",
               "resolvedWithSequelae": "recovered-with-sequelae", "fatal": "fatal", "unknown": "unknown"}
WHO_UMC = ("certain", "probable", "possible", "unlikely", "conditional", "unassessable")


#: FHIR R4 resources read as a series of doses of one drug (see BundleReader._plan_courses).
COURSE_RESOURCES = ("MedicationStatement", "MedicationRequest")
#: statusReason words -> pvwatch ChangeReason, first match wins (MSC first: "parents asked to taper after the
#: MSC infusion" is a taper after MSC therapy, the story pvwatch watches; the words are kept in reason_detail).
CHANGE_REASONS = (
    (re.compile(r"mesenchymal|stromal|stem cell|\bMSCs?\b", re.IGNORECASE), "taper after MSC therapy"),
    (re.compile(r"\bparent|\bfamily|\bcarer|caregiver|mother|father", re.IGNORECASE), "parent decision"),
    (re.compile(r"adverse|side effect|intoleran|toxicit", re.IGNORECASE), "adverse event"),
    (re.compile(r"remission|inactive disease", re.IGNORECASE), "remission"),
    (re.compile(r"ineffective|inefficacy|lack of (efficacy|response)|not effective", re.IGNORECASE), "inefficacy"),
    (re.compile(r"protocol|planned taper|schedule", re.IGNORECASE), "protocol"),
    (re.compile(r"flare|disease activity|active disease", re.IGNORECASE), "disease activity"),
)


def change_reason(text: str) -> dict[str, str]:
    """`reason` (and the words as `reason_detail`) from a statusReason's text and displays; {} when none."""
    text = " ".join(text.split())
    if not text:
        return {}
    reason = next((name for words, name in CHANGE_REASONS if words.search(text)), "other")
    return {"reason": reason, "reason_detail": text[:200]}


@dataclass
class CourseStep:
    """One dose of one drug from a date, as a MedicationStatement or MedicationRequest states it."""

    resource: dict[str, Any]
    base: dict[str, Any]  # patient, drug, drug_class, atc_code
    dose: dict[str, Any]  # dose, dose_unit, route, frequency
    start: datetime
    end: datetime | None
    recorded: datetime
    status: str
    reason: dict[str, str]
    course_id: str = ""

    @property
    def drug_key(self) -> str:
        return str(self.base.get("atc_code") or self.base["drug"].strip().lower())

    def ended_before(self, later: CourseStep) -> bool:
        """A gap of more than a day between this record's end and the next one's start ends the course."""
        return self.end is not None and later.start > self.end + timedelta(days=1)


#: Words of an Observation's value (valueCodeableConcept text/display or valueString) that make it a claim of
#: change, an `outcome-claim`: "improved", "much better", "worse", "no change".
#: A negated improvement ("no improvement", "not better") is read first, as unchanged.
DIRECTIONS = (
    (re.compile(r"\b(unchanged|no change|stable|no(t)? (improv\w*|better))\b", re.IGNORECASE), "unchanged"),
    (re.compile(r"\b(improv\w*|better)\b", re.IGNORECASE), "improved"),
    (re.compile(r"\b(wors\w*|deteriorat\w*)\b", re.IGNORECASE), "worsened"),
)


def claimed_direction(observation: dict[str, Any]) -> str | None:
    """improved / worsened / unchanged from the Observation's value, None when it states no change."""
    value = observation.get("valueCodeableConcept")
    text = _all_text(value) if isinstance(value, dict) else str(observation.get("valueString") or "")
    return next((direction for words, direction in DIRECTIONS if words.search(text)), None)


#: pvwatch field -> FHIR element, so that a rejection names both (ImportResult.add).
FHIR_ELEMENTS = {"dose_unit": "doseQuantity.code", "unit": "valueQuantity.code"}


class Skip(Exception):
    """A resource pvwatch does not model: listed for the operator, not imported."""


class Invalid(Exception):
    """A resource pvwatch models but cannot map: rejected, naming the FHIR element."""


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _code(concept: Any, *systems: str) -> str | None:
    for coding in _codings(concept):
        if coding.get("system") in systems and coding.get("code"):
            return str(coding["code"])
    return None


def _label(concept: Any) -> str | None:
    if isinstance(concept, dict) and concept.get("text"):
        return str(concept["text"])
    for coding in _codings(concept):
        if coding.get("display"):
            return str(coding["display"])
    return None


def _all_text(concept: Any) -> str:
    parts = [str(concept.get("text") or "")] if isinstance(concept, dict) else []
    parts += [str(c.get("display") or "") for c in _codings(concept)]
    return " ".join(parts)


def fhir_instant(value: Any, element: str) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime (a date is midnight UTC); None for a partial date."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{element}: expected a FHIR date/dateTime string")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        if len(value) in (4, 7):
            return None
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{element}: '{value}' is not a FHIR date/dateTime") from None
    if moment.tzinfo is None:
        raise Invalid(f"{element}: a dateTime with a time must have a time zone (FHIR R4 dateTime)")
    return moment


def _start(resource: dict[str, Any], prefix: str) -> tuple[Any, str]:
    if f"{prefix}DateTime" in resource:
        return resource[f"{prefix}DateTime"], f"{prefix}DateTime"
    period = resource.get(f"{prefix}Period")
    if isinstance(period, dict):
        return period.get("start"), f"{prefix}Period.start"
    return None, f"{prefix}[x]"


class BundleReader:
    def __init__(self, bundle: dict[str, Any], label: str, pseudonymiser: Pseudonymiser,
                 result: ImportResult) -> None:
        self.label = label
        self.pseudonymiser = pseudonymiser
        self.bundle_time = fhir_instant(bundle.get("timestamp") or (bundle.get("meta") or {}).get("lastUpdated"),
                                        "Bundle.timestamp")
        self.result = result
        self.entries = [entry.get("resource") if isinstance(entry, dict) else None
                        for entry in bundle.get("entry") or []]
        self.index: dict[str, dict[str, Any]] = {}
        for entry, resource in zip(bundle.get("entry") or [], self.entries, strict=True):
            if isinstance(resource, dict) and resource.get("resourceType") and resource.get("id"):
                self.index[f"{resource['resourceType']}/{resource['id']}"] = resource
                if isinstance(entry, dict) and entry.get("fullUrl"):
                    self.index[str(entry["fullUrl"])] = resource

    def read(self) -> None:
        self._plan_courses()
        mappers = {"Patient": self.patient, "MedicationStatement": self.medication_course,
                   "MedicationRequest": self.medication_course,
                   "MedicationAdministration": self.medication_administration, "Procedure": self.procedure,
                   "Observation": self.observation, "AdverseEvent": self.adverse_event}
        for number, resource in enumerate(self.entries, start=1):
            if not isinstance(resource, dict):
                self.result.reject(f"{self.label} entry {number}", "schema", "entry.resource: missing")
                continue
            kind = str(resource.get("resourceType"))
            where = f"{self.label} entry {number} ({kind}/{resource.get('id', '?')})"
            mapper = mappers.get(kind)
            if mapper is None:
                if kind != "Condition":  # Conditions are read with their Patient
                    self.result.notes.append(f"{where}: skipped, pvwatch does not import {kind}")
                continue
            try:
                records = list(mapper(resource))
            except Skip as reason:
                self.result.notes.append(f"{where}: skipped, {reason}")
                continue
            except Invalid as problem:
                self.result.reject(where, "schema", str(problem))
                continue
            except InvalidEvent as problem:
                self.result.reject(where, problem.reason, problem.detail)
                continue
            except (AttributeError, TypeError, ValueError, KeyError) as problem:
                # An element of the wrong JSON type (a string where FHIR has an object, ...): the record is
                # rejected with what was found, the rest of the bundle is still read.
                self.result.reject(where, "schema", f"unexpected FHIR structure: {type(problem).__name__}: "
                                   f"{str(problem)[:200]}")
                continue
            for record in records:
                record["source"] = SOURCE
                # the reporter pseudonym stays out of the id: ids are those of imports made before it was read
                identified = {key: value for key, value in record.items() if key != "reporter"}
                record["event_id"] = import_event_id("fhir", content_digest(identified))
                self.result.add(where, record, FHIR_ELEMENTS)

    # --- patients -------------------------------------------------------------------------------------------

    def _raw_identifier(self, patient: dict[str, Any], reference: str) -> str:
        identifiers = [i for i in patient.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
        for identifier in identifiers:
            if _code(identifier.get("type"), "http://terminology.hl7.org/CodeSystem/v2-0203") == "MR":
                return str(identifier["value"])
        return str(identifiers[0]["value"]) if identifiers else f"fhir:{reference}"

    def reporter_pseudonym_of(self, reference: str) -> str:
        """The reporter pseudonym of a recorder: of its first identifier (system|value) when the bundle holds the
        resource, else of its reference (a logical id is stable on its server)."""
        identifiers = [i for i in (self.index.get(reference) or {}).get("identifier") or []
                       if isinstance(i, dict) and i.get("value")]
        raw = (f"{identifiers[0].get('system') or ''}|{identifiers[0]['value']}" if identifiers
               else f"fhir:{reference}")
        return self.pseudonymiser.reporter_pseudonym(raw)

    def pseudonym_of(self, resource: dict[str, Any], element: str = "subject") -> str:
        subject = resource.get(element) or resource.get("patient")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if not reference:
            raise Invalid(f"{element}.reference: the resource names no patient")
        patient = self.index.get(str(reference))
        return self.pseudonymiser.pseudonym(self._raw_identifier(patient or {}, str(reference)))

    def _diagnoses(self, patient_ids: set[str]) -> list[dict[str, Any]]:
        diagnoses = []
        for resource in self.entries:
            if not isinstance(resource, dict) or resource.get("resourceType") != "Condition":
                continue
            subject = (resource.get("subject") or {}).get("reference")
            icd10 = _code(resource.get("code"), *ICD10_SYSTEMS)
            if subject not in patient_ids or icd10 is None:
                continue
            condition = next((name for prefix, name in ICD10_CONDITIONS if icd10.startswith(prefix)), "other")
            onset = fhir_instant(resource.get("onsetDateTime"), "Condition.onsetDateTime")
            diagnosed = fhir_instant(resource.get("recordedDate"), "Condition.recordedDate")
            diagnoses.append({"condition": condition, "icd10_code": icd10,
                              **({"onset_date": onset.date()} if onset else {}),
                              **({"diagnosed_date": diagnosed.date()} if diagnosed else {})})
        return diagnoses

    def patient(self, resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
        reference = f"Patient/{resource.get('id')}"
        ids = {reference, *(url for url, item in self.index.items() if item is resource)}
        recorded = fhir_instant((resource.get("meta") or {}).get("lastUpdated"), "Patient.meta.lastUpdated") or (
            self.bundle_time)
        if recorded is None:
            raise Invalid("meta.lastUpdated (or Bundle.timestamp): needed as the time of the patient record")
        birth = resource.get("birthDate")
        record: dict[str, Any] = {
            "patient": self.pseudonymiser.pseudonym(self._raw_identifier(resource, reference)),
            "occurred_at": recorded, "recorded_at": recorded,
            "sex": {"male": "male", "female": "female"}.get(str(resource.get("gender")), "unknown"),
        }
        if isinstance(birth, str) and len(birth) >= 7:
            record["birth_year_month"] = birth[:7]  # the full birth date never leaves the edge
        site = (resource.get("managingOrganization") or {}).get("display")
        diagnoses = self._diagnoses(ids)
        if diagnoses and site and "birth_year_month" in record:
            yield {**record, "type": "patient-enrolled", "diagnoses": diagnoses, "site": site}
        else:
            yield {**record, "type": "patient-updated", **({"site": site} if site else {}),
                   **({"diagnoses": diagnoses} if diagnoses else {})}

    # --- treatments and infusions ---------------------------------------------------------------------------

    def _medication(self, resource: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(code concept, Medication resource if referenced and present)."""
        if "medicationCodeableConcept" in resource:
            return resource["medicationCodeableConcept"], None
        reference = str((resource.get("medicationReference") or {}).get("reference") or "")
        if reference.startswith("#"):
            contained = [c for c in resource.get("contained") or [] if isinstance(c, dict)]
            medication = next((c for c in contained if c.get("id") == reference[1:]), None)
        else:
            medication = self.index.get(reference)
        if medication is None:
            display = (resource.get("medicationReference") or {}).get("display")
            if display:
                return {"text": display}, None
            raise Invalid(f"medicationReference: {reference or '(none)'} is not in the bundle or contained")
        return medication.get("code") or {}, medication

    def _dose(self, dosage: Any, element: str) -> dict[str, Any]:
        if dosage is None:
            return {}
        if not isinstance(dosage, dict):
            raise Invalid(f"{element}: expected a Dosage object")
        quantity = dosage.get("dose")
        for dose_and_rate in dosage.get("doseAndRate") or []:
            if isinstance(dose_and_rate, dict) and dose_and_rate.get("doseQuantity"):
                quantity = dose_and_rate["doseQuantity"]
        out: dict[str, Any] = {}
        route = _code(dosage.get("route"), "http://snomed.info/sct")
        if dosage.get("route") is not None:
            out["route"] = ROUTES.get(route or "", "other")
        if isinstance(quantity, dict) and quantity.get("value") is not None:
            if quantity.get("system") == UCUM and quantity.get("code"):
                # A code under the UCUM system is checked as UCUM at validation: "mcg" is rejected (invalid_unit).
                out |= {"dose": quantity["value"], "dose_unit": quantity["code"]}
            else:
                # Another unit system (2 TAB, v3-orderableDrugForm): the exposure matters more than its dose, so the
                # treatment is kept without a dose and the operator is told.
                self.result.notes.append(
                    f"{self.label} {element}.doseQuantity: {quantity.get('value')} {quantity.get('code') or ''} "
                    f"(system {quantity.get('system') or 'none'}) is not a UCUM dose: the dose is not imported")
        if dosage.get("text"):
            out["frequency"] = str(dosage["text"])[:200]
        return out

    def _treatment(self, resource: dict[str, Any], concept: dict[str, Any]) -> dict[str, Any]:
        atc = _code(concept, ATC)
        drug = _label(concept)
        if not drug:
            raise Invalid("medication: neither text nor a coding display names the drug")
        return {"patient": self.pseudonym_of(resource), "drug": drug[:200], "drug_class": drug_class_of(atc),
                **({"atc_code": atc} if atc else {})}

    # --- treatment courses: MedicationStatement and MedicationRequest series ----------------------------------

    def _course_step(self, resource: dict[str, Any]) -> CourseStep:
        """One MedicationStatement or MedicationRequest (FHIR R4): a dose of one drug from a date."""
        kind = str(resource.get("resourceType"))
        status = str(resource.get("status"))
        concept, _ = self._medication(resource)
        base = self._treatment(resource, concept)
        if kind == "MedicationStatement":
            if status in ("entered-in-error", "not-taken", "unknown", "intended"):
                raise Skip(f"status {status} is not a treatment the patient received")
            value, element = _start(resource, "effective")
            start = fhir_instant(value, f"MedicationStatement.{element}")
            end = fhir_instant((resource.get("effectivePeriod") or {}).get("end"), "effectivePeriod.end")
            recorded = fhir_instant(resource.get("dateAsserted"), "MedicationStatement.dateAsserted")
            dosages, dosage_element = resource.get("dosage") or [None], "dosage"
            reasons = resource.get("statusReason") or []
        else:
            if status in ("cancelled", "entered-in-error", "draft", "unknown"):
                raise Skip(f"status {status}: not a treatment the patient was given")
            if resource.get("intent") in ("proposal", "plan", "option"):
                raise Skip(f"intent {resource.get('intent')}: not an order")
            dosages, dosage_element = resource.get("dosageInstruction") or [None], "dosageInstruction"
            first = dosages[0] if isinstance(dosages, list) and isinstance(dosages[0], dict) else {}
            bounds = ((first.get("timing") or {}).get("repeat") or {}).get("boundsPeriod") or {}
            recorded = fhir_instant(resource.get("authoredOn"), "MedicationRequest.authoredOn")
            element = "dosageInstruction[0].timing.repeat.boundsPeriod.start"
            start = fhir_instant(bounds.get("start"), element) or recorded
            end = fhir_instant(bounds.get("end"), "dosageInstruction[0].timing.repeat.boundsPeriod.end")
            reasons = [resource["statusReason"]] if resource.get("statusReason") else []
            element = "authoredOn"
        if start is None:
            raise Invalid(f"{element}: a full start date is needed")
        if not isinstance(dosages, list):
            raise Invalid(f"{dosage_element}: expected a list of Dosage objects")
        if not isinstance(reasons, list):
            raise Invalid("statusReason: expected a list of CodeableConcepts")
        where = f"{kind}/{resource.get('id')} {dosage_element}[0]"
        return CourseStep(resource=resource, base=base, dose=self._dose(dosages[0], where),
                          start=start, end=end, recorded=recorded or start, status=status,
                          reason=change_reason(" ".join(_all_text(reason) for reason in reasons)))

    def _plan_courses(self) -> None:
        """Group every statement and request into courses (one patient, one drug) and decide each one's events.

        FHIR R4 has no taper or dose-change resource: a new dose is a new MedicationStatement (or a new
        MedicationRequest, often pointing at the one it replaces through priorPrescription) for the same drug.
        Consecutive records of the same patient and drug are therefore one course: the first starts it, a lower
        dose in the same unit is a taper, another dose a dose change, the same dose no event; a record whose
        effectivePeriod ended more than a day before the next began closes the course (stopped) and the next
        starts a new one. The reason is the statusReason of the record the new dose replaces (why the old
        dose ended), else the new record's own.
        """
        self.course_events: dict[int, list[dict[str, Any]]] = {}
        self.course_problems: dict[int, Exception] = {}
        self.course_ids: dict[int, str] = {}
        self.course_skips: dict[int, str] = {}
        courses: dict[tuple[str, str], list[CourseStep]] = {}
        for resource in self.entries:
            if not isinstance(resource, dict) or resource.get("resourceType") not in COURSE_RESOURCES:
                continue
            try:
                step = self._course_step(resource)
            except (Skip, Invalid, InvalidEvent, AttributeError, TypeError, ValueError, KeyError) as problem:
                self.course_problems[id(resource)] = problem
                continue
            courses.setdefault((step.base["patient"], step.drug_key), []).append(step)
        for steps in courses.values():
            steps.sort(key=lambda step: (step.start, step.recorded))
            for number, step in enumerate(steps):
                before = steps[number - 1] if number else None
                after = steps[number + 1] if number + 1 < len(steps) else None
                try:
                    self.course_events[id(step.resource)] = list(self._course_records(before, step, after))
                except (TypeError, ValueError) as problem:  # a dose that is not a number: rejected when read
                    self.course_problems[id(step.resource)] = problem
                self.course_ids[id(step.resource)] = step.course_id

    def _course_records(self, before: CourseStep | None, step: CourseStep,
                        after: CourseStep | None) -> Iterator[dict[str, Any]]:
        step.course_id = before.course_id if before and not before.ended_before(step) else (
            re.sub(r"[^A-Za-z0-9._:-]", "-", f"fhir-{step.resource.get('id')}")[:64])
        timing = {"occurred_at": step.start, "recorded_at": max(step.recorded, step.start)}
        if before is None or before.ended_before(step):
            yield {"type": "treatment-started", **step.base, **step.dose, **timing, "course_id": step.course_id}
        else:
            dose, unit = step.dose.get("dose"), step.dose.get("dose_unit")
            previous = before.dose.get("dose") if before.dose.get("dose_unit") == unit else None
            if dose is None:
                self.course_skips[id(step.resource)] = "no UCUM dose: the course continues, at a dose not imported"
            elif dose == previous:
                self.course_skips[id(step.resource)] = (
                    "the same drug at the same dose as the course's previous record: the course continues")
            else:
                kind = "treatment-tapered" if previous is not None and dose < previous else "treatment-dose-changed"
                yield {"type": kind, **step.base, **step.dose, **timing, "course_id": step.course_id,
                       **({"previous_dose": previous} if previous is not None else {}),
                       **(before.reason or step.reason)}
        stopped = step.status in ("stopped", "completed") or step.end is not None
        if stopped and (after is None or step.ended_before(after)):
            # A statement's dateAsserted bounds an undated stop ("stopped, as of this date"); a request's authoredOn
            # is when it was ordered, so an undated stopped or completed order has no stop time to import.
            stopped_at = step.end or (step.recorded if step.resource.get("resourceType") == "MedicationStatement"
                                      else None)
            if stopped_at is None:
                words = f" ({step.reason['reason_detail']})" if step.reason else ""
                self.result.notes.append(
                    f"{self.label} MedicationRequest/{step.resource.get('id')}: status {step.status}{words} without "
                    "an end date (dosageInstruction.timing.repeat.boundsPeriod.end): no treatment-stopped, its time "
                    "is unknown")
                return
            yield {"type": "treatment-stopped", **step.base, "occurred_at": stopped_at,
                   "recorded_at": max(step.recorded, stopped_at), "course_id": step.course_id, **step.reason,
                   **({"previous_dose": step.dose["dose"], "dose_unit": step.dose["dose_unit"]}
                      if "dose" in step.dose else {})}

    def medication_course(self, resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
        problem = self.course_problems.get(id(resource))
        if problem is not None:
            raise problem
        records = self.course_events.get(id(resource), [])
        if not records:
            raise Skip(self.course_skips.get(id(resource), "nothing to import"))
        yield from records

    def medication_administration(self, resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
        concept, medication = self._medication(resource)
        value, element = _start(resource, "effective")
        given = fhir_instant(value, f"MedicationAdministration.{element}")
        if given is None:
            raise Invalid(f"{element}: a full date of administration is needed")
        if resource.get("status") in ("not-done", "entered-in-error"):
            raise Skip(f"status {resource.get('status')}: nothing was given")
        if MSC_WORDS.search(_all_text(concept)):
            yield self._infusion(resource, concept, medication, given)
            return
        dose = self._dose(resource.get("dosage"), f"MedicationAdministration/{resource.get('id')} dosage")
        dose.pop("frequency", None)
        request = str((resource.get("request") or {}).get("reference") or "")
        course = self.course_ids.get(id(self.index.get(request))) or request or f"fhir-{resource.get('id')}"
        yield {"type": "treatment-started", **self._treatment(resource, concept), **dose, "occurred_at": given,
               "recorded_at": given, "course_id": re.sub(r"[^A-Za-z0-9._:-]", "-", course)[:64]}

    def _infusion(self, resource: dict[str, Any], concept: dict[str, Any], medication: dict[str, Any] | None,
                  given: datetime, clinic: str | None = None) -> dict[str, Any]:
        text = _all_text(concept).lower()
        manufacturer = ((medication or {}).get("manufacturer") or {}).get("display")
        performers = [(p.get("actor") or {}) for p in resource.get("performer") or [] if isinstance(p, dict)]
        organisations = [a.get("display") for a in performers
                         if str(a.get("reference", "")).startswith("Organization/") and a.get("display")]
        clinic = clinic or manufacturer or (organisations[0] if organisations else None)
        if not clinic:
            raise Invalid("medication.manufacturer: the clinic or manufacturer of the MSC product is required")
        record: dict[str, Any] = {
            "type": "msc-infusion", "patient": self.pseudonym_of(resource), "occurred_at": given,
            "recorded_at": given, "clinic": clinic, "product_name": (_label(concept) or "")[:200] or None,
            "tissue_origin": next((origin for word, origin in TISSUES if word in text), "unknown"),
            "donor_type": "autologous" if "autologous" in text else "allogeneic" if "allogeneic" in text else "unknown",
        }
        if manufacturer:
            record["manufacturer"] = manufacturer
        lot = ((medication or {}).get("batch") or {}).get("lotNumber")
        if lot:
            record["lot_id"] = lot
        dose = (resource.get("dosage") or {}).get("dose") if isinstance(resource.get("dosage"), dict) else None
        if isinstance(dose, dict) and dose.get("value") is not None:
            unit = str(dose.get("code") or "")
            scale = {"10*6/kg": 1e6, "/kg": 1.0, "10*6": 1e6, "10*8": 1e8, "{cells}": 1.0, "10*6.{cells}/kg": 1e6}
            if unit not in scale:
                raise Invalid(f"dosage.dose.code: '{unit}' is not a cell-count UCUM unit (10*6/kg, 10*6, ...)")
            key = "cells_per_kg" if unit.endswith("/kg") else "total_cells"
            record[key] = float(dose["value"]) * scale[unit]
        route = _code((resource.get("dosage") or {}).get("route"), "http://snomed.info/sct")
        if route:
            record["route"] = ROUTES.get(route, "other")
        return {key: value for key, value in record.items() if value is not None}

    def procedure(self, resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
        concept = resource.get("code") or {}
        if not MSC_WORDS.search(_all_text(concept)):
            raise Skip(f"procedure '{_label(concept)}' is not an MSC infusion")
        value, element = _start(resource, "performed")
        given = fhir_instant(value, f"Procedure.{element}")
        if given is None:
            raise Invalid(f"{element}: a full date of the infusion is needed")
        on_behalf = [(p.get("onBehalfOf") or {}).get("display") for p in resource.get("performer") or []
                     if isinstance(p, dict)]
        clinic = next((name for name in on_behalf if name), None) or (resource.get("location") or {}).get("display")
        if not clinic:
            raise Invalid("performer.onBehalfOf / location: the clinic that gave the MSC infusion is required")
        yield self._infusion({**resource, "performer": []}, concept, None, given, clinic)

    # --- observations -----------------------------------------------------------------------------------------

    def _assessor(self, resource: dict[str, Any]) -> str:
        for performer in resource.get("performer") or []:
            kind = str((performer or {}).get("reference", "")).split("/")[0]
            if kind in ASSESSORS:
                return ASSESSORS[kind]
        raise Invalid("performer: a Practitioner, RelatedPerson or Patient must say who gave the score")

    def observation(self, resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if resource.get("status") in ("entered-in-error", "cancelled", "registered"):
            raise Skip(f"status {resource.get('status')}")
        value, element = _start(resource, "effective")
        taken = fhir_instant(value, f"Observation.{element}")
        issued = fhir_instant(resource.get("issued"), "Observation.issued")
        if taken is None:
            raise Invalid(f"{element}: a full date and time of the observation is needed")
        recorded = issued or taken
        concept = resource.get("code") or {}
        text = _all_text(concept).lower()
        instrument = next((name for word, name in INSTRUMENTS if word in text), None)
        quantity = resource.get("valueQuantity")
        if instrument is not None:
            score = quantity.get("value") if isinstance(quantity, dict) else resource.get("valueInteger")
            if score is None:
                raise Invalid("value[x]: the score is missing (valueQuantity or valueInteger)")
            assessed_by = self._assessor(resource)
            yield {"type": "disease-activity", "patient": self.pseudonym_of(resource), "occurred_at": taken,
                   "recorded_at": recorded, "instrument": instrument, "score": score, "assessed_by": assessed_by,
                   "documented": assessed_by == "clinician"}
            return
        direction = claimed_direction(resource)
        if direction is not None and quantity is None:
            yield self._outcome_claim(resource, concept, direction, taken, recorded)
            return
        loinc = _code(concept, LOINC)
        if loinc is None:
            raise Skip("no LOINC code, no disease-activity instrument and no direction of change")
        if not isinstance(quantity, dict) or quantity.get("value") is None:
            raise Skip(f"LOINC {loinc} has no valueQuantity (pvwatch keeps numeric results)")
        if quantity.get("system") != UCUM or not quantity.get("code"):
            raise Invalid("valueQuantity.code: the unit must be a UCUM code (system http://unitsofmeasure.org)")
        record: dict[str, Any] = {
            "type": "lab-result", "patient": self.pseudonym_of(resource), "occurred_at": taken,
            "recorded_at": recorded, "loinc_code": loinc, "value": quantity["value"], "unit": quantity["code"],
            "specimen_at": taken,
        }
        if quantity.get("comparator"):
            record["comparator"] = quantity["comparator"]
        if _label(concept):
            record["test_name"] = str(_label(concept))[:200]
        ranges = [r for r in resource.get("referenceRange") or [] if isinstance(r, dict)]
        if ranges:
            for bound in ("low", "high"):
                limit = ranges[0].get(bound)
                if isinstance(limit, dict) and limit.get("value") is not None:
                    if limit.get("code") not in (None, quantity["code"]):
                        raise Invalid(f"referenceRange[0].{bound}: unit {limit.get('code')} differs from the value's")
                    record[f"reference_{bound}"] = limit["value"]
        yield record

    def _outcome_claim(self, resource: dict[str, Any], concept: dict[str, Any], direction: str, taken: datetime,
                       recorded: datetime) -> dict[str, Any]:
        """An Observation whose value says that something improved, worsened or did not change.

        Who says so is the performer (R4 Observation.performer: Practitioner -> clinician, RelatedPerson -> parent,
        Patient -> patient); what it is credited to is Observation.focus, which R4 allows to be "an intervention"
        (an MSC infusion -> "MSC", another product or procedure -> its name); the documented measure is
        Observation.derivedFrom ("a measurement from which this observation value is derived"): the
        disease-activity or lab observations in the bundle, earliest as `before`, latest as `after`, the latest's
        event id as evidence. Without derivedFrom the claim is undocumented, which is the gap pvwatch exposes.
        """
        what = _label(concept)
        if not what:
            raise Invalid("code: neither text nor a coding display says what changed")
        record: dict[str, Any] = {"type": "outcome-claim", "patient": self.pseudonym_of(resource),
                                  "occurred_at": taken, "recorded_at": recorded, "what": what[:200],
                                  "direction": direction, "claimed_by": self._assessor(resource)}
        focus = [self.index.get(str((item or {}).get("reference") or "")) for item in resource.get("focus") or []]
        credited = [self._credited_to(item) for item in focus if isinstance(item, dict)]
        if any(credited):
            record["attributed_to"] = next(name for name in credited if name)
        measure = self._documented_measure(resource.get("derivedFrom") or [], record["patient"])
        if measure is not None:
            record["documented_measure"] = measure
        return record

    def _credited_to(self, target: dict[str, Any]) -> str | None:
        kind = target.get("resourceType")
        if kind in ("MedicationAdministration", "MedicationStatement", "MedicationRequest"):
            concept, _ = self._medication(target)
        elif kind == "Procedure":
            concept = target.get("code") or {}
        else:
            return None
        return "MSC" if MSC_WORDS.search(_all_text(concept)) else (_label(concept) or "")[:200] or None

    def _documented_measure(self, references: Any, patient: str) -> dict[str, Any] | None:
        if not isinstance(references, list):
            raise Invalid("derivedFrom: expected a list of References")
        measured: list[dict[str, Any]] = []
        for item in references:
            reference = str((item or {}).get("reference") or "") if isinstance(item, dict) else str(item)
            target = self.index.get(reference)
            if not isinstance(target, dict) or target.get("resourceType") != "Observation":
                raise Invalid(f"derivedFrom: '{reference}' is not an Observation in the bundle")
            if claimed_direction(target) is not None and target.get("valueQuantity") is None:
                raise Invalid(f"derivedFrom: '{reference}' is another claim, not a measurement")
            try:
                measured.extend(record for record in self.observation(target)
                                if record["type"] in ("disease-activity", "lab-result"))
            except Skip as reason:
                raise Invalid(f"derivedFrom: '{reference}' is not a measurement pvwatch imports ({reason})") from None
        if not measured:
            return None
        if any(record["patient"] != patient for record in measured):
            raise Invalid("derivedFrom: a measurement of another patient cannot document this patient's claim")
        measured.sort(key=lambda record: record["occurred_at"])
        measures = {record.get("instrument") or record["loinc_code"] for record in measured}  # a score or a LOINC
        if len(measures) != 1:
            raise Invalid(f"derivedFrom: one measure is expected, found {sorted(map(str, measures))}")
        latest = measured[-1]
        value = "score" if "instrument" in latest else "value"
        return {"name": str(latest.get("instrument") or latest.get("test_name") or latest["loinc_code"])[:200],
                "after": latest[value], **({"before": measured[0][value]} if len(measured) > 1 else {}),
                "evidence_event_id": import_event_id("fhir", content_digest({**measured[-1], "source": SOURCE}))}

    # --- adverse events ---------------------------------------------------------------------------------------

    def adverse_event(self, resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if resource.get("actuality") == "potential":
            raise Skip("actuality potential: a near miss, not an adverse event")
        onset = fhir_instant(resource.get("date"), "AdverseEvent.date")
        detected = fhir_instant(resource.get("detected"), "AdverseEvent.detected")
        recorded = fhir_instant(resource.get("recordedDate"), "AdverseEvent.recordedDate")
        aware = detected or recorded or onset
        if aware is None:
            raise Invalid("detected / recordedDate / date: one full date is needed for the awareness date (day 0)")
        event = resource.get("event") or {}
        term = _label(event)
        if not term:
            raise Invalid("event: neither text nor a coding display names the event")
        identifier = resource.get("identifier") or {}
        case_id = (identifier.get("value") if isinstance(identifier, dict) else None) or resource.get("id")
        recorded_by = str((resource.get("recorder") or {}).get("reference", ""))
        reporter = {"Practitioner": "clinician", "PractitionerRole": "clinician", "RelatedPerson": "parent",
                    "Patient": "patient"}.get(recorded_by.split("/")[0])
        if reporter is None:
            raise Invalid("recorder: a Practitioner, RelatedPerson or Patient reference must say who reported it")
        serious = _code(resource.get("seriousness"),
                        "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness") == "serious"
        if serious:
            self.result.notes.append(f"{self.label} AdverseEvent/{resource.get('id')}: 'serious' without ICH E2A "
                                     "criteria imported as medically important (E.i.3.2f); an officer should refine")
        outcome_code = _code(resource.get("outcome"), "http://terminology.hl7.org/CodeSystem/adverse-event-outcome")
        products = []
        for entity in resource.get("suspectEntity") or []:
            product = self._suspect(entity)
            if product is not None:
                products.append(product)
        yield {
            "type": "adverse-event", "patient": self.pseudonym_of(resource), "case_id": str(case_id),
            "occurred_at": onset or aware, "recorded_at": recorded or aware, "reporter_type": reporter,
            "reporter": self.reporter_pseudonym_of(recorded_by),
            "awareness_date": aware.date(), "term": term[:200],
            **({"onset_date": onset.date()} if onset else {}),
            **({"meddra_pt_code": code} if (code := _code(event, MEDDRA)) else {}),
            "seriousness": {"medically_important": serious},
            "outcome": "fatal" if outcome_code == "fatal" else AE_OUTCOMES.get(outcome_code or "unknown", "unknown"),
            "products": products,
        }

    def _suspect(self, entity: Any) -> dict[str, Any] | None:
        if not isinstance(entity, dict):
            return None
        instance = entity.get("instance") or {}
        reference = str(instance.get("reference") or "")
        target = self.index.get(reference)
        name = instance.get("display")
        lot = None
        if target is not None and target.get("resourceType") in ("MedicationAdministration", "MedicationStatement"):
            concept, medication = self._medication(target)
            name = _label(concept) or name
            lot = ((medication or {}).get("batch") or {}).get("lotNumber")
        elif target is not None:
            name = _label(target.get("code")) or name
        if not name:
            self.result.notes.append(f"{self.label}: suspect entity {reference or '(none)'} is neither in the bundle "
                                     "nor named: product not recorded")
            return None
        product: dict[str, Any] = {"name": str(name)[:200], "role": "suspect", **({"lot_id": lot} if lot else {})}
        for causality in entity.get("causality") or []:
            words = _all_text((causality or {}).get("assessment")).lower()
            category = next((c for c in WHO_UMC if c in words), None)
            if category:
                product["causality"] = category
        return product


def import_fhir(path: Path, pseudonymiser: Pseudonymiser) -> ImportResult:
    """Every resource of a FHIR R4 Bundle (JSON) mapped to pvwatch events, rejected with a reason, or skipped."""
    data = read_limited(path, MAX_FILE_BYTES)
    try:
        bundle = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path.name}: byte {error.start} is not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise ImportFileError(f"{path.name}: not JSON (line {error.lineno}: {error.msg})") from None
    except RecursionError:
        raise ImportFileError(f"{path.name}: JSON nested too deeply to be a FHIR Bundle") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise ImportFileError(f"{path.name}: expected a FHIR Bundle (resourceType 'Bundle')")
    if not isinstance(bundle.get("entry", []), list):
        raise ImportFileError(f"{path.name}: Bundle.entry must be a list")
    result = ImportResult()
    try:
        reader = BundleReader(bundle, path.name, pseudonymiser, result)
    except Invalid as problem:
        raise ImportFileError(f"{path.name}: {problem}") from None
    reader.read()
    return result
