"""ICH E2B(R3) ICSR export of one case from the store, in the HL7 v3 layout of FDA's FAERS example ICSRs.

What the safety officer can rely on (ICH E2B(R3) IG data elements):
* the latest version of the case (the adverse-event events with the latest `recorded_at`), one reaction E.i per
  event; C.1.4 is the earliest awareness date of the case, C.1.5 the latest version's `recorded_at`. E2B(R3) has
  no initial/follow-up flag: the importer reads C.1.5 later than C.1.4 as a follow-up, so an initial report
  recorded after its day 0 comes back as a follow-up dated C.1.5;
* all six seriousness criteria E.i.3.2a-f written for every reaction as BL true or false, never omitted (FDA's
  gateway rejects a reaction without them), outcome E.i.7 as the E2B code 0-5 (0 unknown);
* products G.k with their role G.k.1, lot G.k.4.r.7 and, per reaction, the reporter's WHO-UMC causality (G.k.9.i.2.r);
* the patient is masked (D.1 nullFlavor MSK): pvwatch holds only a pseudonym, never initials or a birth date;
  sex D.5 and the birth year-month D.2.1 (never the day) come from the patient's patient-* events;
* lossy by design: a "clinician" reporter is written as physician (C.2.r.4 = 1), parent and patient both as
  consumer (5); the report type C.1.3 is always 1 (spontaneous).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from lxml import etree

from pvwatch.errors import PvwatchError
from pvwatch.events.adverse_event import AdverseEventReported, Outcome, SuspectProduct
from pvwatch.events.codec import parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.interop.e2b_import import CS_MEDDRA, CS_OBSERVATION, NS, OID_REPORT_ID, OID_WORLDWIDE_ID

HL7 = NS["hl7"]
XSI = NS["xsi"]
OUTCOME_CODES = {Outcome.UNKNOWN: "0", Outcome.RECOVERED: "1", Outcome.RECOVERING: "2",
                 Outcome.NOT_RECOVERED: "3", Outcome.RECOVERED_WITH_SEQUELAE: "4", Outcome.FATAL: "5"}
#: E.i.3.2a-f in E2B order: ICH observation code, displayName, pvwatch criterion.
SERIOUSNESS = (("34", "resultsInDeath", "death"), ("21", "isLifeThreatening", "life_threatening"),
               ("33", "requiresInpatientHospitalization", "hospitalisation"),
               ("35", "resultsInPersistentOrSignificantDisability", "disability"),
               ("12", "congenitalAnomalyBirthDefect", "congenital_anomaly"),
               ("26", "otherMedicallyImportantCondition", "medically_important"))
ROLE_CODES = {"suspect": ("1", "Suspect"), "concomitant": ("2", "Concomitant"), "interacting": ("3", "Interacting")}
QUALIFICATION = {"clinician": ("1", "Physician"), "pharmacist": ("2", "Pharmacist"),
                 "lab": ("3", "Other health professional"), "literature": ("3", "Other health professional"),
                 "parent": ("5", "Consumer or other non health professional"),
                 "patient": ("5", "Consumer or other non health professional")}
ICH = "2.16.840.1.113883.3.989.2.1"
EXPORT_NAMESPACE = uuid.UUID("0b8e3f5a-3c3e-4a0e-9d7e-5b1f6a2d9c41")


class CaseNotFound(PvwatchError):
    """No adverse-event version of this case id is in the store."""


def case_from_store(db: Path, case_id: str) -> tuple[list[AdverseEventReported], list[EventEnvelope]]:
    """Every stored adverse-event of the case and its patient's patient-* events, in log order (validated
    again: the store holds the wire contract)."""
    from pvwatch.store.eventstore import connect

    con = connect(db, read_only=True)
    try:
        rows = con.execute(
            "SELECT payload FROM event_log WHERE type = 'adverse-event' AND payload->>'case_id' = ? "
            "ORDER BY recorded_at, log_seq", [case_id]).fetchall()
        versions = [e for e in (parse_event(json.loads(r[0])) for r in rows) if isinstance(e, AdverseEventReported)]
        patient_rows = con.execute(
            "SELECT payload FROM event_log WHERE type IN ('patient-enrolled', 'patient-updated') AND patient = ? "
            "ORDER BY recorded_at, log_seq", [versions[-1].patient if versions else ""]).fetchall()
    finally:
        con.close()
    return versions, [parse_event(json.loads(row[0])) for row in patient_rows]


def patient_facts(events: Iterable[EventEnvelope]) -> dict[str, str]:
    """Latest sex and birth year-month from patient-enrolled/-updated events in log order (D.5, D.2.1)."""
    facts: dict[str, str] = {}
    for event in events:
        for name in ("sex", "birth_year_month"):
            value = getattr(event, name, None)
            if value is not None and (name != "sex" or value != "unknown"):
                facts[name] = str(value)
    return facts


def hl7_date(day: date) -> str:
    return day.strftime("%Y%m%d")


def hl7_instant(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S") + (moment.strftime("%z") or "+0000")


def _element(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{HL7}}}{tag}")
    for name, value in attributes.items():
        node.set(f"{{{XSI}}}type" if name == "xsi_type" else name, value)
    if text is not None:
        node.text = text
    return node


def _id(parent: etree._Element, root: str, extension: str | None = None) -> etree._Element:
    return _element(parent, "id", root=root, **({"extension": extension} if extension else {}))


def _product_key(product: SuspectProduct) -> tuple[str, str, str]:
    return (product.name, product.role, product.lot_id or "")


def _stable_id(*parts: str) -> str:
    return str(uuid.uuid5(EXPORT_NAMESPACE, "|".join(parts)))


def build_icsr(versions: list[AdverseEventReported], *, sender: str, receiver: str, now: datetime,
               patient: dict[str, str] | None = None, sender_type: str = "6") -> bytes:
    """The latest version of the case as an MCCI_IN200100UV01 batch holding one PORR_IN049016UV ICSR."""
    if not versions:
        raise CaseNotFound("no adverse-event versions given")
    latest_at = max(event.recorded_at for event in versions)
    reactions = [event for event in versions if event.recorded_at == latest_at]
    head = reactions[-1]
    case_id = head.case_id
    first_received = min(event.awareness_date for event in versions)
    # C.1.5 is when the latest information was recorded; C.1.4 the case's first day 0 (the same instant when
    # recorded that day, as FDA's examples send them).
    most_recent = hl7_instant(head.recorded_at)
    first = hl7_instant(head.recorded_at) if head.recorded_at.date() == first_received else hl7_date(first_received)

    batch = etree.Element(f"{{{HL7}}}MCCI_IN200100UV01", nsmap={None: HL7, "xsi": XSI}, ITSVersion="XML_1.0")
    _id(batch, f"{ICH}.3.22", f"{sender}-{_stable_id(case_id, most_recent)}")  # N.1.2 batch number
    _element(batch, "creationTime", value=hl7_instant(now))  # N.1.5
    _element(batch, "responseModeCode", code="D")
    _element(batch, "interactionId", root="2.16.840.1.113883.1.6", extension="MCCI_IN200100UV01")
    _element(batch, "name", code="1", displayName="ichicsr", codeSystem=f"{ICH}.1.1")  # N.1.1
    message = _element(batch, "PORR_IN049016UV")
    _id(message, f"{ICH}.3.1", _stable_id("message", case_id, most_recent))  # N.2.r.1
    _element(message, "creationTime", value=hl7_instant(now))  # N.2.r.4
    _element(message, "interactionId", root="2.16.840.1.113883.1.6", extension="PORR_IN049016UV")
    _element(message, "processingCode", code="P")
    _element(message, "processingModeCode", code="T")
    _element(message, "acceptAckCode", code="AL")
    device = _element(_element(message, "receiver", typeCode="RCV"), "device", classCode="DEV",
                      determinerCode="INSTANCE")
    _id(device, f"{ICH}.3.12", receiver)  # N.2.r.3
    device = _element(_element(message, "sender", typeCode="SND"), "device", classCode="DEV",
                      determinerCode="INSTANCE")
    _id(device, f"{ICH}.3.11", sender)  # N.2.r.2
    control = _element(message, "controlActProcess", classCode="CACT", moodCode="EVN")
    _element(control, "code", code="PORR_TE049016UV", codeSystem="2.16.840.1.113883.1.18")
    _element(control, "effectiveTime", value=hl7_instant(now))  # C.1.2 date of creation
    icsr = _element(_element(control, "subject", typeCode="SUBJ"), "investigationEvent", classCode="INVSTG",
                    moodCode="EVN")
    _id(icsr, OID_REPORT_ID, case_id)  # C.1.1
    _id(icsr, OID_WORLDWIDE_ID, case_id)  # C.1.8.1
    _element(icsr, "code", code="PAT_ADV_EVNT", codeSystem="2.16.840.1.113883.5.4")
    narrative = next((event.narrative for event in reversed(reactions) if event.narrative), None)
    if narrative:
        _element(icsr, "text", narrative)  # H.1
    _element(icsr, "statusCode", code="active")
    _element(_element(icsr, "effectiveTime"), "low", value=first)  # C.1.4
    _element(icsr, "availabilityTime", value=most_recent)  # C.1.5

    assessment = _element(_element(icsr, "component", typeCode="COMP"), "adverseEventAssessment",
                          classCode="INVSTG", moodCode="EVN")
    role = _element(_element(assessment, "subject1", typeCode="SBJ"), "primaryRole", classCode="INVSBJ")
    player = _element(role, "player1", classCode="PSN", determinerCode="INSTANCE")
    _element(player, "name", nullFlavor="MSK")  # D.1: masked, pvwatch holds a pseudonym only
    facts = patient or {}
    if "sex" in facts:
        _element(player, "administrativeGenderCode", code={"male": "1", "female": "2"}[facts["sex"]],
                 codeSystem="1.0.5218")  # D.5
    if "birth_year_month" in facts:
        _element(player, "birthTime", value=facts["birth_year_month"].replace("-", ""))  # D.2.1, year-month only
    reaction_ids = [_stable_id("reaction", str(event.event_id)) for event in reactions]
    for reaction_id, event in zip(reaction_ids, reactions, strict=True):
        _reaction(role, reaction_id, event)
    products = _case_products(reactions)
    product_ids = {key: _stable_id("product", case_id, *key) for key in products}
    if products:
        organizer = _element(_element(role, "subjectOf2", typeCode="SBJ"), "organizer", classCode="CATEGORY",
                             moodCode="EVN")
        _element(organizer, "code", code="4", codeSystem=f"{ICH}.1.20", displayName="drugInformation")
        for key in products:
            administration = _element(_element(organizer, "component", typeCode="COMP"), "substanceAdministration",
                                      classCode="SBADM", moodCode="EVN")
            _id(administration, product_ids[key])
            kind = _element(_element(_element(administration, "consumable", typeCode="CSM"), "instanceOfKind",
                                     classCode="INST"), "kindOfProduct", classCode="MMAT", determinerCode="KIND")
            _element(kind, "name", key[0])  # G.k.2.2
            if key[2]:  # G.k.4.r.7 batch / lot number, in the dosage information G.k.4.r
                dosage = _element(_element(administration, "outboundRelationship2", typeCode="COMP"),
                                  "substanceAdministration", classCode="SBADM", moodCode="EVN")
                instance = _element(_element(dosage, "consumable", typeCode="CSM"), "instanceOfKind",
                                    classCode="INST")
                _element(_element(instance, "productInstanceInstance", classCode="MMAT", determinerCode="INSTANCE"),
                         "lotNumberText", key[2])
    for key in products:  # G.k.1 characterisation of drug role
        causality = _element(_element(assessment, "component", typeCode="COMP"), "causalityAssessment",
                             classCode="OBS", moodCode="EVN")
        _element(causality, "code", code="20", codeSystem=CS_OBSERVATION, displayName="interventionCharacterization")
        code, name = ROLE_CODES[key[1]]
        _element(causality, "value", xsi_type="CE", code=code, displayName=name, codeSystem=f"{ICH}.1.13")
        _product_reference(causality, product_ids[key])
    for reaction_id, event in zip(reaction_ids, reactions, strict=True):  # G.k.9.i.2.r reporter's causality
        for product in event.products:
            if product.causality is not None:
                _causality(assessment, reaction_id, product_ids[_product_key(product)], product.causality)

    _primary_source(icsr, head.reporter_type.value)
    author = _element(_element(_element(icsr, "subjectOf1", typeCode="SUBJ"), "controlActEvent", classCode="CACT",
                               moodCode="EVN"), "author", typeCode="AUT")
    _element(_element(author, "assignedEntity", classCode="ASSIGNED"), "code", code=sender_type,
             codeSystem=f"{ICH}.1.7")  # C.3.1 sender type
    _characteristic(icsr, "1", "ICH ReportType", f"{ICH}.1.2", "1", "Spontaneous report")  # C.1.3
    for role, oid, identifier in (("receiver", "3.14", receiver), ("sender", "3.13", sender)):  # N.1.4, N.1.3
        device = _element(_element(batch, role, typeCode="RCV" if role == "receiver" else "SND"), "device",
                          classCode="DEV", determinerCode="INSTANCE")
        _id(device, f"{ICH}.{oid}", identifier)
    document: bytes = etree.tostring(batch, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return document


def _reaction(role: etree._Element, reaction_id: str, event: AdverseEventReported) -> None:
    observation = _element(_element(role, "subjectOf2", typeCode="SBJ"), "observation", classCode="OBS",
                           moodCode="EVN")
    _id(observation, reaction_id)
    _element(observation, "code", code="29", codeSystem=CS_OBSERVATION, displayName="reaction")  # E.i.0
    resolution = event.resolution_date
    if event.onset_date is not None or resolution is not None:
        period = _element(observation, "effectiveTime", xsi_type="IVL_TS")
        if event.onset_date is not None:
            _element(period, "low", value=hl7_date(event.onset_date))  # E.i.4
        if resolution is not None:
            _element(period, "high", value=hl7_date(resolution))  # E.i.5
    if event.meddra_pt_code:
        version = {"codeSystemVersion": event.meddra_version} if event.meddra_version else {}
        _element(observation, "value", xsi_type="CE", code=event.meddra_pt_code, codeSystem=CS_MEDDRA,
                 **version)  # E.i.2.1b, E.i.2.1a
    else:
        _element(observation, "value", xsi_type="CE", nullFlavor="UNK")
    # The reported term as E.i.1.2 (reaction for translation), where FDA's examples carry it.
    _element(_related(observation, "30", "reactionForTranslation"), "value", event.term, xsi_type="ED")
    for code, display, criterion in SERIOUSNESS:  # E.i.3.2a-f, every one, false included
        met = getattr(event.seriousness, criterion)
        flag = _related(observation, code, display)
        _element(flag, "value", xsi_type="BL", value="true" if met else "false")
    outcome = _related(observation, "27", "outcome")  # E.i.7
    _element(outcome, "value", xsi_type="CE", code=OUTCOME_CODES[event.outcome], codeSystem=f"{ICH}.1.11")


def _related(observation: etree._Element, code: str, display: str) -> etree._Element:
    relation = _element(observation, "outboundRelationship2", typeCode="PERT")
    inner = _element(relation, "observation", classCode="OBS", moodCode="EVN")
    _element(inner, "code", code=code, codeSystem=CS_OBSERVATION, displayName=display)
    return inner


def _case_products(reactions: Iterable[AdverseEventReported]) -> dict[tuple[str, str, str], None]:
    keys: dict[tuple[str, str, str], None] = {}
    for event in reactions:
        for product in event.products:
            keys.setdefault(_product_key(product), None)
    return keys


def _product_reference(parent: etree._Element, product_id: str) -> None:
    reference = _element(_element(parent, "subject2", typeCode="SUBJ"), "productUseReference", classCode="SBADM",
                         moodCode="EVN")
    _id(reference, product_id)


def _causality(assessment: etree._Element, reaction_id: str, product_id: str, category: str) -> None:
    node = _element(_element(assessment, "component", typeCode="COMP"), "causalityAssessment", classCode="OBS",
                    moodCode="EVN")
    _element(node, "code", code="39", codeSystem=CS_OBSERVATION, displayName="causality")
    _element(node, "value", category, xsi_type="ST")  # G.k.9.i.2.r.3 result
    _element(_element(node, "methodCode"), "originalText", "WHO-UMC")  # G.k.9.i.2.r.2 method
    author = _element(_element(node, "author", typeCode="AUT"), "assignedEntity", classCode="ASSIGNED")
    _element(_element(author, "code"), "originalText", "PRIMARY SOURCE REPORTER")  # G.k.9.i.2.r.1 source
    reference = _element(_element(node, "subject1", typeCode="SUBJ"), "adverseEffectReference", classCode="OBS",
                         moodCode="EVN")
    _id(reference, reaction_id)
    _product_reference(node, product_id)


def _primary_source(icsr: etree._Element, reporter_type: str) -> None:
    relation = _element(icsr, "outboundRelationship", typeCode="SPRT")
    _element(relation, "priorityNumber", value="1")  # C.2.r.5 primary source for regulatory purposes
    investigation = _element(relation, "relatedInvestigation", classCode="INVSTG", moodCode="EVN")
    _element(investigation, "code", code="2", codeSystem=f"{ICH}.1.22", displayName="sourceReport")
    event = _element(_element(investigation, "subjectOf2", typeCode="SUBJ"), "controlActEvent", classCode="CACT",
                     moodCode="EVN")
    entity = _element(_element(event, "author", typeCode="AUT"), "assignedEntity", classCode="ASSIGNED")
    person = _element(entity, "assignedPerson", classCode="PSN", determinerCode="INSTANCE")
    code, display = QUALIFICATION[reporter_type]
    _element(_element(person, "asQualifiedEntity", classCode="QUAL"), "code", code=code, displayName=display,
             codeSystem=f"{ICH}.1.6")  # C.2.r.4


def _characteristic(icsr: etree._Element, code: str, display: str, value_system: str, value: str,
                    value_display: str) -> None:
    node = _element(_element(icsr, "subjectOf2", typeCode="SUBJ"), "investigationCharacteristic", classCode="OBS",
                    moodCode="EVN")
    _element(node, "code", code=code, codeSystem=f"{ICH}.1.23", displayName=display)
    _element(node, "value", xsi_type="CE", code=value, displayName=value_display, codeSystem=value_system)


def export_case(db: Path, case_id: str, *, sender: str = "PVWATCH", receiver: str = "ZZFDA",
                sender_type: str = "6", now: datetime | None = None) -> bytes:
    versions, patient_events = case_from_store(db, case_id)
    if not versions:
        raise CaseNotFound(f"case {case_id!r}: no adverse-event in {db}")
    return build_icsr(versions, sender=sender, receiver=receiver, now=now or datetime.now(UTC),
                      patient=patient_facts(patient_events), sender_type=sender_type)
