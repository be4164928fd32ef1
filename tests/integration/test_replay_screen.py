"""The replay screen: quiet lab results, disease-activity scores, claims and infusions left in the log give
the same derived tables; the SQL that finds the labs selects exactly what the domain's band admits
(pvwatch.domain.engine.quiet_lab_bands, QuietBand.admits), the one that finds the scores none that a flare index
pairs (flare.FlareIndex), the one that finds infusions none that a rule reads.

The cohort plus every planted story (tests/scenarios: every rule fires, Hy's law and neutropenia among them), and
results placed on and either side of each band's bounds (CTCAE v5.0 and FDA DILI 2009 bounds, see
tests/unit/test_replay_screen_band.py), including a normal creatinine above 3 x a low first result.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import duckdb
import pytest

from pvwatch.cohort import generate_cohort
from pvwatch.domain import ctcae, flare
from pvwatch.domain.engine import (
    CTCAE_LAB,
    FLARE_AFTER_TAPER,
    HYS_LAW,
    UNDOCUMENTED_BENEFIT,
    flare_score_use,
    quiet_lab_bands,
)
from pvwatch.domain.hys_law import HysLawParameters
from pvwatch.domain.parameters import CtcaeLabParameters, RuleParameters
from pvwatch.domain.undocumented_benefit import benefit_is_undocumented
from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.codec import parse_event
from pvwatch.events.disease_activity import DiseaseActivityAssessed
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.infusion import MscInfusionGiven
from pvwatch.events.lab import LabResultReported
from pvwatch.events.outcome_claim import Direction, DocumentedMeasure, OutcomeClaimReported
from pvwatch.events.treatment import TreatmentStopped, TreatmentTapered
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.eventstore import EventStore
from pvwatch.store.replay import (
    quiet_claims_sql,
    quiet_infusions_sql,
    quiet_labs_sql,
    quiet_scores_sql,
    replay,
)
from tests.scenarios.stories import all_stories

pytestmark = pytest.mark.integration

T0 = datetime(2026, 4, 1, 8, tzinfo=UTC)
#: per LOINC code: unit, reference range, a first (baseline) value and the values placed around the bounds
BOUNDARY_LABS: dict[str, tuple[str, float, float, float, list[float]]] = {
    "751-8": ("10*9/L", 1.5, 8.0, 3.0, [1.0, math.nextafter(1.0, 0), 1.5, 0.4, 9.0]),
    "753-4": ("/uL", 1500, 8000, 3000, [1000, 999.9, 1500, 400]),
    "777-3": ("10*9/L", 150, 450, 250, [50, 49.99, 75, 20]),
    "718-7": ("g/dL", 11, 15, 13, [8.0, 7.99, 10, 6]),
    "1742-6": ("U/L", 5, 40, 20, [119.9, 120, 200, 200.1, 30]),
    "1920-8": ("U/L", 5, 40, 60, [119.9, 120, 130]),
    "1975-2": ("mg/dL", 0.1, 1.2, 0.5, [2.4, 2.41, 1.0]),
    "2160-0": ("mg/dL", 0.3, 0.7, 0.19, [0.5, 0.57, 0.58, 0.6, 2.1, 2.11]),
    "6768-6": ("U/L", 100, 300, 150, [599.9, 600, 200]),
}
PARAMETERS = {
    "rules.yaml": load_rule_parameters(),
    "grade-2-no-hys-law": replace(RuleParameters(), ctcae_lab=CtcaeLabParameters(alert_from_grade=2),
                                  disabled=frozenset({HYS_LAW})),
    "grade-1-wider-hys-law": replace(RuleParameters(), ctcae_lab=CtcaeLabParameters(alert_from_grade=1),
                                     hys_law=HysLawParameters(2.0, 1.5, 3.0, 14)),
    "no-ctcae": replace(RuleParameters(), disabled=frozenset({CTCAE_LAB})),
    "no-flare": replace(RuleParameters(), disabled=frozenset({FLARE_AFTER_TAPER})),
    "flare-window-30": replace(RuleParameters(), flare=flare.FlareParameters(window_days=30)),
    "no-undocumented-benefit": replace(RuleParameters(), disabled=frozenset({UNDOCUMENTED_BENEFIT})),
}


def lab(patient: str, code: str, value: float, days: float, unit: str, low: float | None, high: float | None,
        comparator: str | None = None) -> LabResultReported:
    at = T0 + timedelta(days=days)
    return LabResultReported(event_id=uuid4(), occurred_at=at, recorded_at=at + timedelta(hours=3), source="lab",
                             patient=patient, loinc_code=code, value=value, unit=unit, reference_low=low,
                             reference_high=high, comparator=comparator, specimen_at=at)


def boundary_labs() -> list[LabResultReported]:
    labs = []
    for n, (code, (unit, low, high, first, values)) in enumerate(BOUNDARY_LABS.items()):
        patient = f"pt-{n:020x}"
        labs.append(lab(patient, code, first, 0, unit, low, high))
        labs += [lab(patient, code, value, 1 + i, unit, low, high) for i, value in enumerate(values)]
        labs.append(lab(patient, code, first, 1, unit, low, high, comparator="<"))  # a comparator: never quiet
        labs.append(lab(patient, code, first, 2, unit, None, high))  # no LLN: never quiet
        labs.append(lab(patient, code, first, 0, unit, low, high))  # tied with the first: graded against ULN only
    labs.append(lab("pt-" + "f" * 20, "2345-7", 5.0, 1, "mmol/L", 3.9, 5.5))  # glucose: no rule reads it
    labs.append(lab("pt-" + "f" * 20, "2345-7", 5.0, 2, "mmol/L", 3.9, 5.5))
    return labs


def boundary_scores() -> list[DiseaseActivityAssessed | TreatmentTapered | TreatmentStopped]:
    """SLEDAI-2K around a taper (rise >= 3 is a SELENA flare): baselines before, on and after it, later scores on
    the 30- and 90-day window edges and an hour and two days past them; a stop with no score after it."""
    patient, taper_at = "pt-" + "e" * 20, T0 + timedelta(days=200)
    taper = TreatmentTapered(event_id=uuid4(), occurred_at=taper_at, recorded_at=taper_at, source="ehr",
                             patient=patient, drug="methotrexate", drug_class="csDMARD", dose=10, dose_unit="mg")
    stop_at = taper_at + timedelta(days=400)
    stop = TreatmentStopped(event_id=uuid4(), occurred_at=stop_at, recorded_at=stop_at, source="ehr", patient=patient,
                            drug="prednisolone", drug_class="glucocorticoid")
    offsets = [-20, -5, 0, 0.5, 30, 30 + 1 / 24, 32, 90, 90 + 1 / 24, 92, 300, 399, 400]
    scores = [DiseaseActivityAssessed(event_id=uuid4(), occurred_at=taper_at + timedelta(days=d),
                                      recorded_at=taper_at + timedelta(days=d), source="ehr", patient=patient,
                                      instrument="SLEDAI-2K", score=2.0 if d <= 0 else 6.0 + n,
                                      assessed_by="clinician", documented=True)
              for n, d in enumerate(offsets)]
    return [taper, stop, *scores]


def boundary_claims() -> list[OutcomeClaimReported]:
    """A parent's "better" with no measure (undocumented-benefit alerts), the same with a named measure, with a
    measure pointing at its event, with a name of punctuation only (no alert; the screen keeps it), and claims that
    something worsened or did not change (no benefit claimed)."""
    patient, at = "pt-" + "9" * 20, T0 + timedelta(days=30)
    forms = [(Direction.IMPROVED, None), (Direction.IMPROVED, DocumentedMeasure(name="SLEDAI-2K", before=12, after=4)),
             (Direction.IMPROVED, DocumentedMeasure(name="JADAS10", evidence_event_id=uuid4())),
             (Direction.IMPROVED, DocumentedMeasure(name="-")), (Direction.WORSENED, None), (Direction.UNCHANGED, None)]
    return [OutcomeClaimReported(event_id=uuid4(), occurred_at=at + timedelta(days=n),
                                 recorded_at=at + timedelta(days=n), source="parent-app", patient=patient,
                                 what="energy", direction=direction, claimed_by="parent", attributed_to="MSC",
                                 documented_measure=measure)
            for n, (direction, measure) in enumerate(forms)]


@pytest.fixture(scope="module")
def log(tmp_path_factory, demo_pseudonymiser_module) -> tuple[Path, list[EventEnvelope]]:
    events = [parse_event(demo_pseudonymiser_module.pseudonymise_record(r)) for r in generate_cohort(40, seed=21)]
    events += [event for story in all_stories() for event in story.events]
    events += boundary_labs()
    events += boundary_scores()
    events += boundary_claims()
    path = tmp_path_factory.mktemp("screen") / "log.duckdb"
    store = EventStore(path)
    try:
        with store.transaction():
            store.insert_events([(e, None) for e in events], datetime.now(UTC))
    finally:
        store.close()
    return path, events


@pytest.fixture(scope="module")
def demo_pseudonymiser_module():
    from pvwatch.pseudonym import Pseudonymiser
    return Pseudonymiser.from_secret(None, demo_mode=True)


def event_ids(path: Path, query: str) -> set[UUID]:
    """The event ids a screen query selects from the log at `path`."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {row[0] for row in con.execute(query).fetchall()}
    finally:
        con.close()


