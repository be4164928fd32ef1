"""ICH E2B(R3) ICSR import: HL7 v3 `MCCI_IN200100UV01` batches of `PORR_IN049016UV` messages -> adverse events.

Data element numbers (C.1.1, E.i.3.2a, ...) are those of the ICH E2B(R3) Implementation Guide (ICH ICSR IG
v5.02) and its code lists (OID 2.16.840.1.113883.3.989.2.1.1.*); the XPaths follow FDA's published FAERS
example ICSRs (tests/data/e2b/README.md).

The model's choice, documented in docs/interop.md:
* one ICSR with several reactions (E.i) gives one `adverse-event` per reaction, all with the case id of the
  ICSR, the same `recorded_at` (C.1.5) and the same products, each with the causality assessed for that reaction;
* case id is the worldwide unique case id C.1.8.1 (C.1.1 if absent): follow-ups keep it;
* a version is a follow-up when its most recent information date C.1.5 is later than the date first received
  C.1.4 (for an initial report they are equal, ICH IG C.1.5), or when it is an amendment (C.1.11.1 = 2);
* event ids are uuid5 of a digest of the mapped event (case id, dates, reaction, products, ...): re-importing
  a file, or an export of the same case, stores nothing twice; a follow-up (new C.1.5) is a new version; two
  different reports that reuse the same identifiers (FDA's own examples do) are both kept, not one dropped;
* the patient pseudonym is the keyed hash of the first patient record number D.1.1.1-4, or else of the case
  id; initials (D.1) never leave this module; sex (D.5) and the birth date (D.2.1) cut to year-month go out as
  one `patient-updated` per ICSR;
* the reporter pseudonym (`reporter`, what duplicate-case compares) is the keyed hash, in the reporter domain, of
  the primary source's name C.2.r.1.2-4 with its organisation C.2.r.2.1; no name (absent or masked) gives none.
  Nothing else of C.2.r (title, address, telephone, e-mail) leaves this module. The pseudonym is left out of the
  event id's digest, so ids are those of imports made before reporters were read, and an export (which has no
  name to write) re-imports to the same ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from lxml import etree

from pvwatch.interop.common import ImportFileError, ImportResult, content_digest, import_event_id, read_limited
from pvwatch.pseudonym import Pseudonymiser

NS = {"hl7": "urn:hl7-org:v3", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
SOURCE = "e2b-import"
MAX_FILE_BYTES = 64 * 1024 * 1024

# ICH E2B(R3) OIDs (ICH ICSR IG, appendix "OIDs"): identifier roots and code systems.
OID_REPORT_ID = "2.16.840.1.113883.3.989.2.1.3.1"  # C.1.1 sender's safety report unique identifier
OID_WORLDWIDE_ID = "2.16.840.1.113883.3.989.2.1.3.2"  # C.1.8.1 worldwide unique case identification number
OID_PATIENT_RECORD_IDS = (  # D.1.1.1 GP, D.1.1.2 specialist, D.1.1.3 hospital, D.1.1.4 investigation number
    "2.16.840.1.113883.3.989.2.1.3.7", "2.16.840.1.113883.3.989.2.1.3.8",
    "2.16.840.1.113883.3.989.2.1.3.9", "2.16.840.1.113883.3.989.2.1.3.10",
)
CS_OBSERVATION = "2.16.840.1.113883.3.989.2.1.1.19"  # ICH observation codes
CS_CHARACTERISTIC = "2.16.840.1.113883.3.989.2.1.1.23"
CS_MEDDRA = "2.16.840.1.113883.6.163"

# ICH observation codes (code system ...1.1.19) of E.i: the six seriousness criteria E.i.3.2a-f, outcome E.i.7.
SERIOUSNESS_CODES = {
    "34": "death",  # E.i.3.2a results in death
    "21": "life_threatening",  # E.i.3.2b
    "33": "hospitalisation",  # E.i.3.2c caused / prolonged hospitalisation
    "35": "disability",  # E.i.3.2d disabling / incapacitating
    "12": "congenital_anomaly",  # E.i.3.2e
    "26": "medically_important",  # E.i.3.2f other medically important condition
}
CODE_REACTION, CODE_OUTCOME, CODE_TRANSLATION = "29", "27", "30"
CODE_DRUG_ROLE, CODE_CAUSALITY, CODE_AGE, CODE_DRUG_INFORMATION = "20", "39", "3", "4"

#: E.i.7 outcome codes (ICH code list 2.16.840.1.113883.3.989.2.1.1.11).
OUTCOMES = {"0": "unknown", "1": "recovered", "2": "recovering", "3": "not-recovered",
            "4": "recovered-with-sequelae", "5": "fatal"}
#: D.5 sex (ISO/IEC 5218: 1 male, 2 female; 0 unknown and 9 not applicable are left out).
SEXES = {"1": "male", "2": "female"}
#: G.k.1 characterisation of drug role; 4 "drug not administered" is not a product the patient received.
DRUG_ROLES = {"1": "suspect", "2": "concomitant", "3": "interacting"}
#: C.2.r.4 qualification: 1 physician, 2 pharmacist, 3 other health professional, 4 lawyer, 5 consumer or
#: other non health professional. E2B has no "parent" code and pvwatch must keep the distinction: a
#: non-professional report is the patient's own when the patient was an adult (18+) at onset (D.2.2 or D.2.1),
#: otherwise the parent's (pvwatch monitors children, so an unknown age counts as a child).
PROFESSIONAL_REPORTERS = {"1": "clinician", "2": "pharmacist", "3": "clinician"}
NON_PROFESSIONAL_REPORTERS = {"4", "5"}
#: WHO-UMC causality categories as they may be written in G.k.9.i.2.r.3 (free text in E2B(R3)).
WHO_UMC = {"certain": "certain", "probable": "probable", "likely": "probable", "probable/likely": "probable",
           "possible": "possible", "unlikely": "unlikely", "conditional": "conditional",
           "unclassified": "conditional", "conditional/unclassified": "conditional",
           "unassessable": "unassessable", "unclassifiable": "unassessable",
           "unassessable/unclassifiable": "unassessable"}

#: C.2.r primary source: the author of a sourceReport relatedInvestigation (name C.2.r.1, organisation C.2.r.2,
#: qualification C.2.r.4 under it).
PRIMARY_SOURCE_AUTHOR = "hl7:subjectOf2/hl7:controlActEvent/hl7:author/hl7:assignedEntity"

#: pvwatch field -> E2B(R3) data element, so a rejection names the field the sender knows.
E2B_FIELDS = {"case_id": "C.1.8.1", "awareness_date": "C.1.4/C.1.5", "recorded_at": "C.1.5",
              "reporter_type": "C.2.r.4", "reporter": "C.2.r.1-2", "onset_date": "E.i.4", "term": "E.i.1",
              "meddra_pt_code": "E.i.2.1b",
              "meddra_version": "E.i.2.1a", "resolution_date": "E.i.5", "birth_year_month": "D.2.1",
              "sex": "D.5",
              "seriousness": "E.i.3.2", "outcome": "E.i.7", "products": "G.k", "narrative": "H.1"}


def _parser() -> etree.XMLParser:
    """No entity expansion, no DTD, no network: an ICSR never needs them, and they are how XML attacks work."""
    return etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False,
                           remove_comments=True, remove_pis=True)


def parse_xml(data: bytes, label: str) -> etree._Element:
    try:
        tree = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as error:
        raise ImportFileError(f"{label}: not well-formed XML: {error}") from None
    if tree.getroottree().docinfo.doctype:
        raise ImportFileError(f"{label}: a DOCTYPE is not allowed in an ICSR (entity expansion attacks)")
    return tree


_HL7_TS = re.compile(r"\d{4}(\d{2}(\d{2}(\d{4}(\d{2}(\.\d{1,4})?)?)?)?)?([+-]\d{4})?")


@dataclass(frozen=True)
class HL7Time:
    """An HL7 v3 TS value: YYYY[MM[DD[HHMM[SS]]]][+-ZZZZ]; E2B allows partial dates."""

    raw: str

    @property
    def precision(self) -> int:
        return len(self.raw.split("+")[0].split("-")[0].split(".")[0])

    def date(self) -> date | None:
        """The calendar date, or None when the source gives only a year or a month."""
        digits = self.raw[:8]
        if self.precision < 8:
            return None
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))

    def instant(self) -> datetime | None:
        """An aware datetime (UTC when the source gives a date only or no offset)."""
        day = self.date()
        if day is None:
            return None
        body, offset = self.raw, UTC
        for sign in "+-":
            if sign in body[8:]:
                body, zone = body.split(sign, 1)
                minutes = int(zone[:2]) * 60 + int(zone[2:4])
                offset = timezone(timedelta(minutes=minutes if sign == "+" else -minutes))
        clock = body[8:].split(".")[0].ljust(6, "0")
        return datetime(day.year, day.month, day.day, int(clock[:2]), int(clock[2:4]), int(clock[4:6]),
                        tzinfo=offset)


def _attr(node: etree._Element | None, path: str, name: str) -> str | None:
    if node is None:
        return None
    found = node.find(path, NS) if path else node
    return None if found is None else found.get(name)


def _text(node: etree._Element | None, path: str) -> str | None:
    if node is None:
        return None
    found = node.find(path, NS)
    if found is None or found.text is None:
        return None
    return " ".join(found.text.split()) or None


def _time(node: etree._Element | None, path: str) -> HL7Time | None:
    raw = _attr(node, path, "value")
    if not raw:
        return None
    if not _HL7_TS.fullmatch(raw):
        raise ValueError(f"'{raw}' is not an HL7 date (YYYY[MM[DD[HHMM[SS]]]][+-ZZZZ])")
    value = HL7Time(raw)
    value.instant()  # raises ValueError on an impossible date such as month 13
    return value


def _observations(parent: etree._Element, code: str) -> Iterator[etree._Element]:
    for observation in parent.iterfind("hl7:subjectOf2/hl7:observation", NS):
        if _attr(observation, "hl7:code", "code") == code:
            yield observation


def _related_values(reaction: etree._Element) -> dict[str, etree._Element | None]:
    """ICH observation code -> value of each E.i sub-observation (seriousness, outcome, translation, ...)."""
    values: dict[str, etree._Element | None] = {}
    for relation in reaction.iterfind("hl7:outboundRelationship2/hl7:observation", NS):
        code = _attr(relation, "hl7:code", "code")
        if code is not None and code not in values:
            values[code] = relation.find("hl7:value", NS)
    return values


def _flag(related: dict[str, etree._Element | None], code: str) -> bool:
    """A seriousness criterion: true only when sent as BL true; false and nullFlavor NI both mean 'not met'."""
    return _attr(related.get(code), "", "value") == "true"


#: Lot numbers that mean "not known" (FDA's examples send UNKNOWN): kept as no lot, never as a lot that would
#: cluster every unknown-lot report together.
UNKNOWN_LOTS = {"UNKNOWN", "UNK", "NA", "N/A", "NI", "ASKU", "NASK"}


@dataclass
class _Product:
    name: str
    role: str | None = None
    lot_id: str | None = None


class IcsrReader:
    """Reads one ICSR (`investigationEvent`) into pvwatch adverse-event records."""

    def __init__(self, icsr: etree._Element, label: str, pseudonymiser: Pseudonymiser, result: ImportResult) -> None:
        self.icsr = icsr
        self.label = label
        self.pseudonymiser = pseudonymiser
        self.result = result
        self.assessment = icsr.find("hl7:component/hl7:adverseEventAssessment", NS)
        self.role = None if self.assessment is None else self.assessment.find(
            "hl7:subject1/hl7:primaryRole", NS)
        self.reporter: str | None = None  # the primary source's pseudonym, set by read()

    def _id(self, root: str) -> str | None:
        for identifier in self.icsr.iterfind("hl7:id", NS):
            extension = identifier.get("extension")
            if identifier.get("root") == root and extension:
                return str(extension)
        return None

    @property
    def report_id(self) -> str | None:
        return self._id(OID_REPORT_ID)

    @property
    def case_id(self) -> str | None:
        return self._id(OID_WORLDWIDE_ID) or self.report_id

    def _characteristic(self, code: str) -> str | None:
        for item in self.icsr.iterfind("hl7:subjectOf2/hl7:investigationCharacteristic", NS):
            if _attr(item, "hl7:code", "code") == code and _attr(item, "hl7:code", "codeSystem") == CS_CHARACTERISTIC:
                return _attr(item, "hl7:value", "code")
        return None

    def _patient_ref(self, case_id: str) -> str:
        if self.role is not None:
            for identifier in self.role.iterfind("hl7:player1/hl7:asIdentifiedEntity/hl7:id", NS):
                if identifier.get("root") in OID_PATIENT_RECORD_IDS and identifier.get("extension"):
                    return f"e2b-record:{identifier.get('root')}:{identifier.get('extension')}"
        return f"e2b-case:{case_id}"

    def _age_years(self, onset: date | None) -> float | None:
        """D.2.2 age at onset, or D.2.1 birth date to onset; used only to tell a parent from the patient."""
        if self.role is None:
            return None
        per_year = {"a": 1.0, "mo": 12.0, "wk": 52.18, "d": 365.25, "h": 8766.0}
        for observation in _observations(self.role, CODE_AGE):
            value, unit = _attr(observation, "hl7:value", "value"), _attr(observation, "hl7:value", "unit")
            try:
                if value and unit in per_year:
                    return float(value) / per_year[unit]
            except ValueError:
                continue  # an unreadable age counts as unknown (and an unknown age as a child's)
        try:
            birth = _time(self.role, "hl7:player1/hl7:birthTime")
        except ValueError:
            return None  # an impossible D.2.1 is rejected, with its field, by _read_patient
        born = birth.date() if birth else None
        if born and onset:
            return (onset - born).days / 365.25
        return None

    @cached_property
    def _primary_source(self) -> etree._Element | None:
        """The primary source (C.2.r) for regulatory purposes (C.2.r.5), else the first; None when there is none."""
        sources: list[tuple[bool, etree._Element]] = []
        for relation in self.icsr.iterfind("hl7:outboundRelationship", NS):
            investigation = relation.find("hl7:relatedInvestigation", NS)
            if investigation is None or _attr(investigation, "hl7:code", "code") != "2":  # 2 = sourceReport (C.2.r)
                continue
            sources.append((relation.find("hl7:priorityNumber", NS) is not None, investigation))
        return sorted(sources, key=lambda item: not item[0])[0][1] if sources else None

    def _reporter_ref(self) -> str | None:
        """The primary source's given, middle and family names (C.2.r.1.2-4) with its organisation (C.2.r.2.1):
        the raw identity the reporter pseudonym is made from. None without a name (absent, or masked with a
        nullFlavor, as E2B(R3) allows for privacy): an organisation alone is no person (two clinicians of one
        hospital are two reporters). The title C.2.r.1.1 is left out: "Dr" and "Doctor" are one person."""
        source = self._primary_source
        author = None if source is None else source.find(PRIMARY_SOURCE_AUTHOR, NS)
        name = None if author is None else author.find("hl7:assignedPerson/hl7:name", NS)
        if author is None or name is None:
            return None
        parts = [" ".join(part.text.split()) for part in name
                 if part.tag in (f"{{{NS['hl7']}}}given", f"{{{NS['hl7']}}}family") and part.text and part.text.strip()]
        if not parts:
            return None
        organisation = _text(author, "hl7:representedOrganization/hl7:assignedEntity/hl7:representedOrganization/"
                                     "hl7:name")
        return " ".join(parts) + (f" | {organisation}" if organisation else "")

    def _reporter_type(self, onset: date | None) -> str | None:
        """C.2.r.4 of the primary source for regulatory purposes (C.2.r.5), else of the first primary source."""
        source = self._primary_source
        if source is None:
            return None
        code = _attr(source, f"{PRIMARY_SOURCE_AUTHOR}/hl7:assignedPerson/hl7:asQualifiedEntity/hl7:code", "code")
        if code in PROFESSIONAL_REPORTERS:
            return PROFESSIONAL_REPORTERS[code]
        if code in NON_PROFESSIONAL_REPORTERS:
            age = self._age_years(onset)
            return "patient" if age is not None and age >= 18 else "parent"
        if self.icsr.find(".//hl7:reference", NS) is not None:
            return "literature"
        return None

    def _products(self) -> dict[str, _Product]:
        products: dict[str, _Product] = {}
        if self.role is None or self.assessment is None:
            return products
        for organizer in self.role.iterfind("hl7:subjectOf2/hl7:organizer", NS):
            if _attr(organizer, "hl7:code", "code") != CODE_DRUG_INFORMATION:
                continue
            for administration in organizer.iterfind("hl7:component/hl7:substanceAdministration", NS):
                product_id = _attr(administration, "hl7:id", "root")
                name = _text(administration, "hl7:consumable/hl7:instanceOfKind/hl7:kindOfProduct/hl7:name")
                lots = [" ".join(lot.text.split()) for lot in administration.iterfind(".//hl7:lotNumberText", NS)
                        if lot.text and lot.text.strip().upper() not in UNKNOWN_LOTS]  # G.k.4.r.7
                if product_id and name:
                    products[product_id] = _Product(name=name, lot_id=lots[0] if lots else None)
        for assessment in self.assessment.iterfind("hl7:component/hl7:causalityAssessment", NS):
            if _attr(assessment, "hl7:code", "code") != CODE_DRUG_ROLE:
                continue
            product_id = _attr(assessment, "hl7:subject2/hl7:productUseReference/hl7:id", "root")
            if product_id in products:
                products[product_id].role = _attr(assessment, "hl7:value", "code")
        return products

    @cached_property
    def _causalities(self) -> dict[tuple[str | None, str | None], str]:
        """(reaction id, product id) -> G.k.9.i.2.r.3 as a WHO-UMC category, the primary source reporter's
        assessment preferred over the sender's."""
        found: dict[tuple[str | None, str | None], list[tuple[bool, str]]] = {}
        if self.assessment is None:
            return {}
        for assessment in self.assessment.iterfind("hl7:component/hl7:causalityAssessment", NS):
            if _attr(assessment, "hl7:code", "code") != CODE_CAUSALITY:
                continue
            result = (_text(assessment, "hl7:value") or "").casefold()
            if result not in WHO_UMC:
                continue
            key = (_attr(assessment, "hl7:subject1/hl7:adverseEffectReference/hl7:id", "root"),
                   _attr(assessment, "hl7:subject2/hl7:productUseReference/hl7:id", "root"))
            source = _text(assessment, "hl7:author/hl7:assignedEntity/hl7:code/hl7:originalText") or ""
            found.setdefault(key, []).append(("PRIMARY SOURCE" not in source.upper(), WHO_UMC[result]))
        return {key: sorted(values)[0][1] for key, values in found.items()}

    def _causality(self, reaction_id: str | None, product_id: str) -> str | None:
        return self._causalities.get((reaction_id, product_id)) if reaction_id is not None else None

    def read(self) -> None:
        where = f"{self.label} ICSR {self.report_id or '(no C.1.1)'}"
        case_id = self.case_id
        if case_id is None:
            self.result.reject(where, "schema", "case_id (C.1.1/C.1.8.1): the ICSR has no safety report identifier")
            return
        try:
            first_received = _time(self.icsr, "hl7:effectiveTime/hl7:low")
            most_recent = _time(self.icsr, "hl7:availabilityTime") or first_received
        except ValueError as error:
            self.result.reject(where, "schema", f"awareness_date (C.1.4/C.1.5): {error}")
            return
        if most_recent is None or most_recent.instant() is None or first_received is None:
            self.result.reject(where, "schema", "awareness_date (C.1.4/C.1.5): a full date is required")
            return
        recorded_at = most_recent.instant()
        amendment = self._characteristic("3") == "2"  # C.1.11.1 nullification / amendment: 2 = amendment
        is_follow_up = amendment or (most_recent.date() != first_received.date())
        if self._characteristic("3") == "1":
            self.result.reject(where, "nullification", "C.1.11.1: the sender nullified this case; an officer "
                               "must withdraw it in pvwatch (nothing imported)")
            return
        patient = self.pseudonymiser.pseudonym(self._patient_ref(case_id))
        reporter_ref = self._reporter_ref()
        self.reporter = None if reporter_ref is None else self.pseudonymiser.reporter_pseudonym(reporter_ref)
        products = self._products()
        reactions = list(_observations(self.role, CODE_REACTION)) if self.role is not None else []
        if not reactions:
            self.result.reject(where, "schema", "E.i: the ICSR has no reaction / event")
            return
        for number, reaction in enumerate(reactions, start=1):
            self._read_reaction(f"{where} reaction {number}", reaction, case_id, patient, products,
                                recorded_at, (most_recent if is_follow_up else first_received), is_follow_up)
        self._read_patient(f"{where} patient", patient, recorded_at)

    def _read_patient(self, where: str, patient: str, recorded_at: datetime | None) -> None:
        """D.5 sex and D.2.1 birth date, cut to year-month, as a `patient-updated` (nothing else of D travels)."""
        if self.role is None:
            return
        record: dict[str, Any] = {"type": "patient-updated", "patient": patient, "occurred_at": recorded_at,
                                  "recorded_at": recorded_at, "source": SOURCE}
        sex = SEXES.get(_attr(self.role, "hl7:player1/hl7:administrativeGenderCode", "code") or "")
        if sex:
            record["sex"] = sex
        try:
            birth = _time(self.role, "hl7:player1/hl7:birthTime")
        except ValueError as error:
            self.result.reject(where, "schema", f"birth_year_month (D.2.1): {error}")
            return
        if birth is not None and birth.precision >= 6:
            record["birth_year_month"] = f"{birth.raw[:4]}-{birth.raw[4:6]}"
        if len(record) > 5:
            record["event_id"] = import_event_id("e2b", content_digest(record))
            self.result.add(where, record, E2B_FIELDS)

    def _read_reaction(self, where: str, reaction: etree._Element, case_id: str, patient: str,
                       products: dict[str, _Product], recorded_at: datetime | None, awareness: HL7Time,
                       is_follow_up: bool) -> None:
        reaction_id = _attr(reaction, "hl7:id", "root")
        try:
            onset = _time(reaction, "hl7:effectiveTime/hl7:low")
            end = _time(reaction, "hl7:effectiveTime/hl7:high")
        except ValueError as error:
            self.result.reject(where, "schema", f"onset_date (E.i.4/E.i.5): {error}")
            return
        onset_date = onset.date() if onset else None
        if onset is not None and onset_date is None:
            self.result.notes.append(f"{where}: partial onset date {onset.raw} (E.i.4) not kept as onset_date")
        coded = reaction.find("hl7:value", NS)
        meddra = coded.get("code") if coded is not None and coded.get("codeSystem") == CS_MEDDRA else None
        meddra_version = coded.get("codeSystemVersion") if meddra and coded is not None else None  # E.i.2.1a
        verbatim = _text(coded, "hl7:originalText")
        related = _related_values(reaction)
        translation = related.get(CODE_TRANSLATION)
        term = verbatim or (_text(translation, ".") if translation is not None else None) or (
            f"MedDRA {meddra}" if meddra else None)
        outcome_code = _attr(related.get(CODE_OUTCOME), "", "code")
        record: dict[str, Any] = {
            "type": "adverse-event",
            "occurred_at": (onset.instant() if onset and onset.instant() else awareness.instant()),
            "recorded_at": recorded_at,
            "source": SOURCE,
            "patient": patient,
            "case_id": case_id,
            "report_kind": "follow-up" if is_follow_up else "initial",
            "reporter_type": self._reporter_type(onset_date),
            "reporter": self.reporter,
            "awareness_date": awareness.date(),
            "onset_date": onset_date,
            "term": term,
            "meddra_pt_code": meddra,
            "meddra_version": meddra_version,
            "seriousness": {name: _flag(related, code) for code, name in SERIOUSNESS_CODES.items()},
            "outcome": OUTCOMES.get(outcome_code or "0", outcome_code),
            "products": [
                {"name": product.name, "role": DRUG_ROLES[product.role],
                 **({"lot_id": product.lot_id} if product.lot_id else {}),
                 **({"causality": c} if (c := self._causality(reaction_id, product_id)) else {})}
                for product_id, product in products.items() if product.role in DRUG_ROLES
            ],
            "narrative": _text(self.icsr, "hl7:text"),
        }
        if end is not None and end.date() is not None:
            record["resolution_date"] = end.date()
        record = {key: value for key, value in record.items() if value is not None}
        identified = {key: value for key, value in record.items() if key != "reporter"}  # see the module docstring
        record["event_id"] = import_event_id("e2b", content_digest(identified))
        self.result.add(where, record, E2B_FIELDS)


def import_e2b(path: Path, pseudonymiser: Pseudonymiser) -> ImportResult:
    """Every ICSR of an E2B(R3) batch file (or a bare ICSR message) mapped to adverse-event events."""
    root = parse_xml(read_limited(path, MAX_FILE_BYTES), path.name)
    result = ImportResult()
    icsrs = root.findall(".//hl7:controlActProcess/hl7:subject/hl7:investigationEvent", NS)
    if not icsrs:
        raise ImportFileError(f"{path.name}: no ICSR (PORR_IN049016UV investigationEvent) found: is this E2B(R3)?")
    for icsr in icsrs:
        reader = IcsrReader(icsr, path.name, pseudonymiser, result)
        try:
            reader.read()
        except (ValueError, TypeError, AttributeError) as problem:
            # Defence in depth: a structure no mapping rule foresaw rejects this ICSR, named, not the file.
            result.reject(f"{path.name} ICSR {reader.report_id or '(no C.1.1)'}", "schema",
                          f"unexpected E2B structure: {type(problem).__name__}: {str(problem)[:200]}")
    return result
