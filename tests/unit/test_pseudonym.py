from __future__ import annotations

import re

import pytest

from pvwatch.errors import ConfigError, InvalidEvent
from pvwatch.events.envelope import PSEUDONYM_PATTERN
from pvwatch.pseudonym import Pseudonymiser


def test_same_identifier_same_key_same_pseudonym_and_format():
    p = Pseudonymiser(b"k" * 32)
    assert p.pseudonym("MRN-001") == p.pseudonym(" mrn-001 ")
    assert re.fullmatch(PSEUDONYM_PATTERN, p.pseudonym("MRN-001"))


def test_another_key_gives_an_unlinkable_pseudonym():
    assert Pseudonymiser(b"k" * 32).pseudonym("MRN-001") != Pseudonymiser(b"j" * 32).pseudonym("MRN-001")


def test_raw_identifiers_are_dropped_from_the_record():
    clean = Pseudonymiser(b"k" * 32).pseudonymise_record(
        {"patient_ref": "MRN-001", "patient_name": "Ada", "birth_date": "2015-04-02", "term": "Rash"}
    )
    assert set(clean) == {"patient", "term"}
    assert "MRN-001" not in str(clean)


def test_missing_key_outside_demo_mode_is_a_clear_configuration_error():
    with pytest.raises(ConfigError, match="PVWATCH_PSEUDONYM_KEY"):
        Pseudonymiser.from_secret(None, demo_mode=False)


def test_a_reporter_pseudonym_is_keyed_normalised_and_never_a_patient_pseudonym():
    from pvwatch.events.adverse_event import REPORTER_PSEUDONYM_PATTERN

    p = Pseudonymiser(b"k" * 32)
    reporter = p.reporter_pseudonym("dr.lee@clinic.example")
    assert reporter == p.reporter_pseudonym("  DR.LEE@clinic.example ")
    assert re.fullmatch(REPORTER_PSEUDONYM_PATTERN, reporter)
    assert reporter != Pseudonymiser(b"j" * 32).reporter_pseudonym("dr.lee@clinic.example")
    # the same raw string as a patient identifier: another prefix and an unrelated digest (distinct domain)
    assert reporter[3:] != p.pseudonym("dr.lee@clinic.example")[3:]


def test_the_raw_reporter_identifier_is_replaced_at_the_edge():
    p = Pseudonymiser(b"k" * 32)
    clean = p.pseudonymise_record({"patient_ref": "MRN-001", "reporter_ref": "Dr Ada Lee", "term": "Rash"})
    assert clean == {"patient": p.pseudonym("MRN-001"), "reporter": p.reporter_pseudonym("Dr Ada Lee"),
                     "term": "Rash"}
    assert "Ada" not in str(clean)


@pytest.mark.parametrize(("record", "detail"), [
    ({"reporter": "Dr Ada Lee"}, "reporter: not a reporter pseudonym"),
    ({"reporter": "pt-" + "a" * 20}, "reporter: not a reporter pseudonym"),  # a patient pseudonym is not one
    ({"reporter_ref": "   "}, "reporter_ref: empty reporter identifier"),
    ({"reporter_ref": ["Dr", "Lee"]}, "reporter_ref: expected a string identifier"),
])
def test_a_reporter_that_is_not_a_pseudonym_is_refused_without_its_value(record, detail):
    with pytest.raises(InvalidEvent) as refused:
        Pseudonymiser(b"k" * 32).pseudonymise_record({"patient_ref": "MRN-001", **record})
    assert refused.value.detail.startswith(detail)
    assert "Lee" not in str(refused.value)
