"""Affinity history (``history = true``): a scaled-down year of daily changes in the emulator, loaded
after each step; as of each load's boundary, the history holds exactly the affinities Algolia served.

One module-scoped simulation (200 users, 12 steps of 30 days, reconciles where users were deleted)
serves every test here.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from algolia_profiles_source import algolia_profiles
from algolia_profiles_source.emulator import Emulator
from algolia_profiles_source.exceptions import ConfigurationError
from algolia_profiles_source.load.history import last_boundary
from algolia_profiles_source.load.pipeline import load_profiles, make_pipeline
from algolia_profiles_source.tables import HISTORY
from algolia_profiles_source.times import format_rfc3339
from tests.conftest import API_KEY, APP_ID, expected_snapshot, source_args, warehouse_snapshot

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
STEPS = 12
DAYS_PER_STEP = 30
VALUES = {"category": ["Camping", "Hiking", "Kids", "Running"], "brand": ["Patagonia", "Nike", "Arc'teryx"]}


def affinity_set(profiles: list[dict[str, Any]]) -> set[tuple[str, str, str, float]]:
    return {(p["userID"], a["name"], a["value"], float(a["score"])) for p in profiles for a in p["affinities"]}


def change_day(emu: Emulator, rng: random.Random, day: datetime, deleted: dict[str, dict[str, Any]]) -> bool:
    """One step of changes, stamped within ``day``; True when a user was deleted (needs a reconcile)."""
    users = emu.store.users()
    removed = False
    for n, profile in enumerate(rng.sample(users, 12)):
        stamp = format_rfc3339(day + timedelta(minutes=n))
        affinities = [dict(a) for a in profile["affinities"]]
        kind = n % 6
        if kind == 0 and affinities:  # a score changes
            a = rng.choice(affinities)
            a["score"] = max(1, min(20, a["score"] + rng.choice([-7, -3, 4, 8])))
        elif kind == 1:  # a new interest
            name = rng.choice(sorted(VALUES))
            value = rng.choice(VALUES[name])
            affinities = [a for a in affinities if (a["name"], a["value"]) != (name, value)]
            affinities.append({"name": name, "value": value, "indices": ["products_en_US"],
                               "score": rng.randint(1, 20), "lastUpdatedAt": stamp})
        elif kind == 2 and affinities:  # an interest gone
            affinities.remove(rng.choice(affinities))
        elif kind == 3 and n == 3 and rng.random() < 0.4:  # every affinity gone
            affinities = []
        elif kind == 4 and rng.random() < 0.3:  # the profile expires
            assert emu.store.delete(profile["userID"])
            deleted[profile["userID"]] = profile
            removed = True
            continue
        elif kind == 5 and deleted:  # a deleted profile comes back
            user_id = sorted(deleted)[0]
            back = deleted.pop(user_id)
            emu.store.upsert(dict(back, lastUpdatedAt=stamp))
            continue
        emu.store.upsert(dict(profile, affinities=affinities, lastUpdatedAt=stamp))
    return removed


def served_as_of(pipeline: Any, at: datetime) -> set[tuple[str, str, str, float]]:
    """The affinities the history says were served at ``at`` (markers left out)."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(HISTORY)
        rows = client.execute_sql(
            f"SELECT user_id, name, value, score FROM {table} WHERE name <> '' AND _dlt_valid_from <= %s"
            " AND (_dlt_valid_to IS NULL OR _dlt_valid_to > %s)", at, at)
    return {(u, n, v, float(s)) for u, n, v, s in rows}


@pytest.fixture(scope="module")
def year(tmp_path_factory: Any) -> dict[str, Any]:
    """Runs the simulated year; returns the pipeline, the emulator, and per load its boundary and
    the affinity set the emulator held when it ran."""
    folder = tmp_path_factory.mktemp("history")
    emu = Emulator(n_users=200, seed=11, app_id=APP_ID, api_key=API_KEY, now=START).start()
    pipeline = make_pipeline("history_year", duckdb_path=str(folder / "h.duckdb"),
                             pipelines_dir=str(folder / "pipelines"))
    rng = random.Random(18)
    loads: list[tuple[datetime, set[Any], bool]] = []
    deleted: dict[str, dict[str, Any]] = {}
    try:
        load_profiles(pipeline, **source_args(emu, page_size=100, history=True))
        loads.append((last_boundary(pipeline), affinity_set(emu.store.users()), False))
        for step in range(1, STEPS + 1):
            removed = change_day(emu, rng, START + timedelta(days=step * DAYS_PER_STEP), deleted)
            load_profiles(pipeline, reconcile=removed, **source_args(emu, page_size=100, history=True))
            loads.append((last_boundary(pipeline), affinity_set(emu.store.users()), removed))
        yield {"pipeline": pipeline, "emu": emu, "loads": loads}
    finally:
        emu.stop()


def test_history_reconstructs_every_load_exactly(year):
    pipeline, loads = year["pipeline"], year["loads"]
    boundaries = [b for b, _, _ in loads]
    assert boundaries == sorted(set(boundaries)), "each load has its own, later boundary"
    assert any(removed for _, _, removed in loads), "the simulation deleted users at some reconcile"
    # the snapshot tables are untouched by history: they hold exactly what the emulator holds now
    live = year["emu"].store.users()
    _, affinities = warehouse_snapshot(pipeline)
    live_ids = {p["userID"] for p in live}
    assert {k for k in affinities if k[0] in live_ids} == set(expected_snapshot(live)[1])
    for boundary, served, _ in loads:
        assert served_as_of(pipeline, boundary) == served, boundary


def test_history_at_five_random_points_in_the_year(year):
    """Any instant between two loads reads as the earlier load (what Algolia last served to us)."""
    pipeline, loads = year["pipeline"], year["loads"]
    rng = random.Random(5)
    for index in sorted(rng.sample(range(len(loads) - 1), 5)):
        (start, served, _), (end, _, _) = loads[index], loads[index + 1]
        at = start + (end - start) * rng.random()
        assert served_as_of(pipeline, at) == served, at
    assert served_as_of(pipeline, loads[0][0] - timedelta(microseconds=1)) == set()


def test_history_rows_are_versions(year):
    """Every open version is unique per (user, name, value); every closed one ends after it starts,
    and a user with zero affinities holds one open marker."""
    with year["pipeline"].sql_client() as client:
        table = client.make_qualified_table_name(HISTORY)
        duplicates = client.execute_sql(
            f"SELECT user_id, name, value, COUNT(*) FROM {table} WHERE _dlt_valid_to IS NULL"
            " GROUP BY user_id, name, value HAVING COUNT(*) > 1")
        backwards = client.execute_sql(f"SELECT COUNT(*) FROM {table} WHERE _dlt_valid_to <= _dlt_valid_from")
        markers = client.execute_sql(
            f"SELECT COUNT(*) FROM {table} WHERE name = '' AND _dlt_valid_to IS NULL")
    assert duplicates == [] and backwards[0][0] == 0
    empty_now = [p for p in year["emu"].store.users() if not p["affinities"]]
    assert markers[0][0] >= len(empty_now)


def test_history_setting_errors():
    with pytest.raises(ConfigurationError, match="history_retention_days must be a positive number"):
        algolia_profiles(application_id=APP_ID, api_key=API_KEY, base_url="http://127.0.0.1:9",
                         history=True, history_retention_days=0)
