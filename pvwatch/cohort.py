"""A deterministic synthetic cohort for the demo and the tests (no real patient is described).

Children with SLE, MCTD or JIA; adverse event reports, a few of them serious (ICH E2A criteria). Records
carry a raw-looking `patient_ref` (a synthetic MRN) so that every run exercises pseudonymisation at the edge.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_SITES = ("site-lyon", "site-porto", "site-tallinn")
_NON_SERIOUS_TERMS = ("Pyrexia", "Headache", "Rash", "Nausea", "Fatigue", "Arthralgia", "Injection site reaction")
_SERIOUS = (
    ("Pulmonary embolism", {"hospitalisation": True, "life_threatening": True}),
    ("Sepsis", {"hospitalisation": True}),
    ("Febrile neutropenia", {"hospitalisation": True, "medically_important": True}),
)
_PRODUCTS = ("Methotrexate", "Hydroxychloroquine", "Tocilizumab", "Tofacitinib", "UC-MSC (clinic-made)")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate_cohort(patients: int, seed: int = 7, *, serious_every: int = 10) -> Iterator[dict[str, Any]]:
    """Yield wire records (JSON objects), every `serious_every`-th adverse event serious."""
    rng = random.Random(seed)
    report_number = 0
    for index in range(patients):
        mrn = f"MRN-{seed:03d}-{index:06d}"
        for _ in range(rng.randint(1, 3)):
            report_number += 1
            onset = _EPOCH + timedelta(days=rng.randint(0, 300), hours=rng.randint(0, 23))
            aware = onset + timedelta(days=rng.randint(0, 3))
            serious = report_number % serious_every == 0
            term, criteria = _SERIOUS[report_number % len(_SERIOUS)] if serious else (
                rng.choice(_NON_SERIOUS_TERMS), {})
            yield {
                "event_id": _uuid(rng),
                "type": "adverse-event",
                "occurred_at": onset.isoformat(),
                "recorded_at": (aware + timedelta(hours=2)).isoformat(),
                "source": rng.choice(_SITES),
                "patient_ref": mrn,
                "case_id": f"CASE-{seed}-{report_number:06d}",
                "reporter_type": rng.choice(("parent", "clinician")),
                "awareness_date": aware.date().isoformat(),
                "onset_date": onset.date().isoformat(),
                "term": term,
                "seriousness": criteria,
                "outcome": "recovering" if serious else "recovered",
                "products": [{"name": rng.choice(_PRODUCTS), "role": "suspect", "causality": "possible"}],
            }
