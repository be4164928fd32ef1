"""The output files of `pvwatch signals` (OUT.csv, HYPER.json, the plot): checked before the computation, written
whole or not at all. Light on purpose (no numpy): the command checks its paths before importing the statistics."""

from __future__ import annotations

import os
import stat
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pvwatch.errors import PvwatchError


def write_output(path: Path, what: str, write: Callable[[BinaryIO], object]) -> None:
    """Write one output file of `pvwatch signals` (OUT.csv, HYPER.json, the plot) with `write`, whole or not at all.

    A truncated file must not pass for a complete one, nor may a failed run destroy the previous one: a new or
    regular file is written to a hidden temporary file beside it, flushed to disk and renamed over the name only
    when complete, so the name holds the previous file or the whole new one whatever happens in between (disk full,
    Ctrl-C, kill -9 or the OOM killer, a power cut). The temporary file is removed on failure (a kill -9 leaves it,
    named .NAME.*.partial). A new file gets the mode a plain open gives (0666 less the umask), a replaced one keeps
    its own. A link, a device or a pipe (--out /dev/stdout) is written through in place and never removed. An
    OSError becomes OutputNotWritten naming the file and the cause."""
    try:
        try:
            status: os.stat_result | None = path.lstat()
        except FileNotFoundError:
            status = None
        if status is None or stat.S_ISREG(status.st_mode):
            _replace_whole(path, None if status is None else stat.S_IMODE(status.st_mode), write)
        else:
            with path.open("wb") as out:
                write(out)
    except OSError as error:
        raise OutputNotWritten(f"{path}: {what} not written: {error.strerror or error}") from error


def _replace_whole(path: Path, mode: int | None, write: Callable[[BinaryIO], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is not None:
        with path.open("ab"):  # a write-protected file is refused, as the open that truncated it in place refused it
            pass
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    # O_EXCL: never another's file; 0o666: the umask applies, as to a plain open
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as out:
            if mode is not None and stat.S_IMODE(os.fstat(out.fileno()).st_mode) != mode:
                os.fchmod(out.fileno(), mode)
            write(out)
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename: a power cut never leaves the name on an empty file
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class OutputNotWritten(PvwatchError):
    """An output file could not be written (disk full, no permission, a directory in its place); none is left."""


def check_writable(path: Path, what: str) -> None:
    """Refuse an output path that cannot be written before the computation starts, not after it (a directory, a
    path under a file, no permission). Nothing is created or changed: an existing regular file is opened for
    appending, which neither truncates it nor creates one; the folder its replacement is written in (write_output),
    or a new file's nearest existing folder, is probed with an anonymous temporary file. A device or pipe
    (--out /dev/stdout) is left to the write itself."""
    try:
        if path.is_dir():
            raise OutputNotWritten(f"{path}: {what} not written: a directory has that name")
        if path.exists():
            if not path.is_file():
                return
            with path.open("ab"):
                pass
            if path.is_symlink():  # written through the link, in place
                return
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise OutputNotWritten(f"{path}: {what} not written: {folder} is a file, not a folder")
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise OutputNotWritten(f"{path}: {what} not written: {error.strerror or error}") from error
