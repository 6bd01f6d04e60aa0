"""Running the source in a dlt pipeline: the function behind ``algolia-profiles load`` and the demo."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, TypeVar

import dlt
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.pipeline import LoadInfo
from dlt.pipeline.exceptions import PipelineStepFailed

from . import algolia_profiles
from .exceptions import ApiError, ConfigurationError, DatabaseBusyError, PipelineBusyError

logger = logging.getLogger(__name__)

DEFAULT_PIPELINE_NAME = "algolia_profiles"
DEFAULT_DATASET_NAME = "algolia"
TABLES = ("users", "user_affinities", "personalization_config", "rejected_records")


@dataclass
class LoadResult:
    """What a load did: dlt's load info, the run's counters and the tables' row counts."""

    pipeline: Any
    load_info: LoadInfo
    run: Dict[str, Any] = field(default_factory=dict)
    row_counts: Dict[str, int] = field(default_factory=dict)

    @property
    def database(self) -> Optional[str]:
        """The DuckDB file loaded into (None for other destinations)."""
        return duckdb_path(self.pipeline)


def duckdb_credentials(path: str, pipeline_name: Optional[str] = None) -> Any:
    """Credentials of the DuckDB file ``path``, with every other setting (``global_config``,
    ``pragmas``, ...) read from ``destination.duckdb.credentials`` as dlt would read it: under
    ``<pipeline_name>.destination.duckdb.credentials`` first, then without the pipeline name.

    The pipeline holds this object, so :func:`run_source` can bound the initial export's load.
    """
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.resolve import inject_section
    from dlt.common.configuration.specs.config_section_context import ConfigSectionContext
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    with inject_section(ConfigSectionContext(pipeline_name=pipeline_name)):
        credentials = resolve_configuration(
            DuckDbCredentials(path), sections=("destination", "duckdb", "credentials")
        )
    credentials.database = path  # the path given here wins over a configured one
    return credentials


def make_pipeline(
    pipeline_name: str = DEFAULT_PIPELINE_NAME,
    destination: Any = "duckdb",
    dataset_name: str = DEFAULT_DATASET_NAME,
    pipelines_dir: Optional[str] = None,
    duckdb_path: Optional[str] = None,
    workdir: Optional[str] = None,
) -> Any:
    """A dlt pipeline for the profiles (new, or attached to the one with this name).

    ``workdir`` keeps everything in one folder: the pipeline's working files in ``workdir/pipelines``
    and, for DuckDB, the database in ``workdir/<pipeline_name>.duckdb``. ``duckdb_path`` picks the
    DuckDB file explicitly. Without either, dlt's defaults apply (``~/.dlt/pipelines``, and
    ``<pipeline_name>.duckdb`` in the folder of the pipeline's first run). A DuckDB file that does
    not exist yet is created here (:func:`create_duckdb_file`).
    """
    from dlt.common.schema.utils import is_valid_schema_name

    if not isinstance(pipeline_name, str) or not is_valid_schema_name(pipeline_name):
        # dlt names the pipeline's folder and its schema after it: refuse before creating either
        raise ConfigurationError(
            f"pipeline name {pipeline_name!r} is not valid: use letters, digits and underscores only,"
            " not starting with a digit (at most 64 characters), e.g. algolia_profiles_eu"
        )
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        pipelines_dir = pipelines_dir or str(Path(workdir) / "pipelines")
        if destination == "duckdb" and duckdb_path is None:
            duckdb_path = str(Path(workdir) / f"{pipeline_name}.duckdb")
    if duckdb_path is not None:
        if Path(duckdb_path).stem == dataset_name:
            # DuckDB names the catalog after the file; a schema of the same name is ambiguous
            raise ConfigurationError(
                f"the DuckDB file {duckdb_path!r} and the dataset {dataset_name!r} share a name:"
                " rename one of them"
            )
        destination = dlt.destinations.duckdb(credentials=duckdb_credentials(duckdb_path, pipeline_name))
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
            return make_pipeline(pipeline_name, dataset_name=dataset_name, pipelines_dir=pipelines_dir, duckdb_path=path)
        # before any command connects: DuckDB picks a file's format when it creates the file
        create_duckdb_file(pipeline)
        return pipeline
    except UnknownDestinationModule as error:
        raise ConfigurationError(
            f"unknown destination {destination!r}: use a dlt destination name such as duckdb,"
            " postgres, bigquery, snowflake or motherduck (and install its extra, e.g."
            " pip install 'algolia-profiles[postgres]')"
        ) from error


def load_profiles(
    pipeline: Any, reconcile: bool = False, min_seen_share: float = 0.5, **source_args: Any
) -> LoadResult:
    """Runs ``algolia_profiles(**source_args)`` in ``pipeline``; returns counts for a summary.

    With ``reconcile``, the run walks every profile and then marks the users it did not see as
    deleted (see :mod:`.reconcile`), unless it saw fewer than ``min_seen_share`` of the live users.
    """
    from .reconcile import check_min_seen_share, mark_deleted

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


