"""The store's single writer in a child process, so the batch step and Faust's consumer use different cores.

Why: `BatchProcessor.process` costs ~60 us/event alone but 110-140 us/event inside the worker, where it shares the
GIL with Faust's consumer (~100 us/event; docs/rules.md, issue 5). In a child process both run at once.

The parent sends each batch as plain tuples (cheap to pickle) and gets back only what it publishes and records:
the alerts already serialised for pv.safety.alert.v1, whether dead letters wait for the outbox, and the metric
facts (streams/pipeline.py `record_metrics`). The agent acknowledges a batch only after the reply, so a batch is
durable before its offsets move (streams/app.py). One batch is in flight at a time.

Every store user in the worker goes through the writer, each on its own pipe served by its own thread in the
child, so they run concurrently as they did on cursors of one connection:
- "batch": the `StoreWriter` methods (batches, expedited clocks, the outbox), strictly one at a time;
- "snapshot", "signals": `fn(con, *args)` for a module-level function over the store's connection.

`InProcessWriter` runs the same `StoreWriter` in the worker's own process (PVWATCH_WRITER_PROCESS=false). If the
child dies, the next call reports `WriterFailed` to the worker's `on_failure`, which stops the worker.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import duckdb

from pvwatch.errors import PvwatchError
from pvwatch.events.alert import SafetyAlert, Severity
from pvwatch.events.codec import load_validators
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.eventstore import EventStore, MessageOrigin, StoreLocked
from pvwatch.streams.pipeline import BatchProcessor, IncomingMessage, MetricFacts

log = logging.getLogger("pvwatch.writer")

T = TypeVar("T")

#: (topic, partition, offset, value, broker timestamp in s, headers): one consumed message, as the parent sends it
RawMessage = tuple[str, int, int, bytes | None, float | None, dict[str, bytes]]
#: pipes besides "batch", each with its own thread in the child (long reads that must not hold up batches)
BACKGROUND_CHANNELS = ("snapshot", "signals")
#: Nice value of the background channels' threads in the child (the batch thread keeps the process's)
BACKGROUND_NICE = 10
#: How long a starting writer waits for the store's lock (held by a previous writer still exiting)
STORE_LOCK_WAIT_S = 10.0
#: A checkpoint blocks the writer: DuckDB runs its own inside the COMMIT that takes the WAL past 16 MB, holding up
#: that batch's reply and every batch queued behind it (0.25-1.3 s seen at 1k events/s: docs/rules.md). The writer
#: checkpoints instead when it has had nothing to do for IDLE_CHECKPOINT_S and the WAL holds IDLE_CHECKPOINT_BYTES,
#: and, under traffic that never pauses, after a batch's reply once the WAL holds WAL_CHECKPOINT_BYTES.
IDLE_CHECKPOINT_S = 0.5
IDLE_CHECKPOINT_BYTES = 256 * 1024
WAL_CHECKPOINT_BYTES = 16 * 1024 * 1024
#: DuckDB's automatic checkpoint stays as the WAL's bound for commits outside the batch loop (signal refreshes)
WAL_LIMIT = "64MB"


class WriterFailed(PvwatchError):
    """The writer process died: nothing after its last reply is durable, so the worker must stop."""


class WriterError(PvwatchError):
    """An error in the writer process that could not be sent back as itself (its text is kept)."""


def tune_gc() -> None:
    """The rules keep every patient's history in memory, so the heap holds many long-lived objects and the
    default cyclic-GC thresholds rescan them constantly (measured: validation 38 us/event with GC, 8 without).
    pvwatch creates few reference cycles; collect young objects far less often."""
    gc.set_threshold(100_000, 50, 100)


#: Young objects between two collections in the writer child. With every collection's survivors frozen
#: (`_freeze_survivors`), a collection scans only the objects made since the last one, so this bounds each pause.
WRITER_GC_YOUNG = 10_000
#: How often, at most, a paused writer collects what it froze: the signal threads' libraries leave a few cycles
#: per recomputation (threadpoolctl controllers, 6 per refresh), which a frozen generation would keep for good.
FROZEN_COLLECT_S = 600.0


def tune_writer_gc() -> None:
    """Many short collections instead of few long ones, each inside whichever batch is running: at the worker's
    100,000 a young collection took 100-130 ms in a batch at 1k events/s (load 4-5; once 496 ms), and every batch
    queued behind it waited as long (docs/rules.md)."""
    gc.set_threshold(WRITER_GC_YOUNG, 50, 100)
    gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """After every collection, move its survivors out of every later one (`gc.freeze`).

    What survives in the writer is the rules' memory of each patient (a worker started on an empty store holds none
    at its `gc.freeze()`): ~7.5 new objects per clinical event, ~11 per adverse event, all kept. Rescanning them made
    each collection longer than the last (a full one 0.2-0.4 s, /work/briefs/latency.md). Freezing stops only the
    cyclic collector, not reference counting, and the batch path makes no cyclic garbage (measured: a collection
    after 120 batches of 50 events of either workload, GC off, found 0 unreachable objects), so nothing leaks there.
    """
    if phase == "stop":
        gc.freeze()


class FrozenCollector:
    """A full collection of everything frozen, run only while the traffic pauses and at most every `every_s`:
    it takes 0.2-0.4 s over the rules' memory, which no batch should wait for."""

    def __init__(self, every_s: float = FROZEN_COLLECT_S) -> None:
        self.every_s = every_s
        self._last = time.monotonic()

    def collect_if_due(self) -> bool:
        if time.monotonic() - self._last < self.every_s:
            return False
        gc.unfreeze()
        gc.collect()  # its survivors are frozen again by _freeze_survivors
        self._last = time.monotonic()
        return True


