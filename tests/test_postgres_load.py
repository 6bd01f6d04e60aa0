"""End to end into a real PostgreSQL server on loopback: full and incremental loads equal the emulator."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from datetime import timedelta

import dlt
import pytest
from dlt.destinations.impl.postgres.configuration import PostgresCredentials

from algolia_profiles_source import algolia_profiles
from algolia_profiles_source.load.pipeline import make_pipeline
from algolia_profiles_source.load.state import last_run
from algolia_profiles_source.times import format_rfc3339
from tests.conftest import assert_warehouse_equals_emulator, expected_snapshot, run, source_args
from tests.postgres_server import postgres_url  # noqa: F401  (session fixture)
from tests.test_source_e2e import _apply_changes

_counter = itertools.count()


def _credentials(url):
    """dlt's Postgres credentials insist on a password; the throwaway server trusts loopback, so
    a URL without one gets a placeholder the server ignores."""
    credentials = PostgresCredentials()
    credentials.parse_native_representation(url)
    if not credentials.password:
        credentials.password = "unused-with-trust-auth"
    return credentials


@pytest.fixture
def pg_pipeline_factory(postgres_url, tmp_path):  # noqa: F811
    """dlt pipelines into the session's PostgreSQL database, each in its own dataset (schema)."""
    datasets = []

    def create():
        n = next(_counter)
        dataset = f"algolia_{uuid.uuid4().hex[:8]}"
        datasets.append(dataset)
        return make_pipeline(
            pipeline_name=f"test_pg_profiles_{n}",
            destination=dlt.destinations.postgres(credentials=_credentials(postgres_url)),
            dataset_name=dataset,
            pipelines_dir=str(tmp_path / "pipelines"),
        )

    yield create
    # matters when ALGOLIA_PROFILES_PG_URL points at a shared server
    import psycopg2

    with contextlib.closing(psycopg2.connect(postgres_url)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for dataset in datasets:
                for schema in (dataset, f"{dataset}_staging"):
                    cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _query(pipeline, sql, *args):
    with pipeline.sql_client() as client:
        return client.execute_sql(sql, *args)


def _column_types(pipeline, table):
    rows = _query(
        pipeline,
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s",
        pipeline.dataset_name, table,
    )
    return dict(rows)


def _full_then_incremental(pipeline, emu, load):
    """Full load in pages of 20, changes, incremental load: the warehouse equals the emulator
    after each run. ``load(pipeline, emu)`` runs the source once and returns the run counters."""
    users, _ = expected_snapshot(emu.store.users())
    assert any(count == 0 for _, _, count in users.values()), "data must include zero-affinity users"

    first = load(pipeline, emu)
    assert first["profiles"] == len(emu.store) and first["pages"] == len(emu.store) // 20, first
    assert_warehouse_equals_emulator(pipeline, emu)

    # the declared types are real Postgres types, not text
    affinity_types = _column_types(pipeline, "user_affinities")
    assert affinity_types["score"] == "double precision"
    assert affinity_types["indices"] == "jsonb"
    assert affinity_types["last_updated_at"] == "timestamp with time zone"
    user_types = _column_types(pipeline, "users")
    assert user_types["affinity_count"] == "bigint"
    assert user_types["last_updated_at"] == "timestamp with time zone"

    previous_max = _apply_changes(emu)
    emu.clear_requests()
    second = load(pipeline, emu)

    assert_warehouse_equals_emulator(pipeline, emu)
    calls = [r for r in emu.requests if r.path == "/2/users"]
    expected_start = format_rfc3339(previous_max - timedelta(hours=1))
    assert calls and all(call.params.get("startDate") == expected_start for call in calls)
    assert second["profiles"] < 0.3 * len(emu.store), second

    # the zero-affinity markers delete, they are never inserted
    a = f'"{pipeline.dataset_name}"."user_affinities"'
    assert _query(pipeline, f"SELECT count(*) FROM {a} WHERE _deleted IS NOT NULL")[0][0] == 0
    u = f'"{pipeline.dataset_name}"."users"'
    assert _query(pipeline, f"SELECT count(*) FROM {u}")[0][0] == len(emu.store)


def test_load_profiles_into_postgres_full_then_incremental(emulator_factory, pg_pipeline_factory):
    """The project's own entry point (``load_profiles``, what ``algolia-profiles load`` runs)."""
    emu = emulator_factory(n_users=400)

    def load(pipeline, emu):
        return run(pipeline, emu, page_size=20).run

    _full_then_incremental(pg_pipeline_factory(), emu, load)


def test_postgres_full_then_incremental_with_insert_values(emulator_factory, pg_pipeline_factory):
    """The same source and merge semantics with the Arrow tables written as INSERT statements."""
    emu = emulator_factory(n_users=400)

    def load(pipeline, emu):
        pipeline.run(algolia_profiles(**source_args(emu, page_size=20)),
                     loader_file_format="insert_values")
        return last_run(pipeline)

    _full_then_incremental(pg_pipeline_factory(), emu, load)
