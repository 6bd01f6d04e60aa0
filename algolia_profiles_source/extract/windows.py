"""Concurrent walks of ``GET /2/users`` over ``lastUpdatedAt`` windows.

One cursor walk is sequential by nature: each page needs the previous page's token. With hundreds
of milliseconds per page, a single walk uses a fraction of the application's quota. ``startDate`` /
``endDate`` partition the profiles by ``lastUpdatedAt``, so disjoint windows can be walked at the
same time, each with its own cursor, all paced by the one shared
:class:`~.rate_limit.RateGovernor`; :mod:`.concurrency` decides how many calls to keep in flight.

The walk starts with one window. Once its first pages show that one call in flight cannot use the
export's share of the quota, it is cut into windows (:class:`WindowPlanner`) at the timestamps read
so far (a random sample of the window, since pages are ordered by ``userID``). A small incremental
run therefore costs what a sequential walk costs, and a large export fans out after its first few
requests; the pages read before the split are read again by the windows (a few requests per run),
and each window's last page is a partial one. A batch of profiles sharing one timestamp cannot be
split and is walked on its own: the largest such batch bounds how fast a run can be, whatever the
quota (its pages, one after the other).

Windows repeat profiles in two ways that are handled here: cuts are requested widened by a second on
each side (the API does not document whether its bounds are inclusive), and each window keeps only
the profiles inside its own half-open range (the run's own ``startDate``/``endDate`` are sent
exactly and not re-checked); a window that splits hands over none of the pages it read before
splitting, since its parts read them again. A third way is not: a profile updated during the walk
moves to a newer timestamp and may be read again by a window walked later, so the source still drops
repeats by user ID (first sighting wins).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..http.page import Page, keep, timestamps
from ..times import format_rfc3339, parse_datetime
from .concurrency import ConcurrencyController, InFlightGate
from .transform import TIMESTAMP, parse_timestamps_or_null

logger = logging.getLogger(__name__)

EDGE = timedelta(seconds=1)
# The run's window splits after this many full pages at the earliest (a shorter run never splits),
SPLIT_AFTER_PAGES = 2
# and decides by this many pages at the latest, measured rate-limit window or not.
DECIDE_WITHIN_PAGES = 4
# Each window ends with a partial page, one request more than its profiles need: a window is never
# planned smaller than this many pages, nor than this share of the run's sample.
MIN_WINDOW_PAGES = 6
MIN_WINDOW_SHARE = 1 / 16
# Each window gets 1/(this × calls in flight) of what is left: windows finish at different times
# (sampled sizes are estimates), and smaller ones let the others catch up before the last ends.
WINDOWS_PER_CALL = 1
# Threads started at once when the walk splits; more follow one per page handed over (the
# consumer's pace is not known yet, so the target may still drop).
FIRST_WAVE = 8
# Pages read and not yet taken by the consumer: enough to keep it busy, few enough to stay flat.
PAGES_QUEUED = 4


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
    they are a random sample of the whole range. Each window gets about ``1/target`` of what is left
    (guided self-scheduling: big windows first, small ones at the end, so that the walk does not end
    with one long window walked alone), and never less than :data:`MIN_WINDOW_SHARE` of the sample
    nor, once finished windows tell how many profiles a sampled timestamp stands for, fewer than
    :data:`MIN_WINDOW_PAGES` pages' worth. A
    batch of profiles sharing one timestamp cannot be cut: one at least as big as a window is
    walked first, on its own, since it is the longest walk of the run. Thread-safe.
    """

    def __init__(self, window: Window, sample: Sequence[str | None], page_size: int,
                 min_pages: int = MIN_WINDOW_PAGES) -> None:
        self.page_size = page_size
        self.min_pages = min_pages
        self.stamps = sorted(t for t in map(_timestamp, sample) if t is not None and _holds(window, t))
        self._free: list[tuple[Window, int, int]] = [(window, 0, len(self.stamps))]
        self._batches = sorted(_runs(self.stamps), key=lambda run: run[0] - run[1])  # biggest first
        self._lock = threading.Lock()
        self._profiles_read = 0
        self._samples_read = 0
        self.windows = 0

    def splittable(self) -> bool:
        """Whether the sample holds two distinct timestamps to cut between."""
        return len(self._batches) >= 2

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
                return self._take(*batch)
            _, lo, hi = self._free[0]
            end = min(hi, lo + chunk)
            while end < hi and self.stamps[end] == self.stamps[end - 1]:
                end += 1  # a batch sharing one timestamp never straddles a cut
            if hi - end < chunk / 2:  # a remainder that small goes with this window
                end = hi
            return self._take(lo, end)

    def finished(self, samples: int, profiles: int) -> None:
        """A window holding ``samples`` sampled timestamps was walked and held ``profiles``."""
        with self._lock:
            self._samples_read += samples
            self._profiles_read += profiles

    def _min_samples(self) -> int:
        share = math.ceil(len(self.stamps) * MIN_WINDOW_SHARE)
        if not self._samples_read or not self._profiles_read:
            return share  # nothing finished yet: no idea how many profiles a sample stands for
        per_sample = self._profiles_read / self._samples_read
        return max(share, math.ceil(self.min_pages * self.page_size / per_sample))

    def _biggest_free_batch(self) -> tuple[int, int] | None:
        for start, end in self._batches:
            if any(lo <= start and end <= hi for _, lo, hi in self._free):
                return start, end
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


@dataclass
class WalkStats:
    """What a concurrent walk did: the windows it walked and the most calls it had in flight."""

    windows: int = 0
    peak_in_flight: int = 0


