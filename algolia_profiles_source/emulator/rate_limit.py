"""The emulator's rate limit: a fixed number of API calls per fixed window of time."""

from __future__ import annotations

import math
import threading
import time


class FixedWindowRateLimiter:
    """Allow ``limit`` calls per window of ``window`` seconds.

    Windows are aligned on the clock (like a counter keyed by ``floor(now / window)``), so with a
    whole number of seconds the integer ``x-ratelimit-reset`` header is the exact reset.
    """

    def __init__(self, limit: int, window: float) -> None:
        self._lock = threading.Lock()
        self.configure(limit, window)

    def configure(self, limit: int, window: float) -> None:
        """Set the limit and the window length; starts a fresh window with no call counted.

        Raises:
            ValueError: when ``limit`` < 1 or ``window`` <= 0.
        """
        if limit < 1 or window <= 0:
            raise ValueError("rate limit and window must be positive")
        with self._lock:
            self.limit, self.window = int(limit), float(window)
            self._window_start, self._window_used = self._aligned(time.time()), 0

    def check(self, consume: bool) -> tuple[bool, dict[str, str]]:
        """Whether a call is allowed now, and the ``x-ratelimit-*`` headers of its answer.

        Starts a new window when the current one has ended. With ``consume``, an allowed call is
        counted (before the headers are computed, so ``remaining`` already excludes it).
        """
        with self._lock:
            now = time.time()
            if now >= self._window_start + self.window:
                self._window_start, self._window_used = self._aligned(now), 0
            allowed = self._window_used < self.limit
            if consume and allowed:
                self._window_used += 1
            headers = {
                "x-ratelimit-limit": str(self.limit),
                "x-ratelimit-remaining": str(self.limit - self._window_used),
                "x-ratelimit-reset": str(math.ceil(self._window_start + self.window)),
            }
            return allowed, headers

    def _aligned(self, now: float) -> float:
        return math.floor(now / self.window) * self.window
