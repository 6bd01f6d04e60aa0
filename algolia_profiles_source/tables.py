"""Every table this package writes or builds: its name, and for the loaded tables their Arrow
schema and dlt hints. The loaded tables are the warehouse contract:

``users``: ``user_id`` (key), ``type``, ``last_updated_at`` (timestamp, UTC), ``affinity_count``,
``deleted_at`` (always null when loaded; set by a reconcile when the profile is gone from Algolia).
``user_affinities``: ``user_id``, ``name``, ``value``, ``score`` (double), ``indices`` (list of
index names, a JSON column in the warehouse), ``last_updated_at``; key (``user_id``, ``name``,
``value``).
``rejected_records``: malformed records with the reason (appended).
``personalization_config``: the ``GET /2/config`` snapshot, one row per index (replaced each run).
``user_affinities_history`` (only with ``history = true``): every version of every affinity row,
with dlt's SCD2 validity columns ``_dlt_valid_from`` / ``_dlt_valid_to`` (see :mod:`.extract.history`).
"""

from __future__ import annotations

from typing import Any

import dlt
import pyarrow as pa

# loaded by the source
USERS = "users"
AFFINITIES = "user_affinities"
CONFIG = "personalization_config"
REJECTED = "rejected_records"
# opt-in (``history = true``): every version of every user's affinities, merged by dlt's scd2 strategy
HISTORY = "user_affinities_history"
LOADED_TABLES = (USERS, AFFINITIES, CONFIG, REJECTED, HISTORY)
# the resource that writes users, user_affinities and rejected_records (its state holds the cursor)
PROFILES_RESOURCE = "profiles"

# models, built in the warehouse from the loaded tables
STG_USERS = "stg_algolia__users"
STG_AFFINITIES = "stg_algolia__user_affinities"
STG_CONFIG = "stg_algolia__personalization_config"
INDEX_COVERAGE = "affinity_index_coverage"
CATALOG = "affinity_catalog"
TOP_AFFINITIES = "user_top_affinities"
# trend models, built from user_affinities_history when it is loaded
STG_HISTORY = "stg_algolia__user_affinities_history"
TRENDS_DAILY = "affinity_trends_daily"
TRENDS_WEEKLY = "affinity_trends_weekly"
INTEREST_CHANGES = "affinity_interest_changes"

# audiences, built in the warehouse from the models
MEMBERS = "segment_members"
MEMBERS_NEXT = "segment_members__next"
# per-user flags of every affinity rule, computed in one pass (a temporary table where possible)
WORK_FLAGS = "segment_user_flags__work"
SIZES = "segment_sizes"
OVERLAPS = "segment_overlaps"
EVENTS = "segment_membership_events"
BUILDS = "segment_builds"

# erasure (:mod:`.load.erasure`): the suppression list, one SHA-256 (lower-case hex) of a user ID per
# erased user, never the ID itself; created by the first erasure, read at the start of every load
ERASED = "erased_users"
ERASED_COLUMNS = "user_id_sha256 TEXT, erased_at TIMESTAMPTZ"
# every table this package writes that holds rows of one user (column ``user_id``): an erasure
# deletes them all (aggregates such as segment_sizes and segment_builds hold counts only)
PERSONAL_TABLES = (USERS, AFFINITIES, REJECTED, MEMBERS, MEMBERS_NEXT, EVENTS, WORK_FLAGS, HISTORY)
# dlt's staging dataset (``<dataset>_staging``) keeps the rows of the last merge of these
STAGED_TABLES = (USERS, AFFINITIES, HISTORY)
# every export of an audience: the build it sent, so a delta export knows where to start
EXPORTS = "segment_exports"

