"""Rule duplicate-case at and just past each of its conditions.

Definition (pvwatch/domain/duplicate_case.py, after Norén GN et al. Data Min Knowl Disc 2007;14:305): two case ids
of the same patient describing the same event (the MedDRA PT code when both reports carry one, otherwise the
term ignoring case), with onsets at most `onset_days` (rules.yaml: 3) apart, reported twice: by two reporter
pseudonyms (different reporters), by one pseudonym on two case ids (same reporter: a follow-up or a resend under a
new case id), or, when a pseudonym is missing, by two different reporter types (version 1's test).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from pvwatch.domain.duplicate_case import evaluate
from pvwatch.domain.engine import SafetyEngine
from pvwatch.domain.history import PatientHistory
from pvwatch.domain.parameters import DuplicateCaseParameters
from pvwatch.events import AdverseEventReported
from pvwatch.rulebook import load_rule_parameters

NOW = datetime(2026, 7, 1, tzinfo=UTC)
PATIENT = "pt-" + "d" * 20
ONSET = date(2026, 6, 1)


def report(case_id: str, reporter: str, onset: date, term: str = "Rash", pt_code: str | None = None,
           patient: str = PATIENT, who: str | None = None) -> AdverseEventReported:
    at = datetime.combine(onset, datetime.min.time(), UTC) + timedelta(hours=12)
    return AdverseEventReported(
        event_id=uuid4(), occurred_at=at, recorded_at=at + timedelta(days=10), source="test", patient=patient,
        case_id=case_id, reporter_type=reporter, awareness_date=onset + timedelta(days=10), onset_date=onset,
        term=term, meddra_pt_code=pt_code, reporter=who)


def history_of(*events: AdverseEventReported) -> PatientHistory:
    history = PatientHistory(PATIENT)
    for event in events:
        history.add(event)
    return history


def duplicates(first: AdverseEventReported, second: AdverseEventReported, onset_days: int = 3) -> list[str]:
    alerts = evaluate(second, history_of(first, second), NOW, onset_days)
    return [f"{a.details['cases'][0]}|{a.details['cases'][1]}" for a in alerts]


def test_onsets_exactly_the_window_apart_are_a_probable_duplicate():
    parent = report("C-P", "parent", ONSET)
    clinician = report("C-C", "clinician", ONSET + timedelta(days=3))
    assert duplicates(parent, clinician) == ["C-C|C-P"]


def test_onsets_one_day_past_the_window_are_not():
    parent = report("C-P", "parent", ONSET)
    clinician = report("C-C", "clinician", ONSET + timedelta(days=4))
    assert duplicates(parent, clinician) == []


def test_the_same_reporter_type_reporting_twice_is_two_episodes_not_a_duplicate():
    assert duplicates(report("C-1", "clinician", ONSET), report("C-2", "clinician", ONSET)) == []


def test_terms_match_ignoring_case_and_other_terms_do_not():
    assert duplicates(report("C-P", "parent", ONSET, "rash"), report("C-C", "clinician", ONSET, "RASH")) \
        == ["C-C|C-P"]
    assert duplicates(report("C-P", "parent", ONSET, "Rash"), report("C-C", "clinician", ONSET, "Pyrexia")) == []


def test_meddra_pt_codes_decide_when_both_reports_are_coded():
    # 10037844 is MedDRA PT "Rash"; 10037087 is "Pruritus" (codes for form only: no dictionary is shipped)
    same_code = duplicates(report("C-P", "parent", ONSET, "skin rash", "10037844"),
                           report("C-C", "clinician", ONSET, "Rash", "10037844"))
    other_code = duplicates(report("C-P", "parent", ONSET, "Rash", "10037087"),
                            report("C-C", "clinician", ONSET, "Rash", "10037844"))
    assert (same_code, other_code) == (["C-C|C-P"], [])


def test_a_follow_up_of_the_same_case_is_not_its_own_duplicate():
    initial = report("C-1", "parent", ONSET)
    follow_up = report("C-1", "clinician", ONSET).model_copy(update={"report_kind": "follow-up",
                                                                      "follow_up_number": 1})
    assert duplicates(initial, follow_up) == []


def test_the_window_comes_from_the_rules_file_and_other_patients_never_match():
    parameters = load_rule_parameters()
    assert parameters.duplicate_case.onset_days == 3  # the shipped rules.yaml
    wider = replace(parameters, duplicate_case=DuplicateCaseParameters(onset_days=5))
    parent = report("C-P", "parent", ONSET)
    clinician = report("C-C", "clinician", ONSET + timedelta(days=5))
    stranger = report("C-X", "clinician", ONSET, patient="pt-" + "e" * 20)

    def raised(engine_parameters) -> set[tuple[str, ...]]:
        alerts = SafetyEngine(engine_parameters).apply([parent, clinician, stranger], NOW).alerts
        return {tuple(a.details["cases"]) for a in alerts if a.rule_id == "duplicate-case"}

    assert raised(parameters) == set()
    assert raised(wider) == {("C-C", "C-P")}


# --- reporters by pseudonym (version 2) ---

DR_A, DR_B, MOTHER = "rp-" + "a" * 20, "rp-" + "b" * 20, "rp-" + "c" * 20


def matches(first: AdverseEventReported, second: AdverseEventReported) -> list[str]:
    return [a.details["reporter_match"] for a in evaluate(second, history_of(first, second), NOW)]


def test_two_clinicians_reporting_one_episode_are_a_probable_duplicate():
    assert matches(report("C-1", "clinician", ONSET, who=DR_A), report("C-2", "clinician", ONSET, who=DR_B)) \
        == ["different-reporters"]


def test_one_parent_sending_the_episode_again_under_a_new_case_id_is_flagged_as_the_same_reporter():
    first = report("C-1", "parent", ONSET, who=MOTHER)
    again = report("C-2", "parent", ONSET + timedelta(days=1), who=MOTHER)
    alerts = evaluate(again, history_of(first, again), NOW)
    assert [a.details["reporter_match"] for a in alerts] == ["same-reporter"]
    assert "same reporter" in alerts[0].summary


def test_pseudonyms_decide_over_types_when_both_reports_carry_one():
    # a parent and a clinician who are, by their pseudonyms, different people: still different reporters
    assert matches(report("C-P", "parent", ONSET, who=MOTHER), report("C-C", "clinician", ONSET, who=DR_A)) \
        == ["different-reporters"]


def test_one_pseudonym_missing_falls_back_to_the_reporter_types():
    same_type = duplicates(report("C-1", "clinician", ONSET, who=DR_A), report("C-2", "clinician", ONSET))
    other_type = matches(report("C-P", "parent", ONSET, who=MOTHER), report("C-C", "clinician", ONSET))
    assert (same_type, other_type) == ([], ["different-reporter-types"])


def test_the_onset_window_bounds_reports_compared_by_pseudonym_too():
    at_edge = matches(report("C-1", "clinician", ONSET, who=DR_A),
                      report("C-2", "clinician", ONSET + timedelta(days=3), who=DR_B))
    past_edge = matches(report("C-1", "clinician", ONSET, who=DR_A),
                        report("C-2", "clinician", ONSET + timedelta(days=4), who=DR_B))
    before_edge = matches(report("C-1", "parent", ONSET, who=MOTHER),
                          report("C-2", "parent", ONSET - timedelta(days=3), who=MOTHER))
    assert (at_edge, past_edge, before_edge) == (["different-reporters"], [], ["same-reporter"])


def test_the_alert_is_the_same_whichever_version_of_a_case_arrived_first():
    """A case whose initial report has no pseudonym and whose follow-up has one: the pair speaks through its
    earliest matching versions, so arrival order changes neither the alert id nor what it says."""
    initial = report("C-1", "clinician", ONSET)
    follow_up = report("C-1", "clinician", ONSET, who=DR_A).model_copy(
        update={"report_kind": "follow-up", "follow_up_number": 1,
                "occurred_at": initial.occurred_at + timedelta(hours=1)})
    other = report("C-2", "clinician", ONSET, who=DR_B)
    forward = evaluate(other, history_of(initial, follow_up, other), NOW)
    backward = evaluate(initial, history_of(other, follow_up, initial), NOW)
    assert [(a.alert_id, a.evidence_event_ids, a.details) for a in forward] == \
        [(a.alert_id, a.evidence_event_ids, a.details) for a in backward]
    assert forward[0].evidence_event_ids == (follow_up.event_id, other.event_id)


def test_the_shipped_rules_file_runs_version_2():
    assert load_rule_parameters().version("duplicate-case") == 2
