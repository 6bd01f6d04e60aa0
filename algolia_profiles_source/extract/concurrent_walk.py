"""Walking ``GET /2/users`` over several ``lastUpdatedAt`` windows at the same time.

One cursor walk is sequential by nature: each page needs the previous page's token. With hundreds
of milliseconds per page, a single walk uses a fraction of the application's quota. Disjoint
windows (:mod:`.windows`) can be walked at the same time, each with its own cursor, all paced by
the one shared :class:`~..http.rate_limit.RateGovernor`; :mod:`.concurrency` decides how many calls
to keep in flight.

The walk starts with one window. Once its first pages show that one call in flight cannot use the
export's share of the quota, it is cut into windows at the timestamps read so far. A small
incremental run therefore costs what a sequential walk costs, and a large export fans out after its
first few requests; the pages read before the split are read again by the windows (a few requests
per run), and each window's last page is a partial one. A window that splits hands over none of the
pages it read before splitting, since its parts read them again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..http.page import Page, timestamps
from .concurrency import ConcurrencyController, InFlightGate
from .windows import Window, WindowPlanner

logger = logging.getLogger(__name__)

# The run's window splits after this many full pages at the earliest (a shorter run never splits),
SPLIT_AFTER_PAGES = 2
# and decides by this many pages at the latest, measured rate-limit window or not.
DECIDE_WITHIN_PAGES = 4
# Threads started at once when the walk splits; more follow one per page handed over (the
# consumer's pace is not known yet, so the target may still drop).
FIRST_WAVE = 4
# Pages read and not yet taken by the consumer: enough to keep it busy, few enough to stay flat.
PAGES_QUEUED = 4


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
    until the rate-limit window is known the decision waits, up to ``decide_within`` pages. A
    walk that stays at one call in flight never splits: it costs what a sequential walk costs.
    Threads are added (up to :data:`FIRST_WAVE` at the split, then one per page handed over)
    while the controller wants more calls in flight and the consumer keeps up (the queue of pages
    is not full); an :class:`InFlightGate` caps the calls in flight, a page waiting for the
    consumer included, when the target drops.
    """
    walk = _ConcurrentWalk(make_client, base_params, window, controller, page_size, split_after, decide_within)
    try:
        yield from walk.pages_in_order()
    finally:
        walk.close(stats if stats is not None else WalkStats())


