"""Every statement of a segment build, in order: the tables, the flags pass, each audience's
members, the membership events, the swap into ``segment_members``, sizes, builds and overlaps."""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from ...tables import BUILDS, EVENTS, MEMBERS, MEMBERS_NEXT, OVERLAPS, SIZES, STG_USERS, WORK_FLAGS
from ...warehouse import dialects
from ...warehouse.target import Statement, Target
from ..audience import AudienceFile
from ..models import replace_table
from .context import CompileContext
from .flags import flags_select
from .members import audience_insert

MEMBERS_COLUMNS = "segment TEXT, user_id TEXT, score DOUBLE, matched_affinities BIGINT, built_at TIMESTAMPTZ"
EVENTS_COLUMNS = "segment TEXT, user_id TEXT, event TEXT, build_id TEXT, built_at TIMESTAMPTZ"
BUILDS_COLUMNS = "build_id TEXT, segment TEXT, members BIGINT, entered BIGINT, exited BIGINT, built_at TIMESTAMPTZ"


def segment_statements(
    file: AudienceFile, target: Target, built_at: datetime, build_id: str, as_of: datetime | None = None
) -> list[Statement]:
    """Every statement of a segment build, in order (see :func:`..build.build_segments`)."""
    ctx = CompileContext(target, as_of or file.as_of or built_at)
    names = [a.name for a in file.audiences]
    stamp = dialects.timestamp(built_at)
    nxt = target.table(MEMBERS_NEXT)
    statements = [
        # exports and `segments show` read one audience; history queries one audience's events
        dialects.create_if_missing(target, MEMBERS, MEMBERS_COLUMNS, cluster_by=("segment",)),
        dialects.create_if_missing(target, EVENTS, EVENTS_COLUMNS, cluster_by=("segment", "built_at")),
        dialects.create_if_missing(target, BUILDS, BUILDS_COLUMNS),
        Statement(f"drop {MEMBERS_NEXT}", exp.Drop(tables=[nxt], kind="TABLE", exists=True)),
        dialects.create_if_missing(target, MEMBERS_NEXT, MEMBERS_COLUMNS),
    ]
    flags = flags_select(file, ctx)
    statements.append(Statement(f"drop {WORK_FLAGS}", exp.Drop(tables=[ctx.flags_table()], kind="TABLE", exists=True)))
    statements.append(Statement(f"table {WORK_FLAGS}", dialects.create_work_table(target, WORK_FLAGS, flags)))
    statements += [
        Statement(f"audience {a.name}", audience_insert(a, i, file, ctx, built_at))
        for i, a in enumerate(file.audiences)
    ]
    statements.append(Statement("membership events", _events_insert(target, names, build_id, stamp)))
    statements += _swap_members(target)
    statements.append(Statement(f"drop {MEMBERS_NEXT}", exp.Drop(tables=[nxt], kind="TABLE", exists=True)))
    statements.append(Statement(f"drop {WORK_FLAGS}", exp.Drop(tables=[ctx.flags_table()], kind="TABLE", exists=True)))
    statements += replace_table(target, SIZES, _sizes_select(target, names, build_id, stamp), f"table {SIZES}")
    statements.append(Statement(f"append {BUILDS}", dialects.parse(
        "INSERT INTO :builds (build_id, segment, members, entered, exited, built_at)"
        " SELECT s.build_id, s.segment, s.members, s.entered, s.exited, s.built_at FROM :sizes AS s",
        builds=target.table(BUILDS), sizes=target.table(SIZES),
    )))
    statements += replace_table(target, OVERLAPS, _overlaps_select(target, stamp), f"table {OVERLAPS}")
    return statements


def _events_insert(target: Target, names: list[str], build_id: str, stamp: exp.Expression) -> exp.Expression:
    """Who entered (in ``segment_members__next``, not in ``segment_members``) and exited (the
    reverse, among the audiences built), appended to ``segment_membership_events``."""
    return dialects.parse(
        "INSERT INTO :events (segment, user_id, event, build_id, built_at)"
        " SELECT n.segment, n.user_id, 'entered', :build_id, :stamp FROM :next AS n"
        " WHERE NOT EXISTS (SELECT 1 FROM :members AS o WHERE o.segment = n.segment AND o.user_id = n.user_id)"
        " UNION ALL"
        " SELECT o.segment, o.user_id, 'exited', :build_id, :stamp FROM :members AS o"
        " WHERE o.segment IN :names AND NOT EXISTS"
        " (SELECT 1 FROM :next AS n WHERE n.segment = o.segment AND n.user_id = o.user_id)",
        events=target.table(EVENTS), next=target.table(MEMBERS_NEXT), members=target.table(MEMBERS),
        build_id=build_id, stamp=stamp, names=exp.Tuple(expressions=[exp.Literal.string(n) for n in names]),
    )


