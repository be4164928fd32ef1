"""Pseudonymisation at the edge: raw patient identifiers become keyed-hash pseudonyms before Kafka.

HMAC-SHA256 with a secret key (not a plain hash: MRNs are guessable, so an unkeyed hash is reversible by
enumeration). The same key gives the same pseudonym, so a patient's events stay linked across sources.
80 bits of the digest are kept: a collision among a million patients has probability below 1e-12.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Any

from pvwatch.errors import ConfigError, InvalidEvent
from pvwatch.events.envelope import PSEUDONYM_PATTERN

if TYPE_CHECKING:
    from pvwatch.config import Settings

#: Used only by `pvwatch demo` and the tests; any other use must configure PVWATCH_PSEUDONYM_KEY.
DEMO_KEY = b"pvwatch-demo-key: synthetic data only, never for real patients"

_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)
#: Event types that carry the birth year-month: a full birth date sent with them is reduced at the edge.
_PATIENT_FACTS = ("patient-enrolled", "patient-updated")


def _year_month_only(born: object) -> str:
    """YYYY-MM of a YYYY-MM-DD birth date: the day identifies a child and is never kept (data minimisation)."""
    if isinstance(born, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", born):
        return born[:7]
    raise InvalidEvent("schema", "birth_date: expected YYYY-MM-DD (only its year and month are kept)")


#: Raw identifying fields a source may send that must never travel further than the edge.
RAW_IDENTIFIER_FIELDS = ("patient_ref", "mrn", "patient_name", "name", "birth_date", "date_of_birth")


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError("the pseudonym key must be at least 16 bytes (PVWATCH_PSEUDONYM_KEY)")
        self._key = key

    @classmethod
    def from_secret(cls, secret: str | None, *, demo_mode: bool) -> Pseudonymiser:
        if secret:
            return cls(secret.encode())
        if demo_mode:
            return cls(DEMO_KEY)
        raise ConfigError(
            "PVWATCH_PSEUDONYM_KEY is not set: pvwatch will not pseudonymise real patient identifiers "
            "without a secret key (the demo uses a built-in key for synthetic data only)"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonymiser:
        """The key from PVWATCH_PSEUDONYM_KEY, or the demo key in demo mode (every command at the edge)."""
        key = settings.pseudonym_key
        return cls.from_secret(key.get_secret_value() if key else None, demo_mode=settings.demo_mode)

    def pseudonym(self, raw_identifier: str) -> str:
        normalised = " ".join(raw_identifier.split()).upper()
        if not normalised:
            raise InvalidEvent("schema", "patient_ref: empty patient identifier")
        digest = hmac.new(self._key, normalised.encode(), hashlib.sha256).hexdigest()
        return f"pt-{digest[:20]}"

    def pseudonymise_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """Replace `patient_ref` with `patient` and drop every raw identifying field; returns a new dict."""
        clean = {key: value for key, value in record.items() if key not in RAW_IDENTIFIER_FIELDS}
        raw = record.get("patient_ref")
        if raw is not None:
            if not isinstance(raw, str | int):
                raise InvalidEvent("schema", "patient_ref: expected a string identifier")
            clean["patient"] = self.pseudonym(str(raw))
        elif "patient" in clean and not (isinstance(clean["patient"], str) and _PSEUDONYM.fullmatch(clean["patient"])):
            # A clinic identifier sent in the wrong field must not travel on in a dead letter either.
            raise InvalidEvent("schema", "patient: not a pseudonym (pt- and 20 hex digits); send the clinic's "
                                         "identifier in patient_ref, where the edge pseudonymises it")
        born = record.get("birth_date", record.get("date_of_birth"))
        if born is not None and "birth_year_month" not in record and record.get("type") in _PATIENT_FACTS:
            clean["birth_year_month"] = _year_month_only(born)
        return clean
