"""Where generated SQL runs: a sqlglot dialect and how to name a table of the dataset."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from ..exceptions import ConfigurationError


# a warehouse table named by 1-3 plain identifiers, and a plain column name
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]*(\.[A-Za-z_][A-Za-z0-9_$-]*){0,2}$")
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

# dlt destination type -> sqlglot dialect
DESTINATION_DIALECTS: dict[str, str] = {
    "duckdb": "duckdb",
    "motherduck": "duckdb",
    "postgres": "postgres",
    "bigquery": "bigquery",
    "snowflake": "snowflake",
}


def dialect_for_destination(destination_type: str) -> str:
    """The sqlglot dialect of a dlt destination (``dlt.destinations.duckdb`` -> ``duckdb``)."""
    name = destination_type.rsplit(".", 1)[-1]
    if name not in DESTINATION_DIALECTS:
        raise ConfigurationError(
            f"segments are built in DuckDB, MotherDuck, Postgres, BigQuery or Snowflake; the"
            f" destination {name!r} is not supported yet"
        )
    return DESTINATION_DIALECTS[name]


@dataclass(frozen=True)
class Target:
    """A sqlglot dialect and how to name a table of the dataset (``table``) or any other table
    (``external_table``: ``schema.table`` as written, a bare name inside the dataset)."""

    dialect: str
    table: Callable[[str], exp.Table]
    external_table: Callable[[str], exp.Table]

    def render(self, statement: exp.Expression) -> str:
        return statement.sql(dialect=self.dialect)


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a build, with a label for logs and ``segments sql``."""

    label: str
    tree: exp.Expression


def pipeline_target(pipeline: Any, client: Any) -> Target:
    """The dialect and table naming of a pipeline's destination dataset (``client``: its SQL client)."""
    dialect = dialect_for_destination(pipeline.destination.destination_type)

    def table(name: str) -> exp.Table:
        return sqlglot.parse_one(client.make_qualified_table_name(name), into=exp.Table, dialect=dialect)

    def external_table(name: str) -> exp.Table:
        return table(name) if "." not in name else exp.to_table(name, dialect=dialect)

    return Target(dialect, table, external_table)


def static_target(dialect: str, dataset: str, catalog: str | None = None) -> Target:
    """A target for rendering SQL without a connection (golden files, ``segments sql``)."""

    def table(name: str) -> exp.Table:
        return exp.table_(name, db=dataset, catalog=catalog)

    def external_table(name: str) -> exp.Table:
        return table(name) if "." not in name else exp.to_table(name, dialect=dialect)

    return Target(dialect, table, external_table)
