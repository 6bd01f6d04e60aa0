"""Where the project runs: the pipeline's destination, and the ``profiles.yml`` that reaches it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...warehouse.target import dialect_for_destination

PROFILE = "algolia_profiles"


@dataclass(frozen=True)
class Destination:
    """Where the project runs: the pipeline's destination type (dlt's name), its dataset, and the
    settings a dbt profile needs (never a secret: those are read through ``env_var()``)."""

    type: str
    dataset: str
    settings: dict[str, Any] = field(default_factory=dict)


def pipeline_destination(pipeline: Any) -> Destination:
    """The pipeline's destination as a dbt profile needs it (resolves its configuration, does not connect)."""
    kind = pipeline.destination.destination_type.rsplit(".", 1)[-1]
    dialect_for_destination(kind)  # refuses what segments do not support
    config = pipeline.destination_client().config
    credentials = config.credentials
    settings: dict[str, Any] = {}
    if kind == "duckdb":
        settings["path"] = str(Path(credentials.database).resolve())
    elif kind == "motherduck":
        settings["path"] = f"md:{credentials.database}"
    elif kind == "postgres":
        settings.update(host=credentials.host, port=credentials.port or 5432, user=credentials.username,
                        dbname=credentials.database)
    elif kind == "snowflake":
        settings.update(account=credentials.host, user=credentials.username, database=credentials.database,
                        warehouse=credentials.warehouse, role=credentials.role)
    elif kind == "bigquery":
        settings.update(project=credentials.project_id, location=getattr(config, "location", None))
    return Destination(kind, pipeline.dataset_name, {k: v for k, v in settings.items() if v is not None})


def profiles(destination: Destination, schema: str) -> dict[str, Any]:
    """A dbt profile for the pipeline's destination; secrets only as ``env_var()`` (the variables dlt
    itself reads), every other setting as the pipeline resolved it."""
    kind, settings = destination.type, destination.settings
    secret = "{{ env_var('DESTINATION__%s__CREDENTIALS__PASSWORD') }}" % kind.upper()
    if kind in ("duckdb", "motherduck"):
        output = {"type": "duckdb", "path": "{{ env_var('ALGOLIA_PROFILES_DUCKDB', '%s') }}" % settings["path"],
                  "schema": schema, "threads": 4}
    elif kind == "postgres":
        output = {"type": "postgres", **settings, "password": secret, "schema": schema, "threads": 4}
    elif kind == "snowflake":
        output = {"type": "snowflake", **settings, "password": secret, "schema": schema, "threads": 4}
    else:  # bigquery
        output = {"type": "bigquery", "method": "service-account",
                  "keyfile": "{{ env_var('GOOGLE_APPLICATION_CREDENTIALS') }}", **settings,
                  "dataset": schema, "threads": 4}
    return {PROFILE: {"target": kind, "outputs": {kind: output}}}
