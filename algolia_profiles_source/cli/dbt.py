"""``segments dbt``: the models and audiences as a dbt project (docs/dbt.md)."""

from __future__ import annotations

import click

from .common import (
    audience_file_option, echo_warnings, errors_as_exit_codes, open_pipeline, pipeline_options, resolve_audience_file,
)


@click.command("dbt")
@pipeline_options
@audience_file_option
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to write the dbt project into (created; a project this command wrote is replaced).")
@click.option("--schema", default=None,
              help="Schema the project builds into [default: <dataset-name>_dbt; never the dataset itself].")
@click.option("--as-of", default=None,
              help="RFC 3339 instant that 'within N days' counts back from, as the dbt var's default"
                   " [default: the file's as_of, else the dbt run's start].")
@click.option("--strict", is_flag=True, help="Affinity values that no loaded profile holds are errors, not warnings.")
def dbt_command(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
                audience_file: str | None, out: str, schema: str | None, as_of: str | None, strict: bool) -> None:
    """Write a dbt project that builds the models and every audience with the SQL `segments build` runs."""
    from ..segments.dbt import write_dbt_project
    from ..times import parse_datetime

    with errors_as_exit_codes():
        audiences = resolve_audience_file(audience_file)
        pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
        project = write_dbt_project(pipeline, audiences, out, schema=schema,
                                    as_of=parse_datetime(as_of, "as_of"), strict=strict)
        echo_warnings(list(project.warnings))
        click.echo(f"dbt project written to {project.path} ({len(project.audiences)} audience model(s),"
                   f" building into schema {project.schema!r})")
        click.echo(f"run it: cd {project.path} && dbt build --profiles-dir .")
