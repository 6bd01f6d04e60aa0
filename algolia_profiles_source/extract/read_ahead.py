"""Reading the next page while the current one is written.

A sequential walk alternates between waiting for (and parsing) a page and turning it into load
files. Fetching and parsing run outside the GIL (sockets, Arrow's JSON reader), so a thread that
reads ahead overlaps the two: on two cores the walk costs the slower of the two, not their sum.
"""

from __future__ import annotations

import queue
import threading
from typing import TypeVar
from collections.abc import Iterator

T = TypeVar("T")

_DONE = object()


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yields the items of ``items``, produced by a thread that stays up to ``depth`` items ahead.

    An exception of ``items`` is raised here, after the items produced before it. Closing this
    generator (or an exception in the consumer, Ctrl-C included) returns at once; the thread stops
    after the item it is producing, and ``items`` is closed in that thread.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    break
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            hand_over(error)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            hand_over(_DONE)

    thread = threading.Thread(target=produce, name="algolia-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
