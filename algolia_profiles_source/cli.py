"""The ``algolia-profiles`` command: ``demo``, ``load``, ``emulator``, ``segments``, ``export``,
``report``, ``status`` and ``doctor``.

Exit codes: 0 success, 1 the run failed (API unavailable, malformed data), 2 bad usage or
configuration (the message says what to fix).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import click

from .demo import DEMO_API_KEY, DEMO_APP_ID
from .exceptions import AlgoliaProfilesError, ConfigurationError
from .pipeline import DEFAULT_DATASET_NAME, DEFAULT_PIPELINE_NAME

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


def _pipeline(pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str]) -> Any:
    from .pipeline import make_pipeline

    return make_pipeline(pipeline_name, destination, dataset_name, workdir=workdir)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="algolia-profiles", standalone_mode=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("-v", "--verbose", is_flag=True, help="Log each request and retry (never the API key).")
def cli(verbose: bool) -> None:
    """Export Algolia Advanced Personalization profiles into a warehouse with dlt."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@click.option("--users", "n_users", default=2000, help="Synthetic profiles the emulator serves.")
@click.option("--seed", default=42, help="Seed of the synthetic data.")
@click.option(
    "--dir",
    "directory",
    default="algolia_profiles_demo",
    type=click.Path(file_okay=False),
    help="Where the DuckDB file, the pipeline's working files, customers.csv and exports go.",
)
def demo(n_users: int, seed: int, directory: str) -> None:
    """Emulator -> load -> changes -> incremental load -> example audiences -> export.

    No Algolia account needed; everything lands in --dir.
    """
    from .demo import run_demo

    workdir = Path(directory).resolve()
    with _errors_as_exit_codes():
        result = run_demo(workdir, n_users, seed, click.echo)
    db = workdir / f"{DEFAULT_PIPELINE_NAME}.duckdb"
    click.echo(
        "\nNext:\n"
        f"  duckdb {db} \"SELECT * FROM algolia.affinity_catalog ORDER BY users DESC LIMIT 10\"   # DuckDB CLI\n"
        f"  algolia-profiles segments sizes --dir {directory}\n"
        f"  algolia-profiles segments show outdoor_enthusiasts --dir {directory}\n"
        f"  algolia-profiles export brand_loyalists --format parquet --dir {directory}"
        f" --customers {result['customers']} --output-dir {workdir / 'exports'}\n"
        "  algolia-profiles emulator --users 100000          # serve the emulator on :8787\n"
        "  algolia-profiles load --dir warehouse             # your real Algolia app (see README)"
    )


@cli.command()
@pipeline_options
@click.option("--region", default=None, help="Analytics region us|eu [config: sources.algolia_profiles.region / env SOURCES__ALGOLIA_PROFILES__REGION; default us].")
@click.option("--base-url", default=None, help="Override the API host [config: sources.algolia_profiles.base_url / env SOURCES__ALGOLIA_PROFILES__BASE_URL].")
@click.option("--indices", multiple=True, help="Only users with affinities on all these indices, repeatable [config: sources.algolia_profiles.indices / env SOURCES__ALGOLIA_PROFILES__INDICES].")
@click.option("--affinity", multiple=True, help="Only users matching all of these, name or name:value, repeatable [config: sources.algolia_profiles.affinity / env SOURCES__ALGOLIA_PROFILES__AFFINITY].")
@click.option("--start-date", default=None, help="Only profiles updated after this RFC 3339 instant; a later run starts from its cursor if that is later (use --end-date too for a backfill) [config: sources.algolia_profiles.start_date / env SOURCES__ALGOLIA_PROFILES__START_DATE].")
@click.option("--end-date", default=None, help="Only profiles updated before this instant: a backfill window, the cursor is not moved [config: sources.algolia_profiles.end_date / env SOURCES__ALGOLIA_PROFILES__END_DATE].")
@click.option("--page-size", type=int, default=None, help="Profiles per request, 1..1000 [config: sources.algolia_profiles.page_size / env SOURCES__ALGOLIA_PROFILES__PAGE_SIZE; default 1000].")
@click.option("--reconcile", is_flag=True, help="Walk every profile and mark the ones gone from Algolia as deleted (run it daily).")
@click.option("--min-seen-share", type=float, default=0.5, help="With --reconcile: mark nobody deleted unless the walk saw at least this share of the live users (a guard against a wrong application or proxy). Lower it only when Algolia really dropped that many profiles.")
def load(
    pipeline_name: str,
    destination: str,
    dataset_name: str,
    workdir: Optional[str],
    region: Optional[str],
    base_url: Optional[str],
    indices: Sequence[str],
    affinity: Sequence[str],
    start_date: Optional[str],
    end_date: Optional[str],
    page_size: Optional[int],
    reconcile: bool,
    min_seen_share: float,
) -> None:
    """Load profiles from the real API (credentials from dlt config: .dlt/secrets.toml or env)."""
    from .pipeline import load_profiles

    args: Dict[str, Any] = {
        "region": region,
        "base_url": base_url,
        "indices": list(indices) or None,
        "affinity": list(affinity) or None,
        "start_date": start_date,
        "end_date": end_date,
        "page_size": page_size,
    }
    from .progress import Reporter, reporting

    with _errors_as_exit_codes(), reporting(Reporter()) as progress:
        pipeline = _pipeline(pipeline_name, destination, dataset_name, workdir)
        progress.stage(f"walking {'every profile (reconcile)' if reconcile else 'profiles'} of the API...")
        result = load_profiles(pipeline, reconcile=reconcile, min_seen_share=min_seen_share, **{k: v for k, v in args.items() if v is not None})
        progress.stage(f"walk and load done in {time.monotonic() - progress.started:,.1f}s")
        run = result.run
        click.echo(
            f"Loaded {run.get('profiles', 0)} profiles in {run.get('pages', 0)} pages"
            f" ({run.get('requests', 0)} requests, {run.get('retries', 0)} retries,"
            f" {run.get('throttled', 0)} throttled) into {destination}:{dataset_name}"
            + (f" ({result.database})" if result.database else "")
        )
        if reconcile:
            click.echo(f"Reconcile: {run.get('deleted', 0):,} profiles gone from Algolia marked deleted")
        _echo_counts(result.row_counts)


