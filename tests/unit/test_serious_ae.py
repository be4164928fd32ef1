"""Rule serious-ae against ICH E2A section II.B: any one criterion makes an event serious; severity alone does not."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from pvwatch.domain import serious_ae
from pvwatch.domain.engine import evaluate_events
from pvwatch.events import AdverseEventReported

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CRITERIA = ("death", "life_threatening", "hospitalisation", "disability", "congenital_anomaly", "medically_important")


def report(case_id: str = "CASE-1", report_kind: str = "initial", **seriousness: bool) -> AdverseEventReported:
    death = seriousness.get("death", False)
    return AdverseEventReported(
        event_id=uuid4(), occurred_at=datetime(2026, 3, 1, 9, tzinfo=UTC), recorded_at=NOW, source="test",
        patient="pt-" + "a" * 20, case_id=case_id, report_kind=report_kind, reporter_type="clinician",
        awareness_date=date(2026, 3, 1), term="Pulmonary embolism", seriousness=seriousness,
        outcome="fatal" if death else "unknown", ctcae_grade=3,
    )


@pytest.mark.parametrize("criterion", CRITERIA)
def test_each_e2a_criterion_alone_raises_a_critical_alert(criterion):
    alert = serious_ae.evaluate(report(**{criterion: True}), NOW)
    assert alert is not None
    assert alert.severity == "critical"
    assert alert.details["criteria"] == [criterion]


def test_grade_3_without_any_criterion_is_not_serious():
    assert serious_ae.evaluate(report(), NOW) is None


def test_follow_up_of_an_alerted_case_gets_the_same_alert_id():
    first = serious_ae.evaluate(report(hospitalisation=True), NOW)
    follow_up = serious_ae.evaluate(report(report_kind="follow-up", hospitalisation=True, death=True), NOW)
    assert first is not None and follow_up is not None
    assert first.alert_id == follow_up.alert_id


def test_engine_counts_evaluations_and_orders_by_occurrence():
    alerts, evaluations = evaluate_events([report("A", death=True), report("B")], NOW)
    assert [a.case_id for a in alerts] == ["A"]
    assert evaluations["serious-ae"] == 2


def test_history_orders_by_instant_across_time_zones():
    from datetime import timedelta, timezone

    from pvwatch.domain.history import PatientHistory

    plus_two = timezone(timedelta(hours=2))
    early = report("EARLY").model_copy(update={"occurred_at": datetime(2026, 3, 1, 9, 30, tzinfo=plus_two)})
    late = report("LATE").model_copy(update={"occurred_at": datetime(2026, 3, 1, 8, 0, tzinfo=UTC)})
    history = PatientHistory("pt-" + "a" * 20)
    history.add(late)
    history.add(early)  # 07:30 UTC, although its ISO string sorts after 08:00+00:00
    assert [e.case_id for e in history.of_type("adverse-event", AdverseEventReported)] == ["EARLY", "LATE"]
