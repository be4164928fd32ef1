"""The output files of `pvwatch signals` (OUT.csv, HYPER.json, the plot): checked before the computation, written
whole or not at all. Light on purpose (no numpy): the command checks its paths before importing the statistics."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pvwatch.errors import PvwatchError


def write_output(path: Path, what: str, write: Callable[[BinaryIO], object]) -> None:
    """Write one output file of `pvwatch signals` (OUT.csv, HYPER.json, the plot) with `write`, or none at all.

    A truncated file (disk full, interrupted) must not pass for a complete one: on any failure the file this call
    opened is removed, never what the name may point to (--out /dev/stdout is a link, not removed); an OSError
    becomes OutputNotWritten naming the file and the cause."""
    opened: tuple[int, int] | None = None  # (device, inode) of the file this call truncated
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            written = os.fstat(out.fileno())
            opened = (written.st_dev, written.st_ino)
            write(out)
    except BaseException as error:
        if opened is not None and _is_regular_file(path, opened):
            path.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputNotWritten(f"{path}: {what} not written: {error.strerror or error}") from error
        raise


class OutputNotWritten(PvwatchError):
    """An output file could not be written (disk full, no permission, a directory in its place); none is left."""


def check_writable(path: Path, what: str) -> None:
    """Refuse an output path that cannot be written before the computation starts, not after it (a directory, a
    path under a file, no permission). Nothing is created or changed: an existing regular file is opened for
    appending, which neither truncates it nor creates one; a new file's nearest existing folder is probed with
    an anonymous temporary file. A device or pipe (--out /dev/stdout) is left to the write itself."""
    try:
        if path.is_dir():
            raise OutputNotWritten(f"{path}: {what} not written: a directory has that name")
        if path.exists():
            if path.is_file():
                with path.open("ab"):
                    pass
            return
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise OutputNotWritten(f"{path}: {what} not written: {folder} is a file, not a folder")
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise OutputNotWritten(f"{path}: {what} not written: {error.strerror or error}") from error


def _is_regular_file(path: Path, identity: tuple[int, int]) -> bool:
    try:
        status = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(status.st_mode) and (status.st_dev, status.st_ino) == identity
