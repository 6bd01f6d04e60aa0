"""What dlt's scd2 merge does not do to ``user_affinities_history`` (see :mod:`..extract.history`):
closing the versions of users deleted at reconcile, and deleting versions closed before the
retention horizon."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlglot import exp

from ..exceptions import ConfigurationError
from ..tables import HISTORY, VALID_TO
from ..warehouse import dialects
from ..warehouse.target import Target


def has_history(pipeline: Any) -> bool:
    """Whether the pipeline has loaded ``user_affinities_history``."""
    return bool(pipeline.default_schema_name) and HISTORY in pipeline.default_schema.tables


def close_deleted(target: Target, deleted_users: exp.Select, at: datetime) -> exp.Expression:
    """``UPDATE`` closing, at ``at``, the open versions of the users ``deleted_users`` selects."""
    return exp.update(
        target.table(HISTORY), {VALID_TO: dialects.timestamp(at)},
        where=exp.and_(
            exp.column(VALID_TO).is_(exp.null()),
            exp.column("user_id").isin(query=deleted_users),
        ),
    )


def prune_statement(target: Target, horizon: datetime) -> exp.Expression:
    """``DELETE`` of the versions closed before ``horizon`` (open ones are always kept)."""
    return exp.delete(target.table(HISTORY), where=exp.column(VALID_TO) < dialects.timestamp(horizon))


def retention(days: Any) -> timedelta | None:
    """``history_retention_days`` as a duration (None: keep everything)."""
    if days is None:
        return None
    try:
        value = float(days)
    except (TypeError, ValueError):
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigurationError(
            f"history_retention_days must be a positive number of days (or unset, to keep all history),"
            f" got {days!r}"
        )
    return timedelta(days=value)


def prune(horizon: datetime) -> None:
    """Deletes the versions of the running pipeline's history closed before ``horizon`` (nothing
    when the source runs outside a pipeline or no history is loaded yet)."""
    import dlt

    from ..warehouse.read import open_dataset
    from .duckdb import waiting_for_duckdb_lock

    try:
        pipeline = dlt.current.pipeline()
    except Exception:  # noqa: BLE001 - iterated outside a pipeline: nothing to prune
        return
    if not has_history(pipeline):
        return

    def delete() -> None:
        with open_dataset(pipeline) as dataset:
            dataset.client.execute_sql(prune_statement(dataset.target, horizon).sql(dataset.target.dialect))

    waiting_for_duckdb_lock(delete)


def last_boundary(pipeline: Any) -> datetime | None:
    """The validity boundary of the pipeline's last history load (None before the first)."""
    from ..times import parse_datetime
    from .state import profiles_state

    value = profiles_state(pipeline.state).get("history_boundary")
    return parse_datetime(value, "history_boundary") if value else None

