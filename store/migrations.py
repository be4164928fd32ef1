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


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration newer than the store's version; return the resulting version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row else 0
    for version, name, sql in _migration_files():
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        current = version
    return current
