"""Running the models and segment builds inside the destination, through dlt's SQL client.

The whole build is one transaction where the warehouse has transactional DDL (DuckDB, Postgres),
so a failed build leaves the previous segments in place. BigQuery and Snowflake commit DDL
statement by statement; there a failed build is repaired by the next one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Union

import sqlglot
from sqlglot import exp

from ..exceptions import ConfigurationError
from . import dialects
from .compiler import (
    AFFINITIES,
    CONFIG,
    SIZES,
    Statement,
    Target,
    USERS,
    model_statements,
    segment_statements,
)
from .definitions import AudienceFile, load_definitions, parse_definitions

logger = logging.getLogger(__name__)

TRANSACTIONAL = ("duckdb", "postgres")


@dataclass
class BuildResult:
    """What a segment build produced."""

    build_id: str
    built_at: datetime
    sizes: List[Dict[str, Any]] = field(default_factory=list)
    statements: int = 0


def pipeline_target(pipeline: Any, client: Any) -> Target:
    """The dialect and table naming of a pipeline's destination dataset."""
    dialect = dialects.dialect_for_destination(pipeline.destination.destination_type)

    def table(name: str) -> exp.Table:
        return sqlglot.parse_one(client.make_qualified_table_name(name), into=exp.Table, dialect=dialect)

    def external_table(name: str) -> exp.Table:
        return table(name) if "." not in name else exp.to_table(name, dialect=dialect)

    return Target(dialect, table, external_table)


def static_target(dialect: str, dataset: str, catalog: Optional[str] = None) -> Target:
    """A target for rendering SQL without a connection (golden files, ``segments sql``)."""

    def table(name: str) -> exp.Table:
        return exp.table_(name, db=dataset, catalog=catalog)

    def external_table(name: str) -> exp.Table:
        return table(name) if "." not in name else exp.to_table(name, dialect=dialect)

    return Target(dialect, table, external_table)


def known_affinities(pipeline: Any) -> Optional[Set[str]]:
    """Affinity names that exist: ``personalization_config`` attributes plus loaded names."""
    tables = pipeline.default_schema.tables if pipeline.default_schema_name else {}
    if AFFINITIES not in tables:
        return None
    names: Set[str] = set()
    with pipeline.sql_client() as client:
        target = pipeline_target(pipeline, client)
        rows = client.execute_sql(
            exp.select("name").distinct().from_(target.table(AFFINITIES)).sql(target.dialect)
        )
        names.update(r[0] for r in rows if r[0])
        if CONFIG in tables:
            for (value,) in client.execute_sql(
                exp.select("affinities").from_(target.table(CONFIG)).sql(target.dialect)
            ):
                if isinstance(value, str):
                    value = json.loads(value)
                names.update(value or [])
    return names


def load_audiences(pipeline: Any, source: Union[str, Path, AudienceFile, Dict[str, Any]]) -> AudienceFile:
    """Validates an audience file (path, plain data or already parsed) against the loaded data."""
    if isinstance(source, AudienceFile):
        return source
    known = known_affinities(pipeline)
    if isinstance(source, dict):
        return parse_definitions(source, known)
    return load_definitions(source, known)


def build_models(pipeline: Any) -> int:
    """(Re)builds the staging views, affinity_catalog and user_top_affinities; returns statements run."""
    _require_profiles(pipeline)
    with pipeline.sql_client() as client:
        target = pipeline_target(pipeline, client)
        has_config = CONFIG in pipeline.default_schema.tables
        return _run(client, target, model_statements(target, has_config))


def build_segments(
    pipeline: Any,
    audiences: Union[str, Path, AudienceFile, Dict[str, Any]],
    as_of: Optional[datetime] = None,
    models: bool = True,
) -> BuildResult:
    """Validates the audiences, then builds the models (optional) and every audience in the destination."""
    _require_profiles(pipeline)
    file = load_audiences(pipeline, audiences)
    built_at = datetime.now(timezone.utc)
    build_id = built_at.strftime("%Y%m%dT%H%M%S%fZ")
    result = BuildResult(build_id, built_at)
    with pipeline.sql_client() as client:
        target = pipeline_target(pipeline, client)
        statements: List[Statement] = []
        if models:
            statements += model_statements(target, CONFIG in pipeline.default_schema.tables)
        statements += segment_statements(file, target, built_at, build_id, as_of)
        result.statements = _run(client, target, statements)
        result.sizes = read_table(client, target, SIZES, order_by="segment")
    return result


def read_table(client: Any, target: Target, name: str, order_by: Optional[str] = None, where: Optional[exp.Expression] = None) -> List[Dict[str, Any]]:
    """Rows of a dataset table as dicts."""
    query = exp.select("*").from_(target.table(name))
    if where is not None:
        query = query.where(where)
    if order_by:
        query = query.order_by(order_by)
    with client.execute_query(query.sql(target.dialect)) as cursor:
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _run(client: Any, target: Target, statements: Sequence[Statement]) -> int:
    def execute() -> None:
        for statement in statements:
            sql = target.render(statement.tree)
            logger.debug("%s: %s", statement.label, sql)
            started = time.perf_counter()
            client.execute_sql(sql)
            logger.debug("%s took %.3f s", statement.label, time.perf_counter() - started)

    if target.dialect in TRANSACTIONAL:
        with client.begin_transaction():
            execute()
    else:
        execute()
    return len(statements)


def _require_profiles(pipeline: Any) -> None:
    from ..pipeline import restore_state

    restore_state(pipeline)  # a runner without the pipeline's folder still builds
    tables = pipeline.default_schema.tables if pipeline.default_schema_name else {}
    if USERS not in tables or AFFINITIES not in tables:
        raise ConfigurationError(
            f"pipeline {pipeline.pipeline_name!r} has not loaded profiles yet (no `users` /"
            " `user_affinities` tables): run `algolia-profiles load` (or the demo) first"
        )
