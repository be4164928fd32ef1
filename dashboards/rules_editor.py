"""The admin's editor of the declarative rules file (PVWATCH_RULES_FILE; docs/rules.md).

An edit is validated with the loader the worker runs at start-up (pvwatch.rulebook.load_rule_parameters), so a
file the page accepts is a file the worker starts with; a rejected edit changes nothing. An accepted one replaces
the file atomically (written next to it, then renamed over it), after the previous version is copied to
`<file>.<UTC time>` so it can be put back. The worker reads the rules only when it starts: the page says so.
The packaged rules.yaml is never edited (a reinstall would silently undo it): without PVWATCH_RULES_FILE the page
shows it read-only and explains how to set the variable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from pvwatch.errors import ConfigError
from pvwatch.rulebook import load_rule_parameters

PACKAGED_RULES = "rules.yaml"
#: a new rules file (none there yet) is readable by the worker's group, written only by its owner
NEW_RULES_FILE_MODE = 0o640
_saving = threading.Lock()


class RulesRejected(ConfigError):
    """The edited rules file was not saved: the reason is for the admin, verbatim."""


@dataclass(frozen=True)
class RulesInForce:
    #: the configured rules file, or None: the packaged rules.yaml (read-only)
    path: Path | None
    text: str
    #: False when the configured file does not exist yet (the packaged text is shown; saving creates the file)
    exists: bool

    @property
    def sha256(self) -> str:
        return sha256_of(self.text)

    @property
    def versions(self) -> dict[str, int]:
        """Each rule's version in this file (versions are part of alert ids); empty if the file does not load."""
        try:
            return dict(load_rule_parameters(self.path if self.exists else None).versions)
        except ConfigError:
            return {}


@dataclass(frozen=True)
class SavedRules:
    path: Path
    sha256_before: str | None  #: None: the file was created
    sha256_after: str
    backup: Path | None
    #: rules whose version changed: {rule id: (before, after)}
    versions_changed: dict[str, tuple[int, int]]


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def packaged_rules_text() -> str:
    return (resources.files("pvwatch") / PACKAGED_RULES).read_text()


def rules_in_force(rules_file: Path | None) -> RulesInForce:
    if rules_file is None:
        return RulesInForce(None, packaged_rules_text(), exists=False)
    try:
        return RulesInForce(rules_file, rules_file.read_text(), exists=True)
    except FileNotFoundError:
        return RulesInForce(rules_file, packaged_rules_text(), exists=False)
    except OSError as error:
        raise ConfigError(f"cannot read the rules file {rules_file}: {error.strerror}") from None


def save_rules(rules_file: Path | None, text: str, shown_sha256: str, rsi_file: Path | None = None,
               now: datetime | None = None) -> SavedRules:
    """Validate `text` as the worker would, then replace the rules file with it, keeping the previous version.

    `shown_sha256` is the SHA-256 of the version the admin edited: if the file changed since (another admin, an
    operator), nothing is saved, so nobody overwrites a change they never saw.
    """
    if rules_file is None:
        raise RulesRejected("the rules in force are the packaged file, which is not edited here: "
                            "set PVWATCH_RULES_FILE (see below)")
    text = text.replace("\r\n", "\n")
    with _saving:
        current = rules_in_force(rules_file)
        if shown_sha256 != current.sha256:
            raise RulesRejected(f"{rules_file} changed since you opened it; reload the page and edit again")
        if current.exists and text == current.text:
            raise RulesRejected("the submitted text is the file in force: nothing to save")
        before_versions = current.versions  # read from the file, so before it is replaced
        pending = rules_file.with_name(f".{rules_file.name}.pending-{os.getpid()}")
        mode = rules_file.stat().st_mode & 0o777 if current.exists else NEW_RULES_FILE_MODE
        try:
            descriptor = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise RulesRejected(f"cannot write next to {rules_file}: {error.strerror}") from None
        try:
            try:
                after = load_rule_parameters(pending, rsi_file)
            except ConfigError as error:  # the loader names the file it read: name the one being edited
                raise RulesRejected(str(error).replace(str(pending), str(rules_file))) from None
            backup = None
            if current.exists:
                stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
                backup = rules_file.with_name(f"{rules_file.name}.{stamp}")
                shutil.copy2(rules_file, backup)
            os.replace(pending, rules_file)
        finally:
            pending.unlink(missing_ok=True)
    changed = {rule: (before_versions[rule], version) for rule, version in after.versions.items()
               if rule in before_versions and before_versions[rule] != version}
    return SavedRules(rules_file, current.sha256 if current.exists else None, sha256_of(text), backup, changed)
