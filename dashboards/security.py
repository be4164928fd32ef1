"""Sessions in signed cookies, CSRF tokens and the login rate limit.

Sessions follow the OWASP Session Management Cheat Sheet: the cookie is HttpOnly (no script can read it),
SameSite=Strict (never sent on a request started by another site), Secure when served over TLS, signed with a
server secret (itsdangerous, HMAC-SHA1 over the payload and a timestamp) and expires after `max_age_s`; a new
session id and CSRF token are issued at login (no session fixation) and logout revokes the id server-side (kept
in a file next to the audit log, so also across restarts).
CSRF follows the synchronizer-token pattern (OWASP CSRF Prevention Cheat Sheet): every POST carries the
session's token in a form field or the X-CSRF-Token header, compared in constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "pvwatch_session"
LOGIN_COOKIE = "pvwatch_login"


@dataclass(frozen=True)
class Session:
    user: str | None  #: None before login (the login form's own CSRF token)
    session_id: str
    csrf_token: str
    #: when the user signed in (seconds since the epoch): a session older than the user's sessions_not_before is over
    signed_in_at: float = 0.0

    @classmethod
    def new(cls, user: str | None) -> Session:
        return cls(user, secrets.token_urlsafe(16), secrets.token_urlsafe(32), time.time())


class SessionCodec:
    """Signs and reads session cookies. Signed-out sessions are refused until they would have expired anyway; with
    `revoked_file` they stay refused across a restart (a restart with the same --secret-file would otherwise
    accept a copied cookie of a signed-out session again)."""

    def __init__(self, secret: bytes, max_age_s: int, revoked_file: Path | None = None) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="pvwatch-dashboard-session")
        self.max_age_s = max_age_s
        self.revoked_file = revoked_file
        #: session id -> wall-clock time of the sign-out
        self._revoked: dict[str, float] = self._load_revoked()

    def encode(self, session: Session) -> str:
        return self._serializer.dumps({"u": session.user, "s": session.session_id, "c": session.csrf_token,
                                       "t": session.signed_in_at})

    def decode(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:  # also covers SignatureExpired
            return None
        if not isinstance(data, dict) or data.get("s") in self._revoked:
            return None
        signed_in_at = data.get("t", 0.0)
        return Session(data.get("u"), str(data.get("s")), str(data.get("c")),
                       float(signed_in_at) if isinstance(signed_in_at, int | float) else 0.0)

    def revoke(self, session: Session) -> None:
        now = time.time()
        self._revoked = {sid: at for sid, at in self._revoked.items() if now - at < self.max_age_s}
        self._revoked[session.session_id] = now
        if self.revoked_file is not None:
            self._save_revoked(self.revoked_file)

    def _load_revoked(self) -> dict[str, float]:
        if self.revoked_file is None or not self.revoked_file.exists():
            return {}
        now = time.time()
        found: dict[str, float] = {}
        for line in self.revoked_file.read_text(encoding="utf-8").splitlines():
            session_id, _, at = line.partition(" ")
            try:
                signed_out = float(at)
            except ValueError:
                continue  # not "<session id> <time>" (the file is rewritten whole, so never half a line)
            if now - signed_out < self.max_age_s:
                found[session_id] = signed_out
        return found

    def _save_revoked(self, path: Path) -> None:
        """The sessions still worth refusing, written atomically, owner-only (like the audit log)."""
        write_owner_only(path, "".join(f"{sid} {at}\n" for sid, at in self._revoked.items()))


def write_owner_only(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, readable by its owner only (0600 whatever the umask)."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class LoginRateLimiter:
    """At most `max_failures` failed logins per (user name, client address) in any `window_s` seconds.

    Counting per user and address (OWASP Authentication Cheat Sheet, "login throttling") slows guessing one
    account's password without letting one attacker lock every user out from elsewhere.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and now - failures[0] >= self.window_s:
            failures.popleft()
        return failures

    def retry_after_s(self, user: str, address: str) -> float | None:
        """Seconds until another attempt is allowed, or None if one is allowed now."""
        now = time.monotonic()
        failures = self._recent((user.lower(), address), now)
        if len(failures) < self.max_failures:
            return None
        return max(1.0, self.window_s - (now - failures[0]))

    def record_failure(self, user: str, address: str) -> None:
        now = time.monotonic()
        self._recent((user.lower(), address), now).append(now)

    def reset(self, user: str, address: str) -> None:
        self._failures.pop((user.lower(), address), None)
