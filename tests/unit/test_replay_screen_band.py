"""The replay screen's band (pvwatch.domain.engine.quiet_lab_bands): a lab result inside it can raise no ctcae-lab
alert whatever the patient's baseline, and can be neither half of a Hy's law pair nor the ALP that excludes one.

Sources: CTCAE v5.0 (NCI, 27 Nov 2017): "Neutrophil count decreased" <1500-1000/mm3 is grade 2, <1000-500 grade 3;
"Platelet count decreased" <75,000-50,000/mm3 grade 2, <50,000-25,000 grade 3; "Anemia" <10.0-8.0 g/dL grade 2,
<8.0 g/dL grade 3; "Alanine aminotransferase increased" >3.0-5.0 x ULN grade 2, >5.0-20.0 grade 3; "Creatinine
increased" >3.0 x baseline grade 3. FDA DILI guidance (2009) section III.A: ALT or AST "3-fold or greater" above
ULN with total bilirubin ">2xULN"; the ALP exclusion at 2 x ULN is pvwatch's analysis-plan default.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from pvwatch.domain import ctcae, hys_law
from pvwatch.domain.engine import CTCAE_LAB, HYS_LAW, quiet_lab_bands
from pvwatch.domain.parameters import CtcaeLabParameters, RuleParameters

DEFAULT = RuleParameters()
T0 = datetime(2026, 5, 4, 8, tzinfo=UTC)


def band_of(code: str, parameters: RuleParameters = DEFAULT) -> ctcae.QuietBand | None:
    return quiet_lab_bands(parameters).get(code)


def quiet(code: str, value: float, unit: str, low: float | None, high: float | None, baseline: float | None = None,
          parameters: RuleParameters = DEFAULT, comparator: str | None = None) -> bool:
    band = band_of(code, parameters)
    return band is not None and band.admits(ctcae.LOINC_ANALYTES[code], value, unit, low, high, baseline, comparator)


# --- published boundaries, at the default parameters (alert from grade 3, Hy's law 3 / 2 / 2 x ULN) ----------

def test_a_count_quiet_down_to_the_grade_3_bound_and_not_below():
    assert quiet("751-8", 1.0, "10*9/L", 1.5, 8.0)  # ANC 1.0 x10^9/L is grade 2
    assert not quiet("751-8", 0.999, "10*9/L", 1.5, 8.0)  # grade 3
    assert quiet("751-8", 1000, "/uL", 1500, 8000)  # the same count in /uL
    assert not quiet("751-8", 999, "/uL", 1500, 8000)
    assert quiet("777-3", 50.0, "10*9/L", 150, 450) and not quiet("777-3", 49.9, "10*9/L", 150, 450)
    assert quiet("718-7", 80.0, "g/L", 110, 150) and not quiet("718-7", 79.9, "g/L", 110, 150)
    assert quiet("718-7", 8.0, "g/dL", 11, 15) and not quiet("718-7", 7.9, "g/dL", 11, 15)
    assert not quiet("751-8", 5.0, "10*3/mL", 1.5, 8.0)  # a unit CTCAE's thresholds cannot be converted from


def test_a_transaminase_is_quiet_below_3_x_uln_because_hys_law_pairs_it_from_3_x():
    assert quiet("1742-6", 119.6, "U/L", 5, 40)  # 2.99 x ULN
    assert not quiet("1742-6", 120.0, "U/L", 5, 40)  # exactly 3 x ULN: CTCAE grade 1, but Hy's law "3-fold or greater"
    hys_off = replace(DEFAULT, disabled=frozenset({HYS_LAW}))
    assert quiet("1742-6", 200.0, "U/L", 5, 40, parameters=hys_off)  # exactly 5 x ULN: grade 2
    assert not quiet("1742-6", 200.4, "U/L", 5, 40, parameters=hys_off)  # 5.01 x ULN: grade 3


def test_bilirubin_quiet_up_to_2_x_uln_and_alp_below_2_x_uln():
    assert quiet("1975-2", 2.4, "mg/dL", 0.1, 1.2)  # exactly 2 x ULN: Hy's law needs more than 2
    assert not quiet("1975-2", 2.41, "mg/dL", 0.1, 1.2)
    assert quiet("6768-6", 597, "U/L", 100, 300)  # 1.99 x ULN
    assert not quiet("6768-6", 600, "U/L", 100, 300)  # 2 x ULN excludes a pair (cholestasis)


def test_a_normal_creatinine_is_not_quiet_when_it_is_more_than_3_x_a_low_baseline():
    assert quiet("2160-0", 0.6, "mg/dL", 0.3, 0.7, baseline=0.3)  # 2 x baseline: grade 2
    assert not quiet("2160-0", 0.6, "mg/dL", 0.3, 0.7, baseline=0.19)  # 3.2 x baseline: grade 3
    assert ctcae.grade(ctcae.Analyte.CREATININE, 0.6, "mg/dL", 0.3, 0.7, 0.19).grade == 3  # type: ignore[union-attr]


def test_a_transaminase_baseline_never_narrows_the_band():
    """A baseline grades ALT only when it is above ULN, so its multiples are below ULN's: 5 x a 20 U/L baseline
    is graded by ULN (a normal baseline), 5 x ULN is 2.5 x an 80 U/L baseline."""
    hys_off = replace(DEFAULT, disabled=frozenset({HYS_LAW}))
    for baseline in (None, 20, 80):
        assert quiet("1742-6", 200, "U/L", 5, 40, baseline=baseline, parameters=hys_off)  # 5 x ULN: grade 2
        assert not quiet("1742-6", 200.4, "U/L", 5, 40, baseline=baseline, parameters=hys_off)


def test_never_quiet_without_a_value_to_compare():
    assert not quiet("751-8", 3.0, "10*9/L", 1.5, 8.0, comparator=">")
    assert not quiet("751-8", 3.0, "10*9/L", None, 8.0)
    assert not quiet("1742-6", 20, "U/L", 5, None)
    assert not quiet("1742-6", 20, "U/L", 5, 0.0)
    assert band_of("2345-7") is None  # glucose: a code no rule knows


def test_disabling_a_rule_only_widens_the_band():
    both_off = replace(DEFAULT, disabled=frozenset({CTCAE_LAB, HYS_LAW}))
    assert quiet("751-8", 0.1, "10*9/L", 1.5, 8.0, parameters=both_off)
    assert quiet("1742-6", 4000, "U/L", 5, 40, baseline=1, parameters=both_off)
    every_grade = replace(DEFAULT, ctcae_lab=CtcaeLabParameters(alert_from_grade=0))
    assert set(quiet_lab_bands(every_grade)) == {"6768-6"}  # only ALP, which CTCAE does not grade here


# --- the band against the rules themselves, over a grid ---------------------------------------------------------

PARAMETER_SETS = [
    replace(DEFAULT, ctcae_lab=CtcaeLabParameters(alert_from_grade=grade), disabled=frozenset(disabled),
            hys_law=hys)
    for grade in range(0, 6)
    for disabled in ((), (HYS_LAW,), (CTCAE_LAB,))
    if grade == 3 or disabled != (CTCAE_LAB,)  # the alert grade means nothing with ctcae-lab off
    for hys in (hys_law.HysLawParameters(), hys_law.HysLawParameters(transaminase_uln_multiple=5.0,
                                                                      bilirubin_uln_multiple=3.0,
                                                                      alp_uln_multiple=1.5))
]
#: Per analyte: its units, reference ranges in the canonical unit (low, high) and the multiples of the reference the
#: grid visits (every bound of CTCAE and of Hy's law lies on it, and the doubles either side of it).
BOUNDS = sorted({1.0, 1.5, 2.0, 3.0, 5.0, 6.0, 10.0, 20.0, *[b for bs in ctcae.ULN_MULTIPLES.values() for b in bs]})
RATIOS = sorted({r for b in BOUNDS for r in (b, math.nextafter(b, 0), math.nextafter(b, math.inf))}
                | {k / 8 for k in range(0, 200)})


def units_of(analyte: ctcae.Analyte) -> dict[str, float]:
    return ctcae.CANONICAL_UNITS.get(analyte, {"U/L": 1.0})


def grid(analyte: ctcae.Analyte):
    """(value, unit, low, high, baseline) over the grid, in the result's unit."""
    if analyte in ctcae.DECREASED_BOUNDS:
        canonical_bounds = ctcae.DECREASED_BOUNDS[analyte]
        for unit, factor in units_of(analyte).items():
            for lln in (0.5 * canonical_bounds[1], canonical_bounds[0], 2 * canonical_bounds[0]):
                values = sorted({v for b in (*canonical_bounds, lln) for v in (b, math.nextafter(b, 0),
                                                                                math.nextafter(b, math.inf))}
                                | {lln * k / 20 for k in range(0, 60)})
                for value in values:
                    yield value / factor, unit, lln / factor, 4 * lln / factor, None
        return
    for unit in units_of(analyte):
        for uln in (40.0, 0.35):
            for baseline in (None, 0.0, 0.05 * uln, 0.3 * uln, uln, 1.5 * uln, 4 * uln):
                for ratio in RATIOS:
                    yield ratio * uln, unit, 0.1 * uln, uln, baseline
                    if baseline:
                        yield ratio * baseline, unit, 0.1 * uln, uln, baseline