@cli.command()
@click.option("--host", default="127.0.0.1", help="Interface to listen on (loopback only is sensible).")
@click.option("--port", default=8787, help="Port to listen on (0 picks a free one).")
@click.option("--users", "n_users", default=10000, help="Synthetic profiles to serve.")
@click.option("--seed", default=42, help="Seed of the synthetic data.")
@click.option("--app-id", default=DEMO_APP_ID, help="Application ID the emulator accepts.")
@click.option("--api-key", default=DEMO_API_KEY, help="API key the emulator accepts.")
@click.option("--latency", default=0.0, help="Seconds added to every API response.")
@click.option("--rate-limit", default=500, help="Calls allowed per window.")
@click.option("--rate-window", default=60.0, help="Rate-limit window in seconds.")
@click.option("--fault-rate", default=0.0, help="Share of API calls that fail (0..1).")
@click.option("--fault-kinds", default="500,503_html,429,reset,truncated", help="Comma-separated fault kinds.")
@click.option("--last-page-token", type=click.Choice(["missing", "null", "empty"]), default="missing", help="How the last page ends the walk.")
def emulator(
    host: str,
    port: int,
    n_users: int,
    seed: int,
    app_id: str,
    api_key: str,
    latency: float,
    rate_limit: int,
    rate_window: float,
    fault_rate: float,
    fault_kinds: str,
    last_page_token: str,
) -> None:
    """Serve the Advanced Personalization API emulator until interrupted."""
    from .emulator import Emulator

    with _errors_as_exit_codes(), Emulator(
        n_users=n_users,
        seed=seed,
        app_id=app_id,
        api_key=api_key,
        host=host,
        port=port,
        latency=latency,
        rate_limit=rate_limit,
        rate_window=rate_window,
        fault_rate=fault_rate,
        fault_kinds=tuple(k.strip() for k in fault_kinds.split(",") if k.strip()),
        last_page_token=last_page_token,
    ) as emu:
        click.echo(f"Serving {len(emu.store)} profiles at {emu.base_url} (Ctrl-C to stop)")
        click.echo(
            f"  export SOURCES__ALGOLIA_PROFILES__BASE_URL={emu.base_url}\n"
            f"  export SOURCES__ALGOLIA_PROFILES__APPLICATION_ID={app_id}\n"
            "  export SOURCES__ALGOLIA_PROFILES__API_KEY=<the --api-key value>"
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopped")


def _echo_counts(counts: Dict[str, int]) -> None:
    for table, count in counts.items():
        click.echo(f"   {table:<24} {count:>10,} rows")


def _print_table(title: str, rows: List[Dict[str, Any]], columns: Sequence[str]) -> None:
    """A readable table on a terminal, plain aligned text otherwise."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        numeric = bool(rows) and isinstance(rows[0].get(column), (int, float))
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*[_cell(row.get(column)) for column in columns])
    Console(soft_wrap=True).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@cli.group()
def segments() -> None:
    """Build and inspect audiences (docs/audiences.md) inside the destination."""


@segments.command("build")
@pipeline_options
@click.option("--file", "audience_file", default=None, type=click.Path(dir_okay=False),
              help="Audience definitions (TOML or YAML) [default: the bundled example audiences].")
@click.option("--as-of", default=None, help="RFC 3339 instant that 'within N days' counts back from [default: now].")
@click.option("--skip-models", is_flag=True, help="Do not rebuild the staging views, affinity_catalog and user_top_affinities.")
def segments_build(pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str],
                   audience_file: Optional[str], as_of: Optional[str], skip_models: bool) -> None:
    """Validate the audience file, then build models and every audience in the warehouse."""
    from .query import parse_datetime
    from .segments import build_segments
    from .demo import EXAMPLE_AUDIENCES

    with _errors_as_exit_codes():
        pipeline = _pipeline(pipeline_name, destination, dataset_name, workdir)
        result = build_segments(
            pipeline, audience_file or EXAMPLE_AUDIENCES, as_of=parse_datetime(as_of, "as_of"),
            models=not skip_models,
        )
        _print_table(f"Build {result.build_id}", result.sizes,
                     ("segment", "members", "entered", "exited", "share_of_users"))


def _read(pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str], table: str,
          order_by: Optional[str] = None, where: Any = None) -> List[Dict[str, Any]]:
    from .segments.build import pipeline_target, read_table

    pipeline = _pipeline(pipeline_name, destination, dataset_name, workdir)
    with pipeline.sql_client() as client:
        try:
            return read_table(client, pipeline_target(pipeline, client), table, order_by, where)
        except Exception as error:
            raise ConfigurationError(
                f"cannot read {table} from {destination}:{dataset_name} ({type(error).__name__}):"
                " run `algolia-profiles segments build` first"
            ) from None


@segments.command("list")
@pipeline_options
def segments_list(pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str]) -> None:
    """The audiences of the last build."""
    with _errors_as_exit_codes():
        rows = _read(pipeline_name, destination, dataset_name, workdir, "segment_sizes", "segment")
        for row in rows:
            click.echo(row["segment"])


@segments.command("sizes")
@pipeline_options
def segments_sizes(pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str]) -> None:
    """Members, entries and exits of every audience in the last build."""
    with _errors_as_exit_codes():
        rows = _read(pipeline_name, destination, dataset_name, workdir, "segment_sizes", "segment")
        built = rows[0]["built_at"] if rows else "never"
        _print_table(f"Audience sizes (built {built})", rows, ("segment", "members", "entered", "exited", "share_of_users"))


@segments.command("overlaps")
@pipeline_options
def segments_overlaps(pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str]) -> None:
    """Pairwise overlaps of the audiences (count, share of each, Jaccard)."""
    with _errors_as_exit_codes():
        rows = _read(pipeline_name, destination, dataset_name, workdir, "segment_overlaps", "segment_a")
        _print_table("Audience overlaps", rows, ("segment_a", "segment_b", "overlap", "pct_of_a", "pct_of_b", "jaccard"))


@segments.command("show")
@click.argument("audience")
@pipeline_options
@click.option("--limit", default=20, help="How many members to show (highest score first).")
def segments_show(audience: str, pipeline_name: str, destination: str, dataset_name: str,
                  workdir: Optional[str], limit: int) -> None:
    """Size, history and top members of one audience."""
    from sqlglot import exp

    with _errors_as_exit_codes():
        where = exp.column("segment").eq(exp.Literal.string(audience))
        sizes = _read(pipeline_name, destination, dataset_name, workdir, "segment_sizes", None, where)
        if not sizes:
            built = [r["segment"] for r in _read(pipeline_name, destination, dataset_name, workdir, "segment_sizes")]
            raise ConfigurationError(f"audience {audience!r} has not been built (built: {', '.join(built) or 'none'})")
        history = _read(pipeline_name, destination, dataset_name, workdir, "segment_builds", "built_at", where)
        members = _read(pipeline_name, destination, dataset_name, workdir, "segment_members", None, where)
        members.sort(key=lambda r: (-(r["score"] if r["score"] is not None else -1), r["user_id"]))
        _print_table(f"{audience}: {sizes[0]['members']:,} members", history[-10:],
                     ("built_at", "members", "entered", "exited"))
        _print_table(f"Top {min(limit, len(members))} members", members[:limit],
                     ("user_id", "score", "matched_affinities"))


@segments.command("sql")
@click.option("--file", "audience_file", default=None, type=click.Path(dir_okay=False),
              help="Audience definitions [default: the bundled example audiences].")
@click.option("--dialect", type=click.Choice(["duckdb", "postgres", "bigquery", "snowflake"]), default="duckdb")
@click.option("--dataset-name", default=DEFAULT_DATASET_NAME, help="Dataset the SQL refers to.")
def segments_sql(audience_file: Optional[str], dialect: str, dataset_name: str) -> None:
    """Print the SQL a build runs, for review (no connection needed)."""
    from datetime import datetime, timezone

    from .demo import EXAMPLE_AUDIENCES
    from .segments import load_definitions, model_statements, segment_statements, static_target

    with _errors_as_exit_codes():
        file = load_definitions(audience_file or EXAMPLE_AUDIENCES)
        target = static_target(dialect, dataset_name)
        built_at = datetime.now(timezone.utc)
        statements = model_statements(target) + segment_statements(file, target, built_at, "BUILD_ID")
        for statement in statements:
            click.echo(f"-- {statement.label}\n{statement.tree.sql(dialect=dialect, pretty=True)};\n")


@cli.command()
@click.argument("audience")
@pipeline_options
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl"]), default="csv", help="Output format.")
@click.option("--output-dir", default="exports", type=click.Path(file_okay=False), help="Directory the file is written to.")
@click.option("--output", "filename", default=None, help="File name inside --output-dir [default: AUDIENCE.FORMAT].")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
@click.option("--customers", default=None, type=click.Path(dir_okay=False), help="Customer data file (CSV or Parquet) to join.")
@click.option("--customers-table", default=None, help="Customer data table in the warehouse to join (e.g. crm.customers).")
@click.option("--customer-key", default="user_token", help="Customer column holding the Algolia userID/userToken.")
@click.option("--opt-out-column", default="opted_out", help="Customer column that marks opted-out customers (dropped).")
@click.option("--keep-unmatched", is_flag=True, help="Keep members without a customer record.")
def export(audience: str, pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str],
           fmt: str, output_dir: str, filename: Optional[str], overwrite: bool, customers: Optional[str],
           customers_table: Optional[str], customer_key: str, opt_out_column: str, keep_unmatched: bool) -> None:
    """Write an audience's members to a file, optionally joined to customer data."""
    from .segments.export import export_audience

    with _errors_as_exit_codes():
        pipeline = _pipeline(pipeline_name, destination, dataset_name, workdir)
        result = export_audience(
            pipeline, audience, output_dir=output_dir, filename=filename, fmt=fmt, overwrite=overwrite,
            customers=customers, customers_table=customers_table, customer_key=customer_key,
            opt_out_column=opt_out_column or None, keep_unmatched=keep_unmatched,
        )
        click.echo(f"Wrote {result.rows:,} rows of {audience} ({result.members:,} members) to {result.path}")
        if result.joined:
            click.echo(f"  {result.unmatched:,} members had no customer record"
                       f" ({'kept' if keep_unmatched else 'left out'}); {result.opted_out:,} opted out (left out)")


@cli.command("status")
@pipeline_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status_command(pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str], as_json: bool) -> None:
    """Last load, cursor and overlap, row counts, audiences, and whether a reconcile is due."""
    import json

    from .status import status

    with _errors_as_exit_codes():
        info = status(_pipeline(pipeline_name, destination, dataset_name, workdir))
        if as_json:
            click.echo(json.dumps(info, default=str, indent=2))
            return
        run = info["last_run"]
        click.echo(f"pipeline {info['pipeline']} -> {info['destination']}:{info['dataset']} ({info['working_dir']})")
        if info["database"]:
            click.echo(f"database: {info['database']}")
        if not run:
            click.echo("no load yet: run `algolia-profiles load` (or the demo)")
            return
        click.echo(
            f"last load: {run.get('started_at')} -> {run.get('finished_at')}, {run.get('profiles', 0):,} profiles,"
            f" {run.get('requests', 0)} requests, {run.get('retries', 0)} retries, {run.get('throttled', 0)} throttled,"
            f" {run.get('rejected', 0)} rejected{' (reconcile)' if run.get('reconcile') else ''}"
        )
        click.echo(f"cursor: {info['cursor']} (next run starts at {info['next_start_date']})")
        click.echo(f"reconcile: last {info['last_reconcile_at'] or 'never'}, {'due' if info['reconcile_due'] else 'not due'}")
        if info["pending_packages"]:
            click.echo("pending: a load package is waiting; the next load finishes it first")
        _echo_counts(info["tables"])
        if info["audiences"]:
            _print_table("Audiences", info["audiences"], ("segment", "members", "entered", "exited"))


