"""The plan of one run of the ``profiles`` resource, decided once from its saved state before the
first request: where the walk starts, how its rows are written, and whether it moves the cursor.

Modes:

- ``initial``: the very first complete walk into a schema without the tables. It loads them
  directly (``replace``): there is nothing to merge with, and skipping the merge's staging, dedup and
  delete makes the initial export about twice as fast and half as memory-hungry.
- ``full``: every profile (from ``start_date`` if set) merged into tables that exist or that a
  filtered walk shares; also the run after the ``indices``/``affinity`` filters changed.
- ``incremental``: from the stored cursor minus ``overlap_seconds``. Profiles are recomputed in
  batches and can surface with a timestamp slightly older than the newest one loaded; the merge on
  ``user_id`` makes that re-read idempotent.
- ``backfill``: a window with ``end_date``; it neither reads nor moves the cursor.
- ``reconcile``: every profile, ignoring the cursor, so that the ones gone can be marked deleted.

Every mode but ``initial`` merges and writes tombstones (see :mod:`.transform`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..exceptions import ConfigurationError
from ..http.query import ProfilesQuery
from ..times import format_rfc3339, parse_datetime


@dataclass(frozen=True)
class RunPlan:
    """How one run reads and writes (see the module's docstring for the modes)."""

    mode: str
    params: dict[str, Any]
    # the cursor the run started from (None before the first complete walk)
    cursor: datetime | None = None
    # the RFC 3339 start_date the run was given (kept in state to tell a new one from an old one)
    start_date: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def initial(self) -> bool:
        return self.mode == "initial"

    @property
    def write_disposition(self) -> str:
        return "replace" if self.initial else "merge"

    @property
    def tombstones(self) -> bool:
        """Whether users without affinities get a tombstone row (only a merge needs one)."""
        return not self.initial

    @property
    def moves_cursor(self) -> bool:
        return self.mode != "backfill"

    def save(self, state: dict[str, Any], newest: datetime | None) -> None:
        """Stores what the next run plans from, after a complete walk whose newest profile was
        updated at ``newest``. A backfill leaves the cursor, start date and filters as they were."""
        if not self.moves_cursor:
            return
        state["start_date"] = self.start_date
        if newest is not None and (self.cursor is None or newest > self.cursor):
            state["last_updated_at"] = format_rfc3339(newest)
        state["filters"] = self.filters


def plan_run(
    state: dict[str, Any],
    query: ProfilesQuery,
    *,
    reconcile: bool,
    overlap: timedelta,
    tables_exist: bool,
) -> RunPlan:
    """The plan of a run of ``query`` for a resource whose saved state is ``state``;
    ``tables_exist`` tells whether the schema already has the ``users`` table."""
    cursor = parse_datetime(state.get("last_updated_at"), "state.last_updated_at")
    start_date = format_rfc3339(query.start_date) if query.start_date is not None else None
    common = {"cursor": cursor, "start_date": start_date, "filters": query.filters}
    if query.end_date is not None:
        return RunPlan("backfill", query.params(), **common)
    if reconcile:
        return RunPlan("reconcile", query.params(), **common)
    if cursor is None:
        unfiltered = query.start_date is None and not query.indices and not query.affinity
        mode = "initial" if unfiltered and not tables_exist else "full"
        return RunPlan(mode, query.params(), **common)
    if state.get("filters", query.filters) != query.filters:
        warning = (
            f"indices/affinity filters changed since the last run ({state.get('filters')} ->"
            f" {query.filters}): reading every matching profile again"
        )
        return RunPlan("full", query.params(), warnings=(warning,), **common)
    start_after = cursor - overlap
    params = query.params(start_after=start_after)
    warnings: tuple[str, ...] = ()
    # a start_date kept in config is the first run's start: only a new one, superseded, is news
    if query.start_date is not None and start_after > query.start_date and start_date != state.get("start_date"):
        warnings = (
            f"start_date {start_date} is before this pipeline's cursor: the run reads from the cursor"
            f" ({params['startDate']}). To read earlier profiles again, load a backfill window:"
            " start_date with end_date (it does not move the cursor)",
        )
    return RunPlan("incremental", params, warnings=warnings, **common)


def check_application(state: dict[str, Any], application_id: str) -> None:
    """Refuses to walk another application than the one whose profiles the pipeline holds.

    The cursor, the tables and a reconcile's notion of "deleted" all belong to one application:
    a second one loaded into the same dataset would start from the first one's cursor (reading
    almost nothing) and mix both applications' profiles.
    """
    known = state.get("application_id")
    if known is not None and known != application_id:
        raise ConfigurationError(
            f"this pipeline holds the profiles of application {known!r}, and this run reads"
            f" application {application_id!r}: loading both into one dataset would mix their"
            " profiles and their cursors. Give each application its own pipeline and dataset"
            " (--pipeline-name and --dataset-name, or another --dir), or set application_id back"
            f" to {known!r}"
        )