def admitted_by_the_band(events: list[EventEnvelope], parameters: RuleParameters) -> set[UUID]:
    """The lab results QuietBand.admits, each against the first result of its kind (replay order) as baseline;
    where that first result is the baseline the later ones are graded against (QuietBand.first_is_baseline), it
    only when every result of its kind is admitted: then no later result is graded and nothing reads it."""
    bands = quiet_lab_bands(parameters)
    labs = sorted((e for e in events if isinstance(e, LabResultReported)),
                  key=lambda e: (e.occurred_at, e.event_id.int))
    kinds: dict[tuple[str, str, str], list[LabResultReported]] = {}
    for result in labs:
        kinds.setdefault((result.patient, result.loinc_code, result.unit), []).append(result)
    found = set()
    for (_, code, _), results in kinds.items():
        band = bands.get(code)
        if band is None:
            continue
        first = results[0]
        admitted = {result.event_id for result in results
                    if band.admits(ctcae.LOINC_ANALYTES[code], result.value, result.unit, result.reference_low,
                                   result.reference_high, first.value, result.comparator)}
        if band.first_is_baseline and len(admitted) < len(results):
            admitted.discard(first.event_id)
        found |= admitted
    return found


@pytest.mark.parametrize("name", PARAMETERS)
def test_the_sql_screen_selects_exactly_what_the_band_admits(log, name):
    path, events = log
    query = quiet_labs_sql(quiet_lab_bands(PARAMETERS[name]))
    assert query is not None
    selected = event_ids(path, query)
    expected = admitted_by_the_band(events, PARAMETERS[name])
    assert selected == expected
    assert len(expected) > 1000, "the cohort's labs are mostly quiet: the screen must find them"


