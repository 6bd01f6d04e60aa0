"""Changes of an audience since an earlier point, for exports that sync instead of resending.

Every export records the build it sent in ``segment_exports`` (one row per export: the audience, the
sync it was for, the build's id and time), so a delta can start from "the last export of this
audience for this sync" on any runner. The members who entered or exited since then come from
``segment_membership_events``: a member's first and last event after that point say whether they
joined (add), left (remove) or came and went (nothing). The table holds no user IDs.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlglot import exp

from ..exceptions import ConfigurationError, TableNotFoundError
from ..tables import BUILDS, EVENTS, EXPORTS, SIZES
from ..warehouse import dialects
from ..warehouse.read import Dataset

EXPORTS_COLUMNS = (
    "export_id TEXT, segment TEXT, sync_name TEXT, kind TEXT, build_id TEXT, built_at TIMESTAMPTZ,"
    " changes_since TIMESTAMPTZ, added BIGINT, removed BIGINT, exported_at TIMESTAMPTZ"
)
LAST = "last"
BUILD_ID = re.compile(r"^\d{8}T\d{6}\d*Z$")


@dataclass(frozen=True)
class Build:
    """The build an audience's members come from."""

    build_id: str
    built_at: datetime


@dataclass
class Changes:
    """Members who joined and who left an audience since a point in time (each sorted)."""

    since: datetime
    entered: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)


def current_build(dataset: Dataset, audience: str) -> Build:
    """The build that made the audience's current members (from ``segment_sizes``)."""
    query = (
        exp.select("build_id", "built_at").from_(dataset.table(SIZES))
        .where(exp.column("segment").eq(exp.Literal.string(audience)))
    )
    rows = dataset.rows(query)
    if not rows:  # the caller checked the audience was built
        raise ConfigurationError(f"audience {audience!r} has not been built (run `segments build` first)")
    return Build(rows[0]["build_id"], rows[0]["built_at"])


def resolve_since(dataset: Dataset, audience: str, sync: str, since: str | datetime) -> datetime:
    """The point a delta starts from: ``"last"`` (the build the last export of ``audience`` for
    ``sync`` sent), a build id (``20261130T120000123456Z``, a build of that audience) or a time."""
    if isinstance(since, datetime):
        return since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    text = since.strip()
    if text.lower() == LAST:
        last = last_export(dataset, audience, sync)
        if last is None:
            raise ConfigurationError(
                f"no earlier export of audience {audience!r} for sync {sync!r} is recorded: export it"
                " in full first (without --changes-since), then sync its changes"
            )
        return last.built_at
    if BUILD_ID.match(text):
        return _build_time(dataset, audience, text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"--changes-since {since!r} is not 'last', a build id (like 20261130T120000000000Z) or a"
            " time (like 2026-11-30T12:00:00+00:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def last_export(dataset: Dataset, audience: str, sync: str) -> Build | None:
    """The build the last export of ``audience`` for ``sync`` sent, or None."""
    query = (
        exp.select("build_id", "built_at").from_(dataset.table(EXPORTS))
        .where(exp.and_(exp.column("segment").eq(exp.Literal.string(audience)),
                        exp.column("sync_name").eq(exp.Literal.string(sync))))
        .order_by(exp.Ordered(this=exp.column("exported_at"), desc=True)).limit(1)
    )
    try:
        rows = dataset.rows(query)
    except TableNotFoundError:  # no export recorded yet
        return None
    return Build(rows[0]["build_id"], rows[0]["built_at"]) if rows else None


def membership_changes(dataset: Dataset, audience: str, since: datetime) -> Changes:
    """Who joined and who left ``audience`` in the builds after ``since``, net: a member who joined
    and left again (or left and came back) is in neither list."""
    query = (
        exp.select("user_id", "event").from_(dataset.table(EVENTS))
        .where(exp.and_(exp.column("segment").eq(exp.Literal.string(audience)),
                        exp.column("built_at") > dialects.timestamp(since)))
        .order_by("built_at", "user_id")
    )
    try:
        rows = dataset.rows(query)
    except TableNotFoundError:  # no build wrote events yet
        rows = []
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for row in rows:
        first.setdefault(row["user_id"], row["event"])
        last[row["user_id"]] = row["event"]
    changes = Changes(since)
    for user_id, event in last.items():
        if event == first[user_id] == "entered":
            changes.entered.append(user_id)
        elif event == first[user_id] == "exited":
            changes.exited.append(user_id)
    changes.entered.sort()
    changes.exited.sort()
    return changes


def record_export(
    dataset: Dataset, audience: str, sync: str, build: Build, since: datetime | None, added: int, removed: int
) -> str:
    """Appends one export to ``segment_exports`` (created when missing); returns its id."""
    target = dataset.target
    exported_at = datetime.now(timezone.utc)
    export_id = f"{exported_at.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}"
    columns = ["export_id", "segment", "sync_name", "kind", "build_id", "built_at", "changes_since",
               "added", "removed", "exported_at"]
    values = [
        exp.Literal.string(export_id), exp.Literal.string(audience), exp.Literal.string(sync),
        exp.Literal.string("full" if since is None else "changes"), exp.Literal.string(build.build_id),
        dialects.timestamp(build.built_at),
        exp.cast(exp.null(), exp.DataType.build("TIMESTAMPTZ")) if since is None else dialects.timestamp(since),
        exp.Literal.number(added), exp.Literal.number(removed), dialects.timestamp(exported_at),
    ]
    insert = exp.insert(
        exp.values([exp.Tuple(expressions=values)]),
        exp.Schema(this=target.table(EXPORTS), expressions=[exp.to_identifier(c) for c in columns]),
    )
    for statement in (dialects.create_if_missing(target, EXPORTS, EXPORTS_COLUMNS).tree, insert):
        dataset.client.execute_sql(target.render(statement))
    return export_id


def _build_time(dataset: Dataset, audience: str, build_id: str) -> datetime:
    query = (
        exp.select("built_at").from_(dataset.table(BUILDS))
        .where(exp.and_(exp.column("segment").eq(exp.Literal.string(audience)),
                        exp.column("build_id").eq(exp.Literal.string(build_id))))
    )
    try:
        rows = dataset.rows(query)
    except TableNotFoundError:
        rows = []
    if not rows:
        raise ConfigurationError(
            f"no build {build_id!r} of audience {audience!r} is recorded in {BUILDS}: give the id a"
            " `segments build` printed, 'last', or a time"
        )
    return rows[0]["built_at"]
