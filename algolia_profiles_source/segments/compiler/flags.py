"""The per-user flags pass: one scan of the affinities that says, per live user, which affinity
rules some row of the user matches, and per audience the best score and number of matched rows.

Every audience is then a filter on the flags table (:mod:`.members`), not another scan.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp

from ...tables import AFFINITIES
from ...warehouse import dialects
from ..audience import AffinityRule, AudienceFile, ScoreRange
from ..models import table_ref
from .context import CompileContext

# the columns of a user that rules read, copied into the flags table
USER_COLUMNS = ("user_id", "type", "last_updated_at")


def score_column(index: int) -> str:
    return f"score_{index}"


def matched_column(index: int) -> str:
    return f"matched_{index}"


# Rule flags are bits of BIGINT mask columns: one aggregate per 62 rules instead of one per rule
# (the per-user pass costs about one aggregate's time per aggregate). 62 keeps clear of the sign bit.
MASK_BITS = 62


def mask_column(chunk: int) -> str:
    return f"mask_{chunk}"


def _mask_bits(rules: Iterable[AffinityRule], ctx: CompileContext) -> dict[int, int]:
    """Per mask column, the bits of ``rules``."""
    bits: dict[int, int] = {}
    for rule in rules:
        chunk, bit = divmod(ctx.flags[rule], MASK_BITS)
        bits[chunk] = bits.get(chunk, 0) | (1 << bit)
    return bits


def any_bit(rules: Iterable[AffinityRule], ctx: CompileContext, alias: str, nullable: bool = True) -> exp.Expression:
    """True when the row ``alias`` has the flag of one of ``rules`` set (NULL masks count as 0)."""
    def mask(chunk: int) -> exp.Expression:
        column = exp.column(mask_column(chunk), alias)
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
        row_masks.append(exp.alias_(exp.cast(total, "BIGINT"), mask_column(chunk)))
    rows = (
        exp.select(exp.column("user_id", "a"), exp.column("score", "a"), *row_masks)
        .from_(table_ref(target, AFFINITIES, "a"))
        .where(_candidate_rows(list(ctx.flags)))
    )
    columns: list[exp.Expression] = [
        exp.alias_(dialects.bit_or_agg(exp.column(mask_column(chunk), "c"), target.dialect), mask_column(chunk))
        for chunk in range(chunks)
    ]
    for index, audience in enumerate(file.audiences):
        positive = audience.positive_affinity_rules()
        if not positive:
            continue
        hit = any_bit(positive, ctx, "c", nullable=False)
        columns.append(exp.alias_(exp.func("MAX", exp.Case(ifs=[exp.If(
            this=hit.copy(), true=exp.column("score", "c"))])), score_column(index)))
        columns.append(exp.alias_(exp.func("SUM", exp.Case(ifs=[exp.If(
            this=hit.copy(), true=exp.Literal.number(1))], default=exp.Literal.number(0))), matched_column(index)))
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


def in_range(column: exp.Expression, score: ScoreRange) -> list[exp.Expression]:
    parts: list[exp.Expression] = []
    if score.low is not None:
        cls = exp.GTE if score.low_inclusive else exp.GT
        parts.append(cls(this=column.copy(), expression=exp.Literal.number(score.low)))
    if score.high is not None:
        cls = exp.LTE if score.high_inclusive else exp.LT
        parts.append(cls(this=column.copy(), expression=exp.Literal.number(score.high)))
    return parts


def affinity_condition(rule: AffinityRule, ctx: CompileContext, alias: str = "a") -> exp.Expression:
    """The condition one affinity row (``alias``) must meet for ``rule``."""
    col = lambda name: exp.column(name, alias)  # noqa: E731
    parts: list[exp.Expression] = [col("name").eq(exp.Literal.string(rule.name))]
    if len(rule.values) == 1:
        parts.append(col("value").eq(exp.Literal.string(rule.values[0])))
    elif rule.values:
        parts.append(col("value").isin(*[exp.Literal.string(v) for v in rule.values]))
    if rule.score is not None:
        parts += in_range(col("score"), rule.score)
    if rule.indices:
        parts.append(exp.or_(*[
            dialects.json_array_contains(col("indices"), exp.Literal.string(i), ctx.target.dialect)
            for i in rule.indices
        ]))
    if rule.updated_within_days is not None:
        parts.append(col("last_updated_at") >= ctx.since(rule.updated_within_days))
    return exp.and_(*parts)
