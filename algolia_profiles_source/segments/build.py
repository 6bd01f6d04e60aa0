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
from ..tables import AFFINITIES, CONFIG, HISTORY, SIZES, USERS
from ..warehouse import dialects
from ..warehouse.read import Dataset, open_dataset
from ..warehouse.target import Statement, Target
from .checks import DEFAULT_SIZE_CHANGE, size_warnings
from .compiler import plan_select, segment_statements
from .definitions import AudienceFile, load_definitions, parse_definitions
from .models import model_statements

logger = logging.getLogger(__name__)



@dataclass
class BuildResult:
    """What a segment build produced. ``warnings``: affinity values no loaded profile holds,
    audiences that came out empty or changed size by more than the threshold since the last build."""

    build_id: str
    built_at: datetime
    sizes: list[dict[str, Any]] = field(default_factory=list)
    statements: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class PlanResult:
    """What a build would write, computed without writing: per audience (file order) ``segment``,
    ``members``, ``entered``, ``exited``; the audiences it would retire with their current size;
    and the warnings the build would give."""

    sizes: list[dict[str, Any]] = field(default_factory=list)
    retiring: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Catalog:
    """What the loaded data holds: the affinity names that exist (``personalization_config``
    attributes and loaded names) and, per loaded name, its values."""

    names: frozenset[str]
    values: dict[str, frozenset[str]]


def loaded_catalog(pipeline: Any) -> Catalog | None:
    """The catalog of the loaded profiles, or None before the first load."""
    tables = _tables(pipeline)
    if AFFINITIES not in tables:
        return None
    values: dict[str, set[str]] = {}
    names: set[str] = set()
    with open_dataset(pipeline) as dataset:
        for row in dataset.rows(exp.select("name", "value").distinct().from_(dataset.table(AFFINITIES))):
            if row["name"]:
                values.setdefault(row["name"], set()).add(row["value"])
        names.update(values)
        if CONFIG in tables:
            for row in dataset.rows(exp.select("affinities").from_(dataset.table(CONFIG))):
                value = row["affinities"]
                names.update((json.loads(value) if isinstance(value, str) else value) or [])
    return Catalog(frozenset(names), {name: frozenset(held) for name, held in values.items()})


def load_audiences(
    pipeline: Any, source: str | Path | AudienceFile | dict[str, Any], strict: bool = False
) -> AudienceFile:
    """Validates an audience file (path, plain data or already parsed) against the loaded data:
    unknown affinity names are errors; values no loaded profile holds are warnings, or errors
    when ``strict``."""
    if isinstance(source, AudienceFile):
        file = source
    else:
        catalog = loaded_catalog(pipeline)
        known = catalog.names if catalog else None
        values = catalog.values if catalog else None
        if isinstance(source, dict):
            file = parse_definitions(source, known, known_values=values, strict=strict)
        else:
            file = load_definitions(source, known, known_values=values, strict=strict)
    if file.uses_history and HISTORY not in _tables(pipeline):
        raise ConfigurationError(
            f"{file.source}: its history rules read {HISTORY}, which this pipeline has not loaded: load with"
            " history = true (SOURCES__ALGOLIA_PROFILES__HISTORY=true) first"
        )
    return file


def _tables(pipeline: Any) -> dict[str, Any]:
    return pipeline.default_schema.tables if pipeline.default_schema_name else {}


def _models(pipeline: Any, target: Target) -> list[Statement]:
    """The model statements for what the pipeline has loaded (the trend models need the history)."""
    tables = _tables(pipeline)
    return model_statements(target, CONFIG in tables, HISTORY in tables)


def build_models(pipeline: Any) -> int:
    """(Re)builds the staging views, affinity_catalog and user_top_affinities; returns statements run."""
    _require_profiles(pipeline)
    with open_dataset(pipeline) as dataset:
        return _run(dataset, _models(pipeline, dataset.target))


