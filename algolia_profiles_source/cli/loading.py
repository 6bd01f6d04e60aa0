"""The commands that load profiles: ``demo``, ``load`` and ``emulator``."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..demo import DEMO_API_KEY, DEMO_APP_ID
from ..load.pipeline import DEFAULT_PIPELINE_NAME
from ..exceptions import ConfigurationError, find_cause
from .common import echo_counts, errors_as_exit_codes, open_pipeline, pipeline_options, project_setting

@click.command()
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
    from ..demo import run_demo

    workdir = Path(directory).resolve()
    with errors_as_exit_codes():
        result = run_demo(workdir, n_users, seed, click.echo)
    db = workdir / f"{DEFAULT_PIPELINE_NAME}.duckdb"
    click.echo(
        "\nNext:\n"
        f"  python -c \"import duckdb; duckdb.connect('{db}', read_only=True).sql("
        "'SELECT * FROM algolia.affinity_catalog ORDER BY users DESC LIMIT 10').show()\"\n"
        f"  algolia-profiles segments sizes --dir {directory}\n"
        f"  algolia-profiles segments show outdoor_enthusiasts --dir {directory}\n"
        f"  algolia-profiles export brand_loyalists --format parquet --dir {directory}"
        f" --customers {result['customers']} --output-dir {workdir / 'exports'}\n"
        "  algolia-profiles emulator --users 100000          # serve the emulator on :8787\n"
        "  algolia-profiles load --dir warehouse             # your real Algolia app (see README)"
    )


@click.command()
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
    workdir: str | None,
    region: str | None,
    base_url: str | None,
    indices: Sequence[str],
    affinity: Sequence[str],
    start_date: str | None,
    end_date: str | None,
    page_size: int | None,
    reconcile: bool,
    min_seen_share: float,
) -> None:
    """Load profiles from the real API (credentials from dlt config: .dlt/secrets.toml or env)."""
    from ..pipeline import load_profiles

    args: dict[str, Any] = {
        "region": region,
        "base_url": base_url,
        "indices": list(indices) or None,
        "affinity": list(affinity) or None,
        "start_date": start_date,
        "end_date": end_date,
        "page_size": page_size,
    }
    from ..extract.progress import Reporter, reporting

    with errors_as_exit_codes(), reporting(Reporter()) as progress, _gone_if_unconfigured(workdir or project_setting("dir")):
        pipeline = open_pipeline(pipeline_name, destination, dataset_name, workdir)
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
        echo_counts(result.row_counts)


@contextmanager
def _gone_if_unconfigured(folder: str | None) -> Iterator[None]:
    """Removes ``folder`` again when this command made it and then stopped on a setting missing or
    wrong before any load package was made: such a run leaves nothing behind."""
    made = folder is not None and not Path(folder).exists()
    try:
        yield
    except Exception as error:
        from dlt.common.configuration.exceptions import ConfigurationException

        if made and find_cause(error, (ConfigurationError, ConfigurationException)) is not None and not any(
            Path(folder).glob("pipelines/*/load/*/*")  # new, normalized or loaded packages
        ):
            shutil.rmtree(folder, ignore_errors=True)
        raise


@click.command()
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
    from ..emulator import Emulator

    with errors_as_exit_codes(), Emulator(
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
            f"  export SOURCES__ALGOLIA_PROFILES__API_KEY={api_key if api_key == DEMO_API_KEY else '<the --api-key value>'}"
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopped")
