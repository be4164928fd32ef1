"""What the rules remember: each patient's clinically relevant events, kept in occurred_at order.

Rules look at a patient's whole history when a new event arrives, so an event that arrives late (its
occurred_at earlier than events already seen) still meets its partners and raises the alert it should, and
alert ids built from the evidence make the result independent of arrival order. The history is rebuilt from
the DuckDB event log when a worker starts (the log is the truth), so nothing here needs to be durable.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from pvwatch.events.envelope import EventEnvelope

E = TypeVar("E", bound=EventEnvelope)


def _order(event: EventEnvelope) -> tuple[datetime, int]:
    """Chronological across time zones (aware datetimes compare as instants; ISO strings would not); ties by event
    id (a UUID's integer orders as the UUID does, compared in C rather than by UUID.__lt__)."""
    return (event.occurred_at, event.event_id.int)


@dataclass
class PatientHistory:
    patient: str
    events_by_type: dict[str, list[EventEnvelope]] = field(default_factory=lambda: defaultdict(list))
    _keys_by_type: dict[str, list[tuple[datetime, int]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, event: EventEnvelope) -> None:
        keys = self._keys_by_type[event.type]
        key = _order(event)
        if not keys or keys[-1] < key:  # the usual case (and every case in a replay): the latest so far
            keys.append(key)
            self.events_by_type[event.type].append(event)
            return
        position = bisect.bisect_left(keys, key)
        if position < len(keys) and keys[position] == key:
            return  # the same event twice: history is a set
        keys.insert(position, key)
        self.events_by_type[event.type].insert(position, event)

    def of_type(self, type_name: str, model: type[E]) -> list[E]:
        """The patient's events of one type, in occurred_at order (a view: do not modify)."""
        found = self.events_by_type.get(type_name, [])
        if found and not isinstance(found[0], model):
            raise TypeError(f"events of type {type_name!r} are {type(found[0]).__name__}, not {model.__name__}")
        return found  # type: ignore[return-value]


class History:
    """All patients' histories; the engine's only state."""

    def __init__(self) -> None:
        self._patients: dict[str, PatientHistory] = {}

    def patient(self, pseudonym: str) -> PatientHistory:
        found = self._patients.get(pseudonym)
        if found is None:
            found = self._patients[pseudonym] = PatientHistory(pseudonym)
        return found

    def add(self, event: EventEnvelope) -> PatientHistory:
        history = self.patient(event.patient)
        history.add(event)
        return history

    def __iter__(self) -> Iterator[PatientHistory]:
        return iter(self._patients.values())

    def __len__(self) -> int:
        return len(self._patients)
