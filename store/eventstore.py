"""The DuckDB event store: append-only event log plus derived tables, written in batches, idempotent.

Idempotency is the store's job: the embedded broker cannot do exactly-once, so every write is
`INSERT OR IGNORE` keyed on a deterministic id (event_id, alert_id, dead-letter hash) and `RETURNING` tells
the caller which rows are new. Redelivery after a crash therefore never stores, alerts or counts twice.
DuckDB allows one writing process: the worker owns the file while it runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import duckdb

from pvwatch.errors import PvwatchError
from pvwatch.events.alert import ALERT_NAMESPACE, AlertWithdrawal, SafetyAlert
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import EVENT_TYPES
from pvwatch.events.vocabulary import FROM_LOG
from pvwatch.store.migrations import migrate


class StoreLocked(PvwatchError):
    """Another process (normally the worker) holds the DuckDB file for writing."""


class EventsAlreadyStored(PvwatchError):
    """`insert_events(..., all_new=True)` met an event stored before (a redelivery): its transaction is void."""


@dataclass(frozen=True)
class MessageOrigin:
    """Where a message came from on the broker (absent for events loaded without Kafka)."""

    topic: str
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class DeadLetter:
    origin: MessageOrigin
    reason: str
    detail: str
    payload: bytes | None
    received_at: datetime
    #: True when it arrived from the dead-letter topic (rejected at the edge): nothing left to publish.
    already_on_topic: bool = False

    @property
    def dead_letter_id(self) -> str:
        digest = hashlib.sha256()
        for part in (self.origin.topic, str(self.origin.partition), str(self.origin.offset)):
            digest.update(part.encode() + b"\0")
        digest.update(self.payload or b"")
        return digest.hexdigest()


@dataclass(frozen=True)
class DeadLetterResolution:
    """A person closing a dead letter (`pvwatch dlq resolve`): who, why and when."""

    dead_letter_id: str
    resolved_by: str
    resolution: str
    resolved_at: datetime


def _alert_row(alert: SafetyAlert) -> dict[str, object]:
    return {
        "alert_id": str(alert.alert_id),
        "rule_id": alert.rule_id,
        "rule_version": alert.rule_version,
        "severity": alert.severity.value,
        "patient": alert.patient,
        "case_id": alert.case_id,
        "evidence_event_ids": [str(e) for e in alert.evidence_event_ids],
        "occurred_at": alert.occurred_at.isoformat(),
        "raised_at": alert.raised_at.isoformat(),
        "summary": alert.summary,
        "details": json.dumps(alert.details, sort_keys=True),
    }


#: The `alerts` columns a SafetyAlert is read back from, in `_stored_alert`'s order.
ALERT_FIELDS = """alert_id, rule_id, rule_version, severity, patient, case_id, evidence_event_ids, occurred_at,
                   raised_at, summary, details"""


def _stored_alert(row: tuple[Any, ...], withdrawal: AlertWithdrawal | None = None) -> SafetyAlert:
    return SafetyAlert(
        alert_id=row[0], rule_id=row[1], rule_version=row[2], severity=row[3], patient=row[4], case_id=row[5],
        evidence_event_ids=tuple(row[6]), occurred_at=row[7], raised_at=row[8], summary=row[9],
        details=json.loads(row[10]), withdrawal=withdrawal,
    )


def _withdrawal_row(message: SafetyAlert, withdrawal: AlertWithdrawal) -> dict[str, str | None]:
    return {"id": str(withdrawal_id(message.alert_id, withdrawal)), "alert_id": str(message.alert_id),
            "rule_id": message.rule_id, "patient": message.patient, "reason": withdrawal.reason,
            "event_id": None if withdrawal.event_id is None else str(withdrawal.event_id),
            "withdrawn_at": withdrawal.withdrawn_at.isoformat(), "message": message.wire_json().decode()}


def withdrawal_id(alert_id: UUID, withdrawal: AlertWithdrawal) -> UUID:
    """One withdrawal per (alert, the event that made it untrue): a redelivered batch stores it once. A replay's
    (no event) is one per alert and replay run."""
    cause = withdrawal.event_id if withdrawal.event_id is not None else f"replay/{withdrawal.withdrawn_at.isoformat()}"
    return uuid5(ALERT_NAMESPACE, f"withdrawal/{alert_id}/{cause}")


def keep_withdrawals(con: duckdb.DuckDBPyConnection, messages: Sequence[SafetyAlert]) -> None:
    """Keep withdrawal messages (alerts with `withdrawal`, already deleted from `alerts`) in alert_withdrawals for
    the outbox, which publishes them on pv.safety.alert.v1. The caller holds the transaction."""
    if messages:
        con.execute(
            """INSERT OR IGNORE INTO alert_withdrawals (withdrawal_id, alert_id, rule_id, patient, reason,
                   withdrawn_by_event_id, withdrawn_at, message)
               SELECT r.id::UUID, r.alert_id::UUID, r.rule_id, r.patient, r.reason, r.event_id::UUID,
                   r.withdrawn_at::TIMESTAMPTZ, r.message::JSON
               FROM (SELECT unnest($rows) AS r)""",
            {"rows": [_withdrawal_row(m, m.withdrawal) for m in messages if m.withdrawal is not None]},
        )


def deleted_alerts(rows: Iterable[tuple[Any, ...]], withdrawal: Callable[[UUID], AlertWithdrawal]) -> list[SafetyAlert]:
    """Rows of `alerts` just deleted (`DELETE ... RETURNING` ALERT_FIELDS) as their withdrawal messages."""
    return [_stored_alert(row, withdrawal(row[0])) for row in rows]


def connect(
    path: Path, *, read_only: bool = False, config: dict[str, str | bool | int | float | list[str]] | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the store, turning DuckDB's lock error into one that says what to do.

    A read-only open is checked against a snapshot published during the open: DuckDB (2.0) opens a database
    file three times by path (format probe, headers, blocks), so a rename between those opens pairs one file's
    headers with the next file's blocks ("No more data remaining in MetadataReader", or worse, no error).
    The open is retried until the file at `path` is the same file before and after it.
    """
    for attempt in range(_READ_ONLY_OPEN_ATTEMPTS):
        before = _file_identity(path) if read_only else None
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise _held(path) from None
            if before is None or _file_identity(path) == before or attempt == _READ_ONLY_OPEN_ATTEMPTS - 1:
                raise
            continue
        if before is None or _file_identity(path) == before:
            return con
        con.close()
    raise StoreReplacedDuringOpen(
        f"{path} was replaced during each of {_READ_ONLY_OPEN_ATTEMPTS} opens; is something publishing it in a loop?"
    )


