"""CTCAE v5.0 grading of laboratory results (rule `ctcae-lab`).

Source: National Cancer Institute, Common Terminology Criteria for Adverse Events (CTCAE) v5.0, 27 Nov 2017,
SOC "Investigations" and "Blood and lymphatic system disorders". The bounds are compared strictly as the text
reads ("<1.0 - 0.5 x 10e9/L" is grade 3, so an ANC of exactly 1.0 is grade 2; ">ULN - 3.0 x ULN" is grade 1,
so an ALT of exactly 3 x ULN is grade 1), the way pharmaverse/admiral implements the same table.

Grading uses the reference range carried with each value (paediatric ranges depend on age) and the absolute
thresholds of the text. Grade 4 anaemia ("life-threatening consequences") and grade 5 (death) need clinical
facts, not a lab value: for these lab terms the text has no grade 5, and a death belongs to the clinical event.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LabTerm(StrEnum):
    """The CTCAE v5.0 terms pvwatch grades from lab values (the MedDRA LLT names CTCAE uses)."""

    NEUTROPHIL_COUNT_DECREASED = "Neutrophil count decreased"
    PLATELET_COUNT_DECREASED = "Platelet count decreased"
    ANAEMIA = "Anemia"
    ALT_INCREASED = "Alanine aminotransferase increased"
    AST_INCREASED = "Aspartate aminotransferase increased"
    BILIRUBIN_INCREASED = "Blood bilirubin increased"
    CREATININE_INCREASED = "Creatinine increased"


class Analyte(StrEnum):
    """What a lab result measures, independent of the LOINC code that names it."""

    NEUTROPHILS = "neutrophils"
    PLATELETS = "platelets"
    HAEMOGLOBIN = "haemoglobin"
    ALT = "alt"
    AST = "ast"
    BILIRUBIN = "bilirubin"
    CREATININE = "creatinine"
    ALP = "alp"


#: LOINC codes (loinc.org) recognised for each analyte. Ratio-graded analytes accept any unit, because the value
#: and its reference range come in the same unit; absolute thresholds need the units in CANONICAL_UNITS.
LOINC_ANALYTES: dict[str, Analyte] = {
    "751-8": Analyte.NEUTROPHILS,  # Neutrophils [#/volume] in Blood by Automated count
    "753-4": Analyte.NEUTROPHILS,  # Neutrophils [#/volume] in Blood by Manual count
    "26499-4": Analyte.NEUTROPHILS,  # Neutrophils [#/volume] in Blood
    "777-3": Analyte.PLATELETS,  # Platelets [#/volume] in Blood by Automated count
    "26515-7": Analyte.PLATELETS,  # Platelets [#/volume] in Blood
    "718-7": Analyte.HAEMOGLOBIN,  # Hemoglobin [Mass/volume] in Blood
    "1742-6": Analyte.ALT,  # Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma
    "1743-4": Analyte.ALT,  # ALT with P-5'-P
    "1920-8": Analyte.AST,  # Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma
    "30239-8": Analyte.AST,  # AST with P-5'-P
    "1975-2": Analyte.BILIRUBIN,  # Bilirubin.total [Mass/volume] in Serum or Plasma
    "14631-6": Analyte.BILIRUBIN,  # Bilirubin.total [Moles/volume] in Serum or Plasma
    "2160-0": Analyte.CREATININE,  # Creatinine [Mass/volume] in Serum or Plasma
    "14682-9": Analyte.CREATININE,  # Creatinine [Moles/volume] in Serum or Plasma
    "6768-6": Analyte.ALP,  # Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma
}

TERM_OF_ANALYTE: dict[Analyte, LabTerm] = {
    Analyte.NEUTROPHILS: LabTerm.NEUTROPHIL_COUNT_DECREASED,
    Analyte.PLATELETS: LabTerm.PLATELET_COUNT_DECREASED,
    Analyte.HAEMOGLOBIN: LabTerm.ANAEMIA,
    Analyte.ALT: LabTerm.ALT_INCREASED,
    Analyte.AST: LabTerm.AST_INCREASED,
    Analyte.BILIRUBIN: LabTerm.BILIRUBIN_INCREASED,
    Analyte.CREATININE: LabTerm.CREATININE_INCREASED,
}

#: UCUM unit -> factor to the unit the CTCAE text uses (10^9/L for counts, g/L for haemoglobin).
CANONICAL_UNITS: dict[Analyte, dict[str, float]] = {
    Analyte.NEUTROPHILS: {"10*9/L": 1.0, "10*3/uL": 1.0, "10*3/mm3": 1.0, "/uL": 1e-3, "/mm3": 1e-3},
    Analyte.PLATELETS: {"10*9/L": 1.0, "10*3/uL": 1.0, "10*3/mm3": 1.0, "/uL": 1e-3, "/mm3": 1e-3},
    Analyte.HAEMOGLOBIN: {"g/L": 1.0, "g/dL": 10.0},
}


class UngradableResult(ValueError):
    """The value cannot be graded: the unit is not one the CTCAE thresholds can be converted from, or a
    reference limit the term needs is missing."""


@dataclass(frozen=True)
class LabGrade:
    term: LabTerm
    grade: int  # 0 = within the range for this term; 1-4 as CTCAE v5.0
    basis: str  # the CTCAE criterion met, for the officer reading the alert


def _to_canonical(analyte: Analyte, value: float, unit: str) -> float:
    factors = CANONICAL_UNITS[analyte]
    if unit not in factors:
        raise UngradableResult(f"{analyte.value} in {unit!r}: expected one of {sorted(factors)}")
    return value * factors[unit]


def _decreased(value: float, lln: float | None, g2: float, g3: float, g4: float, unit: str) -> tuple[int, str]:
    """Grades of a count that must not fall: G1 <LLN - g2; G2 <g2 - g3; G3 <g3 - g4; G4 <g4 (CTCAE v5.0)."""
    if value < g4:
        return 4, f"<{g4:g} {unit}"
    if value < g3:
        return 3, f"<{g3:g} - {g4:g} {unit}"
    if value < g2:
        return 2, f"<{g2:g} - {g3:g} {unit}"
    if lln is not None and value < lln:
        return 1, f"<LLN - {g2:g} {unit}"
    return 0, "within range"


def _multiples_above(
    value: float, reference: float, bounds: tuple[float, float, float], of: str, grade1_floor: float | None
) -> tuple[int, str]:
    """Grades of a value that must not rise, by multiples of `reference` (ULN or baseline), strictly above each
    bound: G1 above `grade1_floor` (None: above 1x) up to b2; G2 >b2 - b3; G3 >b3 - b4; G4 >b4."""
    b2, b3, b4 = bounds
    ratio = value / reference
    if ratio > b4:
        return 4, f">{b4:g} x {of}"
    if ratio > b3:
        return 3, f">{b3:g} - {b4:g} x {of}"
    if ratio > b2:
        return 2, f">{b2:g} - {b3:g} x {of}"
    if grade1_floor is None:
        if ratio > 1.0:
            return 1, f">{of} - {b2:g} x {of}"
    elif ratio >= grade1_floor:
        return 1, f"{grade1_floor:g} - {b2:g} x {of}"
    return 0, "within range"


def grade(
    analyte: Analyte,
    value: float,
    unit: str,
    low: float | None,
    high: float | None,
    baseline: float | None = None,
) -> LabGrade | None:
    """The CTCAE v5.0 grade of one lab value, or None for an analyte CTCAE grades through another term (ALP).

    `low`/`high` are the age-specific reference limits carried with the value (same unit). `baseline` is the
    patient's own pre-treatment value; CTCAE v5.0 grades ALT, AST and bilirubin by multiples of the baseline
    when the baseline was abnormal (above ULN), and creatinine grades 2-3 by multiples of baseline as well.
    """
    if analyte not in TERM_OF_ANALYTE:
        return None
    term = TERM_OF_ANALYTE[analyte]
    if analyte is Analyte.NEUTROPHILS:
        # CTCAE v5.0 "Neutrophil count decreased": <LLN-1500/mm3; <1500-1000; <1000-500; <500/mm3
        g, basis = _decreased(_to_canonical(analyte, value, unit), _canonical_limit(analyte, low, unit),
                              1.5, 1.0, 0.5, "x10^9/L")
    elif analyte is Analyte.PLATELETS:
        # CTCAE v5.0 "Platelet count decreased": <LLN-75,000/mm3; <75,000-50,000; <50,000-25,000; <25,000/mm3
        g, basis = _decreased(_to_canonical(analyte, value, unit), _canonical_limit(analyte, low, unit),
                              75.0, 50.0, 25.0, "x10^9/L")
    elif analyte is Analyte.HAEMOGLOBIN:
        # CTCAE v5.0 "Anemia": Hgb <LLN-10.0 g/dL; <10.0-8.0 g/dL; <8.0 g/dL (transfusion indicated). Grade 4
        # ("life-threatening consequences; urgent intervention indicated") is a clinical judgement: the lab
        # value alone grades at most 3, which is why the g4 bound is 0 (never met).
        g, basis = _decreased(_to_canonical(analyte, value, unit), _canonical_limit(analyte, low, unit),
                              100.0, 80.0, 0.0, "g/L")
    elif analyte in (Analyte.ALT, Analyte.AST, Analyte.BILIRUBIN):
        uln = _required(high, analyte, "high")
        # CTCAE v5.0 "Alanine/Aspartate aminotransferase increased": >ULN-3.0xULN; >3.0-5.0; >5.0-20.0; >20.0
        # (baseline abnormal: 1.5-3.0 x baseline; >3.0-5.0; >5.0-20.0; >20.0 x baseline).
        # "Blood bilirubin increased": >ULN-1.5xULN; >1.5-3.0; >3.0-10.0; >10.0 x ULN
        # (baseline abnormal: >1.0-1.5 x baseline; >1.5-3.0; >3.0-10.0; >10.0 x baseline).
        bounds = (1.5, 3.0, 10.0) if analyte is Analyte.BILIRUBIN else (3.0, 5.0, 20.0)
        if baseline is not None and baseline > uln:
            floor = None if analyte is Analyte.BILIRUBIN else 1.5
            g, basis = _multiples_above(value, baseline, bounds, "baseline", floor)
        else:
            g, basis = _multiples_above(value, uln, bounds, "ULN", None)
    else:  # creatinine
        # CTCAE v5.0 "Creatinine increased": >ULN-1.5xULN; >1.5-3.0 x baseline or >1.5-3.0 x ULN;
        # >3.0 x baseline or >3.0-6.0 x ULN; >6.0 x ULN. The worse of the two readings counts.
        uln = _required(high, analyte, "high")
        g, basis = _multiples_above(value, uln, (1.5, 3.0, 6.0), "ULN", None)
        if baseline is not None and baseline > 0 and g < 3:
            ratio = value / baseline
            if ratio > 3.0:
                g, basis = 3, ">3.0 x baseline"
            elif ratio > 1.5 and g < 2:
                g, basis = 2, ">1.5 - 3.0 x baseline"
    return LabGrade(term, g, basis)


def _canonical_limit(analyte: Analyte, limit: float | None, unit: str) -> float | None:
    return None if limit is None else _to_canonical(analyte, limit, unit)


def _required(limit: float | None, analyte: Analyte, which: str) -> float:
    if limit is None or limit <= 0:
        raise UngradableResult(f"{analyte.value} needs the reference range {which} limit to be graded")
    return limit
