"""Pseudonymisation at the edge: raw patient and reporter identifiers become keyed-hash pseudonyms before Kafka.

HMAC-SHA256 with a secret key (not a plain hash: MRNs are guessable, so an unkeyed hash is reversible by
enumeration). The same key gives the same pseudonym, so a patient's events stay linked across sources.
80 bits of the digest are kept: a collision among a million patients has probability below 1e-12.
Reporters (who sent an adverse-event report: a parent's e-mail, a clinician's name or registration number) get
pseudonyms of their own domain: `rp-` instead of `pt-`, and the keyed hash of a message no patient identifier can
be, so a reporter pseudonym never equals, nor links to, a patient pseudonym (a parent who is also an adult
patient stays two unrelated pseudonyms).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Any

from pvwatch.errors import ConfigError, InvalidEvent
from pvwatch.events.adverse_event import REPORTER_PSEUDONYM_PATTERN
from pvwatch.events.envelope import PSEUDONYM_PATTERN

if TYPE_CHECKING:
    from pvwatch.config import Settings

#: Used only by `pvwatch demo` and the tests; any other use must configure PVWATCH_PSEUDONYM_KEY.
DEMO_KEY = b"pvwatch-demo-key: synthetic data only, never for real patients"

_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)
_REPORTER_PSEUDONYM = re.compile(REPORTER_PSEUDONYM_PATTERN)
#: Prefix of the message hashed for a reporter. Patient identifiers are hashed upper-cased, so no patient message
#: can start with these lower-case letters: the two domains never share a message, hence never a digest.
_REPORTER_DOMAIN = b"reporter\x00"
#: Event types that carry the birth year-month: a full birth date sent with them is reduced at the edge.
_PATIENT_FACTS = ("patient-enrolled", "patient-updated")


def _year_month_only(born: object) -> str:
    """YYYY-MM of a YYYY-MM-DD birth date: the day identifies a child and is never kept (data minimisation)."""
    if isinstance(born, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", born):
        return born[:7]
    raise InvalidEvent("schema", "birth_date: expected YYYY-MM-DD (only its year and month are kept)")


#: Raw identifying fields a source may send that must never travel further than the edge.
RAW_IDENTIFIER_FIELDS = ("patient_ref", "mrn", "patient_name", "name", "birth_date", "date_of_birth", "reporter_ref")


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

    @staticmethod
    def _normalised(raw_identifier: str, field: str, whose: str) -> str:
        normalised = " ".join(raw_identifier.split()).upper()
        if not normalised:
            raise InvalidEvent("schema", f"{field}: empty {whose} identifier")
        return normalised

    def _digest(self, message: bytes) -> str:
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:20]

    def pseudonym(self, raw_identifier: str) -> str:
        """The patient pseudonym `pt-` + 20 hex digits (case and spacing of the identifier do not matter)."""
        return f"pt-{self._digest(self._normalised(raw_identifier, 'patient_ref', 'patient').encode())}"

    def reporter_pseudonym(self, raw_identifier: str) -> str:
        """The reporter pseudonym `rp-` + 20 hex digits, from the same key in the reporter domain."""
        normalised = self._normalised(raw_identifier, "reporter_ref", "reporter")
        return f"rp-{self._digest(_REPORTER_DOMAIN + normalised.encode())}"

    def pseudonymise_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """Replace `patient_ref` with `patient`, `reporter_ref` with `reporter`, and drop every raw identifying
        field; returns a new dict."""
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
        reporter = record.get("reporter_ref")
        if reporter is not None:
            if not isinstance(reporter, str | int):
                raise InvalidEvent("schema", "reporter_ref: expected a string identifier")
            clean["reporter"] = self.reporter_pseudonym(str(reporter))
        elif "reporter" in clean and not (isinstance(clean["reporter"], str)
                                          and _REPORTER_PSEUDONYM.fullmatch(clean["reporter"])):
            raise InvalidEvent("schema", "reporter: not a reporter pseudonym (rp- and 20 hex digits); send the "
                                         "reporter's identifier in reporter_ref, where the edge pseudonymises it")
        born = record.get("birth_date", record.get("date_of_birth"))
        if born is not None and "birth_year_month" not in record and record.get("type") in _PATIENT_FACTS:
            clean["birth_year_month"] = _year_month_only(born)
        return clean
