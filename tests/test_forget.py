"""Erasure (``algolia-profiles forget``): a forgotten user leaves every table this tool writes, dlt's
staging copies and the pipeline folder's load files, lands on the suppression list as a SHA-256
hash only, and never comes back: not with an incremental load, a reconcile, a plain
``pipeline.run`` of the source, nor a build. Run twice, it removes nothing. On DuckDB here; on a
real PostgreSQL server in ``test_forget_postgres.py``."""

from __future__ import annotations

import gzip
import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlglot
from click.testing import CliRunner

from algolia_profiles_source import algolia_profiles, api
from algolia_profiles_source.cli import cli
from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from algolia_profiles_source.exceptions import ConfigurationError
from algolia_profiles_source.load import erasure
from algolia_profiles_source.pipeline import load_profiles, make_pipeline
from algolia_profiles_source.load.state import last_run
from algolia_profiles_source.segments import build_segments
from algolia_profiles_source.tables import ERASED, MEMBERS, PERSONAL_TABLES
from algolia_profiles_source.times import format_rfc3339
from algolia_profiles_source.warehouse.target import static_target
from tests.conftest import API_KEY, APP_ID, run, source_args
from tests.warehouses.fixtures import fakesnow_db, snowflake_pipeline_factory  # noqa: F401  (fixtures)

NEVER_LOADED = "never-loaded-user"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tables_of(pipeline: Any, views: bool) -> list[str]:
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT table_schema || '.' || table_name, table_type FROM information_schema.tables"
            " WHERE table_schema IN (%s, %s)", client.dataset_name, f"{client.dataset_name}_staging")
    return [name for name, kind in rows if views or kind == "BASE TABLE"]


def rows_of(pipeline: Any, user_ids: list[str], views: bool = True) -> dict[str, int]:
    """Rows of these users in every table (and view) of the dataset and its staging dataset with
    a user_id column."""
    counts = {}
    with pipeline.sql_client() as client:
        for qualified in tables_of(pipeline, views):
            schema, table = qualified.split(".")
            columns = [r[0] for r in client.execute_sql(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                schema, table)]
            if "user_id" in columns:
                placeholders = ", ".join(["%s"] * len(user_ids))
                counts[qualified] = client.execute_sql(
                    f'SELECT count(*) FROM "{schema}"."{table}" WHERE user_id IN ({placeholders})', *user_ids)[0][0]
    return counts


def touch(emu: Any, user_ids: list[str], bad_affinity: bool = False) -> None:
    """Updates the profiles now, so that the next incremental walk reads them again."""
    stamp = format_rfc3339(datetime.now(timezone.utc) + timedelta(seconds=1))
    for user_id in user_ids:
        profile = emu.store.get(user_id)
        affinities = [dict(a, lastUpdatedAt=stamp) for a in profile["affinities"]]
        if bad_affinity:  # quarantined in rejected_records with the user's ID
            affinities.append({"name": "brand", "value": "x", "indices": ["products_en_US"], "score": 99,
                               "lastUpdatedAt": stamp})
        emu.store.upsert(dict(profile, lastUpdatedAt=stamp, affinities=affinities))


def loaded_files(pipeline: Any) -> list[Path]:
    root = Path(pipeline.working_dir) / "load" / "loaded"
    return [p for p in root.glob("*/completed_jobs/*") if p.name.split(".")[0] in ("users", "user_affinities", "user_affinities_history")]


def members(pipeline: Any) -> set[str]:
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(MEMBERS)
        return {row[0] for row in client.execute_sql(f"SELECT user_id FROM {table}")}


