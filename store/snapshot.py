"""Read-only snapshots of the store, published by the writer so analysts can query while the worker writes.

DuckDB allows one writing process, and a second process cannot open the file at all while the writer holds it,
not even read-only (measured: /work/shared/notes/streaming-measurements.md section 4). What works is the writer
copying its tables into a separate DuckDB file and renaming that file over the published one: readers open the
published file read-only, and a rename on the same file system is atomic, so a reader sees the previous complete
snapshot or the new complete one, never a half-written file and never a lock held by the worker.

The copy runs on a cursor of the writer's connection (a separate DuckDB connection to the same database), inside
one transaction: every table comes from one consistent point in time, and the worker's own connection keeps
writing concurrently (MVCC). The views are then recreated inside the snapshot from their stored SQL, so analysts
find `alerts`, `adverse_events`, ... there under the same names, and `snapshot_meta` says how old it is.
After the first, a publish starts from a copy of the previous file and appends only the events stored since
(`_append_since`): the cost follows what changed, not the size of the store.

Two files are published each time: the full snapshot, which only the safety officer's dashboard pages read, and
the analyst snapshot (`analyst_snapshot_path`), the one analysts query (duckdb CLI, Python, the SQL page). In the
analyst copy the free text that may identify a child is replaced by a marker (`ANALYST_REDACTIONS`): the tables,
views and pseudonyms are the same, so every documented analysis runs unchanged on it.

The two files are published with different permissions whatever the umask: the full one owner-only
(`FULL_SNAPSHOT_MODE`: the worker's and dashboard's service account), the analyst one also group-readable
(`ANALYST_SNAPSHOT_MODE`). Analysts get read access through that group: docs/analysts.md, "File access".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pvwatch.errors import PvwatchError

META_TABLE = "snapshot_meta"
#: Narratives and free-text reasons are in the full snapshot: only its owner (the service account) may read it.
FULL_SNAPSHOT_MODE = 0o600
#: The analyst snapshot: its owner and its group (the analysts' group, inherited from a set-group-ID folder).
ANALYST_SNAPSHOT_MODE = 0o640
#: Free-text payload fields that may identify a child, by event type ("*": every type), replaced by REDACTED in the
#: analyst snapshot: the reporter's narrative (names, places, family details are common in ICSR narratives, ICH
#: E2B(R3) H.1), the treatment reason's free text, and the officer's reason for closing or reopening an alert.
ANALYST_REDACTIONS: dict[str, tuple[str, ...]] = {
    "*": ("narrative", "reason_detail"),
    "alert-action": ("reason",),
}
REDACTED = "[free text removed from the analyst snapshot]"
#: Table columns that hold raw, unvalidated input (a rejected message may carry anything): NULL in the analyst copy.
ANALYST_NULLED_COLUMNS: dict[str, tuple[str, ...]] = {"dead_letters": ("payload", "detail")}
#: The analyst snapshot is written in DuckDB 1.4's storage format (1.4 is DuckDB's long-term-support release), so
#: the `duckdb` CLI analysts use reads it even when it is older than the Python library that writes it (a file in
#: the library's newest format is refused: "Trying to read a database file with version number 69").
ANALYST_STORAGE_VERSION = "v1.4.0"


def analyst_snapshot_path(snapshot: Path) -> Path:
    """Where the analyst snapshot of `snapshot` is published: `x.snapshot.duckdb` -> `x.snapshot.analyst.duckdb`."""
    snapshot = Path(snapshot)
    stem = snapshot.name.removesuffix(".duckdb")
    return snapshot.with_name(f"{stem}.analyst.duckdb")


class SnapshotError(PvwatchError):
    """A snapshot could not be written; the previously published snapshot is left as it was."""


@dataclass(frozen=True)
class SnapshotInfo:
    path: Path
    taken_at: datetime
    event_count: int
    #: rows copied per table
    tables: dict[str, int]
    views: tuple[str, ...]
    #: views whose SQL did not bind inside the snapshot (e.g. a table left out by `tables`), with the reason
    skipped_views: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    size_bytes: int = 0
    #: the analyst snapshot published with it (free text removed), None when not asked for
    analyst_path: Path | None = None
    #: appended to the previous snapshot (new events, derived tables anew) rather than copied whole
    incremental: bool = False


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _base_tables(cur: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    rows = cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = $db AND schema_name = 'main' "
        "AND NOT temporary AND NOT internal ORDER BY table_oid",
        {"db": database},
    ).fetchall()
    return [row[0] for row in rows if row[0] != META_TABLE]


def _views(cur: duckdb.DuckDBPyConnection, database: str) -> list[tuple[str, str, str | None]]:
    """(name, CREATE VIEW sql, comment) in creation order, which is also dependency order."""
    rows = cur.execute(
        "SELECT view_name, sql, comment FROM duckdb_views() WHERE database_name = $db AND schema_name = 'main' "
        "AND NOT temporary AND NOT internal ORDER BY view_oid",
        {"db": database},
    ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def _comments(
    cur: duckdb.DuckDBPyConnection, database: str, relations: Sequence[str]
) -> list[tuple[str, str | None, str]]:
    """(relation, column or None, comment) of the documented tables and views, to carry into the snapshot."""
    if not relations:
        return []
    found: list[tuple[str, str | None, str]] = []
    for name, comment in cur.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = $db AND comment IS NOT NULL "
        "AND table_name IN (SELECT unnest($names)) UNION ALL "
        "SELECT view_name, comment FROM duckdb_views() WHERE database_name = $db AND comment IS NOT NULL "
        "AND view_name IN (SELECT unnest($names))",
        {"db": database, "names": list(relations)},
    ).fetchall():
        found.append((name, None, comment))
    for name, column, comment in cur.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE database_name = $db "
        "AND comment IS NOT NULL AND table_name IN (SELECT unnest($names))",
        {"db": database, "names": list(relations)},
    ).fetchall():
        found.append((name, column, comment))
    return found


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def publish_snapshot(
    con: duckdb.DuckDBPyConnection, target: Path, tables: Sequence[str] | None = None, *, analyst: bool = True
) -> SnapshotInfo:
    """Copy the store behind `con` into `target` atomically; safe while other connections keep writing.

    `tables` limits the copy (default: every base table of the main schema); views whose tables are left out
    are skipped and reported. Readers must open `target` read-only (`duckdb.connect(path, read_only=True)`,
    `duckdb -readonly`); a reader already connected keeps the snapshot it opened until it reconnects.
    With `analyst` (the default) the analyst snapshot of the same moment is published too, before `target`.
    """
    started = time.perf_counter()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    analyst_target = analyst_snapshot_path(target)
    analyst_temporary = analyst_target.with_name(f"{analyst_target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    temporaries = (temporary, analyst_temporary)
    try:
        previous = _previous_snapshot(con, target, analyst_target if analyst else None) if tables is None else None
        published = None
        if previous is not None:
            published = _append_since(con, previous, temporary, analyst_temporary if analyst else None)
        if published is None:
            _remove(temporaries)
            published = _copy_all(con, temporary, analyst_temporary if analyst else None, tables)
        if analyst:
            analyst_temporary.chmod(ANALYST_SNAPSHOT_MODE)
            os.replace(analyst_temporary, analyst_target)
        temporary.chmod(FULL_SNAPSHOT_MODE)
        os.replace(temporary, target)
    except duckdb.Error as error:
        raise SnapshotError(f"snapshot to {target} failed: {str(error).splitlines()[0]}") from error
    finally:
        _remove(temporaries)
    return SnapshotInfo(
        path=target, taken_at=published.taken_at, event_count=published.counts.get("event_log", 0),
        tables=published.counts, views=published.views, skipped_views=published.skipped_views,
        seconds=time.perf_counter() - started, size_bytes=target.stat().st_size,
        analyst_path=analyst_target if analyst else None, incremental=published.incremental,
    )


@dataclass(frozen=True)
class _Published:
    taken_at: datetime
    counts: dict[str, int]
    views: tuple[str, ...]
    skipped_views: dict[str, str]
    incremental: bool


@dataclass(frozen=True)
class _Previous:
    """A published pair of snapshots that the next one can be appended to."""

    full: Path
    analyst: Path | None
    last_log_seq: int
    views: tuple[str, ...]
    skipped_views: tuple[str, ...]


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".wal").unlink(missing_ok=True)


def _copy_all(
    con: duckdb.DuckDBPyConnection, temporary: Path, analyst_temporary: Path | None, tables: Sequence[str] | None
) -> _Published:
    """The full copy: every table, then the views, comments and meta; the analyst copy from the finished one."""
    taken_at, counts, views, comments = _copy_tables(con, temporary, tables)
    fingerprint = _schema_fingerprint(con) if tables is None else None
    created, skipped = _finish_snapshot(temporary, views, comments, taken_at, counts.get("event_log", 0), fingerprint)
    if analyst_temporary is not None:
        _copy_redacted(temporary, analyst_temporary)
        _finish_snapshot(analyst_temporary, views, comments, taken_at, counts.get("event_log", 0), fingerprint,
                         analyst=True)
    return _Published(taken_at, counts, tuple(created), skipped, incremental=False)


def _schema_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """What the store's tables, views and comments look like: a snapshot made under another schema is not reused."""
    cur = con.cursor()
    try:
        shape = [cur.execute(sql).fetchall() for sql in (
            "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' ORDER BY ALL",
            "SELECT view_name, sql, comment FROM duckdb_views() "
            "WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal ORDER BY ALL",
            "SELECT table_name, comment FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name = 'main' ORDER BY ALL",
        )]
    finally:
        cur.close()
    return hashlib.sha256(repr(shape).encode()).hexdigest()


