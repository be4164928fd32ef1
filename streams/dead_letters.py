"""Closing dead letters: a person resolves them, and the resolution travels as a message on the dead-letter topic.

DuckDB allows one writing process, so `pvwatch dlq resolve` cannot update the store while the worker runs; it
publishes one message per dead letter on the dead-letter topic (empty value, the resolution in headers) and the
worker, which already consumes that topic, records it. The open count (`pv_dead_letter_messages`) then falls,
and the "DLQ not empty" alert clears once every dead letter is dealt with.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pvwatch.events.registry import DEAD_LETTER_TOPIC
from pvwatch.store.eventstore import DeadLetterResolution

if TYPE_CHECKING:
    from pvwatch.streams.producer import EventPublisher

RESOLVES_HEADER = "pv-resolves"
ACTOR_HEADER = "pv-actor"
RESOLUTION_HEADER = "pv-resolution"
MAX_TEXT = 500


def resolution_in(headers: dict[str, bytes], received_at: datetime) -> DeadLetterResolution | None:
    """The resolution a dead-letter-topic message carries, or None when it is a dead letter itself."""
    target = headers.get(RESOLVES_HEADER)
    if target is None:
        return None
    return DeadLetterResolution(
        dead_letter_id=target.decode(errors="replace"),
        resolved_by=headers.get(ACTOR_HEADER, b"unknown").decode(errors="replace")[:MAX_TEXT],
        resolution=headers.get(RESOLUTION_HEADER, b"").decode(errors="replace")[:MAX_TEXT],
        resolved_at=received_at,
    )


def publish_resolutions(publisher: EventPublisher, dead_letter_ids: list[str], actor: str, resolution: str) -> None:
    for dead_letter_id in dead_letter_ids:
        publisher.publish_raw(DEAD_LETTER_TOPIC, b"", key=dead_letter_id.encode(), headers=[
            (RESOLVES_HEADER, dead_letter_id.encode()),
            (ACTOR_HEADER, actor.encode()[:MAX_TEXT]),
            (RESOLUTION_HEADER, resolution.encode()[:MAX_TEXT]),
        ])
