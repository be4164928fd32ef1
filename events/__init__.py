"""pvwatch.events: the wire contract, pydantic v2 event schemas (pure: no Kafka, no DuckDB)."""

from pvwatch.events.adverse_event import AdverseEventReported, SeriousnessCriteria, SuspectProduct
from pvwatch.events.codec import decode_event, encode_event, parse_event
from pvwatch.events.disease_activity import DiseaseActivityAssessed, Instrument
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.infusion import MscInfusionGiven
from pvwatch.events.lab import LabResultReported
from pvwatch.events.outcome_claim import OutcomeClaimReported
from pvwatch.events.patient import PatientEnrolled, PatientUpdated
from pvwatch.events.registry import ALERT_TOPIC, ALL_TOPICS, DEAD_LETTER_TOPIC, EVENT_TYPES, SOURCE_TOPICS
from pvwatch.events.treatment import (
    ChangeReason,
    TreatmentDoseChanged,
    TreatmentStarted,
    TreatmentStopped,
    TreatmentTapered,
)

__all__ = [
    "ALERT_TOPIC", "ALL_TOPICS", "DEAD_LETTER_TOPIC", "EVENT_TYPES", "SOURCE_TOPICS",
    "AdverseEventReported", "ChangeReason", "DiseaseActivityAssessed", "EventEnvelope", "Instrument",
    "LabResultReported", "MscInfusionGiven", "OutcomeClaimReported", "PatientEnrolled", "PatientUpdated",
    "SeriousnessCriteria", "SuspectProduct", "TreatmentDoseChanged", "TreatmentStarted", "TreatmentStopped",
    "TreatmentTapered",
    "decode_event", "encode_event", "parse_event",
]
