"""Versioned schema migrations: `NNN_name.sql` files applied once each, in order, inside a transaction."""

from __future__ import annotations

from importlib import resources

import duckdb


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("pvwatch.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


def latest_version() -> int:
    return max(version for version, _, _ in _migration_files())


def is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store behind `con` (read-only will do) has had every migration: replay then skips the
    read-write open that `migrate` needs."""
    try:
        applied = {int(row[0]) for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    except duckdb.CatalogException:  # a store that never had a migration
        return False
    return {version for version, _, _ in _migration_files()} <= applied


def migrate(con: duckdb.DuckDBPyConnection, files: list[tuple[int, str, str]] | None = None) -> int:
    """Apply every migration the store has not had yet; return the highest version applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    applied = {int(row[0]) for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    # Any version not yet applied runs, in order: migrations written in parallel may land out of number order.
    for version, name, sql in files if files is not None else _migration_files():
        if version in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.add(version)
    return max(applied, default=0)
