"""ctcae-lab through the engine: the patient's first result of an analyte is the baseline of the later ones, also
when it arrives after them.

Source: CTCAE v5.0, "Alanine aminotransferase increased": baseline normal, grade 3 is >5.0-20.0 x ULN; baseline
abnormal, grade 3 is >5.0-20.0 x baseline and grade 2 >3.0-5.0 x baseline (tests/unit/test_rule_ctcae.py tests the
bounds themselves).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from pvwatch.domain.engine import CTCAE_LAB, SafetyEngine
from pvwatch.events.lab import LabResultReported

PATIENT = "pt-" + "ab" * 10
T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def alt(value: float, days: int) -> LabResultReported:
    at = T0 + timedelta(days=days)
    return LabResultReported(event_id=uuid4(), occurred_at=at, recorded_at=at + timedelta(hours=4), source="lab",
                             patient=PATIENT, loinc_code="1742-6", value=value, unit="U/L", reference_low=5,
                             reference_high=40, specimen_at=at)


def ctcae_alerts(batches: list[list[LabResultReported]]) -> list:
    engine = SafetyEngine()
    alerts = [a for batch in batches for a in engine.apply(batch, NOW).alerts]
    return [a for a in alerts if a.rule_id == CTCAE_LAB]


def test_abnormal_baseline_makes_a_later_rise_grade_by_multiples_of_baseline():
    baseline, later = alt(80, 0), alt(250, 10)  # 2 x ULN at baseline; later 6.25 x ULN but 3.1 x baseline: grade 2
    assert ctcae_alerts([[baseline], [later]]) == []


def test_later_rise_alone_grades_by_uln():
    (alert,) = ctcae_alerts([[alt(250, 10)]])  # 6.25 x ULN: grade 3
    assert alert.details["derived_ae_grade"] == 3 and "ULN" in alert.details["criterion"]


def test_baseline_arriving_late_regrades_the_results_after_it():
    baseline, later = alt(80, 0), alt(600, 10)  # 15 x ULN, 7.5 x baseline: grade 3 either way, by another basis
    first, regraded = ctcae_alerts([[later], [baseline]])
    assert first.alert_id == regraded.alert_id and first.evidence_event_ids == (later.event_id,)
    assert "ULN" in first.details["criterion"] and "baseline" in regraded.details["criterion"]
    assert regraded.details["derived_ae_grade"] == 3