def _held(path: Path) -> StoreLocked:
    return StoreLocked(f"{path} is held by another process (normally the running worker; DuckDB allows one writer). "
                       "Stop the worker or query a published snapshot.")


#: The name under which `attach` attaches the store.
ATTACHED = "store"


def attach(con: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool) -> None:
    """Attach the store at `path` to `con` (an in-memory DuckDB) as its default database, until `detach`. Attaching
    takes ~1.5 ms where a new connection takes ~13 ms (each builds a DuckDB instance with its functions) and closing
    one ~5-10 ms more: replay opens the store three times in two processes. The store must need no migration
    (migrations.is_current; migrate through EventStore)."""
    quoted = "'" + str(path).replace("'", "''") + "'"
    try:
        con.execute(f"ATTACH {quoted} AS {ATTACHED}{' (READ_ONLY)' if read_only else ''}")
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise _held(path) from None
        raise
    con.execute(f"USE {ATTACHED}")


def detach(con: duckdb.DuckDBPyConnection) -> None:
    """Let go of the store `attach` attached (with a checkpoint of what was written, as a close does)."""
    con.execute("USE memory")
    con.execute(f"DETACH {ATTACHED}")


def connect_sealed(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the store read-only for people's ad-hoc SQL, with DuckDB's file and network access off and locked.

    Read-only alone still lets a query write children's data to any file (COPY ... TO), read other files
    (read_csv, read_text) or fetch extensions; every SQL front door (`pvwatch sql`, the dashboard's SQL page) uses
    this open instead.
    """
    con = connect(path, read_only=True, config={"enable_external_access": False, "autoload_known_extensions": False,
                                                "autoinstall_known_extensions": False})
    con.execute("SET lock_configuration = true")
    return con


#: A snapshot publish takes about a second, so two publishes inside one open is already unheard of.
_READ_ONLY_OPEN_ATTEMPTS = 5


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """The file now at `path` (device, inode, change time), or None while there is none."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns


class StoreReplacedDuringOpen(PvwatchError):
    """The snapshot at a path kept being replaced while it was being opened."""


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction on `con`: committed when the block ends, rolled back if it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class EventStore:
    """Owns one read-write DuckDB connection; every public write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = connect(path)
        self.con.execute("SET enable_progress_bar = false")  # long queries (snapshot, replay) must not draw in logs
        self.schema_version = migrate(self.con)
        #: False only once a count found no unpublished withdrawal (see `_withdrawals_unpublished`)
        self._maybe_unpublished_withdrawals = True

    def close(self) -> None:
        self.con.close()

    def wal_bytes(self) -> int:
        """Size of the write-ahead log beside the store (0 when there is none): what the next checkpoint writes."""
        try:
            return Path(f"{self.path}.wal").stat().st_size
        except FileNotFoundError:
            return 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with transaction(self.con):
            yield

    def insert_events(
        self,
        events: Sequence[tuple[EventEnvelope, MessageOrigin | None]],
        stored_at: datetime,
        payloads: Sequence[bytes | None] | None = None,
        *,
        all_new: bool = False,
    ) -> set[UUID]:
        """Append events not stored before; return the ids that are new.

        `payloads` are the JSON documents as received (already validated into `events`); the log keeps them
        as they were said, fields from newer producers included. Without them the event is re-encoded.
        Columns go to DuckDB as parallel lists (one unnest per column), far cheaper than a list of structs.
        With `all_new` (the live worker's first try: redeliveries are rare) the rows go in by a plain INSERT, which
        costs half of `INSERT OR IGNORE` (25 events on a 20k-event log: 1.5-2.4 ms against 3.0-5.1 ms); an event
        stored before then fails the statement (the primary key still holds) with `EventsAlreadyStored`, and the
        caller rolls back and stores the batch again without `all_new`.
        """
        if not events:
            return set()
        raw = payloads or [None] * len(events)
        columns: dict[str, list[object]] = {
            "ids": [str(event.event_id) for event, _ in events],
            "types": [event.type for event, _ in events],
            "versions": [event.schema_version for event, _ in events],
            "patients": [event.patient for event, _ in events],
            "occurred": [event.occurred_at for event, _ in events],
            "recorded": [event.recorded_at for event, _ in events],
            "sources": [event.source for event, _ in events],
            "payloads": [
                payload.decode() if payload is not None else event.model_dump_json(exclude_none=True)
                for (event, _), payload in zip(events, raw, strict=True)
            ],
            "topics": [origin.topic if origin else None for _, origin in events],
            "partitions": [origin.partition if origin else None for _, origin in events],
            "offsets": [origin.offset if origin else None for _, origin in events],
        }
        insert = f"""INSERT {'' if all_new else 'OR IGNORE '}INTO event_log (event_id, type, schema_version, patient,
                   occurred_at, recorded_at, source, payload, kafka_topic, kafka_partition, kafka_offset, stored_at)
               SELECT unnest($ids::UUID[]), unnest($types::VARCHAR[]), unnest($versions::INTEGER[]),
                   unnest($patients::VARCHAR[]), unnest($occurred::TIMESTAMPTZ[]), unnest($recorded::TIMESTAMPTZ[]),
                   unnest($sources::VARCHAR[]), unnest($payloads::JSON[]), unnest($topics::VARCHAR[]),
                   unnest($partitions::INTEGER[]), unnest($offsets::BIGINT[]), $stored_at"""
        if all_new:
            try:
                self.con.execute(insert, {**columns, "stored_at": stored_at})
            except duckdb.ConstraintException as error:
                raise EventsAlreadyStored(f"a batch of {len(events)} events holds one stored before") from error
            return {event.event_id for event, _ in events}
        new = self.con.execute(f"{insert} RETURNING event_id", {**columns, "stored_at": stored_at}).fetchall()
        return {row[0] for row in new}

    def insert_alerts(self, alerts: Sequence[SafetyAlert]) -> list[SafetyAlert]:
        """Store alerts not raised before; return the new ones (the only ones to publish and count).

        One batch may derive the same alert twice (an initial report and its follow-up arriving together): it is
        stored, returned, counted and published once, with its last derivation.
        """
        if not alerts:
            return []
        alerts = list({alert.alert_id: alert for alert in alerts}.values())
        new = self.con.execute(
            """INSERT OR IGNORE INTO alerts (alert_id, rule_id, rule_version, severity, patient, case_id,
                   evidence_event_ids, occurred_at, raised_at, summary, details)
               SELECT r.alert_id::UUID, r.rule_id, r.rule_version, r.severity, r.patient, r.case_id,
                   r.evidence_event_ids::UUID[], r.occurred_at::TIMESTAMPTZ, r.raised_at::TIMESTAMPTZ,
                   r.summary, r.details::JSON
               FROM (SELECT unnest($rows) AS r) RETURNING alert_id""",
            {"rows": [_alert_row(alert) for alert in alerts]},
        ).fetchall()
        new_ids = {row[0] for row in new}
        return [alert for alert in alerts if alert.alert_id in new_ids]

    def revise_alerts(self, alerts: Sequence[SafetyAlert]) -> list[SafetyAlert]:
        """Update stored alerts whose derivation changed (a late report added evidence to a lot cluster, a late
        baseline changed a flare's baseline); return the revised ones, marked unpublished so they are published
        again under the same alert_id. An alert's id, rule and raised_at never change.
        """
        if not alerts:
            return []
        latest = {alert.alert_id: alert for alert in alerts}  # the last derivation of an id wins
        revised = self.con.execute(
            """UPDATE alerts SET severity = r.severity, patient = r.patient, case_id = r.case_id,
                   evidence_event_ids = r.evidence_event_ids::UUID[], occurred_at = r.occurred_at::TIMESTAMPTZ,
                   summary = r.summary, details = r.details::JSON, published_at = NULL
               FROM (SELECT unnest($rows) AS r)
               WHERE alerts.alert_id = r.alert_id::UUID
                 AND (alerts.evidence_event_ids <> r.evidence_event_ids::UUID[] OR alerts.summary <> r.summary
                      OR alerts.details <> r.details::JSON OR alerts.severity <> r.severity
                      OR alerts.occurred_at <> r.occurred_at::TIMESTAMPTZ
                      OR alerts.case_id IS DISTINCT FROM r.case_id OR alerts.patient <> r.patient)
               RETURNING alerts.alert_id""",
            {"rows": [_alert_row(alert) for alert in latest.values()]},
        ).fetchall()
        return [latest[row[0]] for row in revised]

    def withdraw_alerts(self, withdrawn: Mapping[UUID, AlertWithdrawal]) -> list[SafetyAlert]:
        """Delete the stored alerts that a later event made untrue (SafetyEngine's `withdrawn`) and keep each one's
        withdrawal message for the outbox; return those messages (the alert as it was, with `withdrawal`). An id
        not stored (never raised here) is skipped."""
        if not withdrawn:
            return []
        rows = self.con.execute(
            f"DELETE FROM alerts WHERE alert_id IN (SELECT unnest($ids::UUID[])) RETURNING {ALERT_FIELDS}",
            {"ids": [str(alert_id) for alert_id in withdrawn]},
        ).fetchall()
        messages = deleted_alerts(rows, withdrawn.__getitem__)
        if messages:
            self._maybe_unpublished_withdrawals = True
        keep_withdrawals(self.con, messages)
        return messages

    def standing_alerts(self, rule_ids: Iterable[str]) -> list[tuple[UUID, str, int, str]]:
        """(alert id, rule, version, patient) of the stored alerts of `rule_ids`: what a starting worker's engine
        may have to withdraw (SafetyEngine.remember_alerts)."""
        return [(row[0], row[1], row[2], row[3]) for row in self.con.execute(
            "SELECT alert_id, rule_id, rule_version, patient FROM alerts WHERE list_contains($rules, rule_id)",
            {"rules": sorted(rule_ids)}).fetchall()]

    def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        if not letters:
            return []
        rows = [
            {
                "id": letter.dead_letter_id, "topic": letter.origin.topic, "partition": letter.origin.partition,
                "offset": letter.origin.offset, "reason": letter.reason, "detail": letter.detail,
                "payload": letter.payload, "received_at": letter.received_at.isoformat(),
                "published_at": letter.received_at.isoformat() if letter.already_on_topic else None,
            }
            for letter in letters
        ]
        new = self.con.execute(
            """INSERT OR IGNORE INTO dead_letters (dead_letter_id, kafka_topic, kafka_partition, kafka_offset,
                   reason, detail, payload, received_at, published_at)
               SELECT r.id, r.topic, r.partition, r."offset", r.reason, r.detail, r.payload::BLOB,
                   r.received_at::TIMESTAMPTZ, r.published_at::TIMESTAMPTZ
               FROM (SELECT unnest($rows) AS r) RETURNING dead_letter_id""",
            {"rows": rows},
        ).fetchall()
        new_ids = {row[0] for row in new}
        return [letter for letter in letters if letter.dead_letter_id in new_ids]

    # --- outbox: derived facts are durable here first, then published; unpublished ones are retried ---

    def unpublished_alerts(self) -> list[SafetyAlert]:
        """Alerts and withdrawals not yet on pv.safety.alert.v1, in the order they were raised or withdrawn."""
        rows = self.con.execute(
            f"SELECT {ALERT_FIELDS} FROM alerts WHERE published_at IS NULL ORDER BY raised_at, alert_id"
        ).fetchall()
        alerts = [_stored_alert(row) for row in rows]
        withdrawals = [SafetyAlert.model_validate_json(row[0]) for row in self.con.execute(
            "SELECT message FROM alert_withdrawals WHERE published_at IS NULL ORDER BY withdrawn_at, withdrawal_id"
        ).fetchall()]
        if not withdrawals:
            return alerts
        return sorted(alerts + withdrawals,
                      key=lambda a: a.withdrawal.withdrawn_at if a.withdrawal is not None else a.raised_at)

    def unpublished_dead_letters(self) -> list[tuple[str, str, str, str, bytes | None]]:
        """(id, topic, reason, detail, payload) of dead letters not yet on the dead-letter topic."""
        rows = self.con.execute(
            "SELECT dead_letter_id, kafka_topic, reason, detail, payload FROM dead_letters "
            "WHERE published_at IS NULL ORDER BY received_at, dead_letter_id"
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def mark_published(self, alert_ids: Iterable[UUID], dead_letter_ids: Iterable[str]) -> None:
        now = datetime.now(UTC)
        alert_list = [str(a) for a in alert_ids]
        letter_list = list(dead_letter_ids)
        if alert_list:  # an alert's id marks its withdrawal too: the outbox sends both under it (streams/app.py)
            self.con.execute(
                "UPDATE alerts SET published_at = $now WHERE alert_id IN (SELECT unnest($ids::UUID[]))",
                {"now": now, "ids": alert_list},
            )
        if alert_list and self._withdrawals_unpublished():
            self.con.execute(
                "UPDATE alert_withdrawals SET published_at = $now "
                "WHERE published_at IS NULL AND alert_id IN (SELECT unnest($ids::UUID[]))",
                {"now": now, "ids": alert_list},
            )
        if letter_list:
            self.con.execute(
                "UPDATE dead_letters SET published_at = $now WHERE dead_letter_id IN (SELECT unnest($ids))",
                {"now": now, "ids": letter_list},
            )

    def _withdrawals_unpublished(self) -> bool:
        """Whether alert_withdrawals holds a withdrawal not yet marked published. Almost never, so the outbox's marks
        in each batch skip that table's UPDATE (a statement costs a few ms in a batch under load): the answer is
        known to be no once a count found none, until this store withdraws an alert again. A count in a transaction
        that then rolls back is still right: it found nothing to mark."""
        if self._maybe_unpublished_withdrawals:
            row = self.con.execute("SELECT count(*) FROM alert_withdrawals WHERE published_at IS NULL").fetchone()
            self._maybe_unpublished_withdrawals = bool(row and row[0])
        return self._maybe_unpublished_withdrawals

    def resolve_dead_letters(self, resolutions: Sequence[DeadLetterResolution]) -> list[str]:
        """Close open dead letters; returns the ids closed now (unknown or already closed ones are left alone)."""
        if not resolutions:
            return []
        rows = [{"id": r.dead_letter_id, "by": r.resolved_by, "why": r.resolution, "at": r.resolved_at.isoformat()}
                for r in resolutions]
        closed = self.con.execute(
            """UPDATE dead_letters SET status = 'resolved', resolved_by = r.by, resolution = r.why,
                   resolved_at = r.at::TIMESTAMPTZ
               FROM (SELECT unnest($rows) AS r)
               WHERE dead_letters.dead_letter_id = r.id AND dead_letters.status = 'open'
               RETURNING dead_letters.dead_letter_id""",
            {"rows": rows},
        ).fetchall()
        return [row[0] for row in closed]

    def open_dead_letter_count(self) -> int:
        row = self.con.execute("SELECT count(*) FROM dead_letters WHERE status = 'open'").fetchone()
        return int(row[0]) if row else 0

    def iter_events(self, batch_size: int = 50_000) -> Iterator[list[EventEnvelope]]:
        """The log in occurred_at order, validated again (as stored: FROM_LOG), in batches: the rules' memory."""
        cursor = self.con.execute("SELECT type, payload FROM event_log ORDER BY occurred_at, event_id")
        while rows := cursor.fetchmany(batch_size):
            yield [EVENT_TYPES[row[0]].model_validate_json(row[1], context=FROM_LOG) for row in rows]

    def event_count(self) -> int:
        row = self.con.execute("SELECT count(*) FROM event_log").fetchone()
        return int(row[0]) if row else 0

    def replace_alerts(self, alerts: Sequence[SafetyAlert]) -> tuple[int, int]:
        """Make `alerts` the whole derived alert table (replay); returns (added, removed).

        Alerts that already existed keep their raised_at and published_at: a replay re-derives facts, it
        does not pretend they were raised again.
        """
        keep = [str(alert.alert_id) for alert in alerts]
        removed = self.con.execute(
            "DELETE FROM alerts WHERE alert_id NOT IN (SELECT unnest($ids::UUID[])) RETURNING alert_id",
            {"ids": keep},
        ).fetchall()
        added = self.insert_alerts(alerts)
        return len(added), len(removed)
