"""What every command shares: the options that pick the pipeline, exit codes and error messages,
and printing tables."""

from __future__ import annotations

import errno
import math
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..exceptions import AlgoliaProfilesError, ConfigurationError, NothingLoadedError, causes, find_cause
from ..load.destination import connection_failure, missing_settings
from ..load.pipeline import DEFAULT_DATASET_NAME, DEFAULT_PIPELINE_NAME

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def pipeline_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options that pick the pipeline and its destination, shared by every command."""
    options = [
        click.option("--pipeline-name", default=DEFAULT_PIPELINE_NAME, help="dlt pipeline name (state and working files)."),
        click.option("--destination", default="duckdb", help="A dlt destination name (duckdb, postgres, bigquery, snowflake...)."),
        click.option("--dataset-name", default=DEFAULT_DATASET_NAME, help="Dataset (schema) of the tables."),
        click.option("--dir", "workdir", default=None, type=click.Path(file_okay=False),
                     help="Keep the pipeline's files (and the DuckDB file) in this folder instead of dlt's defaults."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def open_pipeline(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
                  *, reading: bool = False) -> Any:
    """The pipeline a command works on: in ``--dir``, else in the project's folder (``dir`` of
    :func:`project_setting`), else in the folder the command runs in when a ``--dir`` load made it,
    else where dlt's defaults put it. A ``reading`` command creates nothing: its folder and DuckDB
    file must exist."""
    from ..load.pipeline import make_pipeline

    if workdir is None:
        workdir = project_setting("dir")
        if workdir is not None and reading and not Path(workdir).is_dir():
            raise NothingLoadedError(
                f"folder {workdir!r} (dir under [algolia_profiles] in .dlt/config.toml, or"
                f" ALGOLIA_PROFILES__DIR) does not exist{sibling_hint(workdir)}: run `algolia-profiles load`"
                " to make it, or correct the setting"
            )
        if workdir is None and destination == "duckdb" and _made_by_a_dir_load(Path("."), pipeline_name):
            workdir = "."
    if workdir is not None and Path(workdir).is_dir():
        # a pipeline's state there makes dlt resolve a relative DuckDB path against the folder of
        # its first run, not this one (a new folder, holding no state, stays as the user wrote it)
        workdir = str(Path(workdir).resolve())
    return make_pipeline(pipeline_name, destination, dataset_name, workdir=workdir, create=not reading)


def _made_by_a_dir_load(folder: Path, pipeline_name: str) -> bool:
    """Whether ``folder`` is one a ``--dir`` load made (the demo's, a scheduled job's): its DuckDB
    file and the pipeline's state side by side. Run there, a command uses them, instead of binding
    dlt's default pipeline (in dlt's data folder) to that file."""
    return (folder / f"{pipeline_name}.duckdb").is_file() and (
        folder / "pipelines" / pipeline_name / "state.json").is_file()


def sibling_hint(folder: str) -> str:
    """`` (did you mean 'x'?)`` for a folder beside ``folder`` with a close name, else ``""``."""
    import difflib

    path = Path(folder)
    parent = path.parent
    siblings = [p.name for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
    close = difflib.get_close_matches(path.name, siblings, n=1)
    return f" (did you mean {str(parent / close[0])!r}?)" if close else ""


def project_setting(key: str) -> str | None:
    """A setting of the project in the folder a command runs in: ``key`` of the section
    ``[algolia_profiles]`` in ``.dlt/config.toml``, or ``ALGOLIA_PROFILES__<KEY>`` (``dir``: where
    the pipeline lives; ``audiences``: the audience file ``segments build`` builds)."""
    import dlt

    try:
        value = dlt.config.get(f"algolia_profiles.{key}")
    except Exception:  # noqa: BLE001 - an unreadable provider configures nothing
        return None
    return str(value) if value else None


def echo_counts(counts: dict[str, int]) -> None:
    for table, count in counts.items():
        click.echo(f"   {table:<24} {count:>10,} rows")


def print_table(title: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """A readable table on a terminal, plain aligned text otherwise."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        numeric = bool(rows) and isinstance(rows[0].get(column), (int, float))
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*[cell(row.get(column)) for column in columns])
    Console(soft_wrap=True).print(table)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if abs(value) >= 1:
            return f"{value:,.2f}"
        if value == 0:
            return "0"
        # shares: three significant digits in fixed point, so 146 of 1,000,000 is 0.000146, not 0
        digits = max(3, 2 - math.floor(math.log10(abs(value))))
        return f"{value:.{digits}f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@contextmanager