@contextmanager
def exclusive(pipeline: Any) -> Iterator[None]:
    """Holds an exclusive lock on the pipeline's working directory for one load.

    Two loads of one pipeline at once would both write its state and load packages; the second
    fails at once instead (nothing is fetched or written), naming the lock.
    """
    path = Path(pipeline.working_dir) / "algolia_profiles.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineBusyError(
                f"another load of pipeline {pipeline.pipeline_name!r} is running (lock {path}):"
                " wait for it to finish, or give this run another --pipeline-name"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def drop_leftover_extracted_packages(pipeline: Any) -> None:
    """Removes what a kill left of an extracted package whose data is already elsewhere.

    dlt normalizes a package by committing a normalized copy and then deleting the extracted one
    folder by folder; a kill in between leaves a folder that fails every later normalize
    (``FileNotFoundError: .../new_jobs``). Such a folder holds nothing to load: its data is in the
    normalized package, or (killed while being created) was never written.
    """
    from dlt.common.storages import NormalizeStorage
    from dlt.common.storages.load_package import PackageStorage

    elsewhere = set(pipeline.list_normalized_load_packages()) | set(pipeline.list_completed_load_packages())
    root = Path(pipeline.working_dir) / "normalize" / NormalizeStorage.EXTRACTED_FOLDER
    for load_id in pipeline.list_extracted_load_packages():
        package = root / load_id
        if load_id in elsewhere or not (package / PackageStorage.NEW_JOBS_FOLDER).is_dir():
            logger.warning("removing the remains of extracted package %s (left by a killed run)", load_id)
            shutil.rmtree(package, ignore_errors=True)


T = TypeVar("T")