def used_by_a_flare_index(events: list[EventEnvelope], window_days: int) -> set[UUID]:
    """Every score some taper or stop pairs, as baseline or later score (FlareIndex.after_taper), whatever the drug
    class: what the screen must never leave out."""
    indexes: dict[str, flare.FlareIndex] = {}
    tapers = []
    for event in events:
        index = indexes.setdefault(event.patient, flare.FlareIndex(timedelta(days=window_days)))
        if isinstance(event, DiseaseActivityAssessed) and event.instrument.value in flare.INSTRUMENTS:
            index.add_score(flare.ActivityScore(event.event_id, event.instrument.value, event.score, event.occurred_at,
                                                event.assessed_by.value))
        elif isinstance(event, TreatmentTapered | TreatmentStopped):
            taper = flare.Taper(event.event_id, event.drug, event.occurred_at, isinstance(event, TreatmentStopped))
            index.add_taper(taper)
            tapers.append((event.patient, taper))
    return {score.event_id for patient, taper in tapers for _, baseline, after in indexes[patient].after_taper(taper)
            for score in (baseline, after)}


@pytest.mark.parametrize("name", PARAMETERS)
def test_the_sql_screen_leaves_in_every_score_a_flare_index_pairs(log, name):
    path, events = log
    parameters = PARAMETERS[name]
    screened = event_ids(path, quiet_scores_sql(flare_score_use(parameters)))
    scores = {e.event_id for e in events if isinstance(e, DiseaseActivityAssessed)}
    if not parameters.enabled(FLARE_AFTER_TAPER):
        assert screened == scores  # no rule reads a score
        return
    used = used_by_a_flare_index(events, parameters.flare.window_days)
    assert used, "the log must pair scores"
    assert not used & screened
    assert len(screened) > len(scores) / 3, "most scores are far from any taper or of an instrument no index reads"
    planted = {(e.occurred_at - T0) / timedelta(days=1) - 200: e.event_id for e in events
               if isinstance(e, DiseaseActivityAssessed) and e.patient == "pt-" + "e" * 20}
    assert {planted[0], planted[30], planted[400]}.isdisjoint(screened)  # baselines on the taper and stop; day 30
    assert {planted[-20], planted[-5], planted[300]} <= screened  # superseded baselines; far from both


