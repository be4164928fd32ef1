"""The worker's batch step, independent of Faust: decode -> store (idempotent) -> rules -> derived facts.

A batch is one DuckDB transaction. Derived facts (alerts, dead letters) are written in that same
transaction and only then published (transactional outbox): a crash between the commit and the publish
leaves them marked unpublished, and the next worker publishes them. Nothing accepted is lost, nothing is
stored twice, and the alert topic may at worst see a republish of an alert with the same alert_id.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from pvwatch import metrics
from pvwatch.domain.engine import (
    EXPEDITED_DUE_SOON,
    EXPEDITED_OVERDUE,
    RULE_IDS,
    WITHDRAWABLE_RULES,
    ClockRow,
    EngineOutput,
    SafetyEngine,
)
from pvwatch.domain.expedited import ClockCategory
from pvwatch.domain.parameters import RuleParameters
from pvwatch.errors import InvalidEvent
from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.codec import decode_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import DEAD_LETTER_TOPIC, EVENT_TYPES
from pvwatch.events.report_submission import ExpeditedReportSubmitted
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.eventstore import (
    DeadLetter,
    DeadLetterResolution,
    EventsAlreadyStored,
    EventStore,
    MessageOrigin,
)
from pvwatch.store.expedited import delete_clocks, upsert_clocks
from pvwatch.streams.dead_letters import edge_dead_letter, resolution_in


@dataclass(frozen=True)
class IncomingMessage:
    origin: MessageOrigin
    value: bytes | None
    broker_timestamp_s: float | None = None
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ClockGauges:
    open_by_category: dict[str, int]
    nearest_deadline_s: float
    overdue: int


class OpenClockGauges:
    """The open expedited clocks' gauges, kept up to date clock by clock as batches change them.

    Recounting every clock in every batch that changed one cost 17 ms of a 97 ms batch (adverse events at 1k
    events/s, ~25k clocks in the store; docs/rules.md) and grew with the store. Here a batch costs a few dictionary
    and sorted-list steps per changed clock; the gauges at any time are a count and a binary search."""

    def __init__(self, clocks: Mapping[tuple[str, str], ClockRow]) -> None:
        #: open (unsubmitted) clocks: key -> (category, due_at as a POSIX timestamp)
        self._open: dict[tuple[str, str], tuple[str, float]] = {}
        self._due: list[float] = []  # the open clocks' due_at, sorted
        self._by_category: Counter[str] = Counter()
        self.update(clocks, ())

    def update(self, changed: Mapping[tuple[str, str], ClockRow], removed: Iterable[tuple[str, str]]) -> None:
        """Apply a batch's started or changed clocks and the clocks it removed (EngineOutput)."""
        for key in removed:
            self._forget(key)
        for key, row in changed.items():
            self._forget(key)
            clock = row.clock
            if clock.submitted_at is None:
                due = clock.due_at.timestamp()
                self._open[key] = (clock.category.value, due)
                insort(self._due, due)
                self._by_category[clock.category.value] += 1

    def _forget(self, key: tuple[str, str]) -> None:
        known = self._open.pop(key, None)
        if known is not None:
            category, due = known
            del self._due[bisect_left(self._due, due)]
            self._by_category[category] -= 1

    def gauges(self, now: datetime) -> ClockGauges:
        """As ExpeditedClock reads them: overdue once `now` reaches due_at (`became_overdue`)."""
        at = now.timestamp()
        return ClockGauges(
            open_by_category={category.value: self._by_category[category.value] for category in ClockCategory},
            nearest_deadline_s=self._due[0] - at if self._due else math.inf,
            overdue=bisect_right(self._due, at),
        )


@dataclass
class MetricFacts:
    """What a batch or a timer tick changed in the metrics.

    Gathered where the store is (possibly the writer process, streams/writer.py) and recorded by
    `record_metrics` where /metrics is served, so the worker's single exposition stays complete.
    """

    ingested: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    evaluations: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    alerts_raised: Counter[tuple[str, str]] = field(default_factory=Counter)
    alerts_withdrawn: Counter[str] = field(default_factory=Counter)
    dead_letters_change: int = 0
    #: the open dead letters counted in the store (at start), replacing the running gauge
    dead_letters_open: int | None = None
    clocks: ClockGauges | None = None
    write_seconds: float | None = None
    batch_size: int | None = None
    store_latencies: list[float] = field(default_factory=list)
    finished_at: float | None = None


@dataclass
class BatchOutcome:
    stored: list[EventEnvelope] = field(default_factory=list)
    duplicates: int = 0
    new_alerts: list[SafetyAlert] = field(default_factory=list)
    #: alerts raised before whose evidence or details a late event changed (republished, not counted again)
    revised_alerts: list[SafetyAlert] = field(default_factory=list)
    #: alerts deleted because a late event made them untrue, each with its `withdrawal` (published, counted)
    withdrawn_alerts: list[SafetyAlert] = field(default_factory=list)
    new_dead_letters: list[DeadLetter] = field(default_factory=list)
    #: broker (produce) time of each stored event, for the latency histograms
    broker_timestamps: dict[UUID, float] = field(default_factory=dict)
    metrics: MetricFacts = field(default_factory=MetricFacts)


