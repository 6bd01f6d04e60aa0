"""Concurrent walks of ``GET /2/users`` over ``lastUpdatedAt`` windows.

One cursor walk is sequential by nature: each page needs the previous page's token. With hundreds
of milliseconds per page, a single walk uses a fraction of the application's quota. ``startDate`` /
``endDate`` partition the profiles by ``lastUpdatedAt``, so disjoint windows can be walked at the
same time, each with its own cursor, all paced by the one shared
:class:`~.rate_limit.RateGovernor`.

The walk starts with one window. A window still going after a few full pages is cut at the
quantiles of the timestamps read so far (a random sample of the window, since pages are ordered by
``userID``) while no other window is waiting. A small incremental run therefore costs what a
sequential walk costs, and a large export fans out after its first few requests; the pages a split
window already read are read again by its parts (a few percent of a large export). A batch of
profiles sharing one timestamp cannot be split and is walked on its own.

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
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..http.page import Page, keep, timestamps
from ..times import format_rfc3339, parse_datetime
from .transform import TIMESTAMP, parse_timestamps_or_null

logger = logging.getLogger(__name__)

EDGE = timedelta(seconds=1)
MIN_SPAN = timedelta(seconds=2)


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


def walk_concurrently(
    make_client: Callable[[], Any],
    base_params: dict[str, Any],
    windows: list[Window],
    workers: int,
    page_size: int,
    split_after: int | None = None,
) -> Iterator[Page]:
    """Yields pages of profiles (see :mod:`..http.page`) from ``workers`` threads walking the windows.

    A window still going after ``split_after`` full pages (default 2) is big enough to be worth
    splitting (into ``2 * workers`` parts, so that one split usually keeps every worker busy);
    smaller ones are walked through, so a small run pays no extra requests.
    """
    split_after = split_after or 2
    pending: queue.Queue[Window] = queue.Queue()
    for window in windows:
        pending.put(window)
    pages: queue.Queue[Any] = queue.Queue(maxsize=workers * 2)  # bounded: memory stays flat
    state = {"open": len(windows)}
    lock = threading.Lock()
    stop = threading.Event()
    done = object()

    def finish_window() -> None:
        with lock:
            state["open"] -= 1
            last = state["open"] == 0
        if last:
            for _ in range(workers):
                pending.put(None)  # type: ignore[arg-type]

    def work() -> None:
        try:
            client = make_client()
            while not stop.is_set():
                window = pending.get()
                if window is None:
                    return
                sample: list[str | None] = []
                held: list[Page] = []  # the first pages, handed over once the window will not split
                for number, page in enumerate(
                    client.iter_user_pages(window.params(base_params)), start=1
                ):
                    if stop.is_set():
                        return
                    full = len(page) >= page_size
                    page = window.inside(page)
                    if number > split_after:
                        pages.put(page)
                        continue
                    held.append(page)
                    sample.extend(timestamps(page))
                    if number == split_after and full and pending.qsize() == 0:
                        parts = window.split(_quantiles(sample, 2 * workers))
                        if len(parts) > 1 and all(_span(p) >= MIN_SPAN for p in parts if p.start and p.end):
                            logger.info("splitting window %s..%s into %d", window.start, window.end, len(parts))
                            with lock:
                                state["open"] += len(parts)
                            for part in parts:
                                pending.put(part)
                            held = []  # its parts read these profiles again
                            break
                    if number == split_after:
                        for kept in held:
                            pages.put(kept)
                        held = []
                for kept in held:  # a window shorter than split_after pages
                    pages.put(kept)
                finish_window()
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            stop.set()
            pages.put(error)
        finally:
            pages.put(done)

    threads = [threading.Thread(target=work, name=f"algolia-walk-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < workers:
            item = pages.get()
            if item is done:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for _ in range(workers):
            pending.put(None)  # type: ignore[arg-type]
        while any(t.is_alive() for t in threads):
            try:  # unblock producers waiting on a full queue
                pages.get_nowait()
            except queue.Empty:
                pass
            for thread in threads:
                thread.join(timeout=0.05)


def _quantiles(sample: list[str | None], parts: int) -> list[datetime]:
    """Cut points splitting the sampled ``lastUpdatedAt`` texts into ``parts``, each halfway between
    two distinct timestamps: a batch of profiles sharing a timestamp never straddles a cut (it would
    be read twice)."""
    stamps = sorted({t for t in map(_timestamp, sample) if t is not None})
    if len(stamps) < 2:
        return []
    cuts = set()
    for i in range(1, parts):
        j = min(len(stamps) - 2, max(0, len(stamps) * i // parts - 1))
        cuts.add(stamps[j] + (stamps[j + 1] - stamps[j]) / 2)
    return sorted(cuts)


def _timestamp(text: str | None) -> datetime | None:
    try:
        return parse_datetime(text, "lastUpdatedAt")
    except Exception:  # malformed records are quarantined later, not here
        return None


def _span(window: Window) -> timedelta:
    assert window.start is not None and window.end is not None
    return window.end - window.start
