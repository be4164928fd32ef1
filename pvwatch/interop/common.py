"""What every importer shares: deterministic event ids, the accepted/rejected account, and the two outlets
(a JSON Lines file for inspection, or Kafka through the same edge as `pvwatch ingest`).

An importer maps each source record to a plain dict shaped like a pvwatch event (patient already
pseudonymised, never a raw identifier), then `validate_record` runs it through the one wire-contract validator
(pvwatch.events.codec.parse_event). A rejected record keeps its place (file, record, field) and its reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pvwatch.errors import InvalidEvent, PvwatchError
from pvwatch.events.codec import encode_event, parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.streams.ingest import IngestReport, Rejection, Sender, send_prepared

#: Namespace of every imported event id: uuid5(namespace, "<format>:<source record id>"), so importing the
#: same source record again gives the same event_id and the store keeps it once.
IMPORT_NAMESPACE = uuid.UUID("6f1c2a4e-0d59-4f43-9a43-1d2b9f0c7e51")


class ImportFileError(PvwatchError):
    """The file as a whole cannot be read (not XML, not a Bundle, ...): nothing is imported."""


def import_event_id(source_format: str, source_record_id: str) -> str:
    """Stable event id of one source record (a reaction of one ICSR version, one FHIR resource, one CSV row)."""
    return str(uuid.uuid5(IMPORT_NAMESPACE, f"{source_format}:{source_record_id}"))


def content_digest(record: dict[str, Any]) -> str:
    """sha256 of a mapped record's canonical JSON: part of the event id where source ids are not unique."""
    canonical = json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class ImportResult:
    """Every record of a source file, each either an event or a rejection (never silently dropped)."""

    items: list[EventEnvelope | Rejection] = field(default_factory=list)
    #: Facts the source held that pvwatch does not keep (e.g. a partial date), for the operator to see.
    notes: list[str] = field(default_factory=list)

    @property
    def events(self) -> list[EventEnvelope]:
        return [item for item in self.items if not isinstance(item, Rejection)]

    @property
    def rejections(self) -> list[Rejection]:
        return [item for item in self.items if isinstance(item, Rejection)]

    def reject(self, where: str, reason: str, detail: str, record: dict[str, Any] | None = None) -> None:
        payload = json.dumps(record, default=str).encode() if record is not None else None
        self.items.append(Rejection(where, reason, detail, payload))

    def add(self, where: str, record: dict[str, Any], field_names: dict[str, str] | None = None) -> None:
        """Validate a mapped record; a failure names the record, the pvwatch field and the source field."""
        try:
            self.items.append(parse_event(record))
        except InvalidEvent as error:
            detail = error.detail
            for ours, theirs in (field_names or {}).items():
                detail = re.sub(rf"(?<![\w.]){re.escape(ours)}(?![\w])", f"{ours} ({theirs})", detail)
            self.reject(where, error.reason, detail, record)


def write_jsonl(events: Iterable[EventEnvelope], out: IO[bytes]) -> int:
    """The events exactly as they would be published (the wire format), one per line."""
    count = 0
    for event in events:
        out.write(encode_event(event) + b"\n")
        count += 1
    return count


def publish(result: ImportResult, sender: Sender, *, progress: bool = False) -> IngestReport:
    """Publish accepted events to their topics and rejections to the dead-letter topic with their reason
    (a progress bar on a terminal when asked: an import can be a whole registry extract)."""
    items: Iterable[EventEnvelope | Rejection] = result.items
    if progress:
        from tqdm import tqdm

        items = tqdm(result.items, unit="record", desc="publishing", disable=None, leave=False)
    return send_prepared(items, sender)


def read_limited(path: Path, max_bytes: int) -> bytes:
    size = path.stat().st_size
    if size > max_bytes:
        raise ImportFileError(f"{path.name}: {size} bytes exceeds the {max_bytes}-byte import limit")
    return path.read_bytes()
