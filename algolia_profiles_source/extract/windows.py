"""Windows of ``lastUpdatedAt``: the parts a run's profiles are walked in at the same time.

``startDate`` / ``endDate`` partition the profiles by ``lastUpdatedAt``, so disjoint windows can be
walked at the same time, each with its own cursor (:mod:`.concurrent_walk`). :class:`WindowPlanner`
carves the run's window at timestamps read from its first pages (a random sample of the window,
since pages are ordered by ``userID``). A batch of profiles sharing one timestamp cannot be split
and is walked on its own: the largest such batch bounds how fast a run can be, whatever the quota
(its pages, one after the other).

Windows repeat profiles in two ways that are handled here: cuts are requested widened by a second on
each side (the API does not document whether its bounds are inclusive), and each window keeps only
the profiles inside its own half-open range (the run's own ``startDate``/``endDate`` are sent
exactly and not re-checked). A third way is not: a profile updated during the walk moves to a newer
timestamp and may be read again by a window walked later, so the source still drops repeats by user
ID (first sighting wins).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..http.page import Page, keep, timestamps
from ..times import format_rfc3339, parse_datetime
from .transform import TIMESTAMP, parse_timestamps_or_null

EDGE = timedelta(seconds=1)
# Each window ends with a partial page, one request more than its profiles need: a window is never
# planned smaller than this many pages (once finished windows tell how many profiles that is).
# Larger would cut requests further but lengthen the walk's end, when one thread walks each of
# the last windows at one page per call's latency.
MIN_WINDOW_PAGES = 6
# Each window gets 1/(this × calls in flight) of what is left. With 1, the first windows take as
# long as the whole walk at the pace one thread gets, so a window larger than its sample said
# (a window of k samples holds k ± √k samples' worth of profiles) ends the walk late; with 2 they
# end halfway, and the smaller windows planned from then on even out the differences.
WINDOWS_PER_CALL = 2


@dataclass(frozen=True)
class Window:
    """Profiles updated between ``start`` and ``end`` (``None``: open-ended).

    The run's own bounds (``exact_*``) are sent as given; a cut made by splitting is widened by
    :data:`EDGE` on both sides, so that nothing falls between two windows.
    """

    start: datetime | None
    end: datetime | None
    exact_start: bool = True
    exact_end: bool = True

    @classmethod
    def exact(cls, params: dict[str, Any]) -> Window:
        """The window of a run's parameters (its ``startDate``/``endDate``)."""
        return cls(
            parse_datetime(params.get("startDate"), "startDate"),
            parse_datetime(params.get("endDate"), "endDate"),
        )

    def params(self, base: dict[str, Any]) -> dict[str, Any]:
        params = {k: v for k, v in base.items() if k not in ("startDate", "endDate")}
        if self.start is not None:
            params["startDate"] = format_rfc3339(self.start if self.exact_start else self.start - EDGE)
        if self.end is not None:
            params["endDate"] = format_rfc3339(self.end if self.exact_end else self.end + EDGE)
        return params

    def inside(self, page: Page) -> Page:
        """The profiles of ``page`` inside this window's own range: at or after a cut start and
        before a cut end. Profiles without a readable ``lastUpdatedAt`` stay (they are quarantined
        later)."""
        bounds = []
        if self.start is not None and not self.exact_start:
            bounds.append((pc.greater_equal, self.start))
        if self.end is not None and not self.exact_end:
            bounds.append((pc.less, self.end))
        if not bounds or len(page) == 0:
            return page
        strings = page.field("lastUpdatedAt") if isinstance(page, pa.StructArray) else pa.array(timestamps(page), pa.string())
        stamps = parse_timestamps_or_null(strings)
        mask = pa.repeat(pa.scalar(True), len(page))
        for compare, bound in bounds:
            mask = pc.and_(mask, pc.fill_null(compare(stamps, pa.scalar(bound, type=TIMESTAMP)), True))
        return page if pc.all(mask).as_py() else keep(page, mask.to_pylist())

    def split(self, cuts: Sequence[datetime]) -> list[Window]:
        inner = sorted({c for c in cuts if (self.start is None or c > self.start) and (self.end is None or c < self.end)})
        if not inner:
            return [self]
        bounds: list[datetime | None] = [self.start, *inner, self.end]
        last = len(bounds) - 2
        return [
            Window(a, b, exact_start=self.exact_start if i == 0 else False,
                   exact_end=self.exact_end if i == last else False)
            for i, (a, b) in enumerate(zip(bounds, bounds[1:]))
        ]


