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


#: CTCAE v5.0 counts that must not fall, in the units of CANONICAL_UNITS: grades 2, 3 and 4 start strictly below
#: these values (grade 1 is below the LLN). "Neutrophil count decreased": <LLN-1500/mm3; <1500-1000; <1000-500;
#: <500/mm3. "Platelet count decreased": <LLN-75,000/mm3; <75,000-50,000; <50,000-25,000; <25,000/mm3.
#: "Anemia": Hgb <LLN-10.0 g/dL; <10.0-8.0 g/dL; <8.0 g/dL. Grade 4 anaemia ("life-threatening consequences;
#: urgent intervention indicated") is a clinical judgement: the lab value alone grades at most 3, which is why
#: its grade 4 bound is 0 (never met).
DECREASED_BOUNDS: dict[Analyte, tuple[float, float, float]] = {
    Analyte.NEUTROPHILS: (1.5, 1.0, 0.5),
    Analyte.PLATELETS: (75.0, 50.0, 25.0),
    Analyte.HAEMOGLOBIN: (100.0, 80.0, 0.0),
}
_DECREASED_UNIT = {Analyte.NEUTROPHILS: "x10^9/L", Analyte.PLATELETS: "x10^9/L", Analyte.HAEMOGLOBIN: "g/L"}

#: CTCAE v5.0 values that must not rise: grades 2, 3 and 4 start strictly above these multiples of ULN (grade 1
#: above ULN). "Alanine/Aspartate aminotransferase increased": >ULN-3.0xULN; >3.0-5.0; >5.0-20.0; >20.0 x ULN.
#: "Blood bilirubin increased": >ULN-1.5xULN; >1.5-3.0; >3.0-10.0; >10.0 x ULN. "Creatinine increased":
#: >ULN-1.5xULN; >1.5-3.0 x ULN; >3.0-6.0 x ULN; >6.0 x ULN.
ULN_MULTIPLES: dict[Analyte, tuple[float, float, float]] = {
    Analyte.ALT: (3.0, 5.0, 20.0),
    Analyte.AST: (3.0, 5.0, 20.0),
    Analyte.BILIRUBIN: (1.5, 3.0, 10.0),
    Analyte.CREATININE: (1.5, 3.0, 6.0),
}
#: When the baseline was abnormal (above ULN), CTCAE v5.0 grades ALT, AST and bilirubin by the same multiples of
#: the baseline; grade 1 starts at 1.5 x baseline for ALT and AST ("1.5-3.0 x baseline"), above 1.0 x baseline
#: for bilirubin (">1.0-1.5 x baseline").
BASELINE_GRADE1_FROM: dict[Analyte, float | None] = {Analyte.ALT: 1.5, Analyte.AST: 1.5, Analyte.BILIRUBIN: None}
#: "Creatinine increased" grades 2 and 3 by multiples of baseline too: >1.5-3.0 x baseline; >3.0 x baseline.
CREATININE_BASELINE_MULTIPLES: tuple[float, float] = (1.5, 3.0)
#: The analytes `grade` reads a baseline for (the patient's first result of the kind).
BASELINE_GRADED = frozenset({*BASELINE_GRADE1_FROM, Analyte.CREATININE})


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
    if analyte in DECREASED_BOUNDS:
        g2, g3, g4 = DECREASED_BOUNDS[analyte]
        g, basis = _decreased(_to_canonical(analyte, value, unit), _canonical_limit(analyte, low, unit),
                              g2, g3, g4, _DECREASED_UNIT[analyte])
    elif analyte in BASELINE_GRADE1_FROM:  # ALT, AST, bilirubin
        uln = _required(high, analyte, "high")
        bounds = ULN_MULTIPLES[analyte]
        if baseline is not None and baseline > uln:
            g, basis = _multiples_above(value, baseline, bounds, "baseline", BASELINE_GRADE1_FROM[analyte])
        else:
            g, basis = _multiples_above(value, uln, bounds, "ULN", None)
    else:  # creatinine: the worse of the ULN and the baseline reading counts
        uln = _required(high, analyte, "high")
        g, basis = _multiples_above(value, uln, ULN_MULTIPLES[analyte], "ULN", None)
        if baseline is not None and baseline > 0 and g < 3:
            ratio = value / baseline
            to_grade2, to_grade3 = CREATININE_BASELINE_MULTIPLES
            if ratio > to_grade3:
                g, basis = 3, f">{to_grade3:.1f} x baseline"
            elif ratio > to_grade2 and g < 2:
                g, basis = 2, f">{to_grade2:.1f} - {to_grade3:.1f} x baseline"
    return LabGrade(term, g, basis)


def _canonical_limit(analyte: Analyte, limit: float | None, unit: str) -> float | None:
    return None if limit is None else _to_canonical(analyte, limit, unit)


def _required(limit: float | None, analyte: Analyte, which: str) -> float:
    if limit is None or limit <= 0:
        raise UngradableResult(f"{analyte.value} needs the reference range {which} limit to be graded")
    return limit


