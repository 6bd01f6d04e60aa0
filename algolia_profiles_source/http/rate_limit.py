"""A rate governor driven by Algolia's ``x-ratelimit-*`` response headers.

The API allows a number of calls per window per *application*, shared with the customer's live site.
The governor reads the limit from the headers (never hard-coded) and, before each call, waits for
the window to reset once the calls left would dip into the part of the quota reserved for others
(``1 - max_share`` of the limit). It is thread-safe: concurrent walks share one instance.

A response's ``x-ratelimit-remaining`` was counted when its request arrived, so calls still in
flight may not be in it yet: the governor subtracts them, and never lets an answer from a window
that is already over speak for the current one.

It also measures what the walk's concurrency controller (:mod:`..extract.concurrency`) needs: the
length of a rate-limit window (the step between two ``x-ratelimit-reset`` values; until one is
seen, the time from a window's first call to its reset), hence the calls per second this export
may make, and the time a call takes once it is sent (:meth:`RateGovernor.record_latency`).
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
# The API's documented window (500 calls per minute), assumed until an answer tells its reset.
DOCUMENTED_WINDOW_SECONDS = 60.0
# Answers the uncongested latency is the fastest of.
_BASE_SAMPLES = 5
# Weight of the newest sample in the running mean of call latency.
_LATENCY_WEIGHT = 0.1


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
    peak_in_flight: int = 0
    window_seconds: float | None = None  # measured: the step between two reset instants
    window_estimate: float | None = None  # until then: a window's first call to its reset (see observe)
    latency: float | None = None  # running mean of seconds per call, from sent to parsed
    base_latency: float | None = None  # a large answer's time before calls queue (see record_latency)
    parse_seconds: float | None = None  # running mean of the CPU seconds an answer's parsing takes
    _largest_body: int = field(default=0, repr=False)
    _first_large: list[float] = field(default_factory=list, repr=False)
    _last_reset: int | None = field(default=None, repr=False)
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
                    self._count_in_flight()
                    return
                if self.reset_at is None:
                    if self.in_flight == 0:  # nobody will tell us the reset: probe with one call
                        self._count_in_flight()
                        return
                    wait = _POLL
                else:
                    wait = min(self.reset_at - now, _MAX_RESET_WAIT) + random.uniform(0, _RESET_MARGIN)
            self.sleep(wait)

    def _count_in_flight(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def allowed_rate(self) -> float | None:
        """Calls per second this export may make: its share of the limit per window (None until
        an answer told the limit). The window is the measured one, else the estimate, else the
        documented minute (see :meth:`observe`)."""
        with self._lock:
            if self.limit is None:
                return None
            window = self.window_seconds or self.window_estimate or DOCUMENTED_WINDOW_SECONDS
            return (self.limit - self.reserve) / window

    def record_latency(self, seconds: float, body_bytes: int = 0, parse_seconds: float | None = None) -> None:
        """Adds one call's duration (sent to parsed, waits for the quota excluded) to the mean, and
        the CPU time its parsing took (``parse_seconds``) to that mean.

        ``base_latency`` is the fastest of the first answers at least half as large as the largest:
        a walk starts with one call in flight, so the fastest took what a call takes before calls
        queue (the later ones may already share the server, or the CPU, with other calls).
        """
        with self._lock:
            if self.latency is None:
                self.latency = seconds
            else:
                self.latency += _LATENCY_WEIGHT * (seconds - self.latency)
            if parse_seconds is not None:
                self.parse_seconds = parse_seconds if self.parse_seconds is None else (
                    self.parse_seconds + _LATENCY_WEIGHT * (parse_seconds - self.parse_seconds))
            if body_bytes > 2 * self._largest_body:
                self._first_large = []  # the answers seen so far were small ones
            self._largest_body = max(self._largest_body, body_bytes)
            if body_bytes * 2 >= self._largest_body and len(self._first_large) < _BASE_SAMPLES:
                self._first_large.append(seconds)
                self.base_latency = min(self._first_large)

    def observe(self, headers: Mapping[str, str], throttled: bool = False,
                sent_at: float | None = None) -> float | None:
        """Records the answer to one acquired call, sent at ``sent_at`` (on :attr:`clock`).

        Until two resets show the window's length, the time from sending the first call a window
        counted (its answer counts no earlier call) to that window's reset stands for it
        (:attr:`window_estimate`): every call of the window is then left for that time, so the
        rate it gives uses them. When the quota is idle, as it is for most exports, the walk's
        first call is such a call; the time is a whole window where windows open with their first
        call, what is left of one where they are aligned on the clock (then the rate is right for
        that window only, until the next reset is measured). When the application's other clients
        keep the quota busy, no call of ours is first and the documented minute stands.

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
                self._measure_window(reset)
                self._estimate_window(reset, remaining, sent_at)
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

    def _estimate_window(self, reset: int, remaining: int | None, sent_at: float | None) -> None:
        """The time from sending a call to its window's reset, when the call opened the window (no
        other call of it counted before: a live site's calls or ours still in flight)."""
        if remaining is None or self.limit is None or remaining + self.in_flight + 1 < self.limit:
            return
        ahead = reset - (self.clock() if sent_at is None else sent_at)
        if 0 < ahead <= _MAX_RESET_WAIT and ahead > (self.window_estimate or 0):
            self.window_estimate = ahead

    def _measure_window(self, reset: int) -> None:
        """A reset later than the last one seen is the next window's: the step is the window's
        length (the smallest step seen, since an idle export may skip windows)."""
        if self._last_reset is not None and reset > self._last_reset:
            step = float(reset - self._last_reset)
            self.window_seconds = step if self.window_seconds is None else min(self.window_seconds, step)
        if self._last_reset is None or reset > self._last_reset:
            self._last_reset = reset


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None
