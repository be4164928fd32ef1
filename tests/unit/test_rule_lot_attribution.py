"""Which lots and clinics an adverse event counts for (lot-cluster, docs/rules.md): every lot and every clinic the
patient was infused from in the `attribution_days` (30, pvwatch/rules.yaml) before its onset, not only the latest
infusion's. Seen through the serious trigger (`min_serious` 1): one alert per serious case per lot and per clinic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from pvwatch.domain.engine import LOT_CLUSTER, SafetyEngine
from pvwatch.events import AdverseEventReported
from pvwatch.events.infusion import MscInfusionGiven
from pvwatch.rulebook import load_rule_parameters

PARAMETERS = load_rule_parameters()
PATIENT = "pt-" + "5" * 20
T0 = datetime(2026, 4, 1, 9, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def envelope(days: float) -> dict[str, object]:
    at = T0 + timedelta(days=days)
    return {"event_id": uuid4(), "occurred_at": at, "recorded_at": at + timedelta(hours=1), "source": "unit-test",
            "patient": PATIENT}


def infusion(days: float, lot: str, clinic: str) -> MscInfusionGiven:
    return MscInfusionGiven(**envelope(days), clinic=clinic, lot_id=lot, product_name="UC-MSC")


def serious_event(days: float) -> AdverseEventReported:
    at = T0 + timedelta(days=days)
    return AdverseEventReported(
        **envelope(days), case_id="C-LOT-1", reporter_type="clinician", awareness_date=at.date(),
        onset_date=at.date(), term="Sepsis", seriousness={"hospitalisation": True}, outcome="recovering",
        products=[{"name": "UC-MSC", "role": "suspect"}])


def attributed_to(*events: object) -> set[tuple[str, str]]:
    alerts = SafetyEngine(PARAMETERS).apply(events, NOW).alerts  # type: ignore[arg-type]
    found = set()
    for alert in alerts:
        if alert.rule_id == LOT_CLUSTER:
            scope = str(alert.details["scope"])
            found.add((scope, str(alert.details[scope])))
    return found


def test_an_adverse_event_counts_for_every_lot_and_clinic_infused_within_30_days_not_only_the_latest():
    assert attributed_to(infusion(0, "LOT-A", "clinic-x"), infusion(10, "LOT-B", "clinic-y"), serious_event(15)) == {
        ("lot", "LOT-A"), ("lot", "LOT-B"), ("clinic", "clinic-x"), ("clinic", "clinic-y")}


def test_an_infusion_30_days_before_the_onset_counts_and_one_31_days_before_does_not():
    assert attributed_to(infusion(0, "LOT-A", "clinic-x"), serious_event(30)) == {
        ("lot", "LOT-A"), ("clinic", "clinic-x")}
    assert attributed_to(infusion(0, "LOT-A", "clinic-x"), serious_event(31)) == set()
