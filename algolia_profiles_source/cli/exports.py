"""The ``export`` command: an audience's members to a file, joined to customer data, hashed for an
ad platform, or as the changes since the last export."""

from __future__ import annotations

import click

from .common import errors_as_exit_codes, open_pipeline, pipeline_options, project_setting

PLATFORMS = ["google", "meta", "campaign_manager_360"]


@click.command()
@click.argument("audience")
@pipeline_options
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl"]), default="csv", help="Output format.")
@click.option("--output-dir", default="exports", type=click.Path(file_okay=False), help="Directory the file is written to.")
@click.option("--output", "filename", default=None,
              help="File name inside --output-dir [default: AUDIENCE.FORMAT; a delta adds .add/.remove before the extension].")
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
@click.option("--platform", type=click.Choice(PLATFORMS), default=None,
              help="Write a customer list for this ad platform: normalized, SHA-256-hashed emails and phones only.")
@click.option("--email-column", default=None, help="Customer column of emails to hash [default: email, if present].")
@click.option("--phone-column", default=None, help="Customer column of phones to hash [default: phone, if present].")
@click.option("--phone-region", default=None,
              help="Region of phones written without a country code, e.g. US [default: phone_region under"
                   " [algolia_profiles] in .dlt/config.toml; none: such phones are left out].")
@click.option("--include-user-id", is_flag=True, help="Keep the user_id column in a --platform file.")
@click.option("--changes-since", default=None, metavar="last|BUILD_ID|TIME",
              help="Write the members to add and to remove since then (two files); 'last' is the last export"
                   " of this audience for --sync.")
@click.option("--sync", default=None, help="Name of the sync that --changes-since last follows [default: the platform, or 'file'].")
def export(audience: str, pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
           fmt: str, output_dir: str, filename: str | None, overwrite: bool, customers: str | None,
           customers_table: str | None, customer_key: str, opt_out_column: str, no_opt_out_column: bool,
           opt_outs_only: bool, keep_unmatched: bool, platform: str | None, email_column: str | None,
           phone_column: str | None, phone_region: str | None, include_user_id: bool,
           changes_since: str | None, sync: str | None) -> None:
    """Write an audience's members to a file, optionally joined to customer data, hashed for an ad
    platform (--platform), or as the members to add and remove since the last export (--changes-since)."""
    from ..segments.export import export_audience

    with errors_as_exit_codes():
        pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
        region = phone_region or (project_setting("phone_region") if platform else None)
        result = export_audience(
            pipeline, audience, output_dir=output_dir, filename=filename, fmt=fmt, overwrite=overwrite,
            customers=customers, customers_table=customers_table, customer_key=customer_key,
            opt_out_column=None if no_opt_out_column else opt_out_column, keep_unmatched=keep_unmatched,
            opt_outs_only=opt_outs_only, platform=platform, email_column=email_column,
            phone_column=phone_column, phone_region=region, include_user_id=include_user_id,
            changes_since=changes_since, sync=sync,
        )
        what = f"{platform} customer list of {audience}" if platform else audience
        if result.changes_since is None:
            click.echo(f"Wrote {result.rows:,} rows of {what} ({result.members:,} members, build"
                       f" {result.build_id}) to {result.path}")
        else:
            click.echo(f"Wrote the changes of {what} since {result.changes_since.isoformat()} (build"
                       f" {result.build_id}, sync {result.sync!r}): {result.rows:,} to add to {result.path},"
                       f" {result.removed:,} to remove to {result.remove_path}")
        if result.joined:
            click.echo(f"  {result.unmatched:,} members had no customer record"
                       f" ({'kept' if keep_unmatched else 'left out'}); {result.opted_out:,} opted out (left out);"
                       f" {result.no_consent:,} without a recorded choice (left out)")
        if platform:
            hint = "; pass --phone-region for numbers without a country code" if result.unreadable_phones and not region else ""
            click.echo(f"  {result.unreadable_emails:,} emails and {result.unreadable_phones:,} phones could not be"
                       f" read (left out{hint}); {result.no_identifier:,} customers had no usable identifier (left out)")
            if result.unremovable:
                click.echo(f"  {result.unremovable:,} members to remove have no usable identifier: the list cannot name them")
