"""Shared fixtures: a real emulator on loopback and real DuckDB files in pytest's tmp dirs."""

from __future__ import annotations

import itertools
import os
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from algolia_profiles_source.emulator import Emulator
from algolia_profiles_source.pipeline import load_profiles, make_pipeline
from algolia_profiles_source.times import format_rfc3339

APP_ID = "TESTAPP"
API_KEY = "sk-test-Zq8u1Lw9-DISTINCTIVE-KEY-9f3c"  # distinctive, so tests can grep for leaks

# Retries in tests back off in milliseconds, not seconds.
FAST_RETRIES = dict(backoff_base=0.01, max_attempts=12, timeout=10)
# Tests that assert the exact requests use one sequential walk; concurrency has its own tests.
SEQUENTIAL = dict(concurrency=1)

_counter = itertools.count()

# No network but loopback here: dlt must not try to send telemetry.
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

# The suite runs on every core with pytest-xdist (pyproject.toml: `-n auto --dist loadfile`), one
# unit of work at a time per worker: a unit is a test module (its module-scoped fixtures are built
# once, in one worker) or one of the groups below. xdist's own `loadgroup` cannot be used: it tags
# the groups onto node IDs, which pytest 9.2 no longer lets it change (pytest-xdist issue #1386).
#
# TIMING: the modules that run long subprocess loads whose moments, speed or memory a neighbour
# running the same kind of load would disturb; they run one after another in one worker.
TIMING = "timing"
UNITS = {
    "tests/test_benchmarks_smoke.py": TIMING,
    "tests/test_crash.py": TIMING,
    "tests/test_soak.py": TIMING,
}
# Units that take longest, handed out first so that no worker is left alone with one at the end
# (measured with `--durations`); the others follow in file order.
SLOW_FIRST = (
    TIMING,
    "tests/test_project_folder.py",
    "tests/test_errors.py",
    "tests/test_cli_demo.py",
    "tests/test_source_e2e.py",
    "tests/warehouses/test_snowflake_e2e.py",
    "tests/test_status_doctor.py",
    "tests/test_export.py",
    "tests/warehouses/test_bigquery.py",
    "tests/test_report.py",
)