def initialise_metric_series() -> None:
    """Every event type's and rule's series exported from the start at 0 (a rate needs its first sample)."""
    for event_type in EVENT_TYPES:
        metrics.EVENTS_INGESTED.labels(event_type)
        metrics.EVENTS_DUPLICATE.labels(event_type)
    for rule in RULE_IDS:
        metrics.RULE_EVALUATIONS.labels(rule)
    for rule in sorted(WITHDRAWABLE_RULES):
        metrics.ALERTS_WITHDRAWN.labels(rule)


def record_metrics(facts: MetricFacts) -> None:
    """Apply a batch's (or timer tick's) metric facts to the worker's Prometheus registry (bound children: this
    runs once per batch, i.e. per event at low traffic)."""
    for event_type, count in facts.ingested.items():
        metrics.bound(metrics.EVENTS_INGESTED, event_type).inc(count)
    for event_type, count in facts.duplicates.items():
        metrics.bound(metrics.EVENTS_DUPLICATE, event_type).inc(count)
    for rule, count in facts.evaluations.items():
        metrics.bound(metrics.RULE_EVALUATIONS, rule).inc(count)
    for (topic, reason), count in facts.rejected.items():
        metrics.bound(metrics.EVENTS_REJECTED, topic, reason).inc(count)
    for (rule, severity), count in facts.alerts_raised.items():
        metrics.bound(metrics.ALERTS_RAISED, rule, severity).inc(count)
    for rule, count in facts.alerts_withdrawn.items():
        metrics.bound(metrics.ALERTS_WITHDRAWN, rule).inc(count)
    if facts.dead_letters_open is not None:
        metrics.DEAD_LETTERS.set(facts.dead_letters_open)
    if facts.dead_letters_change:
        metrics.DEAD_LETTERS.inc(facts.dead_letters_change)
    if facts.clocks is not None:
        for category, count in facts.clocks.open_by_category.items():
            metrics.bound(metrics.EXPEDITED_CLOCKS_OPEN, category).set(count)
        metrics.EXPEDITED_NEAREST_DEADLINE.set(facts.clocks.nearest_deadline_s)
        metrics.EXPEDITED_OVERDUE.set(facts.clocks.overdue)
    if facts.write_seconds is not None:
        metrics.STORE_WRITE_SECONDS.observe(facts.write_seconds)
    if facts.batch_size is not None:
        metrics.STORE_BATCH_SIZE.observe(facts.batch_size)
    for latency in facts.store_latencies:
        metrics.STORE_LATENCY.observe(latency)
    if facts.finished_at is not None:
        metrics.LAST_EVENT_PROCESSED.set(facts.finished_at)