@pytest.mark.parametrize("parameters", PARAMETER_SETS,
                         ids=lambda p: f"grade{p.ctcae_lab.alert_from_grade}-off{'+'.join(sorted(p.disabled))}"
                                       f"-hys{p.hys_law.transaminase_uln_multiple:g}")
def test_every_result_in_the_band_is_one_no_rule_can_use(parameters: RuleParameters):
    bands = quiet_lab_bands(parameters)
    far = 1e6  # a partner far above any multiple
    admitted = 0
    for code, analyte in ctcae.LOINC_ANALYTES.items():
        band = bands.get(code)
        if band is None:
            continue
        for value, unit, low, high, baseline in grid(analyte):
            if not band.admits(analyte, value, unit, low, high, baseline):
                continue
            admitted += 1
            if parameters.enabled(CTCAE_LAB) and analyte is not ctcae.Analyte.ALP:
                try:
                    graded = ctcae.grade(analyte, value, unit, low, high, baseline)
                except ctcae.UngradableResult:
                    graded = None
                assert graded is None or graded.grade < parameters.ctcae_lab.alert_from_grade, (
                    code, value, unit, low, high, baseline, graded)
            if parameters.enabled(HYS_LAW) and analyte in (*hys_law.Analyte,):
                assert_no_hys_law_use(analyte, value, high, parameters.hys_law, far)
    assert admitted > 0 or parameters.ctcae_lab.alert_from_grade <= 0, "the band must admit something"