class _ConcurrentWalk:
    """The threads of one :func:`walk_concurrently` and the queue they hand pages over in."""

    def __init__(self, make_client: Callable[[], Any], base_params: dict[str, Any], window: Window,
                 controller: ConcurrencyController, page_size: int, split_after: int, decide_within: int) -> None:
        self.make_client = make_client
        self.base_params = base_params
        self.window = window
        self.controller = controller
        self.page_size = page_size
        self.split_after = split_after
        self.decide_within = decide_within
        self.stop = threading.Event()
        self.pages: queue.Queue[Any] = queue.Queue(maxsize=PAGES_QUEUED)  # bounded: memory stays flat
        self.gate = InFlightGate(controller.target, self.stop.is_set)
        self.done = object()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.alive = 0
        self.planner: WindowPlanner | None = None

    def pages_in_order(self) -> Iterator[Page]:
        """The pages as the threads hand them over; an error of a thread is raised here."""
        self.spawn(first=True)
        while True:
            item = self.pages.get()
            if item is self.done:
                return
            if isinstance(item, BaseException):
                raise item
            handed = time.monotonic()
            yield item
            self.controller.record_consumer(time.monotonic() - handed)

    def close(self, stats: WalkStats) -> None:
        """Stops the threads (unblocking any waiting on a full queue) and fills ``stats``."""
        self.stop.set()
        with self.lock:
            running = list(self.threads)
        while any(t.is_alive() for t in running):
            try:
                self.pages.get_nowait()
            except queue.Empty:
                pass
            for thread in running:
                thread.join(timeout=0.05)
        stats.windows = self.planner.windows if self.planner is not None else 1
        stats.peak_in_flight = self.gate.peak
        logger.info("walked %d window(s), at most %d calls in flight (%.3f s per call)", stats.windows,
                    stats.peak_in_flight, self.controller.governor.latency or 0.0)

    def spawn(self, first: bool = False) -> None:
        """Starts a thread: the first one, or one more while more calls in flight are wanted."""
        with self.lock:
            planner = self.planner
            if not first and (
                planner is None or not planner.has_work() or self.stop.is_set()
                or self.alive >= self.controller.target() or self.pages.full()
            ):
                return
            self.alive += 1
            thread = threading.Thread(target=self.run, args=(first,), name=f"algolia-walk-{len(self.threads)}",
                                      daemon=True)
            self.threads.append(thread)
        thread.start()

    def run(self, first: bool) -> None:
        retired = False
        try:
            client = self.make_client()
            retired = self.walk_first(client) if first else self.walk_windows(client)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            self.hand_over(error)
            self.stop.set()
        finally:
            if not retired:
                with self.lock:
                    self.alive -= 1
                    last = self.alive == 0
                if last:
                    self.hand_over(self.done)

    def hand_over(self, *items: Any) -> bool:
        """Queues ``items`` for the consumer; False when the walk stopped meanwhile."""
        for item in items:
            while True:
                if self.stop.is_set():
                    return False
                try:
                    self.pages.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
        return True

    def gated(self, pages_of: Iterator[Page]) -> Iterator[Page]:
        """The pages of ``pages_of``, each fetched and handed over inside the gate: a page waiting
        for the consumer holds its place, so that pages in memory stay within the target too."""
        try:
            while self.gate.enter():
                try:
                    page = next(pages_of, None)
                    if page is None or self.stop.is_set():
                        return
                    yield page
                finally:
                    self.gate.leave()
        finally:
            pages_of.close()  # type: ignore[attr-defined]

    def walk_first(self, client: Any) -> bool:
        """The run's window, until it splits or ends; then its share of the windows (True when
        this thread retired from them)."""
        sample: list[str | None] = []
        held: list[Page] = []  # the first pages, handed over once the window will not split
        deciding = True
        pages = self.gated(client.iter_user_pages(self.window.params(self.base_params)))
        for number, page in enumerate(pages, start=1):
            if not deciding:
                if not self.hand_over(page):
                    return False
                continue
            held.append(page)
            sample.extend(timestamps(page))
            full = len(page) >= self.page_size
            if self.should_split(number, full):
                planner = WindowPlanner(self.window, sample, self.page_size)
                if planner.splittable():
                    # out of the gate before the windows' walk enters it again: a suspended page
                    # generator would hold its place for the whole walk
                    pages.close()
                    return self.split(client, planner)
            if self.decided_not_to_split(number, full):
                deciding = False
                if not self.hand_over(*held):
                    return False
                held = []
        self.hand_over(*held)  # a window shorter than the pages needed to decide
        return False

    def should_split(self, number: int, full: bool) -> bool:
        """Whether the window should split after its ``number``-th page."""
        controller = self.controller
        return full and number >= self.split_after and controller.target() > 1 and (
            controller.measured() or number >= self.decide_within
        )

    def decided_not_to_split(self, number: int, full: bool) -> bool:
        """Whether the window stays one walk: it ended, the decision is due, or one call in flight
        is enough on a known rate-limit window."""
        return not full or number >= self.decide_within or (
            number >= self.split_after and self.controller.measured() and self.controller.target() == 1
        )

    def split(self, client: Any, planner: WindowPlanner) -> bool:
        """Hands the run's window to ``planner``, starts the first wave of threads and walks
        windows in this one too."""
        target = self.controller.target()
        logger.info("splitting the walk into windows of lastUpdatedAt (%d calls in flight)", target)
        with self.lock:
            self.planner = planner
        for _ in range(min(target, FIRST_WAVE) - 1):
            self.spawn()
        return self.walk_windows(client)

    def walk_windows(self, client: Any) -> bool:
        """Walks windows until none is left (False) or fewer threads are wanted (True: this one
        retired, and is no longer counted)."""
        planner = self.planner
        assert planner is not None
        while not self.stop.is_set():
            with self.lock:
                if self.alive > max(1, self.controller.target()):
                    self.alive -= 1  # fewer calls in flight wanted: the others walk the rest
                    return True
            taken = planner.next_window(self.controller.target())
            if taken is None:
                return False
            part, samples = taken
            profiles = 0
            for page in self.gated(client.iter_user_pages(part.params(self.base_params))):
                page = part.inside(page)
                profiles += len(page)
                if not self.hand_over(page):
                    return False
                self.spawn()
            planner.finished(samples, profiles)
        return False
