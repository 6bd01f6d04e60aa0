"""What a pipeline remembers between runs: the ``profiles`` resource's state (cursor, application,
last run, last reconcile), restored from the destination on a runner without the pipeline's folder."""

from __future__ import annotations

from typing import Any

from ..settings import SOURCE_NAME
from ..tables import PROFILES_RESOURCE


def restore_state(pipeline: Any) -> None:
    """Fetches the state and schemas a load stored in the destination when the pipeline's folder has
    none (a fresh CI runner, a wiped folder), as a load does before it runs; otherwise does nothing."""
    if pipeline.default_schema_name or not pipeline.config.restore_from_destination:
        return
    pipeline.sync_destination()


def profiles_state(state: dict[str, Any] | None, create: bool = False) -> dict[str, Any]:
    """The ``profiles`` resource's part of a pipeline ``state`` (cursor, application, last run);
    empty when absent, or created in ``state`` with ``create``."""
    part: dict[str, Any] = state if state is not None else {}
    for key in ("sources", SOURCE_NAME, "resources", PROFILES_RESOURCE):
        if create:
            part = part.setdefault(key, {})
        else:
            value = part.get(key) if isinstance(part, dict) else None
            part = value if isinstance(value, dict) else {}
    return part


def last_run(pipeline: Any) -> dict[str, Any]:
    """The counters the last walk stored in the ``profiles`` resource state."""
    return dict(profiles_state(pipeline.state).get("last_run", {}))
