"""The commands that build and look at audiences: ``segments build/plan/validate/list/sizes/
overlaps/show/sql`` and ``report``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..exceptions import ConfigurationError, TableNotFoundError
from ..segments.definitions import DefinitionError
from ..tables import BUILDS, MEMBERS, OVERLAPS, SIZES
from ..warehouse.read import Dataset, open_dataset
from .common import (
    audience_file_option, echo_warnings, errors_as_exit_codes, open_pipeline, pipeline_options, print_table,
    resolve_audience_file,
)


@click.group()
def segments() -> None:
    """Build and inspect audiences (docs/audiences.md) inside the destination."""


def build_options(command):
    """Options a build and its plan share."""
    for option in reversed((
        audience_file_option,
        click.option("--as-of", default=None, help="RFC 3339 instant that 'within N days' counts back from [default: now]."),
        click.option("--strict", is_flag=True, help="Affinity values that no loaded profile holds are errors, not warnings."),
        click.option("--size-change-warning", "size_change", default=50.0, type=click.FloatRange(min=0),
                     help="Warn about an audience whose size changed by more than this percentage since the last build."),
    )):
        command = option(command)
    return command


@segments.command("build")
@pipeline_options
@build_options
@click.option("--skip-models", is_flag=True, help="Do not rebuild the staging views, affinity_catalog and user_top_affinities.")
@click.option("--retire", is_flag=True, help="Confirm retiring the audiences the last build made that the file no longer defines.")
@click.option("--dry-run", is_flag=True, help="Show what the build would write (as `segments plan`) and write nothing.")
def segments_build(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
                   audience_file: str | None, as_of: str | None, strict: bool, size_change: float,
                   skip_models: bool, retire: bool, dry_run: bool) -> None:
    """Validate the audience file, then build models and every audience in the warehouse."""
    from ..times import parse_datetime
    from ..segments import build_segments

    if dry_run:
        _plan(pipeline_name, destination, dataset_name, workdir, audience_file, as_of, strict, size_change)
        return
    with errors_as_exit_codes():
        audiences = resolve_audience_file(audience_file)
        pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
        result = build_segments(
            pipeline, audiences, as_of=parse_datetime(as_of, "as_of"), models=not skip_models, retire=retire,
            strict=strict, size_change=size_change / 100,
        )
        print_table(f"Build {result.build_id}", result.sizes,
                     ("segment", "members", "entered", "exited", "share_of_users"))
        echo_warnings(result.warnings)


@segments.command("plan")
@pipeline_options
@build_options
def segments_plan(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
                  audience_file: str | None, as_of: str | None, strict: bool, size_change: float) -> None:
    """Show what `segments build` would write (sizes, entering and exiting members) without writing anything."""
    _plan(pipeline_name, destination, dataset_name, workdir, audience_file, as_of, strict, size_change)


def _plan(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
          audience_file: str | None, as_of: str | None, strict: bool, size_change: float) -> None:
    from ..times import parse_datetime
    from ..segments.build import plan_segments

    with errors_as_exit_codes():
        audiences = resolve_audience_file(audience_file)
        pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
        plan = plan_segments(pipeline, audiences, as_of=parse_datetime(as_of, "as_of"), strict=strict,
                             size_change=size_change / 100)
        print_table("Plan (nothing written)", plan.sizes, ("segment", "members", "entered", "exited"))
        if plan.retiring:
            click.echo(f"Retiring (the file no longer defines them; `segments build --retire` confirms):"
                       f" {', '.join(f'{name} ({size:,} members exit)' for name, size in plan.retiring.items())}")
        echo_warnings(plan.warnings)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@segments.command("validate")
@click.argument("audience_file", required=False, type=click.Path(dir_okay=False))
@pipeline_options
@click.option("--strict", is_flag=True, help="Affinity values that no loaded profile holds are errors, not warnings.")
@click.option("--offline", is_flag=True, help="Check the file alone, without reading the warehouse.")
def segments_validate(audience_file: str | None, pipeline_name: str, destination: str, dataset_name: str,
                      workdir: str | None, strict: bool, offline: bool) -> None:
    """Check an audience file. Affinity names and values are checked against the loaded profiles when
    the pipeline's warehouse can be read; the file's structure always is."""
    from ..segments.build import load_audiences
    from ..segments.definitions import load_definitions

    with errors_as_exit_codes():
        path = resolve_audience_file(audience_file)
        file = load_definitions(path)  # the structure first: it needs no warehouse
        checked = "structure only"
        if not offline:
            try:
                pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
                file = load_audiences(pipeline, path, strict)
                checked = f"names and values checked against {pipeline.pipeline_name!r}"
            except DefinitionError:
                raise
            except Exception as error:  # no pipeline, no load yet, warehouse unreachable: the file alone
                checked = f"structure only: names and values not checked ({_first_line(error)})"
        echo_warnings(list(file.warnings))
        click.echo(f"{path}: {len(file.audiences)} audience(s) valid ({checked})")


@contextmanager
def _built_audiences(pipeline_name: str, destination: str, dataset_name: str,
                     workdir: str | None) -> Iterator[Dataset]:
    """The dataset whose audiences a command reads; a missing table means no build yet."""
    pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
    try:
        with open_dataset(pipeline) as dataset:
            yield dataset
    except TableNotFoundError as error:
        raise ConfigurationError(
            f"cannot read {error.table} from {destination}:{dataset_name}: run `algolia-profiles"
            " segments build` first"
        ) from None


@segments.command("list")
@pipeline_options
def segments_list(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None) -> None:
    """The audiences of the last build."""
    with errors_as_exit_codes():
        with _built_audiences(pipeline_name, destination, dataset_name, workdir) as dataset:
            rows = dataset.rows(SIZES, order_by="segment")
        for row in rows:
            click.echo(row["segment"])


@segments.command("sizes")
@pipeline_options
def segments_sizes(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None) -> None:
    """Members, entries and exits of every audience in the last build."""
    with errors_as_exit_codes():
        with _built_audiences(pipeline_name, destination, dataset_name, workdir) as dataset:
            rows = dataset.rows(SIZES, order_by="segment")
        built = rows[0]["built_at"] if rows else "never"
        print_table(f"Audience sizes (built {built})", rows, ("segment", "members", "entered", "exited", "share_of_users"))


@segments.command("overlaps")
@pipeline_options
def segments_overlaps(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None) -> None:
    """Pairwise overlaps of the audiences (count, share of each, Jaccard)."""
    with errors_as_exit_codes():
        with _built_audiences(pipeline_name, destination, dataset_name, workdir) as dataset:
            rows = dataset.rows(OVERLAPS, order_by="segment_a, segment_b")
        print_table("Audience overlaps", rows, ("segment_a", "segment_b", "overlap", "pct_of_a", "pct_of_b", "jaccard"))


@segments.command("show")
@click.argument("audience")
@pipeline_options
@click.option("--limit", default=20, help="How many members to show (highest score first).")
def segments_show(audience: str, pipeline_name: str, destination: str, dataset_name: str,
                  workdir: str | None, limit: int) -> None:
    """Size, history and top members of one audience."""
    from sqlglot import exp

    with errors_as_exit_codes(), _built_audiences(pipeline_name, destination, dataset_name, workdir) as dataset:
        where = exp.column("segment").eq(exp.Literal.string(audience))
        sizes = dataset.rows(SIZES, where=where)
        if not sizes:
            from ..segments.definitions import did_you_mean

            built = sorted(r["segment"] for r in dataset.rows(SIZES))
            raise ConfigurationError(f"audience {audience!r} has not been built{did_you_mean(audience, built)}"
                                     f" (built: {', '.join(built) or 'none'})")
        history = dataset.rows(BUILDS, order_by="built_at", where=where)
        members = dataset.rows(MEMBERS, where=where)
        members.sort(key=lambda r: (-(r["score"] if r["score"] is not None else -1), r["user_id"]))
        print_table(f"{audience}: {sizes[0]['members']:,} members", history[-10:],
                     ("built_at", "members", "entered", "exited"))
        print_table(f"Top {min(limit, len(members))} members", members[:limit],
                     ("user_id", "score", "matched_affinities"))


@segments.command("sql")
@pipeline_options
@click.option("--file", "audience_file", default=None, type=click.Path(dir_okay=False),
              help="Audience definitions [default: the bundled example audiences].")
@click.option("--dialect", type=click.Choice(["duckdb", "postgres", "bigquery", "snowflake"]), default=None,
              help="SQL dialect [default: the --destination's].")
def segments_sql(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
                 audience_file: str | None, dialect: str | None) -> None:
    """Print the SQL a build runs, for review (no connection needed)."""
    from datetime import datetime, timezone

    from ..demo import EXAMPLE_AUDIENCES
    from ..segments import load_definitions, model_statements, segment_statements, static_target
    from ..warehouse.target import dialect_for_destination

    with errors_as_exit_codes():
        if dialect is None:
            from dlt.common.destination import Destination

            dialect = dialect_for_destination(Destination.from_reference(destination).destination_type)
        file = load_definitions(audience_file or EXAMPLE_AUDIENCES)
        target = static_target(dialect, dataset_name)
        built_at = datetime.now(timezone.utc)
        statements = model_statements(target) + segment_statements(file, target, built_at, "BUILD_ID")
        for statement in statements:
            click.echo(f"-- {statement.label}\n{statement.tree.sql(dialect=dialect, pretty=True)};\n")


@click.command("report")
@pipeline_options
@click.option("--output", default="audience_report.html", type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def report_command(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
                   output: str, overwrite: bool) -> None:
    """Write a self-contained HTML audience report (charts, no network needed to view it)."""
    from ..segments.report import write_report

    with errors_as_exit_codes():
        path = write_report(open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True), output, overwrite)
        click.echo(f"Wrote {path.resolve()}")
