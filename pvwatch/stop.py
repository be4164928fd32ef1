"""Ctrl-C for the commands that talk to Kafka (`pvwatch demo`, `pvwatch ingest`)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class StopRequests:
    """Ctrl-C and SIGTERM set a flag that a command reads between its own steps.

    An exception raised straight from a signal handler can land inside kafka-python's network loop, which catches
    BaseException in its tasks: seen, Ctrl-C during the producer's bootstrap hung `pvwatch demo` for good, and
    during `pvwatch ingest` it was ignored (every line sent, exit 0) or surfaced as a JSON serialisation error. A
    flag is only read in pvwatch's own code. A second Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self._requested = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, signum: int, frame: object) -> None:
        if self._requested.is_set():
            raise KeyboardInterrupt
        self._requested.set()

    def check(self) -> None:
        if self._requested.is_set():
            raise KeyboardInterrupt

    def wait(self, seconds: float) -> None:
        """Sleep; a stop requested meanwhile ends the sleep at once with KeyboardInterrupt."""
        if self._requested.wait(seconds):
            raise KeyboardInterrupt

    def until_requested(self, items: Iterable[T]) -> Iterator[T]:
        for item in items:
            self.check()
            yield item