# --- results no rule can use (the replay screen) -------------------------------------------------------------


@dataclass(frozen=True)
class Ceiling:
    """An upper bound on a multiple: `value / reference <= limit` (inclusive) or `< limit`."""

    limit: float
    inclusive: bool

    def admits(self, ratio: float) -> bool:
        return ratio <= self.limit if self.inclusive else ratio < self.limit

    def tighter(self, other: Ceiling | None) -> Ceiling:
        if other is None or self.limit < other.limit:
            return self
        if other.limit < self.limit:
            return other
        return self if not self.inclusive else other  # the same limit: the exclusive bound is the tighter


@dataclass(frozen=True)
class QuietBand:
    """The results of one analyte that a rule cannot use (grade below the alert grade, never half of a Hy's law pair
    nor its exclusion), as conditions on the value that must all hold; no condition: every result is quiet.

    `at_least`: the value in the unit of CANONICAL_UNITS (only those units qualify) is at least this; `at_least_lln`:
    it is at least the LLN; `uln`: value / ULN within the ceiling; `baseline`: value / the patient's first result
    of the kind (the CTCAE baseline, if it is positive) within the ceiling. A result without a value to compare
    (a comparator, a missing reference limit, no positive ULN) is never quiet: `admits` says whether one is."""

    at_least: float | None = None
    at_least_lln: bool = False
    uln: Ceiling | None = None
    baseline: Ceiling | None = None
    #: the patient's first result of the kind is the baseline later results are graded against: never quiet
    first_is_baseline: bool = False

    def __and__(self, other: QuietBand) -> QuietBand:
        """Both bands at once (a result quiet for every rule)."""
        floors = [f for f in (self.at_least, other.at_least) if f is not None]
        return QuietBand(max(floors) if floors else None, self.at_least_lln or other.at_least_lln,
                         _tighter(self.uln, other.uln), _tighter(self.baseline, other.baseline),
                         self.first_is_baseline or other.first_is_baseline)

    def admits(self, analyte: Analyte, value: float, unit: str, low: float | None, high: float | None,
               baseline: float | None, comparator: str | None = None) -> bool:
        """Whether this result lies in the band (the definition store/replay.py turns into SQL), `baseline` being
        the patient's first result of the kind; whether that first result may be quiet: `first_is_baseline`."""
        if comparator is not None or low is None or high is None or not high > 0:
            return False
        if self.at_least is not None or self.at_least_lln:
            factor = CANONICAL_UNITS.get(analyte, {}).get(unit)
            if factor is None:
                return False
            if self.at_least is not None and not value * factor >= self.at_least:
                return False
            if self.at_least_lln and not value * factor >= low * factor:
                return False
        if self.uln is not None and not self.uln.admits(value / high):
            return False
        if self.baseline is not None and baseline is not None:
            if not baseline > 0:
                return False
            return self.baseline.admits(value / baseline)
        return True


def _tighter(first: Ceiling | None, second: Ceiling | None) -> Ceiling | None:
    return second if first is None else first.tighter(second)


def quiet_band(analyte: Analyte, alert_from_grade: int) -> QuietBand | None:
    """The results of `analyte` that `grade` places below `alert_from_grade` whatever the patient's baseline
    (None when there are none: every grade alerts). Derived from the bounds `grade` uses, compared as it compares
    them (strictly below a count bound; strictly above a multiple), so the two cannot drift apart."""
    if analyte not in TERM_OF_ANALYTE or alert_from_grade > 4:
        return QuietBand()  # not graded here (ALP), or no grade reaches the alert
    if alert_from_grade <= 0:
        return None
    if analyte in DECREASED_BOUNDS:
        if alert_from_grade == 1:  # grade 1 is below the LLN, grade 2 below the first bound
            return QuietBand(at_least=DECREASED_BOUNDS[analyte][0], at_least_lln=True)
        return QuietBand(at_least=DECREASED_BOUNDS[analyte][alert_from_grade - 2])
    bounds = ULN_MULTIPLES[analyte]
    uln = Ceiling(1.0 if alert_from_grade == 1 else bounds[alert_from_grade - 2], inclusive=True)
    if analyte in BASELINE_GRADE1_FROM:
        # The baseline grades instead of ULN only when it is above ULN, by the same multiples (grade 1 from at
        # least 1.0 x baseline): a multiple of such a baseline is below the same multiple of ULN, so the ULN
        # ceiling bounds both readings.
        return QuietBand(uln=uln)
    # creatinine: grade 2 above the first baseline multiple, grade 3 above the second; no grade 4 from baseline
    to_grade2, to_grade3 = CREATININE_BASELINE_MULTIPLES
    multiple = {1: to_grade2, 2: to_grade2, 3: to_grade3}.get(alert_from_grade)
    return QuietBand(uln=uln, baseline=None if multiple is None else Ceiling(multiple, inclusive=True))
