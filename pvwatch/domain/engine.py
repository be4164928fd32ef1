"""The rule engine: patient histories in, alerts and expedited-report clocks out. The live worker and
`pvwatch replay` both use it.

`SafetyEngine.apply` takes newly stored events, adds them to the histories and runs the rules that read each
event type; rules are pure functions of (new event, patient history, parameters), parameters come from
pvwatch/rules.yaml. Because alert ids are derived from the evidence (rule, version, what the alert is about),
the same log yields the same alerts whether it arrives live, late, out of order or is replayed in bulk.
Time-driven alerts (`expedited-due-soon`, `expedited-overdue`) come from `clock_alerts(now)`, called on a timer
by the worker and once at the end of a replay; their occurred_at is the deadline instant, not the call time.

Some alerts stand on the absence of something (WITHDRAWABLE_RULES: no cholestatic ALP near a Hy's law pair, no
later score before a taper than a flare's baseline, no submission before a clock's deadline). An event that
arrives late can remove that absence after the alert was raised; the engine then withdraws the alert
(`EngineOutput.withdrawn`), so the standing alerts are a function of the set of events whatever their arrival order,
and live and replay agree (docs/rules.md, "Late and out-of-order events").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from pvwatch.domain import (
    ctcae,
    duplicate_case,
    expedited,
    flare,
    hys_law,
    infusion_temporal,
    lot_cluster,
    serious_ae,
    undocumented_benefit,
)
from pvwatch.domain.expectedness import unexpected_suspects
from pvwatch.domain.history import History, PatientHistory
from pvwatch.domain.parameters import RuleParameters
from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.alert import AlertDetail, AlertWithdrawal, SafetyAlert, Severity, alert_id_for
from pvwatch.events.disease_activity import DiseaseActivityAssessed, Instrument
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.infusion import MscInfusionGiven
from pvwatch.events.lab import LabResultReported
from pvwatch.events.outcome_claim import OutcomeClaimReported
from pvwatch.events.patient import PatientEnrolled, PatientUpdated
from pvwatch.events.report_submission import ExpeditedReportSubmitted
from pvwatch.events.treatment import TreatmentStopped, TreatmentTapered

CTCAE_LAB = "ctcae-lab"
HYS_LAW = "hys-law"
EXPEDITED_CLOCK = "expedited-clock"
EXPEDITED_DUE_SOON = "expedited-due-soon"
EXPEDITED_OVERDUE = "expedited-overdue"
INFUSION_TEMPORAL = "infusion-temporal"
LOT_CLUSTER = "lot-cluster"
FLARE_AFTER_TAPER = "flare-after-taper"
UNDOCUMENTED_BENEFIT = "undocumented-benefit"

RULE_IDS: tuple[str, ...] = (
    serious_ae.RULE_ID, duplicate_case.RULE_ID, CTCAE_LAB, HYS_LAW, EXPEDITED_CLOCK, EXPEDITED_DUE_SOON,
    EXPEDITED_OVERDUE, INFUSION_TEMPORAL, LOT_CLUSTER, FLARE_AFTER_TAPER, UNDOCUMENTED_BENEFIT,
)

#: Rules whose alerts need the absence of an event, so that a late event can make a raised alert untrue: the engine
#: withdraws it (hys-law: an ALP >= 2 x ULN near the pair; flare-after-taper: a later baseline score before the
#: taper, or the diagnoses as last recorded; due-soon/overdue: a submission dated before the crossing).
#: expedited-clock: a 15-day clock a fatal or life-threatening version of the case, arriving late, covers.
#: ctcae-lab: a grade read against ULN that a late first result (an abnormal baseline, CTCAE v5.0) lowers.
WITHDRAWABLE_RULES: frozenset[str] = frozenset({CTCAE_LAB, HYS_LAW, FLARE_AFTER_TAPER, EXPEDITED_CLOCK,
                                                EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE})
#: The withdrawable rules whose standing alerts the engine keeps by id (an expedited-clock alert stands while its
#: clock is in `SafetyEngine.clocks`: nothing to keep, nothing to pay per adverse event).
_HELD_RULES = WITHDRAWABLE_RULES - {EXPEDITED_CLOCK}
_OTHER_SERIOUS = expedited.ClockCategory.OTHER_SERIOUS

LIVER = frozenset({ctcae.Analyte.ALT, ctcae.Analyte.AST, ctcae.Analyte.BILIRUBIN, ctcae.Analyte.ALP})

#: The event types some rule reads, as they arrive or from a patient's history. The others (treatment starts and
#: dose changes, alert actions) feed projections and the audit trail only, so a bulk path (replay) leaves them out
#: of the engine and derives the same alerts and clocks (tests/unit/test_rule_engine_inputs.py).
RULE_INPUT_TYPES: frozenset[str] = frozenset({
    "patient-enrolled", "patient-updated",  # flare-after-taper: the diagnoses
    "treatment-tapered", "treatment-stopped", "disease-activity",  # flare-after-taper
    "msc-infusion",  # infusion-temporal, lot-cluster, undocumented-benefit
    "adverse-event", "report-submitted",  # serious-ae, duplicate-case, expedited-clock, infusion-temporal, lot-cluster
    "lab-result",  # ctcae-lab, hys-law
    "outcome-claim",  # undocumented-benefit
})


def quiet_lab_bands(p: RuleParameters) -> dict[str, ctcae.QuietBand]:
    """Per LOINC code, the lab results no rule can use (ctcae-lab grades them below its alert grade whatever the
    baseline, hys-law can make neither a pair nor an exclusion of them), the replay screen's definition.

    A quiet result changes no alert, clock or later evaluation: the engine reads a patient's labs back only in
    `_to_grade` (when the first of a kind arrives late: a replay reads in order), in `_liver_results` (Hy's law
    pairs and exclusions) and as the CTCAE baseline (`_first_labs`, read for ctcae.BASELINE_GRADED analytes only:
    their first result is never quiet); no other rule reads lab results. A disabled rule only widens the band;
    codes missing here are never quiet."""
    bands: dict[str, ctcae.QuietBand] = {}
    for code, analyte in ctcae.LOINC_ANALYTES.items():
        band = ctcae.QuietBand()
        if analyte is not ctcae.Analyte.ALP and p.enabled(CTCAE_LAB):  # as _evaluate_lab
            band = ctcae.QuietBand(first_is_baseline=analyte in ctcae.BASELINE_GRADED)
            graded = ctcae.quiet_band(analyte, p.ctcae_lab.alert_from_grade)
            if graded is None:
                continue  # every grade alerts: no result is quiet
            band &= graded
        if analyte in LIVER and p.enabled(HYS_LAW):
            band &= hys_law.quiet_band(analyte, p.hys_law)
        bands[code] = band
    return bands


@dataclass(frozen=True)
class FlareScoreUse:
    """Which disease-activity scores flare-after-taper can use (the replay screen's definition for scores): one of
    `instruments` that is, for a taper or stop of the patient, the latest score of its kind (instrument, assessor)
    at or before it (the baseline) or a score within `window` after it (FlareIndex's triples). A score that is
    neither takes part in no flare and changes no other score's role (each baseline stays the latest of its
    kind); no other rule reads scores. `other_instruments`: the instruments whose scores are never used."""

    instruments: frozenset[str]
    other_instruments: frozenset[str]
    window: timedelta


def flare_score_use(p: RuleParameters) -> FlareScoreUse:
    """The scores flare-after-taper can use under `p`: none when the rule is disabled."""
    read = flare.INSTRUMENTS if p.enabled(FLARE_AFTER_TAPER) else frozenset()
    return FlareScoreUse(read, frozenset(i.value for i in Instrument) - read, timedelta(days=p.flare.window_days))


@dataclass(frozen=True)
class ClockRow:
    """An expedited-report clock with the patient it belongs to (the `expedited_reports` row)."""

    patient: str
    clock: expedited.ExpeditedClock


@dataclass
class EngineOutput:
    alerts: list[SafetyAlert] = field(default_factory=list)
    evaluations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULE_IDS, 0))
    #: clocks started or changed by this batch (upsert into expedited_reports)
    clocks: dict[tuple[str, str], ClockRow] = field(default_factory=dict)
    #: clocks the case's versions no longer start (delete from expedited_reports): a 15-day clock that a fatal or
    #: life-threatening version with an earlier or equal day 0, arriving late, covers
    removed_clocks: dict[tuple[str, str], ClockRow] = field(default_factory=dict)
    #: alerts standing before this call that its events made untrue: alert id -> why and which event (delete them
    #: from `alerts` and publish the withdrawal). An alert raised and made untrue within the call is in neither list
    #: (but an expedited-clock alert of a clock removed in the call is listed: the writer then finds no row).
    withdrawn: dict[UUID, AlertWithdrawal] = field(default_factory=dict)
    #: bookkeeping of the call: ids that began to stand in it, ids withdrawn in it (see SafetyEngine._withdraw)
    _stood: set[UUID] = field(default_factory=set, repr=False)
    _unstood: set[UUID] = field(default_factory=set, repr=False)


class SafetyEngine:
    def __init__(self, parameters: RuleParameters | None = None) -> None:
        self.p = parameters or RuleParameters()
        self.history = History()
        self.clocks: dict[tuple[str, str], ClockRow] = {}
        #: patient -> the (scope, lot or clinic) they received an infusion from (lot clusters cross patients)
        self._infused_from: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._emitted: dict[UUID, tuple[object, ...]] = {}
        #: (scope, key) -> patient -> their adverse events attributed to it (patients with none left out)
        self._attributions: dict[tuple[str, str], dict[str, list[tuple[lot_cluster.AttributedEvent,
                                                                       AdverseEventReported]]]] = defaultdict(dict)
        #: (scope, key) -> patients whose attributions to it changed since they were last computed
        self._stale: dict[tuple[str, str], set[str]] = defaultdict(set)
        #: patient -> diagnoses as last recorded (flare-after-taper reads them for every score near a taper)
        self._diagnoses: dict[str, list[str]] = {}
        #: patient -> their tapers and scores for flare-after-taper, and event id -> (the rule's fact, the event)
        self._flare_indexes: dict[str, flare.FlareIndex] = {}
        self._flare_inputs: dict[UUID, tuple[flare.Taper | flare.ActivityScore, EventEnvelope]] = {}
        #: (patient, LOINC code, unit) -> the first result in occurred_at order: CTCAE's baseline for the later ones
        self._first_labs: dict[tuple[str, str, str], LabResultReported] = {}
        #: case id -> the patient whose case it is: clocks and case alerts are keyed on the case id alone, so the
        #: live path refuses another patient's report under it (streams/pipeline.py, dead letter `case_conflict`)
        self._case_patients: dict[str, str] = {}
        #: (patient, rule) -> ids of the standing alerts of WITHDRAWABLE_RULES: raised by this engine and not
        #: withdrawn, or (a worker starting) stored (`remember_alerts`)
        self._standing: dict[tuple[str, str], set[UUID]] = defaultdict(set)

    # --- loading and applying ---------------------------------------------------------------------------------

    def remember(self, events: Iterable[EventEnvelope]) -> None:
        """Load history without evaluating (worker start-up: these events were evaluated before)."""
        touched: set[tuple[str, str]] = set()
        for event in events:
            self.history.add(event)
            self._index(event)
            if isinstance(event, AdverseEventReported | ExpeditedReportSubmitted):
                touched.add((event.patient, event.case_id))
        for pseudonym, case_id in touched:
            self._recompute_clocks(self.history.patient(pseudonym), case_id)

    def remember_alerts(self, stored: Iterable[tuple[UUID, str, int, str]]) -> None:
        """Stored alerts (alert id, rule, rule version, patient) as standing (worker start-up), so that a late event
        can withdraw an alert raised before the restart. Only the current version's: replay derives no other."""
        for alert_id, rule_id, version, patient in stored:
            if rule_id in _HELD_RULES and version == self.p.version(rule_id):
                self._standing[(patient, rule_id)].add(alert_id)

    def standing(self, alerts: Iterable[SafetyAlert]) -> list[SafetyAlert]:
        """`alerts`, derivations gathered over several `apply` calls (replay), without those withdrawn since."""
        held, clocks = self._standing, self.clocks
        return [alert for alert in alerts if alert.rule_id not in WITHDRAWABLE_RULES
                or alert.alert_id in held.get((alert.patient, alert.rule_id), ())
                or (alert.rule_id == EXPEDITED_CLOCK and (alert.case_id, alert.details["category"]) in clocks)]

    def _stand(self, alert: SafetyAlert, output: EngineOutput | None) -> None:
        """`alert` (of WITHDRAWABLE_RULES) is supported by the events seen: it stands."""
        standing = self._standing[(alert.patient, alert.rule_id)]
        if alert.alert_id in standing:
            return
        standing.add(alert.alert_id)
        if output is not None and output.withdrawn.pop(alert.alert_id, None) is None:
            output._stood.add(alert.alert_id)  # not withdrawn earlier in this call: it begins to stand in it

    def _withdraw(self, alert_id: UUID, rule_id: str, patient: str, reason: str, event_id: UUID, now: datetime,
                  output: EngineOutput) -> None:
        """`alert_id`, if it stands, is no longer supported by the events seen: it is withdrawn."""
        standing = self._standing.get((patient, rule_id))
        if standing is None or alert_id not in standing:
            return
        standing.discard(alert_id)
        self._emitted.pop(alert_id, None)  # derived again later (a flare's baseline changes back): news again
        output._unstood.add(alert_id)
        if alert_id in output._stood:
            output._stood.discard(alert_id)  # raised and made untrue in this call: never stored, nothing to say
        else:
            output.withdrawn[alert_id] = AlertWithdrawal(reason=reason[:300], event_id=event_id, withdrawn_at=now)

    def apply(self, events: Iterable[EventEnvelope], now: datetime, *, in_order: bool = False) -> EngineOutput:
        """Evaluate `events` in (occurred_at, event id) order; `in_order`: they come in that order already (replay
        reads the log so: ORDER BY occurred_at, event_id, and DuckDB orders UUIDs as their integers), no sort."""
        output = EngineOutput()
        # a UUID's .int orders as the UUID does
        ordered = events if in_order else sorted(events, key=lambda e: (e.occurred_at, e.event_id.int))
        add, index, evaluate = self.history.add, self._index, self._evaluate
        for event in ordered:
            patient = add(event)
            index(event)
            evaluate(event, patient, now, output)
        if output.clocks:
            self._withdraw_clock_alerts(output.clocks.values(), now, output)
        if output.removed_clocks:
            self._withdraw_removed_clocks(output, now)
        if output._unstood:  # derivations of alerts withdrawn in this call (and not raised again) are not news
            held = self._standing
            output.alerts = [alert for alert in output.alerts if alert.alert_id not in output._unstood
                             or alert.alert_id in held.get((alert.patient, alert.rule_id), ())]
        output.alerts = self._changed(output.alerts)
        return output

    def _changed(self, alerts: list[SafetyAlert]) -> list[SafetyAlert]:
        """Drop re-derivations identical to what this engine last emitted for the same alert id (rules re-derive
        an alert whenever related evidence arrives; only a changed derivation is news for the store)."""
        fresh = []
        for alert in alerts:
            content = (alert.evidence_event_ids, alert.summary, alert.severity, alert.patient, alert.case_id,
                       alert.occurred_at, repr(alert.details))
            if self._emitted.get(alert.alert_id) != content:
                self._emitted[alert.alert_id] = content
                fresh.append(alert)
        return fresh

    def _index(self, event: EventEnvelope) -> None:
        if isinstance(event, LabResultReported):
            kind = (event.patient, event.loinc_code, event.unit)
            first = self._first_labs.get(kind)
            # the history's order: occurred_at, then the event id (the same event again changes nothing)
            if first is None or (event.occurred_at, event.event_id.int) < (first.occurred_at, first.event_id.int):
                self._first_labs[kind] = event
            return
        if isinstance(event, DiseaseActivityAssessed | TreatmentTapered | TreatmentStopped):
            self._index_flare_input(event)
            return
        if isinstance(event, AdverseEventReported | ExpeditedReportSubmitted):
            self._case_patients.setdefault(event.case_id, event.patient)
        if isinstance(event, PatientEnrolled | PatientUpdated):
            self._diagnoses.pop(event.patient, None)
        if isinstance(event, MscInfusionGiven):
            self._infused_from[event.patient].add(("clinic", event.clinic))
            if event.lot_id:
                self._infused_from[event.patient].add(("lot", event.lot_id))
        if event.patient in self._infused_from and isinstance(event, MscInfusionGiven | AdverseEventReported):
            for scope in self._infused_from[event.patient]:
                self._stale[scope].add(event.patient)

    def case_patient(self, case_id: str) -> str | None:
        """The patient whose case `case_id` is, once one of its reports or submissions has been seen."""
        return self._case_patients.get(case_id)

    def _enabled(self, rule_id: str, output: EngineOutput) -> bool:
        if rule_id in self.p.disabled:  # RuleParameters.enabled, without the call (asked for every event)
            return False
        output.evaluations[rule_id] += 1
        return True

    def _evaluate_lab(self, event: LabResultReported, patient: PatientHistory, now: datetime,
                      output: EngineOutput) -> None:
        analyte = ctcae.LOINC_ANALYTES.get(event.loinc_code)
        if analyte is None:
            return
        if analyte is not ctcae.Analyte.ALP and self._enabled(CTCAE_LAB, output):
            # CTCAE v5.0 grades only these against the patient's baseline (ctcae.grade ignores it for the others)
            first = self._first_labs[(event.patient, event.loinc_code, event.unit)] if (
                analyte in ctcae.BASELINE_GRADED) else None
            for lab in self._to_grade(event, patient, first):
                baseline = first.value if first is not None and first.occurred_at < lab.occurred_at else None
                alert = self._graded(lab, analyte, now, baseline)
                if alert is not None:
                    output.alerts.append(alert)
                    self._stand(alert, output)
                elif lab is not event and first is not None:  # `event` arrived late as the first of its kind
                    self._withdraw(
                        alert_id_for(CTCAE_LAB, self.p.version(CTCAE_LAB), str(lab.event_id)), CTCAE_LAB,
                        lab.patient, f"graded against the patient's first result of its kind ({first.value:g} "
                        f"{first.unit} on {first.occurred_at.date().isoformat()}, arrived late): below CTCAE v5.0 "
                        f"grade {self.p.ctcae_lab.alert_from_grade}", event.event_id, now, output)
        if analyte in LIVER and self._enabled(HYS_LAW, output):
            if analyte is ctcae.Analyte.ALP:
                self._withdraw_hys_law(event, patient, now, output)
            else:
                output.alerts.extend(self._hys_law(event, analyte, patient, now, output))

    def _evaluate(self, event: EventEnvelope, patient: PatientHistory, now: datetime, output: EngineOutput) -> None:
        if isinstance(event, LabResultReported):  # most events are lab results: one test, not a chain of them
            self._evaluate_lab(event, patient, now, output)
            return
        alerts = output.alerts
        if isinstance(event, AdverseEventReported):
            versions = self._versions(patient, event.case_id)
            serious = [v for v in versions if v.seriousness.is_serious]
            if self._enabled(serious_ae.RULE_ID, output) and serious:
                # one alert per case, describing its latest serious version (whatever order the versions came in)
                alert = serious_ae.evaluate(serious[-1], now, self.p.version(serious_ae.RULE_ID))
                if alert is not None:
                    alerts.append(alert)
            if self._enabled(duplicate_case.RULE_ID, output):
                alerts.extend(duplicate_case.evaluate(event, patient, now, self.p.duplicate_case.onset_days,
                                                     self.p.version(duplicate_case.RULE_ID)))
            if self._enabled(EXPEDITED_CLOCK, output) and serious:  # no SUSAR, no clock, without a serious version
                alerts.extend(self._clock_started(patient, event.case_id, now, output, versions))
            if self._enabled(INFUSION_TEMPORAL, output):
                infusions = self._infusions(patient)
                if infusions:  # most patients have none: nothing to link, no versions to convert
                    alerts.extend(self._infusion_links(patient, [self._ae_after(v) for v in versions], infusions,
                                                       now))
            if self._enabled(LOT_CLUSTER, output):
                alerts.extend(self._lot_clusters(patient, now, event))
        elif isinstance(event, MscInfusionGiven):
            if self._enabled(INFUSION_TEMPORAL, output):
                events = [self._ae_after(e) for e in patient.of_type("adverse-event", AdverseEventReported)]
                alerts.extend(self._infusion_links(patient, events, [self._infusion(event)], now))
            if self._enabled(LOT_CLUSTER, output):
                alerts.extend(self._lot_clusters(patient, now, event))
            if self._enabled(UNDOCUMENTED_BENEFIT, output) and event.incompletely_documented:
                alerts.append(self._undocumented_infusion(event, now))
        elif isinstance(event, DiseaseActivityAssessed | TreatmentTapered | TreatmentStopped):
            if isinstance(event, TreatmentTapered | TreatmentStopped) and (
                    event.drug_class not in self.p.tapered_classes):
                return
            if self._enabled(FLARE_AFTER_TAPER, output):
                alerts.extend(self._flares(event, patient, now, output))
        elif isinstance(event, PatientEnrolled | PatientUpdated):
            if FLARE_AFTER_TAPER not in self.p.disabled:  # not counted: most enrolments have no taper to judge
                alerts.extend(self._flares_rejudged(event, patient, now, output))
        elif isinstance(event, OutcomeClaimReported) and event.direction == "improved":
            # a claimed benefit; a claimed worsening is not a benefit claim (and may be an adverse event to report)
            if self._enabled(UNDOCUMENTED_BENEFIT, output) and undocumented_benefit.benefit_is_undocumented(
                None if event.documented_measure is None else event.documented_measure.name,
                None if event.documented_measure is None else event.documented_measure.evidence_event_id,
            ):
                alerts.append(self._undocumented_claim(event, now))
        elif isinstance(event, ExpeditedReportSubmitted) and self._enabled(EXPEDITED_CLOCK, output):
            self._recompute_clocks(patient, event.case_id, output)

    @staticmethod
    def _versions(patient: PatientHistory, case_id: str) -> list[AdverseEventReported]:
        """A case's versions in occurred_at order (the history keeps that order)."""
        return [r for r in patient.of_type("adverse-event", AdverseEventReported) if r.case_id == case_id]

    def _alert(self, rule_id: str, key: str, severity: Severity, patient: str, evidence: tuple[EventEnvelope, ...],
               now: datetime, summary: str, details: dict[str, AlertDetail], case_id: str | None = None,
               occurred_at: datetime | None = None) -> SafetyAlert:
        version = self.p.version(rule_id)
        return SafetyAlert.derived(
            alert_id=alert_id_for(rule_id, version, key), rule_id=rule_id, rule_version=version, severity=severity,
            patient=patient, case_id=case_id, evidence_event_ids=tuple(e.event_id for e in evidence),
            occurred_at=occurred_at or max(e.occurred_at for e in evidence), raised_at=now, summary=summary,
            details=details,
        )

    # --- ctcae-lab and hys-law ------------------------------------------------------------------------------------

    @staticmethod
    def _to_grade(event: LabResultReported, patient: PatientHistory,
                  first: LabResultReported | None) -> list[LabResultReported]:
        """The new result, and when it arrived late as the patient's first of its kind (`first`, the new baseline;
        None when the analyte has no baseline grading), the later results graded against a baseline: their grade
        may change, so the last derivation stays right."""
        if first is None or first.event_id != event.event_id:
            return [event]  # not the first of its kind: only its own grade can be new (the usual case, no list built)
        return [lab for lab in patient.of_type("lab-result", LabResultReported)
                if lab.loinc_code == event.loinc_code and lab.unit == event.unit]

    def _graded(self, event: LabResultReported, analyte: ctcae.Analyte, now: datetime,
                baseline: float | None) -> SafetyAlert | None:
        if event.comparator is not None:
            return None  # "<0.1" is not a value to grade from
        try:
            graded = ctcae.grade(analyte, event.value, event.unit, event.reference_low, event.reference_high,
                                 baseline)
        except ctcae.UngradableResult:
            return None
        if graded is None or graded.grade < self.p.ctcae_lab.alert_from_grade:
            return None
        severity = Severity.CRITICAL if graded.grade >= 4 else Severity.WARNING
        # The derived adverse event (CTCAE term and grade) travels in the alert; the derived_adverse_events view
        # lists them, so they are rebuilt with the alerts by replay.
        return self._alert(
            CTCAE_LAB, str(event.event_id), severity, event.patient, (event,), now,
            f"CTCAE v5.0 grade {graded.grade}: {graded.term.value} ({event.value:g} {event.unit}, {graded.basis})",
            {"derived_ae_term": graded.term.value, "derived_ae_grade": graded.grade, "criterion": graded.basis,
             "loinc_code": event.loinc_code, "value": event.value, "unit": event.unit,
             "reference_low": event.reference_low, "reference_high": event.reference_high},
        )

    def _liver_results(self, patient: PatientHistory) -> dict[UUID, tuple[LabResultReported, hys_law.LiverResult]]:
        found: dict[UUID, tuple[LabResultReported, hys_law.LiverResult]] = {}
        for lab in patient.of_type("lab-result", LabResultReported):
            analyte = ctcae.LOINC_ANALYTES.get(lab.loinc_code)
            if analyte in LIVER and lab.reference_high and lab.comparator is None:
                found[lab.event_id] = (lab, hys_law.LiverResult(lab.event_id, analyte, lab.occurred_at, lab.value,
                                                                lab.reference_high))
        return found

    def _hys_law(self, event: LabResultReported, analyte: ctcae.Analyte, patient: PatientHistory,
                 now: datetime, output: EngineOutput) -> list[SafetyAlert]:
        p = self.p.hys_law
        if not event.reference_high or event.comparator is not None:
            return []
        times_uln = event.value / event.reference_high
        if not ((analyte in (ctcae.Analyte.ALT, ctcae.Analyte.AST) and times_uln >= p.transaminase_uln_multiple)
                or (analyte is ctcae.Analyte.BILIRUBIN and times_uln > p.bilirubin_uln_multiple)):
            return []  # only an elevated transaminase or bilirubin can complete a pair
        results = self._liver_results(patient)
        if event.event_id not in results:
            return []
        labs = {key: lab for key, (lab, _) in results.items()}
        new = results[event.event_id][1]
        alerts = []
        for case in hys_law.cases_with(new, [r for _, r in results.values()], self.p.hys_law):
            t, b = case.transaminase, case.bilirubin
            # The alert is the pair; the ALP seen so far is not part of its content (an ALP that arrives later
            # either leaves it as it is or withdraws it: _withdraw_hys_law), so live and replay say the same.
            alerts.append(self._alert(
                HYS_LAW, f"{t.event_id}|{b.event_id}", Severity.CRITICAL, event.patient,
                (labs[t.event_id], labs[b.event_id]), now,
                f"Potential Hy's law case: {t.analyte.value.upper()} {t.times_uln:.1f} x ULN with total bilirubin "
                f"{b.times_uln:.1f} x ULN, no ALP >= {self.p.hys_law.alp_uln_multiple:g} x ULN within "
                f"{self.p.hys_law.pairing_window_days} days",
                {"transaminase": t.analyte.value, "transaminase_x_uln": round(t.times_uln, 2),
                 "bilirubin_x_uln": round(b.times_uln, 2)},
            ))
            self._stand(alerts[-1], output)
        return alerts

    def _withdraw_hys_law(self, event: LabResultReported, patient: PatientHistory, now: datetime,
                          output: EngineOutput) -> None:
        """An ALP >= `alp_uln_multiple` x ULN withdraws the standing pairs within the window of both of its results
        (hys_law.excluded_by: the order-independent reading of the FDA's "no initial findings of cholestasis")."""
        p = self.p.hys_law
        if (not event.reference_high or event.comparator is not None
                or event.value / event.reference_high < p.alp_uln_multiple
                or not self._standing.get((event.patient, HYS_LAW))):
            return  # most ALPs: normal, or the patient has no standing Hy's law alert
        results = self._liver_results(patient)
        if event.event_id not in results:
            return
        alp = results[event.event_id][1]
        version = self.p.version(HYS_LAW)
        for t, b in hys_law.excluded_by(alp, [r for _, r in results.values()], p):
            self._withdraw(
                alert_id_for(HYS_LAW, version, f"{t.event_id}|{b.event_id}"), HYS_LAW, event.patient,
                f"ALP {alp.times_uln:.1f} x ULN on {alp.taken_at.date().isoformat()}, within "
                f"{p.pairing_window_days} days of both results: a cholestatic pattern, not a potential Hy's law case "
                "(FDA DILI guidance 2009: no initial findings of cholestasis)", event.event_id, now, output)

    # --- expedited-clock --------------------------------------------------------------------------------------------

    def _qualifying(self, report: AdverseEventReported) -> expedited.QualifyingReport | None:
        """The version as a SUSAR (serious + unexpected + suspect product), or None when it is not one."""
        if not report.seriousness.is_serious:
            return None
        # E2B(R3) G.k.1 "interacting" (3) marks a drug suspected of causing the reaction through an interaction:
        # a suspect drug for the SUSAR test, as the signals count it (store/signal_reports.py).
        suspects = [p.name for p in report.products if p.role in ("suspect", "interacting")]
        unexpected = unexpected_suspects(self.p.rsi, suspects, report.term, report.meddra_pt_code,
                                         report.awareness_date)
        if not unexpected:
            return None
        versions = sorted({f"{a.product}: {a.rsi_version or 'no RSI'}" for a in unexpected})
        s = report.seriousness
        return expedited.QualifyingReport(report.event_id, report.case_id, report.awareness_date,
                                          s.death or s.life_threatening, "; ".join(versions), report.recorded_at)

    def _recompute_clocks(self, patient: PatientHistory, case_id: str, output: EngineOutput | None = None,
                          reports: list[AdverseEventReported] | None = None) -> list[ClockRow]:
        """The case's clocks from its versions (`reports`, when the caller has them: _versions) and submissions;
        the changed ones go to self.clocks and `output`."""
        if reports is None:
            reports = self._versions(patient, case_id)
        if not any(r.seriousness.is_serious for r in reports):
            return []  # no SUSAR without a serious version
        qualifying = [q for q in map(self._qualifying, reports) if q is not None]
        submissions = [
            expedited.ReportSubmission(s.event_id, s.case_id, expedited.ClockCategory(s.category), s.occurred_at)
            for s in patient.of_type("report-submitted", ExpeditedReportSubmitted) if s.case_id == case_id
        ]
        rows = []
        other_started = False
        for clock in expedited.clocks_for_case(qualifying, submissions, self.p.clocks):
            key = (clock.case_id, clock.category.value)
            row = ClockRow(patient.patient, clock)
            if self.clocks.get(key) != row:
                self.clocks[key] = row
                if output is not None:
                    output.clocks[key] = row
                    output.removed_clocks.pop(key, None)
            rows.append(row)
            other_started |= clock.category is _OTHER_SERIOUS
        # The one clock that versions can take away (expedited.clocks_for_case: versions only add categories, except
        # that a fatal or life-threatening version with day 0 at or before the 15-day clock's covers that clock).
        if not other_started and (case_id, _OTHER_SERIOUS.value) in self.clocks:
            other = (case_id, _OTHER_SERIOUS.value)
            gone = self.clocks.pop(other)
            if output is not None:
                output.clocks.pop(other, None)
                output.removed_clocks[other] = gone
        return rows

    def _withdraw_removed_clocks(self, output: EngineOutput, now: datetime) -> None:
        """The alerts of clocks the case no longer has (`removed_clocks`) are withdrawn: the clock itself, and its
        due-soon and overdue alerts. ICH E2A III.A.1: the 7-day report covers the case."""
        for (case_id, category), row in output.removed_clocks.items():
            covering = self.clocks.get((case_id, expedited.ClockCategory.FATAL_OR_LIFE_THREATENING.value))
            fatal = [v for v in self._versions(self.history.patient(row.patient), case_id)
                     if v.seriousness.death or v.seriousness.life_threatening]
            cause = min(fatal, key=lambda v: (v.awareness_date, v.occurred_at)).event_id if fatal else (
                row.clock.evidence_event_ids[-1])
            reason = (f"case {case_id} has no {category} clock any more: a fatal or life-threatening version "
                      f"with day 0 {covering.clock.day0.isoformat() if covering else 'unknown'} is reported within 7 "
                      "days instead (ICH E2A III.A.1)")
            for rule_id in (EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE):
                alert_id = alert_id_for(rule_id, self.p.version(rule_id), f"{case_id}|{category}")
                self._withdraw(alert_id, rule_id, row.patient, reason, cause, now, output)
            # the clock's own alert stood while the clock did: withdrawn whether it was stored before this call or
            # raised in it (then the writer finds no row to delete and publishes nothing)
            alert_id = alert_id_for(EXPEDITED_CLOCK, self.p.version(EXPEDITED_CLOCK), f"{case_id}|{category}")
            self._emitted.pop(alert_id, None)
            output._unstood.add(alert_id)
            output.withdrawn[alert_id] = AlertWithdrawal(reason=reason[:300], event_id=cause, withdrawn_at=now)

    def _clock_started(self, patient: PatientHistory, case_id: str, now: datetime, output: EngineOutput,
                       versions: list[AdverseEventReported]) -> list[SafetyAlert]:
        """The expedited-clock alerts of the case's clocks, recomputed from its `versions` (_versions)."""
        rows = self._recompute_clocks(patient, case_id, output, versions)
        if not rows:
            return []
        reports = {r.event_id: r for r in versions}
        alerts = []
        for row in rows:
            clock = row.clock
            seven = clock.category is not expedited.ClockCategory.OTHER_SERIOUS
            first = reports[clock.evidence_event_ids[0]]
            alerts.append(self._alert(
                EXPEDITED_CLOCK, f"{case_id}|{clock.category.value}",
                Severity.CRITICAL if seven else Severity.WARNING, patient.patient, (first,), now,
                f"SUSAR {first.term}: {clock.category.value} expedited report due {clock.due_date.isoformat()}",
                {"category": clock.category.value, "day0": clock.day0.isoformat(),
                 "due_date": clock.due_date.isoformat(), "rsi_version": clock.rsi_version},
                case_id=case_id,
            ))
        return alerts

    def clock_alerts(self, now: datetime, rows: Iterable[ClockRow] | None = None) -> list[SafetyAlert]:
        """Due-soon and overdue alerts for every clock (or `rows`), as of `now` (occurred_at: when it crossed),
        except those this engine already emitted unchanged."""
        # per rule, once a call: whether it is enabled, its version and wording
        rules = {rule_id: (self.p.version(rule_id), "due within" if rule_id == EXPEDITED_DUE_SOON else "overdue since")
                 for rule_id in (EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE) if self.p.enabled(rule_id)}
        hours = self._hours()
        alerts = []
        for row in self.clocks.values() if rows is None else rows:
            clock = row.clock
            case_category = category = due_date = ""  # each clock's texts, once, when it has crossed
            for rule_id, crossed, at, severity in self._crossings(clock, now):
                if not crossed or rule_id not in rules:
                    continue
                if not case_category:
                    category, due_date = clock.category.value, clock.due_date.isoformat()
                    case_category = f"{clock.case_id}|{category}"
                version, what = rules[rule_id]
                alerts.append(SafetyAlert.derived(
                    alert_id=alert_id_for(rule_id, version, case_category),
                    rule_id=rule_id, rule_version=version, severity=severity, patient=row.patient,
                    case_id=clock.case_id, evidence_event_ids=clock.evidence_event_ids, occurred_at=at,
                    raised_at=now,
                    summary=f"{category} expedited report for case {clock.case_id} {what} "
                            f"{clock.due_at.isoformat() if rule_id == EXPEDITED_OVERDUE else hours}",
                    details={"category": category, "due_date": due_date, "submitted": clock.submitted_at is not None},
                ))
        fresh = self._changed(alerts)  # the timer asks every minute: only news reaches the store
        standing = self._standing
        for alert in fresh:  # _stand, outside `apply`: an alert already standing is not news (or was loaded so)
            standing[(alert.patient, alert.rule_id)].add(alert.alert_id)
        return fresh

    def _crossings(self, clock: expedited.ExpeditedClock,
                   now: datetime) -> tuple[tuple[str, bool, datetime, Severity], ...]:
        """(rule, whether the clock has crossed its instant by `now`, the instant, severity) for due-soon and overdue:
        functions of the log (the submission's occurred_at) and `now` only."""
        return (
            (EXPEDITED_DUE_SOON, clock.became_due_soon(now, self.p.clocks), clock.due_soon_at(self.p.clocks),
             Severity.WARNING),
            (EXPEDITED_OVERDUE, clock.became_overdue(now), clock.due_at, Severity.CRITICAL),
        )

    def _withdraw_clock_alerts(self, rows: Iterable[ClockRow], now: datetime, output: EngineOutput) -> None:
        """Withdraw the standing due-soon and overdue alerts of changed clocks that had not crossed after all: a
        `report-submitted` dated before the crossing arrived after the wall clock had passed it."""
        held = self._standing
        for row in rows:
            clock = row.clock
            if clock.submitted_at is None and now >= clock.due_at and (
                    clock.known_at is None or clock.known_at < clock.due_at):
                continue  # unsubmitted and past its deadline: both crossings hold (the common case, no arithmetic)
            if not held.get((row.patient, EXPEDITED_OVERDUE)) and not held.get((row.patient, EXPEDITED_DUE_SOON)):
                continue  # the patient has no clock alert to withdraw
            for rule_id, crossed, at, _ in self._crossings(clock, now):
                if crossed or not held.get((row.patient, rule_id)):
                    continue
                alert_id = alert_id_for(rule_id, self.p.version(rule_id), f"{clock.case_id}|{clock.category.value}")
                if clock.submitted_at is not None and clock.submission_event_id is not None:
                    reason = (f"{clock.category.value} report submitted {clock.submitted_at.isoformat()}, before "
                              f"{'its due-soon window opened' if rule_id == EXPEDITED_DUE_SOON else 'its deadline'} "
                              f"({at.isoformat()})")
                    cause = clock.submission_event_id
                else:
                    reason = f"the clock's {'due-soon window' if rule_id == EXPEDITED_DUE_SOON else 'deadline'} " \
                             f"moved to {at.isoformat()}"
                    cause = clock.evidence_event_ids[-1]
                self._withdraw(alert_id, rule_id, row.patient, reason, cause, now, output)

    def _hours(self) -> str:
        return f"{self.p.clocks.due_soon_hours:g} h"

    # --- infusion-temporal and lot-cluster ------------------------------------------------------------------

    @staticmethod
    def _infusion(event: MscInfusionGiven) -> infusion_temporal.InfusionGiven:
        return infusion_temporal.InfusionGiven(event.event_id, event.occurred_at, event.lot_id, event.clinic,
                                               event.product_name)

    def _infusions(self, patient: PatientHistory) -> list[infusion_temporal.InfusionGiven]:
        return [self._infusion(e) for e in patient.of_type("msc-infusion", MscInfusionGiven)]

    @staticmethod
    def _ae_after(event: AdverseEventReported) -> infusion_temporal.AdverseEventAfter:
        return infusion_temporal.AdverseEventAfter(event.event_id, event.case_id, event.term, event.occurred_at,
                                                   event.seriousness.is_serious)

    def _infusion_links(self, patient: PatientHistory, after: list[infusion_temporal.AdverseEventAfter],
                        infusions: list[infusion_temporal.InfusionGiven], now: datetime) -> list[SafetyAlert]:
        if not infusions or not after:
            return []
        by_id: dict[UUID, EventEnvelope] = {e.event_id: e for e in patient.of_type(
            "adverse-event", AdverseEventReported)}
        by_id.update({e.event_id: e for e in patient.of_type("msc-infusion", MscInfusionGiven)})
        alerts = []
        canonical: dict[tuple[str, UUID, str], infusion_temporal.InfusionLink] = {}
        for link in infusion_temporal.links(after, infusions, self.p.infusion_temporal):
            key = (link.event.case_id, link.infusion.event_id, link.window.category)
            known = canonical.get(key)
            if known is None or (link.event.at, str(link.event.event_id)) < (known.event.at, str(known.event.event_id)):
                canonical[key] = link  # the case's earliest version in the window speaks for the case
        for link in canonical.values():
            ae, infusion = by_id[link.event.event_id], by_id[link.infusion.event_id]
            alerts.append(self._alert(
                INFUSION_TEMPORAL, f"{link.event.case_id}|{link.infusion.event_id}|{link.window.category}",
                Severity.CRITICAL if link.event.serious else Severity.WARNING, patient.patient, (infusion, ae), now,
                f"{link.event.term} {link.hours_after:.0f} h after MSC infusion "
                f"(lot {link.infusion.lot or 'unknown'}, {link.infusion.clinic})",
                {"category": link.window.category, "hours_after_infusion": round(link.hours_after, 1),
                 "lot": link.infusion.lot, "clinic": link.infusion.clinic, "product": link.infusion.product,
                 "term": link.event.term},
                case_id=link.event.case_id,
            ))
        return alerts

    def _attributed(self, scope: str, key: str) -> tuple[list[lot_cluster.AttributedEvent],
                                                         dict[UUID, EventEnvelope]]:
        found: list[lot_cluster.AttributedEvent] = []
        evidence: dict[UUID, EventEnvelope] = {}
        attributions = self._attributions[(scope, key)]
        for pseudonym in self._stale.pop((scope, key), ()):
            patient_events = self._attributed_to(self.history.patient(pseudonym), scope, key)
            if patient_events:
                attributions[pseudonym] = patient_events
            else:
                attributions.pop(pseudonym, None)
        for pseudonym in sorted(attributions):
            for attributed, ae in attributions[pseudonym]:
                found.append(attributed)
                evidence[ae.event_id] = ae
        return found, evidence

    def _attributed_to(self, history: PatientHistory, scope: str,
                       key: str) -> list[tuple[lot_cluster.AttributedEvent, AdverseEventReported]]:
        """One patient's adverse events attributed to a lot or clinic (cached until the patient's next adverse
        event or infusion: a clinic's clusters are re-derived often, its patients' histories change rarely; only
        the patients with attributed events are kept, so a re-derivation does not walk every patient infused)."""
        window = timedelta(days=self.p.lot_cluster.attribution_days)
        infusions = [i for i in history.of_type("msc-infusion", MscInfusionGiven)
                     if (i.lot_id if scope == "lot" else i.clinic) == key]
        found = []
        for ae in history.of_type("adverse-event", AdverseEventReported):
            before = [i for i in infusions if timedelta(0) <= ae.occurred_at - i.occurred_at <= window]
            if before:
                latest = max(before, key=lambda i: (i.occurred_at, str(i.event_id)))
                found.append((lot_cluster.AttributedEvent(ae.event_id, ae.case_id, history.patient, ae.occurred_at,
                                                          ae.seriousness.is_serious, latest.event_id), ae))
        return found

    def _lot_clusters(self, patient: PatientHistory, now: datetime, event: EventEnvelope) -> list[SafetyAlert]:
        """Re-derive the clusters of the lots and clinics `event` can count for: an adverse event's, through the
        infusions in the attribution window before it; an infusion's own (it may attribute earlier reports)."""
        if isinstance(event, MscInfusionGiven):
            infusions = [event]
        elif event.patient not in self._infused_from:
            return []  # most adverse events: the patient never had an infusion to attribute them to
        else:
            window = timedelta(days=self.p.lot_cluster.attribution_days)
            infusions = [i for i in patient.of_type("msc-infusion", MscInfusionGiven)
                         if timedelta(0) <= event.occurred_at - i.occurred_at <= window]
        scopes = set()
        for infusion in infusions:
            scopes.add(("clinic", infusion.clinic))
            if infusion.lot_id:
                scopes.add(("lot", infusion.lot_id))
        alerts = []
        for scope, key in sorted(scopes):
            events, evidence = self._attributed(scope, key)
            for cluster in lot_cluster.clusters(scope, key, events, self.p.lot_cluster):
                members = tuple(evidence[m.event_id] for m in cluster.members)
                count = len(cluster.members)
                what = "serious adverse event" if cluster.trigger == "serious" else "adverse events"
                alerts.append(self._alert(
                    LOT_CLUSTER, f"{scope}|{key}|{cluster.trigger}|{cluster.anchor}", Severity.CRITICAL,
                    cluster.completing.patient, members, now,
                    f"{count} {what} within {self.p.lot_cluster.window_days} days after infusions from {scope} {key}",
                    {"scope": scope, scope: key, "trigger": cluster.trigger, "events": count,
                     "patients": len({m.patient for m in cluster.members}),
                     "cases": [m.case_id for m in cluster.members]},
                    case_id=cluster.completing.case_id,
                ))
        return alerts

    # --- flare-after-taper ---------------------------------------------------------------------------------------

    def _conditions(self, patient: PatientHistory) -> list[str]:
        """The patient's diagnoses as last recorded (cached until their next enrolment or update event)."""
        cached = self._diagnoses.get(patient.patient)
        if cached is not None:
            return cached
        facts: list[PatientEnrolled | PatientUpdated] = [*patient.of_type("patient-enrolled", PatientEnrolled),
                                                         *patient.of_type("patient-updated", PatientUpdated)]
        latest: list[str] = []
        for event in sorted(facts, key=lambda e: (e.occurred_at, str(e.event_id))):
            if event.diagnoses is not None:
                latest = [d.condition.value for d in event.diagnoses]  # the latest list replaces the earlier
        self._diagnoses[patient.patient] = latest
        return latest

    def _flare_index(self, pseudonym: str) -> flare.FlareIndex:
        index = self._flare_indexes.get(pseudonym)
        if index is None:
            index = self._flare_indexes[pseudonym] = flare.FlareIndex(timedelta(days=self.p.flare.window_days))
        return index

    def _index_flare_input(self, event: DiseaseActivityAssessed | TreatmentTapered | TreatmentStopped) -> None:
        """Add a score of a flare index's instrument, or a taper or stop of a tapered class, to the patient's
        FlareIndex (the others never take part in a flare)."""
        fact: flare.Taper | flare.ActivityScore
        if isinstance(event, DiseaseActivityAssessed):
            if event.instrument.value not in flare.INSTRUMENTS:
                return
            fact = flare.ActivityScore(event.event_id, event.instrument.value, event.score, event.occurred_at,
                                       event.assessed_by.value)
            self._flare_index(event.patient).add_score(fact)
        else:
            if event.drug_class not in self.p.tapered_classes:
                return
            fact = flare.Taper(event.event_id, event.drug, event.occurred_at, isinstance(event, TreatmentStopped))
            self._flare_index(event.patient).add_taper(fact)
        self._flare_inputs[event.event_id] = (fact, event)

    def _flares(self, event: EventEnvelope, patient: PatientHistory, now: datetime,
                output: EngineOutput) -> list[SafetyAlert]:
        """The flares `event` takes part in (as the taper, the baseline or the later score), from the patient's
        FlareIndex: bisection, not a scan of the history per event. A score that arrives late and becomes the
        baseline of a taper withdraws that taper's standing flares it no longer supports."""
        known = self._flare_inputs.get(event.event_id)
        if known is None:
            return []  # a score of another instrument
        fact = known[0]
        index = self._flare_indexes[event.patient]
        if isinstance(fact, flare.Taper):
            triples = index.after_taper(fact)
        else:
            triples = index.around_score(fact)
            # reductions before stops, as the alerts were always listed
            triples.sort(key=lambda triple: triple[0].stopped)
        if not triples:
            return []  # most scores: the patient has no taper near them
        alerts = self._flare_alerts(triples, patient, now, output)
        if isinstance(fact, flare.ActivityScore) and self._standing.get((event.patient, FLARE_AFTER_TAPER)):
            supported = {alert.alert_id for alert in alerts}
            version = self.p.version(FLARE_AFTER_TAPER)
            for taper, baseline, after in triples:
                if baseline is not fact:
                    continue  # the score is the later one: no other flare changed
                alert_id = alert_id_for(FLARE_AFTER_TAPER, version, f"{taper.event_id}|{after.event_id}")
                if alert_id not in supported:
                    self._withdraw(
                        alert_id, FLARE_AFTER_TAPER, event.patient,
                        f"{fact.instrument} {fact.score:g} ({fact.assessed_by}) on {fact.at.date().isoformat()} is "
                        f"the latest score before {taper.drug} was {'stopped' if taper.stopped else 'tapered'}: "
                        f"from that baseline {after.score:g} is no flare", fact.event_id, now, output)
        return alerts

    def _flares_rejudged(self, event: PatientEnrolled | PatientUpdated, patient: PatientHistory, now: datetime,
                         output: EngineOutput) -> list[SafetyAlert]:
        """Every flare of the patient judged again by the diagnoses as last recorded (which index, which JIA
        category's cut-offs); the standing flares they no longer support are withdrawn."""
        index = self._flare_indexes.get(event.patient)
        if index is None or not index.tapers:
            return []  # most patients: no taper, no flare
        triples = [triple for taper in index.tapers for triple in index.after_taper(taper)]
        alerts = self._flare_alerts(triples, patient, now, output) if triples else []
        standing = self._standing.get((event.patient, FLARE_AFTER_TAPER))
        if standing:
            conditions = ", ".join(self._conditions(patient)) or "none"
            for alert_id in sorted(standing - {alert.alert_id for alert in alerts}):
                self._withdraw(alert_id, FLARE_AFTER_TAPER, event.patient,
                               f"no flare by the index of the diagnoses as last recorded ({conditions})",
                               event.event_id, now, output)
        return alerts

    def _flare_alerts(self, triples: list[flare.Triple], patient: PatientHistory, now: datetime,
                      output: EngineOutput) -> list[SafetyAlert]:
        """The triples that are flares by the patient's disease index, as alerts (which then stand)."""
        conditions = self._conditions(patient)
        jia = next((c for c in conditions if c.startswith("JIA")), None)
        diseases = [(flare.Disease.JIA, self.p.jia_categories.category_of(jia or ""))]
        diseases.append((flare.Disease.MCTD if "MCTD" in conditions and "SLE" not in conditions else flare.Disease.SLE,
                         self.p.jia_categories.default))
        inputs = self._flare_inputs
        alerts = []
        for disease, category in diseases:
            for found in flare.judged(triples, disease, category, self.p.flare):
                label = "parent-reported" if found.after.assessed_by != "clinician" else "clinician-documented"
                proxy = " (proxy index: no validated MCTD flare index)" if found.proxy else ""
                alerts.append(self._alert(
                    FLARE_AFTER_TAPER, f"{found.taper.event_id}|{found.after.event_id}",
                    Severity.CRITICAL if found.severity in ("severe", "high") else Severity.WARNING,
                    patient.patient, (inputs[found.taper.event_id][1], inputs[found.baseline.event_id][1],
                                      inputs[found.after.event_id][1]), now,
                    f"{found.severity} flare ({label} {found.after.instrument} {found.baseline.score:g} -> "
                    f"{found.after.score:g}) after {found.taper.drug} "
                    f"{'stopped' if found.taper.stopped else 'tapered'}{proxy}",
                    {"disease": disease.value, "instrument": found.after.instrument, "assessed_by": label,
                     "baseline": found.baseline.score, "after": found.after.score, "severity": found.severity,
                     "from_level": found.from_level, "to_level": found.to_level, "drug": found.taper.drug,
                     "days_after_taper": (found.after.at - found.taper.at).days, "proxy_index": found.proxy},
                ))
                self._stand(alerts[-1], output)
        return alerts

    # --- undocumented-benefit -------------------------------------------------------------------------------------

    def _undocumented_claim(self, event: OutcomeClaimReported, now: datetime) -> SafetyAlert:
        return self._alert(
            UNDOCUMENTED_BENEFIT, f"claim|{event.event_id}", Severity.INFO, event.patient, (event,), now,
            f"{event.claimed_by.value} reports '{event.what}' {event.direction.value} with no documented measure",
            {"finding": "benefit-without-measure", "claimed_by": event.claimed_by.value,
             "attributed_to": event.attributed_to},
        )

    def _undocumented_infusion(self, event: MscInfusionGiven, now: datetime) -> SafetyAlert:
        missing = list(event.missing_documentation)
        return self._alert(
            UNDOCUMENTED_BENEFIT, f"infusion|{event.event_id}", Severity.WARNING, event.patient, (event,), now,
            f"MSC infusion at {event.clinic} recorded without {' and '.join(missing)}",
            {"finding": "infusion-incompletely-documented", "missing": missing, "clinic": event.clinic},
        )


def evaluate_events(events: Iterable[EventEnvelope], now: datetime,
                    parameters: RuleParameters | None = None) -> tuple[list[SafetyAlert], dict[str, int]]:
    """Alerts raised by `events` alone, with a fresh history (for tests and one-off checks)."""
    output = SafetyEngine(parameters).apply(events, now)
    return output.alerts, output.evaluations
