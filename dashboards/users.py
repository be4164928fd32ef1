"""Dashboard users: names, roles and Argon2id password hashes kept in a YAML (or read-only TOML) file.

Argon2id is the password hash RFC 9106 recommends (and OWASP's Password Storage Cheat Sheet lists first);
argon2-cffi's defaults follow RFC 9106's second recommended parameter set. The file holds hashes only, never a
password; `pvwatch user add` writes it with mode 0600.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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

    def may(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]


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
        user = self.get(name)
        try:
            self.hasher.verify(user.password_hash if user else self._absent_user_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return user

    def add(self, name: str, role: Role, password: str) -> User:
        """Add or replace a user (a new password or role); writes the file atomically, mode 0600."""
        if not USER_NAME.match(name):
            raise ConfigError(f"user name {name!r} must match {USER_NAME.pattern}")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ConfigError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        if self.path.suffix == ".toml":
            raise ConfigError(f"{self.path}: pvwatch writes users to a YAML file; TOML user files are read-only")
        users = dict(self.users())
        users[name] = User(name, role, self.hasher.hash(password))
        _save(self.path, users)
        return users[name]


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
        users[str(name)] = User(str(name), role, password_hash)
    return users


def _save(path: Path, users: dict[str, User]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"users": {u.name: {"role": u.role.value, "password_hash": u.password_hash}
                          for u in sorted(users.values(), key=lambda u: u.name)}}
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("# pvwatch dashboard users: Argon2id hashes only. Edit with `pvwatch user add`.\n")
        yaml.safe_dump(document, handle, sort_keys=True)
    os.replace(temporary, path)
