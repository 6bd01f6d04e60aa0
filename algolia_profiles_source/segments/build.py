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
from typing import Any
from collections.abc import Sequence

from sqlglot import exp

from ..exceptions import ConfigurationError, TableNotFoundError
from ..load.state import restore_state
from ..tables import AFFINITIES, CONFIG, SIZES, USERS
from ..warehouse.read import Dataset, open_dataset
from ..warehouse.target import Statement
from .compiler import segment_statements
from .definitions import AudienceFile, load_definitions, parse_definitions
from .models import model_statements

logger = logging.getLogger(__name__)

TRANSACTIONAL = ("duckdb", "postgres")


@dataclass
class BuildResult:
    """What a segment build produced."""

    build_id: str
    built_at: datetime
    sizes: list[dict[str, Any]] = field(default_factory=list)
    statements: int = 0


def known_affinities(pipeline: Any) -> set[str] | None:
    """Affinity names that exist: ``personalization_config`` attributes plus loaded names."""
    tables = pipeline.default_schema.tables if pipeline.default_schema_name else {}
    if AFFINITIES not in tables:
        return None
    names: set[str] = set()
    with open_dataset(pipeline) as dataset:
        rows = dataset.rows(exp.select("name").distinct().from_(dataset.table(AFFINITIES)))
        names.update(row["name"] for row in rows if row["name"])
        if CONFIG in tables:
            for row in dataset.rows(exp.select("affinities").from_(dataset.table(CONFIG))):
                value = row["affinities"]
                names.update((json.loads(value) if isinstance(value, str) else value) or [])
    return names


def load_audiences(pipeline: Any, source: str | Path | AudienceFile | dict[str, Any]) -> AudienceFile:
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
    with open_dataset(pipeline) as dataset:
        has_config = CONFIG in pipeline.default_schema.tables
        return _run(dataset, model_statements(dataset.target, has_config))


def build_segments(
    pipeline: Any,
    audiences: str | Path | AudienceFile | dict[str, Any],
    as_of: datetime | None = None,
    models: bool = True,
    retire: bool = False,
) -> BuildResult:
    """Validates the audiences, then builds the models (optional) and every audience in the destination.

    An audience the last build made that ``audiences`` no longer defines is retired: its members
    leave ``segment_members`` and it writes no more events. That happens only with ``retire=True``;
    otherwise the build refuses before writing anything, naming them.
    """
    _require_profiles(pipeline)
    file = load_audiences(pipeline, audiences)
    built_at = datetime.now(timezone.utc)
    build_id = built_at.strftime("%Y%m%dT%H%M%S%fZ")
    result = BuildResult(build_id, built_at)
    with open_dataset(pipeline) as dataset:
        if not retire:
            _refuse_to_retire_silently(dataset, {audience.name for audience in file.audiences})
        target = dataset.target
        statements: list[Statement] = []
        if models:
            statements += model_statements(target, CONFIG in pipeline.default_schema.tables)
        statements += segment_statements(file, target, built_at, build_id, as_of)
        result.statements = _run(dataset, statements)
        result.sizes = dataset.rows(SIZES, order_by="segment")
    return result


def _refuse_to_retire_silently(dataset: Dataset, defined: set[str]) -> None:
    try:
        built = {row["segment"] for row in dataset.rows(exp.select("segment").from_(dataset.table(SIZES)))}
    except TableNotFoundError:  # the first build retires nothing
        return
    retiring = sorted(built - defined)
    if retiring:
        raise ConfigurationError(
            f"this build would retire {len(retiring)} audience(s) the last build made, which the file"
            f" no longer defines: {', '.join(retiring)}; their members would leave segment_members."
            " Pass --retire (retire=True) to confirm, or keep them in the file"
        )


def _run(dataset: Dataset, statements: Sequence[Statement]) -> int:
    client, target = dataset.client, dataset.target

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
    restore_state(pipeline)  # a runner without the pipeline's folder still builds
    tables = pipeline.default_schema.tables if pipeline.default_schema_name else {}
    if USERS not in tables or AFFINITIES not in tables:
        raise ConfigurationError(
            f"pipeline {pipeline.pipeline_name!r} has not loaded profiles yet (no `users` /"
            " `user_affinities` tables): run `algolia-profiles load` (or the demo) first"
        )
