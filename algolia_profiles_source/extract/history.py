"""Affinity history (``history = true``): every version of a user's affinities, kept by dlt's
``scd2`` merge strategy in ``user_affinities_history``, beside the snapshot tables (which stay as
they are).

How the versions are made, and why:

- Each ``user_affinities`` item of a walk becomes a history item with the same rows. dlt's scd2
  merge is keyed by ``merge_key = user_id``: only users present in a load have versions retired, so an
  incremental load (which reads changed profiles only) leaves every other user's versions open.
- Arrow items get no row hash from dlt, so each row carries ``row_version``, the version's content
  (user, name, value, score) as one string. A version whose score changes is retired and a new one
  opens.
- A user left with zero affinities has no row to compare, and dlt would leave its last versions open:
  the snapshot's tombstone row becomes a *marker* version (empty name and value), which retires them.
  Queries read the staging view ``stg_algolia__user_affinities_history``, which leaves markers out.
- Validity: dlt stamps one ``boundary_timestamp`` per load. Algolia's own clock for a change is the
  profile's ``lastUpdatedAt``; the boundary of a load is the newest ``lastUpdatedAt`` it read (and at
  least 1 µs after the previous boundary, so intervals never run backwards), so "as of" the boundary of
  a load the history holds exactly the affinities that load read. The boundary of the last load is
  kept in the resource state (``history_boundary``).
- Users deleted at reconcile are closed by :func:`..load.history.close_deleted`, and versions closed
  before the retention horizon are deleted by :func:`..load.history.prune`: dlt does neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from ..tables import (
    AFFINITIES,
    DELETED_COLUMN,
    HISTORY,
    HISTORY_MARKER,
    HISTORY_SCHEMA,
    history_hints,
)
from ..times import format_rfc3339, parse_datetime

STATE_KEY = "history_boundary"
# not in any user ID ([A-Za-z0-9=+/_-]) or score
SEPARATOR = "|"
_TICK = timedelta(microseconds=1)


def history_table(affinities: pa.Table) -> pa.Table:
    """The history rows of one ``user_affinities`` Arrow table: its affinity rows, and a marker row
    for each tombstone (a user without affinities)."""
    marker = pc.fill_null(affinities[DELETED_COLUMN], False) if DELETED_COLUMN in affinities.column_names \
        else pa.repeat(pa.scalar(False), affinities.num_rows)
    marker = marker.combine_chunks() if isinstance(marker, pa.ChunkedArray) else marker
    empty = pa.repeat(pa.scalar(HISTORY_MARKER), affinities.num_rows)
    name = pc.if_else(marker, empty, affinities["name"])
    value = pc.if_else(marker, empty, affinities["value"])
    score = pc.if_else(marker, pa.nulls(affinities.num_rows, pa.float64()), affinities["score"])
    user_id = affinities["user_id"]
    return pa.Table.from_arrays(
        [user_id, name, value, score, affinities["last_updated_at"], row_versions(user_id, name, value, score)],
        schema=HISTORY_SCHEMA,
    )


def row_versions(user_id: Any, name: Any, value: Any, score: Any) -> pa.Array:
    """A version's identity: ``user|len(name)|name|value|score``. The content itself rather than a
    hash of it: exact, and built by vectorized kernels (hashing 2 million rows one by one in Python
    costs more than the rest of the export). No two versions join alike: user IDs and scores hold no
    ``|``, and the name's length says where the value starts."""
    score_text = pc.fill_null(pc.cast(score, pa.string()), "")
    name_length = pc.cast(pc.utf8_length(name), pa.string())
    return pc.binary_join_element_wise(user_id, name_length, name, value, score_text, SEPARATOR)


def boundary(previous: Any, newest: datetime | None) -> datetime | None:
    """The validity boundary of a load: the newest ``lastUpdatedAt`` it read, at least 1 µs after the
    previous boundary (None for a first load that read nothing)."""
    last = parse_datetime(previous, STATE_KEY) if previous else None
    if last is None:
        return newest
    return max(newest, last + _TICK) if newest is not None else last + _TICK


class HistoryItems:
    """Passes a walk's items through, adding a ``user_affinities_history`` item after each
    ``user_affinities`` one; at the end, one empty item that sets this load's boundary
    (``boundary_of()``, called once the walk is over)."""

    def __init__(self, boundary_of: Callable[[], datetime | None]) -> None:
        self.boundary_of = boundary_of
        self.boundary: datetime | None = None

    def items(self, items: Iterable[Any]) -> Iterator[Any]:
        from dlt.extract.items import DataItemWithMeta

        hinted = False
        for item in items:
            yield item
            data = item.data if isinstance(item, DataItemWithMeta) else None
            if not isinstance(data, pa.Table) or _table_name(item) != AFFINITIES:
                continue
            rows = history_table(data)
            if hinted:
                yield dlt.mark.with_table_name(rows, HISTORY)
            else:
                hinted = True
                yield dlt.mark.with_hints(rows, history_hints(), create_table_variant=True)
        self.boundary = self.boundary_of()
        # dlt keeps a table's last boundary in the schema: every load sets its own
        yield dlt.mark.with_hints(
            HISTORY_SCHEMA.empty_table(), history_hints(self.boundary), create_table_variant=True
        )

    def save(self, state: dict[str, Any]) -> None:
        if self.boundary is not None:
            state[STATE_KEY] = format_rfc3339(self.boundary)


def _table_name(item: Any) -> str | None:
    meta = item.meta
    hints = getattr(meta, "hints", None)
    if isinstance(hints, dict):
        return hints.get("table_name")
    return getattr(meta, "table_name", None)
