"""The dbt project as a whole: checked against the pipeline, generated, written into its folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ...exceptions import ConfigurationError
from ...tables import AFFINITIES, CONFIG, HISTORY, USERS
from ...warehouse.target import dialect_for_destination
from ..audience import AudienceFile
from .profile import Destination, pipeline_destination, profiles
from .sql import audience_models, model_files
from .yaml_files import MARKER, dump_yaml, project_yml, schema_yml, sources_yml

# the folder of the project the generator owns: emptied and rewritten by every generation
GENERATED = "algolia_profiles"


@dataclass(frozen=True)
class DbtProject:
    """A written project: its folder, the schema it builds into, and each audience's model."""

    path: Path
    schema: str
    audiences: dict[str, str]
    files: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def default_schema(dataset: str) -> str:
    """The schema a project builds into unless told otherwise: beside the dataset, never it."""
    return f"{dataset}_dbt"


def write_dbt_project(
    pipeline: Any,
    audiences: Any,
    out: str | Path,
    schema: str | None = None,
    as_of: datetime | None = None,
    strict: bool = False,
) -> DbtProject:
    """Validates the audiences against the pipeline's loaded data (as a build does) and writes a dbt
    project into ``out`` that builds the models and every audience into ``schema`` (default
    ``<dataset>_dbt``), with a ``profiles.yml`` for the pipeline's destination."""
    from ...load.state import restore_state
    from ..build import load_audiences

    restore_state(pipeline)
    tables = pipeline.default_schema.tables if pipeline.default_schema_name else {}
    if USERS not in tables or AFFINITIES not in tables:
        raise ConfigurationError(
            f"pipeline {pipeline.pipeline_name!r} has not loaded profiles yet (no `users` /"
            " `user_affinities` tables): run `algolia-profiles load` (or the demo) first"
        )
    file = load_audiences(pipeline, audiences, strict)
    destination = pipeline_destination(pipeline)
    schema = schema or default_schema(destination.dataset)
    files = project_files(file, destination, schema, has_config=CONFIG in tables, has_history=HISTORY in tables,
                          as_of=as_of)
    return write_files(Path(out), files, schema, file)


def project_files(
    file: AudienceFile, destination: Destination, schema: str, has_config: bool = True,
    has_history: bool = False, as_of: datetime | None = None,
) -> dict[str, str]:
    """Every file of the project, by path inside it. Pure: reads no warehouse. ``has_config``,
    ``has_history``: those loaded tables exist (the models over them are built as a build does)."""
    if schema in (destination.dataset, f"{destination.dataset}_staging"):
        raise ConfigurationError(
            f"the dbt project must build into its own schema, not {schema!r}, where this tool keeps its"
            f" tables (its models would overwrite them): choose another, e.g. --schema {destination.dataset}_dbt"
        )
    dialect = dialect_for_destination(destination.type)
    folder = f"models/{GENERATED}"
    models = model_files(file, destination.dataset, dialect, folder, has_config, has_history)
    out = models.files
    out[f"{folder}/sources.yml"] = dump_yaml(sources_yml(models.tables, has_config))
    out[f"{folder}/schema.yml"] = dump_yaml(schema_yml(models.loaded, file, models.audiences))
    out["dbt_project.yml"] = dump_yaml(project_yml(file, as_of))
    out["profiles.yml"] = dump_yaml(profiles(destination, schema))
    out[".gitignore"] = "target/\nlogs/\ndbt_packages/\n"
    return out


def write_files(out: Path, files: dict[str, str], schema: str, file: AudienceFile) -> DbtProject:
    """Writes ``files`` into ``out``: the folder the generator owns is replaced whole (an audience
    removed from the file loses its model); a ``dbt_project.yml`` not written by the generator is
    never overwritten."""
    project = out / "dbt_project.yml"
    if project.exists() and not project.read_text(encoding="utf-8").startswith(MARKER):
        raise ConfigurationError(
            f"{out} already holds a dbt project this tool did not write: choose an empty folder for --out"
        )
    generated = out / "models" / GENERATED
    if generated.exists():
        shutil.rmtree(generated)
    for path, text in files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return DbtProject(out, schema, audience_models(file), tuple(sorted(files)), tuple(file.warnings))
