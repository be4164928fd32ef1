"""Adverse events in the MSC risk windows (fever <= 24 h, thromboembolism <= 14 d, serious infection, new mass
at any time: the AESIs proposed from Lalu 2012, Wang 2021, Moll 2022; see pvwatch/domain/infusion_temporal.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from pvwatch.domain.infusion_temporal import AdverseEventAfter, InfusionGiven, InfusionTemporalParameters, links

T0 = datetime(2026, 2, 3, 10, tzinfo=UTC)
P = InfusionTemporalParameters()
INFUSION = InfusionGiven(uuid4(), T0, "LOT-7", "clinic-a", "UC-MSC")


def ae(term: str, hours: float, serious: bool = False) -> AdverseEventAfter:
    return AdverseEventAfter(uuid4(), "C-" + term, term, T0 + timedelta(hours=hours), serious)


def categories(*events: AdverseEventAfter) -> list[str]:
    return [link.window.category for link in links(events, [INFUSION], P)]


def test_fever_within_24_hours_links_to_the_infusion_lot_and_clinic():
    (link,) = links([ae("Pyrexia", 6)], [INFUSION], P)
    assert link.window.category == "fever-or-infusion-reaction"
    assert (link.infusion.lot, link.infusion.clinic, link.hours_after) == ("LOT-7", "clinic-a", 6.0)


def test_fever_at_24_hours_counts_and_just_after_does_not():
    assert categories(ae("Fever", 24)) == ["fever-or-infusion-reaction"]
    assert categories(ae("Fever", 24.01)) == []


def test_event_before_the_infusion_is_not_linked():
    assert categories(ae("Pyrexia", -1)) == []


def test_thromboembolism_window_is_14_days():
    assert categories(ae("Deep vein thrombosis", 14 * 24)) == ["thromboembolism"]
    assert categories(ae("Pulmonary embolism", 14 * 24 + 1)) == []


def test_infection_counts_only_when_serious():
    assert categories(ae("Pneumonia", 72)) == []
    assert categories(ae("Pneumonia", 72, serious=True)) == ["infection"]


def test_new_mass_counts_at_any_time():
    assert categories(ae("Renal mass", 24 * 700)) == ["new-mass-or-malignancy"]


def test_unrelated_term_is_not_linked():
    assert categories(ae("Headache", 2)) == []
