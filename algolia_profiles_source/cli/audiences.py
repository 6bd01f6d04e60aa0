"""The commands that build and ship audiences: ``segments build/list/sizes/overlaps/show/sql``,
``export`` and ``report``."""

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


@click.command()
@click.argument("audience")
@pipeline_options
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl"]), default="csv", help="Output format.")
@click.option("--output-dir", default="exports", type=click.Path(file_okay=False), help="Directory the file is written to.")
@click.option("--output", "filename", default=None, help="File name inside --output-dir [default: AUDIENCE.FORMAT].")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
@click.option("--customers", default=None, type=click.Path(dir_okay=False), help="Customer data file (CSV or Parquet) to join.")
@click.option("--customers-table", default=None, help="Customer data table in the warehouse to join (e.g. crm.customers).")
@click.option("--customer-key", default="user_token", help="Customer column holding the Algolia userID/userToken.")
@click.option("--opt-out-column", default="opted_out",
              help="Customer column that marks opted-out customers: true/false, yes/no, y/n, t/f, 1/0; any other"
                   " value refuses the export, an empty one leaves the customer out (no consent).")
@click.option("--no-opt-out-column", is_flag=True, help="The customer data holds no opt-outs: export every matched customer.")
@click.option("--opt-outs-only", is_flag=True, help="The opt-out column marks opt-outs only: an empty value means not opted out.")
@click.option("--keep-unmatched", is_flag=True, help="Keep members without a customer record (exported without customer data).")
def export(audience: str, pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
           fmt: str, output_dir: str, filename: str | None, overwrite: bool, customers: str | None,
           customers_table: str | None, customer_key: str, opt_out_column: str, no_opt_out_column: bool,
           opt_outs_only: bool, keep_unmatched: bool) -> None:
    """Write an audience's members to a file, optionally joined to customer data."""
    from ..segments.export import export_audience

    with errors_as_exit_codes():
        pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
        result = export_audience(
            pipeline, audience, output_dir=output_dir, filename=filename, fmt=fmt, overwrite=overwrite,
            customers=customers, customers_table=customers_table, customer_key=customer_key,
            opt_out_column=None if no_opt_out_column else opt_out_column, keep_unmatched=keep_unmatched,
            opt_outs_only=opt_outs_only,
        )
        click.echo(f"Wrote {result.rows:,} rows of {audience} ({result.members:,} members) to {result.path}")
        if result.joined:
            click.echo(f"  {result.unmatched:,} members had no customer record"
                       f" ({'kept' if keep_unmatched else 'left out'}); {result.opted_out:,} opted out (left out);"
                       f" {result.no_consent:,} without a recorded choice (left out)")


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
