"""`pvwatch signals` asks glibc to keep freed memory (docs/signals.md, Speed), and only glibc: on another C
library the command runs with that library's own policy instead of calling a glibc-only interface."""

from __future__ import annotations

import ctypes
import os

import pytest

from pvwatch import signals_command


class _RecordingLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


def _no_libc_lookup(name: object = None) -> object:
    raise AssertionError("the C library was looked up on a platform without glibc")


@pytest.mark.parametrize("platform_error", [ValueError("unrecognized configuration name"), AttributeError("confstr")])
def test_without_glibc_the_allocator_is_left_alone(monkeypatch: pytest.MonkeyPatch,
                                                   platform_error: Exception) -> None:
    # musl and macOS have no CS_GNU_LIBC_VERSION (ValueError); Windows has no os.confstr (AttributeError)
    def confstr(name: str) -> str:
        raise platform_error

    monkeypatch.setattr(os, "confstr", confstr)
    monkeypatch.setattr(ctypes, "CDLL", _no_libc_lookup)
    signals_command._keep_freed_memory()


@pytest.mark.skipif(not signals_command._glibc(), reason="glibc only")
def test_on_glibc_the_mmap_threshold_is_raised_and_trimming_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # glibc's malloc.h: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3; 32 MB is the largest threshold it accepts on 64-bit
    libc = _RecordingLibc()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    signals_command._keep_freed_memory()
    assert libc.calls == [(-3, 32 * 1024 * 1024), (-1, 1 << 30)]
