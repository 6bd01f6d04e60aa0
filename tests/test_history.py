"""Affinity history (``history = true``): a scaled-down year of daily changes in the emulator, loaded
after each step; as of each load's boundary, the history holds exactly the affinities Algolia served.

One module-scoped simulation (200 users, 6 steps of 60 days, reconciles where users were deleted)
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
from algolia_profiles_source.pipeline import load_profiles, make_pipeline
from algolia_profiles_source.tables import HISTORY
from algolia_profiles_source.times import format_rfc3339
from tests.conftest import API_KEY, APP_ID, expected_snapshot, source_args, warehouse_snapshot

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
STEPS = 6
DAYS_PER_STEP = 60
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
    served: list[tuple[datetime, list[dict[str, Any]]]] = []
    deleted: dict[str, dict[str, Any]] = {}
    try:
        load_profiles(pipeline, **source_args(emu, page_size=100, history=True))
        loads.append((last_boundary(pipeline), affinity_set(emu.store.users()), False))
        served.append((last_boundary(pipeline), emu.store.users()))
        for step in range(1, STEPS + 1):
            removed = change_day(emu, rng, START + timedelta(days=step * DAYS_PER_STEP), deleted)
            load_profiles(pipeline, reconcile=removed, **source_args(emu, page_size=100, history=True))
            loads.append((last_boundary(pipeline), affinity_set(emu.store.users()), removed))
            served.append((last_boundary(pipeline), emu.store.users()))
        yield {"pipeline": pipeline, "emu": emu, "loads": loads, "served": served}
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


HISTORY_AUDIENCES = {"audiences": {
    "camping_rising": {"rule": {"history": {"affinity": "category:Camping", "days": 60, "rose_by": 5}}},
    "any_category_rising": {"rule": {"history": {"affinity": "category", "days": 90, "rose_by": 3}}},
    "brand_falling": {"rule": {"history": {"affinity": "brand", "values": ["Patagonia", "Nike"], "days": 120,
                                           "fell_by": 4}}},
    "lost_a_brand": {"rule": {"history": {"affinity": "brand", "days": 90, "then": {"gte": 5}, "now": "absent"}}},
    "new_category": {"rule": {"history": {"affinity": "category", "days": 45, "then": "absent",
                                          "now": {"between": [1, 20]}}}},
    "campers_not_rising": {"rule": {"all": [{"affinity": "category:Camping"},
                                            {"none": [{"audience": "camping_rising"}]}]}},
}}


def test_history_rules_match_the_oracle(year):
    from algolia_profiles_source.segments import build_segments
    from tests.reference_segments import compute_audiences

    pipeline, served = year["pipeline"], year["served"]
    # between two loads, and a moment just after the last
    for as_of in (served[3][0] + timedelta(days=3), served[-1][0] + timedelta(seconds=1)):
        build_segments(pipeline, HISTORY_AUDIENCES, as_of=as_of, retire=True)
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("segment_members")
            rows = client.execute_sql(f"SELECT segment, user_id FROM {table}")
        built: dict[str, set[str]] = {name: set() for name in HISTORY_AUDIENCES["audiences"]}
        for segment, user_id in rows:
            built[segment].add(user_id)
        expected = compute_audiences(year["emu"].store.users(), HISTORY_AUDIENCES, as_of, history=served)
        assert built == {name: set(members) for name, members in expected.items()}, as_of
        assert sum(map(len, built.values())) > 0 and len([m for m in built.values() if m]) >= 3


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "bigquery", "snowflake"])
def test_history_rules_compile_for_every_warehouse(dialect):
    import sqlglot

    from algolia_profiles_source.segments.compiler import segment_statements
    from algolia_profiles_source.segments.definitions import parse_definitions
    from algolia_profiles_source.segments.models import model_statements
    from algolia_profiles_source.warehouse.target import static_target

    target = static_target(dialect, "algolia", "project" if dialect == "bigquery" else None)
    file = parse_definitions(HISTORY_AUDIENCES)
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    statements = segment_statements(file, target, at, "b1") + model_statements(target, has_history=True)
    rendered = [target.render(s.tree) for s in statements]
    history_sql = [sql for sql in rendered if "user_affinities_history" in sql]
    assert len(history_sql) >= 6  # the audiences reading it, the staging view and the trend tables
    for sql in rendered:
        assert sqlglot.parse_one(sql, read=dialect) is not None
    assert "2025-10-03" in " ".join(history_sql)  # 90 days before as_of, as a literal


def test_history_rule_errors():
    from algolia_profiles_source.segments.definitions import DefinitionError, parse_definitions

    bad = {"audiences": {
        "a": {"rule": {"history": {"affinity": "category:Camping", "days": 30}}},
        "b": {"rule": {"history": {"affinity": "category:Camping", "days": 0, "rose_by": 25}}},
        "c": {"rule": {"history": {"affinity": "brand", "days": 9, "then": "absent", "now": "absent"}}},
        "d": {"rule": {"history": {"affinity": "brand", "days": 9, "now": "gone"}}},
        "e": {"rule": {"history": {"affinity": "category", "day": 9, "rose_by": 1}}},
    }}
    with pytest.raises(DefinitionError) as error:
        parse_definitions(bad, known_affinities={"category", "brand"})
    problems = "\n".join(error.value.problems)
    assert "audience 'a'.rule.history: give at least one of rose_by, fell_by, then, now" in problems
    assert "'b'.rule.history.days: must be a positive number of days" in problems
    assert "'b'.rule.history.rose_by: must be a number of score points" in problems
    assert "'c'.rule.history: then and now both \"absent\"" in problems
    assert "'d'.rule.history.now: expected a score range" in problems
    assert "unknown key 'day' (did you mean 'days'?)" in problems
    assert len(error.value.problems) == 6


def test_trend_models_count_what_each_load_served(year):
    from collections import Counter

    from algolia_profiles_source.segments.models import history_model_statements
    from algolia_profiles_source.warehouse.read import open_dataset

    pipeline, loads = year["pipeline"], year["loads"]
    with open_dataset(pipeline) as dataset:
        for statement in history_model_statements(dataset.target):
            dataset.client.execute_sql(dataset.target.render(statement.tree))
        daily = dataset.rows("affinity_trends_daily")
        weekly = dataset.rows("affinity_trends_weekly")
        changes = dataset.rows("affinity_interest_changes")
    by_day = {(r["day"], r["name"], r["value"]): (r["users"], r["score_avg"]) for r in daily}
    changed = {(r["day"], r["name"], r["value"]): (r["entered"], r["left_users"], r["score_changed"]) for r in changes}
    assert len({r["week"] for r in weekly}) == len({r["day"] for r in daily})  # one load per week at most
    previous: dict[tuple[str, str, str], float] = {}
    for boundary, affinities, _ in loads:
        day = boundary.date()
        users = Counter((n, v) for _, n, v, _ in affinities)
        scores: dict[tuple[str, str], list[float]] = {}
        for _, n, v, score in affinities:
            scores.setdefault((n, v), []).append(score)
        got = {(n, v): c for (d, n, v), c in by_day.items() if d == day}
        assert {k: c[0] for k, c in got.items()} == dict(users), day
        for key, (_, avg) in got.items():
            assert avg == pytest.approx(sum(scores[key]) / len(scores[key]))
        current = {(u, n, v): score for u, n, v, score in affinities}
        expected: Counter = Counter()
        for key in current.keys() | previous.keys():
            kind = (0 if key not in previous else 1 if key not in current
                    else 2 if previous[key] != current[key] else None)
            if kind is not None:
                expected[(key[1], key[2], kind)] += 1
        for (n, v) in {(n, v) for n, v, _ in expected} | {(n, v) for d, n, v in changed if d == day}:
            assert changed.get((day, n, v), (0, 0, 0)) == tuple(expected[(n, v, k)] for k in range(3)), (day, n, v)
        previous = current


def test_report_shows_top_movers(year, tmp_path, monkeypatch):
    import json
    import re

    from algolia_profiles_source.segments import charts
    from algolia_profiles_source.segments import build_segments
    from algolia_profiles_source.segments.report import write_report

    pipeline = year["pipeline"]
    monkeypatch.setattr(charts, "javascript", lambda: "")  # the page's script is another test's subject
    build_segments(pipeline, HISTORY_AUDIENCES, retire=True)  # builds the trend models: history is loaded
    page = write_report(pipeline, tmp_path / "report.html").read_text()
    assert '<section id="movers"' in page and "Top movers" in page
    specs = json.loads(re.search(r'<script type="application/json" id="chart-specs">(.*?)</script>', page, re.S).group(1))
    movers = specs["movers"]["datasets"]["movers"]
    assert movers and {r["kind"] for r in movers} <= {"entered", "left"}
    assert all(r["users"] >= 0 if r["kind"] == "entered" else r["users"] <= 0 for r in movers)
