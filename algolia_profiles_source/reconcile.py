"""Deletions: the list endpoint never returns deleted or expired (90-day) profiles, and has no
tombstones, so only a full walk can tell which profiles are gone.

A reconcile run loads every live profile (``algolia_profiles(reconcile=True)``); every row it wrote
to ``users`` carries its load id. Afterwards, :func:`mark_deleted` sets ``deleted_at`` on every
not-yet-deleted user that the walk did not see. Their rows, and their last affinities, stay in the
raw tables as history; the staging views the segments read leave them out, so they exit every
audience. A profile that comes back is merged again with ``deleted_at`` empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlglot
from sqlglot import exp

from .exceptions import ApiError, ConfigurationError
from .segments import dialects

USERS = "users"
REJECTED = "rejected_records"


@dataclass
class ReconcileResult:
    load_id: str
    live_before: int
    seen: int
    deleted: int


def mark_deleted(pipeline: Any, load_id: str, min_seen_share: float = 0.5) -> ReconcileResult:
    """Marks users absent from the reconcile load ``load_id`` as deleted.

    Refuses (and changes nothing) when the walk saw fewer than ``min_seen_share`` of the users
    that were live before: a wrong application ID or a misconfigured proxy must not wipe the table.
    """
    dialect = dialects.dialect_for_destination(pipeline.destination.destination_type)
    now = datetime.now(timezone.utc)
    with pipeline.sql_client() as client:
        users = sqlglot.parse_one(client.make_qualified_table_name(USERS), into=exp.Table, dialect=dialect)
        live = exp.column("deleted_at").is_(exp.null())
        other_load = exp.column("_dlt_load_id").neq(exp.Literal.string(load_id))
        this_load = exp.column("_dlt_load_id").eq(exp.Literal.string(load_id))

        def count(condition: exp.Expression) -> int:
            query = exp.select(exp.func("COUNT", exp.Star())).from_(users.copy()).where(condition)
            return int(client.execute_sql(query.sql(dialect))[0][0])

        rejected_ids = _rejected_this_load(pipeline, client, dialect, load_id)
        if rejected_ids is not None:  # quarantined profiles were seen, just not loadable
            other_load = exp.and_(other_load, exp.not_(exp.column("user_id").isin(query=rejected_ids)))
        seen = count(this_load)
        if seen == 0:
            raise ConfigurationError(
                f"load {load_id!r} wrote no users: it is not the load of a reconcile walk"
            )
        missing = count(exp.and_(live, other_load))
        live_before = missing + seen
        if seen < min_seen_share * live_before:
            raise ApiError(
                f"refusing to mark {missing:,} of {live_before:,} users deleted: the reconcile walk saw"
                f" only {seen:,} profiles (< {min_seen_share:.0%}). Check application_id/region, or"
                " lower min_seen_share if Algolia really dropped that many profiles"
            )
        update = exp.update(
            users.copy(), {"deleted_at": dialects.timestamp(now)}, where=exp.and_(live, other_load)
        )
        client.execute_sql(update.sql(dialect))
    return ReconcileResult(load_id, live_before, seen, missing)


def _rejected_this_load(pipeline: Any, client: Any, dialect: str, load_id: str) -> Any:
    """User IDs the reconcile walk quarantined (or None when nothing was ever quarantined)."""
    if REJECTED not in pipeline.default_schema.tables:
        return None
    table = sqlglot.parse_one(client.make_qualified_table_name(REJECTED), into=exp.Table, dialect=dialect)
    return (
        exp.select("user_id").from_(table)
        .where(exp.and_(exp.column("_dlt_load_id").eq(exp.Literal.string(load_id)),
                        exp.column("user_id").is_(exp.not_(exp.null()))))
    )