@cli.command("doctor")
@pipeline_options
@click.option("--region", default=None, help="Region to check [config: sources.algolia_profiles.region].")
@click.option("--base-url", default=None, help="Host to check [config: sources.algolia_profiles.base_url].")
def doctor_command(pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str],
                   region: Optional[str], base_url: Optional[str]) -> None:
    """Check config files, credentials and ACLs (one cheap request), region and the destination."""
    from .status import doctor

    with _errors_as_exit_codes():
        checks = doctor(_pipeline(pipeline_name, destination, dataset_name, workdir), region, base_url)
        for check in checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        if not all(check.ok for check in checks):
            raise SystemExit(EXIT_USAGE)


@cli.command("report")
@pipeline_options
@click.option("--output", default="audience_report.html", type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def report_command(pipeline_name: str, destination: str, dataset_name: str, workdir: Optional[str],
                   output: str, overwrite: bool) -> None:
    """Write a self-contained HTML audience report (charts, no network needed to view it)."""
    from .report import write_report

    with _errors_as_exit_codes():
        path = write_report(_pipeline(pipeline_name, destination, dataset_name, workdir), output, overwrite)
        click.echo(f"Wrote {path.resolve()}")


@contextmanager
def _errors_as_exit_codes() -> Iterator[None]:
    """Prints the first error of ours (or dlt's config error) and exits 1 or 2; no traceback."""
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt, BrokenPipeError):
        raise  # click stops quietly on a closed pipe (`segments sql | head`)
    except Exception as error:  # noqa: BLE001 - the CLI's last line of defence
        if os.environ.get("ALGOLIA_PROFILES_TRACEBACK"):
            traceback.print_exc()
        ours = _find(error, AlgoliaProfilesError)
        if ours is not None:
            code = EXIT_USAGE if isinstance(ours, ConfigurationError) else EXIT_FAILED
            click.echo(f"error: {ours}", err=True)
            raise SystemExit(code) from None
        from .pipeline import busy_message, duckdb_lock_conflict

        conflict = duckdb_lock_conflict(error)
        if conflict is not None:  # a read while a load holds the file: try again later
            click.echo(f"error: {busy_message(conflict)}", err=True)
            raise SystemExit(EXIT_FAILED) from None
        unwritable = _unwritable_location(error)
        if unwritable is not None:
            click.echo(f"error: {unwritable}: choose a location you can write to (--dir, --output-dir or"
                       " --output)", err=True)
            raise SystemExit(EXIT_USAGE) from None
        from dlt.common.configuration.exceptions import ConfigurationException

        config_error = _find(error, ConfigurationException)
        if config_error is not None:
            click.echo(f"error: configuration: {config_error}", err=True)
            raise SystemExit(EXIT_USAGE) from None
        click.echo(f"error: {type(error).__name__}: {error}", err=True)
        raise SystemExit(EXIT_FAILED) from None


def _unwritable_location(error: BaseException) -> Optional[str]:
    """What is wrong when ``error`` comes from a path that cannot be created or written."""
    denied = _find(error, (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError))
    if isinstance(denied, OSError):
        return f"cannot use {denied.filename!r}: {denied.strerror}" if denied.filename else str(denied)
    duck = _find(error, Exception, lambda e: type(e).__name__ == "IOException" and (
        "Cannot open file" in str(e) or "Permission denied" in str(e)))
    return str(duck).removeprefix("IO Error: ") if duck is not None else None


def _find(error: BaseException, kind: Any, accept: Any = None) -> Optional[BaseException]:
    seen = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind) and (accept is None or accept(current)):
            return current
        stack.extend([current.__cause__, current.__context__, getattr(current, "exception", None)])
    return None


if __name__ == "__main__":  # pragma: no cover
    main()
