"""A rate governor driven by Algolia's ``x-ratelimit-*`` response headers.

The API allows a number of calls per window per *application*, shared with the customer's live site.
The governor reads the limit from the headers (never hard-coded) and, before each call, waits for
the window to reset once the calls left would dip into the part of the quota reserved for others
(``1 - max_share`` of the limit). It is thread-safe: concurrent walks share one instance.

A response's ``x-ratelimit-remaining`` was counted when its request arrived, so calls still in
flight may not be in it yet: the governor subtracts them, and never lets an answer from a window
that is already over speak for the current one.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping

LIMIT_HEADER = "x-ratelimit-limit"
REMAINING_HEADER = "x-ratelimit-remaining"
RESET_HEADER = "x-ratelimit-reset"

# Reset instants are whole Unix seconds: wake a little after them, not on them.
_RESET_MARGIN = 0.05
# Never trust a reset further away than this (clock skew or a bogus header).
_MAX_RESET_WAIT = 120.0
# How often a call re-checks while the window's reset time is not known yet.
_POLL = 0.05


@dataclass
class RateGovernor:
    """Paces calls so that at most ``max_share`` of each rate-limit window is used.

    Each :meth:`acquire` must be followed by exactly one :meth:`observe` (with the response's
    headers, or ``{}`` when the call failed without a response). ``clock`` and ``sleep`` are
    injectable for tests.
    """

    max_share: float = 0.8
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    in_flight: int = 0
    window_over: float = 0.0  # the end of the last window known to be over
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
        """Blocks until a call may be made, then counts it against the window."""
        while True:
            with self._lock:
                now = self.clock()
                if self.reset_at is not None and now >= self.reset_at:
                    # a new window: assume the whole limit until an answer tells the count
                    self.window_over = self.reset_at
                    self.remaining, self.reset_at = self.limit, None
                if self.remaining is None or self.remaining > self.reserve:
                    if self.remaining is not None:
                        self.remaining -= 1
                    self.in_flight += 1
                    return
                if self.reset_at is None:
                    if self.in_flight == 0:  # nobody will tell us the reset: probe with one call
                        self.in_flight += 1
                        return
                    wait = _POLL
                else:
                    wait = min(self.reset_at - now, _MAX_RESET_WAIT) + random.uniform(0, _RESET_MARGIN)
            self.sleep(wait)

    def observe(self, headers: Mapping[str, str], throttled: bool = False) -> float | None:
        """Records the answer to one acquired call.

        Returns the seconds until the window resets when the answer was throttled, else None.
        """
        limit = _int_header(headers, LIMIT_HEADER)
        remaining = _int_header(headers, REMAINING_HEADER)
        reset = _int_header(headers, RESET_HEADER)
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            if limit is not None and limit > 0:
                self.limit = limit
            if reset is not None:
                window_end = reset + _RESET_MARGIN
                if window_end <= self.window_over or (
                    self.reset_at is not None and window_end < self.reset_at
                ):
                    pass  # a late answer from a window that is over
                else:
                    estimate = None if remaining is None else max(0, remaining - self.in_flight)
                    if self.reset_at is None and self.remaining is not None and estimate is not None:
                        self.remaining = min(self.remaining, estimate)  # first answer after a roll
                    elif self.reset_at is None or window_end > self.reset_at:
                        self.remaining = estimate  # the first answer of a new window
                    elif estimate is not None:
                        current = self.remaining if self.remaining is not None else estimate
                        self.remaining = min(current, estimate)
                    self.reset_at = window_end
            if throttled:
                self.throttled += 1
                if self.reset_at is None:
                    return None
                self.remaining = 0
                return max(0.0, min(self.reset_at - self.clock(), _MAX_RESET_WAIT))
        return None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None
