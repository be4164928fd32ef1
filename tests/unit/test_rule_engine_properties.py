"""No valid event crashes the rule engine: labs with any value, range, unit, comparator and LOINC code the
engine grades; scores, tapers, infusions and reports in any order (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from pvwatch.domain.ctcae import LOINC_ANALYTES
from pvwatch.domain.engine import SafetyEngine
from pvwatch.events import (
    AdverseEventReported,
    DiseaseActivityAssessed,
    LabResultReported,
    MscInfusionGiven,
    TreatmentTapered,
)
from pvwatch.rulebook import load_rule_parameters

PARAMETERS = load_rule_parameters()
PATIENT = "pt-" + "9" * 20
T0 = datetime(2026, 1, 1, tzinfo=UTC)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
moment = st.integers(min_value=0, max_value=400 * 24).map(lambda h: T0 + timedelta(hours=h))


def envelope(at: datetime) -> dict[str, object]:
    return {"event_id": uuid4(), "occurred_at": at, "recorded_at": at + timedelta(hours=2), "source": "property",
            "patient": PATIENT}


@st.composite
def lab(draw: st.DrawFn) -> LabResultReported:
    at = draw(moment)
    low, high = draw(st.none() | finite), draw(st.none() | finite)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return LabResultReported(
        **envelope(at), loinc_code=draw(st.sampled_from(sorted(LOINC_ANALYTES))), value=draw(finite),
        unit=draw(st.sampled_from(["10*9/L", "/uL", "g/L", "g/dL", "U/L", "umol/L", "mmol/L"])),
        comparator=draw(st.none() | st.sampled_from(["<", ">"])), reference_low=low, reference_high=high,
        specimen_at=at)


@st.composite
def other(draw: st.DrawFn):
    at = draw(moment)
    kind = draw(st.sampled_from(["score", "taper", "infusion", "ae"]))
    if kind == "score":
        instrument = draw(st.sampled_from(["SLEDAI-2K", "JADAS10", "cJADAS10"]))
        score = float(draw(st.integers(0, 30)))
        return DiseaseActivityAssessed(**envelope(at), instrument=instrument, score=score, assessed_by="clinician",
                                       documented=True)
    if kind == "taper":
        return TreatmentTapered(**envelope(at), drug="methotrexate", drug_class="csDMARD", dose=10, dose_unit="mg")
    if kind == "infusion":
        return MscInfusionGiven(**envelope(at), clinic=draw(st.sampled_from(["c1", "c2"])),
                                lot_id=draw(st.none() | st.sampled_from(["L1", "L2"])))
    serious = draw(st.booleans())
    return AdverseEventReported(
        **envelope(at), case_id=f"C-{draw(st.integers(1, 4))}", reporter_type=draw(st.sampled_from(["parent", "lab"])),
        reporter=draw(st.none() | st.sampled_from(["rp-" + "1" * 20, "rp-" + "2" * 20])),
        awareness_date=at.date(), onset_date=at.date() - timedelta(days=draw(st.integers(0, 3))),
        term=draw(st.sampled_from(["Pyrexia", "Pulmonary embolism", "Rash", "Sepsis"])),
        seriousness={"death": serious, "hospitalisation": serious}, outcome="fatal" if serious else "unknown",
        products=[{"name": draw(st.sampled_from(["UC-MSC", "tocilizumab"])), "role": "suspect"}])


@settings(max_examples=150, deadline=None)
@given(st.lists(lab() | other(), min_size=1, max_size=25), st.integers(1, 5))
def test_no_event_sequence_crashes_the_engine(events, batch):
    engine = SafetyEngine(PARAMETERS)
    now = datetime(2027, 1, 1, tzinfo=UTC)
    for start in range(0, len(events), batch):
        for alert in engine.apply(events[start:start + batch], now).alerts:
            assert alert.patient == PATIENT and alert.evidence_event_ids
    engine.clock_alerts(now)
