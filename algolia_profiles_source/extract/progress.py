"""Progress of a walk: a redrawn status line on a terminal, one line per stage elsewhere (CI logs).

The source reports each page to the active reporter (none by default: as a library it stays
silent); the CLI installs one for the duration of a command.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, TextIO
from collections.abc import Iterator

_active: Reporter | None = None


class Reporter:
    """Counts pages and profiles; draws at most ~4 times a second on a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, interactive: bool | None = None) -> None:
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self.pages = 0
        self.profiles = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()

    def stage(self, text: str) -> None:
        """A line that stays (both modes)."""
        with self._lock:
            if self.interactive and self._drawn:
                self.stream.write("\r\x1b[2K")
            self.stream.write(f"{text}\n")
            self.stream.flush()
            self._drawn = 0.0

    def page(self, profiles: int, governor: Any = None) -> None:
        with self._lock:
            self.pages += 1
            self.profiles += profiles
            now = time.monotonic()
            if not self.interactive or now - self._drawn < 0.25:
                return
            self._drawn = now
            rate = self.profiles / max(now - self.started, 1e-6)
            headroom = ""
            if governor is not None and governor.limit:
                left = governor.remaining if governor.remaining is not None else governor.limit
                headroom = f" · quota {left}/{governor.limit} left"
            self.stream.write(f"\r\x1b[2K{self.pages:,} pages · {self.profiles:,} profiles · {rate:,.0f}/s{headroom}")
            self.stream.flush()


def report_page(profiles: int, governor: Any = None) -> None:
    if _active is not None:
        _active.page(profiles, governor)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    global _active
    previous, _active = _active, reporter
    try:
        yield reporter
    finally:
        _active = previous
