"""The dashboard's append-only, hash-chained audit log: who read which patient's record, who did what, when.

One JSON object per line. Each entry carries `prev`, the SHA-256 of the previous entry, and `hash`, the SHA-256
of its own canonical JSON (sorted keys, without `hash`), so editing any entry breaks its own hash, and deleting or
reordering entries breaks the chain (the first entry's `prev` is 64 zeros). What a chain cannot show on its own
is a cut-off tail: record the head hash that `pvwatch audit verify` prints somewhere else (a ticket, a log
shipper) and pass it back with `--expect-head` to prove nothing was removed from the end.

The log is owned by the dashboard process, not the worker: reads are not clinical events and must not need the
broker to be recorded. It says which child's record who read and holds officers' free-text reasons, so it is
owner-only (AUDIT_LOG_MODE, like the full snapshot) whatever the umask.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pvwatch.errors import PvwatchError

GENESIS = "0" * 64
#: owner-only: which patient each staff member read, and free text, are for the service account and auditors
AUDIT_LOG_MODE = 0o600


class AuditChainBroken(PvwatchError):
    """The audit log was edited, truncated in the middle, or reordered."""


@dataclass(frozen=True)
class AuditVerification:
    entries: int
    head: str
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {key: value for key, value in entry.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def verify_audit_log(path: Path, expect_head: str | None = None) -> AuditVerification:
    """Walk the chain; report every broken link (the line number and what is wrong)."""
    problems: list[str] = []
    previous = GENESIS
    count = 0
    if not path.exists():
        return AuditVerification(0, GENESIS, [f"{path} does not exist"])
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            count += 1
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(f"line {number}: not JSON ({error.msg})")
                previous = "?"
                continue
            if not isinstance(entry, dict):
                problems.append(f"line {number}: not a JSON object")
                previous = "?"
                continue
            if entry.get("seq") != number:
                problems.append(f"line {number}: seq is {entry.get('seq')!r}, expected {number} "
                                "(an entry was removed, inserted or moved)")
            if entry.get("prev") != previous and previous != "?":
                problems.append(f"line {number}: prev does not match the hash of line {number - 1} "
                                "(an entry before it was edited, removed or moved)")
            if entry.get("hash") != _entry_hash(entry):
                problems.append(f"line {number}: its content does not match its hash (the entry was edited)")
            previous = str(entry.get("hash"))
    if expect_head is not None and previous != expect_head:
        problems.append(f"the head is {previous}, expected {expect_head} (entries were removed from the end)")
    return AuditVerification(count, previous, problems)


class AuditLog:
    """Appends entries under a lock, flushed and fsynced: an entry is on disk before the response is sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        check = verify_audit_log(path) if path.exists() else AuditVerification(0, GENESIS, [])
        if not check.intact:
            raise AuditChainBroken(f"{path} fails verification, refusing to append to it: {check.problems[0]} "
                                   f"(see `pvwatch audit verify {path}`)")
        self._seq = check.entries
        self._head = check.head
        self._lock = threading.Lock()
        if path.exists():
            path.chmod(AUDIT_LOG_MODE)  # a log created before the mode was enforced

    def append(self, actor: str, action: str, /, *, patient: str | None = None, **detail: Any) -> dict[str, Any]:
        with self._lock:
            entry: dict[str, Any] = {
                "seq": self._seq + 1,
                "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                "actor": actor,
                "action": action,
                "patient": patient,
                # through JSON once, so the hash is computed over exactly what verification will read back
                "detail": json.loads(json.dumps(detail, default=str)),
                "prev": self._head,
            }
            entry["hash"] = _entry_hash(entry)
            line = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, AUDIT_LOG_MODE)
            with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self._seq += 1
            self._head = entry["hash"]
            return entry

    @property
    def head(self) -> str:
        return self._head
