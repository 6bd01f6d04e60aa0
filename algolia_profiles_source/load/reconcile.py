"""Deletions: the list endpoint never returns deleted or expired (90-day) profiles, and has no
tombstones, so only a full walk can tell which profiles are gone.

A reconcile run loads every live profile (``algolia_profiles(reconcile=True)``); every row it wrote
to ``users`` carries its load id. Afterwards, :func:`mark_deleted` sets ``deleted_at`` on every
not-yet-deleted user that the walk did not see. Their rows, and their last affinities, stay in the
raw tables as history; the staging views the segments read leave them out, so they exit every
audience. A profile that comes back is merged again with ``deleted_at`` empty. With affinity history,
the open versions of the deleted users end at the reconcile load's boundary (:mod:`.history`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from datetime import datetime, timezone
from typing import Any

from sqlglot import exp

from ..exceptions import ApiError, ConfigurationError
from ..tables import REJECTED, USERS
from ..times import format_rfc3339
from ..warehouse import dialects
from ..warehouse.target import Target, pipeline_target
from .duckdb import waiting_for_duckdb_lock
from .history import close_deleted, has_history, last_boundary
from .state import profiles_state


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
    now = datetime.now(timezone.utc)
    with pipeline.sql_client() as client:
        target = pipeline_target(pipeline, client)
        dialect = target.dialect
        users = target.table(USERS)
        live = exp.column("deleted_at").is_(exp.null())
        other_load = exp.column("_dlt_load_id").neq(exp.Literal.string(load_id))
        this_load = exp.column("_dlt_load_id").eq(exp.Literal.string(load_id))

        def count(condition: exp.Expression) -> int:
            query = exp.select(exp.func("COUNT", exp.Star())).from_(users.copy()).where(condition)
            return int(client.execute_sql(query.sql(dialect))[0][0])

        rejected_ids = _rejected_this_load(pipeline, target, load_id)
        if rejected_ids is not None:  # quarantined profiles were seen, just not loadable
            other_load = exp.and_(other_load, exp.not_(exp.column("user_id").isin(query=rejected_ids)))
        seen = count(this_load)
        if seen == 0:
            raise ConfigurationError(
                f"load {load_id!r} wrote no users: it is not the load of a reconcile walk"
            )
        missing = count(exp.and_(live, other_load))
        live_before = missing + seen
        # exact: min_seen_share as written (0.07 is 7/100, not the float just above it)
        if seen < Fraction(repr(min_seen_share)) * live_before:
            share = math.floor(seen / live_before * 100) / 100
            raise ApiError(
                f"refusing to mark {missing:,} of {live_before:,} users deleted: the reconcile walk saw"
                f" only {seen:,} profiles ({seen / live_before:.1%}, under min_seen_share"
                f" {min_seen_share * 100:g}%). Check application_id, region and base_url; if Algolia really"
                " dropped that many profiles (a mass 90-day expiry), run the reconcile again with"
                f" --min-seen-share {share:.2f} (load_profiles(..., min_seen_share={share:.2f}))"
            )
        update = exp.update(
            users.copy(), {"deleted_at": dialects.timestamp(now)}, where=exp.and_(live, other_load)
        )
        client.execute_sql(update.sql(dialect))
        closed_at = last_boundary(pipeline) if has_history(pipeline) else None
        if closed_at is not None:  # the versions of a deleted user end with the walk that missed it
            deleted = exp.select("user_id").from_(users.copy()).where(
                exp.column("deleted_at").eq(dialects.timestamp(now)))
            client.execute_sql(close_deleted(target, deleted, closed_at).sql(dialect))
    _record_reconcile(pipeline, now)
    return ReconcileResult(load_id, live_before, seen, missing)


def check_min_seen_share(value: Any) -> float:
    """``min_seen_share`` as a float in [0, 1]; a :class:`ConfigurationError` otherwise."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = math.nan
    if not 0 <= share <= 1:
        raise ConfigurationError(
            f"min_seen_share must be a share from 0 to 1 (0.5 = half of the live users), got {value!r}"
        )
    return share


def _record_reconcile(pipeline: Any, at: datetime) -> None:
    """Stores when deletions were last marked, which ``status`` reads to say whether one is due.

    Only a reconcile that marked its deletions counts: a refused one leaves it due. The state is
    loaded into the destination at once (a small load of the state alone), so that a runner
    without the pipeline's folder restores it.
    """
    with pipeline.managed_state(extract_state=True) as state:
        profiles_state(state, create=True)["last_reconcile_at"] = format_rfc3339(at)
    pipeline.normalize()
    waiting_for_duckdb_lock(pipeline.load)


def _rejected_this_load(pipeline: Any, target: Target, load_id: str) -> exp.Select | None:
    """User IDs the reconcile walk quarantined (None when the table does not exist)."""
    if REJECTED not in pipeline.default_schema.tables:
        return None
    return (
        exp.select("user_id").from_(target.table(REJECTED))
        .where(exp.and_(exp.column("_dlt_load_id").eq(exp.Literal.string(load_id)),
                        exp.column("user_id").is_(exp.not_(exp.null()))))
    )