def _previous_snapshot(con: duckdb.DuckDBPyConnection, target: Path, analyst_target: Path | None) -> _Previous | None:
    """The published snapshot (and analyst snapshot) if the next one can be appended to them, else None."""
    metas = []
    for path in (target, analyst_target):
        if path is None:
            continue
        if not path.exists():
            return None
        snap = duckdb.connect(str(path), read_only=True)
        try:
            row = snap.execute(
                f"SELECT last_log_seq, store_fingerprint, views, skipped_views FROM {META_TABLE}").fetchone()
        except duckdb.Error:
            return None  # written before incremental snapshots, or not a snapshot
        finally:
            snap.close()
        if row is None or row[0] is None or row[1] is None:
            return None
        metas.append(row)
    if len({(row[0], row[1]) for row in metas}) != 1 or metas[0][1] != _schema_fingerprint(con):
        return None
    last_log_seq, _, views, skipped = metas[0]
    return _Previous(target, analyst_target, int(last_log_seq), tuple(views), tuple(skipped))


def _append_since(
    con: duckdb.DuckDBPyConnection, previous: _Previous, temporary: Path, analyst_temporary: Path | None
) -> _Published | None:
    """The incremental copy: the event log is append-only (one writer, serial transactions, `log_seq` from a
    sequence), so a copy of the previous snapshot plus the events after its last `log_seq` is the log now; the
    derived tables, which change in place, are copied whole. Returns None when the result would not equal a full
    copy (a count differs), and the caller makes a full copy instead."""
    shutil.copyfile(previous.full, temporary)
    try:
        with _copying_into(con, temporary) as (cur, database, alias):
            taken_at = datetime.now(UTC)
            counts = _refresh_tables(cur, f"{_quote(database)}.main", alias, _base_tables(cur, database),
                                     previous.last_log_seq)
            store_events = cur.execute(f"SELECT count(*) FROM {_quote(database)}.main.event_log").fetchone()
            if store_events is None or counts.get("event_log") != store_events[0]:
                raise _CountMismatch
            _update_meta(cur, alias, taken_at, counts["event_log"])
    except _CountMismatch:
        return None
    if analyst_temporary is not None and previous.analyst is not None:
        shutil.copyfile(previous.analyst, analyst_temporary)
        if not _append_redacted(temporary, analyst_temporary, previous.last_log_seq, counts["event_log"]):
            return None
    return _Published(taken_at, counts, previous.views, dict.fromkeys(previous.skipped_views, "not bound"),
                      incremental=True)


