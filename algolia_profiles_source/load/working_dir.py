"""The pipeline's working folder: one load at a time, and the remains of killed runs."""

from __future__ import annotations

import fcntl
import json
import os
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..exceptions import PipelineBusyError

logger = logging.getLogger(__name__)


@contextmanager
def exclusive(pipeline: Any) -> Iterator[None]:
    """Holds an exclusive lock on the pipeline's working directory for one load.

    Two loads of one pipeline at once would both write its state and load packages; the second
    fails at once instead (nothing is fetched or written), naming the lock.
    """
    path = _lock_path(pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineBusyError(
                f"another load of pipeline {pipeline.pipeline_name!r} is running (lock {path}):"
                " wait for it to finish, or give this run another --pipeline-name"
            ) from None
        # who holds the lock, for `status` to say that a load is running
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def running_load(pipeline: Any) -> dict[str, Any] | None:
    """The PID and start of the load running on this pipeline now, or None.

    Read from what the load wrote into its lock file, without taking the lock (a probe could make a
    load starting at that instant fail): the file is emptied when the load ends, and a PID that is
    no longer alive (a killed load) counts as no load.
    """
    try:
        holder = json.loads(_lock_path(pipeline).read_text() or "{}")
        os.kill(int(holder["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(holder)


def _lock_path(pipeline: Any) -> Path:
    return Path(pipeline.working_dir) / "algolia_profiles.lock"


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
