"""pvwatch.events: the wire contract, pydantic v2 event schemas (pure: no Kafka, no DuckDB)."""

from pvwatch.events.adverse_event import AdverseEventReported, SeriousnessCriteria
from pvwatch.events.codec import decode_event, encode_event, parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import ALERT_TOPIC, ALL_TOPICS, DEAD_LETTER_TOPIC, EVENT_TYPES, SOURCE_TOPICS

__all__ = [
    "ALERT_TOPIC", "ALL_TOPICS", "DEAD_LETTER_TOPIC", "EVENT_TYPES", "SOURCE_TOPICS",
    "AdverseEventReported", "EventEnvelope", "SeriousnessCriteria",
    "decode_event", "encode_event", "parse_event",
]
