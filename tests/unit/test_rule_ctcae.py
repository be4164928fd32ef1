"""CTCAE v5.0 lab grading at and just past every boundary of the published table.

Source of every expected grade: NCI CTCAE v5.0 (27 Nov 2017), terms "Neutrophil count decreased", "Platelet
count decreased", "Anemia", "Alanine/Aspartate aminotransferase increased", "Blood bilirubin increased",
"Creatinine increased"; bounds compared strictly as the text reads (as pharmaverse/admiral does).
"""

from __future__ import annotations

import pytest

from pvwatch.domain.ctcae import Analyte, LabTerm, UngradableResult, grade

EPS = 1e-9


def g(analyte: Analyte, value: float, unit: str = "10*9/L", low: float | None = None, high: float | None = None,
      baseline: float | None = None) -> int:
    result = grade(analyte, value, unit, low, high, baseline)
    assert result is not None
    return result.grade


@pytest.mark.parametrize(
    ("anc", "expected"),
    [(2.0, 0), (1.8, 1), (1.5, 1), (1.5 - EPS, 2), (1.0, 2), (1.0 - EPS, 3), (0.5, 3), (0.5 - EPS, 4), (0.0, 4)],
)
def test_neutrophil_grades_at_each_bound(anc, expected):
    # CTCAE v5.0: G1 <LLN-1.5; G2 <1.5-1.0; G3 <1.0-0.5; G4 <0.5 x10^9/L. ANC 1.0 is grade 2 (the brief's example).
    assert g(Analyte.NEUTROPHILS, anc, low=2.0) == expected


def test_neutrophils_in_cells_per_microlitre_convert():
    assert g(Analyte.NEUTROPHILS, 999, unit="/uL", low=2000) == 3
    assert g(Analyte.NEUTROPHILS, 1000, unit="/uL", low=2000) == 2


@pytest.mark.parametrize(
    ("platelets", "expected"),
    [(150, 0), (149, 1), (75, 1), (75 - EPS, 2), (50, 2), (50 - EPS, 3), (25, 3), (25 - EPS, 4)],
)
def test_platelet_grades_at_each_bound(platelets, expected):
    # CTCAE v5.0: G1 <LLN-75,000; G2 <75,000-50,000; G3 <50,000-25,000; G4 <25,000/mm3
    assert g(Analyte.PLATELETS, platelets, low=150) == expected


@pytest.mark.parametrize(
    ("hb_g_per_l", "expected"),
    [(115, 0), (114, 1), (100, 1), (100 - EPS, 2), (80, 2), (80 - EPS, 3), (40, 3)],
)
def test_anaemia_grades_stop_at_3_from_the_lab_value(hb_g_per_l, expected):
    # CTCAE v5.0 Anemia: G1 <LLN-10.0 g/dL; G2 <10.0-8.0; G3 <8.0 g/dL; G4 needs life-threatening consequences
    assert g(Analyte.HAEMOGLOBIN, hb_g_per_l, unit="g/L", low=115) == expected


def test_haemoglobin_in_g_per_dl_converts():
    assert g(Analyte.HAEMOGLOBIN, 7.9, unit="g/dL", low=11.5) == 3
    assert g(Analyte.HAEMOGLOBIN, 8.0, unit="g/dL", low=11.5) == 2


@pytest.mark.parametrize("analyte", [Analyte.ALT, Analyte.AST])
@pytest.mark.parametrize(
    ("times_uln", "expected"),
    [(1.0, 0), (1.0 + EPS, 1), (3.0, 1), (3.0 + EPS, 2), (5.0, 2), (5.0 + EPS, 3), (20.0, 3), (20.0 + EPS, 4)],
)
def test_transaminase_grades_by_multiples_of_uln(analyte, times_uln, expected):
    # CTCAE v5.0 (baseline normal): G1 >ULN-3.0xULN; G2 >3.0-5.0; G3 >5.0-20.0; G4 >20.0 x ULN.
    # ALT exactly 3 x ULN is grade 1 (the brief's example).
    assert g(analyte, 40 * times_uln, unit="U/L", low=5, high=40) == expected