class WindowPlanner:
    """Carves the run's window into windows to walk, one at a time, as workers ask for them.

    ``sample`` is the ``lastUpdatedAt`` of the run's first pages: pages come in ``userID`` order, so
    they are a random sample of the whole range. Each window gets about
    ``1/(WINDOWS_PER_CALL × target)`` of what is left (factoring: big windows first, small ones at
    the end, so that the walk does not end with one long window walked alone), and never fewer
    than :data:`MIN_WINDOW_PAGES` pages' worth once finished windows tell how many profiles a
    sampled timestamp stands for; a remainder of less than half a window goes with its neighbour.
    A batch of profiles sharing one timestamp cannot be cut: one at least as big as a window is
    walked first, since it is the longest walk of the run. Thread-safe.
    """

    def __init__(self, window: Window, sample: Sequence[str | None], page_size: int,
                 min_pages: int = MIN_WINDOW_PAGES) -> None:
        self.page_size = page_size
        self.min_pages = min_pages
        self.stamps = sorted(t for t in map(_timestamp, sample) if t is not None and _holds(window, t))
        self._free: list[tuple[Window, int, int]] = [(window, 0, len(self.stamps))]
        runs = _runs(self.stamps)
        self._distinct = len(runs)
        # timestamps sampled more than once: batches, biggest first
        self._batches = sorted((run for run in runs if run[1] - run[0] > 1), key=lambda run: run[0] - run[1])
        self._lock = threading.Lock()
        self._profiles_read = 0
        self._samples_read = 0
        self.windows = 0

    def splittable(self) -> bool:
        """Whether the sample holds two distinct timestamps to cut between."""
        return self._distinct >= 2

    def has_work(self) -> bool:
        with self._lock:
            return bool(self._free)

    def next_window(self, target: int) -> tuple[Window, int] | None:
        """The next window to walk and the samples it holds (None when all are handed out)."""
        with self._lock:
            if not self._free:
                return None
            self.windows += 1
            left = sum(hi - lo for _, lo, hi in self._free)
            chunk = max(1, math.ceil(left / (WINDOWS_PER_CALL * max(1, target))), self._min_samples())
            batch = self._biggest_free_batch()
            if batch is not None and batch[1] - batch[0] >= chunk:
                start, end, lo, hi = batch
                if start - lo < chunk / 2:  # a remainder that small goes with this window: a
                    start = lo  # window of one or two samples costs a request for a few profiles
            else:
                _, start, hi = self._free[0]
                end = min(hi, start + chunk)
                while end < hi and self.stamps[end] == self.stamps[end - 1]:
                    end += 1  # a batch sharing one timestamp never straddles a cut
            if hi - end < chunk / 2:
                end = hi
            return self._take(start, end)

    def finished(self, samples: int, profiles: int) -> None:
        """A window holding ``samples`` sampled timestamps was walked and held ``profiles``."""
        with self._lock:
            self._samples_read += samples
            self._profiles_read += profiles

    def _min_samples(self) -> int:
        if not self._samples_read or not self._profiles_read:
            return 1  # nothing finished yet: no idea how many profiles a sample stands for
        per_sample = self._profiles_read / self._samples_read
        return math.ceil(self.min_pages * self.page_size / per_sample)

    def _biggest_free_batch(self) -> tuple[int, int, int, int] | None:
        """The biggest batch not walked yet, and the free range holding it: ``(start, end, lo, hi)``."""
        for start, end in self._batches:
            for _, lo, hi in self._free:
                if lo <= start and end <= hi:
                    return start, end, lo, hi
        return None

    def _take(self, start: int, end: int) -> tuple[Window, int]:
        """Removes sample positions ``start:end`` (and the time around them, halfway to the
        neighbouring samples) from the free ranges; returns their window and its sample count."""
        k = next(i for i, (_, lo, hi) in enumerate(self._free) if lo <= start and end <= hi)
        window, lo, hi = self._free.pop(k)
        cuts = []
        if start > lo:
            cuts.append(_between(self.stamps[start - 1], self.stamps[start]))
        if end < hi:
            cuts.append(_between(self.stamps[end - 1], self.stamps[end]))
        parts = window.split(cuts)
        if len(parts) != len(cuts) + 1:  # a cut fell on a bound: the range goes whole
            return window, hi - lo
        pieces = []
        if start > lo:
            pieces.append((parts.pop(0), lo, start))
        taken = parts.pop(0)
        if end < hi:
            pieces.append((parts.pop(0), end, hi))
        self._free[k:k] = pieces
        return taken, end - start


def _timestamp(text: str | None) -> datetime | None:
    try:
        return parse_datetime(text, "lastUpdatedAt")
    except Exception:  # malformed records are quarantined later, not here
        return None


def _holds(window: Window, stamp: datetime) -> bool:
    return (window.start is None or stamp >= window.start) and (window.end is None or stamp < window.end)


def _between(a: datetime, b: datetime) -> datetime:
    return a + (b - a) / 2


def _runs(stamps: Sequence[datetime]) -> list[tuple[int, int]]:
    """``(start, end)`` positions of each run of equal timestamps in sorted ``stamps``."""
    runs, start = [], 0
    for i in range(1, len(stamps) + 1):
        if i == len(stamps) or stamps[i] != stamps[start]:
            runs.append((start, i))
            start = i
    return runs