def check_forget_lifecycle(pipeline: Any, emu: Any) -> None:
    """The whole story on one pipeline (shared with the Postgres test)."""
    run(pipeline, emu, page_size=15, history=True)  # affinity history is personal data too
    build_segments(pipeline, EXAMPLE_AUDIENCES)
    forgotten = sorted(members(pipeline))[:2]
    others = sorted(p["userID"] for p in emu.store.users() if p["userID"] not in forgotten)
    touch(emu, forgotten, bad_affinity=True)
    run(pipeline, emu, page_size=15, history=True)  # incremental: a merge through dlt's staging dataset, rejected rows
    before = rows_of(pipeline, forgotten, views=False)
    dataset = pipeline.dataset_name
    for table in ("users", "user_affinities", "user_affinities_history", "rejected_records", "segment_members",
                  "segment_membership_events"):
        assert before[f"{dataset}.{table}"] > 0, table
    other_users = sum(rows_of(pipeline, others).values())

    receipt = api.forget(pipeline, [forgotten[0], f"  {forgotten[1]} ", NEVER_LOADED, forgotten[0]])

    assert receipt.requested == 3 and receipt.added == 3 and receipt.already_suppressed == 0
    expected = {name if name.startswith(f"{dataset}_staging.") else name.split(".", 1)[1]: count
                for name, count in before.items()}
    assert {name: count for name, count in receipt.removed.items() if count} == {
        name: count for name, count in expected.items() if count}
    assert set(receipt.removed) >= set(PERSONAL_TABLES) - {"segment_members__next", "segment_user_flags__work"}
    assert receipt.rows_per_user[NEVER_LOADED] == 0 and sum(receipt.rows_per_user.values()) == receipt.total_removed
    assert receipt.audiences and set(receipt.audiences) <= {r["segment"] for r in api.status(pipeline)["audiences"]}
    assert set(rows_of(pipeline, forgotten).values()) == {0}
    assert sum(rows_of(pipeline, others).values()) == other_users  # nobody else touched
    assert not any(user_id in repr(receipt) or user_id in str(receipt.as_dict()) for user_id in forgotten)
    with pipeline.sql_client() as client:
        stored = client.execute_sql(f"SELECT * FROM {client.make_qualified_table_name(ERASED)}")
    assert sorted(row[0] for row in stored) == sorted(sha256(u) for u in [*forgotten, NEVER_LOADED])
    assert not any(u in str(stored) for u in forgotten)

    again = api.forget(pipeline, [*forgotten, NEVER_LOADED])
    assert again.total_removed == 0 and again.added == 0 and again.already_suppressed == 3
    assert again.load_files_removed == 0 and again.audiences == []

    # the profiles change in Algolia: an incremental load (plain dlt use of the source) and a
    # reconcile leave them out, so no later build can select them
    touch(emu, forgotten, bad_affinity=True)
    pipeline.run(algolia_profiles(**source_args(emu, page_size=15, history=True)))
    assert last_run(pipeline)["erased_left_out"] == 2
    result = load_profiles(pipeline, reconcile=True, **source_args(emu, page_size=15, history=True))
    assert result.run["deleted"] == 0 and result.run["erased_left_out"] == 2
    assert set(rows_of(pipeline, forgotten).values()) == {0}
    for path in loaded_files(pipeline):  # the files of the loads after the erasure do not hold them
        if path.suffix == ".parquet":
            assert not set(pq.read_table(path, columns=["user_id"])["user_id"].to_pylist()) & set(forgotten)
        else:
            data = path.read_bytes()
            text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode()
            assert not any(user_id in text for user_id in forgotten), path.name


def test_forget_removes_every_row_and_keeps_the_users_out_on_duckdb(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=30, seed=3)
    pipeline = pipeline_factory()
    check_forget_lifecycle(pipeline, emu)
    assert loaded_files(pipeline)  # the later loads' files are there again (without the forgotten users)


@pytest.fixture(scope="module")
def loaded_dir(tmp_path_factory):
    """A project folder loaded once for the CLI tests; yields (folder, the user IDs it holds)."""
    from algolia_profiles_source.emulator import Emulator

    folder = tmp_path_factory.mktemp("forget_cli")
    emu = Emulator(app_id=APP_ID, api_key=API_KEY, n_users=60, seed=11).start()
    try:
        pipeline = make_pipeline(workdir=str(folder))
        run(pipeline, emu, page_size=30)
    finally:
        emu.stop()
    ids = sorted(p["userID"] for p in emu.store.users())
    return folder, ids


def forget_cli(folder: Path, *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["forget", "--dir", str(folder), *args], input=input)


def test_cli_prints_a_receipt_without_ids_and_says_when_nothing_is_left(loaded_dir):
    folder, ids = loaded_dir
    first = forget_cli(folder, ids[0], ids[1])
    assert first.exit_code == 0, first.output
    assert ids[0] not in first.output and ids[1] not in first.output
    assert "Removed" in first.output and "--show-ids" in first.output
    assert "2 added, 0 already on it" in first.output
    user_line = next(line for line in first.output.splitlines() if line.strip().startswith("users "))
    assert user_line.split()[1] == "2"

    second = forget_cli(folder, ids[0], ids[1], "--show-ids")
    assert second.exit_code == 0, second.output
    assert "Nothing left to remove for 2 user ID(s): 0 rows in every table" in second.output
    assert "0 added, 2 already on it" in second.output
    assert f"{ids[0]}: 0 rows (none held)" in second.output


