"""A rate governor driven by Algolia's ``x-ratelimit-*`` response headers.

The API allows a number of calls per window per *application*, shared with the customer's live site.
The governor reads the limit from the headers (never hard-coded), and before each call waits for the
window to reset once the remaining calls would dip into the part of the quota reserved for others
(``1 - max_share`` of the limit). It is thread-safe so concurrent walks can share one instance.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

LIMIT_HEADER = "x-ratelimit-limit"
REMAINING_HEADER = "x-ratelimit-remaining"
RESET_HEADER = "x-ratelimit-reset"

# Reset instants are whole Unix seconds: wake a little after them, not on them.
_RESET_MARGIN = 0.05
# Never trust a reset further away than this (clock skew or a bogus header).
_MAX_RESET_WAIT = 120.0


@dataclass
class RateGovernor:
    """Paces calls so that at most ``max_share`` of each rate-limit window is used.

    ``clock`` and ``sleep`` are injectable for tests.
    """

    max_share: float = 0.8
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    limit: Optional[int] = None
    remaining: Optional[int] = None
    reset_at: Optional[float] = None
    waited_seconds: float = 0.0
    throttled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1], got {self.max_share}")

    @property
    def reserve(self) -> int:
        """Calls per window left to the application's other clients."""
        if self.limit is None:
            return 0
        return self.limit - math.floor(self.limit * self.max_share + 1e-9)

    def acquire(self) -> None:
        """Blocks until a call may be made, then counts it against the known remaining quota."""
        while True:
            with self._lock:
                now = self.clock()
                if self.reset_at is not None and now >= self.reset_at:
                    # a new window: the next response tells the new remaining count
                    self.remaining, self.reset_at = None, None
                if self.remaining is None or self.reset_at is None or self.remaining > self.reserve:
                    if self.remaining is not None:
                        self.remaining -= 1
                    return
                wait = min(self.reset_at - now, _MAX_RESET_WAIT) + _RESET_MARGIN
            wait += random.uniform(0, _RESET_MARGIN)
            self.waited_seconds += wait
            self.sleep(wait)

    def observe(self, headers: Mapping[str, str], throttled: bool = False) -> Optional[float]:
        """Updates the window from a response's headers.

        Returns the seconds until the window resets when the response was throttled, else None.
        """
        limit = _int_header(headers, LIMIT_HEADER)
        remaining = _int_header(headers, REMAINING_HEADER)
        reset = _int_header(headers, RESET_HEADER)
        with self._lock:
            if limit is not None and limit > 0:
                self.limit = limit
            if reset is not None:
                if self.reset_at is None or reset + _RESET_MARGIN != self.reset_at:
                    # a new window, or the first response of this one: trust the server's count
                    self.reset_at = reset + _RESET_MARGIN
                    self.remaining = remaining
                elif remaining is not None:
                    # responses of one window can arrive out of order: keep the smallest count
                    self.remaining = min(remaining, self.remaining if self.remaining is not None else remaining)
            elif remaining is not None:
                self.remaining = remaining
            if throttled:
                self.throttled += 1
                if self.reset_at is None:
                    return None
                self.remaining = 0
                return max(0.0, min(self.reset_at - self.clock(), _MAX_RESET_WAIT))
        return None


def _int_header(headers: Mapping[str, str], name: str) -> Optional[int]:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None