def build_segments(
    pipeline: Any,
    audiences: str | Path | AudienceFile | dict[str, Any],
    as_of: datetime | None = None,
    models: bool = True,
    retire: bool = False,
    strict: bool = False,
    size_change: float = DEFAULT_SIZE_CHANGE,
) -> BuildResult:
    """Validates the audiences, then builds the models (optional) and every audience in the destination.

    An audience the last build made that ``audiences`` no longer defines is retired: its members
    leave ``segment_members`` and it writes no more events. That happens only with ``retire=True``;
    otherwise the build refuses before writing anything, naming them. ``strict``: affinity values
    no loaded profile holds are errors, not warnings. ``size_change``: the relative change in size
    since the last build (0.5 = 50%) beyond which an audience is reported in ``warnings``.
    """
    _require_profiles(pipeline)
    file = load_audiences(pipeline, audiences, strict)
    built_at = datetime.now(timezone.utc)
    build_id = built_at.strftime("%Y%m%dT%H%M%S%fZ")
    result = BuildResult(build_id, built_at, warnings=list(file.warnings))
    with open_dataset(pipeline) as dataset:
        previous = _current_sizes(dataset)
        if not retire:
            _refuse_to_retire_silently(previous, {audience.name for audience in file.audiences})
        target = dataset.target
        statements: list[Statement] = []
        if models:
            statements += _models(pipeline, target)
        statements += segment_statements(file, target, built_at, build_id, as_of)
        result.statements = _run(dataset, statements)
        result.sizes = dataset.rows(SIZES, order_by="segment")
    result.warnings += size_warnings(result.sizes, previous, size_change)
    return result


def plan_segments(
    pipeline: Any,
    audiences: str | Path | AudienceFile | dict[str, Any],
    as_of: datetime | None = None,
    strict: bool = False,
    size_change: float = DEFAULT_SIZE_CHANGE,
) -> PlanResult:
    """What :func:`build_segments` with the same arguments would write, computed by one read-only
    query: each audience's size and how many members would enter and exit against the current
    build, the audiences it would retire, and its warnings. Writes nothing. Without ``as_of`` (in
    the call or the file), "within N days" counts back from now, as the build's own does."""
    _require_profiles(pipeline)
    file = load_audiences(pipeline, audiences, strict)
    result = PlanResult(warnings=list(file.warnings))
    with open_dataset(pipeline) as dataset:
        previous = _current_sizes(dataset)
        # every build writes segment_sizes and segment_members together
        query = plan_select(file, dataset.target, datetime.now(timezone.utc), as_of, current_members=bool(previous))
        result.sizes = dataset.rows(query)
    defined = {audience.name for audience in file.audiences}
    result.retiring = {name: size for name, size in sorted(previous.items()) if name not in defined}
    result.warnings += size_warnings(result.sizes, previous, size_change)
    return result


def _current_sizes(dataset: Dataset) -> dict[str, int]:
    """Members per audience of the last build (none before the first build)."""
    try:
        return {row["segment"]: row["members"]
                for row in dataset.rows(exp.select("segment", "members").from_(dataset.table(SIZES)))}
    except TableNotFoundError:
        return {}


def _refuse_to_retire_silently(built: dict[str, int], defined: set[str]) -> None:
    retiring = sorted(set(built) - defined)
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

    if target.dialect in dialects.TRANSACTIONAL_DDL:
        with client.begin_transaction():
            execute()
    else:
        execute()
    return len(statements)


def _require_profiles(pipeline: Any) -> None:
    restore_state(pipeline)  # a runner without the pipeline's folder still builds
    tables = _tables(pipeline)
    if USERS not in tables or AFFINITIES not in tables:
        raise ConfigurationError(
            f"pipeline {pipeline.pipeline_name!r} has not loaded profiles yet (no `users` /"
            " `user_affinities` tables): run `algolia-profiles load` (or the demo) first"
        )