IDS = [uuid4() for _ in range(4)]


def liver(analyte: ctcae.Analyte, value: float, uln: float, days: int = 0) -> hys_law.LiverResult:
    return hys_law.LiverResult(IDS[days], analyte, T0 + timedelta(days=days), value, uln)


def assert_no_hys_law_use(analyte: ctcae.Analyte, value: float, uln: float, p: hys_law.HysLawParameters,
                          far: float) -> None:
    result = liver(analyte, value, uln, 3)
    if analyte in (ctcae.Analyte.ALT, ctcae.Analyte.AST):
        partner = liver(ctcae.Analyte.BILIRUBIN, far, 1.0, 1)
        assert hys_law.cases_with(result, [result, partner], p) == [], (analyte, value, uln)
        assert hys_law.cases_with(partner, [result, partner], p) == [], (analyte, value, uln)
    elif analyte is ctcae.Analyte.BILIRUBIN:
        partner = liver(ctcae.Analyte.ALT, far, 1.0, 1)
        assert hys_law.cases_with(result, [result, partner], p) == [], (analyte, value, uln)
        assert hys_law.cases_with(partner, [result, partner], p) == [], (analyte, value, uln)
    elif analyte is ctcae.Analyte.ALP:
        alt, bilirubin = liver(ctcae.Analyte.ALT, far, 1.0, 1), liver(ctcae.Analyte.BILIRUBIN, far, 1.0, 2)
        assert len(hys_law.cases_with(alt, [alt, bilirubin, result], p)) == 1, (value, uln)  # not excluded


def test_the_first_result_is_kept_only_where_ctcae_grades_later_ones_against_it():
    """CTCAE v5.0 grades ALT, AST, bilirubin and creatinine increases by multiples of the baseline
    (ctcae.BASELINE_GRADED): their first result stays; the first count, haemoglobin or ALP may be quiet like any
    other."""
    firsts = {ctcae.LOINC_ANALYTES[code].value: band.first_is_baseline
              for code, band in quiet_lab_bands(DEFAULT).items()}
    assert firsts == {"alt": True, "ast": True, "bilirubin": True, "creatinine": True,
                      "neutrophils": False, "platelets": False, "haemoglobin": False, "alp": False}
    ctcae_off = replace(DEFAULT, disabled=frozenset({CTCAE_LAB}))
    assert not any(band.first_is_baseline for band in quiet_lab_bands(ctcae_off).values())
