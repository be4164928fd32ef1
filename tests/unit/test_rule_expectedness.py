"""Expectedness against the RSI version in force at day 0 (ICH E2A II.C; EU CT-3 7.2.3.2), clinic MSC policy."""

from __future__ import annotations

from datetime import date

from pvwatch.domain.expectedness import ProductRsi, ReferenceSafetyInformation, RsiVersion, unexpected_suspects

RSI = ReferenceSafetyInformation.of([
    ProductRsi("tocilizumab", (
        RsiVersion("2025-01", date(2025, 1, 1), frozenset({"neutropenia", "alanine aminotransferase increased"})),
        RsiVersion("2026-02", date(2026, 2, 1), frozenset({"neutropenia", "alanine aminotransferase increased",
                                                            "gastrointestinal perforation"})),
    )),
])


def test_listed_term_is_expected_and_records_the_version_in_force_at_day_0():
    assessment = RSI.assess("Tocilizumab", "Neutropenia", None, date(2025, 6, 1))
    assert assessment.expected and assessment.rsi_version == "2025-01"


def test_term_added_in_a_later_version_is_unexpected_before_it_took_effect():
    before = RSI.assess("tocilizumab", "Gastrointestinal perforation", None, date(2026, 1, 31))
    on = RSI.assess("tocilizumab", "Gastrointestinal perforation", None, date(2026, 2, 1))
    assert (before.expected, before.rsi_version) == (False, "2025-01")
    assert (on.expected, on.rsi_version) == (True, "2026-02")


def test_clinic_msc_product_has_no_rsi_so_every_event_is_unexpected():
    assessment = RSI.assess("UC-MSC (Clinic A)", "Pyrexia", None, date(2026, 3, 1))
    assert not assessment.expected and assessment.rsi_version is None


def test_day_0_before_any_version_is_unexpected():
    assert not RSI.assess("tocilizumab", "Neutropenia", None, date(2024, 12, 31)).expected


def test_unexpected_suspects_lists_only_those_for_which_the_event_is_unlisted():
    found = unexpected_suspects(RSI, ["tocilizumab", "UC-MSC"], "Neutropenia", None, date(2026, 3, 1))
    assert [a.product for a in found] == ["UC-MSC"]