def _unit(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return UNITS.get(module, module)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class UnitScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return UnitScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts alike: the collections must match
        rank = {unit: i for i, unit in enumerate(SLOW_FIRST)}
        items.sort(key=lambda item: rank.get(_unit(item.nodeid), len(rank)))


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    started: List[Emulator] = []

    def start(**options: Any) -> Emulator:
        options.setdefault("n_users", 150)
        options.setdefault("seed", 7)
        emu = Emulator(app_id=APP_ID, api_key=API_KEY, **options).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory()


@pytest.fixture
def pipeline_factory(tmp_path: Any) -> Callable[..., Any]:
    def create(name: str = "", **kwargs: Any) -> Any:
        name = name or f"test_profiles_{next(_counter)}"
        return make_pipeline(
            pipeline_name=name,
            duckdb_path=str(tmp_path / f"{name}.duckdb"),
            pipelines_dir=str(tmp_path / "pipelines"),
            **kwargs,
        )

    return create


def source_args(emu: Emulator, **overrides: Any) -> Dict[str, Any]:
    args: Dict[str, Any] = dict(
        application_id=APP_ID, api_key=API_KEY, base_url=emu.base_url, **FAST_RETRIES, **SEQUENTIAL
    )
    args.update(overrides)
    return args


def run(pipeline: Any, emu: Emulator, **overrides: Any) -> Any:
    return load_profiles(pipeline, **source_args(emu, **overrides))


@contextmanager
def recomputed_during_walk(
    emu: Emulator,
    change: Callable[[Dict[str, Any], str], Dict[str, Any]],
    after_requests: int = 8,
    lag_seconds: float = 0,
) -> Iterator[List[Tuple[Dict[str, Any], Dict[str, Any]]]]:
    """While the block runs a walk: once it has made ``after_requests`` calls to ``/2/users``, every
    20th profile (spread over every window) is replaced by ``change(profile, stamp)``, ``stamp`` being
    now minus ``lag_seconds``. Yields the (old, new) pairs, complete when the block ends."""
    moved: List[Tuple[Dict[str, Any], Dict[str, Any]]] = []

    def recompute() -> None:
        deadline = time.monotonic() + 30
        while len([r for r in emu.requests if r.path == "/2/users"]) < after_requests and time.monotonic() < deadline:
            time.sleep(0.005)
        stamp = format_rfc3339(datetime.now(timezone.utc) - timedelta(seconds=lag_seconds))
        for profile in emu.store.users()[::20]:
            new = change(profile, stamp)
            emu.store.upsert(new)
            moved.append((profile, new))

    mover = threading.Thread(target=recompute)
    mover.start()
    try:
        yield moved
    finally:
        mover.join()


def ts(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


Snapshot = Tuple[Dict[str, Tuple[Any, ...]], Dict[Tuple[str, str, str], Tuple[Any, ...]]]


def expected_snapshot(profiles: List[Dict[str, Any]]) -> Snapshot:
    """Users and affinities as the warehouse must hold them, computed from API-shaped profiles."""
    users = {}
    affinities = {}
    for p in profiles:
        users[p["userID"]] = (p.get("type"), ts(p["lastUpdatedAt"]), len(p.get("affinities") or []))
        for a in p.get("affinities") or []:
            key = (p["userID"], a["name"], a["value"])
            assert key not in affinities, f"emulator data has a duplicate affinity {key}"
            affinities[key] = (float(a["score"]), sorted(a["indices"]), ts(a.get("lastUpdatedAt")))
    return users, affinities


def warehouse_snapshot(pipeline: Any) -> Snapshot:
    """Users and affinities as loaded; fails on duplicate keys."""
    import json

    with pipeline.sql_client() as client:
        u = client.make_qualified_table_name("users")
        a = client.make_qualified_table_name("user_affinities")
        user_rows = client.execute_sql(
            f"SELECT user_id, type, last_updated_at, affinity_count FROM {u}"
        )
        affinity_rows = client.execute_sql(
            f"SELECT user_id, name, value, score, indices, last_updated_at FROM {a}"
        )
    users = {}
    for user_id, type_, updated, count in user_rows:
        assert user_id not in users, f"duplicate user {user_id}"
        users[user_id] = (type_, updated.astimezone(timezone.utc) if updated else None, count)
    affinities = {}
    for user_id, name, value, score, indices, updated in affinity_rows:
        key = (user_id, name, value)
        assert key not in affinities, f"duplicate affinity {key}"
        if isinstance(indices, str):
            indices = json.loads(indices)
        affinities[key] = (
            score,
            sorted(indices),
            updated.astimezone(timezone.utc) if updated else None,
        )
    return users, affinities


def storage_version(path: Any) -> str:
    """The storage format a DuckDB file was created in, as DuckDB reports it (``v1.4.0+``...)."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE path = ?", [str(path)]
        ).fetchone()[0]


def assert_warehouse_equals_emulator(pipeline: Any, emu: Emulator) -> None:
    exp_users, exp_aff = expected_snapshot(emu.store.users())
    got_users, got_aff = warehouse_snapshot(pipeline)
    missing = exp_users.keys() - got_users.keys()
    extra = got_users.keys() - exp_users.keys()
    assert not missing and not extra, f"users missing {sorted(missing)[:5]} extra {sorted(extra)[:5]}"
    wrong = [k for k in exp_users if exp_users[k] != got_users[k]]
    assert not wrong, f"users differ, e.g. {wrong[0]}: {exp_users[wrong[0]]} != {got_users[wrong[0]]}"
    missing_a = exp_aff.keys() - got_aff.keys()
    extra_a = got_aff.keys() - exp_aff.keys()
    assert not missing_a and not extra_a, (
        f"affinities missing {sorted(missing_a)[:3]} extra {sorted(extra_a)[:3]}"
    )
    wrong_a = [k for k in exp_aff if exp_aff[k] != got_aff[k]]
    assert not wrong_a, f"affinity {wrong_a[0]}: {exp_aff[wrong_a[0]]} != {got_aff[wrong_a[0]]}"
