"""Rule undocumented-benefit: each of its two findings, and what does not raise them.

Definition (pvwatch/domain/undocumented_benefit.py; docs/rules.md): a benefit claim (an `outcome-claim` that
something improved) with no documented measure behind it is an info finding, whoever claims it; an MSC infusion
recorded without its lot or without any cell dose (cells/kg or total cells) is a warning, because lot tracing
and dose-response assessment need both (a characterised, traceable product: Dominici M et al. Cytotherapy
2006;8:315).
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from pvwatch.domain.engine import SafetyEngine
from pvwatch.events.infusion import MscInfusionGiven
from pvwatch.events.outcome_claim import OutcomeClaimReported
from pvwatch.rulebook import load_rule_parameters

NOW = datetime(2026, 7, 1, tzinfo=UTC)
AT = datetime(2026, 6, 1, 10, tzinfo=UTC)
PATIENT = "pt-" + "b" * 20
PARAMETERS = load_rule_parameters()


def findings(event) -> list[tuple[str, str, list[str] | None]]:
    alerts = SafetyEngine(PARAMETERS).apply([event], NOW).alerts
    return [(a.severity.value, a.details["finding"], a.details.get("missing"))
            for a in alerts if a.rule_id == "undocumented-benefit"]


def infusion(**documentation: object) -> MscInfusionGiven:
    return MscInfusionGiven.model_validate({
        "event_id": str(uuid4()), "occurred_at": AT, "recorded_at": AT, "source": "test", "patient": PATIENT,
        "clinic": "clinic-delta", **documentation})


def claim(**fields: object) -> OutcomeClaimReported:
    return OutcomeClaimReported.model_validate({
        "event_id": str(uuid4()), "occurred_at": AT, "recorded_at": AT, "source": "test", "patient": PATIENT,
        "what": "walking", "claimed_by": "parent", **fields})


@pytest.mark.parametrize(("documentation", "missing"), [
    ({}, ["lot_id", "cell_dose"]),
    ({"cells_per_kg": 2e6}, ["lot_id"]),
    ({"lot_id": "L-2026-07"}, ["cell_dose"]),
])
def test_an_infusion_without_its_lot_or_its_cell_dose_is_a_warning_naming_what_is_missing(documentation, missing):
    assert findings(infusion(**documentation)) == [("warning", "infusion-incompletely-documented", missing)]


@pytest.mark.parametrize("dose", [{"cells_per_kg": 2e6}, {"total_cells": 5e7}])
def test_an_infusion_with_its_lot_and_either_dose_is_documented(dose):
    assert findings(infusion(lot_id="L-2026-07", **dose)) == []


@pytest.mark.parametrize("claimant", ["parent", "patient", "clinician"])
def test_a_claimed_benefit_without_a_measure_is_an_info_finding_whoever_claims_it(claimant):
    assert findings(claim(claimed_by=claimant)) == [("info", "benefit-without-measure", None)]


def test_a_claim_naming_its_measure_or_pointing_at_the_score_is_documented():
    assert findings(claim(documented_measure={"name": "SLEDAI-2K", "before": 12, "after": 4})) == []
    assert findings(claim(documented_measure={"name": "active joint count",
                                              "evidence_event_id": str(uuid4())})) == []


@pytest.mark.parametrize("direction", ["worsened", "unchanged"])
def test_only_a_claimed_improvement_is_a_benefit_claim(direction):
    assert findings(claim(direction=direction)) == []