@pytest.mark.parametrize(
    ("times_baseline", "expected"),
    [(1.5 - EPS, 0), (1.5, 1), (3.0, 1), (3.0 + EPS, 2), (5.0 + EPS, 3), (20.0 + EPS, 4)],
)
def test_alt_with_abnormal_baseline_grades_by_multiples_of_baseline(times_baseline, expected):
    # CTCAE v5.0 (baseline abnormal): G1 1.5-3.0 x baseline; G2 >3.0-5.0; G3 >5.0-20.0; G4 >20.0 x baseline
    assert g(Analyte.ALT, 80 * times_baseline, unit="U/L", high=40, baseline=80) == expected


@pytest.mark.parametrize(
    ("times_uln", "expected"),
    [(1.0, 0), (1.0 + EPS, 1), (1.5, 1), (1.5 + EPS, 2), (3.0, 2), (3.0 + EPS, 3), (10.0, 3), (10.0 + EPS, 4)],
)
def test_bilirubin_grades_by_multiples_of_uln(times_uln, expected):
    # CTCAE v5.0 Blood bilirubin increased: G1 >ULN-1.5; G2 >1.5-3.0; G3 >3.0-10.0; G4 >10.0 x ULN
    assert g(Analyte.BILIRUBIN, 20 * times_uln, unit="umol/L", high=20) == expected


def test_bilirubin_with_abnormal_baseline_grades_by_multiples_of_baseline():
    # CTCAE v5.0 (baseline abnormal): G1 >1.0-1.5 x baseline; G2 >1.5-3.0; G3 >3.0-10.0; G4 >10.0
    assert g(Analyte.BILIRUBIN, 30, unit="umol/L", high=20, baseline=30) == 0
    assert g(Analyte.BILIRUBIN, 45, unit="umol/L", high=20, baseline=30) == 1
    assert g(Analyte.BILIRUBIN, 45 + EPS, unit="umol/L", high=20, baseline=30) == 2
    assert g(Analyte.BILIRUBIN, 90 + EPS, unit="umol/L", high=20, baseline=30) == 3


@pytest.mark.parametrize(
    ("times_uln", "expected"),
    [(1.0, 0), (1.0 + EPS, 1), (1.5, 1), (1.5 + EPS, 2), (3.0, 2), (3.0 + EPS, 3), (6.0, 3), (6.0 + EPS, 4)],
)
def test_creatinine_grades_by_multiples_of_uln(times_uln, expected):
    # CTCAE v5.0 Creatinine increased: G1 >ULN-1.5; G2 >1.5-3.0; G3 >3.0-6.0; G4 >6.0 x ULN
    assert g(Analyte.CREATININE, 50 * times_uln, unit="umol/L", high=50) == expected


def test_creatinine_rise_over_baseline_counts_even_below_uln_multiples():
    # CTCAE v5.0: G2 >1.5-3.0 x baseline; G3 >3.0 x baseline (the worse reading counts)
    assert g(Analyte.CREATININE, 45.1, unit="umol/L", high=50, baseline=30) == 2
    assert g(Analyte.CREATININE, 90.1, unit="umol/L", high=50, baseline=30) == 3


def test_no_lab_term_ever_reaches_grade_5():
    worst = [grade(a, 0.0 if a in (Analyte.NEUTROPHILS, Analyte.PLATELETS, Analyte.HAEMOGLOBIN) else 1e6,
                   "g/L" if a is Analyte.HAEMOGLOBIN else "10*9/L", 1.0, 1.0)
             for a in Analyte if a is not Analyte.ALP]
    assert all(w is not None and w.grade <= 4 for w in worst)


def test_term_names_are_ctcae_terms():
    result = grade(Analyte.NEUTROPHILS, 0.8, "10*9/L", 1.5, 8.0)
    assert result is not None and result.term is LabTerm.NEUTROPHIL_COUNT_DECREASED
    assert result.basis == "<1 - 0.5 x10^9/L"


def test_unknown_unit_or_missing_uln_is_ungradable_not_guessed():
    with pytest.raises(UngradableResult, match="expected one of"):
        grade(Analyte.NEUTROPHILS, 0.8, "mmol/L", 1.5, 8.0)
    with pytest.raises(UngradableResult, match="high limit"):
        grade(Analyte.ALT, 300, "U/L", 5, None)


def test_alp_is_not_graded_here():
    assert grade(Analyte.ALP, 900, "U/L", 100, 300) is None
