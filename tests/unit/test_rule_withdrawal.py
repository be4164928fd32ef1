"""Alerts that stand on an absence are a function of the set of events, not of their arrival order: every
permutation of a small history, each event arriving alone (a batch of one, as a late result does live), leaves the
same alerts as the complete log read in occurred_at order (replay); an alert raised before the late event that
makes it untrue is withdrawn, with the reason and that event.

Sources of the thresholds: FDA Guidance for Industry, Drug-Induced Liver Injury: Premarketing Clinical Evaluation
(July 2009), III.A: ALT or AST "3-fold or greater" above ULN, total bilirubin ">2xULN", no initial findings of
cholestasis (ALP >= 2 x ULN and the 30-day window are the analysis-plan conventions in pvwatch/rules.yaml).
SELENA flare index (Petri M et al. NEJM 2005;353:2550): SLEDAI-2K rise >= 3. ACR 2021 JADAS10 cut-offs (Trincianti
C et al. Arthritis Rheumatol 2021;73:1966): minimal disease activity up to 4 (oligoarticular), 6 (polyarticular).
ICH E2A III.A.2: other serious unexpected reactions within 15 calendar days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import permutations
from uuid import UUID, uuid4

import pytest

from pvwatch.domain.engine import (
    EXPEDITED_DUE_SOON,
    EXPEDITED_OVERDUE,
    FLARE_AFTER_TAPER,
    HYS_LAW,
    SafetyEngine,
)
from pvwatch.events import (
    AdverseEventReported,
    DiseaseActivityAssessed,
    LabResultReported,
    TreatmentTapered,
)
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.patient import PatientEnrolled, PatientUpdated
from pvwatch.events.report_submission import ExpeditedReportSubmitted
from pvwatch.rulebook import load_rule_parameters

PARAMETERS = load_rule_parameters()
PATIENT = "pt-" + "7" * 20
T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
NOW = datetime(2026, 9, 1, tzinfo=UTC)
ALT, BILIRUBIN, ALP = "1742-6", "1975-2", "6768-6"
ULN = {ALT: 40.0, BILIRUBIN: 20.0, ALP: 300.0}


def envelope(days: float) -> dict[str, object]:
    at = T0 + timedelta(days=days)
    return {"event_id": uuid4(), "occurred_at": at, "recorded_at": at + timedelta(hours=2), "source": "unit-test",
            "patient": PATIENT}


def lab(code: str, times_uln: float, days: float) -> LabResultReported:
    unit = "umol/L" if code == BILIRUBIN else "U/L"
    return LabResultReported(**envelope(days), loinc_code=code, value=times_uln * ULN[code], unit=unit,
                             reference_low=0.0, reference_high=ULN[code], specimen_at=T0 + timedelta(days=days))


def sledai(value: float, days: float, instrument: str = "SLEDAI-2K") -> DiseaseActivityAssessed:
    return DiseaseActivityAssessed(**envelope(days), instrument=instrument, score=value, assessed_by="clinician",
                                   documented=True)


def taper(days: float) -> TreatmentTapered:
    return TreatmentTapered(**envelope(days), drug="methotrexate", drug_class="csDMARD", dose=10, dose_unit="mg")


def arriving_one_by_one(events: tuple[EventEnvelope, ...], rule_id: str) -> tuple[dict[UUID, SafetyAlert], int]:
    """The alerts table of `rule_id` as the live writer keeps it, events arriving in this order, one per batch
    (raised: stored; withdrawn: deleted); and how many withdrawals it saw."""
    engine = SafetyEngine(PARAMETERS)
    table: dict[UUID, SafetyAlert] = {}
    withdrawals = 0
    for event in events:
        output = engine.apply([event], NOW)
        assert not set(output.withdrawn) & {alert.alert_id for alert in output.alerts}
        for alert_id, why in output.withdrawn.items():
            assert alert_id in table, "only a standing alert is withdrawn"
            assert why.withdrawn_at == NOW and why.reason
            del table[alert_id]
            withdrawals += 1
        table.update((alert.alert_id, alert) for alert in output.alerts)
    return {k: v for k, v in table.items() if v.rule_id == rule_id}, withdrawals


def replayed(events: list[EventEnvelope], rule_id: str) -> dict[UUID, SafetyAlert]:
    """The complete log in occurred_at order, as replay reads it."""
    engine = SafetyEngine(PARAMETERS)
    ordered = sorted(events, key=lambda e: (e.occurred_at, e.event_id.int))
    alerts = engine.standing(engine.apply(ordered, NOW, in_order=True).alerts)
    return {alert.alert_id: alert for alert in alerts if alert.rule_id == rule_id}


def evidence(alerts: dict[UUID, SafetyAlert]) -> set[tuple[UUID, ...]]:
    return {alert.evidence_event_ids for alert in alerts.values()}


def assert_every_arrival_order_agrees(events: list[EventEnvelope], rule_id: str,
                                      expected: set[tuple[UUID, ...]]) -> int:
    """Every permutation ends with `expected` (the evidence of the standing alerts), as replay does; returns the
    number of orders in which an alert was raised and then withdrawn."""
    assert evidence(replayed(events, rule_id)) == expected
    orders_with_withdrawal = 0
    for order in permutations(events):
        table, withdrawals = arriving_one_by_one(order, rule_id)
        assert evidence(table) == expected, [e.type for e in order]
        orders_with_withdrawal += withdrawals > 0
    return orders_with_withdrawal


def test_a_late_cholestatic_alp_between_the_pair_withdraws_hys_law_in_every_arrival_order():
    alt, bilirubin, alp = lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3), lab(ALP, 2.5, 2)
    # a second pair 50 days on, beyond the ALP's 30-day window: it stands whatever arrives when
    later_alt, later_bilirubin = lab(ALT, 3.0, 51), lab(BILIRUBIN, 2.5, 55)
    withdrawn = assert_every_arrival_order_agrees([alt, bilirubin, alp, later_alt, later_bilirubin], HYS_LAW,
                                                  {(later_alt.event_id, later_bilirubin.event_id)})
    assert withdrawn == 40  # the ALP arrives after ALT and bilirubin in a third of the 120 orders


def test_an_alp_below_2x_uln_or_outside_the_window_of_one_result_leaves_the_pair_standing():
    alt, bilirubin = lab(ALT, 3.0, 1), lab(BILIRUBIN, 2.01, 20)
    normal_alp, far_alp = lab(ALP, 1.99, 10), lab(ALP, 6.0, 40)  # 39 days after the ALT: outside its window
    withdrawn = assert_every_arrival_order_agrees([alt, bilirubin, normal_alp, far_alp], HYS_LAW,
                                                  {(alt.event_id, bilirubin.event_id)})
    assert withdrawn == 0


def test_the_withdrawal_names_the_alp_and_says_why():
    alt, bilirubin, alp = lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3), lab(ALP, 2.5, 2)
    engine = SafetyEngine(PARAMETERS)
    (raised,) = engine.apply([alt, bilirubin], NOW).alerts
    output = engine.apply([alp], NOW)
    assert output.alerts == []
    why = output.withdrawn[raised.alert_id]
    assert why.event_id == alp.event_id
    assert "ALP 2.5 x ULN" in why.reason and "cholestasis" in why.reason
    assert engine.apply([lab(ALP, 3.0, 2.5)], NOW).withdrawn == {}, "withdrawn once"


def test_an_alert_raised_and_made_untrue_in_one_batch_is_neither_raised_nor_withdrawn():
    alt, bilirubin, alp = lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3), lab(ALP, 2.5, 4)  # the ALP dated last
    output = SafetyEngine(PARAMETERS).apply([alp, bilirubin, alt], NOW)
    assert [a for a in output.alerts if a.rule_id == HYS_LAW] == [] and output.withdrawn == {}


def test_a_late_score_that_becomes_the_baseline_withdraws_the_flare_in_every_arrival_order():
    # SLEDAI-2K 4 before the taper, 8 after it: a rise of 4, a flare (SELENA: >= 3); a score of 6 dated between the
    # first and the taper is the baseline of the complete log: a rise of 2, no flare.
    first, tapered, after, late_baseline = sledai(4, 0), taper(10), sledai(8, 30), sledai(6, 5)
    withdrawn = assert_every_arrival_order_agrees([first, tapered, after, late_baseline], FLARE_AFTER_TAPER, set())
    assert withdrawn == 6  # raised only when the 6 arrives last of the four: 3! orders


def test_a_late_score_that_keeps_the_rise_leaves_the_flare_standing_with_its_new_baseline():
    first, tapered, after, late_baseline = sledai(4, 0), taper(10), sledai(12, 30), sledai(6, 5)
    assert_every_arrival_order_agrees([first, tapered, after, late_baseline], FLARE_AFTER_TAPER,
                                      {(tapered.event_id, late_baseline.event_id, after.event_id)})


def test_a_late_diagnosis_changes_the_jia_cut_offs_and_withdraws_the_flare_in_every_arrival_order():
    # JADAS10 1.0 -> 5.0 after a taper: inactive to moderate by the oligoarticular cut-offs (MiDA <= 4), a flare;
    # polyarticular (MiDA <= 6): minimal, no flare. The diagnosis as last recorded (day 40) is polyarticular.
    diagnosis = {"condition": "JIA-oligoarticular", "icd10_code": "M08.4", "onset_date": date(2020, 1, 1)}
    enrolled = PatientEnrolled(**envelope(-100), birth_year_month="2015-04", sex="female", diagnoses=[diagnosis],
                               site="clinic-1")
    updated = PatientUpdated(**envelope(40), diagnoses=[{**diagnosis, "condition": "JIA-polyarticular-RF-negative",
                                                        "icd10_code": "M08.3"}])
    events = [enrolled, sledai(1.0, 0, "JADAS10"), taper(10), sledai(5.0, 30, "JADAS10"), updated]
    withdrawn = assert_every_arrival_order_agrees(events, FLARE_AFTER_TAPER, set())
    assert withdrawn > 0
    without_update = assert_every_arrival_order_agrees(events[:4], FLARE_AFTER_TAPER,
                                                       {(events[2].event_id, events[1].event_id, events[3].event_id)})
    assert without_update == 0


def serious_msc_case(days: float) -> AdverseEventReported:
    """A hospitalisation after a clinic-made MSC product (no reference safety information: unexpected), a SUSAR
    with a 15-day clock (ICH E2A III.A.2) from its awareness date."""
    at = T0 + timedelta(days=days)
    return AdverseEventReported(
        **envelope(days), case_id="C-WD-1", reporter_type="clinician", awareness_date=at.date(),
        onset_date=at.date(), term="Pulmonary embolism", seriousness={"hospitalisation": True}, outcome="recovering",
        products=[{"name": "UC-MSC", "role": "suspect"}])


def submitted(case: AdverseEventReported, days_after: float) -> ExpeditedReportSubmitted:
    return ExpeditedReportSubmitted(
        **{**envelope(0), "occurred_at": case.occurred_at + timedelta(days=days_after),
           "recorded_at": case.occurred_at + timedelta(days=days_after, hours=1)},
        case_id=case.case_id, category="15-day", authority="national competent authority", reference="NCA-1",
        submitted_by="officer.lee")


@pytest.mark.parametrize(("days_after", "left"), [
    (3, set()),  # before the due-soon window (48 h before the end of day 15): neither stands
    (14.5, {EXPEDITED_DUE_SOON}),  # inside the window, before the deadline: only due-soon stands
    (20, {EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE}),  # late: both stand
])
def test_a_submission_dated_in_time_that_arrives_after_the_deadline_withdraws_the_clock_alerts(days_after, left):
    case = serious_msc_case(0)
    engine = SafetyEngine(PARAMETERS)
    engine.apply([case], NOW)
    raised = {a.rule_id: a.alert_id for a in engine.clock_alerts(NOW)}
    assert set(raised) == {EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE}  # NOW is months past the 15-day deadline
    submission = submitted(case, days_after)
    output = engine.apply([submission], NOW)
    assert set(output.withdrawn) == {raised[rule] for rule in raised if rule not in left}
    assert all(why.event_id == submission.event_id for why in output.withdrawn.values())
    # the complete log, read as replay reads it, and its clock alerts as of the same moment
    replay = SafetyEngine(PARAMETERS)
    replay.apply([case, submission], NOW)
    assert {a.rule_id for a in replay.clock_alerts(NOW)} == left


def test_stored_alerts_are_standing_after_a_restart():
    alt, bilirubin, alp = lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3), lab(ALP, 2.5, 2)
    before = SafetyEngine(PARAMETERS)
    (raised,) = before.apply([alt, bilirubin], NOW).alerts
    restarted = SafetyEngine(PARAMETERS)
    restarted.remember([alt, bilirubin])
    restarted.remember_alerts([(raised.alert_id, HYS_LAW, raised.rule_version, PATIENT)])
    assert set(restarted.apply([alp], NOW).withdrawn) == {raised.alert_id}


def case_version(days: float, *, death: bool) -> AdverseEventReported:
    """A version of case C-WD-2 after a clinic-made MSC product (no RSI: unexpected): hospitalised, or dead."""
    aware = (T0 + timedelta(days=days)).date()
    return AdverseEventReported(
        **envelope(days), case_id="C-WD-2", reporter_type="clinician", awareness_date=aware, onset_date=aware,
        term="Pulmonary embolism", seriousness={"death": death, "hospitalisation": not death},
        outcome="fatal" if death else "recovering", products=[{"name": "UC-MSC", "role": "suspect"}])


def test_a_late_fatal_version_covers_the_15_day_clock_in_every_arrival_order():
    """ICH E2A III.A.1-2: a fatal SUSAR is reported within 7 days (complete report 8 days later); the case's other
    serious version known the same day needs no 15-day report of its own (expedited.clocks_for_case)."""
    fatal = case_version(2.0, death=True)  # dated first
    hospitalised = case_version(2.1, death=False)  # the same day 0
    for order in permutations([fatal, hospitalised]):
        engine = SafetyEngine(PARAMETERS)
        table: dict[UUID, SafetyAlert] = {}
        for event in order:
            output = engine.apply([event], NOW)
            for alert_id in output.withdrawn:
                del table[alert_id]
            table.update((alert.alert_id, alert) for alert in output.alerts)
        assert sorted(category for _, category in engine.clocks) == ["7-day", "7-day-follow-up"]
        assert sorted(a.details["category"] for a in table.values() if a.rule_id == "expedited-clock") == \
            ["7-day", "7-day-follow-up"]


def test_the_removed_clock_is_named_and_its_clock_alerts_withdrawn():
    fatal, hospitalised = case_version(2.0, death=True), case_version(2.1, death=False)
    engine = SafetyEngine(PARAMETERS)
    engine.apply([hospitalised], NOW)
    fifteen = {a.rule_id: a.alert_id for a in engine.clock_alerts(NOW)} | {
        a.rule_id: a.alert_id for a in engine.apply([], NOW).alerts}
    output = engine.apply([fatal], NOW)
    assert list(output.removed_clocks) == [("C-WD-2", "15-day")]
    assert ("C-WD-2", "15-day") not in output.clocks
    assert {why.event_id for why in output.withdrawn.values()} == {fatal.event_id}
    assert {fifteen[EXPEDITED_DUE_SOON], fifteen[EXPEDITED_OVERDUE]} <= set(output.withdrawn)
    assert len(output.withdrawn) == 3  # the 15-day expedited-clock alert, its due-soon and overdue


def test_a_late_abnormal_baseline_withdraws_the_ctcae_grades_read_against_uln_in_every_arrival_order():
    """NCI CTCAE v5.0, ALT increased: with a normal baseline, grade 3 is ">5.0 - 20.0 x ULN"; with an abnormal
    baseline, ">5.0 - 20.0 x baseline" (grade 2 ">3.0 - 5.0 x baseline"). The patient's first ALT, 100 U/L (ULN 40,
    2.5 x ULN), is the baseline: 240 (6 x ULN, 2.4 x baseline) and 480 (12 x ULN, 4.8 x baseline) are not grade 3;
    600 (15 x ULN, 6 x baseline) is."""
    baseline, grade_1, grade_2, grade_3 = (lab(ALT, value / 40.0, day) for value, day in
                                           ((100, 0), (240, 10), (480, 20), (600, 30)))
    withdrawn = assert_every_arrival_order_agrees([baseline, grade_1, grade_2, grade_3], "ctcae-lab",
                                                  {(grade_3.event_id,)})
    assert withdrawn == 16  # the baseline arrives after 240 or 480 (not first of the three): 2 orders in 3
