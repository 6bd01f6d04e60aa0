"""Example pipelines for Algolia Advanced Personalization profiles, one function per use case.

Credentials come from dlt config: ``.dlt/secrets.toml`` ``[sources.algolia_profiles]``
``application_id`` / ``api_key``, or ``SOURCES__ALGOLIA_PROFILES__APPLICATION_ID`` / ``..._API_KEY``.
Every function takes a dlt destination name (``duckdb`` by default, or ``postgres``, ``bigquery``,
``snowflake``... configured the dlt way) and returns dlt's ``LoadInfo``.

Run ``python pipelines/algolia_profiles_pipeline.py --emulator`` to try them all against the bundled
emulator instead of a real Algolia application.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import dlt

from algolia_profiles_source import algolia_profiles


def load_incremental(destination: Any = "duckdb", **source_args: Any) -> Any:
    """Loads every profile on the first run, then only profiles updated since (schedule it hourly).

    Each run starts ``overlap_seconds`` (default one hour) before the newest ``lastUpdatedAt``
    already loaded, and merges by ``user_id``, so batch recomputes sharing a timestamp and
    back-dated profiles are never missed.
    """
    pipeline = dlt.pipeline(
        pipeline_name="algolia_profiles", destination=destination, dataset_name="algolia"
    )
    return pipeline.run(algolia_profiles(**source_args))


def reconcile_deletions(destination: Any = "duckdb", **source_args: Any) -> Any:
    """Walks every profile and marks users that are gone from Algolia (deleted, or expired after
    90 days) as deleted: ``users.deleted_at`` is set and they leave every audience. Schedule it
    daily next to the hourly incremental load; it costs one full export.
    """
    from algolia_profiles_source.pipeline import load_profiles

    pipeline = dlt.pipeline(
        pipeline_name="algolia_profiles", destination=destination, dataset_name="algolia"
    )
    return load_profiles(pipeline, reconcile=True, **source_args).load_info


def backfill_window(
    start_date: str, end_date: str, destination: Any = "duckdb", **source_args: Any
) -> Any:
    """Loads the profiles updated inside [start_date, end_date) without moving the incremental cursor.

    Use it to repair or re-read a past window next to the scheduled incremental load: the same
    pipeline and tables, merged by ``user_id``.
    """
    pipeline = dlt.pipeline(
        pipeline_name="algolia_profiles", destination=destination, dataset_name="algolia"
    )
    return pipeline.run(algolia_profiles(start_date=start_date, end_date=end_date, **source_args))


def load_audience(
    affinity: Optional[list] = None, destination: Any = "duckdb", **source_args: Any
) -> Any:
    """Loads only the users matching an affinity filter (all items must match), e.g. campers.

    A separate pipeline and dataset, so that the filtered tables never mix with the full export.
    """
    pipeline = dlt.pipeline(
        pipeline_name="algolia_profiles_camping",
        destination=destination,
        dataset_name="algolia_camping",
    )
    return pipeline.run(
        algolia_profiles(affinity=affinity or ["category:Camping"], **source_args)
    )


if __name__ == "__main__":
    if "--emulator" in sys.argv:
        from algolia_profiles_source.emulator import Emulator

        with Emulator(n_users=1000, seed=7, app_id="DEMO_APP", api_key="demo-key") as emu:
            creds = dict(application_id="DEMO_APP", api_key="demo-key", base_url=emu.base_url)
            print(load_incremental(**creds))
            print(reconcile_deletions(**creds))
            print(backfill_window("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z", **creds))
            print(load_audience(**creds))
    else:
        print(load_incremental())