def _lower_priority() -> None:
    """Run this thread (snapshot copy, signal recomputation) at a lower CPU priority than the batch thread: on 2
    cores shared with Faust and the broker, a snapshot competing at equal priority stalled batches for 0.2-1 s.
    DuckDB's own worker thread keeps its priority: with one DuckDB thread (so that background queries would run
    only here) every batch write took twice as long (/work/briefs/latency.md). Linux only (a thread's nice value)."""
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


class PublishableAlert(NamedTuple):
    """An alert (or its withdrawal: the alert with `withdrawal` set) as the outbox sends it: serialised where it was
    derived, so the parent only forwards bytes."""

    alert_id: str
    #: the alert id: the partition key of pv.safety.alert.v1, so every message about one alert (raised, revised,
    #: withdrawn) lands on one partition in the order sent, and a compacted topic keeps each alert's latest
    key: bytes
    value: bytes  # the SafetyAlert JSON
    critical: bool
    #: broker (produce) time of the alert's last evidence event, for the alert latency histogram
    evidence_produced_at: float | None = None

    def alert(self) -> SafetyAlert:
        return SafetyAlert.model_validate_json(self.value)


def publishable(alert: SafetyAlert, produced_at: float | None = None) -> PublishableAlert:
    alert_id = str(alert.alert_id)
    return PublishableAlert(alert_id, alert_id.encode(), alert.wire_json(),
                            alert.severity is Severity.CRITICAL, produced_at)


@dataclass
class WriterOpening:
    """What the worker needs from the store at start."""

    schema_version: int
    #: alerts and withdrawals stored but never published (a crashed worker's), then the clock alerts due now
    pending_alerts: list[PublishableAlert]
    metrics: MetricFacts


@dataclass
class BatchReply:
    new_alerts: list[PublishableAlert] = field(default_factory=list)
    #: alerts raised before whose evidence or details a late event changed (republished, not counted again)
    revised_alerts: list[PublishableAlert] = field(default_factory=list)
    #: alerts a late event made untrue: deleted from the store, their withdrawal to publish (and resolve in
    #: Alertmanager)
    withdrawn_alerts: list[PublishableAlert] = field(default_factory=list)
    new_dead_letters: bool = False
    metrics: MetricFacts = field(default_factory=MetricFacts)


@dataclass
class ClockReply:
    alerts: list[PublishableAlert]
    metrics: MetricFacts


