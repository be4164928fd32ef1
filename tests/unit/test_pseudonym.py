from __future__ import annotations

import pytest

from pvwatch.errors import ConfigError
from pvwatch.events.envelope import PSEUDONYM_PATTERN
from pvwatch.pseudonym import Pseudonymiser


def test_same_identifier_same_key_same_pseudonym_and_format():
    p = Pseudonymiser(b"k" * 32)
    assert p.pseudonym("MRN-001") == p.pseudonym(" mrn-001 ")
    import re

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
