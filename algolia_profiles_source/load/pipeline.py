"""A dlt pipeline for the profiles: making it (where its files go), running a source in it with
DuckDB's memory bounded for an initial export, and the row counts it loaded."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.pipeline import LoadInfo
from dlt.pipeline.exceptions import PipelineStepFailed

from ..exceptions import ConfigurationError, NothingLoadedError
from ..tables import LOADED_TABLES
from .destination import check_destination, unknown_destination
from .duckdb import (
    bounded_initial_load,
    create_duckdb_file,
    duckdb_credentials,
    out_of_memory,
    waiting_for_duckdb_lock,
)
from .state import last_run

logger = logging.getLogger(__name__)

DEFAULT_PIPELINE_NAME = "algolia_profiles"
DEFAULT_DATASET_NAME = "algolia"


def make_pipeline(
    pipeline_name: str = DEFAULT_PIPELINE_NAME,
    destination: Any = "duckdb",
    dataset_name: str = DEFAULT_DATASET_NAME,
    pipelines_dir: str | None = None,
    duckdb_path: str | None = None,
    workdir: str | None = None,
    create: bool = True,
) -> Any:
    """A dlt pipeline for the profiles (new, or attached to the one with this name).

    ``workdir`` keeps everything in one folder: the pipeline's working files in ``workdir/pipelines``
    and, for DuckDB, the database in ``workdir/<pipeline_name>.duckdb``. ``duckdb_path`` picks the
    DuckDB file explicitly. Without either, dlt's defaults apply (``~/.dlt/pipelines``, and
    ``<pipeline_name>.duckdb`` in the folder of the pipeline's first run). A DuckDB file that does
    not exist yet is created here (:func:`create_duckdb_file`).

    ``create=False`` is for reading what a load wrote: ``workdir`` must exist and the DuckDB file too
    (:class:`NothingLoadedError` otherwise); nothing is created.
    """
    _check_pipeline_name(pipeline_name)
    if destination != "duckdb" and duckdb_path is None:
        check_destination(destination, pipeline_name, dataset_name)  # before any folder is made
    if not create and destination == "duckdb" and duckdb_path is None:
        # before dlt.pipeline, which makes the pipeline's folder (and fixes where its file goes)
        _require_loaded_duckdb(pipeline_name, pipelines_dir, workdir)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        folder = Path(workdir).resolve()  # dlt resolves a relative DuckDB path against the first run's folder
        pipelines_dir = pipelines_dir or str(folder / "pipelines")
        if destination == "duckdb" and duckdb_path is None:
            duckdb_path = str(folder / f"{pipeline_name}.duckdb")
    if duckdb_path is not None:
        destination = _duckdb_destination(duckdb_path, pipeline_name, dataset_name)
    try:
        pipeline = dlt.pipeline(
            pipeline_name=pipeline_name,
            destination=destination,
            dataset_name=dataset_name,
            pipelines_dir=pipelines_dir,
        )
        if destination == "duckdb":
            # dlt's default file (./<pipeline_name>.duckdb, or the configured credentials): hold its
            # credentials too, so run_source can bound the initial load wherever the file is
            path = pipeline.destination_client().config.credentials.database  # resolves, does not connect
            return make_pipeline(pipeline_name, dataset_name=dataset_name, pipelines_dir=pipelines_dir,
                                 duckdb_path=path, create=create)
        if create:
            # before any command connects: DuckDB picks a file's format when it creates the file
            create_duckdb_file(pipeline)
        return pipeline
    except UnknownDestinationModule as error:
        raise unknown_destination(destination) from error


def _check_pipeline_name(pipeline_name: str) -> None:
    """Refuses a name dlt cannot give the pipeline's folder and schema, before either is made."""
    from dlt.common.schema.utils import is_valid_schema_name

    if not isinstance(pipeline_name, str) or not is_valid_schema_name(pipeline_name):
        raise ConfigurationError(
            f"pipeline name {pipeline_name!r} is not valid: use letters, digits and underscores only,"
            " not starting with a digit (at most 64 characters), e.g. algolia_profiles_eu"
        )


def _duckdb_destination(duckdb_path: str, pipeline_name: str, dataset_name: str) -> Any:
    """The DuckDB destination writing to ``duckdb_path``; refuses a file named like the dataset."""
    if Path(duckdb_path).stem == dataset_name:
        # DuckDB names the catalog after the file; a schema of the same name is ambiguous
        raise ConfigurationError(
            f"the DuckDB file {duckdb_path!r} and the dataset {dataset_name!r} share a name:"
            " rename one of them"
        )
    return dlt.destinations.duckdb(credentials=duckdb_credentials(duckdb_path, pipeline_name))