def _swap_members(target: Target) -> list[Statement]:
    """``segment_members__next`` becomes ``segment_members``: renamed where the warehouse can,
    copied into it elsewhere."""
    members, nxt = target.table(MEMBERS), target.table(MEMBERS_NEXT)
    if target.dialect in dialects.SWAP_BY_RENAME:
        return [
            Statement(f"drop {MEMBERS}", exp.Drop(tables=[members], kind="TABLE", exists=True)),
            Statement(f"rename {MEMBERS_NEXT}", dialects.rename_table(target, MEMBERS_NEXT, MEMBERS)),
        ]
    return [
        Statement(f"replace {MEMBERS}", exp.delete(members, where=exp.true())),
        Statement(f"fill {MEMBERS}", dialects.parse(
            "INSERT INTO :members (segment, user_id, score, matched_affinities, built_at)"
            " SELECT n.segment, n.user_id, n.score, n.matched_affinities, n.built_at FROM :next AS n",
            members=members, next=nxt,
        )),
    ]


def _sizes_select(target: Target, names: list[str], build_id: str, stamp: exp.Expression) -> exp.Expression:
    """Per audience built: its members, who entered and exited in this build, its share of users."""
    segments = [exp.select(exp.alias_(exp.Literal.string(name), "segment")) for name in names]
    return dialects.parse(
        "SELECT s.segment, COALESCE(m.members, 0) AS members, COALESCE(e.entered, 0) AS entered,"
        " COALESCE(e.exited, 0) AS exited,"
        " CAST(COALESCE(m.members, 0) AS DOUBLE) / NULLIF((SELECT COUNT(*) FROM :users), 0) AS share_of_users,"
        " :stamp AS built_at, :build_id AS build_id"
        " FROM (:segments) AS s"
        " LEFT JOIN (SELECT segment, COUNT(*) AS members FROM :members GROUP BY segment) AS m ON m.segment = s.segment"
        # COUNT, not SUM: a SUM of integers is HUGEINT in DuckDB, and every count here is BIGINT
        " LEFT JOIN (SELECT segment, COUNT(CASE WHEN event = 'entered' THEN 1 END) AS entered,"
        " COUNT(CASE WHEN event = 'exited' THEN 1 END) AS exited FROM :events"
        " WHERE build_id = :build_id GROUP BY segment) AS e ON e.segment = s.segment",
        users=target.table(STG_USERS), members=target.table(MEMBERS), events=target.table(EVENTS),
        stamp=stamp.copy(), build_id=build_id,
        segments=exp.union(*segments, distinct=False) if len(segments) > 1 else segments[0],
    )


def _overlaps_select(target: Target, stamp: exp.Expression) -> exp.Expression:
    """Per pair of audiences: the members they share, as a count and as shares of each and of both."""
    return dialects.parse(
        "SELECT a.segment AS segment_a, b.segment AS segment_b, COALESCE(o.overlap, 0) AS overlap,"
        " CAST(COALESCE(o.overlap, 0) AS DOUBLE) / NULLIF(a.members, 0) AS pct_of_a,"
        " CAST(COALESCE(o.overlap, 0) AS DOUBLE) / NULLIF(b.members, 0) AS pct_of_b,"
        " CAST(COALESCE(o.overlap, 0) AS DOUBLE) / NULLIF(a.members + b.members - COALESCE(o.overlap, 0), 0) AS jaccard,"
        " :stamp AS built_at"
        " FROM :sizes AS a JOIN :sizes AS b ON :a_segment < b.segment"
        " LEFT JOIN (SELECT x.segment AS segment_a, y.segment AS segment_b, COUNT(*) AS overlap"
        " FROM :members AS x JOIN :members AS y ON x.user_id = y.user_id AND :x_segment < y.segment"
        " GROUP BY x.segment, y.segment) AS o ON o.segment_a = a.segment AND o.segment_b = b.segment",
        sizes=target.table(SIZES), members=target.table(MEMBERS), stamp=stamp.copy(),
        # pairs are ordered byte-wise in every warehouse (Postgres collations differ)
        a_segment=dialects.binary_order(exp.column("segment", "a"), target.dialect),
        x_segment=dialects.binary_order(exp.column("segment", "x"), target.dialect),
    )