def _refresh_tables(
    cur: duckdb.DuckDBPyConnection, source: str, alias: str, tables: Sequence[str], last_log_seq: int,
    select: Callable[[str], str] = lambda name: "*",
) -> dict[str, int]:
    """Append the new events to `alias`'s event log and replace every other table's rows; rows per table."""
    counts: dict[str, int] = {}
    for name in tables:
        quoted = _quote(name)
        if name == "event_log":
            cur.execute(f"INSERT INTO {alias}.{quoted} SELECT {select(name)} FROM {source}.{quoted} "
                        "WHERE log_seq > $last", {"last": last_log_seq})
        else:
            cur.execute(f"DELETE FROM {alias}.{quoted}")
            cur.execute(f"INSERT INTO {alias}.{quoted} SELECT {select(name)} FROM {source}.{quoted}")
        copied = cur.execute(f"SELECT count(*) FROM {alias}.{quoted}").fetchone()
        counts[name] = int(copied[0]) if copied else 0
    return counts


def _update_meta(cur: duckdb.DuckDBPyConnection, alias: str, taken_at: datetime, event_count: int) -> None:
    cur.execute(f"UPDATE {alias}.{META_TABLE} SET taken_at = $taken, event_count = $events, "
                f"last_log_seq = (SELECT coalesce(max(log_seq), 0) FROM {alias}.event_log)",
                {"taken": taken_at, "events": event_count})