TIMESTAMP = pa.timestamp("us", tz="UTC")

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
USERS_COLUMNS: dict[str, dict[str, Any]] = {
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

AFFINITIES_COLUMNS: dict[str, dict[str, Any]] = {
    "user_id": {"data_type": "text", "nullable": False, "merge_key": True},
    "name": {"data_type": "text", "nullable": False},
    "value": {"data_type": "text", "nullable": False},
    "score": {"data_type": "double", "nullable": True},
    "indices": {"data_type": "json", "nullable": True},
    "last_updated_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
    DELETED_COLUMN: {"data_type": "bool", "nullable": True, "hard_delete": True},
}
AFFINITIES_PRIMARY_KEY = ("user_id", "name", "value")

CONFIG_COLUMNS: dict[str, dict[str, Any]] = {
    "index": {"data_type": "text", "nullable": False, "primary_key": True},
    "affinities": {"data_type": "json", "nullable": True},
    "source_type": {"data_type": "text", "nullable": True},
    "source_events": {"data_type": "json", "nullable": True},
    "errors": {"data_type": "json", "nullable": True},
    "warnings": {"data_type": "json", "nullable": True},
    "last_updated_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "personalization_re_ranking": {"data_type": "text", "nullable": True},
    "profile_type": {"data_type": "text", "nullable": True},
    "status": {"data_type": "text", "nullable": True},
    "status_errors": {"data_type": "json", "nullable": True},
    "realtime_enabled": {"data_type": "bool", "nullable": True},
}
# every audience rule selects affinity rows by name and value: BigQuery and Snowflake cluster the table
# on them (CLUSTER BY), so a build reads only the blocks of the affinities its rules name
AFFINITIES_CLUSTER = ("name", "value")
# BigQuery takes the clustering from this table hint, in this order (its per-column form is deprecated);
# Snowflake from the per-column "cluster" hints
BIGQUERY_CLUSTER_HINT = "x-bigquery-cluster-columns"


REJECTED_COLUMNS: dict[str, dict[str, Any]] = {
    "reason": {"data_type": "text", "nullable": False},
    "user_id": {"data_type": "text", "nullable": True},
    "record": {"data_type": "text", "nullable": True},
    "rejected_at": {"data_type": "timestamp", "timezone": True, "nullable": False},
}


# How user_affinities.indices reaches a destination (the source picks one per destination):
# - "list": an Arrow list of strings in parquet, loaded into a json column (DuckDB: JSON; Snowflake:
#   VARIANT holding an ARRAY; MotherDuck);
# - "json": JSON text in CSV, loaded into a json column (Postgres: jsonb);
# - "text": JSON text in parquet, loaded into a text column (BigQuery: STRING), because dlt cannot load
#   a json column from parquet into BigQuery; the audiences read it with JSON_VALUE_ARRAY.
INDICES_ENCODINGS = ("list", "json", "text")


def profile_table_hints(write_disposition: str, indices: str = "list") -> tuple[Any, Any]:
    """Hints of ``users`` and ``user_affinities``: the write disposition varies by run, the type of
    ``indices`` by destination (:data:`INDICES_ENCODINGS`).

    Merge-only column hints (``hard_delete``, ``dedup_sort``) are left out of a replace, where dlt
    would ignore them with a warning; the next merge adds them back.
    """

    def columns(spec: dict[str, dict[str, Any]], cluster: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
        spec = {name: dict(hints) for name, hints in spec.items()}
        if indices == "text" and "indices" in spec:
            spec["indices"]["data_type"] = "text"
        for name in cluster:
            spec[name]["cluster"] = True
        if write_disposition != "merge":
            for hints in spec.values():
                hints.pop("hard_delete", None)
                hints.pop("dedup_sort", None)
        return spec

    users = dlt.mark.make_hints(
        table_name=USERS,
        write_disposition=write_disposition,
        primary_key="user_id",
        columns=columns(USERS_COLUMNS),
    )
    affinities = dlt.mark.make_hints(
        table_name=AFFINITIES,
        write_disposition=write_disposition,
        primary_key=list(AFFINITIES_PRIMARY_KEY),
        merge_key="user_id",
        columns=columns(AFFINITIES_COLUMNS, AFFINITIES_CLUSTER),
        additional_table_hints={BIGQUERY_CLUSTER_HINT: list(AFFINITIES_CLUSTER)},
    )
    return users, affinities


# user_affinities_history: one row per version of a (user, name, value) affinity; a user left without
# affinities gets one *marker* version with empty name and value (HISTORY_MARKER), so that dlt's scd2
# merge (keyed by user) retires the user's last affinities
HISTORY_ROW_VERSION = "row_version"
HISTORY_MARKER = ""
HISTORY_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("last_updated_at", TIMESTAMP),
        pa.field(HISTORY_ROW_VERSION, pa.string(), nullable=False),
    ]
)
HISTORY_COLUMNS: dict[str, dict[str, Any]] = {
    "user_id": {"data_type": "text", "nullable": False, "merge_key": True},
    "name": {"data_type": "text", "nullable": False},
    "value": {"data_type": "text", "nullable": False},
    "score": {"data_type": "double", "nullable": True},
    "last_updated_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
    HISTORY_ROW_VERSION: {"data_type": "text", "nullable": False},
}
VALID_FROM, VALID_TO = "_dlt_valid_from", "_dlt_valid_to"


def history_hints(boundary: Any = None) -> Any:
    """Hints of ``user_affinities_history``: dlt's scd2 merge, partitioned by ``user_id`` (a user
    absent from a load keeps its versions open), versions told apart by ``row_version``, and the
    validity boundary of this load (dlt's load time when None)."""
    disposition: dict[str, Any] = {
        "disposition": "merge", "strategy": "scd2", "row_version_column_name": HISTORY_ROW_VERSION,
    }
    if boundary is not None:
        disposition["boundary_timestamp"] = boundary
    return dlt.mark.make_hints(
        table_name=HISTORY, write_disposition=disposition, merge_key="user_id",
        columns={name: dict(hints) for name, hints in HISTORY_COLUMNS.items()},
    )


REJECTED_HINTS = dlt.mark.make_hints(table_name=REJECTED, write_disposition="append", columns=REJECTED_COLUMNS)
