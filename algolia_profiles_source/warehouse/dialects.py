"""The few places where warehouses differ, isolated like dbt's dispatched macros.

Everything else is written once, in sqlglot's neutral dialect, and transpiled per warehouse. Each function here
returns a sqlglot expression for one dialect; user values enter only as sqlglot literals.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlglot
from sqlglot import exp

from ..exceptions import ConfigurationError
from .target import Statement, Target


# warehouses whose DDL is transactional: a build or an erasure there is one transaction
TRANSACTIONAL_DDL = ("duckdb", "postgres")


def parse(sql: str, **placeholders: object) -> exp.Expression:
    """Parses a constant template (sqlglot's neutral dialect) and fills ``:name`` placeholders with
    expressions or values (values become literals, never SQL text)."""
    tree = sqlglot.parse_one(sql)
    return exp.replace_placeholders(tree, **placeholders) if placeholders else tree


def json_array_contains(array: exp.Expression, needle: exp.Expression, dialect: str) -> exp.Expression:
    """True when the JSON array column ``array`` (a list of strings, as dlt stores lists) holds ``needle``."""
    if dialect == "duckdb":
        return exp.func("json_contains", array, exp.func("to_json", needle))
    if dialect == "postgres":
        # dlt stores JSON as jsonb; `@>` with a scalar tests array membership
        return exp.JSONBContains(this=array, expression=exp.func("to_jsonb", exp.cast(needle, "TEXT")))
    if dialect == "bigquery":
        return sqlglot.parse_one(
            "needle IN UNNEST(JSON_VALUE_ARRAY(arr))", read="bigquery"
        ).transform(lambda n: _swap(n, {"needle": needle, "arr": array}))
    if dialect == "snowflake":
        # dlt stores JSON as VARIANT; ARRAY_CONTAINS wants an ARRAY
        return exp.func(
            "ARRAY_CONTAINS", exp.cast(needle, "VARIANT"), exp.cast(array, "ARRAY"), dialect="snowflake"
        )
    raise ConfigurationError(f"no JSON array membership for dialect {dialect!r}")


def percentile(column: exp.Expression, fraction: float, dialect: str) -> exp.Expression:
    """Continuous percentile as an aggregate (BigQuery: approximate, its only aggregate form)."""
    if dialect == "duckdb":
        return exp.func("quantile_cont", column, exp.Literal.number(fraction))
    if dialect == "bigquery":
        bucket = int(round(fraction * 100))
        return sqlglot.parse_one(
            f"APPROX_QUANTILES(col, 100)[OFFSET({bucket})]", read="bigquery"
        ).transform(lambda n: _swap(n, {"col": column}))
    # postgres, snowflake: the ordered-set aggregate
    return exp.WithinGroup(
        this=exp.Anonymous(this="PERCENTILE_CONT", expressions=[exp.Literal.number(fraction)]),
        expression=exp.Order(expressions=[exp.Ordered(this=column, nulls_first=False)]),
    )


def bit_or_agg(column: exp.Expression, dialect: str) -> exp.Expression:
    """The bitwise-OR aggregate (Snowflake: BITORAGG, an alias of BITOR_AGG). Spelled out rather
    than left to sqlglot, whose names for it changed across the versions we support."""
    return exp.Anonymous(this="BITORAGG" if dialect == "snowflake" else "BIT_OR", expressions=[column])


def bit_and(left: exp.Expression, right: exp.Expression, dialect: str) -> exp.Expression:
    """``left & right`` (Snowflake has no operator: BITAND)."""
    if dialect == "snowflake":
        return exp.Anonymous(this="BITAND", expressions=[left, right])
    return exp.BitwiseAnd(this=left, expression=right)


TEMPORARY_TABLES = ("duckdb", "postgres")


def work_table(target: Target, name: str) -> exp.Table:
    """Where a build's scratch table lives: a session-temporary table where the warehouse has them
    in plain SQL (no disk writes, gone with the connection), else a table in the dataset."""
    if target.dialect in TEMPORARY_TABLES:
        return exp.to_table(name)
    return target.table(name)


def create_work_table(target: Target, name: str, select: exp.Expression) -> exp.Expression:
    properties = (
        exp.Properties(expressions=[exp.TemporaryProperty()]) if target.dialect in TEMPORARY_TABLES else None
    )
    return exp.Create(this=work_table(target, name), kind="TABLE", expression=select, properties=properties)


# Where the new members replace the old by renaming their table instead of copying every row.
# Postgres binds views to the table (a customer's view on segment_members would block the drop),
# BigQuery and Snowflake attach grants to it (a drop would revoke marketing's access): they copy.
SWAP_BY_RENAME = ("duckdb",)


def rename_table(target: Target, name: str, new_name: str) -> exp.Expression:
    """``ALTER TABLE <dataset>.name RENAME TO new_name`` (the new name stays in the same schema)."""
    return exp.Alter(
        this=target.table(name), kind="TABLE",
        actions=[exp.AlterRename(this=exp.to_table(new_name))],
    )


# Where clustering cuts what a query scans: BigQuery bills the bytes of the blocks it reads and
# prunes blocks by cluster columns; Snowflake prunes micro-partitions by its clustering key.
CLUSTERED = ("bigquery", "snowflake")


def cluster_properties(columns: tuple[str, ...], dialect: str) -> exp.Properties | None:
    """``CLUSTER BY columns`` for a ``CREATE TABLE`` in warehouses that reward it, else nothing."""
    if not columns or dialect not in CLUSTERED:
        return None
    return exp.Properties(expressions=[exp.ClusterProperty(expressions=[exp.column(c) for c in columns])])


def binary_order(column: exp.Expression, dialect: str) -> exp.Expression:
    """Orders text byte-wise, like DuckDB, BigQuery and Snowflake by default (Postgres needs C)."""
    if dialect == "postgres":
        return exp.Collate(this=column, expression=exp.Identifier(this="C", quoted=True))
    return column


def timestamp(value: datetime) -> exp.Expression:
    """A UTC timestamp-with-time-zone literal."""
    text = value.astimezone(timezone.utc).isoformat()
    return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMPTZ"))


def _swap(node: exp.Expression, mapping: dict[str, exp.Expression]) -> exp.Expression:
    if isinstance(node, exp.Column) and not node.table and node.name in mapping:
        return mapping[node.name].copy()
    return node


def create_if_missing(
    target: Target, name: str, columns: str, cluster_by: tuple[str, ...] = ()
) -> Statement:
    """``CREATE TABLE IF NOT EXISTS`` the dataset's table ``name`` with ``columns`` (neutral SQL),
    clustered by ``cluster_by`` where the warehouse bills or prunes by clustering."""
    tree = parse(f"CREATE TABLE IF NOT EXISTS placeholder_table ({columns})")
    tree.set("this", exp.Schema(this=target.table(name), expressions=tree.this.expressions))
    tree.set("properties", cluster_properties(cluster_by, target.dialect))
    return Statement(f"create {name} if missing", tree)
