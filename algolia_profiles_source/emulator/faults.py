"""Fault injection: which API calls fail, and how.

Faults are queued explicitly (`FaultSchedule.queue`) or drawn at random with a seeded generator,
so a given sequence of calls faults the same way every run.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable

FAULT_KINDS: tuple[str, ...] = ("500", "503_html", "429", "reset", "truncated")
"""Injectable faults: JSON 500, load-balancer HTML 503, throttling 429, TCP reset, truncated body."""

FAULTS_REPLACING_THE_ANSWER: tuple[str, ...] = ("500", "503_html", "429", "reset")
"""Faults answered instead of the call; ``truncated`` cuts the call's own answer instead."""

HTML_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
"""Body of the ``503_html`` fault: what an nginx load balancer answers when no backend is up."""


def check_fault_kinds(kinds: Iterable[str]) -> None:
    """Raise ValueError naming every item of ``kinds`` that is not one of `FAULT_KINDS`."""
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad:
        raise ValueError(f"unknown fault kinds {bad}; expected some of {FAULT_KINDS}")


class FaultSchedule:
    """The faults of the coming API calls: queued ones first, in order, then random draws.

    Each call without a queued fault faults with probability ``rate``, its kind drawn from
    ``kinds``; both draws come from one generator seeded with ``seed``.
    """

    def __init__(self, rate: float, kinds: Iterable[str], seed: int) -> None:
        self._lock = threading.Lock()
        self._queued: deque[str] = deque()
        self.rate = 0.0
        self.kinds: tuple[str, ...] = FAULT_KINDS
        self._rng = random.Random(0)
        self.configure(rate=rate, kinds=kinds, seed=seed)

    def configure(self, rate: float | None = None, kinds: Iterable[str] | None = None,
                  seed: int | None = None) -> None:
        """Change what is given; re-seed the generator whenever ``seed`` is given.

        Raises:
            ValueError: when ``rate`` is outside [0, 1] or a kind is unknown; the settings
                checked before the bad one are already applied.
        """
        with self._lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("fault rate must be between 0 and 1")
                self.rate = float(rate)
            if kinds is not None:
                kinds = tuple(kinds)
                check_fault_kinds(kinds)
                self.kinds = kinds
            if seed is not None:
                self._rng = random.Random(seed or 0)

    def queue(self, kinds: Iterable[str]) -> None:
        """Queue faults for the next calls, one per call, in order (checked first, all or none)."""
        kinds = tuple(kinds)
        check_fault_kinds(kinds)
        with self._lock:
            self._queued.extend(kinds)

    def next_fault(self) -> str | None:
        """The fault of the call being answered, or None."""
        with self._lock:
            if self._queued:
                return self._queued.popleft()
            if self.rate > 0 and self.kinds and self._rng.random() < self.rate:
                return self._rng.choice(self.kinds)
            return None
