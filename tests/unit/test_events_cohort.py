"""The synthetic cohort: deterministic, valid on the wire, realistic in shape, and its planted safety stories
meet the published definitions the rules implement (each checked here against its source, not against the rules).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest

from pvwatch.cohort import CLUSTER_LOT, STORY_KINDS, generate_cohort, planted_stories
from pvwatch.domain.engine import evaluate_events
from pvwatch.events.codec import parse_event
from pvwatch.pseudonym import DEMO_KEY, Pseudonymiser

EDGE = Pseudonymiser(DEMO_KEY)
PATIENTS, SEED = 60, 7


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return list(generate_cohort(PATIENTS, SEED))


@pytest.fixture(scope="module")
def by_id(records) -> dict[str, dict[str, Any]]:
    return {r["event_id"]: r for r in records}


def at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["occurred_at"])


def test_the_same_seed_gives_the_same_cohort_and_another_seed_another(records):
    assert list(generate_cohort(PATIENTS, SEED)) == records
    assert list(generate_cohort(PATIENTS, SEED + 1)) != records
    assert len({r["event_id"] for r in records}) == len(records)


@pytest.mark.parametrize("seed", [1, 7, 99])
def test_every_record_passes_the_ingest_edge_and_every_clinical_type_occurs(seed):
    cohort = list(generate_cohort(40, seed))
    events = [parse_event(EDGE.pseudonymise_record(r)) for r in cohort]
    assert {e.type for e in events} == {
        "patient-enrolled", "patient-updated", "treatment-started", "treatment-dose-changed", "treatment-tapered",
        "treatment-stopped", "msc-infusion", "adverse-event", "lab-result", "disease-activity", "outcome-claim"}
    assert all(r["patient_ref"].startswith("MRN-") and "patient" not in r for r in cohort), "raw ids, edge hashes"


def test_the_cohort_is_shaped_like_the_case_series(records):
    enrolled = [r for r in records if r["type"] == "patient-enrolled"]
    assert len(enrolled) == PATIENTS
    for record in enrolled:
        diagnosis = record["diagnoses"][0]
        # WHO ICD-10 chapter XIII: M32 SLE, M35.1 overlap syndromes (MCTD), M08 juvenile arthritis, M09.0 juvenile
        # arthritis in psoriasis.
        family = {"SLE": ("M32.",), "MCTD": ("M35.1",)}.get(diagnosis["condition"], ("M08.", "M09.0"))
        assert diagnosis["icd10_code"].startswith(family)
        age = at(record).year - int(record["birth_year_month"][:4])
        assert 2 <= age <= 18, "a paediatric cohort"
    infusions = [r for r in records if r["type"] == "msc-infusion"]
    assert len({r["clinic"] for r in infusions}) >= 3 and len({r.get("lot_id") for r in infusions}) >= 10
    assert 0 < sum(1 for r in infusions if "lot_id" not in r or "cells_per_kg" not in r) < len(infusions) / 3
    reasons = Counter(r.get("reason") for r in records if r["type"] == "treatment-tapered")
    assert reasons["taper after MSC therapy"] > 0 and reasons["parent decision"] > 0
    classes = {r["drug_class"] for r in records if r["type"] == "treatment-started"}
    assert classes == {"csDMARD", "bDMARD", "tsDMARD", "glucocorticoid"}
    scores = Counter((r["instrument"], r["assessed_by"], r["documented"]) for r in records
                     if r["type"] == "disease-activity")
    assert {("SLEDAI-2K", "clinician", True), ("JADAS10", "clinician", True),
            ("parent-global", "parent", False)} <= set(scores)
    claims = [r for r in records if r["type"] == "outcome-claim"]
    assert any(r["claimed_by"] == "parent" and "documented_measure" not in r for r in claims)
    assert any(r["claimed_by"] == "clinician" and "documented_measure" in r for r in claims)


def test_background_labs_stay_in_range_so_only_planted_stories_grade(records, by_id):
    planted = {i for story in planted_stories(PATIENTS, SEED).values() for i in story.event_ids}
    labs = [r for r in records if r["type"] == "lab-result" and r["event_id"] not in planted]
    assert len(labs) > 1000
    assert all(r["reference_low"] <= r["value"] <= r["reference_high"] for r in labs)


def test_every_story_is_planted_in_a_60_patient_cohort_with_events_that_exist(by_id):
    stories = planted_stories(PATIENTS, SEED)
    assert set(stories) == set(STORY_KINDS)
    for story in stories.values():
        assert story.event_ids and all(i in by_id for i in story.event_ids), story.kind
        assert {by_id[i]["patient_ref"] for i in story.event_ids} == set(story.patient_refs)
    assert len({ref for s in stories.values() for ref in s.patient_refs}) == 9, "one story per child"


def test_a_small_cohort_plants_the_first_stories_and_never_half_a_cluster():
    assert list(planted_stories(3, SEED)) == list(STORY_KINDS[:3])
    assert "lot-cluster" not in planted_stories(8, SEED)
    assert "lot-cluster" in planted_stories(9, SEED)


def of(kind: str, by_id: dict[str, dict[str, Any]], type_name: str) -> list[dict[str, Any]]:
    return [by_id[i] for i in planted_stories(PATIENTS, SEED)[kind].event_ids if by_id[i]["type"] == type_name]


def test_planted_neutropenia_is_ctcae_v5_grade_3(by_id):
    # CTCAE v5.0 "Neutrophil count decreased": grade 3 <1.0 - 0.5 x10^9/L.
    low = min(of("neutropenia", by_id, "lab-result"), key=lambda r: r["value"])
    assert low["loinc_code"] == "751-8" and low["unit"] == "10*9/L" and 0.5 <= low["value"] < 1.0


def test_planted_hys_law_pair_meets_the_fda_definition(by_id):
    # FDA DILI guidance (2009): ALT or AST >= 3 x ULN and total bilirubin > 2 x ULN, without cholestasis
    # (ALP < 2 x ULN, the usual analysis-plan convention).
    labs = {r["loinc_code"]: r for r in of("hys-law", by_id, "lab-result")}
    alt, bilirubin, alp = labs["1742-6"], labs["1975-2"], labs["6768-6"]
    assert alt["value"] >= 3 * alt["reference_high"]
    assert bilirubin["value"] > 2 * bilirubin["reference_high"]
    assert alp["value"] < 2 * alp["reference_high"]
    assert abs(at(alt) - at(bilirubin)) <= timedelta(days=30)


def test_planted_flare_is_a_selena_sledai_rise_after_a_dmard_taper_after_msc(by_id):
    # SELENA flare index (Petri 2005): a SLEDAI-2K rise of 3 or more.
    taper = of("flare-after-taper", by_id, "treatment-tapered")[0]
    assert taper["reason"] == "taper after MSC therapy" and taper["drug_class"] == "csDMARD"
    before, after = sorted(of("flare-after-taper", by_id, "disease-activity"), key=at)
    assert at(before) < at(taper) < at(after) <= at(taper) + timedelta(weeks=8)
    assert before["instrument"] == after["instrument"] == "SLEDAI-2K"
    assert before["assessed_by"] == after["assessed_by"] == "clinician"
    assert after["score"] - before["score"] >= 3


def test_planted_infusion_reaction_is_fever_within_hours_of_the_infusion(by_id):
    infusion = of("infusion-reaction", by_id, "msc-infusion")[0]
    fever = of("infusion-reaction", by_id, "adverse-event")[0]
    assert fever["term"] == "Pyrexia" and timedelta(0) < at(fever) - at(infusion) <= timedelta(hours=24)
    assert fever["products"][0]["infusion_event_id"] == infusion["event_id"]


def test_planted_lot_cluster_is_three_children_after_one_lot(by_id):
    infusions = of("lot-cluster", by_id, "msc-infusion")
    events = of("lot-cluster", by_id, "adverse-event")
    assert {r["lot_id"] for r in infusions} == {CLUSTER_LOT}
    assert len({r["patient_ref"] for r in events}) == 3 == len({r["case_id"] for r in events})
    infused = {r["patient_ref"]: at(r) for r in infusions}
    assert all(timedelta(0) < at(e) - infused[e["patient_ref"]] <= timedelta(days=30) for e in events)
    assert max(map(at, events)) - min(map(at, events)) <= timedelta(days=90)


def test_planted_death_is_a_fatal_case_with_an_initial_report_and_a_follow_up(records, by_id):
    versions = sorted(of("death", by_id, "adverse-event"), key=lambda r: r["recorded_at"])
    assert [v["report_kind"] for v in versions] == ["initial", "follow-up"]
    assert len({v["case_id"] for v in versions}) == 1
    assert versions[-1]["outcome"] == "fatal" and versions[-1]["seriousness"]["death"] is True
    ref = versions[0]["patient_ref"]
    died = at(versions[0]) + timedelta(days=2)
    assert all(at(r) <= died for r in records if r["patient_ref"] == ref), "nothing happens after death"


def test_planted_duplicate_is_one_event_reported_twice_by_different_reporters(by_id):
    first, second = sorted(of("duplicate-report", by_id, "adverse-event"), key=at)
    assert first["term"] == second["term"] and first["case_id"] != second["case_id"]
    assert {first["reporter_type"], second["reporter_type"]} == {"parent", "clinician"}
    assert first["reporter_ref"] != second["reporter_ref"]
    assert at(second) - at(first) <= timedelta(days=3)
    events = [parse_event(EDGE.pseudonymise_record(r)) for r in (first, second)]
    alerts, _ = evaluate_events(events, max(e.recorded_at for e in events))
    assert [a.details["reporter_match"] for a in alerts if a.rule_id == "duplicate-case"] == ["different-reporters"]


def test_every_adverse_event_names_one_reporter_per_reporter_type_and_child(records):
    reports = [r for r in records if r["type"] == "adverse-event"]
    reporters: dict[tuple[str, str], set[str]] = defaultdict(set)
    for report in reports:
        reporters[(report["patient_ref"], report["reporter_type"])].add(report["reporter_ref"])
    assert all(len(refs) == 1 for refs in reporters.values())
    assert {EDGE.pseudonymise_record(r)["reporter"][:3] for r in reports} == {"rp-"}


def test_the_rules_catch_every_planted_story_and_no_background_child_grades_or_flares(records):
    events = [parse_event(EDGE.pseudonymise_record(r)) for r in records]
    end = max(e.recorded_at for e in events)
    alerts, _ = evaluate_events(events, end)
    story_of = {EDGE.pseudonym(ref): story.kind
                for story in planted_stories(PATIENTS, SEED).values() for ref in story.patient_refs}
    raised: dict[str, set[str]] = defaultdict(set)
    for alert in alerts:
        raised[story_of.get(alert.patient, "background")].add(alert.rule_id)
    expected = {"infusion-reaction": "infusion-temporal", "neutropenia": "ctcae-lab",
                "flare-after-taper": "flare-after-taper", "death": "serious-ae", "hys-law": "hys-law",
                "duplicate-report": "duplicate-case", "lot-cluster": "lot-cluster"}
    for kind, rule in expected.items():
        assert rule in raised[kind], f"{kind} did not raise {rule}"
    assert raised["background"].isdisjoint(
        {"ctcae-lab", "hys-law", "flare-after-taper", "duplicate-case", "lot-cluster", "infusion-temporal"})


def test_pvwatch_generate_writes_the_cohort_and_its_stories():
    from click.testing import CliRunner

    from pvwatch.cli import cli

    lines = CliRunner().invoke(cli, ["generate", "--patients", "9", "--seed", "3"]).output.splitlines()
    assert [json.loads(line) for line in lines] == list(generate_cohort(9, 3))
    stories = json.loads(CliRunner().invoke(cli, ["generate", "--patients", "9", "--seed", "3", "--stories"]).output)
    assert stories["lot-cluster"]["event_ids"] == list(planted_stories(9, 3)["lot-cluster"].event_ids)
