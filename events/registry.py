"""Which event types exist and which topic carries each: the one place to add a type."""

from __future__ import annotations

from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.alert_action import AlertActionRecorded
from pvwatch.events.envelope import EventEnvelope

EVENT_TYPES: dict[str, type[EventEnvelope]] = {
    "adverse-event": AdverseEventReported,
    "alert-action": AlertActionRecorded,
}

TOPIC_OF_TYPE: dict[str, str] = {name: model.topic for name, model in EVENT_TYPES.items()}
SOURCE_TOPICS: tuple[str, ...] = tuple(sorted(set(TOPIC_OF_TYPE.values())))

ALERT_TOPIC = "pv.safety.alert.v1"
SIGNAL_TOPIC = "pv.safety.signal.v1"
DEAD_LETTER_TOPIC = "pv.ingest.dlq"
ALL_TOPICS: tuple[str, ...] = (*SOURCE_TOPICS, ALERT_TOPIC, SIGNAL_TOPIC, DEAD_LETTER_TOPIC)