class BatchProcessor:
    """Owns the store; called with one batch at a time (a single writer, as DuckDB requires).

    It touches no metric itself: each outcome carries its `MetricFacts` for `record_metrics`.
    """

    def __init__(self, store: EventStore, parameters: RuleParameters | None = None) -> None:
        self.store = store
        self.engine = SafetyEngine(parameters or load_rule_parameters())  # the packaged rules.yaml by default
        for stored in store.iter_events():  # the log is the truth: rebuild the rules' memory from it
            self.engine.remember(stored)
        # the stored alerts a late event may make untrue (the engine withdraws only what stands)
        self.engine.remember_alerts(store.standing_alerts(WITHDRAWABLE_RULES))
        self.open_clocks = OpenClockGauges(self.engine.clocks)

    def process(self, messages: Sequence[IncomingMessage],
                published: tuple[Sequence[str], Sequence[str]] = ((), ())) -> BatchOutcome:
        """One transaction: `published` (alert ids, dead-letter ids the outbox has sent) marked first, then the
        batch stored, its rules run and its derived facts written (a revision in it is unpublished again)."""
        now = datetime.now(UTC)
        outcome = BatchOutcome()
        valid: dict[UUID, tuple[EventEnvelope, MessageOrigin]] = {}
        payloads: dict[UUID, bytes | None] = {}
        timestamps: dict[UUID, float] = {}
        letters: list[DeadLetter] = []
        resolutions: list[DeadLetterResolution] = []
        duplicates_in_batch: list[EventEnvelope] = []
        cases_in_batch: dict[str, str] = {}  # case id -> patient, for the reports of this batch
        for message in messages:
            if message.origin.topic == DEAD_LETTER_TOPIC:
                resolution = resolution_in(message.headers, now)
                if resolution is not None:
                    resolutions.append(resolution)
                    continue
                letter = edge_dead_letter(message.origin, message.value, message.headers, now)
                if letter is not None:
                    letters.append(letter)
                continue
            try:
                event = decode_event(message.value, message.origin.topic)
            except InvalidEvent as error:
                letters.append(DeadLetter(message.origin, error.reason, error.detail, message.value, now))
                continue
            if isinstance(event, AdverseEventReported | ExpeditedReportSubmitted):
                owner = self.engine.case_patient(event.case_id) or cases_in_batch.get(event.case_id)
                if owner is not None and owner != event.patient:
                    letters.append(DeadLetter(message.origin, "case_conflict", (
                        f"case_id {event.case_id} is already the case of another patient: each case id names one "
                        "patient's case (its clocks and alerts are keyed on it); send this report under its own "
                        "case id"), message.value, now))
                    continue
                cases_in_batch[event.case_id] = event.patient
            if event.event_id in valid:
                duplicates_in_batch.append(event)
            else:
                valid[event.event_id] = (event, message.origin)
                payloads[event.event_id] = message.value
                if message.broker_timestamp_s:
                    timestamps[event.event_id] = message.broker_timestamp_s

        started = time.perf_counter()
        try:
            derived, new_ids, resolved = self._store(outcome, valid, payloads, letters, resolutions, published, now,
                                                     all_new=True)
        except EventsAlreadyStored:  # a redelivery (a restart, a rebalance): nothing of that try was kept
            derived, new_ids, resolved = self._store(outcome, valid, payloads, letters, resolutions, published, now,
                                                     all_new=False)
        facts = outcome.metrics
        facts.write_seconds = time.perf_counter() - started
        facts.batch_size = len(valid)

        facts.ingested.update(event.type for event in outcome.stored)
        repeated = duplicates_in_batch + [event for event, _ in valid.values() if event.event_id not in new_ids]
        outcome.duplicates = len(repeated)
        facts.duplicates.update(event.type for event in repeated)
        facts.evaluations.update(derived.evaluations)
        if derived.clocks or derived.removed_clocks:
            facts.clocks = self.open_clocks.gauges(now)
        facts.rejected.update((letter.origin.topic, letter.reason) for letter in outcome.new_dead_letters)
        facts.dead_letters_change = len(outcome.new_dead_letters) - len(resolved)
        facts.alerts_raised.update((alert.rule_id, alert.severity.value) for alert in outcome.new_alerts)
        facts.alerts_withdrawn.update(alert.rule_id for alert in outcome.withdrawn_alerts)
        finished = time.time()
        outcome.broker_timestamps = {
            e.event_id: timestamps[e.event_id] for e in outcome.stored if e.event_id in timestamps
        }
        facts.store_latencies = [max(0.0, finished - t) for t in outcome.broker_timestamps.values()]
        facts.finished_at = finished
        return outcome

    def _store(self, outcome: BatchOutcome, valid: dict[UUID, tuple[EventEnvelope, MessageOrigin]],
               payloads: dict[UUID, bytes | None], letters: list[DeadLetter], resolutions: list[DeadLetterResolution],
               published: tuple[Sequence[str], Sequence[str]], now: datetime, *,
               all_new: bool) -> tuple[EngineOutput, set[UUID], list[str]]:
        """The batch's transaction. With `all_new` the events are inserted as new (the common case, cheaper) and
        `EventsAlreadyStored` voids the transaction before the rules have seen anything, so it can run again."""
        with self.store.transaction():
            self.store.mark_published(*published)  # type: ignore[arg-type]  # str ids are cast by SQL
            new_ids = self.store.insert_events(list(valid.values()), now, list(payloads.values()), all_new=all_new)
            outcome.stored = [event for event, _ in valid.values() if event.event_id in new_ids]
            derived = self.engine.apply(outcome.stored, now)
            self.open_clocks.update(derived.clocks, derived.removed_clocks)  # with the engine's, whatever follows
            # a case reported late may already be due soon or overdue: say so now, not at the next timer tick
            alerts = derived.alerts + self.engine.clock_alerts(now, derived.clocks.values())
            outcome.new_alerts = self.store.insert_alerts(alerts)
            raised = {alert.alert_id for alert in outcome.new_alerts}
            # late evidence: the last derivation wins (an alert raised in this batch and derived again in it too)
            derivations = Counter(alert.alert_id for alert in alerts)
            again = {alert_id for alert_id, count in derivations.items() if alert_id not in raised or count > 1}
            revised = self.store.revise_alerts([alert for alert in alerts if alert.alert_id in again])
            outcome.revised_alerts = [alert for alert in revised if alert.alert_id not in raised]
            # a late event made these untrue (the engine never lists an id it also raised in this batch)
            outcome.withdrawn_alerts = self.store.withdraw_alerts(derived.withdrawn)
            upsert_clocks(self.store.con, derived.clocks.values())
            delete_clocks(self.store.con, derived.removed_clocks)
            outcome.new_dead_letters = self.store.insert_dead_letters(letters)
            resolved = self.store.resolve_dead_letters(resolutions)
        return derived, new_ids, resolved

    def evaluate_clocks(self, now: datetime | None = None) -> tuple[list[SafetyAlert], MetricFacts]:
        """Due-soon and overdue alerts as of `now` (the worker's timer), stored once, and the clock gauges."""
        now = now or datetime.now(UTC)
        facts = MetricFacts()
        for rule in (EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE):
            facts.evaluations[rule] += len(self.engine.clocks)
        with self.store.transaction():
            new = self.store.insert_alerts(self.engine.clock_alerts(now))
        facts.alerts_raised.update((alert.rule_id, alert.severity.value) for alert in new)
        facts.clocks = self.open_clocks.gauges(now)
        return new, facts