# DuckDB lets one process at a time open a file for writing. A `status` or `segments` command run
# during a load holds the file for a second or so: the load waits for it instead of failing.
DUCKDB_LOCK_WAIT_SECONDS = 120.0
_LOCK_MESSAGE = "Could not set lock on file"


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what caused it (dlt wraps DuckDB's errors), each once."""
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def duckdb_lock_conflict(error: BaseException) -> Optional[str]:
    """DuckDB's message when ``error`` (or its cause) is a conflicting lock on a DuckDB file."""
    for cause in _causes(error):
        if isinstance(cause, DatabaseBusyError):  # already waited for: not to be waited for again
            return None
        if type(cause).__name__ == "IOException" and _LOCK_MESSAGE in str(cause):
            return str(cause).split(". See also", 1)[0]
    return None


def waiting_for_duckdb_lock(call: Callable[[], T], seconds: Optional[float] = None) -> T:
    """``call()``, repeated while another process holds the DuckDB file, for up to ``seconds``
    (default :data:`DUCKDB_LOCK_WAIT_SECONDS`).

    Only for steps that are safe to repeat after failing to connect (dlt's load resumes its
    package; reads). Raises :class:`DatabaseBusyError` when the file stays held.
    """
    seconds = DUCKDB_LOCK_WAIT_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - re-raised unless it is a lock conflict
            conflict = duckdb_lock_conflict(error)
            if conflict is None:
                raise
            if time.monotonic() + delay > deadline:
                raise DatabaseBusyError(busy_message(conflict, seconds)) from None
            logger.info("the DuckDB file is held by another process, waiting: %s", conflict)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def busy_message(conflict: str, waited: float = 0) -> str:
    waited_for = f" for {waited:.0f} s" if waited else ""
    return (
        f"the DuckDB file is in use by another process{waited_for} ({conflict.removeprefix('IO Error: ')}):"
        " a load or another command is running on it; run this again when it has finished"
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
            if not (bounded and _out_of_memory(error)):
                raise
            failure = error
    # the jobs that completed stay loaded: dlt runs the ones left
    logger.warning("the bounded load ran out of memory (%s); loading again with DuckDB's defaults", failure)
    return waiting_for_duckdb_lock(pipeline.load)


# DuckDB writes a new file in the storage format of DuckDB 0.10 unless told otherwise. The format of
# DuckDB 1.4, the oldest this package supports, compresses strings with DICT_FSST: DuckDB spends about
# a fifth less CPU loading the initial export, and the file is smaller. Any DuckDB >= 1.4 reads it.
DUCKDB_STORAGE_VERSION = "v1.4.0"


def create_duckdb_file(pipeline: Any) -> Optional[str]:
    """Creates the DuckDB file of a DuckDB pipeline, if it does not exist yet, in the storage format
    of DuckDB 1.4; returns its path when it created it. :func:`make_pipeline` calls it, so that any
    command connecting before the first load finds the file in that format, and so does a load.

    ``storage_compatibility_version`` in ``destination.duckdb.credentials.global_config`` picks
    another format (``"v0.10.2"`` for readers older than DuckDB 1.4). An existing file keeps its own.
    """
    import duckdb

    credentials = _duckdb_file_credentials(pipeline)
    if credentials is None or os.path.exists(credentials.database):
        return None
    path = credentials.database
    version = (credentials.global_config or {}).get("storage_compatibility_version", DUCKDB_STORAGE_VERSION)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(path, config={"storage_compatibility_version": version}).close()
    return path


def _out_of_memory(error: BaseException) -> bool:
    return any(
        type(cause).__name__ == "OutOfMemoryException" or "Out of Memory Error" in str(cause)
        for cause in _causes(error)
    )


# An initial export only appends to tables: DuckDB streams it in a fixed amount of memory, where by
# default its buffer pool grows with the data (to 80% of RAM). Without insertion order, the bounded
# load is as fast as an unbounded one (it is 2x slower with it). Merges (every later run) delete and
# deduplicate, which needs memory in proportion to the changes: they keep DuckDB's defaults.
INITIAL_LOAD_MIN_MB = 64
INITIAL_LOAD_MB_PER_THREAD = 32


@contextmanager
def bounded_initial_load(pipeline: Any) -> Iterator[bool]:
    """Bounds DuckDB's memory for the loads run inside; yields whether it could.

    Applies to DuckDB pipelines that hold their credentials object (:func:`make_pipeline` makes
    them so); settings the user configured in ``destination.duckdb.credentials.global_config`` win.
    Afterwards the settings it changed are reset to DuckDB's defaults, also on a database instance
    that another connection kept open.
    """
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = getattr(pipeline.destination, "config_params", {}).get("credentials")
    if not isinstance(credentials, DuckDbCredentials):
        yield False
        return
    configured = credentials.global_config
    threads = int((configured or {}).get("threads") or os.cpu_count() or 1)
    bound = {
        "memory_limit": f"{max(INITIAL_LOAD_MIN_MB, INITIAL_LOAD_MB_PER_THREAD * threads)}MB",
        "preserve_insertion_order": False,
    }
    changed = [key for key in bound if key not in (configured or {})]
    credentials.global_config = {**bound, **(configured or {})}
    try:
        yield True
    finally:
        credentials.global_config = configured
        # global settings belong to the database instance, which another open connection in this
        # process may keep alive after the load: put DuckDB's defaults back explicitly. If another
        # process holds the file now, this process has no instance of it left, nor its settings.
        try:
            with pipeline.sql_client() as client:
                for key in changed:
                    client.execute_sql(f"RESET GLOBAL {key}")
        except Exception as error:  # noqa: BLE001 - only a lock conflict is expected here
            if duckdb_lock_conflict(error) is None:
                raise
            logger.debug("not resetting the load's DuckDB settings: the file is held elsewhere")


def duckdb_path(pipeline: Any) -> Optional[str]:
    """The DuckDB file a DuckDB pipeline writes to (resolved as dlt resolves it, without connecting).

    Without an explicit path, dlt puts it in the folder of the pipeline's first run and keeps
    using that file from any folder, so commands print it.
    """
    credentials = _duckdb_file_credentials(pipeline)
    return credentials.database if credentials is not None else None


def _duckdb_file_credentials(pipeline: Any) -> Any:
    """The resolved credentials of a DuckDB pipeline whose database is a file (None otherwise)."""
    destination = pipeline.destination
    if destination is None or destination.destination_type.rsplit(".", 1)[-1] != "duckdb":
        return None
    credentials = pipeline.destination_client().config.credentials  # resolves, does not connect
    path = credentials.database
    return credentials if isinstance(path, str) and not path.startswith(":") else None


def restore_state(pipeline: Any) -> None:
    """Fetches the state and schemas a load stored in the destination when the pipeline's folder has
    none (a fresh CI runner, a wiped folder), as a load does before it runs; otherwise does nothing."""
    if pipeline.default_schema_name or not pipeline.config.restore_from_destination:
        return
    pipeline.sync_destination()


def profiles_state(state: Optional[Dict[str, Any]], create: bool = False) -> Dict[str, Any]:
    """The ``profiles`` resource's part of a pipeline ``state`` (cursor, application, last run);
    empty when absent, or created in ``state`` with ``create``."""
    part: Dict[str, Any] = state if state is not None else {}
    for key in ("sources", "algolia_profiles", "resources", "profiles"):
        if create:
            part = part.setdefault(key, {})
        else:
            value = part.get(key) if isinstance(part, dict) else None
            part = value if isinstance(value, dict) else {}
    return part


def last_run(pipeline: Any) -> Dict[str, Any]:
    """The counters the last walk stored in the ``profiles`` resource state."""
    return dict(profiles_state(pipeline.state).get("last_run", {}))


def row_counts(pipeline: Any) -> Dict[str, int]:
    """Rows per table of the dataset (tables not loaded yet are left out)."""
    counts: Dict[str, int] = {}
    schema_tables = pipeline.default_schema.tables if pipeline.default_schema_name else {}
    with pipeline.sql_client() as client:
        for table in TABLES:
            if table not in schema_tables:
                continue
            name = client.make_qualified_table_name(table)
            counts[table] = client.execute_sql(f"SELECT count(*) FROM {name}")[0][0]
    return counts
