"""What a pipeline holds and whether it is healthy: ``status`` (local state and the warehouse) and
``doctor`` (configuration, credentials and connectivity), the functions behind the CLI commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt

from .. import settings
from ..exceptions import AlgoliaProfilesError, TableNotFoundError
from ..http.client import ProfilesClient
from ..http.query import build_query
from ..tables import SIZES
from ..times import parse_datetime
from ..warehouse.read import read_rows
from .duckdb import duckdb_lock_conflict, duckdb_path
from .pipeline import row_counts, tables_gone
from .state import last_run, profiles_state, restore_state
from .working_dir import running_load

RECONCILE_EVERY = timedelta(days=1)


def status(pipeline: Any) -> dict[str, Any]:
    """The last load, the cursor, row counts, audiences and whether a reconcile is due."""
    restore_state(pipeline)
    state = profiles_state(pipeline.state)
    run = last_run(pipeline)
    info: dict[str, Any] = {
        "pipeline": pipeline.pipeline_name,
        "destination": getattr(pipeline.destination, "destination_name", None),
        "dataset": pipeline.dataset_name,
        "working_dir": pipeline.working_dir,
        "database": duckdb_path(pipeline),
        "pending_packages": bool(pipeline.has_pending_data),
        "running_load": running_load(pipeline),
        "last_run": run,
        "cursor": state.get("last_updated_at"),
        "next_start_date": None,
        "last_reconcile_at": state.get("last_reconcile_at"),
        "reconcile_due": True,
        "tables": {},
        "audiences": [],
    }
    cursor = parse_datetime(info["cursor"], "cursor")
    if cursor is not None:
        overlap = timedelta(seconds=run.get("overlap_seconds", settings.DEFAULT_OVERLAP_SECONDS))
        info["next_start_date"] = (cursor - overlap).isoformat()
    last_reconcile = parse_datetime(info["last_reconcile_at"], "last_reconcile_at")
    if last_reconcile is not None:
        info["reconcile_due"] = datetime.now(timezone.utc) - last_reconcile > RECONCILE_EVERY
    if pipeline.default_schema_name:
        from dlt.destinations.exceptions import DatabaseUndefinedRelation

        try:
            info["tables"] = row_counts(pipeline)
        except DatabaseUndefinedRelation:
            raise tables_gone(pipeline.pipeline_name) from None
        except Exception as error:  # noqa: BLE001 - re-raised unless a running load holds the file
            if info["running_load"] is None or duckdb_lock_conflict(error) is None:
                raise
            return info  # the load holds the DuckDB file: say so, without the counts
        try:
            info["audiences"] = read_rows(pipeline, SIZES, order_by="segment")
        except TableNotFoundError:  # no segment build yet
            info["audiences"] = []
    return info


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def doctor(pipeline: Any, region: str | None = None, base_url: str | None = None) -> list[Check]:
    """Checks configuration files, credentials (one cheap request), region and the destination
    (``pipeline`` None: a DuckDB file the first load creates, which a check does not make)."""
    checks: list[Check] = []
    files = [p for p in (Path(".dlt/config.toml"), Path(".dlt/secrets.toml"),
                         Path.home() / ".dlt" / "config.toml", Path.home() / ".dlt" / "secrets.toml") if p.exists()]
    checks.append(Check("config files", True, ", ".join(map(str, files)) or "none (environment variables only)"))

    values = {
        "application_id": _setting("application_id", secret=True),
        "api_key": _setting("api_key", secret=True),
        "region": _setting("region", secret=False),
        "base_url": _setting("base_url", secret=False),
    }
    region = region or values["region"] or settings.DEFAULT_REGION
    base_url = base_url or values["base_url"]
    missing = [n for n in ("application_id", "api_key") if not values[n]]
    if missing:
        checks.append(Check("credentials", False, "missing " + " and ".join(missing) + ": set them in"
                            " .dlt/secrets.toml [sources.algolia_profiles] or SOURCES__ALGOLIA_PROFILES__*"))
    else:
        checks.append(Check("credentials", True, f"application {values['application_id']!r}, key set"))
    try:
        query = build_query(region=region, base_url=base_url)
        checks.append(Check("endpoint", True, query.base_url))
    except AlgoliaProfilesError as error:
        checks.append(Check("endpoint", False, str(error)))
        query = None
    if query is not None and not missing:
        client = ProfilesClient(query.base_url, str(values["application_id"]), str(values["api_key"]),
                                region=query.region, max_attempts=2, backoff_base=0.2, timeout=15)
        try:
            config = client.get_config()
            indices = [i.get("index") for i in config.get("indices") or []]
            checks.append(Check("API access", True, f"GET /2/config answered: {len(indices)} indices"
                                f" ({', '.join(map(str, indices[:5]))}), status {((config.get('status') or {}).get('type'))}"))
        except AlgoliaProfilesError as error:
            checks.append(Check("API access", False, str(error)))
    if pipeline is None:
        return checks
    try:
        with pipeline.sql_client() as sql:
            sql.execute_sql("SELECT 1")
        checks.append(Check("destination", True, f"{pipeline.destination.destination_name}: connected"))
    except Exception as error:  # any driver error: report it
        checks.append(Check("destination", False, f"{type(error).__name__}: {str(error)[:300]}"))
    return checks


def _setting(name: str, secret: bool) -> Any:
    """A source setting as dlt resolves it (environment, then secrets.toml / config.toml)."""
    accessor = dlt.secrets if secret else dlt.config
    try:
        return accessor.get(f"sources.algolia_profiles.{name}")
    except Exception:  # unreadable provider: treat as unset
        return None
