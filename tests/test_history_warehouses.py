"""Affinity history on Postgres (DuckDB: test_history.py), and its retention: after a short story of
changes (a score changes, an interest goes, a user is left without affinities, a user is deleted at
reconcile, nothing changes), history_retention_days has deleted what ended before the horizon and
nothing else: the loads after it reconstruct exactly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from algolia_profiles_source.emulator import Emulator
from algolia_profiles_source.load.history import last_boundary
from algolia_profiles_source.pipeline import load_profiles
from algolia_profiles_source.tables import HISTORY
from algolia_profiles_source.times import format_rfc3339
from tests.conftest import API_KEY, APP_ID, source_args
from tests.test_history import served_as_of
from tests.postgres_server import postgres_url  # noqa: F401  (session fixture)
from tests.test_postgres_load import pg_pipeline_factory  # noqa: F401  (fixture)
from tests.warehouses.bigquery_server import bigquery_destination, bigquery_endpoint  # noqa: F401  (fixtures)
from tests.warehouses.fixtures import fakesnow_db, snowflake_pipeline_factory  # noqa: F401  (fixtures)

START = datetime(2025, 3, 1, tzinfo=timezone.utc)


def served(emu: Emulator) -> set[tuple[str, str, str, float]]:
    return {(p["userID"], a["name"], a["value"], float(a["score"])) for p in emu.store.users() for a in p["affinities"]}


def closed_before(pipeline: Any, at: datetime) -> int:
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(HISTORY)
        return client.execute_sql(f"SELECT COUNT(*) FROM {table} WHERE _dlt_valid_to <= %s", at)[0][0]


def story(pipeline: Any, retention_days: float | None = None, idle_load: bool = False,
          loads_wanted: int = 4) -> list[tuple[datetime, set[Any]]]:
    """Four loads (or the first ``loads_wanted``), 10-20 simulated days apart, and a fifth with nothing
    changed with ``idle_load``; returns each load's boundary and what it served."""
    loads = []
    with Emulator(n_users=30, seed=4, app_id=APP_ID, api_key=API_KEY, now=START) as emu:
        args = dict(history=True, history_retention_days=retention_days, page_size=100)

        def load(reconcile: bool = False) -> None:
            load_profiles(pipeline, reconcile=reconcile, **source_args(emu, **args))
            loads.append((last_boundary(pipeline), served(emu)))

        load()
        users = emu.store.users()
        stamp = format_rfc3339(START + timedelta(days=10))
        first, second, third = users[0], users[1], users[2]
        first["affinities"][0]["score"] = 21 - first["affinities"][0]["score"]  # score changes
        second["affinities"] = second["affinities"][1:]  # an interest goes
        third["affinities"] = []  # every interest goes
        for profile in (first, second, third):
            emu.store.upsert(dict(profile, lastUpdatedAt=stamp))
        load()
        assert emu.store.delete(users[3]["userID"])  # deleted: only a reconcile sees it
        third["affinities"] = [{"name": "brand", "value": "Patagonia", "score": 12, "indices": ["products_en_US"],
                                "lastUpdatedAt": format_rfc3339(START + timedelta(days=20))}]
        emu.store.upsert(dict(third, lastUpdatedAt=format_rfc3339(START + timedelta(days=20))))
        load(reconcile=True)
        if loads_wanted == 3:
            return loads
        second["affinities"] = second["affinities"][1:]
        emu.store.upsert(dict(second, lastUpdatedAt=format_rfc3339(START + timedelta(days=40))))
        load()
        if idle_load:
            load()
    return loads


def check_exact(pipeline: Any, loads: list[tuple[datetime, set[Any]]], first: int = 0) -> None:
    for boundary, expected in loads[first:]:
        assert served_as_of(pipeline, boundary) == expected, boundary


def test_history_on_postgres_with_retention(pg_pipeline_factory):  # noqa: F811
    """DuckDB has the simulated year (test_history.py); here Postgres, with a retention of 5 days."""
    pipeline = pg_pipeline_factory()
    loads = story(pipeline, retention_days=5, idle_load=True)
    assert loads[-1][0] > loads[-2][0] and loads[-1][1] == loads[-2][1]  # nothing changed: nothing closed
    # the last load pruned what ended before day 40 - 5 days (at days 10 and 20); what ended at day 40
    # (the second user's interest) stays
    assert closed_before(pipeline, loads[2][0]) == 0
    assert closed_before(pipeline, loads[3][0]) > 0
    check_exact(pipeline, loads, first=3)
    assert served_as_of(pipeline, loads[0][0]) != loads[0][1]  # older states are gone


@pytest.mark.parametrize("days", [-1, "many", float("nan")])
def test_retention_must_be_positive(days):
    from algolia_profiles_source import algolia_profiles
    from algolia_profiles_source.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"history_retention_days must be a positive number of days"):
        algolia_profiles(application_id=APP_ID, api_key=API_KEY, base_url="http://127.0.0.1:9",
                         history=True, history_retention_days=days)


def test_history_on_snowflake(snowflake_pipeline_factory):  # noqa: F811
    """Three loads: fakesnow translates every statement through sqlglot, each load costs seconds."""
    pipeline = snowflake_pipeline_factory()
    loads = story(pipeline, loads_wanted=3)
    check_exact(pipeline, loads)


def test_history_on_bigquery(bigquery_destination, tmp_path):  # noqa: F811
    """Three loads through dlt's bigquery destination on bqemulator: the scd2 merge and this tool's
    closing of deleted users' versions run there too."""
    from algolia_profiles_source.load.pipeline import make_pipeline

    pipeline = make_pipeline("bigquery_history", destination=bigquery_destination(), dataset_name="history_e2e",
                             pipelines_dir=str(tmp_path / "pipelines"))
    loads = story(pipeline, loads_wanted=3)
    check_exact(pipeline, loads)
