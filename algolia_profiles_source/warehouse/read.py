"""Reading results back from any destination: the one read path of the CLI, the report, exports,
``status`` and the Python API.

Rows come back the same everywhere: column names as this package wrote them (Snowflake returns
unquoted identifiers upper-cased), whole numbers as ``int`` and other numbers as ``float`` (Snowflake
and BigQuery return ``Decimal``), timestamps as UTC-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
from sqlglot import exp

from ..exceptions import TableNotFoundError
from .target import Target, pipeline_target


class Dataset:
    """A pipeline's dataset, open for reading through one connection (see :func:`open_dataset`)."""

    def __init__(self, pipeline: Any, client: Any) -> None:
        self.pipeline = pipeline
        self.client = client
        self.target: Target = pipeline_target(pipeline, client)
        self._fold = _identifier_folding(pipeline)

    def table(self, name: str) -> exp.Table:
        """The dataset's table ``name``, qualified for this destination."""
        return self.target.table(name)

    def column(self, name: str, table: str | None = None) -> exp.Column:
        """The column ``name`` of a table someone else made (a customers table), named as the rows
        of this package name it: quoted as given, except that on a destination that folds unquoted
        identifiers to upper case (Snowflake) a lower-case name is the upper-cased column there, as
        ``CREATE TABLE t (user_token ...)`` (and dlt) store it: Snowflake matches a quoted name
        exactly, so ``"user_token"`` would not find the column ``USER_TOKEN``."""
        if self._fold and name == name.lower():
            name = name.upper()
        # only the column is quoted: a table alias stays as written, like every alias of a query
        return exp.column(exp.to_identifier(name, quoted=True), table)

    def rows(
        self, query: exp.Expression | str, order_by: str | None = None, where: exp.Expression | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a query, or of the dataset's table named ``query``, as dicts."""
        with self._reading(query, order_by=order_by, where=where) as cursor:
            columns = [self._name(c[0]) for c in cursor.description]
            return [dict(zip(columns, map(_value, row))) for row in cursor.fetchall()]

    def arrow(self, query: exp.Expression | str) -> pa.Table:
        """The result of a query, or the dataset's table named ``query``, as an Arrow table."""
        with self._reading(query) as cursor:
            columns = [self._name(c[0]) for c in cursor.description]
            table = cursor.arrow()
        if table is None:  # no rows
            return pa.table({c: pa.array([], pa.null()) for c in columns})
        return table.rename_columns(columns)

    def _sql(self, query: exp.Expression | str, order_by: str | None = None,
             where: exp.Expression | None = None) -> str:
        if isinstance(query, str):
            query = exp.select("*").from_(self.table(query))
            if where is not None:
                query = query.where(where)
            if order_by:
                query = query.order_by(order_by)
        return query.sql(self.target.dialect)

    @contextmanager
    def _reading(self, query: exp.Expression | str, **parts: Any) -> Iterator[Any]:
        from dlt.destinations.exceptions import DatabaseUndefinedRelation

        try:
            with self.client.execute_query(self._sql(query, **parts)) as cursor:
                yield cursor
        except DatabaseUndefinedRelation:
            name = query if isinstance(query, str) else ", ".join(t.name for t in query.find_all(exp.Table))
            where = f"{self.pipeline.destination.destination_name}:{self.pipeline.dataset_name}"
            raise TableNotFoundError(name, where) from None

    def _name(self, column: str) -> str:
        return column.lower() if self._fold and column == column.upper() else column


@contextmanager
def open_dataset(pipeline: Any) -> Iterator[Dataset]:
    """The pipeline's dataset, open for the reads of one command."""
    with pipeline.sql_client() as client:
        yield Dataset(pipeline, client)


def read_rows(pipeline: Any, table: str, order_by: str | None = None,
              where: exp.Expression | None = None) -> list[dict[str, Any]]:
    """Rows of one table of the pipeline's dataset (a connection of its own)."""
    with open_dataset(pipeline) as dataset:
        return dataset.rows(table, order_by, where)


def _identifier_folding(pipeline: Any) -> bool:
    """Whether the destination folds unquoted identifiers to upper case (Snowflake)."""
    try:
        return pipeline.destination.capabilities().casefold_identifier is str.upper
    except Exception:  # noqa: BLE001 - a destination without capabilities folds nothing
        return False


def _value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value