@pytest.mark.parametrize("name", PARAMETERS)
def test_the_sql_screen_leaves_in_every_claim_undocumented_benefit_alerts_on(log, name):
    """The planted claims: the screen leaves out the named measure, the measure with its event, the worsened and the
    unchanged; it keeps the undocumented "better" (it alerts) and, narrower than the rule, the measure named "-"."""
    path, events = log
    parameters = PARAMETERS[name]
    screened = event_ids(path, quiet_claims_sql(parameters.enabled(UNDOCUMENTED_BENEFIT)))
    claims = {e.event_id: e for e in events if isinstance(e, OutcomeClaimReported)}
    if not parameters.enabled(UNDOCUMENTED_BENEFIT):
        assert screened == set(claims)  # no rule reads a claim
        return
    measures = {i: c.documented_measure for i, c in claims.items()}
    alerting = {i for i, c in claims.items() if c.direction is Direction.IMPROVED and benefit_is_undocumented(
        measures[i] and measures[i].name, measures[i] and measures[i].evidence_event_id)}
    assert alerting and not alerting & screened
    planted = sorted((c for c in claims.values() if c.patient == "pt-" + "9" * 20), key=lambda c: c.occurred_at)
    assert screened & {c.event_id for c in planted} == {planted[i].event_id for i in (1, 2, 4, 5)}
    assert len(screened) > len(claims) / 3, "most of the cohort's claims are documented or claim no benefit"


@pytest.mark.parametrize("name", ["rules.yaml", "no-undocumented-benefit"])
def test_the_sql_screen_leaves_out_only_infusions_no_rule_reads(log, name):
    """An infusion is left out only when its patient has no adverse event on record (nothing for infusion-temporal
    to link or lot-cluster to attribute) and undocumented-benefit cannot alert on it (lot and cell dose recorded,
    MscInfusionGiven.missing_documentation, or the rule off); the cohort has infusions of each kind."""
    path, events = log
    parameters = PARAMETERS[name]
    screened = event_ids(path, quiet_infusions_sql(parameters.enabled(UNDOCUMENTED_BENEFIT)))
    with_adverse_events = {e.patient for e in events if isinstance(e, AdverseEventReported)}
    infusions = [e for e in events if isinstance(e, MscInfusionGiven)]
    unread = {e.event_id for e in infusions if e.patient not in with_adverse_events and not (
        parameters.enabled(UNDOCUMENTED_BENEFIT) and e.incompletely_documented)}
    assert screened == unread
    assert any(e.patient in with_adverse_events for e in infusions), "the cohort links infusions to adverse events"
    assert any(e.incompletely_documented and e.patient not in with_adverse_events for e in infusions)
    assert unread


