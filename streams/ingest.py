"""The ingest edge: JSON Lines in, pseudonymised and validated events out to Kafka.

Every line is accounted for: valid lines are published to their type's topic; invalid lines are reported
(line number, field, reason) and sent to the dead-letter topic with their reason, where the worker records
and counts them. A line that is not even JSON goes to the dead-letter topic without its bytes, because they
may hold a raw identifier that must never reach Kafka.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pvwatch.errors import InvalidEvent
from pvwatch.events.codec import MAX_MESSAGE_BYTES, parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import DEAD_LETTER_TOPIC
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.streams.dead_letters import edge_rejection_headers


@dataclass(frozen=True)
class Rejection:
    where: str
    reason: str
    detail: str
    clean_payload: bytes | None

    def message(self) -> str:
        return f"{self.where}: {self.reason}: {self.detail}"


@dataclass
class IngestReport:
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def prepare(where: str, line: bytes, pseudonymiser: Pseudonymiser) -> EventEnvelope | Rejection:
    """One input line -> a validated, pseudonymised event, or the reason it is rejected."""
    if len(line) > MAX_MESSAGE_BYTES:
        return Rejection(where, "oversize", f"{len(line)} bytes exceeds {MAX_MESSAGE_BYTES}", None)
    try:
        document: Any = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as error:
        return Rejection(where, "not_utf8", f"byte {error.start} is not valid UTF-8", None)
    except json.JSONDecodeError as error:
        return Rejection(where, "not_json", f"column {error.colno}: {error.msg}", None)
    except RecursionError:
        return Rejection(where, "not_json", "nested too deeply to parse", None)
    if not isinstance(document, dict):
        return Rejection(where, "not_json", f"expected a JSON object, got {type(document).__name__}", None)
    try:
        clean = pseudonymiser.pseudonymise_record(document)
    except InvalidEvent as error:
        return Rejection(where, error.reason, error.detail, None)
    try:
        return parse_event(clean)
    except InvalidEvent as error:
        return Rejection(where, error.reason, error.detail, json.dumps(clean, default=str).encode())


def read_lines(lines: Iterable[bytes], label: str) -> Iterator[tuple[str, bytes]]:
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped:
            yield f"{label}:{number}", stripped


class Sender(Protocol):
    """The part of a Kafka producer the edge needs (streams.producer.EventPublisher)."""

    def publish(self, event: EventEnvelope) -> object: ...

    def publish_raw(
        self, topic: str, value: bytes, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> object: ...


def send_prepared(items: Iterable[EventEnvelope | Rejection], sender: Sender) -> IngestReport:
    report = IngestReport()
    for item in items:
        if isinstance(item, Rejection):
            report.rejected.append(item)
            headers = edge_rejection_headers(item.reason, item.detail, item.where)
            sender.publish_raw(DEAD_LETTER_TOPIC, item.clean_payload or b"", None, headers)
        else:
            sender.publish(item)
            report.accepted += 1
    return report
