"""Reading the next page while the current one is written.

A sequential walk alternates between waiting for (and parsing) a page and turning it into load
files. Fetching and parsing run outside the GIL (sockets, Arrow's JSON reader), so a thread that
reads ahead overlaps the two: on two cores the walk costs the slower of the two, not their sum.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yields the items of ``items``, produced by a thread that stays up to ``depth`` items ahead.

    An exception of ``items`` is raised here, after the items produced before it. Closing this
    generator stops the thread after the item it is producing (``items`` is closed in that thread).
    """
    ready: "queue.Queue[object]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    break
                ready.put(item)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            ready.put(error)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            ready.put(_DONE)

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
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
