"""Turns pages of API profiles into the two warehouse tables, as Arrow tables.

dlt's per-row normalizer costs minutes and gigabytes per hundred thousand nested profiles; Arrow
tables built once per page are loaded as they are, with the schemas of :mod:`..tables`.

A user with zero affinities gets one *tombstone* row in ``user_affinities`` (``_deleted`` true):
dlt's delete-insert merge then removes the user's previous affinities and never inserts the
tombstone, so a reloaded user always ends with exactly its current affinity set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import ResponseFormatError
from ..http.page import PROFILE_STRUCT, Page, gc_paused, is_page
from ..settings import USER_ID_PATTERN
from ..tables import (
    AFFINITIES_SCHEMA,
    AFFINITIES_SCHEMA_JSON_INDICES,
    LOAD_ID_COLUMN,
    TIMESTAMP,
    USERS_SCHEMA,
)

_NS_TIMESTAMP = pa.timestamp("ns", tz="UTC")

def parse_timestamps(values: Any) -> pa.Array:
    """Parses RFC 3339 strings (any fraction, ``Z`` or offset) to UTC microsecond timestamps."""
    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, pa.string())
    try:  # the API's own format: Z and at most microseconds
        return array.cast(TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    # RFC 3339 also allows a lowercase `t` and `z` (Arrow's parser wants them uppercase) and more
    # fraction digits than a warehouse keeps
    return pc.utf8_upper(array).cast(_NS_TIMESTAMP).cast(TIMESTAMP, safe=False)


@dataclass
class PageTables:
    """One page as the warehouse gets it; ``rejected`` holds what could not be loaded, with why."""

    users: pa.Table
    affinities: pa.Table
    rejected: list[dict[str, Any]] = field(default_factory=list)


def page_to_tables(
    users: Page,
    load_id: str | None = None,
    indices_as_json: bool = False,
    tombstones: bool = True,
) -> PageTables:
    """Returns the ``users`` and ``user_affinities`` Arrow tables of one page of profiles.

    The page (an Arrow struct array as :mod:`..http.page` parses it, or a list of dicts) is flattened and
    validated with vectorized compute. Records that break the documented shape are not loaded but returned in ``rejected``
    with a reason: a profile without a valid ``userID`` or ``lastUpdatedAt`` as a whole, an
    affinity without ``name``/``value`` or with a score outside 1-20 on its own.

    With ``load_id``, both tables get dlt's ``_dlt_load_id`` column. With ``indices_as_json``, the
    ``indices`` lists are sent as JSON text (for destinations that receive Arrow tables as CSV,
    which cannot hold a list column; the warehouse column is JSON either way). Without
    ``tombstones`` (a load that replaces the tables), users without affinities get no marker row.
    """
    if not is_page(users):
        raise ResponseFormatError(f"`users` must be a list, got {type(users).__name__}")
    rejected: list[dict[str, Any]] = []
    page = users if isinstance(users, pa.StructArray) else _to_struct_array(users, rejected)
    page, updated = _loadable_profiles(page, rejected)
    user_ids = page.field("userID")
    lists = page.field("affinities")
    flat, owner, a_updated = _loadable_affinities(lists, user_ids, rejected)

    counts = pc.fill_null(pc.list_value_length(lists), 0).cast(pa.int64())
    users_table = pa.Table.from_arrays(
        [user_ids, page.field("type"), updated, counts, pa.nulls(len(page), TIMESTAMP)],
        schema=USERS_SCHEMA,
    )
    # a tombstone per user left without affinities: the merge deletes its old ones
    empty_users = _users_without_affinities(user_ids, owner) if tombstones else user_ids.slice(0, 0)
    affinities_table = _affinities_table(flat, owner, a_updated, empty_users, indices_as_json)
    if load_id is not None:
        users_table = _with_load_id(users_table, load_id)
        affinities_table = _with_load_id(affinities_table, load_id)
    return PageTables(users_table, affinities_table, rejected)


def _loadable_profiles(page: pa.StructArray, rejected: list[dict[str, Any]]) -> tuple[pa.StructArray, pa.Array]:
    """The profiles with a valid ``userID`` and ``lastUpdatedAt`` and their parsed timestamps; the
    others, which cannot be loaded at all, go to ``rejected`` with the reason."""
    valid_id = pc.fill_null(pc.match_substring_regex(page.field("userID"), USER_ID_PATTERN), False)
    updated, valid_time = _parse_each(page.field("lastUpdatedAt"))
    keep = pc.and_(valid_id, valid_time)
    if pc.all(keep).as_py():
        return page, updated
    for position in pc.indices_nonzero(pc.invert(keep)).to_pylist():
        profile = page[position].as_py()
        reason = (
            "userID missing or not 1-129 characters of [A-Za-z0-9=+/_-]"
            if not valid_id[position].as_py()
            else "lastUpdatedAt missing or not an RFC 3339 date-time"
        )
        user_id = profile.get("userID") if isinstance(profile, dict) else None
        rejected.append(_rejection(reason, user_id, profile))
    return page.filter(keep), updated.filter(keep)


def _loadable_affinities(
    lists: pa.Array, user_ids: pa.Array, rejected: list[dict[str, Any]]
) -> tuple[pa.StructArray, pa.Array, pa.Array]:
    """The page's affinities flattened, with the user each belongs to and their parsed
    ``lastUpdatedAt``; an affinity without ``name``/``value``, with a score outside 1-20 or an
    unreadable time goes to ``rejected`` on its own (its profile stays)."""
    flat = lists.flatten()
    owner = user_ids.take(pc.list_parent_indices(lists))
    names, values, scores = flat.field("name"), flat.field("value"), flat.field("score")
    a_updated, a_valid_time = _parse_each(flat.field("lastUpdatedAt"), allow_null=True)
    good = pc.and_(
        pc.and_(pc.is_valid(names), pc.is_valid(values)),
        pc.and_(pc.fill_null(pc.and_(pc.greater_equal(scores, 1), pc.less_equal(scores, 20)), False), a_valid_time),
    )
    if pc.all(good).as_py():
        return flat, owner, a_updated
    for position in pc.indices_nonzero(pc.invert(good)).to_pylist():
        affinity = flat[position].as_py()
        rejected.append(_rejection(
            "affinity without name/value, with a score that is not a number from 1 to 20,"
            " or with a bad lastUpdatedAt",
            owner[position].as_py(), affinity,
        ))
    return flat.filter(good), owner.filter(good), a_updated.filter(good)


def _users_without_affinities(user_ids: pa.Array, owner: pa.Array) -> pa.Array:
    """The ``user_ids`` that own none of the affinities (``owner`` names each one's user)."""
    has_rows = pc.is_in(user_ids, value_set=owner) if len(owner) else pa.array([False] * len(user_ids), pa.bool_())
    return user_ids.filter(pc.invert(has_rows))


def _affinities_table(
    flat: pa.StructArray, owner: pa.Array, updated: pa.Array, empty_users: pa.Array, indices_as_json: bool
) -> pa.Table:
    """The ``user_affinities`` table: the affinities of ``owner``, then a tombstone row (``_deleted``
    true, empty name and value) for each of ``empty_users``."""
    tombstones = len(empty_users)
    indices = flat.field("indices")

    def with_tombstones(column: pa.Array, tombstone: pa.Array) -> pa.Array:
        # concat_arrays copies even an empty tail: most pages have no tombstone
        return pa.concat_arrays([column, tombstone]) if tombstones else column

    return pa.Table.from_arrays(
        [
            with_tombstones(owner, empty_users),
            with_tombstones(flat.field("name"), pa.array([""] * tombstones, pa.string())),
            with_tombstones(flat.field("value"), pa.array([""] * tombstones, pa.string())),
            with_tombstones(flat.field("score"), pa.nulls(tombstones, pa.float64())),
            _indices(with_tombstones(indices, pa.nulls(tombstones, indices.type)), indices_as_json),
            with_tombstones(updated, pa.nulls(tombstones, TIMESTAMP)),
            with_tombstones(pa.nulls(len(owner), pa.bool_()), pa.array([True] * tombstones, pa.bool_())),
        ],
        schema=AFFINITIES_SCHEMA_JSON_INDICES if indices_as_json else AFFINITIES_SCHEMA,
    )


def _to_struct_array(users: list[Any], rejected: list[dict[str, Any]]) -> pa.StructArray:
    """The page as one Arrow struct array; profiles Arrow cannot convert are rejected one by one."""
    try:
        with gc_paused():
            return pa.array(users, type=PROFILE_STRUCT)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    kept = []
    for profile in users:  # slow path, only for a page with a malformed profile
        try:
            pa.array([profile], type=PROFILE_STRUCT)
            kept.append(profile)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            user_id = profile.get("userID") if isinstance(profile, dict) else None
            rejected.append(_rejection(f"not shaped like the documented User object: {error}", user_id, profile))
    return pa.array(kept, type=PROFILE_STRUCT)


def _parse_each(strings: pa.Array, allow_null: bool = False) -> tuple[pa.Array, pa.Array]:
    """Timestamps and a mask of which parsed (nulls pass only with ``allow_null``)."""
    try:
        parsed = parse_timestamps(strings)
        valid = pa.repeat(pa.scalar(True), len(strings)) if allow_null else pc.is_valid(parsed)
        return parsed, valid
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    values, mask = [], []
    for text in strings.to_pylist():  # slow path: find the bad ones
        try:
            values.append(parse_timestamps([text])[0].as_py())
            mask.append(text is not None or allow_null)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            values.append(None)
            mask.append(False)
    return pa.array(values, TIMESTAMP), pa.array(mask, pa.bool_())


def parse_timestamps_or_null(strings: pa.Array) -> pa.Array:
    """:func:`parse_timestamps`, with null where a string is not an RFC 3339 date-time."""
    return _parse_each(strings, allow_null=True)[0]


def _rejection(reason: str, user_id: Any, record: Any) -> dict[str, Any]:
    return {
        "reason": reason,
        "user_id": user_id if isinstance(user_id, str) else None,
        "record": orjson.dumps(record, default=str).decode()[:10000],
        "rejected_at": datetime.now(timezone.utc),
    }


def _indices(values: pa.Array, as_json: bool) -> pa.Array:
    if not as_json:
        return values
    return pa.array([None if v is None else orjson.dumps(v).decode() for v in values.to_pylist()], pa.string())


def _with_load_id(table: pa.Table, load_id: str) -> pa.Table:
    column = pa.DictionaryArray.from_arrays(
        pa.repeat(pa.scalar(0, pa.int32()), table.num_rows), pa.array([load_id])
    )
    return table.append_column(pa.field(LOAD_ID_COLUMN, column.type, nullable=False), column)
