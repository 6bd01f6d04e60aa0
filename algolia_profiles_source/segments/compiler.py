"""SQL for the audiences, generated as sqlglot trees and rendered per warehouse.

Templates are constants in sqlglot's neutral dialect; audience values (affinity names and values,
user IDs, index names) only ever enter as sqlglot literals, so ``O'Brien'; drop table users; --`` is a
value like any other. Warehouse differences live in :mod:`..warehouse.dialects`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from collections.abc import Iterable

from sqlglot import exp

from ..tables import (
    AFFINITIES,
    BUILDS,
    EVENTS,
    HISTORY,
    MEMBERS,
    MEMBERS_NEXT,
    OVERLAPS,
    SIZES,
    STG_USERS,
    VALID_FROM,
    WORK_FLAGS,
)
from ..warehouse import dialects
from ..warehouse.target import Statement, Target
from .definitions import (
    AffinityRule,
    Audience,
    AudienceFile,
    ABSENT,
    AudienceRule,
    HistoryRule,
    ProfileRule,
    ScoreRange,
    Rule,
    Suppression,
)
from .models import live_users, replace_table, table_ref, valid_at

# the columns of a user that rules read, copied into the flags table
USER_COLUMNS = ("user_id", "type", "last_updated_at")

MEMBERS_COLUMNS = "segment TEXT, user_id TEXT, score DOUBLE, matched_affinities BIGINT, built_at TIMESTAMPTZ"
EVENTS_COLUMNS = "segment TEXT, user_id TEXT, event TEXT, build_id TEXT, built_at TIMESTAMPTZ"
BUILDS_COLUMNS = "build_id TEXT, segment TEXT, members BIGINT, entered BIGINT, exited BIGINT, built_at TIMESTAMPTZ"


@dataclass
class CompileContext:
    """What the SQL of one build (or plan, or dbt project) is compiled for: the warehouse, the
    instant "within N days" counts back from, and where the live users, the flags and each
    audience's members are read from (the build's tables by default; CTEs or dbt models instead)."""

    target: Target
    as_of: datetime
    # each affinity rule's flag: its bit number across the mask columns
    flags: dict[AffinityRule, int] = field(default_factory=dict)
    # the alias the audience being compiled reads the flags table under
    flag_alias: str = "f"
    # a plan reads the live users, the flags and each audience's members from CTEs of these names
    # instead of the staging view and the build's tables
    users_cte: str | None = None
    flags_cte: str | None = None
    members_ctes: dict[str, str] | None = None

    def since(self, days: float) -> exp.Expression:
        return dialects.timestamp(self.as_of - timedelta(days=days))

    def users_table(self, alias: str | None = None) -> exp.Expression:
        """The live users (the staging view, or the plan's CTE)."""
        if self.users_cte:
            table = exp.to_table(self.users_cte)
            return exp.alias_(table, alias, table=True) if alias else table
        return table_ref(self.target, STG_USERS, alias)

    def flags_table(self) -> exp.Table:
        if self.flags_cte:
            return exp.to_table(self.flags_cte)
        return dialects.work_table(self.target, WORK_FLAGS)

    def members_of(self, audience: str) -> exp.Table:
        """Where the members of ``audience`` (built earlier in dependency order) are read from."""
        if self.members_ctes is not None:
            return exp.to_table(self.members_ctes[audience])
        return self.target.table(MEMBERS_NEXT)


def _score_column(index: int) -> str:
    return f"score_{index}"


def _matched_column(index: int) -> str:
    return f"matched_{index}"


# Rule flags are bits of BIGINT mask columns: one aggregate per 62 rules instead of one per rule
# (the per-user pass costs about one aggregate's time per aggregate). 62 keeps clear of the sign bit.
MASK_BITS = 62


def _mask_column(chunk: int) -> str:
    return f"mask_{chunk}"


def _mask_bits(rules: Iterable[AffinityRule], ctx: CompileContext) -> dict[int, int]:
    """Per mask column, the bits of ``rules``."""
    bits: dict[int, int] = {}
    for rule in rules:
        chunk, bit = divmod(ctx.flags[rule], MASK_BITS)
        bits[chunk] = bits.get(chunk, 0) | (1 << bit)
    return bits


def _any_bit(rules: Iterable[AffinityRule], ctx: CompileContext, alias: str, nullable: bool = True) -> exp.Expression:
    """True when the row ``alias`` has the flag of one of ``rules`` set (NULL masks count as 0)."""
    def mask(chunk: int) -> exp.Expression:
        column = exp.column(_mask_column(chunk), alias)
        return exp.func("COALESCE", column, exp.Literal.number(0)) if nullable else column

    return exp.or_(*[
        exp.NEQ(
            this=exp.paren(dialects.bit_and(mask(chunk), exp.Literal.number(bits), ctx.target.dialect)),
            expression=exp.Literal.number(0),
        )
        for chunk, bits in sorted(_mask_bits(rules, ctx).items())
    ])


def flags_select(file: AudienceFile, ctx: CompileContext) -> exp.Expression:
    """One pass over the affinities: per live user with a candidate row, which affinity rules of
    the file some row of the user matches (bits of ``mask_<n>``), per audience the best score and
    number of its positive matched rows, and the user's own columns the rules read (``type``,
    ``last_updated_at``). Every audience is then a filter on this table, not another scan, and an
    audience that needs an affinity match reads only this table, not ``users``.

    Each rule's condition is evaluated once per row (into the row's masks); the aggregates then
    only test bits."""
    target = ctx.target
    for rule in {r: None for a in file.audiences for r in a.affinity_rules()}:
        ctx.flags.setdefault(rule, len(ctx.flags))
    chunks = (len(ctx.flags) + MASK_BITS - 1) // MASK_BITS
    row_masks: list[exp.Expression] = []
    for chunk in range(chunks):
        terms = [
            exp.Case(ifs=[exp.If(this=affinity_condition(rule, ctx), true=exp.Literal.number(1 << (i % MASK_BITS)))],
                     default=exp.Literal.number(0))
            for rule, i in ctx.flags.items() if i // MASK_BITS == chunk
        ]
        total = terms[0]
        for term in terms[1:]:
            total = exp.Add(this=total, expression=term)
        row_masks.append(exp.alias_(exp.cast(total, "BIGINT"), _mask_column(chunk)))
    rows = (
        exp.select(exp.column("user_id", "a"), exp.column("score", "a"), *row_masks)
        .from_(table_ref(target, AFFINITIES, "a"))
        .where(_candidate_rows(list(ctx.flags)))
    )
    columns: list[exp.Expression] = [
        exp.alias_(dialects.bit_or_agg(exp.column(_mask_column(chunk), "c"), target.dialect), _mask_column(chunk))
        for chunk in range(chunks)
    ]
    for index, audience in enumerate(file.audiences):
        positive = audience.positive_affinity_rules()
        if not positive:
            continue
        hit = _any_bit(positive, ctx, "c", nullable=False)
        columns.append(exp.alias_(exp.func("MAX", exp.Case(ifs=[exp.If(
            this=hit.copy(), true=exp.column("score", "c"))])), _score_column(index)))
        columns.append(exp.alias_(exp.func("SUM", exp.Case(ifs=[exp.If(
            this=hit.copy(), true=exp.Literal.number(1))], default=exp.Literal.number(0))), _matched_column(index)))
    # the raw affinities are grouped (rows of deleted users included), then joined to the live
    # users once: cheaper than filtering the biggest table by a join first
    grouped = (
        exp.select(exp.column("user_id", "c"), *columns)
        .from_(rows.subquery("c"))
        .group_by(exp.column("user_id", "c"))
    )
    return exp.select(
        *[exp.column(c, "u") for c in USER_COLUMNS], *[exp.column(c.alias_or_name, "g") for c in columns]
    ).from_(grouped.subquery("g")).join(
        ctx.users_table("u"), on=exp.column("user_id", "u").eq(exp.column("user_id", "g"))
    )


def _candidate_rows(rules: list[AffinityRule]) -> exp.Expression:
    """A cheap condition every affinity row matching one of ``rules`` meets: its (name, value) is
    one a rule names, or its name is one a rule takes with any value.

    Only such rows can set a flag, a score or a count, so the per-user pass groups those instead of
    the table (users without any get no flags row, which the audiences read as all zero). An
    equi-join on (name, value) runs on the warehouse's compressed columns; the rules' full
    conditions, ORed, would be evaluated row by row over the whole table (4x slower in DuckDB).
    """
    pairs = sorted({(rule.name, value) for rule in rules for value in rule.values})
    any_value = sorted({rule.name for rule in rules if not rule.values})
    filters: list[exp.Expression] = []
    if pairs:
        wanted = exp.union(*[
            exp.select(exp.alias_(exp.Literal.string(n), "name"), exp.alias_(exp.Literal.string(v), "value"))
            for n, v in pairs
        ], distinct=False) if len(pairs) > 1 else exp.select(
            exp.alias_(exp.Literal.string(pairs[0][0]), "name"), exp.alias_(exp.Literal.string(pairs[0][1]), "value"))
        filters.append(exp.Exists(this=dialects.parse(
            "SELECT 1 FROM (:wanted) AS p WHERE p.name = a.name AND p.value = a.value", wanted=wanted,
        )))
    if any_value:
        filters.append(exp.column("name", "a").isin(*[exp.Literal.string(n) for n in any_value]))
    return exp.or_(*filters) if filters else exp.false()


def _in_range(column: exp.Expression, score: ScoreRange) -> list[exp.Expression]:
    parts: list[exp.Expression] = []
    if score.low is not None:
        cls = exp.GTE if score.low_inclusive else exp.GT
        parts.append(cls(this=column.copy(), expression=exp.Literal.number(score.low)))
    if score.high is not None:
        cls = exp.LTE if score.high_inclusive else exp.LT
        parts.append(cls(this=column.copy(), expression=exp.Literal.number(score.high)))
    return parts


def history_predicate(rule: HistoryRule, ctx: CompileContext) -> exp.Expression:
    """A condition on the user row ``u``: some (name, value) of ``rule`` changed as it says between
    ``days`` before ``as_of`` and ``as_of``, in ``user_affinities_history``.

    Per (user, name, value), the versions valid at either instant are grouped into the score then
    and now (NULL when absent) and whether there was a version; one IN over a plain subquery, which
    every warehouse runs (BigQuery refuses many correlated ones). A *then* before the history's
    first version matches nobody: what Algolia served then is unknown."""
    then, now = ctx.since(rule.days), dialects.timestamp(ctx.as_of)
    at_then, at_now = valid_at(then, "h"), valid_at(now, "h")
    h = lambda name: exp.column(name, "h")  # noqa: E731
    c = lambda name: exp.column(name, "c")  # noqa: E731

    def when(condition: exp.Expression, value: exp.Expression, default: exp.Expression | None = None) -> exp.Expression:
        return exp.func("MAX", exp.Case(ifs=[exp.If(this=condition.copy(), true=value)], default=default))

    where = [h("name").eq(exp.Literal.string(rule.name))]
    if len(rule.values) == 1:
        where.append(h("value").eq(exp.Literal.string(rule.values[0])))
    elif rule.values:
        where.append(h("value").isin(*[exp.Literal.string(v) for v in rule.values]))
    where.append(exp.or_(exp.paren(at_then.copy()), exp.paren(at_now.copy())))
    one, zero = exp.Literal.number(1), exp.Literal.number(0)
    pairs = (
        exp.select(
            h("user_id"),
            exp.alias_(when(at_then, h("score")), "then_score"),
            exp.alias_(when(at_then, one.copy(), zero.copy()), "had_then"),
            exp.alias_(when(at_now, h("score")), "now_score"),
            exp.alias_(when(at_now, one.copy(), zero.copy()), "has_now"),
        )
        .from_(table_ref(ctx.target, HISTORY, "h"))
        .where(exp.and_(*where))
        .group_by(h("user_id"), h("name"), h("value"))
    )
    score_then = exp.func("COALESCE", c("then_score"), zero.copy())
    score_now = exp.func("COALESCE", c("now_score"), zero.copy())
    conditions: list[exp.Expression] = []
    if rule.rose_by is not None:
        conditions.append(exp.GTE(this=exp.paren(exp.Sub(this=score_now, expression=score_then)),
                                  expression=exp.Literal.number(rule.rose_by)))
    if rule.fell_by is not None:
        conditions.append(exp.GTE(this=exp.paren(exp.Sub(this=score_then.copy(), expression=score_now.copy())),
                                  expression=exp.Literal.number(rule.fell_by)))
    for state, present, score in ((rule.then, "had_then", "then_score"), (rule.now, "has_now", "now_score")):
        if state == ABSENT:
            conditions.append(c(present).eq(zero.copy()))
        elif isinstance(state, ScoreRange):
            conditions.append(c(present).eq(one.copy()))
            conditions += _in_range(c(score), state)
    # before the history's first load nothing is known (not "absent"): then must be inside it
    first = exp.select(exp.func("MIN", exp.column(VALID_FROM, "k"))).from_(table_ref(ctx.target, HISTORY, "k"))
    conditions.append(exp.LTE(this=exp.Subquery(this=first), expression=then.copy()))
    changed = exp.select(c("user_id")).from_(pairs.subquery("c")).where(exp.and_(*conditions))
    return exp.column("user_id", "u").isin(query=changed)


def affinity_condition(rule: AffinityRule, ctx: CompileContext, alias: str = "a") -> exp.Expression:
    """The condition one affinity row (``alias``) must meet for ``rule``."""
    col = lambda name: exp.column(name, alias)  # noqa: E731
    parts: list[exp.Expression] = [col("name").eq(exp.Literal.string(rule.name))]
    if len(rule.values) == 1:
        parts.append(col("value").eq(exp.Literal.string(rule.values[0])))
    elif rule.values:
        parts.append(col("value").isin(*[exp.Literal.string(v) for v in rule.values]))
    if rule.score is not None:
        parts += _in_range(col("score"), rule.score)
    if rule.indices:
        parts.append(exp.or_(*[
            dialects.json_array_contains(col("indices"), exp.Literal.string(i), ctx.target.dialect)
            for i in rule.indices
        ]))
    if rule.updated_within_days is not None:
        parts.append(col("last_updated_at") >= ctx.since(rule.updated_within_days))
    return exp.and_(*parts)


def _member_of(ctx: CompileContext, audience: str, user: exp.Expression) -> exp.Expression:
    return exp.Exists(this=dialects.parse(
        "SELECT 1 FROM :members AS m WHERE m.segment = :segment AND m.user_id = :user",
        members=ctx.members_of(audience), segment=audience, user=user,
    ))


def rule_predicate(rule: Rule, ctx: CompileContext) -> exp.Expression:
    """A condition on the user row ``u`` that is true when the user matches ``rule``."""
    user = exp.column("user_id", "u")
    if isinstance(rule, AffinityRule):
        return _any_bit([rule], ctx, ctx.flag_alias)
    if isinstance(rule, ProfileRule):
        parts: list[exp.Expression] = []
        if rule.updated_within_days is not None:
            parts.append(exp.column("last_updated_at", "u") >= ctx.since(rule.updated_within_days))
        if rule.types:
            parts.append(exp.column("type", "u").isin(*[exp.Literal.string(t) for t in rule.types]))
        # a missing type or timestamp never matches, also under `none` (NOT NULL is not true)
        return exp.func("COALESCE", exp.paren(exp.and_(*parts)), exp.false())
    if isinstance(rule, AudienceRule):
        return _member_of(ctx, rule.audience, user)
    if isinstance(rule, HistoryRule):
        return history_predicate(rule, ctx)
    children = [exp.paren(rule_predicate(child, ctx), copy=False) for child in rule.rules]
    if rule.kind == "all":
        return exp.and_(*children)
    if rule.kind == "any":
        return exp.or_(*children)
    return exp.not_(exp.paren(exp.or_(*children), copy=False))


def needs_affinity(rule: Rule, audiences: dict[str, Audience]) -> bool:
    """Whether only a user with at least one affinity row matching some rule can match ``rule``
    (such a user has a row in the flags table). ``audiences`` resolves ``audience`` rules (the
    definitions have no cycles)."""
    if isinstance(rule, AffinityRule):
        return True
    if isinstance(rule, (ProfileRule, HistoryRule)):
        return False  # a history rule matches users whose affinity is gone
    if isinstance(rule, AudienceRule):
        return rule.audience in audiences and needs_affinity(audiences[rule.audience].rule, audiences)
    if rule.kind == "all":
        return any(needs_affinity(child, audiences) for child in rule.rules)
    if rule.kind == "any":
        return all(needs_affinity(child, audiences) for child in rule.rules)
    return False  # none: matched by users without any row


def _suppressed(suppression: Suppression, ctx: CompileContext) -> list[exp.Expression]:
    user = exp.column("user_id", "u")
    conditions: list[exp.Expression] = []
    if suppression.user_ids:
        conditions.append(exp.not_(user.isin(*[exp.Literal.string(u) for u in sorted(set(suppression.user_ids))])))
    for table, column in suppression.tables:
        conditions.append(exp.not_(exp.Exists(this=dialects.parse(
            "SELECT 1 FROM :table AS s WHERE CAST(:col AS TEXT) = u.user_id",
            table=ctx.target.external_table(table), col=exp.column(column, "s"),
        ))))
    return conditions


def audience_select(
    audience: Audience, index: int, file: AudienceFile, ctx: CompileContext, built_at: datetime
) -> exp.Select:
    """The final members of one audience: ``segment, user_id, score, matched_affinities, built_at``."""
    scored, final = _audience_members(audience, index, file, ctx, built_at, "r")
    return final.with_("r", as_=scored)


def _audience_members(
    audience: Audience, index: int, file: AudienceFile, ctx: CompileContext, built_at: datetime, scored_cte: str
) -> tuple[exp.Select, exp.Select]:
    """The audience's candidates with their scores (to be the CTE ``scored_cte``), and its final
    members read from that CTE."""
    target = ctx.target
    # the final select reads the candidates as `r`, whatever the CTE's name
    r = exp.to_table("r") if scored_cte == "r" else exp.alias_(exp.to_table(scored_cte), "r", table=True)
    # A rule that cannot match without an affinity row reads only the flags table (its users, a
    # fraction of all, carry the columns rules read); any other starts from every live user.
    by_name = {a.name: a for a in file.audiences}
    from_flags = needs_affinity(audience.rule, by_name)
    ctx.flag_alias = "u" if from_flags else "f"
    where = [rule_predicate(audience.rule, ctx)]
    where += [exp.not_(_member_of(ctx, name, exp.column("user_id", "u"))) for name in audience.exclude]
    where += _suppressed(file.suppression + audience.suppress, ctx)

    positive = [affinity_condition(rule, ctx) for rule in audience.positive_affinity_rules()]
    if positive:
        score = exp.column(_score_column(index), ctx.flag_alias)
        matched = exp.func("COALESCE", exp.column(_matched_column(index), ctx.flag_alias), exp.Literal.number(0))
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

    final = dialects.parse("SELECT r.user_id, r.score, r.matched_affinities FROM :r", r=r)
    top = audience.top
    user_order = dialects.binary_order(exp.column("user_id", "r"), target.dialect)
    if top is not None and not top.per_value:
        final = dialects.parse(
            "SELECT k.user_id, k.score, k.matched_affinities FROM ("
            " SELECT r.user_id, r.score, r.matched_affinities,"
            " ROW_NUMBER() OVER (ORDER BY r.score DESC NULLS LAST, :user_order) AS rn FROM :r) AS k"
            " WHERE k.rn <= :n",
            user_order=user_order, n=top.n, r=r,
        )
    elif top is not None:
        final = dialects.parse(
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
    return scored, dialects.parse(
        "SELECT :segment AS segment, x.user_id, x.score, x.matched_affinities, :built_at AS built_at"
        " FROM (:final) AS x",
        segment=audience.name, built_at=dialects.timestamp(built_at), final=final,
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
        scored, final = _audience_members(audience, index, file, ctx, built_at, f"plan_scored_{index}")
        plan = plan.with_(f"plan_scored_{index}", as_=scored).with_(ctx.members_of(audience.name).name, as_=final)
    return plan


def segment_statements(
    file: AudienceFile, target: Target, built_at: datetime, build_id: str, as_of: datetime | None = None
) -> list[Statement]:
    """Every statement of a segment build, in order (see :func:`.build.build_segments`)."""
    ctx = CompileContext(target, as_of or file.as_of or built_at)
    segment_names = [exp.Literal.string(a.name) for a in file.audiences]
    stamp = dialects.timestamp(built_at)
    members, nxt, events = target.table(MEMBERS), target.table(MEMBERS_NEXT), target.table(EVENTS)
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
    statements.append(Statement("membership events", dialects.parse(
        "INSERT INTO :events (segment, user_id, event, build_id, built_at)"
        " SELECT n.segment, n.user_id, 'entered', :build_id, :stamp FROM :next AS n"
        " WHERE NOT EXISTS (SELECT 1 FROM :members AS o WHERE o.segment = n.segment AND o.user_id = n.user_id)"
        " UNION ALL"
        " SELECT o.segment, o.user_id, 'exited', :build_id, :stamp FROM :members AS o"
        " WHERE o.segment IN :names AND NOT EXISTS"
        " (SELECT 1 FROM :next AS n WHERE n.segment = o.segment AND n.user_id = o.user_id)",
        events=events, next=nxt, members=members, build_id=build_id, stamp=stamp,
        names=exp.Tuple(expressions=segment_names),
    )))
    if target.dialect in dialects.SWAP_BY_RENAME:
        statements.append(Statement(f"drop {MEMBERS}", exp.Drop(tables=[members], kind="TABLE", exists=True)))
        statements.append(Statement(f"rename {MEMBERS_NEXT}", dialects.rename_table(target, MEMBERS_NEXT, MEMBERS)))
    else:
        statements.append(Statement(f"replace {MEMBERS}", exp.delete(members, where=exp.true())))
        statements.append(Statement(f"fill {MEMBERS}", dialects.parse(
            "INSERT INTO :members (segment, user_id, score, matched_affinities, built_at)"
            " SELECT n.segment, n.user_id, n.score, n.matched_affinities, n.built_at FROM :next AS n",
            members=members, next=nxt,
        )))
    statements.append(Statement(f"drop {MEMBERS_NEXT}", exp.Drop(tables=[nxt], kind="TABLE", exists=True)))
    statements.append(Statement(f"drop {WORK_FLAGS}", exp.Drop(tables=[ctx.flags_table()], kind="TABLE", exists=True)))
    sizes_select = dialects.parse(
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
        users=target.table(STG_USERS), members=members, events=events, stamp=stamp, build_id=build_id,
        segments=exp.union(
            *[exp.select(exp.alias_(name.copy(), "segment")) for name in segment_names], distinct=False
        ) if len(segment_names) > 1 else exp.select(exp.alias_(segment_names[0].copy(), "segment")),
    )
    statements += replace_table(target, SIZES, sizes_select, f"table {SIZES}")
    statements.append(Statement(f"append {BUILDS}", dialects.parse(
        "INSERT INTO :builds (build_id, segment, members, entered, exited, built_at)"
        " SELECT s.build_id, s.segment, s.members, s.entered, s.exited, s.built_at FROM :sizes AS s",
        builds=target.table(BUILDS), sizes=target.table(SIZES),
    )))
    overlaps = dialects.parse(
        "SELECT a.segment AS segment_a, b.segment AS segment_b, COALESCE(o.overlap, 0) AS overlap,"
        " CAST(COALESCE(o.overlap, 0) AS DOUBLE) / NULLIF(a.members, 0) AS pct_of_a,"
        " CAST(COALESCE(o.overlap, 0) AS DOUBLE) / NULLIF(b.members, 0) AS pct_of_b,"
        " CAST(COALESCE(o.overlap, 0) AS DOUBLE) / NULLIF(a.members + b.members - COALESCE(o.overlap, 0), 0) AS jaccard,"
        " :stamp AS built_at"
        " FROM :sizes AS a JOIN :sizes AS b ON :a_segment < b.segment"
        " LEFT JOIN (SELECT x.segment AS segment_a, y.segment AS segment_b, COUNT(*) AS overlap"
        " FROM :members AS x JOIN :members AS y ON x.user_id = y.user_id AND :x_segment < y.segment"
        " GROUP BY x.segment, y.segment) AS o ON o.segment_a = a.segment AND o.segment_b = b.segment",
        sizes=target.table(SIZES), members=members, stamp=stamp,
        # pairs are ordered byte-wise in every warehouse (Postgres collations differ)
        a_segment=dialects.binary_order(exp.column("segment", "a"), target.dialect),
        x_segment=dialects.binary_order(exp.column("segment", "x"), target.dialect),
    )
    statements += replace_table(target, OVERLAPS, overlaps, f"table {OVERLAPS}")
    return statements
