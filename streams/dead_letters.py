"""The dead-letter topic's protocol, in one place: three kinds of message travel on it, told apart by headers.

1. An edge's rejection (`pvwatch ingest`, the importers): the raw input as value, `pv-reason`, `pv-detail` and
   `pv-source` (file and line). The worker records it as a dead letter (`edge_dead_letter`).
2. A worker's own dead letter (input that failed validation past the edge), published from the store's outbox
   with `pv-dead-letter-id` and `pv-source-topic`: already stored, so a worker reading it back skips it.
3. A resolution: a person closes dead letters. DuckDB allows one writing process, so `pvwatch dlq resolve` cannot
   update the store while the worker runs; it publishes one message per dead letter (empty value, `pv-resolves`,
   `pv-actor`, `pv-resolution`) and the worker records it (`resolution_in`). The open count
   (`pv_dead_letter_messages`) then falls, and the "DLQ not empty" alert clears once every one is dealt with.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pvwatch.events.registry import DEAD_LETTER_TOPIC
from pvwatch.store.eventstore import DeadLetter, DeadLetterResolution, MessageOrigin

if TYPE_CHECKING:
    from pvwatch.streams.producer import EventPublisher

REASON_HEADER = "pv-reason"
DETAIL_HEADER = "pv-detail"
EDGE_SOURCE_HEADER = "pv-source"
SOURCE_TOPIC_HEADER = "pv-source-topic"
DEAD_LETTER_ID_HEADER = "pv-dead-letter-id"
RESOLVES_HEADER = "pv-resolves"
ACTOR_HEADER = "pv-actor"
RESOLUTION_HEADER = "pv-resolution"
MAX_TEXT = 500
MAX_DETAIL = 1000


def edge_rejection_headers(reason: str, detail: str, where: str) -> list[tuple[str, bytes]]:
    """Headers of a rejection at an edge (kind 1)."""
    return [(REASON_HEADER, reason.encode()), (DETAIL_HEADER, detail.encode()[:MAX_DETAIL]),
            (EDGE_SOURCE_HEADER, where.encode()[:200])]


def stored_dead_letter_headers(dead_letter_id: str, topic: str, reason: str, detail: str) -> dict[str, bytes]:
    """Headers of a dead letter the worker stored and now publishes (kind 2)."""
    return {REASON_HEADER: reason.encode(), DETAIL_HEADER: detail.encode()[:MAX_DETAIL],
            SOURCE_TOPIC_HEADER: topic.encode(), DEAD_LETTER_ID_HEADER: dead_letter_id.encode()}


def edge_dead_letter(
    origin: MessageOrigin, value: bytes | None, headers: dict[str, bytes], received_at: datetime
) -> DeadLetter | None:
    """The dead letter an edge's rejection records (kind 1), or None for one a worker published (kind 2)."""
    if DEAD_LETTER_ID_HEADER in headers:
        return None
    reason = headers.get(REASON_HEADER, b"unspecified").decode(errors="replace")
    detail = headers.get(DETAIL_HEADER, b"").decode(errors="replace")
    where = headers.get(EDGE_SOURCE_HEADER, b"").decode(errors="replace")
    return DeadLetter(origin, reason, f"{where}: {detail}" if where else detail, value, received_at,
                      already_on_topic=True)


def resolution_in(headers: dict[str, bytes], received_at: datetime) -> DeadLetterResolution | None:
    """The resolution a dead-letter-topic message carries (kind 3), or None when it is a dead letter itself."""
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
