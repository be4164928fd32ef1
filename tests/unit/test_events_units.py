"""UCUM units are validated against the UCUM specification, not only for form.

Sources: the UCUM specification (ucum.org, version 2.2, "Syntax Rules" and the essence file of atoms and
prefixes), and UCUM's own "Table of Example UCUM Codes for Electronic Messaging" (version 1.5, June 2020), both
as shipped offline in the ucumvert package (vendor/ucum-essence.xml, vendor/ucum_examples.tsv).
"""

from __future__ import annotations

import csv
from importlib.resources import files

import pytest

from pvwatch.events.vocabulary import ucum_problem
from tests.unit.test_events_models import example, rejected


def ucum_example_codes() -> list[str]:
    table = files("ucumvert").joinpath("vendor", "ucum_examples.tsv").read_text(encoding="utf-8")
    return [row["UCUM_CODE"] for row in csv.DictReader(table.splitlines(), delimiter="\t")]


def test_every_unit_of_ucums_example_table_is_accepted_except_torr_which_the_essence_lacks():
    codes = ucum_example_codes()
    assert len(codes) == 848  # rows of the table, version 1.5
    refused = {code: ucum_problem(code) for code in codes if ucum_problem(code) is not None}
    # "Torr" is listed in the example table but defined in no version of ucum-essence.xml (ucumvert's vendor
    # README notes the inconsistency): pvwatch follows the essence.
    assert list(refused) == ["Torr"]


@pytest.mark.parametrize(("unit", "ucum"), [
    ("mcg", "ug"),  # micro is "u" (UCUM section 2.2, prefix table)
    ("IU/L", "[IU]/L"),  # international unit is the bracketed atom [IU]
    ("cells", "{cells}"),  # a count is an annotation, not an atom
    ("mmHg", "mm[Hg]"),
    ("10E9/L", "10*9/L"),
    ("k[in_i]", "[in_i]"),  # a prefix only on a metric unit (UCUM section 3.2 "metric units")
    ("mg/", "mg"),
])
def test_a_non_ucum_lab_unit_is_rejected_as_invalid_unit_naming_the_field(unit, ucum):
    assert ucum_problem(ucum) is None
    problem = rejected(example("lab-result", unit=unit))
    assert problem.reason == "invalid_unit"
    assert problem.detail.startswith(f"unit: '{unit}' is not a UCUM unit")


def test_a_treatment_dose_unit_is_ucum_checked_too():
    problem = rejected(example("treatment-started", dose_unit="mcg"))
    assert (problem.reason, problem.detail.split(":")[0]) == ("invalid_unit", "dose_unit")
    assert ucum_problem("mg/m2") is None and ucum_problem("mg/kg") is None  # body-surface and per-kg doses
