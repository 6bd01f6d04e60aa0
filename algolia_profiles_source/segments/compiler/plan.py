"""The read-only plan query: what a build would write, without creating anything."""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from ...tables import MEMBERS
from ...warehouse import dialects
from ...warehouse.target import Target
from ..audience import AudienceFile
from ..models import live_users
from .context import CompileContext
from .flags import flags_select
from .members import audience_members


def plan_select(
    file: AudienceFile, target: Target, built_at: datetime, as_of: datetime | None = None,
    current_members: bool = True,
) -> exp.Select:
    """One read-only query: per audience of ``file``, in file order, how many members a build at
    ``built_at`` would write (``members``) and how many of them would enter or exit against
    ``segment_members`` (``entered``, ``exited``). It runs the build's own member selects, with the
    flags table and each audience's members as CTEs, so it creates nothing; with the same
    ``as_of``, the next build writes these numbers. ``current_members=False``: there is no
    ``segment_members`` yet (the first build), so every member enters."""
    ctx = CompileContext(target, as_of or file.as_of or built_at, users_cte="plan_users", flags_cte="plan_flags",
                   members_ctes={a.name: f"plan_{i}" for i, a in enumerate(file.audiences)})
    flags = flags_select(file, ctx)
    members = target.table(MEMBERS)
    rows = []
    for index, audience in enumerate(file.audiences):
        cte = exp.to_table(ctx.members_of(audience.name).name)
        if current_members:
            changes = dialects.parse(
                "SELECT (SELECT COUNT(*) FROM :cte AS n WHERE NOT EXISTS (SELECT 1 FROM :members AS o"
                " WHERE o.segment = :segment AND o.user_id = n.user_id)) AS entered,"
                " (SELECT COUNT(*) FROM :members AS o WHERE o.segment = :segment AND NOT EXISTS"
                " (SELECT 1 FROM :cte AS n WHERE n.user_id = o.user_id)) AS exited",
                cte=cte, members=members, segment=audience.name,
            ).expressions
        else:
            changes = dialects.parse(
                "SELECT (SELECT COUNT(*) FROM :cte) AS entered, CAST(0 AS BIGINT) AS exited", cte=cte,
            ).expressions
        rows.append(exp.select(
            exp.alias_(exp.Literal.string(audience.name), "segment"),
            exp.alias_(exp.Literal.number(index), "position"),
            exp.alias_(exp.Subquery(this=exp.select(exp.func("COUNT", exp.Star())).from_(cte.copy())), "members"),
            *changes,
        ))
    plan = exp.select("p.segment", "p.members", "p.entered", "p.exited").from_(
        (exp.union(*rows, distinct=False) if len(rows) > 1 else rows[0]).subquery("p")
    ).order_by("p.position")
    # every CTE at the top level: no WITH nested in another (the BigQuery emulator returns nothing)
    plan = plan.with_(ctx.users_cte, as_=live_users(target)).with_(ctx.flags_cte, as_=flags)
    for index, audience in enumerate(file.audiences):
        scored, final = audience_members(audience, index, file, ctx, built_at, f"plan_scored_{index}")
        plan = plan.with_(f"plan_scored_{index}", as_=scored).with_(ctx.members_of(audience.name).name, as_=final)
    return plan