def tables_gone(pipeline_name: str) -> ConfigurationError:
    """The error for a pipeline whose state says it loaded, but whose tables are not there."""
    return ConfigurationError(
        f"pipeline {pipeline_name!r} has loaded before, but its tables are not in the"
        " destination (a deleted DuckDB file, a dropped dataset?): run `algolia-profiles load`"
        " to load the profiles again"
    )


def _require_loaded_duckdb(pipeline_name: str, pipelines_dir: str | None, workdir: str | None) -> None:
    """For a reading command on DuckDB: the folder and the DuckDB file a load made must exist.

    Without a folder, dlt keeps the pipeline in its own data folder and the file in the folder of
    the first run: no pipeline there and no file here means nothing was loaded (a file named in
    dlt's configuration is left to dlt).
    """
    if workdir is not None:
        require_folder(workdir)
        path = Path(workdir) / f"{pipeline_name}.duckdb"
        state = Path(pipelines_dir or Path(workdir) / "pipelines") / pipeline_name
    else:
        from dlt.common.pipeline import get_dlt_pipelines_dir

        state = Path(pipelines_dir or get_dlt_pipelines_dir()) / pipeline_name
        if state.exists() or _configured_duckdb_file(pipeline_name):
            return
        path = Path(f"{pipeline_name}.duckdb").resolve()
    if not path.exists():
        if (state / "state.json").exists():
            raise tables_gone(pipeline_name)
        raise NothingLoadedError(
            f"there is no DuckDB file {path}: run `algolia-profiles load` (or give the --dir of a"
            " folder a load used)"
        )


def _configured_duckdb_file(pipeline_name: str) -> bool:
    """Whether dlt's configuration names the DuckDB file (pipeline-scoped or not)."""
    for key in (f"{pipeline_name}.destination.duckdb.credentials", "destination.duckdb.credentials"):
        for accessor in (dlt.secrets, dlt.config):
            try:
                if accessor.get(key):
                    return True
            except Exception:  # noqa: BLE001 - an unreadable provider names nothing
                continue
    return False


def require_folder(folder: str) -> None:
    """Refuses a folder that does not exist, suggesting a sibling with a close name."""
    path = Path(folder)
    if path.is_dir():
        return
    import difflib

    parent = path.parent if str(path.parent) else Path(".")
    siblings = [p.name for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
    close = difflib.get_close_matches(path.name, siblings, n=1)
    hint = f" (did you mean {str(parent / close[0])!r}?)" if close else ""
    raise ConfigurationError(
        f"folder {folder!r} does not exist{hint}: give the --dir of a folder a load used, or run"
        " `algolia-profiles load --dir` to make one"
    )


def run_source(pipeline: Any, source: Any) -> LoadInfo:
    """``pipeline.run(source)`` in its three steps, so that the load of an initial export into DuckDB
    runs with DuckDB's memory bounded (:func:`bounded_initial_load`)."""
    create_duckdb_file(pipeline)  # before anything connects: DuckDB picks a file's format when it creates it
    if pipeline.config.restore_from_destination:
        waiting_for_duckdb_lock(pipeline.sync_destination)
    pipeline.extract(source)
    pipeline.normalize()
    run = last_run(pipeline)
    if not (run.get("initial") and run.get("load_id") in pipeline.list_normalized_load_packages()):
        return waiting_for_duckdb_lock(pipeline.load)
    with bounded_initial_load(pipeline) as bounded:
        try:
            return waiting_for_duckdb_lock(pipeline.load)
        except PipelineStepFailed as error:
            if not (bounded and out_of_memory(error)):
                raise
            failure = error
    # the jobs that completed stay loaded: dlt runs the ones left
    logger.warning("the bounded load ran out of memory (%s); loading again with DuckDB's defaults", failure)
    return waiting_for_duckdb_lock(pipeline.load)


def row_counts(pipeline: Any) -> dict[str, int]:
    """Rows per table of the dataset (tables not loaded yet are left out)."""
    counts: dict[str, int] = {}
    schema_tables = pipeline.default_schema.tables if pipeline.default_schema_name else {}
    with pipeline.sql_client() as client:
        for table in LOADED_TABLES:
            if table not in schema_tables:
                continue
            name = client.make_qualified_table_name(table)
            counts[table] = client.execute_sql(f"SELECT count(*) FROM {name}")[0][0]
    return counts
