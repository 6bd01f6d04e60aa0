"""The commands that build and look at audiences: ``segments build/list/sizes/overlaps/show/sql``
and ``report``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..exceptions import ConfigurationError, TableNotFoundError
from ..tables import BUILDS, MEMBERS, OVERLAPS, SIZES
from ..warehouse.read import Dataset, open_dataset
from .common import errors_as_exit_codes, open_pipeline, pipeline_options, print_table, project_setting

@click.group()
def segments() -> None:
    """Build and inspect audiences (docs/audiences.md) inside the destination."""


@segments.command("build")
@pipeline_options
@click.option("--file", "audience_file", default=None, type=click.Path(dir_okay=False),
              help="Audience definitions (TOML or YAML) [default: audiences under [algolia_profiles] in"
                   " .dlt/config.toml, or ALGOLIA_PROFILES__AUDIENCES].")
@click.option("--as-of", default=None, help="RFC 3339 instant that 'within N days' counts back from [default: now].")
@click.option("--skip-models", is_flag=True, help="Do not rebuild the staging views, affinity_catalog and user_top_affinities.")
@click.option("--retire", is_flag=True, help="Confirm retiring the audiences the last build made that the file no longer defines.")
def segments_build(pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
                   audience_file: str | None, as_of: str | None, skip_models: bool, retire: bool) -> None:
    """Validate the audience file, then build models and every audience in the warehouse."""
    from ..times import parse_datetime
    from ..segments import build_segments

    with errors_as_exit_codes():
        audiences = audience_file or project_setting("audiences")
        if not audiences:
            raise ConfigurationError(
                "no audience file: pass --file audiences.toml, or set audiences = \"audiences.toml\" under"
                " [algolia_profiles] in .dlt/config.toml (start from the examples:"
                " algolia_profiles_source/segments/examples/audiences.toml, docs/audiences.md)"
            )
        pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
        result = build_segments(
            pipeline, audiences, as_of=parse_datetime(as_of, "as_of"), models=not skip_models, retire=retire,
        )
        print_table(f"Build {result.build_id}", result.sizes,
                     ("segment", "members", "entered", "exited", "share_of_users"))


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
