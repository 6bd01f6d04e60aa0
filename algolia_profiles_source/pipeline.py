"""Loading the profiles: runs the source (:func:`algolia_profiles`) in a dlt pipeline, under the
pipeline's lock, and marks deleted users after a reconcile. The function behind ``algolia-profiles
load``, the demo and ``api.load``; :mod:`.load.pipeline` makes the pipeline and runs a source in it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from dlt.common.pipeline import LoadInfo

from . import algolia_profiles
from .exceptions import ApiError
from .load.duckdb import create_duckdb_file, duckdb_path, waiting_for_duckdb_lock
from .load.pipeline import (
    DEFAULT_DATASET_NAME,
    DEFAULT_PIPELINE_NAME,
    make_pipeline,
    row_counts,
    run_source,
)
from .load.reconcile import check_min_seen_share, mark_deleted
from .load.state import last_run
from .load.working_dir import drop_leftover_extracted_packages, exclusive

__all__ = ["DEFAULT_DATASET_NAME", "DEFAULT_PIPELINE_NAME", "LoadResult", "load_profiles", "make_pipeline", "run_source"]

logger = logging.getLogger(__name__)


@dataclass
class LoadResult:
    """What a load did: dlt's load info, the run's counters and the tables' row counts."""

    pipeline: Any
    load_info: LoadInfo
    run: dict[str, Any] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)

    @property
    def database(self) -> str | None:
        """The DuckDB file loaded into (None for other destinations)."""
        return duckdb_path(self.pipeline)


def load_profiles(
    pipeline: Any, reconcile: bool = False, min_seen_share: float = 0.5, **source_args: Any
) -> LoadResult:
    """Runs ``algolia_profiles(**source_args)`` in ``pipeline``; returns counts for a summary.

    With ``reconcile``, the run walks every profile and then marks the users it did not see as
    deleted (see :mod:`.reconcile`), unless it saw fewer than ``min_seen_share`` of the live users.
    """
    min_seen_share = check_min_seen_share(min_seen_share)
    source = algolia_profiles(reconcile=reconcile, **source_args)
    with exclusive(pipeline):
        create_duckdb_file(pipeline)  # before a pending package's load connects
        drop_leftover_extracted_packages(pipeline)
        if pipeline.has_pending_data:
            # a failed or killed run left a package: dlt finishes it and would ignore new data
            logger.warning("finishing the load package a previous run left pending")
            waiting_for_duckdb_lock(pipeline.run)
        load_info = run_source(pipeline, source)
        run = last_run(pipeline)
        if run.get("load_id") not in load_info.loads_ids:
            raise ApiError(
                "the run did not load a new walk (dlt only finished pending packages); run again"
            )
        if reconcile:
            result = waiting_for_duckdb_lock(
                lambda: mark_deleted(pipeline, run["load_id"], min_seen_share=min_seen_share)
            )
            run["deleted"] = result.deleted
    return LoadResult(
        pipeline=pipeline,
        load_info=load_info,
        run=run,
        row_counts=waiting_for_duckdb_lock(lambda: row_counts(pipeline)),
    )
