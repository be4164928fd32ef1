"""`pvwatch import fhir`: HL7 FHIR R4 specification examples (CC0, tests/data/fhir, provenance in
tests/data/README.md) and pvwatch's own MSC-story bundle.

Expected values are read off the example resources (element cited); FHIR R4 value sets used: adverse-event
seriousness, adverse-event outcome, SNOMED CT route codes (26643006 oral, 47625008 intravenous).
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pvwatch.events.codec import encode_event
from pvwatch.interop.common import ImportFileError, ImportResult
from pvwatch.interop.fhir_import import import_fhir
from pvwatch.pseudonym import DEMO_KEY, Pseudonymiser

DATA = Path(__file__).resolve().parents[1] / "data" / "fhir"
SPEC_EXAMPLES = ("patient-example.json", "medicationstatementexample1.json", "medicationadministration0301.json",
                 "procedure-example.json", "observation-example-f001-glucose.json", "adverseevent-example.json")
EDGE = Pseudonymiser(DEMO_KEY)


def spec_bundle(tmp_path: Path, timestamp: str | None = "2019-11-01T09:29:23+11:00") -> Path:
    """The unchanged specification examples as entries of one collection Bundle (the wrapper is ours)."""
    entries = []
    for name in SPEC_EXAMPLES:
        resource = json.loads((DATA / name).read_text())
        entries.append({"fullUrl": f"http://hl7.org/fhir/{resource['resourceType']}/{resource['id']}",
                        "resource": resource})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    if timestamp:
        bundle["timestamp"] = timestamp
    path = tmp_path / "spec-bundle.json"
    path.write_text(json.dumps(bundle))
    return path


def by_type(result: ImportResult) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for event in result.events:
        grouped.setdefault(event.type, []).append(event)
    return grouped


def test_specification_examples_map_to_pvwatch_events(tmp_path):
    result = import_fhir(spec_bundle(tmp_path), EDGE)
    assert [r.message() for r in result.rejections] == []
    events = by_type(result)
    (patient,) = events["patient-updated"]  # patient-example.json: no Condition in the bundle -> not enrolled
    assert (patient.birth_year_month, patient.sex) == ("1974-12", "male")  # birthDate 1974-12-25, gender male
    statement, administration = events["treatment-started"]
    assert (statement.drug, statement.route, statement.occurred_at) == (
        "Tylenol PM", "oral", datetime(2015, 1, 23, tzinfo=UTC))  # contained Medication display, route 26643006
    assert (administration.drug, administration.dose, administration.dose_unit, administration.route) == (
        "Vancomycin Hydrochloride (VANCOMYCIN HYDROCHLORIDE)", 500, "mg", "intravenous")  # dosage.dose, 47625008
    (lab,) = events["lab-result"]  # observation-example-f001-glucose.json
    assert (lab.loinc_code, lab.value, lab.unit, lab.reference_low, lab.reference_high) == (
        "15074-8", 6.3, "mmol/L", 3.1, 6.2)
    (adverse,) = events["adverse-event"]  # adverseevent-example.json
    assert adverse.case_id == "49476534"  # identifier.value
    assert adverse.reporter_type == "clinician"  # recorder Practitioner/example
    assert adverse.awareness_date == date(2017, 1, 29)  # date 2017-01-29T12:34:56+00:00
    assert adverse.term == "This was a mild rash on the left forearm"
    assert not adverse.seriousness.is_serious  # seriousness Non-serious


def test_the_patient_and_their_adverse_event_share_one_pseudonym_from_the_mrn(tmp_path):
    events = by_type(import_fhir(spec_bundle(tmp_path), EDGE))
    # patient-example.json: identifier of type MR, value 12345; adverseevent-example.json subject Patient/example.
    assert events["patient-updated"][0].patient == EDGE.pseudonym("12345")
    assert events["adverse-event"][0].patient == EDGE.pseudonym("12345")


def test_no_name_address_or_birth_date_of_the_example_patient_leaves_the_importer(tmp_path):
    wire = b"".join(encode_event(e) for e in import_fhir(spec_bundle(tmp_path), EDGE).events)
    # patient-example.json: Peter James Chalmers, 534 Erewhon St, born 1974-12-25; "Donald Duck" is a display.
    for raw in (b"Chalmers", b"Peter", b"Erewhon", b"1974-12-25", b"Donald", b"12345"):
        assert raw not in wire


def test_unmodelled_resources_are_listed_as_skipped_not_dropped_silently(tmp_path):
    result = import_fhir(spec_bundle(tmp_path), EDGE)
    assert any("Procedure/example" in note and "Appendectomy" in note for note in result.notes)
    assert any("Medication/example" in note for note in result.notes)  # the AE's suspect is not in the bundle
    assert len(result.events) + len(result.rejections) == 5  # 6 resources, 1 skipped


def test_a_patient_without_any_record_time_is_rejected_naming_the_element(tmp_path):
    result = import_fhir(spec_bundle(tmp_path, timestamp=None), EDGE)
    (rejection,) = result.rejections
    assert "Patient/example" in rejection.message() and "meta.lastUpdated" in rejection.message()


def test_the_msc_story_bundle_gives_the_whole_clinical_story():
    result = import_fhir(DATA / "msc-story-bundle.json", EDGE)
    assert [r.message() for r in result.rejections] == []
    events = by_type(result)
    (enrolled,) = events["patient-enrolled"]
    assert (enrolled.birth_year_month, enrolled.diagnoses[0].condition, enrolled.diagnoses[0].icd10_code) == (
        "2012-05", "SLE", "M32.1")
    assert {(e.drug, e.drug_class) for e in events["treatment-started"]} == {
        ("methotrexate", "csDMARD"), ("prednisolone", "glucocorticoid")}  # ATC L04AX03, H02AB06
    assert [e.drug for e in events["treatment-stopped"]] == ["prednisolone"]
    documented, procedure = events["msc-infusion"]
    assert (documented.lot_id, documented.cells_per_kg, documented.tissue_origin, documented.donor_type) == (
        "UCMSC-2024-031", 1e6, "umbilical-cord", "allogeneic")
    assert not documented.incompletely_documented
    assert procedure.incompletely_documented and procedure.missing_documentation == ["lot_id", "cell_dose"]
    assert {(e.instrument, e.assessed_by, e.documented) for e in events["disease-activity"]} == {
        ("SLEDAI-2K", "clinician", True), ("parent-global", "parent", False)}
    (neutrophils,) = events["lab-result"]
    assert (neutrophils.loinc_code, neutrophils.value, neutrophils.unit) == ("751-8", 0.8, "10*9/L")
    (fever,) = events["adverse-event"]
    assert (fever.reporter_type, fever.meddra_pt_code, fever.outcome) == ("parent", "10037660", "recovered")
    assert [(p.name, p.lot_id, p.causality) for p in fever.products] == [
        ("Allogeneic umbilical cord mesenchymal stromal cells", "UCMSC-2024-031", "possible")]
    assert len({e.patient for e in result.events}) == 1
    assert any("Encounter" in note for note in result.notes)


def test_reimporting_a_bundle_gives_the_same_event_ids():
    first = [e.event_id for e in import_fhir(DATA / "msc-story-bundle.json", EDGE).events]
    again = [e.event_id for e in import_fhir(DATA / "msc-story-bundle.json", EDGE).events]
    assert first == again and len(set(first)) == len(first)


def _story_with(tmp_path: Path, resource_id: str, bundle_name: str = "msc-story-bundle.json",
                **changes: Any) -> ImportResult:
    bundle = json.loads((DATA / bundle_name).read_text())
    for entry in bundle["entry"]:
        if entry["resource"]["id"] == resource_id:
            entry["resource"].update(changes)
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(bundle))
    return import_fhir(path, EDGE)


@pytest.mark.parametrize(("resource_id", "changes", "expected"), [
    ("anc-1", {"valueQuantity": {"value": 0.8, "unit": "x10^9/l"}}, "valueQuantity.code"),  # not UCUM
    ("anc-1", {"effectiveDateTime": "2024-02-31T08:00:00+02:00"}, "effectiveDateTime"),  # impossible date
    ("sledai-1", {"valueInteger": 130}, "above the SLEDAI-2K maximum"),  # 0-105 (Gladman 2002)
    ("msc-1", {"dosage": {"dose": {"value": 1, "code": "mL"}}}, "dosage.dose.code"),
    ("fever-1", {"recorder": {"reference": "Device/pump"}}, "recorder"),
    ("pred", {"dosage": "10 mg"}, "dosage: expected a list"),  # a string where FHIR has a list of Dosage
    ("fever-1", {"suspectEntity": [{"instance": "msc-1"}]}, "unexpected FHIR structure"),  # string, not Reference
])
def test_a_bad_resource_is_rejected_naming_it_and_the_rest_is_imported(tmp_path, resource_id, changes, expected):
    result = _story_with(tmp_path, resource_id, **changes)
    (rejection,) = result.rejections
    assert f"/{resource_id})" in rejection.message() and expected in rejection.message()
    assert len(result.events) >= 8


def test_a_serious_r4_adverse_event_stays_serious_and_says_how(tmp_path):
    serious = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                           "code": "serious"}]}
    result = _story_with(tmp_path, "fever-1", seriousness=serious)
    (fever,) = by_type(result)["adverse-event"]
    assert fever.seriousness.met() == ["medically_important"]
    assert any("E.i.3.2f" in note for note in result.notes)


@pytest.mark.parametrize("content", [b"{not json", b'{"resourceType": "Patient"}', b"\xff\xfe{}",
                                     b'{"resourceType": "Bundle", "entry": {}}'])
def test_a_file_that_is_not_a_bundle_fails_as_a_whole(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=r"bad\.json"):
        import_fhir(path, EDGE)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
STORY = json.loads((DATA / "msc-story-bundle.json").read_text())


@settings(max_examples=150, deadline=None)
@given(entry=st.integers(0, len(STORY["entry"]) - 1), key=st.sampled_from(
    ["subject", "effectiveDateTime", "valueQuantity", "dosage", "code", "performer", "medicationReference",
     "contained", "identifier", "birthDate", "suspectEntity", "seriousness", "event", "recorder", "status",
     "effectivePeriod", "referenceRange", "date", "meta", "managingOrganization"]), value=JSON_VALUES)
def test_no_element_value_crashes_the_importer_and_every_resource_is_accounted_for(entry, key, value):
    """Any JSON value in any element: the resource is imported, rejected with a reason or skipped with a note."""
    assert_every_resource_accounted_for(STORY, entry, key, value)


def assert_every_resource_accounted_for(story: dict, entry: int, key: str, value: object) -> None:
    """Import `story` with element `key` of resource `entry` set to `value`: no crash, every rejection explained,
    and every resource but the damaged one accounted for as an event, a rejection or a note."""
    bundle = json.loads(json.dumps(story))
    bundle["entry"][entry]["resource"][key] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bundle.json"
        path.write_text(json.dumps(bundle))
        result = import_fhir(path, EDGE)
    assert all(rejection.reason and rejection.detail for rejection in result.rejections)
    assert len(result.events) + len(result.rejections) + len(result.notes) >= len(bundle["entry"]) - 1


def test_json_nested_too_deeply_is_refused_not_a_crash(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"resourceType": "Bundle", "entry": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ImportFileError, match="nested too deeply"):
        import_fhir(path, EDGE)


# --- treatment courses and benefit claims: tests/data/fhir/msc-taper-claims-bundle.json (synthetic, ours) -------
TAPERS = "msc-taper-claims-bundle.json"


def _tapers_with(tmp_path: Path, resource_id: str, **changes: Any) -> ImportResult:
    return _story_with(tmp_path, resource_id, TAPERS, **changes)


def test_a_series_of_statements_of_one_drug_is_one_course_started_tapered_twice_and_stopped():
    result = import_fhir(DATA / TAPERS, EDGE)
    assert [r.message() for r in result.rejections] == []
    prednisolone = [e for e in result.events if getattr(e, "drug", None) == "prednisolone"]
    # MedicationStatement pred-20mg, pred-10mg, pred-5mg: effectivePeriod back to back, doseQuantity 20 -> 10 -> 5 mg.
    assert [(e.type, getattr(e, "dose", None), getattr(e, "previous_dose", None)) for e in prednisolone] == [
        ("treatment-started", 20, None), ("treatment-tapered", 10, 20), ("treatment-tapered", 5, 10),
        ("treatment-stopped", None, 5)]
    assert {e.course_id for e in prednisolone} == {"fhir-pred-20mg"}
    _started, to_10, to_5, stopped = prednisolone
    # Each new dose's reason is the statusReason of the statement it replaces; the stop's is its own.
    assert (to_10.reason, to_10.reason_detail) == (
        "taper after MSC therapy", "Dose reduced: taper after mesenchymal stromal cell infusion")
    assert to_5.reason == "parent decision"  # "Parents asked to reduce the dose again"
    assert (stopped.reason, stopped.occurred_at) == ("parent decision", datetime(2024, 6, 20, tzinfo=UTC))
    assert to_10.occurred_at == datetime(2024, 3, 15, tzinfo=UTC)  # pred-10mg effectivePeriod.start


def test_a_medication_request_replacing_a_higher_dose_is_a_taper_of_the_same_course():
    events = by_type(import_fhir(DATA / TAPERS, EDGE))
    # MedicationRequest mmf-250 (priorPrescription mmf-500, stopped "Dose lowered: disease in remission").
    (taper,) = [e for e in events["treatment-tapered"] if e.drug == "mycophenolate mofetil"]
    assert (taper.dose, taper.previous_dose, taper.dose_unit, taper.reason, taper.course_id) == (
        250, 500, "mg", "remission", "fhir-mmf-500")
    assert taper.occurred_at == datetime.fromisoformat("2024-04-02T10:00:00+02:00")  # boundsPeriod.start
    assert {e.course_id for e in events["treatment-started"]} == {"fhir-pred-20mg", "fhir-mmf-500", "fhir-hcq-200"}


def test_a_higher_dose_is_a_dose_change_and_the_same_dose_a_noted_continuation(tmp_path):
    higher = _tapers_with(tmp_path, "pred-10mg", dosage=[{"doseAndRate": [{"doseQuantity": {
        "value": 30, "system": "http://unitsofmeasure.org", "code": "mg"}}]}])
    (change,) = by_type(higher)["treatment-dose-changed"]
    assert (change.dose, change.previous_dose) == (30, 20)
    same = _tapers_with(tmp_path, "pred-10mg", dosage=[{"doseAndRate": [{"doseQuantity": {
        "value": 20, "system": "http://unitsofmeasure.org", "code": "mg"}}]}])
    assert [(e.dose, e.previous_dose) for e in by_type(same)["treatment-tapered"] if e.drug == "prednisolone"] == [
        (5, 20)]  # 20 -> (20) -> 5
    assert any("pred-10mg" in note and "course continues" in note for note in same.notes)


def test_a_gap_after_a_records_end_stops_the_course_and_the_next_record_starts_a_new_one(tmp_path):
    result = _tapers_with(tmp_path, "pred-10mg", effectivePeriod={"start": "2024-04-01", "end": "2024-05-01"})
    prednisolone = [(e.type, e.course_id) for e in result.events if getattr(e, "drug", None) == "prednisolone"]
    assert prednisolone == [("treatment-started", "fhir-pred-20mg"), ("treatment-stopped", "fhir-pred-20mg"),
                            ("treatment-started", "fhir-pred-10mg"), ("treatment-tapered", "fhir-pred-10mg"),
                            ("treatment-stopped", "fhir-pred-10mg")]


def test_who_claimed_a_benefit_and_whether_a_measure_documents_it_survive_the_import():
    result = import_fhir(DATA / TAPERS, EDGE)
    events = by_type(result)
    parent, clinician, patient = events["outcome-claim"]
    # parent-claim-1: performer RelatedPerson/mother-12, value "Much better since the cells", focus the MSC
    # Procedure, no derivedFrom: reported, not documented.
    assert (parent.claimed_by, parent.direction, parent.what, parent.attributed_to) == (
        "parent", "improved", "Joint pain and energy", "MSC")
    assert not parent.is_documented
    # clinician-claim-1: performer Practitioner, derivedFrom the two SLEDAI-2K Observations (12, then 6).
    assert (clinician.claimed_by, clinician.direction, clinician.attributed_to) == ("clinician", "improved", "MSC")
    measure = clinician.documented_measure
    assert (measure.name, measure.before, measure.after) == ("SLEDAI-2K", 12, 6)
    (after,) = [e for e in events["disease-activity"] if e.score == 6]
    assert measure.evidence_event_id == after.event_id  # points at the imported score's own event
    # patient-claim-1: performer Patient, valueString "No improvement".
    assert (patient.claimed_by, patient.direction, patient.is_documented) == ("patient", "unchanged", False)


@pytest.mark.parametrize(("resource_id", "changes", "expected"), [
    ("parent-claim-1", {"performer": []}, "performer"),  # who says so is never guessed
    ("clinician-claim-1", {"derivedFrom": [{"reference": "Observation/elsewhere"}]}, "derivedFrom"),
    ("clinician-claim-1", {"derivedFrom": [{"reference": "urn:uuid:3c2e5b1a-8f4d-4e21-9a7c-5d0e6f1a2b13"}]},
     "another claim"),
    ("clinician-claim-1", {"derivedFrom": [{"reference": "urn:uuid:3c2e5b1a-8f4d-4e21-9a7c-5d0e6f1a2b01"}]},
     "is not an Observation"),  # the Patient
    ("pred-10mg", {"dosage": [{"doseAndRate": [{"doseQuantity": {
        "value": 10, "system": "http://unitsofmeasure.org", "code": "mgs"}}]}]}, "dose_unit (doseQuantity.code)"),
])
def test_a_claim_or_course_record_that_cannot_be_mapped_is_rejected_naming_the_element(
        tmp_path, resource_id, changes, expected):
    result = _tapers_with(tmp_path, resource_id, **changes)
    (rejection,) = result.rejections
    assert f"/{resource_id})" in rejection.message() and expected in rejection.message()


def test_a_lab_unit_that_is_not_ucum_is_dead_lettered_as_invalid_unit(tmp_path):
    result = _story_with(tmp_path, "anc-1", valueQuantity={
        "value": 0.8, "system": "http://unitsofmeasure.org", "code": "10E9/L"}, referenceRange=[])  # UCUM: 10*9/L
    (rejection,) = result.rejections
    assert rejection.reason == "invalid_unit" and "'10E9/L' is not a UCUM unit" in rejection.detail


TAPER_STORY = json.loads((DATA / TAPERS).read_text())


@settings(max_examples=150, deadline=None)
@given(entry=st.integers(0, len(TAPER_STORY["entry"]) - 1), key=st.sampled_from(
    ["status", "statusReason", "dosage", "dosageInstruction", "effectivePeriod", "authoredOn", "intent",
     "priorPrescription", "derivedFrom", "focus", "valueCodeableConcept", "valueString", "performer", "code"]),
    value=JSON_VALUES)
def test_no_element_value_of_a_course_or_claim_crashes_the_importer(entry, key, value):
    assert_every_resource_accounted_for(TAPER_STORY, entry, key, value)


def test_a_dose_in_another_unit_system_keeps_the_exposure_without_its_dose_and_says_so(tmp_path):
    result = _tapers_with(tmp_path, "pred-10mg", dosage=[{"doseAndRate": [{"doseQuantity": {
        "value": 2, "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "code": "TAB"}}]}])
    assert result.rejections == []
    prednisolone = [(e.type, getattr(e, "dose", None), getattr(e, "previous_dose", None))
                    for e in result.events if getattr(e, "drug", None) == "prednisolone"]
    # 20 mg, then 2 tablets (not importable as a dose), then 5 mg: a change whose previous dose is unknown.
    assert prednisolone == [("treatment-started", 20, None), ("treatment-dose-changed", 5, None),
                            ("treatment-stopped", None, 5)]
    assert any("pred-10mg" in note and "2 TAB" in note and "not a UCUM dose" in note for note in result.notes)


HL7_REQUESTS = ("medicationrequest0301.json", "medicationrequest0304.json", "medicationrequest0312.json",
                "medicationrequest0314.json")


def test_hl7_medication_request_examples_start_courses_and_their_non_ucum_units_are_rejected(tmp_path):
    """HL7 FHIR R4 specification examples, unchanged (tests/data/README.md)."""
    entries = [{"resource": json.loads((DATA / name).read_text())} for name in HL7_REQUESTS]
    path = tmp_path / "requests.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    result = import_fhir(path, EDGE)
    (oxycodone, phenytoin) = result.events
    # medrx0301: status completed, statusReason "Try another treatment first", authoredOn 2015-01-15, a dose range
    # in tablets (no UCUM doseQuantity): the course starts; its stop has no date, which a note says.
    assert (oxycodone.type, oxycodone.drug, oxycodone.drug_class, oxycodone.occurred_at, oxycodone.dose) == (
        "treatment-started", "Oral Form Oxycodone (product)", "other", datetime(2015, 1, 15, tzinfo=UTC), None)
    assert any("medrx0301" in n and "Try another treatment first" in n and "no treatment-stopped" in n
               for n in result.notes)
    # medrx0312: 100 mg phenytoin; its priorPrescription medrx0304 is another drug (nystatin), so another course.
    assert (phenytoin.drug, phenytoin.dose, phenytoin.dose_unit, phenytoin.route) == (
        "Phenytoin 25mg/ml oral suspension", 100, "mg", "oral")
    # medrx0304 doses 10 "drop" and medrx0314 75 "mcg" under the UCUM system: UCUM writes [drp] and ug.
    rejected = {r.where.split("(")[-1].rstrip(")"): (r.reason, r.detail) for r in result.rejections}
    assert rejected.keys() == {"MedicationRequest/medrx0304", "MedicationRequest/medrx0314"}
    assert all(reason == "invalid_unit" and detail.startswith("dose_unit (doseQuantity.code): '")
               for reason, detail in rejected.values())


HL7_CODED_OBSERVATIONS = ("observation-example-bloodgroup.json", "observation-example-eye-color.json",
                          "observation-example-secondsmoke.json", "observation-example-trachcare.json",
                          "observation-example-vomiting.json")


def test_hl7_coded_observations_are_not_read_as_benefit_claims(tmp_path):
    """HL7 FHIR R4 examples whose value is a code or a sentence ("Blood group A", "blue", "Yes", "Mother is trained
    to change her child's tracheostomy tube", "Absent"): none states a change, so none becomes an outcome claim;
    each is skipped with a note."""
    entries = [{"resource": json.loads((DATA / name).read_text())} for name in HL7_CODED_OBSERVATIONS]
    path = tmp_path / "observations.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    result = import_fhir(path, EDGE)
    assert (result.events, result.rejections) == ([], [])
    assert len([note for note in result.notes if "skipped" in note]) == len(HL7_CODED_OBSERVATIONS)


def test_another_childs_score_cannot_document_a_claim(tmp_path):
    result = _tapers_with(tmp_path, "sledai-after", subject={"reference": "Patient/someone-else"})
    (rejection,) = result.rejections
    assert "/clinician-claim-1)" in rejection.message() and "another patient" in rejection.message()
    assert [e.score for e in by_type(result)["disease-activity"]] == [12, 6]  # the scores themselves are imported


def test_the_recorder_becomes_a_reporter_pseudonym_from_its_identifier_or_its_reference(tmp_path):
    # msc-story-bundle.json: AdverseEvent fever-1 recorder RelatedPerson/mother, a resource the bundle lacks
    (fever,) = by_type(import_fhir(DATA / "msc-story-bundle.json", EDGE))["adverse-event"]
    assert fever.reporter == EDGE.reporter_pseudonym("fhir:RelatedPerson/mother")
    bundle = json.loads((DATA / "msc-story-bundle.json").read_text())
    bundle["entry"].append({"resource": {"resourceType": "RelatedPerson", "id": "mother",
                                         "identifier": [{"system": "urn:example:parent-app", "value": "M-4711"}]}})
    path = tmp_path / "with-mother.json"
    path.write_text(json.dumps(bundle))
    (named,) = by_type(import_fhir(path, EDGE))["adverse-event"]
    assert named.reporter == EDGE.reporter_pseudonym("urn:example:parent-app|M-4711")
    assert named.event_id == fever.event_id  # the reporter is not part of the id
