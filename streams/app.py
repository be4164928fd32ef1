"""The Faust worker: one lean agent over every clinical topic, batching into the store.

Faust costs ~400 us per event when each event is a separate step; the agent therefore takes batches
(`take_events`), validates with pydantic, and writes one DuckDB transaction per batch off the event loop.
Events are acknowledged (and their offsets later committed) only after their batch is durable.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import faust
from faust.types import EventT

from pvwatch import metrics
from pvwatch.config import Settings
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.registry import ALERT_TOPIC, DEAD_LETTER_TOPIC, SIGNAL_TOPIC, SOURCE_TOPICS
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.eventstore import EventStore, MessageOrigin
from pvwatch.store.snapshot import SnapshotError, publish_snapshot
from pvwatch.streams.alertmanager import AlertmanagerNotifier, initialise_alert_series, load_direct_routes
from pvwatch.streams.pipeline import BatchProcessor, IncomingMessage

log = logging.getLogger("pvwatch.worker")

#: The next snapshot waits at least this many times the last one's duration (copying at most 1/5 of the time).
SNAPSHOT_BACKOFF = 4.0


def _incoming(event: EventT[Any]) -> IncomingMessage:
    message = event.message
    raw_headers: Any = message.headers or ()
    pairs: Iterable[tuple[str, Any]] = raw_headers.items() if isinstance(raw_headers, Mapping) else raw_headers
    return IncomingMessage(
        origin=MessageOrigin(message.topic, message.partition, message.offset),
        value=message.value,
        broker_timestamp_s=message.timestamp,
        headers={key: value for key, value in pairs if isinstance(value, bytes)},
    )


class Outbox:
    """Publishes derived facts that are durable in the store but not yet on their topics."""

    def __init__(self, store: EventStore, alert_topic: faust.TopicT, dead_letter_topic: faust.TopicT) -> None:
        self.store = store
        self.alert_topic = alert_topic
        self.dead_letter_topic = dead_letter_topic
        self.pending_alerts: list[SafetyAlert] = store.unpublished_alerts()
        self.has_pending_letters = True

    async def flush(self) -> None:
        alerts, self.pending_alerts = self.pending_alerts, []
        letters = await asyncio.to_thread(self.store.unpublished_dead_letters) if self.has_pending_letters else []
        futures = [
            await self.alert_topic.send(key=alert.patient.encode(), value=alert.model_dump_json().encode())
            for alert in alerts
        ]
        for dead_letter_id, topic, reason, detail, payload in letters:
            headers = {"pv-reason": reason.encode(), "pv-detail": detail.encode()[:1000],
                       "pv-source-topic": topic.encode(), "pv-dead-letter-id": dead_letter_id.encode()}
            futures.append(await self.dead_letter_topic.send(key=None, value=payload or b"", headers=headers))
        try:
            await asyncio.gather(*futures)
        except Exception:
            self.pending_alerts = alerts + self.pending_alerts
            raise
        self.has_pending_letters = False
        if alerts or letters:
            await asyncio.to_thread(
                self.store.mark_published, [a.alert_id for a in alerts], [row[0] for row in letters]
            )


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
    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        metrics.WORKER_UP.set(1)

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        metrics.WORKER_UP.set(0)

    def _update_lag(batch: Sequence[EventT[Any]]) -> None:
        last_offsets: dict[Any, int] = {}
        for event in batch:
            tp = event.message.tp
            last_offsets[tp] = max(last_offsets.get(tp, -1), event.message.offset)
        for tp, offset in last_offsets.items():
            highwater = app.consumer.highwater(tp)
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))

    running: dict[str, Any] = {}
    parameters = load_rule_parameters(settings.rules_file, settings.rsi_file)  # a bad rules file fails at start
    direct_routes = load_direct_routes()
    initialise_alert_series(direct_routes)
    url = settings.alertmanager_url
    notifier = AlertmanagerNotifier(url, direct_routes) if url else None  # pages in < 1 s (streams/alertmanager.py)

    @app.agent(source, concurrency=1)
    async def store_and_evaluate(stream: faust.StreamT[bytes]) -> None:
        store = EventStore(settings.db)
        running["store"] = store
        try:
            metrics.BUILD_INFO.info({"version": _version(), "store_schema": str(store.schema_version)})
            processor = BatchProcessor(store, parameters)
            running["processor"] = processor
            gc.freeze()  # the rebuilt histories are permanent: keep them out of every future collection
            outbox = Outbox(store, alert_topic, dead_letter_topic)
            running["outbox"] = outbox
            lock = running["lock"] = asyncio.Lock()
            outbox.pending_alerts.extend(await asyncio.to_thread(processor.evaluate_clocks))
            if notifier:  # alerts a crashed worker stored but never published may never have paged anyone
                notifier.post(outbox.pending_alerts)
            await outbox.flush()
            batches = stream.take_events(  # type: ignore[attr-defined]  # missing from Faust's StreamT stub
                settings.batch_max_events, within=settings.batch_within_s
            )
            async for batch in batches:
                async with lock:  # the clock timer uses the same store connection and engine
                    outcome = await asyncio.to_thread(processor.process, [_incoming(event) for event in batch])
                    if notifier:  # the alerts are durable in DuckDB now; page before publishing them
                        notifier.post(outcome.new_alerts)
                    outbox.pending_alerts.extend(outcome.new_alerts + outcome.revised_alerts)
                    outbox.has_pending_letters |= bool(outcome.new_dead_letters)
                    await outbox.flush()
                published = time.time()
                for alert in outcome.new_alerts:
                    produced = outcome.broker_timestamps.get(alert.evidence_event_ids[-1])
                    if produced:
                        metrics.ALERT_LATENCY.observe(max(0.0, published - produced))
                _update_lag(batch)
        finally:
            if notifier:
                await notifier.close()
            running.pop("store", None)
            running.pop("processor", None)
            running.pop("outbox", None)
            running.pop("lock", None)
            metrics.WORKER_UP.set(0)
            store.close()

    @app.timer(settings.clock_interval_s)  # type: ignore[untyped-decorator]
    async def evaluate_expedited_clocks() -> None:
        """Due-soon and overdue are functions of time, not of new events: re-evaluate the open clocks."""
        processor: BatchProcessor | None = running.get("processor")
        outbox: Outbox | None = running.get("outbox")
        if processor is None or outbox is None:
            return
        async with running["lock"]:
            alerts = await asyncio.to_thread(processor.evaluate_clocks)
            if alerts:
                if notifier:
                    notifier.post(alerts)
                outbox.pending_alerts.extend(alerts)
                await outbox.flush()

    if settings.snapshot_interval_s > 0:

        next_snapshot = {"at": 0.0}

        @app.timer(settings.snapshot_interval_s)  # type: ignore[untyped-decorator]
        async def publish_read_snapshot() -> None:
            """Analysts and the dashboard read this copy: DuckDB lets no other process open the live file.

            A snapshot copies the whole store (about 1 s for 50k events here), so as the store grows the worker
            backs off: it spends at most a fifth of its time copying (docs/analysts.md, staleness).
            """
            store = running.get("store")
            if store is None or time.monotonic() < next_snapshot["at"]:
                return
            try:
                info = await asyncio.to_thread(publish_snapshot, store.con, settings.snapshot_target)
            except SnapshotError as error:
                log.warning("snapshot failed: %s", error)
                return
            next_snapshot["at"] = time.monotonic() + SNAPSHOT_BACKOFF * info.seconds
            metrics.SNAPSHOT_TAKEN.set(info.taken_at.timestamp())

    if settings.signal_interval_s > 0:
        from pvwatch.store.signals import MaxSprtMonitor, thresholds_from_settings
        from pvwatch.streams.signal_timer import refresh_and_publish

        signal_topic = app.topic(SIGNAL_TOPIC, key_serializer="raw", value_serializer="raw")
        signal_thresholds = thresholds_from_settings(settings)
        msc_monitor = MaxSprtMonitor.from_settings(settings)

        @app.timer(settings.signal_interval_s)  # type: ignore[untyped-decorator]
        async def recompute_signals() -> None:
            """Disproportionality signals over the whole store (docs/signals.md), published when new or stronger."""
            store = running.get("store")
            if store is not None:
                await refresh_and_publish(store, signal_topic, signal_thresholds, msc_monitor)

    return app


def _version() -> str:
    from importlib.metadata import version

    return version("pvwatch")