def _copy_tables(
    con: duckdb.DuckDBPyConnection, temporary: Path, tables: Sequence[str] | None
) -> tuple[datetime, dict[str, int], list[tuple[str, str, str | None]], list[tuple[str, str | None, str]]]:
    """Copy the tables into a new DuckDB file in one read transaction; return what the views step needs."""
    with _copying_into(con, temporary) as (cur, database, alias):
        available = _base_tables(cur, database)
        wanted = available if tables is None else list(tables)
        missing = [name for name in wanted if name not in available]
        if missing:
            raise SnapshotError(f"tables {missing} are not in the store (it has {available})")
        views = _views(cur, database)
        comments = _comments(cur, database, [*wanted, *(name for name, _, _ in views)])
        taken_at = datetime.now(UTC)
        counts: dict[str, int] = {}
        for name in wanted:
            cur.execute(f"CREATE TABLE {alias}.{_quote(name)} AS FROM {_quote(database)}.main.{_quote(name)}")
            copied = cur.execute(f"SELECT count(*) FROM {alias}.{_quote(name)}").fetchone()
            counts[name] = int(copied[0]) if copied else 0
    return taken_at, counts, views, comments


class _CountMismatch(Exception):
    """An appended copy does not hold what the store holds: make a full copy instead."""


@contextmanager
def _copying_into(
    con: duckdb.DuckDBPyConnection, path: Path
) -> Iterator[tuple[duckdb.DuckDBPyConnection, str, str]]:
    """(cursor, store database, alias of `path`) inside one transaction on a cursor of the store's connection: the
    store is read at one moment while its own connection keeps writing; committed, checkpointed and detached on
    success, rolled back on any error."""
    alias = f"pvwatch_snapshot_{uuid.uuid4().hex[:12]}"
    cur = con.cursor()
    try:
        row = cur.execute("SELECT current_database()").fetchone()
        database = str(row[0]) if row else "main"
        cur.execute(f"ATTACH {_sql_literal(str(path))} AS {alias}")
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur, database, alias
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            cur.execute(f"CHECKPOINT {alias}")
        finally:
            cur.execute(f"DETACH {alias}")
    finally:
        cur.close()


def _copy_redacted(full: Path, analyst: Path) -> None:
    """Copy the finished full snapshot's tables into `analyst`, then replace the free text (ANALYST_REDACTIONS: a
    field that was sent stays present, so `has_narrative` and the like keep their meaning) and null the raw input
    (ANALYST_NULLED_COLUMNS); _finish_snapshot then adds the views, comments and meta."""
    alias = f"pvwatch_full_{uuid.uuid4().hex[:12]}"
    snap = duckdb.connect(str(analyst), config={"storage_compatibility_version": ANALYST_STORAGE_VERSION})
    try:
        snap.execute(f"ATTACH {_sql_literal(str(full))} AS {alias} (READ_ONLY)")
        snap.execute("BEGIN TRANSACTION")
        tables = _snapshot_tables(snap, alias)
        for name in tables:
            snap.execute(f"CREATE TABLE {_quote(name)} AS "
                         f"SELECT {_analyst_select(name)} FROM {alias}.main.{_quote(name)}")
        if "event_log" in tables:
            _redact(snap, after_log_seq=None)
        snap.execute("COMMIT")
        snap.execute(f"DETACH {alias}")
    finally:
        snap.close()


def _append_redacted(full: Path, analyst: Path, last_log_seq: int, event_count: int) -> bool:
    """The incremental analyst copy: `analyst` (a copy of the previous analyst snapshot) gets the new events from
    the finished full snapshot, redacted, and every other table anew; False if its event count came out wrong."""
    alias = f"pvwatch_full_{uuid.uuid4().hex[:12]}"
    snap = duckdb.connect(str(analyst))
    try:
        snap.execute(f"ATTACH {_sql_literal(str(full))} AS {alias} (READ_ONLY)")
        snap.execute("BEGIN TRANSACTION")
        counts = _refresh_tables(snap, f"{alias}.main", "main", _snapshot_tables(snap, alias), last_log_seq,
                                 select=_analyst_select)
        if counts.get("event_log") != event_count:
            snap.execute("ROLLBACK")
            return False
        _redact(snap, after_log_seq=last_log_seq)
        meta = snap.execute(f"SELECT taken_at FROM {alias}.main.{META_TABLE}").fetchone()
        _update_meta(snap, "main", meta[0] if meta else datetime.now(UTC), event_count)
        snap.execute("COMMIT")
        snap.execute("CHECKPOINT")
        snap.execute(f"DETACH {alias}")
    finally:
        snap.close()
    return True


