"""Hy's law at and just past its bounds.

Source: FDA Guidance for Industry, Drug-Induced Liver Injury: Premarketing Clinical Evaluation (July 2009),
III.A: ALT or AST "3-fold or greater" above ULN with total bilirubin ">2xULN"; no cholestasis (ALP, here the
analysis-plan convention < 2 x ULN) and a pairing window (convention: 30 days) are parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from pvwatch.domain.ctcae import Analyte
from pvwatch.domain.hys_law import HysLawParameters, LiverResult, cases_with

T0 = datetime(2026, 5, 4, 8, tzinfo=UTC)
P = HysLawParameters()


def result(analyte: Analyte, times_uln: float, days: float = 0, uln: float = 40.0) -> LiverResult:
    return LiverResult(uuid4(), analyte, T0 + timedelta(days=days), times_uln * uln, uln)


def test_alt_exactly_3x_uln_with_bilirubin_just_over_2x_is_a_case():
    alt, bili = result(Analyte.ALT, 3.0), result(Analyte.BILIRUBIN, 2.0001, days=2, uln=20)
    cases = cases_with(bili, [alt, bili], P)
    assert [(c.transaminase, c.bilirubin, c.alp) for c in cases] == [(alt, bili, None)]


def test_transaminase_just_under_3x_is_not_a_case():
    alt, bili = result(Analyte.ALT, 2.999), result(Analyte.BILIRUBIN, 3.0, uln=20)
    assert cases_with(bili, [alt, bili], P) == []


def test_bilirubin_exactly_2x_is_not_a_case():
    ast, bili = result(Analyte.AST, 5.0), result(Analyte.BILIRUBIN, 2.0, uln=20)
    assert cases_with(ast, [ast, bili], P) == []


def test_ast_counts_like_alt():
    ast, bili = result(Analyte.AST, 3.0), result(Analyte.BILIRUBIN, 2.5, uln=20)
    assert len(cases_with(ast, [ast, bili], P)) == 1


def test_pairing_window_30_days_inclusive():
    alt = result(Analyte.ALT, 4.0)
    assert len(cases_with(alt, [alt, result(Analyte.BILIRUBIN, 3.0, days=30, uln=20)], P)) == 1
    assert cases_with(alt, [alt, result(Analyte.BILIRUBIN, 3.0, days=30.01, uln=20)], P) == []


def test_alp_at_2x_uln_marks_cholestasis_and_excludes_the_pair():
    alt, bili = result(Analyte.ALT, 4.0), result(Analyte.BILIRUBIN, 3.0, uln=20)
    cholestatic = result(Analyte.ALP, 2.0, days=1, uln=300)
    assert cases_with(alt, [alt, bili, cholestatic], P) == []
    normal = result(Analyte.ALP, 1.99, days=1, uln=300)
    cases = cases_with(alt, [alt, bili, normal], P)
    assert len(cases) == 1 and cases[0].alp == normal and normal.event_id in cases[0].evidence


def test_parameters_change_the_bounds():
    alt, bili = result(Analyte.ALT, 3.0), result(Analyte.BILIRUBIN, 3.0, days=10, uln=20)
    assert cases_with(alt, [alt, bili], HysLawParameters(pairing_window_days=7)) == []
    assert cases_with(alt, [alt, bili], HysLawParameters(transaminase_uln_multiple=5.0)) == []