class StoreWriter:
    """The event store and the batch step, wherever they run; returns only plain, picklable replies."""

    #: the methods a client may call over the "batch" channel
    METHODS = frozenset({"opening", "process", "evaluate_clocks", "unpublished_alerts", "unpublished_dead_letters",
                         "mark_published"})

    def __init__(self, db: Path, rules_file: Path | None, rsi_file: Path | None) -> None:
        self.store = _open_store(db)
        try:
            self.processor = BatchProcessor(self.store, load_rule_parameters(rules_file, rsi_file))
        except BaseException:
            self.store.close()
            raise
        self.store.con.execute(f"SET checkpoint_threshold = '{WAL_LIMIT}'")  # `checkpoint_if_due` checkpoints first
        load_validators()  # the UCUM grammar (~0.4 s) now, not in the first lab batch's alert latency
        gc.freeze()  # the rebuilt histories are permanent: keep them out of every future collection

    def opening(self) -> WriterOpening:
        pending = self.unpublished_alerts()
        clocks = self.evaluate_clocks()
        clocks.metrics.dead_letters_open = self.store.open_dead_letter_count()
        return WriterOpening(self.store.schema_version, pending + clocks.alerts, clocks.metrics)

    def process(self, batch: Sequence[RawMessage], published_alert_ids: Sequence[str] = (),
                published_dead_letter_ids: Sequence[str] = ()) -> BatchReply:
        """Store a batch; the outbox's sends since the last batch are marked published in its transaction."""
        outcome = self.processor.process([
            IncomingMessage(MessageOrigin(topic, partition, offset), value, timestamp, headers)
            for topic, partition, offset, value, timestamp, headers in batch
        ], published=(published_alert_ids, published_dead_letter_ids))
        produced = outcome.broker_timestamps
        return BatchReply(
            new_alerts=[publishable(a, produced.get(a.evidence_event_ids[-1])) for a in outcome.new_alerts],
            revised_alerts=[publishable(alert) for alert in outcome.revised_alerts],
            withdrawn_alerts=[publishable(alert) for alert in outcome.withdrawn_alerts],
            new_dead_letters=bool(outcome.new_dead_letters),
            metrics=outcome.metrics,
        )

    def evaluate_clocks(self) -> ClockReply:
        alerts, facts = self.processor.evaluate_clocks()
        return ClockReply([publishable(alert) for alert in alerts], facts)

    def unpublished_alerts(self) -> list[PublishableAlert]:
        """Alerts and withdrawals stored but not yet marked published."""
        return [publishable(alert) for alert in self.store.unpublished_alerts()]

    def unpublished_dead_letters(self) -> list[tuple[str, str, str, str, bytes | None]]:
        return self.store.unpublished_dead_letters()

    def mark_published(self, alert_ids: list[str], dead_letter_ids: list[str]) -> None:
        self.store.mark_published(alert_ids, dead_letter_ids)  # type: ignore[arg-type]  # str ids are cast by SQL

    def checkpoint_if_due(self, wal_bytes: int = WAL_CHECKPOINT_BYTES) -> bool:
        """Checkpoint once the WAL holds `wal_bytes` (between calls: after a batch's reply, or when idle). True if it
        checkpointed."""
        if self.store.wal_bytes() < wal_bytes:
            return False
        try:
            self.store.con.execute("CHECKPOINT")
        except duckdb.Error as error:  # the WAL stays (DuckDB's own checkpoint bounds it): the next batch retries
            log.warning("checkpoint after a batch failed (retried after the next one): %s", error)
            return False
        return True

    def close(self) -> None:
        self.store.close()


