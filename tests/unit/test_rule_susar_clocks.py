"""Which adverse-event reports start which expedited clock, through the rule engine with the shipped rules and RSI.

Sources: ICH E2A (1994) III.A.1 (fatal or life-threatening unexpected serious ADR: 7 calendar days, a complete
report within 8 more), III.A.2 (other serious unexpected: 15 calendar days), II.B (the seriousness criteria), II.C
(unexpected = not consistent with the product information); EU CT-3 7.2.3.2 (expectedness judged on the RSI
version in force at day 0, and recorded). SUSAR = serious + unexpected + a suspect product. The notes' worked
example: day 0 on a Monday -> the 7-day report is due the next Monday.
tests/unit/test_rule_expedited.py tests the clock arithmetic given the category; this file tests the category.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from pvwatch.domain.engine import SafetyEngine
from pvwatch.events import AdverseEventReported
from pvwatch.rulebook import load_rule_parameters

PARAMETERS = load_rule_parameters()
MONDAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 3, tzinfo=UTC)
CLINIC_MSC = "UC-MSC (clinic-made)"  # not in pvwatch/rsi.yaml: no RSI, every event unexpected


def report(term: str = "Pulmonary embolism", products: list[dict[str, str]] | None = None,
           day0: date = MONDAY, **seriousness: bool) -> AdverseEventReported:
    at = datetime.combine(day0, datetime.min.time(), UTC) + timedelta(hours=9)
    return AdverseEventReported(
        event_id=uuid4(), occurred_at=at, recorded_at=at, source="test", patient="pt-" + "c" * 20, case_id="C-1",
        reporter_type="clinician", awareness_date=day0, onset_date=day0, term=term, seriousness=seriousness,
        outcome="fatal" if seriousness.get("death") else "unknown",
        products=products if products is not None else [{"name": CLINIC_MSC, "role": "suspect"}])


def clocks(event: AdverseEventReported) -> dict[str, tuple[date, date, str | None]]:
    engine = SafetyEngine(PARAMETERS)
    output = engine.apply([event], NOW)
    started = {a.details["category"] for a in output.alerts if a.rule_id == "expedited-clock"}
    found = {row.clock.category.value: (row.clock.day0, row.clock.due_date, row.clock.rsi_version)
             for row in engine.clocks.values()}
    assert started == set(found), "each clock is announced by one expedited-clock alert"
    return found


def test_a_life_threatening_susar_is_due_in_7_days_and_complete_in_8_more():
    assert clocks(report(life_threatening=True)) == {
        "7-day": (MONDAY, date(2026, 3, 9), f"{CLINIC_MSC}: no RSI"),
        "7-day-follow-up": (MONDAY, date(2026, 3, 17), f"{CLINIC_MSC}: no RSI"),
    }


def test_a_fatal_susar_is_due_in_7_days_and_complete_in_8_more():
    assert set(clocks(report(death=True))) == {"7-day", "7-day-follow-up"}


@pytest.mark.parametrize("criterion", ["hospitalisation", "disability", "congenital_anomaly", "medically_important"])
def test_any_other_serious_unexpected_case_is_due_in_15_days(criterion):
    assert clocks(report(**{criterion: True})) == {"15-day": (MONDAY, date(2026, 3, 17), f"{CLINIC_MSC}: no RSI")}


def test_a_non_serious_unexpected_event_has_no_clock():
    assert clocks(report()) == {}


def test_a_serious_event_with_no_suspect_product_is_not_a_susar():
    concomitant_only = [{"name": CLINIC_MSC, "role": "concomitant"}]
    assert clocks(report(products=concomitant_only, hospitalisation=True)) == {}
    assert clocks(report(products=[], hospitalisation=True)) == {}


def test_an_interacting_product_is_a_suspect_for_the_susar_test():
    interacting = [{"name": CLINIC_MSC, "role": "interacting"}]
    assert clocks(report(products=interacting, hospitalisation=True)) == {
        "15-day": (MONDAY, date(2026, 3, 17), f"{CLINIC_MSC}: no RSI")}


def test_expectedness_is_judged_on_the_rsi_version_in_force_at_day_0_and_recorded():
    # pvwatch/rsi.yaml: tocilizumab lists "Drug-induced liver injury" from TCZ-RSI-2 (effective 2026-01-01) on.
    tocilizumab = [{"name": "tocilizumab", "role": "suspect"}]
    before = clocks(report("Drug-induced liver injury", tocilizumab, day0=date(2025, 12, 31), hospitalisation=True))
    assert before == {"15-day": (date(2025, 12, 31), date(2026, 1, 15), "tocilizumab: TCZ-RSI-1")}
    assert clocks(report("Drug-induced liver injury", tocilizumab, day0=MONDAY, hospitalisation=True)) == {}


def test_one_unexpected_suspect_among_expected_ones_makes_a_susar():
    products = [{"name": "methotrexate", "role": "suspect"}, {"name": CLINIC_MSC, "role": "suspect"}]
    # Nausea is listed for methotrexate (MTX-RSI-1) but the clinic product has no RSI
    assert clocks(report("Nausea", products, hospitalisation=True)) == {
        "15-day": (MONDAY, date(2026, 3, 17), f"{CLINIC_MSC}: no RSI")}
    assert clocks(report("Nausea", products[:1], hospitalisation=True)) == {}


def test_a_follow_up_keeps_the_case_clock_and_a_follow_up_reporting_death_adds_the_7_day_clocks():
    initial = report(hospitalisation=True)
    later = MONDAY + timedelta(days=8)
    follow_up = report(day0=later, hospitalisation=True).model_copy(
        update={"report_kind": "follow-up", "follow_up_number": 1})
    engine = SafetyEngine(PARAMETERS)
    engine.apply([follow_up, initial], NOW + timedelta(days=10))  # arrival order does not matter
    (clock,) = [row.clock for row in engine.clocks.values()]
    assert (clock.category.value, clock.day0, clock.due_date) == ("15-day", MONDAY, date(2026, 3, 17))
    assert set(clock.evidence_event_ids) == {initial.event_id, follow_up.event_id}

    death = report(day0=later, hospitalisation=True, death=True).model_copy(
        update={"report_kind": "follow-up", "follow_up_number": 1})
    engine = SafetyEngine(PARAMETERS)
    engine.apply([initial, death], NOW + timedelta(days=10))
    found = {row.clock.category.value: (row.clock.day0, row.clock.due_date) for row in engine.clocks.values()}
    assert found == {"15-day": (MONDAY, date(2026, 3, 17)), "7-day": (later, date(2026, 3, 17)),
                     "7-day-follow-up": (later, date(2026, 3, 25))}
