"""The ``export`` command: an audience's members to a file, joined to customer data."""

from __future__ import annotations

import click

from .common import errors_as_exit_codes, open_pipeline, pipeline_options


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
