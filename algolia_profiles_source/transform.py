"""Turns pages of API profiles into the two warehouse tables, as Arrow tables.

dlt's per-row normalizer costs minutes and gigabytes per hundred thousand nested profiles; Arrow
tables built once per page are loaded as they are. The tables and their types are the warehouse
contract:

``users``: ``user_id`` (key), ``type``, ``last_updated_at`` (timestamp, UTC), ``affinity_count``,
``deleted_at`` (always null when loaded; set by a reconcile when the profile is gone from Algolia).
``user_affinities``: ``user_id``, ``name``, ``value``, ``score`` (double), ``indices`` (list of
index names, a JSON column in the warehouse), ``last_updated_at``; key (``user_id``, ``name``,
``value``).

A user with zero affinities gets one *tombstone* row in ``user_affinities`` (``_deleted`` true):
dlt's delete-insert merge then removes the user's previous affinities and never inserts the
tombstone, so a reloaded user always ends with exactly its current affinity set.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import orjson
import pyarrow as pa

from .exceptions import ResponseFormatError

TIMESTAMP = pa.timestamp("us", tz="UTC")
_NS_TIMESTAMP = pa.timestamp("ns", tz="UTC")

USERS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("type", pa.string()),
        pa.field("last_updated_at", TIMESTAMP),
        pa.field("affinity_count", pa.int64(), nullable=False),
        pa.field("deleted_at", TIMESTAMP),
    ]
)

DELETED_COLUMN = "_deleted"
LOAD_ID_COLUMN = "_dlt_load_id"

AFFINITIES_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("indices", pa.list_(pa.string())),
        pa.field("last_updated_at", TIMESTAMP),
        pa.field(DELETED_COLUMN, pa.bool_()),
    ]
)

AFFINITIES_SCHEMA_JSON_INDICES = AFFINITIES_SCHEMA.set(
    AFFINITIES_SCHEMA.get_field_index("indices"), pa.field("indices", pa.string())
)

# dlt column hints: types declared up front, never inferred from a first page.
USERS_COLUMNS: Dict[str, Dict[str, Any]] = {
    "user_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "type": {"data_type": "text", "nullable": True},
    "last_updated_at": {
        "data_type": "timestamp",
        "timezone": True,
        "nullable": True,
        "dedup_sort": "desc",
    },
    "affinity_count": {"data_type": "bigint", "nullable": False},
    "deleted_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
}

AFFINITIES_COLUMNS: Dict[str, Dict[str, Any]] = {
    "user_id": {"data_type": "text", "nullable": False, "merge_key": True},
    "name": {"data_type": "text", "nullable": False},
    "value": {"data_type": "text", "nullable": False},
    "score": {"data_type": "double", "nullable": True},
    "indices": {"data_type": "json", "nullable": True},
    "last_updated_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
    DELETED_COLUMN: {"data_type": "bool", "nullable": True, "hard_delete": True},
}
AFFINITIES_PRIMARY_KEY = ("user_id", "name", "value")


def parse_timestamps(values: Sequence[Any]) -> pa.Array:
    """Parses RFC 3339 strings (any fraction, ``Z`` or offset) to UTC microsecond timestamps."""
    array = pa.array(values, pa.string())
    return array.cast(_NS_TIMESTAMP).cast(TIMESTAMP, safe=False)


def page_to_tables(
    users: List[Dict[str, Any]], load_id: Optional[str] = None, indices_as_json: bool = False
) -> Tuple[pa.Table, pa.Table]:
    """Returns the ``users`` and ``user_affinities`` Arrow tables of one page of profiles.

    With ``load_id``, both tables get dlt's ``_dlt_load_id`` column. With ``indices_as_json``, the
    ``indices`` lists are sent as JSON text (for destinations that receive Arrow tables as CSV,
    which cannot hold a list column; the warehouse column is JSON either way).
    """
    user_ids: List[str] = []
    types: List[Any] = []
    updated: List[Any] = []
    counts: List[int] = []
    a_user: List[str] = []
    a_name: List[Any] = []
    a_value: List[Any] = []
    a_score: List[Any] = []
    a_indices: List[Any] = []
    a_updated: List[Any] = []
    a_deleted: List[Any] = []
    try:
        for position, profile in enumerate(users):
            user_id = profile.get("userID") if isinstance(profile, dict) else None
            if not isinstance(user_id, str) or not user_id:
                raise ResponseFormatError(f"profile #{position} of the page has no userID")
            affinities = profile.get("affinities") or []
            user_ids.append(user_id)
            types.append(profile.get("type"))
            updated.append(profile.get("lastUpdatedAt"))
            counts.append(len(affinities))
            if not affinities:
                a_user.append(user_id)
                a_name.append("")
                a_value.append("")
                a_score.append(None)
                a_indices.append(None)
                a_updated.append(None)
                a_deleted.append(True)
                continue
            for affinity in affinities:
                a_user.append(user_id)
                a_name.append(affinity["name"])
                a_value.append(affinity["value"])
                a_score.append(affinity.get("score"))
                a_indices.append(affinity.get("indices"))
                a_updated.append(affinity.get("lastUpdatedAt"))
                a_deleted.append(None)
    except (KeyError, TypeError, AttributeError) as error:
        raise ResponseFormatError(
            f"profile {user_ids[-1] if user_ids else '?'!r} is not shaped like the documented"
            f" User object: {type(error).__name__} {error}"
        ) from None

    try:
        users_table = pa.Table.from_arrays(
            [
                pa.array(user_ids, pa.string()),
                pa.array(types, pa.string()),
                parse_timestamps(updated),
                pa.array(counts, pa.int64()),
                pa.nulls(len(user_ids), TIMESTAMP),
            ],
            schema=USERS_SCHEMA,
        )
        affinities_table = pa.Table.from_arrays(
            [
                pa.array(a_user, pa.string()),
                pa.array(a_name, pa.string()),
                pa.array(a_value, pa.string()),
                pa.array(a_score, pa.float64()),
                _indices(a_indices, indices_as_json),
                parse_timestamps(a_updated),
                pa.array(a_deleted, pa.bool_()),
            ],
            schema=AFFINITIES_SCHEMA_JSON_INDICES if indices_as_json else AFFINITIES_SCHEMA,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ResponseFormatError(
            f"a profile on this page has a value of the wrong type: {error}"
        ) from None
    if load_id is not None:
        users_table = _with_load_id(users_table, load_id)
        affinities_table = _with_load_id(affinities_table, load_id)
    return users_table, affinities_table


def _indices(values: List[Any], as_json: bool) -> pa.Array:
    if not as_json:
        return pa.array(values, pa.list_(pa.string()))
    return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], pa.string())


def _with_load_id(table: pa.Table, load_id: str) -> pa.Table:
    column = pa.DictionaryArray.from_arrays(
        pa.array([0] * table.num_rows, pa.int32()), pa.array([load_id])
    )
    return table.append_column(pa.field(LOAD_ID_COLUMN, column.type, nullable=False), column)
