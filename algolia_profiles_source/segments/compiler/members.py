"""The members of one audience: a filter on the flags table (or on every live user), then its
``top`` cut, as one select."""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from ...tables import AFFINITIES, MEMBERS_NEXT
from ...warehouse import dialects
from ...warehouse.target import Target
from ..audience import Audience, AudienceFile, Top
from ..models import table_ref
from .context import CompileContext
from .flags import affinity_condition, matched_column, score_column
from .predicates import member_of, needs_affinity, rule_predicate, suppressed


def audience_select(
    audience: Audience, index: int, file: AudienceFile, ctx: CompileContext, built_at: datetime
) -> exp.Select:
    """The final members of one audience: ``segment, user_id, score, matched_affinities, built_at``."""
    scored, final = audience_members(audience, index, file, ctx, built_at, "r")
    return final.with_("r", as_=scored)


def audience_members(
    audience: Audience, index: int, file: AudienceFile, ctx: CompileContext, built_at: datetime, scored_cte: str
) -> tuple[exp.Select, exp.Select]:
    """The audience's candidates with their scores (to be the CTE ``scored_cte``), and its final
    members read from that CTE."""
    scored, positive = _scored(audience, index, file, ctx)
    # the final select reads the candidates as `r`, whatever the CTE's name
    r = exp.to_table("r") if scored_cte == "r" else exp.alias_(exp.to_table(scored_cte), "r", table=True)
    final = _top(audience.top, ctx.target, r, scored_cte, positive)
    return scored, dialects.parse(
        "SELECT :segment AS segment, x.user_id, x.score, x.matched_affinities, :built_at AS built_at"
        " FROM (:final) AS x",
        segment=audience.name, built_at=dialects.timestamp(built_at), final=final,
    )


def _scored(
    audience: Audience, index: int, file: AudienceFile, ctx: CompileContext
) -> tuple[exp.Expression, list[exp.Expression]]:
    """The users matching the audience (rule, exclusions, suppression, score floor) with their score
    and matched rows; and the conditions of its positive affinity rules, which ``top.per_value``
    ranks by."""
    # A rule that cannot match without an affinity row reads only the flags table (its users, a
    # fraction of all, carry the columns rules read); any other starts from every live user.
    by_name = {a.name: a for a in file.audiences}
    from_flags = needs_affinity(audience.rule, by_name)
    ctx.flag_alias = "u" if from_flags else "f"
    where = [rule_predicate(audience.rule, ctx)]
    where += [exp.not_(member_of(ctx, name, exp.column("user_id", "u"))) for name in audience.exclude]
    where += suppressed(file.suppression + audience.suppress, ctx)

    positive = [affinity_condition(rule, ctx) for rule in audience.positive_affinity_rules()]
    if positive:
        score = exp.column(score_column(index), ctx.flag_alias)
        matched = exp.func("COALESCE", exp.column(matched_column(index), ctx.flag_alias), exp.Literal.number(0))
        if audience.min_score is not None:
            where.append(score.copy() >= exp.Literal.number(audience.min_score))
    else:
        score = exp.cast(exp.null(), "DOUBLE")
        matched = exp.Literal.number(0)
        if audience.min_score is not None:
            where.append(exp.false())  # no affinity rule: no score, so nobody reaches the floor
    source = (
        "FROM :flags AS u" if from_flags else "FROM :users AS u LEFT JOIN :flags AS f ON f.user_id = u.user_id"
    )
    scored = dialects.parse(
        f"SELECT u.user_id, :score AS score, CAST(:matched AS BIGINT) AS matched_affinities {source}"
        " WHERE :candidate",
        users=ctx.users_table(), flags=ctx.flags_table(), score=score, matched=matched,
        candidate=exp.and_(*where),
    )
    return scored, positive


def _top(
    top: Top | None, target: Target, r: exp.Expression, scored_cte: str, positive: list[exp.Expression]
) -> exp.Expression:
    """The candidates ``r`` kept by ``top``: the best ``n`` overall, or the members among the best
    ``n`` holders of each (name, value) the positive rules match (``per_value``); all without it."""
    if top is None:
        return dialects.parse("SELECT r.user_id, r.score, r.matched_affinities FROM :r", r=r)
    if not top.per_value:
        return dialects.parse(
            "SELECT k.user_id, k.score, k.matched_affinities FROM ("
            " SELECT r.user_id, r.score, r.matched_affinities,"
            " ROW_NUMBER() OVER (ORDER BY r.score DESC NULLS LAST, :user_order) AS rn FROM :r) AS k"
            " WHERE k.rn <= :n",
            user_order=dialects.binary_order(exp.column("user_id", "r"), target.dialect), n=top.n, r=r,
        )
    return dialects.parse(
        "SELECT r.user_id, r.score, r.matched_affinities FROM :r WHERE r.user_id IN ("
        " SELECT p.user_id FROM (SELECT a.user_id, ROW_NUMBER() OVER"
        " (PARTITION BY a.name, a.value ORDER BY a.score DESC, :user_order) AS rn"
        " FROM :affinities AS a JOIN :scored AS r2 ON r2.user_id = a.user_id WHERE :positive) AS p"
        " WHERE p.rn <= :n)",
        r=r, scored=exp.to_table(scored_cte),
        # r holds live users only: the raw table spares the staging view's join
        affinities=table_ref(target, AFFINITIES), n=top.n,
        user_order=dialects.binary_order(exp.column("user_id", "a"), target.dialect),
        positive=exp.or_(*[exp.paren(p) for p in positive]) if positive else exp.false(),
    )


def audience_insert(
    audience: Audience, index: int, file: AudienceFile, ctx: CompileContext, built_at: datetime
) -> exp.Expression:
    """``INSERT INTO segment_members__next`` the final members of one audience."""
    return exp.Insert(
        this=exp.Schema(
            this=ctx.target.table(MEMBERS_NEXT),
            expressions=[exp.to_identifier(c) for c in ("segment", "user_id", "score", "matched_affinities", "built_at")],
        ),
        expression=audience_select(audience, index, file, ctx, built_at),
    )
