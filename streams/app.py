"""The Faust worker: one lean agent over every clinical topic, batching into the store.

Faust costs ~400 us per event when each event is a separate step; the agent therefore takes batches
(`take_events`) and hands each to the store writer (streams/writer.py: a child process by default, so
validation, the DuckDB transaction and the rules run on another core than Faust's consumer).
Events are acknowledged (and their offsets later committed) only after their batch is durable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import faust
from faust.types import EventT

from pvwatch import metrics
from pvwatch.config import Settings
from pvwatch.domain.engine import RULE_IDS
from pvwatch.events.registry import ALERT_TOPIC, DEAD_LETTER_TOPIC, SIGNAL_TOPIC, SOURCE_TOPICS
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.snapshot import SnapshotError, publish_snapshot
from pvwatch.streams.alert_resend import already_on_topic
from pvwatch.streams.alertmanager import AlertmanagerNotifier, initialise_alert_series, load_direct_routes
from pvwatch.streams.dead_letters import stored_dead_letter_headers
from pvwatch.streams.pipeline import initialise_metric_series, record_metrics
from pvwatch.streams.writer import (
    BatchReply,
    ClockReply,
    PublishableAlert,
    RawMessage,
    WriterClient,
    WriterFailed,
    start_writer,
)

log = logging.getLogger("pvwatch.worker")

#: The next snapshot waits at least this many times the last one's duration (copying at most 1/5 of the time).
SNAPSHOT_BACKOFF = 4.0
#: The worker's exit code when its store writer process died (restart it: it resumes from committed offsets).
EXIT_WRITER_FAILED = 70


def _incoming(event: EventT[Any]) -> RawMessage:
    message = event.message
    raw_headers: Any = message.headers or ()
    pairs: Iterable[tuple[str, Any]] = raw_headers.items() if isinstance(raw_headers, Mapping) else raw_headers
    headers = {key: value for key, value in pairs if isinstance(value, bytes)}
    return message.topic, message.partition, message.offset, message.value, message.timestamp, headers


def _stop_worker(failure: WriterFailed) -> None:
    """The writer died: stop at once, committing nothing more (the restart resumes from committed offsets and
    the store's idempotence on event_id drops what it had already stored)."""
    log.critical("stopping the worker: %s", failure)
    print(f"pvwatch worker: {failure}", file=sys.stderr, flush=True)
    os._exit(EXIT_WRITER_FAILED)


class Outbox:
    """Publishes derived facts that are durable in the store but not yet on their topics.

    Flushes run one at a time, in the order they were asked for, so alerts reach their topic in batch order. They
    run beside the batches, not between them: the next batch is stored while this one's alerts are sent. What was
    sent is marked published in the store by the next batch's transaction (`take_marks`), or at the clock timer or
    the stop if no batch comes; a crash before that republishes those alerts under the same alert_id.
    """

    def __init__(self, writer: WriterClient, alert_topic: faust.TopicT, dead_letter_topic: faust.TopicT,
                 pending_alerts: list[PublishableAlert]) -> None:
        self.writer = writer
        self.alert_topic = alert_topic
        self.dead_letter_topic = dead_letter_topic
        self.pending_alerts = pending_alerts
        self.has_pending_letters = True
        #: sent, not yet marked published in the store
        self.sent_alert_ids: dict[str, None] = {}
        self.sent_dead_letter_ids: list[str] = []
        #: dead letters sent whose published mark is not yet in the store (forgotten once it is: see _flush)
        self.dead_letters_sent: set[str] = set()
        self._one_at_a_time = asyncio.Lock()
        self._flushing: set[asyncio.Task[None]] = set()
        #: set when the stop begins: its sweep (add_unknown_unpublished) sends what a clock tick stores from then on
        self.stopping = False

    def add(self, reply: BatchReply | ClockReply) -> None:
        """A batch's (or clock tick's) new alerts, revisions to send again and withdrawals.

        The store marks an alert and its withdrawal published by the alert id they share, so a send of an id made
        before this reply must not mark what the reply stored under it since (a revision, a withdrawal, an alert
        raised again after its withdrawal): that mark waits for the new message's own send."""
        if isinstance(reply, ClockReply):
            self.pending_alerts.extend(reply.alerts)
            return
        changed = reply.new_alerts + reply.revised_alerts + reply.withdrawn_alerts
        self.pending_alerts.extend(changed)
        for alert in changed:
            self.sent_alert_ids.pop(alert.alert_id, None)
        self.has_pending_letters |= reply.new_dead_letters

    def take_marks(self) -> tuple[list[str], list[str]]:
        """The alert and dead-letter ids sent since the last call, for the store to mark published."""
        alerts, self.sent_alert_ids = list(self.sent_alert_ids), {}
        letters, self.sent_dead_letter_ids = self.sent_dead_letter_ids, []
        return alerts, letters

    async def add_unknown_unpublished(self) -> list[PublishableAlert]:
        """Add (and return) the alerts the store holds unpublished that this outbox never received: a clock tick
        the stop cancelled or cut short after the writer had stored its alerts."""
        known = set(self.sent_alert_ids) | {alert.alert_id for alert in self.pending_alerts}
        unknown = [alert for alert in await self.writer.unpublished_alerts() if alert.alert_id not in known]
        self.pending_alerts.extend(unknown)
        return unknown

    async def mark_sent(self) -> None:
        """Mark what was sent published now (no batch is coming to carry the marks)."""
        alert_ids, dead_letter_ids = self.take_marks()
        if alert_ids or dead_letter_ids:
            await self.writer.mark_published(alert_ids, dead_letter_ids)

    def flush_soon(self) -> None:
        """Send what is pending in the background, after the flushes asked for before."""
        task = asyncio.ensure_future(self._flush_logged())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception as error:  # the alerts stay pending (durable in the store too): the next flush retries
            log.warning("publishing alerts failed (kept, retried at the next flush): %s", error)

    async def drain(self, timeout_s: float) -> None:
        """Wait for the background flushes (at the stop)."""
        if self._flushing:
            await asyncio.wait(list(self._flushing), timeout=timeout_s)

    async def flush(self) -> None:
        async with self._one_at_a_time:
            await self._flush()

    async def _flush(self) -> None:
        alerts, self.pending_alerts = self.pending_alerts, []
        # taken now: a batch that dead-letters more while this flush awaits sets it again for the next flush
        want_letters, self.has_pending_letters = self.has_pending_letters, False
        try:  # whatever fails (reading the letters, a send refused at once, a delivery), all is sent again later
            letters = await self.writer.unpublished_dead_letters() if want_letters else []
            if want_letters:  # a sent letter missing from the store's unpublished ones has its mark stored: forget it
                self.dead_letters_sent &= {row[0] for row in letters}
            # a letter this worker sent stays unpublished in the store until a later batch carries its mark: never
            # twice
            letters = [row for row in letters if row[0] not in self.dead_letters_sent]
            futures = [await self.alert_topic.send(key=alert.key, value=alert.value) for alert in alerts]
            for dead_letter_id, topic, reason, detail, payload in letters:
                headers = stored_dead_letter_headers(dead_letter_id, topic, reason, detail)
                futures.append(await self.dead_letter_topic.send(key=None, value=payload or b"", headers=headers))
            await asyncio.gather(*futures)
        except Exception:
            self.pending_alerts = alerts + self.pending_alerts
            self.has_pending_letters |= want_letters
            raise
        published = time.time()
        # what was sent is marked first: were a metric to fail below, the sends would still be marked published
        waiting = {alert.alert_id for alert in self.pending_alerts}  # revised meanwhile: marked after their send
        self.sent_alert_ids.update((alert.alert_id, None) for alert in alerts if alert.alert_id not in waiting)
        self.sent_dead_letter_ids.extend(row[0] for row in letters)
        self.dead_letters_sent.update(row[0] for row in letters)
        count_replay_withdrawals(alerts)
        for alert in alerts:  # new alerts of a live batch carry their evidence's produce time
            if alert.evidence_produced_at:
                metrics.ALERT_LATENCY.observe(max(0.0, published - alert.evidence_produced_at))


def count_replay_withdrawals(sent: Iterable[PublishableAlert]) -> None:
    """Count the withdrawals `pvwatch replay` recorded (no withdrawing event) once they are on the alert topic.
    Replay runs without a worker, so the worker that publishes them counts them, once: a restarted worker does not
    send again what is marked published or already on the topic (_not_yet_on_topic). The engine's own withdrawals
    are counted where it makes them (pv_alerts_withdrawn_total)."""
    for alert in sent:
        if b'"withdrawal":' in alert.value:  # only a withdrawal's message has the key: the rest are not parsed
            message = alert.alert()
            if message.withdrawal is not None and message.withdrawal.event_id is None:
                metrics.bound(metrics.ALERTS_WITHDRAWN_BY_REPLAY, message.rule_id).inc()


async def _not_yet_on_topic(bootstrap: str, writer: WriterClient,
                            pending: list[PublishableAlert]) -> list[PublishableAlert]:
    """A crashed worker's unmarked alerts that never reached the alert topic; those that did are marked published
    (streams/alert_resend.py), so a kill -9 does not put an alert on the topic twice."""
    on_topic = await asyncio.get_running_loop().run_in_executor(None, already_on_topic, bootstrap, ALERT_TOPIC,
                                                                pending)
    if on_topic:
        await writer.mark_published(sorted(on_topic), [])
    return [alert for alert in pending if alert.alert_id not in on_topic]


class TakenEvents:
    """Events the agent has taken and the writer has not stored yet, handed to the writer in take order.

    Faust's `noack_take` fills its buffer only while the agent waits in the take: it holds the buffer while the
    agent's body runs (faust/streams.py, `add_to_buffer` awaits `buffer_consuming`). So the body never waits for
    the writer: it queues what it took and goes back to the take, and one task stores the queue in order, one
    batch of at most `batch_max` events at a time: the writer's next batch is what arrived while it stored the last.
    """

    def __init__(self, store: Callable[[list[EventT[Any]]], Awaitable[None]], batch_max: int) -> None:
        self._store = store
        self._batch_max = batch_max
        self._waiting: list[EventT[Any]] = []
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._stopping = False
        self._task = asyncio.ensure_future(self._store_in_order())

    async def put(self, batch: Sequence[EventT[Any]]) -> None:
        """Queue a taken batch; waits only while a whole batch already waits (the writer is behind)."""
        self._raise_if_failed()
        self._waiting.extend(batch)
        self._arrived.set()
        while len(self._waiting) >= self._batch_max and not self._task.done():
            self._room.clear()
            room = asyncio.ensure_future(self._room.wait())
            await asyncio.wait([room, self._task], return_when=asyncio.FIRST_COMPLETED)
            room.cancel()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._task.done():
            self._task.result()  # a failed batch stops the agent here (Faust restarts it)

    async def _store_in_order(self) -> None:
        while not self._stopping:
            await self._arrived.wait()
            self._arrived.clear()
            while self._waiting and not self._stopping:
                batch = self._waiting[:self._batch_max]
                del self._waiting[:len(batch)]
                self._room.set()
                await self._store(batch)

    async def stop(self, timeout_s: float) -> None:
        """Finish the batch being stored; events still queued are not acknowledged (delivered again)."""
        self._stopping = True
        self._arrived.set()
        await asyncio.wait([self._task], timeout=timeout_s)
        if not self._task.done():
            self._task.cancel()
        elif not self._task.cancelled() and self._task.exception():
            log.warning("a last batch was not completed (its events are delivered again): %s", self._task.exception())


def build_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        # the consumer side uses streams/transport.py: a fetch wait the embedded broker does not hold for 1.5 s
        broker_consumer=[f"pvkafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        store="memory://",
        datadir=str(settings.db.parent / "faust-data"),
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_allow_declare=False,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_max_poll_records=settings.batch_max_events,
        stream_buffer_maxsize=max(16_384, settings.batch_max_events * 2),
        producer_linger=0.005,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(*SOURCE_TOPICS, DEAD_LETTER_TOPIC, key_serializer="raw", value_serializer="raw")
    alert_topic = app.topic(ALERT_TOPIC, key_serializer="raw", value_serializer="raw")
    dead_letter_topic = app.topic(DEAD_LETTER_TOPIC, key_serializer="raw", value_serializer="raw")
    running: dict[str, Any] = {}

    def _set_up() -> None:
        """Up once partitions are assigned and the writer has opened the store (it may finish later)."""
        metrics.WORKER_UP.set(1 if running.get("assigned") and "outbox" in running else 0)

    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        running["assigned"] = True
        _set_up()

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        running["assigned"] = False
        _set_up()

    def _update_lag(batch: Sequence[EventT[Any]]) -> None:
        last_offsets: dict[Any, int] = {}
        for event in batch:
            tp = event.message.tp
            last_offsets[tp] = max(last_offsets.get(tp, -1), event.message.offset)
        for tp, offset in last_offsets.items():
            highwater = app.consumer.highwater(tp)
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))

    load_rule_parameters(settings.rules_file, settings.rsi_file)  # a bad rules file fails here, not in the writer
    direct_routes = load_direct_routes()
    initialise_alert_series(direct_routes)
    url = settings.alertmanager_url
    notifier = AlertmanagerNotifier(url, direct_routes) if url else None  # pages in < 1 s (streams/alertmanager.py)

    def _page(alerts: list[PublishableAlert]) -> None:
        if notifier:
            notifier.post(alert.alert() for alert in alerts if alert.critical)

    @app.agent(source, concurrency=1)
    async def store_and_evaluate(stream: faust.StreamT[bytes]) -> None:
        initialise_metric_series()
        for rule in RULE_IDS:  # at 0 from the start, as pv_alerts_withdrawn_total's series
            metrics.ALERTS_WITHDRAWN_BY_REPLAY.labels(rule)
        # opening the store and rebuilding the rules' memory happen in the writer, off the event loop
        writer, opening = await start_writer(settings.db, settings.rules_file, settings.rsi_file,
                                             in_process=not settings.writer_process, on_failure=_stop_worker)
        running["writer"] = writer
        taken: TakenEvents | None = None
        try:
            metrics.BUILD_INFO.info({"version": _version(), "store_schema": str(opening.schema_version)})
            record_metrics(opening.metrics)
            unsent = await _not_yet_on_topic(settings.kafka_bootstrap, writer, opening.pending_alerts)
            outbox = Outbox(writer, alert_topic, dead_letter_topic, unsent)
            running["outbox"] = outbox
            _set_up()
            _page(outbox.pending_alerts)  # alerts a crashed worker stored but never published may never have paged
            await outbox.flush()
            await outbox.mark_sent()

            async def complete(batch: Sequence[EventT[Any]]) -> None:
                """Store a batch, hand its alerts to the outbox, then acknowledge its events."""
                reply = await writer.process([_incoming(event) for event in batch], *outbox.take_marks())
                record_metrics(reply.metrics)
                _page(reply.new_alerts + reply.withdrawn_alerts)  # durable in DuckDB now; page (or resolve) first
                outbox.add(reply)
                outbox.flush_soon()  # beside the next batch; the store republishes them if the worker dies first
                for event in batch:  # offsets move only now, after the batch is durable
                    await stream.ack(event)
                _update_lag(batch)

            # Events are acknowledged by `complete`, in take order (one batch with the writer at a time), never by
            # the take itself.
            batches = stream.noack_take(  # type: ignore[attr-defined]  # missing from Faust's StreamT stub
                settings.batch_max_events, within=settings.batch_within_s
            )
            taken = TakenEvents(complete, settings.batch_max_events)
            async for batch in batches:
                await taken.put(batch)  # returns at once unless a whole batch already waits for the writer
        finally:
            try:
                if taken is not None:
                    await taken.stop(30)
                if "outbox" in running:
                    await _stop_outbox(running["outbox"], _page)
                if notifier:
                    await notifier.close()
            finally:  # whatever happened above, the store is closed (checkpointed), not left to the child's death
                running.pop("writer", None)
                running.pop("outbox", None)
                metrics.WORKER_UP.set(0)
                await writer.close()

    @app.timer(settings.clock_interval_s)  # type: ignore[untyped-decorator]
    async def evaluate_expedited_clocks() -> None:
        """Due-soon and overdue are functions of time, not of new events: re-evaluate the open clocks."""
        writer: WriterClient | None = running.get("writer")
        outbox: Outbox | None = running.get("outbox")
        if writer is None or outbox is None:
            return
        reply = await writer.evaluate_clocks()  # between two batches: the writer runs its calls one at a time
        record_metrics(reply.metrics)
        if outbox.stopping:
            return  # the stop's sweep reads this tick's alerts from the store: added here too, they would go twice
        if reply.alerts:
            _page(reply.alerts)
            outbox.add(reply)
            await outbox.flush()
        await outbox.mark_sent()  # a quiet stream carries no marks in batches

    if settings.snapshot_interval_s > 0:

        next_snapshot = {"at": 0.0}

        @app.timer(settings.snapshot_interval_s)  # type: ignore[untyped-decorator]
        async def publish_read_snapshot() -> None:
            """Analysts and the dashboard read this copy: DuckDB lets no other process open the live file.

            A snapshot appends what changed since the last one (store/snapshot.py), but its cost still grows with
            the derived tables, so the worker backs off: at most a fifth of its time copying (docs/analysts.md).
            """
            writer: WriterClient | None = running.get("writer")
            if writer is None or time.monotonic() < next_snapshot["at"]:
                return
            try:
                info = await writer.run_on_store("snapshot", publish_snapshot, settings.snapshot_target)
            except SnapshotError as error:
                log.warning("snapshot failed: %s", error)
                return
            next_snapshot["at"] = time.monotonic() + SNAPSHOT_BACKOFF * info.seconds
            metrics.SNAPSHOT_TAKEN.set(info.taken_at.timestamp())

    if settings.signal_interval_s > 0:
        from pvwatch.store.signals import MaxSprtMonitor, thresholds_from_settings
        from pvwatch.streams.signal_timer import initialise_signal_series, refresh_and_publish

        signal_topic = app.topic(SIGNAL_TOPIC, key_serializer="raw", value_serializer="raw")
        signal_thresholds = thresholds_from_settings(settings)
        msc_monitor = MaxSprtMonitor.from_settings(settings)
        initialise_signal_series(signal_thresholds, msc_monitor)  # at 0: the alerting rules see the first

        @app.timer(settings.signal_interval_s)  # type: ignore[untyped-decorator]
        async def recompute_signals() -> None:
            """Disproportionality signals over the whole store (docs/signals.md), published when new or stronger."""
            writer: WriterClient | None = running.get("writer")
            if writer is not None:
                await refresh_and_publish(writer, signal_topic, signal_thresholds, msc_monitor)

    return app


async def _stop_outbox(outbox: Outbox, page: Callable[[list[PublishableAlert]], None] = lambda alerts: None) -> None:
    """Send what is pending and mark it published, so a clean stop leaves nothing to republish; `page` gets the
    alerts only the stop found (they were never paged)."""
    outbox.stopping = True
    try:
        await outbox.drain(30)
        page(await outbox.add_unknown_unpublished())
        await outbox.flush()
        await outbox.mark_sent()
    except Exception as error:  # what is left stays unpublished in the store: the next worker publishes it
        log.warning("alerts left for the next worker to publish: %s", error)


def _version() -> str:
    from importlib.metadata import version

    return version("pvwatch")
