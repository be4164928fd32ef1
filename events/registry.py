"""Which event types exist and which topic carries each: the one place to add a type."""

from __future__ import annotations

from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.alert_action import AlertActionRecorded
from pvwatch.events.disease_activity import DiseaseActivityAssessed
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.infusion import MscInfusionGiven
from pvwatch.events.lab import LabResultReported
from pvwatch.events.outcome_claim import OutcomeClaimReported
from pvwatch.events.patient import PatientEnrolled, PatientUpdated
from pvwatch.events.report_submission import ExpeditedReportSubmitted
from pvwatch.events.treatment import TreatmentDoseChanged, TreatmentStarted, TreatmentStopped, TreatmentTapered

EVENT_TYPES: dict[str, type[EventEnvelope]] = {
    "patient-enrolled": PatientEnrolled,
    "patient-updated": PatientUpdated,
    "treatment-started": TreatmentStarted,
    "treatment-dose-changed": TreatmentDoseChanged,
    "treatment-tapered": TreatmentTapered,
    "treatment-stopped": TreatmentStopped,
    "msc-infusion": MscInfusionGiven,
    "adverse-event": AdverseEventReported,
    "lab-result": LabResultReported,
    "disease-activity": DiseaseActivityAssessed,
    "outcome-claim": OutcomeClaimReported,
    "alert-action": AlertActionRecorded,
    "report-submitted": ExpeditedReportSubmitted,
}

TOPIC_OF_TYPE: dict[str, str] = {name: model.topic for name, model in EVENT_TYPES.items()}
SOURCE_TOPICS: tuple[str, ...] = tuple(sorted(set(TOPIC_OF_TYPE.values())))

ALERT_TOPIC = "pv.safety.alert.v1"
SIGNAL_TOPIC = "pv.safety.signal.v1"
DEAD_LETTER_TOPIC = "pv.ingest.dlq"
ALL_TOPICS: tuple[str, ...] = (*SOURCE_TOPICS, ALERT_TOPIC, SIGNAL_TOPIC, DEAD_LETTER_TOPIC)