def test_cli_reads_ids_from_a_file_stdin_and_a_warehouse_table(loaded_dir, tmp_path):
    import json

    folder, ids = loaded_dir
    listed = tmp_path / "requests.txt"
    listed.write_text(f"{ids[10]}\n\n  {ids[11]}  \n")
    from_file = forget_cli(folder, "--file", str(listed), "--json", "--show-ids")
    assert from_file.exit_code == 0, from_file.output
    receipt = json.loads(from_file.output)
    assert receipt["requested"] == 2 and receipt["removed"]["users"] == 2
    assert set(receipt["rows_per_user"]) == {ids[10], ids[11]}

    from_stdin = forget_cli(folder, "--file", "-", "--json", input=f"{ids[12]}\n")
    assert json.loads(from_stdin.output)["removed"]["users"] == 1

    pipeline = make_pipeline(workdir=str(folder), create=False)
    with pipeline.sql_client() as client:
        client.execute_sql("CREATE SCHEMA IF NOT EXISTS privacy")
        client.execute_sql("CREATE OR REPLACE TABLE privacy.requests (subject TEXT)")
        client.execute_sql("INSERT INTO privacy.requests VALUES (%s), (%s), (NULL)", ids[13], ids[14])
    from_table = forget_cli(folder, "--table", "privacy.requests", "--column", "subject", "--json")
    assert from_table.exit_code == 0, from_table.output
    assert json.loads(from_table.output)["removed"]["users"] == 2


@pytest.mark.parametrize("args, message", [
    ((), "error: no user IDs given"),
    (("--file", "missing.txt"), "error: file of user IDs 'missing.txt' does not exist"),
    (("--table", "privacy.nope"), "error: cannot read user IDs from column 'user_id' of table 'privacy.nope'"),
    (("--table", "x; DROP TABLE users"), "is not a table name"),
])
def test_cli_refuses_what_it_cannot_read_with_one_line(loaded_dir, args, message):
    folder, _ = loaded_dir
    result = forget_cli(folder, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_failed_erasure_changes_nothing(loaded_dir, monkeypatch):
    folder, ids = loaded_dir
    pipeline = make_pipeline(workdir=str(folder), create=False)
    calls = []
    real = erasure._count_and_delete

    def fail_on_second_table(dataset, name, *args):
        calls.append(name)
        if len(calls) == 2:
            raise RuntimeError("warehouse went away")
        return real(dataset, name, *args)

    monkeypatch.setattr(erasure, "_count_and_delete", fail_on_second_table)
    with pytest.raises(RuntimeError):
        api.forget(pipeline, [ids[20]])
    assert rows_of(pipeline, [ids[20]])["algolia.users"] == 1  # the first delete was rolled back
    assert sha256(ids[20]) not in erasure.read_suppression_list(pipeline)


def test_forget_refuses_while_a_load_package_is_pending(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=8)
    pipeline = pipeline_factory()
    run(pipeline, emu)
    pipeline.extract(algolia_profiles(**source_args(emu)))  # a package not loaded yet
    with pytest.raises(ConfigurationError, match="a load package is pending"):
        api.forget(pipeline, [emu.store.users()[0]["userID"]])


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "bigquery", "snowflake"])
def test_erasure_sql_compiles_for_every_warehouse(dialect, monkeypatch):
    monkeypatch.setattr(erasure, "CHUNK", 3)
    target = static_target(dialect, "algolia", catalog="project" if dialect == "bigquery" else None)
    ids = [f"user-{i}'" for i in range(erasure.CHUNK + 1)]  # a quote in the ID stays a literal
    statements = erasure.erasure_statements(
        target, ids, ["users", "segment_membership_events"], datetime(2026, 1, 1, tzinfo=timezone.utc),
        [sha256(i) for i in ids],
    )
    labels = [s.label for s in statements]
    assert labels == ["create erased_users if missing", "suppress in erased_users", "suppress in erased_users",
                      "erase from users", "erase from users",
                      "erase from segment_membership_events", "erase from segment_membership_events"]
    for statement in statements:
        sql = target.render(statement.tree)
        assert sqlglot.parse_one(sql, dialect=dialect)  # valid in the warehouse's own dialect
    delete = target.render(statements[3].tree)
    assert delete.startswith("DELETE FROM") and "'user-0'''" in delete or "'user-0\\''" in delete


def test_forget_on_snowflake(emulator_factory, snowflake_pipeline_factory):  # noqa: F811
    """On Snowflake (fakesnow): statement by statement, the suppression list first; its upper-cased
    column read back as loads read it."""
    emu = emulator_factory(n_users=12, seed=5)
    pipeline = snowflake_pipeline_factory()
    run(pipeline, emu, page_size=50)
    user_id = sorted(p["userID"] for p in emu.store.users())[0]
    receipt = api.forget(pipeline, [user_id])
    assert receipt.removed["users"] == 1 and receipt.removed["user_affinities"] > 0 and receipt.added == 1
    assert erasure.read_suppression_list(pipeline) == {sha256(user_id)}
    again = api.forget(pipeline, [user_id])
    assert again.total_removed == 0 and again.already_suppressed == 1
