"""The pipeline's working folder: one load at a time, and the remains of killed runs."""

from __future__ import annotations

import fcntl
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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
