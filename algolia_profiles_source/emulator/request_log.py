"""The record of the API calls an emulator answered, for tests to inspect."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RequestRecord:
    """One API call the emulator answered (admin calls are never recorded).

    ``path`` is the request target without its query string, still percent-encoded, as sent
    (except that a call answered with a fault other than ``truncated`` records an absolute-form
    target reduced to its path). ``params`` is the decoded query string (a repeated key keeps all
    its values as a list). ``status`` is 0 for a ``reset`` fault, which sends no response.
    Headers are not recorded, and an ``x-algolia-api-key`` query parameter is dropped, so no key
    is ever stored. ``at`` is the wall-clock time (Unix seconds) the call was recorded, just
    before its response was sent.
    """

    method: str
    path: str
    params: dict[str, Any]
    status: int
    fault: str | None
    at: float


class RequestLog:
    """Thread-safe list of `RequestRecord`, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def record(self, method: str, path: str, params: dict[str, Any], status: int,
               fault: str | None) -> None:
        """Append one call, stamped with the current time."""
        with self._lock:
            self._records.append(RequestRecord(method, path, params, status, fault, time.time()))

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the records so far."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()