def errors_as_exit_codes() -> Iterator[None]:
    """Prints the first error of ours (or dlt's config error) and exits 1 or 2; no traceback."""
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt, BrokenPipeError):
        raise  # click stops quietly on a closed pipe (`segments sql | head`)
    except Exception as error:  # noqa: BLE001 - the CLI's last line of defence
        if os.environ.get("ALGOLIA_PROFILES_TRACEBACK"):
            traceback.print_exc()
        ours = find_cause(error, AlgoliaProfilesError)
        if ours is not None:
            code = EXIT_USAGE if isinstance(ours, ConfigurationError) else EXIT_FAILED
            click.echo(f"error: {ours}", err=True)
            raise SystemExit(code) from None
        from ..load.duckdb import busy_message, duckdb_lock_conflict

        conflict = duckdb_lock_conflict(error)
        if conflict is not None:  # a read while a load holds the file: try again later
            click.echo(f"error: {busy_message(conflict)}", err=True)
            raise SystemExit(EXIT_FAILED) from None
        unreachable = connection_failure(error)
        if unreachable is not None:
            from dlt.pipeline.exceptions import PipelineStepFailed

            step = getattr(find_cause(error, PipelineStepFailed), "step", None)
            if step in ("extract", "normalize", "load"):  # it was reachable: an outage, run again
                click.echo(f"error: the destination went away during the {step} step ({unreachable});"
                           " run again: the load resumes where it stopped", err=True)
                raise SystemExit(EXIT_FAILED) from None
            click.echo(f"error: cannot connect to the destination ({unreachable}): check its host, port"
                       " and credentials in .dlt/secrets.toml [destination.<name>.credentials], and that"
                       " the server is running", err=True)
            raise SystemExit(EXIT_USAGE) from None
        in_use = find_cause(error, OSError)
        if in_use is not None and in_use.errno == errno.EADDRINUSE:  # the emulator's --port
            click.echo("error: the port is already in use (another emulator?): choose another --port,"
                       " or --port 0 for a free one", err=True)
            raise SystemExit(EXIT_USAGE) from None
        unwritable = _unwritable_location(error)
        if unwritable is not None:
            click.echo(f"error: {unwritable}: choose a location you can write to (--dir, --output-dir or"
                       " --output)", err=True)
            raise SystemExit(EXIT_USAGE) from None
        from dlt.common.configuration.exceptions import ConfigFieldMissingException, ConfigurationException

        missing = find_cause(error, ConfigFieldMissingException)
        if missing is not None:
            click.echo(f"error: {missing_settings(missing, 'the pipeline')}", err=True)
            raise SystemExit(EXIT_USAGE) from None
        config_error = find_cause(error, ConfigurationException)
        if config_error is not None:
            click.echo(f"error: configuration: {config_error}", err=True)
            raise SystemExit(EXIT_USAGE) from None
        click.echo(f"error: {type(error).__name__}: {error}", err=True)
        raise SystemExit(EXIT_FAILED) from None


def _unwritable_location(error: BaseException) -> str | None:
    """What is wrong when ``error`` comes from a path that cannot be created or written."""
    denied = find_cause(error, (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError))
    if isinstance(denied, OSError):
        return f"cannot use {denied.filename!r}: {denied.strerror}" if denied.filename else str(denied)
    duck = next((cause for cause in causes(error) if type(cause).__name__ == "IOException" and (
        "Cannot open file" in str(cause) or "Permission denied" in str(cause))), None)
    return str(duck).removeprefix("IO Error: ") if duck is not None else None


def audience_file_option(command):
    """``--file``: the audience definitions, defaulting to the project's configured file."""
    return click.option(
        "--file", "audience_file", default=None, type=click.Path(dir_okay=False),
        help="Audience definitions (TOML or YAML) [default: audiences under [algolia_profiles] in"
             " .dlt/config.toml, or ALGOLIA_PROFILES__AUDIENCES].")(command)


def resolve_audience_file(audience_file: str | None) -> str:
    """The audience file a command was given, or the project's; refuses when there is neither."""
    audiences = audience_file or project_setting("audiences")
    if not audiences:
        raise ConfigurationError(
            "no audience file: pass --file audiences.toml, or set audiences = \"audiences.toml\" under"
            " [algolia_profiles] in .dlt/config.toml (start from the examples:"
            " algolia_profiles_source/segments/examples/audiences.toml, docs/audiences.md)"
        )
    return audiences


def echo_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