def _open_store(db: Path, wait_s: float = STORE_LOCK_WAIT_S) -> EventStore:
    """A worker restarted right after a crash may find its old writer still exiting: wait for its lock."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return EventStore(db)
        except StoreLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class WriterClient:
    """The worker's access to the store: typed calls, run off the event loop."""

    async def call(self, method: str, *args: Any) -> Any:
        raise NotImplementedError

    async def run_on_store(self, channel: str, function: Callable[..., T], *args: Any) -> T:
        """`function(con, *args)` over the store's connection, on `channel` (one of BACKGROUND_CHANNELS)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def opening(self) -> WriterOpening:
        result: WriterOpening = await self.call("opening")
        return result

    async def process(self, batch: list[RawMessage], published_alert_ids: Sequence[str] = (),
                      published_dead_letter_ids: Sequence[str] = ()) -> BatchReply:
        result: BatchReply = await self.call("process", batch, published_alert_ids, published_dead_letter_ids)
        return result

    async def evaluate_clocks(self) -> ClockReply:
        result: ClockReply = await self.call("evaluate_clocks")
        return result

    async def unpublished_alerts(self) -> list[PublishableAlert]:
        result: list[PublishableAlert] = await self.call("unpublished_alerts")
        return result

    async def unpublished_dead_letters(self) -> list[tuple[str, str, str, str, bytes | None]]:
        result: list[tuple[str, str, str, str, bytes | None]] = await self.call("unpublished_dead_letters")
        return result

    async def mark_published(self, alert_ids: list[str], dead_letter_ids: list[str]) -> None:
        await self.call("mark_published", alert_ids, dead_letter_ids)


class InProcessWriter(WriterClient):
    """The store in the worker's own process (PVWATCH_WRITER_PROCESS=false): simpler to debug, slower."""

    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer
        self._batch_lock = threading.Lock()  # the batch channel's methods run one at a time, as in the child

    @classmethod
    async def start(cls, db: Path, rules_file: Path | None, rsi_file: Path | None) -> InProcessWriter:
        return cls(await asyncio.to_thread(StoreWriter, db, rules_file, rsi_file))

    def _locked(self, method: str, *args: Any) -> Any:
        with self._batch_lock:
            result = getattr(self.writer, method)(*args)
            if method == "process":
                self.writer.checkpoint_if_due()  # unlike the child's, before this batch's reply: a debug mode
            return result

    async def call(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(self._locked, method, *args)

    async def run_on_store(self, channel: str, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(function, self.writer.store.con, *args)

    async def close(self) -> None:
        await asyncio.to_thread(self._locked, "close")


class WriterProcess(WriterClient):
    """The store in a child process (the default): spawned, never forked from a process running an event loop."""

    def __init__(self, child: multiprocessing.process.BaseProcess, channels: dict[str, Connection],
                 on_failure: Callable[[WriterFailed], None]) -> None:
        self.child = child
        self.channels = {name: (conn, threading.Lock()) for name, conn in channels.items()}
        self.on_failure = on_failure

    @classmethod
    def start(cls, db: Path, rules_file: Path | None, rsi_file: Path | None,
              on_failure: Callable[[WriterFailed], None]) -> WriterProcess:
        """Start the child and return at once (it opens the store and rebuilds the rules' memory meanwhile).

        Call from the main thread: the child asks to be killed when the thread that started it ends.
        """
        context = multiprocessing.get_context("spawn")
        ours: dict[str, Connection] = {}
        theirs: dict[str, Connection] = {}
        for name in ("batch", *BACKGROUND_CHANNELS):
            ours[name], theirs[name] = context.Pipe(duplex=True)
        process = context.Process(target=serve, args=(db, rules_file, rsi_file, theirs), name="pvwatch-writer",
                                  daemon=True)
        process.start()
        for conn in theirs.values():
            conn.close()
        log.info("store writer process started pid=%s", process.pid)
        return cls(process, ours, on_failure)

    def _roundtrip(self, channel: str, request: tuple[Any, tuple[Any, ...]]) -> Any:
        conn, lock = self.channels[channel]
        with lock:
            try:
                conn.send(request)
                status, value = conn.recv()
            except (EOFError, OSError) as error:
                self.child.join(5)
                failure = WriterFailed(
                    f"the store writer process (pid {self.child.pid}) exited with code {self.child.exitcode} "
                    f"during {request[0] if isinstance(request[0], str) else request[0].__name__}; nothing after "
                    "its last reply is durable and no offset after it was committed")
                self.on_failure(failure)
                raise failure from error
        if status == "error":
            raise value
        return value

    async def call(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(self._roundtrip, "batch", (method, args))

    async def run_on_store(self, channel: str, function: Callable[..., T], *args: Any) -> T:
        result: T = await asyncio.to_thread(self._roundtrip, channel, (function, args))
        return result

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        conn, lock = self.channels["batch"]
        with lock:
            try:
                conn.send(("close", ()))
                conn.recv()  # the store is closed (checkpointed) once the child answers
            except (EOFError, OSError):
                pass  # already gone: its store closed with it
        self.child.join(30)
        if self.child.is_alive():
            self.child.terminate()
            self.child.join(5)
        for conn, _ in self.channels.values():
            conn.close()


async def start_writer(db: Path, rules_file: Path | None, rsi_file: Path | None, *, in_process: bool,
                       on_failure: Callable[[WriterFailed], None]) -> tuple[WriterClient, WriterOpening]:
    """The worker's writer, opened: the store migrated, the rules' memory rebuilt from the log."""
    writer: WriterClient
    if in_process:
        writer = await InProcessWriter.start(db, rules_file, rsi_file)
    else:
        writer = WriterProcess.start(db, rules_file, rsi_file, on_failure)
    try:
        return writer, await writer.opening()
    except BaseException:
        await writer.close()
        raise


# --- the child process -----------------------------------------------------------------------------------------


def _answer(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", function(*args)
    except Exception as error:  # sent back and raised in the parent, as if the call had run there
        log.debug("writer call failed", exc_info=True)
        try:
            pickle.dumps(error)
        except Exception:
            return "error", WriterError(f"{type(error).__name__}: {error}")
        return "error", error


def _reply(conn: Connection, answer: tuple[str, Any]) -> None:
    """Send an answer; one that cannot be pickled becomes an error, so the caller is never left waiting."""
    try:
        payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        payload = pickle.dumps(("error", WriterError(f"the writer's answer could not be sent: {error}")))
    conn.send_bytes(payload)


def _serve_functions(writer: StoreWriter, conn: Connection) -> None:
    _lower_priority()
    while True:
        try:
            function, args = conn.recv()
        except (EOFError, OSError):
            return
        _reply(conn, _answer(function, (writer.store.con, *args)))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(db: Path, rules_file: Path | None, rsi_file: Path | None, channels: dict[str, Connection]) -> None:
    """The child's main loop: open the store, then answer the parent until it says close or goes away."""
    from pvwatch.streams.broker import die_with_parent

    die_with_parent()  # a killed worker must not leave its writer holding the store's lock
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the worker decides the stop
    # SIGTERM (the worker died, or a stop sent to the whole group) ends the loop through `finally`, so the store is
    # closed and checkpointed: by default it killed the child with the committed batches only in the .wal file.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    tune_writer_gc()
    batch = channels["batch"]
    writer = StoreWriter(db, rules_file, rsi_file)  # an error here ends the child: the parent reports its exit
    for name in BACKGROUND_CHANNELS:
        threading.Thread(target=_serve_functions, args=(writer, channels[name]), name=f"writer-{name}",
                         daemon=True).start()
    frozen = FrozenCollector()
    try:
        while True:
            if not batch.poll(IDLE_CHECKPOINT_S):  # nothing asked meanwhile: the traffic paused
                writer.checkpoint_if_due(IDLE_CHECKPOINT_BYTES)
                frozen.collect_if_due()
                continue
            try:
                method, args = batch.recv()
            except EOFError:
                return  # the worker is gone
            if method == "close":
                break
            if method not in StoreWriter.METHODS:
                _reply(batch, ("error", WriterError(f"unknown writer method {method!r}")))
                continue
            _reply(batch, _answer(getattr(writer, method), args))
            if method == "process":
                writer.checkpoint_if_due()  # after the reply: this batch's alerts go out first
    finally:
        writer.close()
    batch.send(("ok", None))
