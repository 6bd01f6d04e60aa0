"""The ``forget`` command: a right-to-erasure request, carried out in the warehouse."""

from __future__ import annotations

import click

from .common import EXIT_USAGE, errors_as_exit_codes, open_pipeline, pipeline_options


@click.command("forget")
@click.argument("user_ids", nargs=-1, metavar="[USER_ID]...")
@pipeline_options
@click.option("--file", "id_file", default=None, type=click.Path(dir_okay=False, allow_dash=True),
              help="A file of user IDs, one a line ('-': standard input, which keeps them out of the shell history).")
@click.option("--table", default=None, help="A warehouse table holding the user IDs (e.g. privacy.erasure_requests).")
@click.option("--column", default="user_id", help="The column of --table holding the user IDs.")
@click.option("--show-ids", is_flag=True, help="Print each user ID with the rows removed (not printed by default).")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
def forget(user_ids: tuple[str, ...], pipeline_name: str, destination: str, dataset_name: str, workdir: str | None,
           id_file: str | None, table: str | None, column: str, show_ids: bool, as_json: bool) -> None:
    """Erase users: delete their rows from every table this tool writes (profiles, affinities,
    rejected records, audience members and membership events) and keep them out of later loads
    (a suppression list of SHA-256 hashes in the warehouse). Prints a receipt; running it again
    removes nothing."""
    import json

    from ..load.erasure import forget_users

    if not user_ids and id_file is None and table is None:
        click.echo("error: no user IDs given: pass USER_ID arguments, --file FILE or --table TABLE"
                   " (see 'algolia-profiles forget --help')", err=True)
        raise SystemExit(EXIT_USAGE)
    with errors_as_exit_codes():
        pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir, reading=True)
        receipt = forget_users(pipeline, user_ids, file=id_file, table=table, column=column)
    if as_json:
        click.echo(json.dumps(receipt.as_dict(show_ids=show_ids), indent=2))
        return
    ids = "" if show_ids else " (IDs not shown: --show-ids prints them)"
    if receipt.total_removed == 0:
        click.echo(f"Nothing left to remove for {receipt.requested:,} user ID(s){ids}: 0 rows in every table.")
    else:
        click.echo(f"Removed {receipt.total_removed:,} rows of {receipt.requested:,} user ID(s){ids}:")
    for name, count in receipt.removed.items():
        click.echo(f"   {name:<34} {count:>8,} rows")
    click.echo(f"Suppression list (erased_users, SHA-256 of each ID): {receipt.added:,} added,"
               f" {receipt.already_suppressed:,} already on it; later loads leave these users out.")
    if receipt.audiences:
        click.echo(f"They were members of {len(receipt.audiences)} audience(s): {', '.join(receipt.audiences)};"
                   " erase them from the lists exported from these audiences too.")
    if receipt.load_files_removed:
        click.echo(f"Deleted {receipt.load_files_removed:,} files of finished loads from the pipeline's folder.")
    if show_ids:
        for user_id, rows in sorted(receipt.rows_per_user.items()):
            click.echo(f"   {user_id}: {rows:,} rows" + ("" if rows else " (none held)"))
