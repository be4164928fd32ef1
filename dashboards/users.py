"""Dashboard users: names, roles and Argon2id password hashes kept in a YAML (or read-only TOML) file.

Argon2id is the password hash RFC 9106 recommends (and OWASP's Password Storage Cheat Sheet lists first);
argon2-cffi's defaults follow RFC 9106's second recommended parameter set. The file holds hashes only, never a
password; `pvwatch user add` and the admin page write it with mode 0600. A disabled user cannot sign in, and a
user's sessions signed in before `sessions_not_before` (set when they are disabled or their password is reset)
are refused. At least one enabled admin always remains, so someone can still manage users from the page.
"""

from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pvwatch.dashboards.security import write_owner_only
from pvwatch.errors import ConfigError

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_LENGTH = 12


class Role(StrEnum):
    """Safety officer: cases, alerts and actions. Analyst: pseudonymised data and SQL, no actions.
    Admin: users and configuration, no patient data."""

    OFFICER = "officer"
    ANALYST = "analyst"
    ADMIN = "admin"


class Permission(StrEnum):
    VIEW_ALERTS = "view-alerts"
    VIEW_PATIENTS = "view-patients"
    VIEW_NARRATIVES = "view-narratives"
    EXPORT_E2B = "export-e2b"
    ACT_ON_ALERTS = "act-on-alerts"
    RUN_SQL = "run-sql"
    VIEW_HEALTH = "view-health"
    ADMINISTER = "administer"


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OFFICER: frozenset({Permission.VIEW_ALERTS, Permission.VIEW_PATIENTS, Permission.VIEW_NARRATIVES,
                             Permission.EXPORT_E2B, Permission.ACT_ON_ALERTS, Permission.VIEW_HEALTH}),
    Role.ANALYST: frozenset({Permission.VIEW_ALERTS, Permission.VIEW_PATIENTS, Permission.RUN_SQL,
                             Permission.VIEW_HEALTH}),
    Role.ADMIN: frozenset({Permission.ADMINISTER, Permission.VIEW_HEALTH}),
}


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str
    disabled: bool = False
    #: sessions signed in before this time (seconds since the epoch) are refused: set at disable and password reset
    sessions_not_before: float | None = None

    def may(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]

    def accepts_session(self, signed_in_at: float) -> bool:
        """Whether a session this user signed in to at `signed_in_at` is still theirs to use."""
        return not self.disabled and (self.sessions_not_before is None or signed_in_at >= self.sessions_not_before)


class UserStore:
    """The user file, re-read when it changes, so a removed user or a changed role takes effect at once."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = path
        self.hasher = hasher or PasswordHasher()
        self._mtime_ns: int | None = None
        self._users: dict[str, User] = {}
        # Verifying against a real hash when the name is unknown keeps the login time the same either way.
        self._absent_user_hash = self.hasher.hash("pvwatch: no such user")

    def users(self) -> dict[str, User]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._users, self._mtime_ns = {}, None
            return {}
        if mtime != self._mtime_ns:
            self._users = _load(self.path)
            self._mtime_ns = mtime
        return self._users

    def get(self, name: str) -> User | None:
        return self.users().get(name)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user, if the password is theirs and they are not disabled (the hash is checked either way)."""
        user = self.get(name)
        try:
            self.hasher.verify(user.password_hash if user else self._absent_user_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return None if user is None or user.disabled else user

    def add(self, name: str, role: Role, password: str) -> User:
        """Add or replace a user (a new password or role); writes the file atomically, mode 0600. Replacing a
        user keeps them disabled if they were, and ends their sessions (the password changed)."""
        if not USER_NAME.match(name):
            raise ConfigError(f"user name {name!r} must match {USER_NAME.pattern}")
        self._check_password(password)
        existing = self.users().get(name)
        if existing is None:
            return self._write(User(name, role, self.hasher.hash(password)))
        return self._write(replace(existing, role=role, password_hash=self.hasher.hash(password),
                                   sessions_not_before=time.time()))

    def set_role(self, name: str, role: Role) -> User:
        return self._write(replace(self._existing(name), role=role))

    def set_disabled(self, name: str, disabled: bool) -> User:
        """Disable (cannot sign in; every session ends at its next request) or enable a user again (their old
        sessions stay ended)."""
        user = self._existing(name)
        return self._write(replace(user, disabled=disabled,
                                   sessions_not_before=time.time() if disabled else user.sessions_not_before))

    def reset_password(self, name: str, password: str) -> User:
        """A new password; the user's sessions end (whoever knew the old one is signed out)."""
        self._check_password(password)
        return self._write(replace(self._existing(name), password_hash=self.hasher.hash(password),
                                   sessions_not_before=time.time()))

    def _existing(self, name: str) -> User:
        user = self.users().get(name)
        if user is None:
            raise ConfigError(f"no user {name!r} in {self.path}")
        return user

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ConfigError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")

    def _write(self, user: User) -> User:
        """Save `user` in place of any user of that name, unless it leaves no enabled admin behind."""
        if self.path.suffix == ".toml":
            raise ConfigError(f"{self.path}: pvwatch writes users to a YAML file; TOML user files are read-only")
        before = self.users()
        after = {**before, user.name: user}
        if _enabled_admins(before) and not _enabled_admins(after):
            raise ConfigError(f"{user.name} is the last enabled admin: make another user admin first")
        _save(self.path, after)
        return user


def _enabled_admins(users: dict[str, User]) -> list[str]:
    return [u.name for u in users.values() if u.role is Role.ADMIN and not u.disabled]


def _load(path: Path) -> dict[str, User]:
    text = path.read_text()
    try:
        document = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {error}") from None
    entries = (document or {}).get("users") or {}
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: 'users' must map each user name to its role and password_hash")
    users: dict[str, User] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not USER_NAME.match(str(name)):
            raise ConfigError(f"{path}: user {name!r} needs a valid name, a role and a password_hash")
        try:
            role = Role(str(entry.get("role")))
        except ValueError:
            raise ConfigError(f"{path}: user {name!r} has role {entry.get('role')!r}; expected one of "
                              f"{[r.value for r in Role]}") from None
        password_hash = entry.get("password_hash")
        if not isinstance(password_hash, str) or not password_hash.startswith("$argon2"):
            raise ConfigError(f"{path}: user {name!r} has no Argon2 password_hash (use `pvwatch user add`)")
        disabled = entry.get("disabled", False)
        not_before = entry.get("sessions_not_before")
        if not isinstance(disabled, bool) or not (not_before is None or isinstance(not_before, int | float)):
            raise ConfigError(f"{path}: user {name!r}: disabled must be true or false and sessions_not_before a "
                              "number of seconds since 1970")
        users[str(name)] = User(str(name), role, password_hash, disabled,
                                None if not_before is None else float(not_before))
    return users


def _save(path: Path, users: dict[str, User]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"users": {u.name: {"role": u.role.value, "password_hash": u.password_hash,
                                   **({"disabled": True} if u.disabled else {}),
                                   **({"sessions_not_before": u.sessions_not_before}
                                      if u.sessions_not_before is not None else {})}
                          for u in sorted(users.values(), key=lambda u: u.name)}}
    write_owner_only(path, "# pvwatch dashboard users: Argon2id hashes only. Edit with `pvwatch user add`.\n"
                     + yaml.safe_dump(document, sort_keys=True))
