"""DuckDB specifics of a load: the file's credentials and storage format, waiting for a file that
another process holds, and the memory bound of an initial export (applied by :func:`load_profiles
<..pipeline.load_profiles>`, or by the source itself in a plain dlt pipeline)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..exceptions import DatabaseBusyError, causes

logger = logging.getLogger(__name__)


def duckdb_credentials(path: str, pipeline_name: str | None = None) -> Any:
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


T = TypeVar("T")

# DuckDB lets one process at a time open a file for writing. A `status` or `segments` command run
# during a load holds the file for a second or so: the load waits for it instead of failing.
DUCKDB_LOCK_WAIT_SECONDS = 120.0
_LOCK_MESSAGE = "Could not set lock on file"


def duckdb_lock_conflict(error: BaseException) -> str | None:
    """DuckDB's message when ``error`` (or its cause) is a conflicting lock on a DuckDB file."""
    for cause in causes(error):
        if isinstance(cause, DatabaseBusyError):  # already waited for: not to be waited for again
            return None
        if type(cause).__name__ == "IOException" and _LOCK_MESSAGE in str(cause):
            return str(cause).split(". See also", 1)[0]
    return None


def waiting_for_duckdb_lock(call: Callable[[], T], seconds: float | None = None) -> T:
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


# DuckDB writes a new file in the storage format of DuckDB 0.10 unless told otherwise. The format of
# DuckDB 1.4, the oldest this package supports, compresses strings with DICT_FSST: DuckDB spends about
# a fifth less CPU loading the initial export, and the file is smaller. Any DuckDB >= 1.4 reads it.
DUCKDB_STORAGE_VERSION = "v1.4.0"


def create_duckdb_file(pipeline: Any) -> str | None:
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


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` comes from DuckDB running out of its memory limit."""
    return any(
        type(cause).__name__ == "OutOfMemoryException" or "Out of Memory Error" in str(cause)
        for cause in causes(error)
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


# The key under which dlt reads DuckDB's settings for every connection it opens.
GLOBAL_CONFIG_KEY = "destination.duckdb.credentials.global_config"
_set_by_source: dict[str, Any] | None = None


def bound_initial_load_of_running_pipeline(initial: bool) -> bool:
    """Bounds DuckDB's memory for the load of an initial export run by a plain dlt pipeline
    (``pipeline.run(algolia_profiles())``); returns whether it did.

    The source runs during the extract, before the load opens DuckDB, so it can set the bound the way
    dlt reads DuckDB settings: ``destination.duckdb.credentials.global_config``, written with
    ``dlt.secrets`` for this process. The bound is the one :func:`bounded_initial_load` applies
    (without its retry after running out of memory). Nothing is set when the destination is not
    DuckDB, when the pipeline holds its own credentials (``make_pipeline``'s, which
    :func:`bounded_initial_load` bounds), or when the user configured ``global_config`` anywhere
    dlt looks (theirs wins). Any later run of the source removes what an earlier one set, before
    its own load: merges keep DuckDB's defaults.
    """
    global _set_by_source
    import dlt

    if _set_by_source is not None:
        if dlt.secrets.get(GLOBAL_CONFIG_KEY) == _set_by_source:
            dlt.secrets[GLOBAL_CONFIG_KEY] = None
        _set_by_source = None
    if not initial:
        return False
    try:
        pipeline = dlt.current.pipeline()
    except Exception:  # noqa: BLE001 - the source is iterated outside a pipeline
        return False
    destination = pipeline.destination
    if destination is None or destination.destination_type.rsplit(".", 1)[-1] != "duckdb":
        return False
    if "credentials" in (getattr(destination, "config_params", None) or {}):
        return False
    for key in (f"{pipeline.pipeline_name}.{GLOBAL_CONFIG_KEY}", GLOBAL_CONFIG_KEY):
        for accessor in (dlt.secrets, dlt.config):
            try:
                if accessor.get(key) is not None:
                    return False
            except Exception:  # noqa: BLE001 - a value dlt cannot read is still the user's
                return False
    threads = os.cpu_count() or 1
    _set_by_source = {
        "memory_limit": f"{max(INITIAL_LOAD_MIN_MB, INITIAL_LOAD_MB_PER_THREAD * threads)}MB",
        "preserve_insertion_order": False,
    }
    dlt.secrets[GLOBAL_CONFIG_KEY] = dict(_set_by_source)
    logger.info("bounding DuckDB's memory for the load of this initial export: %s", _set_by_source)
    return True


def duckdb_path(pipeline: Any) -> str | None:
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
