"""The worker's batch step, independent of Faust: decode -> store (idempotent) -> rules -> derived facts.

A batch is one DuckDB transaction. Derived facts (alerts, dead letters) are written in that same
transaction and only then published (transactional outbox): a crash between the commit and the publish
leaves them marked unpublished, and the next worker publishes them. Nothing accepted is lost, nothing is
stored twice, and the alert topic may at worst see a republish of an alert with the same alert_id.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from pvwatch import metrics
from pvwatch.domain.engine import EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE, RULE_IDS, SafetyEngine
from pvwatch.domain.expedited import ClockCategory
from pvwatch.domain.parameters import RuleParameters
from pvwatch.errors import InvalidEvent
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.codec import decode_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import DEAD_LETTER_TOPIC, EVENT_TYPES
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.eventstore import DeadLetter, DeadLetterResolution, EventStore, MessageOrigin
from pvwatch.store.expedited import upsert_clocks
from pvwatch.streams.dead_letters import resolution_in


@dataclass(frozen=True)
class IncomingMessage:
    origin: MessageOrigin
    value: bytes | None
    broker_timestamp_s: float | None = None
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass
class BatchOutcome:
    stored: list[EventEnvelope] = field(default_factory=list)
    duplicates: int = 0
    new_alerts: list[SafetyAlert] = field(default_factory=list)
    #: alerts raised before whose evidence or details a late event changed (republished, not counted again)
    revised_alerts: list[SafetyAlert] = field(default_factory=list)
    new_dead_letters: list[DeadLetter] = field(default_factory=list)
    #: broker (produce) time of each stored event, for the latency histograms
    broker_timestamps: dict[UUID, float] = field(default_factory=dict)


def _edge_dead_letter(message: IncomingMessage, now: datetime) -> DeadLetter | None:
    """A message on the dead-letter topic: rejected at an edge (record it) or published by a worker (skip)."""
    if "pv-dead-letter-id" in message.headers:
        return None
    reason = message.headers.get("pv-reason", b"unspecified").decode(errors="replace")
    detail = message.headers.get("pv-detail", b"").decode(errors="replace")
    where = message.headers.get("pv-source", b"").decode(errors="replace")
    return DeadLetter(message.origin, reason, f"{where}: {detail}" if where else detail, message.value, now,
                      already_on_topic=True)


class BatchProcessor:
    """Owns the store; called with one batch at a time (a single writer, as DuckDB requires)."""

    def __init__(self, store: EventStore, parameters: RuleParameters | None = None) -> None:
        self.store = store
        self.engine = SafetyEngine(parameters or load_rule_parameters())  # the packaged rules.yaml by default
        for stored in store.iter_events():  # the log is the truth: rebuild the rules' memory from it
            self.engine.remember(stored)
        self._ingested = {name: metrics.EVENTS_INGESTED.labels(name) for name in EVENT_TYPES}
        self._duplicate = {name: metrics.EVENTS_DUPLICATE.labels(name) for name in EVENT_TYPES}
        self._evaluations = {rule: metrics.RULE_EVALUATIONS.labels(rule) for rule in RULE_IDS}
        metrics.DEAD_LETTERS.set(store.open_dead_letter_count())

    def process(self, messages: Sequence[IncomingMessage]) -> BatchOutcome:
        now = datetime.now(UTC)
        outcome = BatchOutcome()
        valid: dict[UUID, tuple[EventEnvelope, MessageOrigin]] = {}
        payloads: dict[UUID, bytes | None] = {}
        timestamps: dict[UUID, float] = {}
        letters: list[DeadLetter] = []
        resolutions: list[DeadLetterResolution] = []
        duplicates_in_batch: list[EventEnvelope] = []
        for message in messages:
            if message.origin.topic == DEAD_LETTER_TOPIC:
                resolution = resolution_in(message.headers, now)
                if resolution is not None:
                    resolutions.append(resolution)
                    continue
                letter = _edge_dead_letter(message, now)
                if letter is not None:
                    letters.append(letter)
                continue
            try:
                event = decode_event(message.value, message.origin.topic)
            except InvalidEvent as error:
                letters.append(DeadLetter(message.origin, error.reason, error.detail, message.value, now))
                continue
            if event.event_id in valid:
                duplicates_in_batch.append(event)
            else:
                valid[event.event_id] = (event, message.origin)
                payloads[event.event_id] = message.value
                if message.broker_timestamp_s:
                    timestamps[event.event_id] = message.broker_timestamp_s

        started = time.perf_counter()
        with self.store.transaction():
            new_ids = self.store.insert_events(list(valid.values()), now, list(payloads.values()))
            outcome.stored = [event for event, _ in valid.values() if event.event_id in new_ids]
            derived = self.engine.apply(outcome.stored, now)
            # a case reported late may already be due soon or overdue: say so now, not at the next timer tick
            alerts = derived.alerts + self.engine.clock_alerts(now, derived.clocks.values())
            outcome.new_alerts = self.store.insert_alerts(alerts)
            raised = {alert.alert_id for alert in outcome.new_alerts}
            # late evidence: the last derivation wins (an alert raised in this batch and derived again in it too)
            derivations = Counter(alert.alert_id for alert in alerts)
            again = {alert_id for alert_id, count in derivations.items() if alert_id not in raised or count > 1}
            revised = self.store.revise_alerts([alert for alert in alerts if alert.alert_id in again])
            outcome.revised_alerts = [alert for alert in revised if alert.alert_id not in raised]
            upsert_clocks(self.store.con, derived.clocks.values())
            outcome.new_dead_letters = self.store.insert_dead_letters(letters)
            resolved = self.store.resolve_dead_letters(resolutions)
        metrics.STORE_WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.STORE_BATCH_SIZE.observe(len(valid))

        for event in outcome.stored:
            self._ingested[event.type].inc()
        repeated = duplicates_in_batch + [event for event, _ in valid.values() if event.event_id not in new_ids]
        outcome.duplicates = len(repeated)
        for event in repeated:
            self._duplicate[event.type].inc()
        for rule, count in derived.evaluations.items():
            self._evaluations[rule].inc(count)
        if derived.clocks:
            self._set_clock_gauges(now)
        for letter in outcome.new_dead_letters:
            metrics.EVENTS_REJECTED.labels(letter.origin.topic, letter.reason).inc()
        if outcome.new_dead_letters or resolved:
            metrics.DEAD_LETTERS.inc(len(outcome.new_dead_letters) - len(resolved))
        for alert in outcome.new_alerts:
            metrics.ALERTS_RAISED.labels(alert.rule_id, alert.severity.value).inc()
        finished = time.time()
        outcome.broker_timestamps = {
            e.event_id: timestamps[e.event_id] for e in outcome.stored if e.event_id in timestamps
        }
        for timestamp in outcome.broker_timestamps.values():
            metrics.STORE_LATENCY.observe(max(0.0, finished - timestamp))
        metrics.LAST_EVENT_PROCESSED.set(finished)
        return outcome

    def evaluate_clocks(self, now: datetime | None = None) -> list[SafetyAlert]:
        """Due-soon and overdue alerts as of `now` (the worker's timer), stored once; updates the clock gauges."""
        now = now or datetime.now(UTC)
        for rule in (EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE):
            self._evaluations[rule].inc(len(self.engine.clocks))
        with self.store.transaction():
            new = self.store.insert_alerts(self.engine.clock_alerts(now))
        for alert in new:
            metrics.ALERTS_RAISED.labels(alert.rule_id, alert.severity.value).inc()
        self._set_clock_gauges(now)
        return new

    def _set_clock_gauges(self, now: datetime) -> None:
        open_clocks = [row.clock for row in self.engine.clocks.values() if row.clock.submitted_at is None]
        for category in ClockCategory:
            metrics.EXPEDITED_CLOCKS_OPEN.labels(category.value).set(
                sum(1 for clock in open_clocks if clock.category is category))
        metrics.EXPEDITED_NEAREST_DEADLINE.set(
            min((clock.seconds_until_due(now) for clock in open_clocks), default=float("inf")))
        metrics.EXPEDITED_OVERDUE.set(sum(1 for clock in open_clocks if clock.became_overdue(now)))