def tables(path: Path) -> tuple[list[tuple], list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        alerts = con.execute("""SELECT alert_id, rule_id, rule_version, severity, patient, case_id, evidence_event_ids,
                                       occurred_at, summary, details FROM alerts ORDER BY alert_id""").fetchall()
        clocks = con.execute("SELECT * FROM expedited_reports ORDER BY case_id, category").fetchall()
    finally:
        con.close()
    return alerts, clocks


@pytest.mark.parametrize("name", PARAMETERS)
def test_replay_with_the_screen_derives_the_same_tables_as_without(log, name, tmp_path):
    path, events = log
    parameters = PARAMETERS[name]
    derived = {}
    for screen in (False, True):
        for processes in (1, 2):
            copy = tmp_path / f"{screen}-{processes}.duckdb"
            copy.write_bytes(path.read_bytes())
            report = replay(copy, parameters=parameters, processes=processes, screen=screen)
            assert report.events == len(events)
            derived[(screen, processes)] = tables(copy)
    unscreened = derived[(False, 1)]
    assert {rule for _, rule, *_ in unscreened[0]} >= {"ctcae-lab", "serious-ae", "expedited-clock", "lot-cluster",
                                                       "flare-after-taper"} - parameters.disabled
    assert unscreened[1], "the cohort starts expedited clocks"
    for key, found in derived.items():
        assert found == unscreened, key


def test_the_boundary_labs_raise_what_the_rules_say(log):
    """Without the screen and with it: ANC just below 1.0 (grade 3), ALT 200.1 U/L (> 5 x ULN), and the normal
    creatinines above 3 x the 0.19 mg/dL first result (0.58, 0.6) raise ctcae-lab; 0.57 (exactly 3 x) does not."""
    path, events = log
    boundary = {(e.loinc_code, e.value) for e in events if isinstance(e, LabResultReported)
                and e.patient.startswith("pt-0000")}
    assert ("2160-0", 0.58) in boundary
    copy = path.with_name("boundary.duckdb")
    copy.write_bytes(path.read_bytes())
    replay(copy)
    con = duckdb.connect(str(copy), read_only=True)
    try:
        graded = set(con.execute("""SELECT details->>'loinc_code', (details->>'value')::DOUBLE FROM alerts
                                    WHERE rule_id = 'ctcae-lab' AND patient LIKE 'pt-0000%'""").fetchall())
    finally:
        con.close()
    assert {("751-8", math.nextafter(1.0, 0)), ("1742-6", 200.1), ("2160-0", 0.58), ("2160-0", 0.6),
            ("2160-0", 2.11)} <= graded
    assert ("2160-0", 0.57) not in graded and ("1742-6", 200.0) not in graded and ("751-8", 1.0) not in graded


def test_a_result_stored_with_a_padded_code_does_not_move_the_baseline(tmp_path):
    """The live path stores payloads as received and validation strips whitespace, so " 2160-0" is the engine's
    creatinine while the raw strings differ: the screen must not take a later result for this patient's baseline
    (a review found replay with the screen losing the second grade-3 alert here)."""
    patient = "pt-" + "c" * 20
    results = [lab(patient, "2160-0", 0.19, 0, "mg/dL", 0.3, 0.7),  # the baseline, sent as " 2160-0"
               lab(patient, "2160-0", 0.6, 1, "mg/dL", 0.3, 0.7),  # 3.2 x baseline: grade 3 (CTCAE v5.0)
               lab(patient, "2160-0", 0.6, 2, "mg/dL", 0.3, 0.7)]
    raw = results[0].model_dump_json().replace('"loinc_code":"2160-0"', '"loinc_code":" 2160-0"').encode()
    assert b'" 2160-0"' in raw and LabResultReported.model_validate_json(raw).loinc_code == "2160-0"
    alerts = {}
    for screen in (False, True):
        path = tmp_path / f"screen-{screen}.duckdb"
        store = EventStore(path)
        with store.transaction():
            store.insert_events([(e, None) for e in results], datetime.now(UTC), [raw, None, None])
        store.close()
        replay(path, processes=1, screen=screen)
        con = duckdb.connect(str(path), read_only=True)
        alerts[screen] = con.execute("SELECT alert_id FROM alerts WHERE rule_id = 'ctcae-lab' ORDER BY 1").fetchall()
        con.close()
    assert len(alerts[False]) == 2
    assert alerts[True] == alerts[False]


def test_a_baseline_is_left_out_only_with_every_result_graded_against_it(tmp_path):
    """CTCAE v5.0 grades ALT against the baseline only when the baseline is abnormal, and every multiple of ULN
    below 3 is quiet (tests/unit/test_replay_screen_band.py): a patient whose ALT results are all below 3 x ULN
    has none the rules read, baseline included; one result at 3.25 x ULN keeps the first as its baseline. A
    creatinine first result of 0.19 mg/dL makes a later normal 0.6 mg/dL grade 3 (> 3 x baseline): kept."""
    quiet_alt = [lab("pt-" + "a" * 20, "1742-6", value, day, "U/L", 5, 40) for day, value in enumerate((20, 30, 90))]
    heard_alt = [lab("pt-" + "b" * 20, "1742-6", value, day, "U/L", 5, 40) for day, value in enumerate((20, 130))]
    creatinine = [lab("pt-" + "d" * 20, "2160-0", value, day, "mg/dL", 0.3, 0.7)
                  for day, value in enumerate((0.19, 0.6))]
    path = tmp_path / "baselines.duckdb"
    store = EventStore(path)
    with store.transaction():
        store.insert_events([(e, None) for e in quiet_alt + heard_alt + creatinine], datetime.now(UTC))
    store.close()
    query = quiet_labs_sql(quiet_lab_bands(load_rule_parameters()))
    assert query is not None
    con = duckdb.connect(str(path), read_only=True)
    try:
        screened = {row[0] for row in con.execute(query).fetchall()}
    finally:
        con.close()
    assert screened == {e.event_id for e in quiet_alt}
    replay(path, processes=1)
    con = duckdb.connect(str(path), read_only=True)
    try:
        graded = con.execute("SELECT evidence_event_ids FROM alerts WHERE rule_id = 'ctcae-lab'").fetchall()
    finally:
        con.close()
    assert graded == [([creatinine[1].event_id],)]
