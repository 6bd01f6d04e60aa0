"""The ``algolia-profiles`` command: ``demo``, ``load`` and ``emulator``.

Exit codes: 0 success, 1 the run failed (API unavailable, malformed data), 2 bad usage or
configuration (the message says what to fix).
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence

import click

from .exceptions import AlgoliaProfilesError, ConfigurationError
from .pipeline import DEFAULT_DATASET_NAME, DEFAULT_PIPELINE_NAME

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DEMO_APP_ID = "DEMO_APP"
DEMO_API_KEY = "demo-key-not-secret"


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
    help="Where the DuckDB file and the pipeline's working files go.",
)
def demo(n_users: int, seed: int, directory: str) -> None:
    """Start the bundled emulator, load its profiles into a local DuckDB file, then load changes.

    No Algolia account needed.
    """
    from .emulator import Emulator
    from .pipeline import load_profiles, make_pipeline

    workdir = Path(directory).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "algolia_profiles_demo.duckdb"
    with _errors_as_exit_codes(), Emulator(
        n_users=n_users, seed=seed, app_id=DEMO_APP_ID, api_key=DEMO_API_KEY
    ) as emu:
        click.echo(f"Emulator serving {len(emu.store)} synthetic profiles at {emu.base_url}")
        pipeline = make_pipeline(
            pipeline_name="algolia_profiles_demo",
            duckdb_path=str(db_path),
            pipelines_dir=str(workdir / "pipelines"),
        )
        source_args = dict(
            application_id=DEMO_APP_ID, api_key=DEMO_API_KEY, base_url=emu.base_url, page_size=500
        )
        first = load_profiles(pipeline, **source_args)
        click.echo(
            f"\n1) Full load: {first.run.get('profiles', 0)} profiles in"
            f" {first.run.get('pages', 0)} pages ({first.run.get('requests', 0)} requests)"
        )
        _echo_counts(first.row_counts)

        changed = _simulate_changes(emu)
        second = load_profiles(pipeline, **source_args)
        click.echo(
            f"\n2) {changed} profiles changed in Algolia; the incremental run sent"
            f" startDate={second.run.get('params', {}).get('startDate')} and read"
            f" {second.run.get('profiles', 0)} profiles in {second.run.get('pages', 0)} pages"
        )
        _echo_counts(second.row_counts)
        _echo_top_affinities(pipeline)

    click.echo(
        "\nNext:\n"
        f"  duckdb {db_path} \"SELECT * FROM algolia.user_affinities LIMIT 10\"\n"
        "  algolia-profiles emulator --users 100000          # serve the emulator on :8787\n"
        "  algolia-profiles load --destination duckdb        # your real Algolia app: set\n"
        "      SOURCES__ALGOLIA_PROFILES__APPLICATION_ID and SOURCES__ALGOLIA_PROFILES__API_KEY\n"
        "  python pipelines/algolia_profiles_pipeline.py     # the example pipelines"
    )


@cli.command()
@click.option("--destination", default="duckdb", help="A dlt destination name (duckdb, postgres, bigquery, snowflake...).")
@click.option("--dataset-name", default=DEFAULT_DATASET_NAME, help="Dataset (schema) the tables land in.")
@click.option("--pipeline-name", default=DEFAULT_PIPELINE_NAME, help="dlt pipeline name (state and working files).")
@click.option("--region", default=None, help="Analytics region us|eu [config: sources.algolia_profiles.region, default us].")
@click.option("--base-url", default=None, help="Override the API host [config: sources.algolia_profiles.base_url].")
@click.option("--indices", multiple=True, help="Only users with affinities on all these indices (repeatable).")
@click.option("--affinity", multiple=True, help="Only users matching all of these, name or name:value (repeatable).")
@click.option("--start-date", default=None, help="Only profiles updated after this RFC 3339 instant.")
@click.option("--end-date", default=None, help="Only profiles updated before this instant (a backfill window; the cursor is not moved).")
@click.option("--page-size", type=int, default=None, help="Profiles per request, 1..1000 [config default 1000].")
def load(
    destination: str,
    dataset_name: str,
    pipeline_name: str,
    region: Optional[str],
    base_url: Optional[str],
    indices: Sequence[str],
    affinity: Sequence[str],
    start_date: Optional[str],
    end_date: Optional[str],
    page_size: Optional[int],
) -> None:
    """Load profiles from the real API (credentials from dlt config: .dlt/secrets.toml or env)."""
    from .pipeline import load_profiles, make_pipeline

    args: Dict[str, Any] = {
        "region": region,
        "base_url": base_url,
        "indices": list(indices) or None,
        "affinity": list(affinity) or None,
        "start_date": start_date,
        "end_date": end_date,
        "page_size": page_size,
    }
    with _errors_as_exit_codes():
        pipeline = make_pipeline(pipeline_name, destination, dataset_name)
        result = load_profiles(pipeline, **{k: v for k, v in args.items() if v is not None})
        run = result.run
        click.echo(
            f"Loaded {run.get('profiles', 0)} profiles in {run.get('pages', 0)} pages"
            f" ({run.get('requests', 0)} requests, {run.get('retries', 0)} retries,"
            f" {run.get('throttled', 0)} throttled) into {destination}:{dataset_name}"
        )
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


def _simulate_changes(emu: Any) -> int:
    """Updates a slice of the emulator's profiles the way a batch recompute would."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    users = emu.store.users()
    changed = 0
    for profile in users[:: max(1, len(users) // 50)]:
        profile = dict(profile)
        profile["lastUpdatedAt"] = stamp
        profile["affinities"] = [
            dict(a, lastUpdatedAt=stamp, score=min(20, (a.get("score") or 1) + 1))
            for a in profile.get("affinities", [])[:-1]
        ]
        emu.store.upsert(profile)
        changed += 1
    return changed


def _echo_counts(counts: Dict[str, int]) -> None:
    for table, count in counts.items():
        click.echo(f"   {table:<24} {count:>10,} rows")


def _echo_top_affinities(pipeline: Any) -> None:
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("user_affinities")
        rows = client.execute_sql(
            f"SELECT name, value, count(*) AS users, round(avg(score), 1) AS avg_score"
            f" FROM {table} GROUP BY name, value ORDER BY users DESC, name, value LIMIT 8"
        )
    click.echo("\nMost common affinities:")
    for name, value, users, avg_score in rows:
        click.echo(f"   {name + ':' + value:<40} {users:>7,} users  avg score {avg_score}")


@contextmanager
def _errors_as_exit_codes() -> Iterator[None]:
    """Prints the first error of ours (or dlt's config error) and exits 1 or 2; no traceback."""
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
        raise
    except Exception as error:  # noqa: BLE001 - the CLI's last line of defence
        ours = _find(error, AlgoliaProfilesError)
        if ours is not None:
            code = EXIT_USAGE if isinstance(ours, ConfigurationError) else EXIT_FAILED
            click.echo(f"error: {ours}", err=True)
            raise SystemExit(code) from None
        from dlt.common.configuration.exceptions import ConfigurationException

        config_error = _find(error, ConfigurationException)
        if config_error is not None:
            click.echo(f"error: configuration: {config_error}", err=True)
            raise SystemExit(EXIT_USAGE) from None
        if os.environ.get("ALGOLIA_PROFILES_TRACEBACK"):
            raise
        click.echo(f"error: {type(error).__name__}: {error}", err=True)
        raise SystemExit(EXIT_FAILED) from None


def _find(error: BaseException, kind: type) -> Optional[BaseException]:
    seen = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        stack.extend([current.__cause__, current.__context__, getattr(current, "exception", None)])
    return None


if __name__ == "__main__":  # pragma: no cover
    main()
