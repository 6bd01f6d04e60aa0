"""One walk of ``GET /2/users``: pages in, the run's tables out as Arrow items for dlt, and the
counters the run's state records.

A walk reads one cursor sequentially (with one page read ahead, ``concurrency=1``), or as many
windows of ``lastUpdatedAt`` at once as a fixed ``concurrency`` or, by default, the quota and the
page latency call for (:mod:`.windows`, :mod:`.concurrency`); either way each page becomes a ``users`` and a
``user_affinities`` table (:mod:`.transform`), gathered into bigger items (:mod:`.batches`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import PaginationError
from ..http.client import ProfilesClient
from ..load.duckdb import bound_initial_load_of_running_pipeline
from ..http.page import Page, keep, user_ids
from ..tables import REJECTED_HINTS, profile_table_hints
from ..times import format_rfc3339
from .batches import PageBatches
from .concurrency import ConcurrencyController
from .plan import RunPlan
from .progress import report_page
from .read_ahead import read_ahead
from .seen_ids import SeenIds
from .transform import page_to_tables
from .concurrent_walk import WalkStats, walk_concurrently
from .windows import Window

logger = logging.getLogger(__name__)


class ProfilesWalk:
    """Walks the pages ``plan`` asks for and yields them as dlt items (:meth:`items`); afterwards
    holds what it read: ``profiles``, ``rejected``, ``pages`` and the ``newest`` update."""

    def __init__(
        self,
        client: ProfilesClient,
        plan: RunPlan,
        *,
        page_size: int,
        concurrency: int | None,
        max_pages: int | None,
        overlap: timedelta,
        started: datetime,
        load_id: str,
        indices: str = "list",
        materialize_rejected: bool = False,
    ) -> None:
        self.client = client
        self.plan = plan
        self.page_size = page_size
        self.concurrency = concurrency
        self.max_pages = max_pages
        self.overlap = overlap
        self.started = started
        self.load_id = load_id
        self.indices = indices
        self.materialize_rejected = materialize_rejected
        self.profiles = 0
        self.rejected = 0
        self.pages = 0
        self.windows = WalkStats()
        self._newest: datetime | None = None

    @property
    def newest(self) -> datetime | None:
        """The newest ``lastUpdatedAt`` the cursor may move to.

        Concurrent windows keep a profile's first sighting: a newer version read later was
        dropped, and the next run must read it again, so the cursor may not pass the walk's start.
        """
        if self.concurrency != 1 and self._newest is not None and self._newest > self.started:
            return self.started
        return self._newest

    def items(self) -> Iterator[Any]:
        """The walk's tables as dlt items, each routed to its table with the plan's hints."""
        users_hints, affinities_hints = profile_table_hints(self.plan.write_disposition, self.indices)
        mark = _TableMarker()
        batches = PageBatches()

        def marked(done: list[tuple[pa.Table, pa.Table]]) -> Iterator[Any]:
            for users_batch, affinities_batch in done:
                yield mark(users_batch, users_hints)
                yield mark(affinities_batch, affinities_hints)

        # a plain dlt pipeline loads into DuckDB without load_profiles' bound: set it before the load
        bound_initial_load_of_running_pipeline(self.plan.initial)
        if self.materialize_rejected:  # the table exists from the first load on, empty until needed
            yield mark(dlt.mark.materialize_table_schema(), REJECTED_HINTS)
        # a profile updated during a concurrent walk may be read twice: keep the first
        seen = SeenIds() if self.concurrency != 1 else None
        pages = self._pages()
        try:
            for page in pages:
                self._count_page()
                if seen is not None:
                    page = _first_sightings(page, seen)
                if len(page) == 0:
                    continue
                tables = page_to_tables(
                    page, load_id=self.load_id, indices_as_json=self.indices != "list",
                    tombstones=self.plan.tombstones,
                )
                if tables.rejected:
                    self.rejected += len(tables.rejected)
                    logger.warning("quarantined %d malformed record(s) in rejected_records", len(tables.rejected))
                    yield mark(tables.rejected, REJECTED_HINTS)
                self._count_users(tables.users)
                yield from marked(batches.add(tables.users, tables.affinities))
            yield from marked(batches.flush())
        finally:
            pages.close()  # stops a read-ahead or window thread now, not when the traceback is freed
            if seen is not None:
                seen.close()  # deletes its database file
        # the pages are in load files now: hand Arrow's cached buffers back before dlt loads them
        pa.default_memory_pool().release_unused()

    def _pages(self) -> Iterator[Page]:
        params = self.plan.params
        if self.concurrency == 1:
            return read_ahead(self.client.iter_user_pages(params))
        return self._concurrent_pages(params)

    def _concurrent_pages(self, params: dict[str, Any]) -> Iterator[Page]:
        """Pages of concurrent window walks (see :mod:`.windows`).

        A profile recomputed during the walk moves to a newer window, which may already be done:
        the next incremental run picks it up. A reconcile cannot wait for that (an unseen profile
        counts as deleted), so it ends with one sequential walk of everything updated since it started.
        """
        controller = ConcurrencyController(self.client.governor, fixed=self.concurrency)
        yield from walk_concurrently(
            self.client.clone, params, Window.exact(params), controller, self.page_size, stats=self.windows
        )
        if self.plan.mode == "reconcile":
            catch_up = dict(params, startDate=format_rfc3339(self.started - self.overlap))
            yield from self.client.iter_user_pages(catch_up)

    def _count_page(self) -> None:
        self.pages += 1
        if self.max_pages is not None and self.pages > self.max_pages:
            raise PaginationError(
                f"more than max_pages={self.max_pages} pages: raise max_pages if the application"
                " really holds that many profiles"
            )

    def _count_users(self, users: pa.Table) -> None:
        self.profiles += users.num_rows
        report_page(users.num_rows, self.client.governor)
        newest = pc.max(users["last_updated_at"]).as_py()
        if newest is not None and (self._newest is None or newest > self._newest):
            self._newest = newest


class _TableMarker:
    """Routes items to their table: with the table's hints the first time in a run, by name after.

    ``with_hints(..., create_table_variant=True)`` gives a table its own keys and types, and makes
    dlt merge the hints and drop its caches on every call; once the variant exists,
    ``with_table_name`` selects it for nothing.
    """

    def __init__(self) -> None:
        self._hinted: set[str] = set()

    def __call__(self, item: Any, hints: Any) -> Any:
        name = hints["table_name"]
        if name in self._hinted:
            return dlt.mark.with_table_name(item, name)
        self._hinted.add(name)
        return dlt.mark.with_hints(item, hints, create_table_variant=True)


def _first_sightings(page: Page, seen: SeenIds) -> Page:
    """Drops profiles already yielded in this run; records without a usable ``userID`` pass
    through to be quarantined."""
    mask = seen.first_sightings(user_ids(page))
    return page if all(mask) else keep(page, mask)
