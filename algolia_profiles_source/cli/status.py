"""The commands that look at a pipeline: ``status`` and ``doctor``."""

from __future__ import annotations

from pathlib import Path

import click

from ..exceptions import ConfigurationError, NothingLoadedError
from .common import (EXIT_USAGE, echo_counts, errors_as_exit_codes, open_pipeline, pipeline_options, print_table,
                     project_setting, sibling_hint)


@click.command("status")
@pipeline_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status_command(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None, as_json: bool) -> None:
    """Last load, cursor and overlap, row counts, audiences, and whether a reconcile is due."""
    import json

    from ..load.status import status

    with errors_as_exit_codes():
        try:
            pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
        except NothingLoadedError as nothing:
            click.echo(f"no load yet: {nothing}")
            return
        info = status(pipeline)
        if as_json:
            click.echo(json.dumps(info, default=str, indent=2))
            return
        run = info["last_run"]
        click.echo(f"pipeline {info['pipeline']} -> {info['destination']}:{info['dataset']} ({info['working_dir']})")
        if info["database"]:
            click.echo(f"database: {info['database']}")
        if info["running_load"]:
            running = info["running_load"]
            click.echo(f"a load is running: PID {running.get('pid')}, since {running.get('since')}")
        if not run:
            if not info["running_load"]:  # else the first load is the one running
                click.echo("no load yet: run `algolia-profiles load` (or the demo)")
            return
        click.echo(
            f"last load: {run.get('started_at')} -> {run.get('finished_at')}, {run.get('profiles', 0):,} profiles,"
            f" {run.get('requests', 0)} requests, {run.get('retries', 0)} retries, {run.get('throttled', 0)} throttled,"
            f" {run.get('rejected', 0)} rejected{' (reconcile)' if run.get('reconcile') else ''}"
        )
        click.echo(f"cursor: {info['cursor']} (next run starts at {info['next_start_date']})")
        click.echo(f"reconcile: last {info['last_reconcile_at'] or 'never'}, {'due' if info['reconcile_due'] else 'not due'}")
        if info["pending_packages"] and not info["running_load"]:  # else the running load is writing it
            click.echo("pending: a load package is waiting; the next load finishes it first")
        echo_counts(info["tables"])
        if info["audiences"]:
            print_table("Audiences", info["audiences"], ("segment", "members", "entered", "exited"))


@click.command("doctor")
@pipeline_options
@click.option("--region", default=None, help="Region to check [config: sources.algolia_profiles.region].")
@click.option("--base-url", default=None, help="Host to check [config: sources.algolia_profiles.base_url].")
def doctor_command(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
                   region: str | None, base_url: str | None) -> None:
    """Check config files, credentials and ACLs (one cheap request), region and the destination."""
    from ..load.status import Check, doctor

    with errors_as_exit_codes():
        # a check makes no folder and no DuckDB file: the first load does
        location = workdir or project_setting("dir")
        pipeline, absent, unusable = None, None, None
        if destination == "duckdb" and location is not None and not Path(location).is_dir():
            absent = f"folder {location!r} does not exist yet{sibling_hint(location)}"
        else:
            try:
                pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir,
                                         reading=destination == "duckdb")
            except NothingLoadedError as nothing:
                absent = str(nothing).split(": run `")[0]
            except ConfigurationError as error:  # a missing driver or credential, an unreachable host
                unusable = str(error)
        checks = doctor(pipeline, region, base_url)
        if absent is not None:
            checks.append(Check("destination", True, f"duckdb: {absent}; the first `algolia-profiles load` creates it"))
        if unusable is not None:
            checks.append(Check("destination", False, f"{destination}: {unusable}"))
        for check in checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        if not all(check.ok for check in checks):
            raise SystemExit(EXIT_USAGE)