def walk_concurrently(
    make_client: Callable[[], Any],
    base_params: dict[str, Any],
    window: Window,
    controller: ConcurrencyController,
    page_size: int,
    split_after: int = SPLIT_AFTER_PAGES,
    decide_within: int = DECIDE_WITHIN_PAGES,
    stats: WalkStats | None = None,
) -> Iterator[Page]:
    """Yields pages of profiles (see :mod:`..http.page`) of ``window``, walked by as many threads as
    ``controller`` asks for; fills ``stats`` when given.

    One thread walks the whole window first. Once it has read ``split_after`` full pages and the
    controller wants more than one call in flight, the window is handed to a
    :class:`WindowPlanner` and the pages read so far are dropped (the windows read them again);
    until the rate-limit window is measured the decision waits, up to ``decide_within`` pages. A
    walk that stays at one call in flight never splits: it costs what a sequential walk costs.
    Threads are added (up to :data:`FIRST_WAVE` at the split, then one per page handed over)
    while the controller wants more calls in flight
    and the consumer keeps up (the queue of pages is not full); an :class:`InFlightGate` caps the
    calls in flight, a page waiting for the consumer included, when the target drops.
    """
    stats = stats if stats is not None else WalkStats()
    stop = threading.Event()
    pages: queue.Queue[Any] = queue.Queue(maxsize=PAGES_QUEUED)  # bounded: memory stays flat
    gate = InFlightGate(controller.target, stop.is_set)
    done = object()
    lock = threading.Lock()
    threads: list[threading.Thread] = []
    state: dict[str, Any] = {"alive": 0, "planner": None}

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def gated(pages_of: Iterator[Page]) -> Iterator[Page]:
        """The pages of ``pages_of``, each fetched and handed over inside the gate: a page waiting
        for the consumer holds its place, so that pages in memory stay within the target too."""
        try:
            while gate.enter():
                try:
                    page = next(pages_of, None)
                    if page is None or stop.is_set():
                        return
                    yield page
                finally:
                    gate.leave()
        finally:
            pages_of.close()  # type: ignore[attr-defined]

    def spawn(first: bool = False) -> None:
        with lock:
            planner = state["planner"]
            if not first and (
                planner is None or not planner.has_work() or stop.is_set()
                or state["alive"] >= controller.target() or pages.full()
            ):
                return
            state["alive"] += 1
            thread = threading.Thread(target=run, args=(first,), name=f"algolia-walk-{len(threads)}", daemon=True)
            threads.append(thread)
        thread.start()

    def walk_first(client: Any) -> bool:
        """The run's window, until it splits or ends; then its share of the windows (True when
        this thread retired from them)."""
        sample: list[str | None] = []
        held: list[Page] = []  # the first pages, handed over once the window will not split
        deciding = True
        for number, page in enumerate(gated(client.iter_user_pages(window.params(base_params))), start=1):
            if not deciding:
                if not hand_over(page):
                    return False
                continue
            held.append(page)
            sample.extend(timestamps(page))
            full = len(page) >= page_size
            if full and number >= split_after and controller.target() > 1 and (
                controller.measured() or number >= decide_within
            ):
                planner = WindowPlanner(window, sample, page_size)
                if planner.splittable():
                    logger.info("splitting the walk into windows of lastUpdatedAt (%d calls in flight)",
                                controller.target())
                    with lock:
                        state["planner"] = planner
                    for _ in range(min(controller.target(), FIRST_WAVE) - 1):
                        spawn()
                    return walk_windows(client, planner)
            if not full or number >= decide_within or (
                number >= split_after and controller.measured() and controller.target() == 1
            ):
                deciding = False
                for kept in held:
                    if not hand_over(kept):
                        return False
                held = []
        for kept in held:  # a window shorter than the pages needed to decide
            if not hand_over(kept):
                return False
        return False

    def walk_windows(client: Any, planner: WindowPlanner) -> bool:
        """Walks windows until none is left (False) or fewer threads are wanted (True: this one
        retired, and is no longer counted)."""
        while not stop.is_set():
            with lock:
                if state["alive"] > max(1, controller.target()):
                    state["alive"] -= 1  # fewer calls in flight wanted: the others walk the rest
                    return True
            taken = planner.next_window(controller.target())
            if taken is None:
                return False
            part, samples = taken
            profiles = 0
            for page in gated(client.iter_user_pages(part.params(base_params))):
                page = part.inside(page)
                profiles += len(page)
                if not hand_over(page):
                    return False
                spawn()
            planner.finished(samples, profiles)
        return False

    def run(first: bool) -> None:
        retired = False
        try:
            client = make_client()
            if first:
                retired = walk_first(client)
            else:
                retired = walk_windows(client, state["planner"])
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            hand_over(error)
            stop.set()
        finally:
            if not retired:
                with lock:
                    state["alive"] -= 1
                    last = state["alive"] == 0
                if last:
                    hand_over(done)

    spawn(first=True)
    try:
        while True:
            item = pages.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            handed = time.monotonic()
            yield item
            controller.record_consumer(time.monotonic() - handed)
    finally:
        stop.set()
        with lock:
            running = list(threads)
        while any(t.is_alive() for t in running):
            try:  # unblock producers waiting on a full queue
                pages.get_nowait()
            except queue.Empty:
                pass
            for thread in running:
                thread.join(timeout=0.05)
        stats.windows = state["planner"].windows if state["planner"] is not None else 1
        stats.peak_in_flight = gate.peak
        logger.info("walked %d window(s), at most %d calls in flight (%.3f s per call)", stats.windows,
                    stats.peak_in_flight, controller.governor.latency or 0.0)


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
