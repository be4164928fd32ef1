"""Codes and units shared by the clinical event types, checked for form (pvwatch ships no licensed dictionary).

A code that is not even well formed (an ICD-10 code without its letter, a LOINC code whose check digit is wrong,
an ATC code of the wrong shape) is an "unknown code" and the record is rejected at the edge with the field named.
Whether a well-formed code exists in the current release of its terminology is the importer's or the analyst's
question, not the wire contract's.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo
from pydantic_core import PydanticCustomError

#: ICD-10 (WHO): a letter, two digits, optionally a dot and up to four more characters: M32.1, M35.1, M08.0.
Icd10Code = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")]

#: WHO ATC/DDD index: any level from anatomical group (L) to chemical substance (L04AC07, tocilizumab).
AtcCode = Annotated[str, StringConstraints(pattern=r"^[A-V]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$")]

@lru_cache(maxsize=1)
def _ucum_grammar() -> Any:
    """The UCUM c/s grammar whose unit and prefix atoms are generated from the UCUM essence file (version 2.2,
    2024-06-17) that the ucumvert package ships (MIT; the essence under the UCUM licence): read offline, once."""
    from ucumvert.parser import get_ucum_parser

    return get_ucum_parser()


@lru_cache(maxsize=4096)  # a store holds a few dozen distinct units; each event checks one or two
def ucum_problem(unit: str) -> str | None:
    """Why `unit` is not a UCUM case-sensitive code (None if it is one).

    Checked against the UCUM specification's syntax (section "Syntax Rules") with the atoms and prefixes of the
    UCUM essence: a prefix only on a metric unit, exponents and factors as integers, annotations in braces.
    """
    from lark.exceptions import LarkError, UnexpectedInput

    try:
        _ucum_grammar().parse(unit)
    except UnexpectedInput as problem:
        column = getattr(problem, "column", -1)
        if not isinstance(column, int) or column < 1:
            return "the expression ends where a unit is expected"
        return f"no UCUM unit, prefix or operator reads '{unit[column - 1:]}' at character {column}"
    except LarkError as problem:  # an ambiguity or grammar error: still not a unit pvwatch can compare
        return f"not a UCUM expression ({type(problem).__name__})"
    return None


#: Validation context for reading the event log back (worker start, replay): checks tightened within a topic
#: version after an event was stored (the UCUM grammar, 2026-11-30) apply to new input, never to what was accepted.
FROM_LOG: dict[str, bool] = {"from_log": True}


def _valid_ucum(unit: str, info: ValidationInfo) -> str:
    if info.context is not None and info.context.get("from_log"):
        return unit  # accepted when stored (form checked by the pattern still); docs/events.md, Schema evolution
    problem = ucum_problem(unit)
    if problem is not None:
        raise PydanticCustomError(
            "ucum_unit", "'{unit}' is not a UCUM unit (UCUM essence 2.2): {problem}; e.g. mg, 10*9/L, umol/L",
            {"unit": unit, "problem": problem})
    return unit


#: UCUM (ucum.org) case-sensitive code, checked against the UCUM grammar and essence: 10*9/L, U/L, mg/dL, mg/kg.
#: "mcg", "cells" or "mg/kgg" are not UCUM (ug, {cells}); an invalid unit is dead-lettered as `invalid_unit`.
#: What a UCUM unit and a LOINC code look like (the replay screen reads stored payloads against these too).
UCUM_UNIT_PATTERN = r"^[!-~]{1,40}$"
LOINC_CODE_PATTERN = r"^[0-9]{1,7}-[0-9]$"

UcumUnit = Annotated[str, StringConstraints(pattern=UCUM_UNIT_PATTERN), AfterValidator(_valid_ucum)]

#: ISO 3166-1 alpha-2 country code.
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]

#: A manufacturing lot or batch number as printed (E2B(R3) G.k.4.r.7 batch/lot number).
LotId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._/:#-]{0,63}$")]

#: Producer-chosen id linking the events of one treatment course (started -> changed -> tapered -> stopped).
CourseId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]

#: A finite number (NaN and infinity are not clinical values).
Finite = Annotated[float, Field(allow_inf_nan=False)]


@lru_cache(maxsize=4096)  # a store holds a few hundred distinct codes; each lab event checks one
def loinc_check_digit(number: str) -> int:
    """LOINC's mod-10 check digit (LOINC User's Guide, appendix "Calculating Mod 10 check digits").

    Digits in odd positions counted from the right are read as one number and doubled, the even-position digits
    are prepended, and the check digit brings the digit sum up to the next multiple of ten: 751-8, 1742-6.
    """
    digits = number[::-1]
    doubled = str(2 * int(digits[0::2][::-1]))
    rest = digits[1::2][::-1]
    total = sum(int(d) for d in rest + doubled)
    return (10 - total % 10) % 10


def _valid_loinc(code: str) -> str:
    number, _, check = code.partition("-")
    if loinc_check_digit(number) != int(check):
        raise ValueError(f"{code} is not a LOINC code: its check digit should be {loinc_check_digit(number)}")
    return code


#: LOINC code (loinc.org), with its check digit verified: 751-8 neutrophils, 1742-6 ALT, 1975-2 bilirubin.
LoincCode = Annotated[str, StringConstraints(pattern=LOINC_CODE_PATTERN), AfterValidator(_valid_loinc)]


def _valid_year_month(value: str) -> str:
    month = int(value[5:7])
    if not 1 <= month <= 12:
        raise ValueError(f"{value}: month must be 01-12")
    return value


#: Year and month only (YYYY-MM): a child's full birth date is identifying and never travels (issue 4).
YearMonth = Annotated[str, StringConstraints(pattern=r"^(19|20)[0-9]{2}-[0-9]{2}$"), AfterValidator(_valid_year_month)]


def year_month_of(moment: date | datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


class DrugClass(StrEnum):
    """Therapeutic class as paediatric rheumatology uses it (EULAR/ACR nomenclature, Smolen 2014)."""

    CSDMARD = "csDMARD"  # conventional synthetic: methotrexate, hydroxychloroquine, mycophenolate, ...
    BDMARD = "bDMARD"  # biologic: tocilizumab, adalimumab, etanercept, rituximab, belimumab, ...
    TSDMARD = "tsDMARD"  # targeted synthetic, the JAK inhibitors: tofacitinib, baricitinib, ...
    GLUCOCORTICOID = "glucocorticoid"
    OTHER = "other"


class Route(StrEnum):
    """Route of administration (a subset of EDQM Standard Terms, as E2B(R3) G.k.4.r.10 uses)."""

    ORAL = "oral"
    SUBCUTANEOUS = "subcutaneous"
    INTRAVENOUS = "intravenous"
    INTRAMUSCULAR = "intramuscular"
    INTRA_ARTICULAR = "intra-articular"
    INTRATHECAL = "intrathecal"
    TOPICAL = "topical"
    OTHER = "other"
    UNKNOWN = "unknown"


class Assessor(StrEnum):
    """Who says so. Benefit reported by a parent but never documented by a clinician is the gap pvwatch exposes."""

    CLINICIAN = "clinician"
    PARENT = "parent"
    PATIENT = "patient"
