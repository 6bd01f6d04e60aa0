"""A rule as a condition on the user row ``u``: flags bits, profile columns, membership of another
audience, a change in the affinity history; and the suppression lists as conditions."""

from __future__ import annotations

from sqlglot import exp

from ...tables import HISTORY, VALID_FROM
from ...warehouse import dialects
from ..audience import ABSENT, AffinityRule, Audience, AudienceRule, HistoryRule, ProfileRule, Rule, ScoreRange, Suppression
from ..models import table_ref, valid_at
from .context import CompileContext
from .flags import any_bit, in_range


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
            conditions += in_range(c(score), state)
    # before the history's first load nothing is known (not "absent"): then must be inside it
    first = exp.select(exp.func("MIN", exp.column(VALID_FROM, "k"))).from_(table_ref(ctx.target, HISTORY, "k"))
    conditions.append(exp.LTE(this=exp.Subquery(this=first), expression=then.copy()))
    changed = exp.select(c("user_id")).from_(pairs.subquery("c")).where(exp.and_(*conditions))
    return exp.column("user_id", "u").isin(query=changed)


def member_of(ctx: CompileContext, audience: str, user: exp.Expression) -> exp.Expression:
    return exp.Exists(this=dialects.parse(
        "SELECT 1 FROM :members AS m WHERE m.segment = :segment AND m.user_id = :user",
        members=ctx.members_of(audience), segment=audience, user=user,
    ))


def rule_predicate(rule: Rule, ctx: CompileContext) -> exp.Expression:
    """A condition on the user row ``u`` that is true when the user matches ``rule``."""
    user = exp.column("user_id", "u")
    if isinstance(rule, AffinityRule):
        return any_bit([rule], ctx, ctx.flag_alias)
    if isinstance(rule, ProfileRule):
        parts: list[exp.Expression] = []
        if rule.updated_within_days is not None:
            parts.append(exp.column("last_updated_at", "u") >= ctx.since(rule.updated_within_days))
        if rule.types:
            parts.append(exp.column("type", "u").isin(*[exp.Literal.string(t) for t in rule.types]))
        # a missing type or timestamp never matches, also under `none` (NOT NULL is not true)
        return exp.func("COALESCE", exp.paren(exp.and_(*parts)), exp.false())
    if isinstance(rule, AudienceRule):
        return member_of(ctx, rule.audience, user)
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


def suppressed(suppression: Suppression, ctx: CompileContext) -> list[exp.Expression]:
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
