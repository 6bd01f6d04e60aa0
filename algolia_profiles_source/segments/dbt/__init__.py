"""The models and audiences as a dbt project, generated from the same compiler a build runs.

:mod:`.sql` renders the trees a build runs as the models' SQL, :mod:`.yaml_files` writes the
sources, schema (descriptions and tests) and project files, :mod:`.profile` the ``profiles.yml``
for the pipeline's destination, and :mod:`.project` checks, generates and writes the whole.

What a build keeps as history (``segment_membership_events``, ``segment_builds``) is an
incremental model here: each ``dbt build`` appends who entered and exited since the last one.
"""

from .profile import PROFILE, Destination, pipeline_destination, profiles
from .project import GENERATED, DbtProject, default_schema, project_files, write_dbt_project, write_files
from .sql import AS_OF_JINJA, BUILT_AT_JINJA, FLAGS_MODEL, SOURCE, audience_models
from .yaml_files import DESCRIPTIONS, MARKER

__all__ = [
    "AS_OF_JINJA",
    "BUILT_AT_JINJA",
    "DESCRIPTIONS",
    "FLAGS_MODEL",
    "GENERATED",
    "MARKER",
    "PROFILE",
    "SOURCE",
    "DbtProject",
    "Destination",
    "audience_models",
    "default_schema",
    "pipeline_destination",
    "profiles",
    "project_files",
    "write_dbt_project",
    "write_files",
]
