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
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pvwatch.errors import PvwatchError

META_TABLE = "snapshot_meta"


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
    con: duckdb.DuckDBPyConnection, target: Path, tables: Sequence[str] | None = None
) -> SnapshotInfo:
    """Copy the store behind `con` into `target` atomically; safe while other connections keep writing.

    `tables` limits the copy (default: every base table of the main schema); views whose tables are left out
    are skipped and reported. Readers must open `target` read-only (`duckdb.connect(path, read_only=True)`,
    `duckdb -readonly`); a reader already connected keeps the snapshot it opened until it reconnects.
    """
    started = time.perf_counter()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        taken_at, counts, views, comments = _copy_tables(con, temporary, tables)
        created, skipped = _finish_snapshot(temporary, views, comments, taken_at, counts.get("event_log", 0))
        os.replace(temporary, target)
    except duckdb.Error as error:
        raise SnapshotError(f"snapshot to {target} failed: {str(error).splitlines()[0]}") from error
    finally:
        temporary.unlink(missing_ok=True)
        temporary.with_name(temporary.name + ".wal").unlink(missing_ok=True)
    return SnapshotInfo(
        path=target, taken_at=taken_at, event_count=counts.get("event_log", 0), tables=counts,
        views=tuple(created), skipped_views=skipped, seconds=time.perf_counter() - started,
        size_bytes=target.stat().st_size,
    )


def _copy_tables(
    con: duckdb.DuckDBPyConnection, temporary: Path, tables: Sequence[str] | None
) -> tuple[datetime, dict[str, int], list[tuple[str, str, str | None]], list[tuple[str, str | None, str]]]:
    """Copy the tables into a new DuckDB file in one read transaction; return what the views step needs."""
    alias = f"pvwatch_snapshot_{uuid.uuid4().hex[:12]}"
    cur = con.cursor()
    try:
        row = cur.execute("SELECT current_database()").fetchone()
        database = str(row[0]) if row else "main"
        available = _base_tables(cur, database)
        wanted = available if tables is None else list(tables)
        missing = [name for name in wanted if name not in available]
        if missing:
            raise SnapshotError(f"tables {missing} are not in the store (it has {available})")
        views = _views(cur, database)
        comments = _comments(cur, database, [*wanted, *(name for name, _, _ in views)])
        taken_at = datetime.now(UTC)
        counts: dict[str, int] = {}
        cur.execute(f"ATTACH {_sql_literal(str(temporary))} AS {alias}")
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                for name in wanted:
                    cur.execute(
                        f"CREATE TABLE {alias}.{_quote(name)} AS FROM {_quote(database)}.main.{_quote(name)}"
                    )
                    copied = cur.execute(f"SELECT count(*) FROM {alias}.{_quote(name)}").fetchone()
                    counts[name] = int(copied[0]) if copied else 0
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            cur.execute(f"CHECKPOINT {alias}")
        finally:
            cur.execute(f"DETACH {alias}")
    finally:
        cur.close()
    return taken_at, counts, views, comments


def _finish_snapshot(
    path: Path, views: Sequence[tuple[str, str, str | None]], comments: Sequence[tuple[str, str | None, str]],
    taken_at: datetime, event_count: int,
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
            "views VARCHAR[] NOT NULL, skipped_views VARCHAR[] NOT NULL)"
        )
        snap.execute(f"INSERT INTO {META_TABLE} VALUES ($1, $2, $3, $4)",
                     [taken_at, event_count, created, sorted(skipped)])
        snap.execute(
            f"COMMENT ON TABLE {META_TABLE} IS 'When this read-only snapshot was taken from the store and how many "
            "events its event_log holds: data newer than taken_at is not here yet.'"
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
