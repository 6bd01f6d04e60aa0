"""How many calls a walk keeps in flight.

The export may make ``rate`` calls per second (its share of the limit per window, read from the
``x-ratelimit-*`` headers by :class:`~..http.rate_limit.RateGovernor`), and a call takes ``latency``
seconds once sent (measured by the same governor). ``rate × latency`` calls in flight use the whole
share; fewer leave part of it unused, more only wait on the governor while holding pages in memory.
:class:`ConcurrencyController` keeps ``⌈1.05 x + 0.3⌉`` in flight for ``x = rate × latency``: a
little headroom for jitter, and one sequential walk while one is enough (short pages, a low limit).
It follows the measurements as they change: fewer calls in flight when pages get faster, more when
they slow down. Pages are only useful as fast as this process can parse them (in the walking
threads) and the walk's consumer (turning them into tables, dlt's writers) takes them: when that
is slower than the quota, as with no limit to speak of, that rate replaces the quota's, so that
pages do not pile up in memory and threads do not contend for the interpreter. Latency counts up to
twice that of the walk's fastest early answer (one call in flight): beyond that, calls are queueing
at a saturated server, and adding calls would only lengthen the queue (and, read as latency, ask
for still more calls). A fixed ``concurrency`` overrides it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

# Calls in flight the controller never exceeds (a fixed ``concurrency`` may ask for up to 64):
# the real limit (500 calls a minute) needs 18 at 2 s per page, and each call in flight can hold
# a parsed page.
MAX_ADAPTIVE_CONCURRENCY = 32
# Calls in flight beyond rate × latency, for jitter: ⌈1.05 x + 0.3⌉ stays within ⌈x⌉ + 1 up to
# x = 14 and within ⌈x⌉ + 2 up to x = 34.
HEADROOM = 1.05
HEADROOM_CALLS = 0.3
# Latency counts up to this multiple of the fastest call's: a server (or link) that slows down as
# calls are added is saturated, and more calls in flight would only wait longer.
CONGESTION = 2.0
# Weight of the newest sample in the running mean of the consumer's seconds per page.
_CONSUMER_WEIGHT = 0.1


class ConcurrencyController:
    """The number of calls to keep in flight: fixed, or adapted to the quota and page latency."""

    def __init__(self, governor: Any, fixed: int | None = None, ceiling: int = MAX_ADAPTIVE_CONCURRENCY) -> None:
        self.governor = governor
        self.fixed = fixed
        self.ceiling = ceiling
        self.consumer_seconds: float | None = None  # running mean of the consumer's time per page

    @property
    def adaptive(self) -> bool:
        return self.fixed is None

    def record_consumer(self, seconds: float) -> None:
        """The consumer spent ``seconds`` on one page before asking for the next."""
        if self.consumer_seconds is None:
            self.consumer_seconds = seconds
        else:
            self.consumer_seconds += _CONSUMER_WEIGHT * (seconds - self.consumer_seconds)

    def calls_needed(self) -> float | None:
        """``rate × latency``: the calls in flight that would use the export's whole share, or
        feed the consumer as fast as it goes if that is slower (None until a response told the
        limit and a call's latency)."""
        rate = self.governor.allowed_rate()
        latency = self.governor.latency
        if rate is None or latency is None:
            return None
        if self.governor.base_latency:  # beyond that, calls queue somewhere: more would queue too
            latency = min(latency, CONGESTION * self.governor.base_latency)
        if self.consumer_seconds:
            # parsing runs in the walking threads, on the same interpreter as the consumer
            rate = min(rate, 1 / (self.consumer_seconds + (self.governor.parse_seconds or 0.0)))
        return rate * latency

    def target(self) -> int:
        """Calls to keep in flight now."""
        if self.fixed is not None:
            return self.fixed
        needed = self.calls_needed()
        if needed is None:
            return 1
        return max(1, min(self.ceiling, math.ceil(HEADROOM * needed + HEADROOM_CALLS)))

    def measured(self) -> bool:
        """Whether :meth:`target` rests on the rate-limit window the answers showed (measured or
        estimated), not on the documented one."""
        governor = self.governor
        return self.fixed is not None or governor.window_seconds is not None or governor.window_estimate is not None


class InFlightGate:
    """Lets at most ``limit()`` callers in at once; ``limit`` is read again whenever one waits, so
    a lower target takes effect as calls return. ``peak`` is the most that were ever in."""

    def __init__(self, limit: Callable[[], int], stopped: Callable[[], bool] = lambda: False) -> None:
        self._limit = limit
        self._stopped = stopped
        self._inside = 0
        self.peak = 0
        self._changed = threading.Condition()

    def enter(self) -> bool:
        """Waits for room; False when the walk stopped meanwhile."""
        with self._changed:
            while self._inside >= max(1, self._limit()):
                if self._stopped():
                    return False
                self._changed.wait(timeout=0.1)
            self._inside += 1
            self.peak = max(self.peak, self._inside)
            return True

    def leave(self) -> None:
        with self._changed:
            self._inside -= 1
            self._changed.notify()