def _snapshot_tables(snap: duckdb.DuckDBPyConnection, alias: str) -> list[str]:
    return [row[0] for row in snap.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = $db AND schema_name = 'main' "
        "ORDER BY table_oid", {"db": alias}).fetchall() if row[0] != META_TABLE]


def _analyst_select(table: str) -> str:
    nulled = ANALYST_NULLED_COLUMNS.get(table, ())
    return f"* REPLACE ({', '.join(f'NULL AS {_quote(c)}' for c in nulled)})" if nulled else "*"


def _redact(snap: duckdb.DuckDBPyConnection, after_log_seq: int | None) -> None:
    """Replace the free text of the analyst copy's events (those after `after_log_seq`, or all)."""
    for event_type, fields in ANALYST_REDACTIONS.items():
        for field_name in fields:
            snap.execute(
                "UPDATE event_log SET payload = json_merge_patch(payload, json_object($field, $marker)) "
                "WHERE json_extract_string(payload, '$.' || $field) IS NOT NULL "
                "AND ($type = '*' OR type = $type) AND ($after IS NULL OR log_seq > $after)",
                {"field": field_name, "marker": REDACTED, "type": event_type, "after": after_log_seq})


def _finish_snapshot(
    path: Path, views: Sequence[tuple[str, str, str | None]], comments: Sequence[tuple[str, str | None, str]],
    taken_at: datetime, event_count: int, fingerprint: str | None, *, analyst: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """Recreate the views and the staleness marker in the detached copy, through its own connection.

    A separate connection makes the view SQL bind to the snapshot's tables by their plain names, exactly as it
    bound in the store; a view that cannot bind (its table was not copied) is skipped, not fatal.
    """
    snap = duckdb.connect(str(path))
    try:
        created: list[str] = []
        skipped: dict[str, str] = {}
        for name, sql, _ in views:
            try:
                snap.execute(sql)
                created.append(name)
            except duckdb.Error as error:
                skipped[name] = str(error).splitlines()[0]
        present = set(created) | {row[0] for row in snap.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        statements = []
        for relation, column, comment in comments:
            if relation not in present:
                continue
            kind = "VIEW" if relation in created else "TABLE"
            target = f"COLUMN {_quote(relation)}.{_quote(column)}" if column else f"{kind} {_quote(relation)}"
            statements.append(f"COMMENT ON {target} IS {_sql_literal(comment)}")
        _apply_comments(snap, statements)
        snap.execute(
            f"CREATE TABLE {META_TABLE} (taken_at TIMESTAMPTZ NOT NULL, event_count BIGINT NOT NULL, "
            "views VARCHAR[] NOT NULL, skipped_views VARCHAR[] NOT NULL, "
            "last_log_seq BIGINT, store_fingerprint VARCHAR)"
        )
        has_log = "event_log" in present
        last_log_seq = snap.execute("SELECT coalesce(max(log_seq), 0) FROM event_log").fetchone() if has_log else None
        snap.execute(f"INSERT INTO {META_TABLE} VALUES ($1, $2, $3, $4, $5, $6)",
                     [taken_at, event_count, created, sorted(skipped), last_log_seq[0] if last_log_seq else None,
                      fingerprint if has_log else None])
        note = (" Analyst snapshot: free text that may identify a child (narratives, free-text reasons) is replaced by "
                + REDACTED.replace("'", "''") + "." if analyst else "")
        snap.execute(
            f"COMMENT ON TABLE {META_TABLE} IS 'When this read-only snapshot was taken from the store and how many "
            f"events its event_log holds: data newer than taken_at is not here yet.{note}'"
        )
        snap.execute("CHECKPOINT")
    finally:
        snap.close()
    return created, skipped


def _apply_comments(snap: duckdb.DuckDBPyConnection, statements: Sequence[str]) -> None:
    """All comments in one transaction (one commit instead of one per column: the clinical views have ~150
    documented columns, which took ~0.5 s to copy one by one); if one fails, each is tried on its own."""
    try:
        snap.execute("BEGIN TRANSACTION")
        for statement in statements:
            snap.execute(statement)
        snap.execute("COMMIT")
        return
    except duckdb.Error:
        snap.execute("ROLLBACK")
    for statement in statements:
        try:
            snap.execute(statement)
        except duckdb.Error:
            continue  # a comment is documentation: never a reason to withhold the snapshot


def read_snapshot_meta(con: duckdb.DuckDBPyConnection) -> tuple[datetime, int] | None:
    """(taken_at, event_count) of an opened snapshot, or None if it is not a snapshot."""
    try:
        row = con.execute(f"SELECT taken_at, event_count FROM {META_TABLE}").fetchone()
    except duckdb.CatalogException:
        return None
    return (row[0], int(row[1])) if row else None
