"""The fast path's parts: pages parsed straight into Arrow, the read-ahead thread, and the bounded
DuckDB load of an initial export (with real DuckDB files and the emulator on loopback)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Iterator, List

import orjson
import pyarrow as pa
import pytest

from algolia_profiles_source.http.page import MalformedBody, parse_users_body, timestamps, user_ids
from algolia_profiles_source.extract.read_ahead import read_ahead
from algolia_profiles_source.extract.transform import page_to_tables

from .conftest import assert_warehouse_equals_emulator, run, storage_version
from .test_source_e2e import api_calls

PROFILE = {
    "userID": "u-1",
    "type": "basic",
    "lastUpdatedAt": "2026-11-01T10:00:00Z",
    "affinities": [
        {"name": "brand", "value": "Nike", "score": 12, "indices": ["products"],
         "lastUpdatedAt": "2026-11-01T10:00:00Z"},
    ],
}


def body(users: List[Any], token: Any = "t1", **extra: Any) -> bytes:
    return orjson.dumps({"users": users, "nextPageToken": token, **extra})


def test_a_documented_page_is_parsed_straight_into_arrow():
    unknown = dict(PROFILE, futureField={"x": [1, 2]})
    parsed = parse_users_body(body([unknown, dict(PROFILE, userID="u-2", affinities=[])], newKey=1))

    assert isinstance(parsed["users"], pa.StructArray)
    assert parsed["nextPageToken"] == "t1"
    assert user_ids(parsed["users"]) == ["u-1", "u-2"]
    assert timestamps(parsed["users"]) == ["2026-11-01T10:00:00Z"] * 2
    tables = page_to_tables(parsed["users"])
    assert tables.affinities.column("score").to_pylist() == [12.0, None]  # a tombstone for u-2
    assert tables.rejected == []


def test_the_arrow_path_and_the_dict_path_build_the_same_tables():
    users = [PROFILE, dict(PROFILE, userID="u-2", type=None), dict(PROFILE, userID="u-3", affinities=None)]
    arrow = page_to_tables(parse_users_body(body(users))["users"], load_id="1.2")
    dicts = page_to_tables(users, load_id="1.2")
    assert arrow.users.equals(dicts.users)
    assert arrow.affinities.equals(dicts.affinities)


def test_a_page_with_off_type_values_falls_back_to_dicts_and_quarantines_only_the_bad_record():
    bad = dict(PROFILE, userID="u-bad", affinities=[dict(PROFILE["affinities"][0], score="high")])
    parsed = parse_users_body(body([PROFILE, bad]))

    assert isinstance(parsed["users"], list)  # Arrow refused the page; orjson read it
    tables = page_to_tables(parsed["users"])
    assert tables.users.column("user_id").to_pylist() == ["u-1"]
    assert [r["user_id"] for r in tables.rejected] == ["u-bad"]


@pytest.mark.parametrize("content", [b"", b'{"users": [', b"<html>502 Bad Gateway</html>", b'{"a": 1}\n{"a": 2}'])
def test_a_body_that_is_not_json_is_malformed(content):
    with pytest.raises(MalformedBody):
        parse_users_body(content)


def test_json_that_is_not_a_page_is_returned_for_the_caller_to_reject():
    assert parse_users_body(b'{"message": "Not Found"}') == {"message": "Not Found"}
    assert parse_users_body(b"[1, 2]") == [1, 2]


def test_read_ahead_keeps_order_and_raises_after_the_items_before_the_error():
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("page 6 failed")

    seen = []
    with pytest.raises(ValueError, match="page 6 failed"):
        for item in read_ahead(items(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_runs_the_producer_in_another_thread_and_closing_stops_it():
    producer_threads = set()
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            for i in range(1000):
                producer_threads.add(threading.current_thread().name)
                yield i
        finally:
            closed.set()

    reader = read_ahead(items(), depth=2)
    assert next(reader) == 0
    reader.close()  # returns without waiting for the producer
    assert closed.wait(5), "the producer's generator was not closed"
    assert producer_threads == {"algolia-read-ahead"}
    for thread in threading.enumerate():
        if thread.name == "algolia-read-ahead":
            thread.join(5)
            assert not thread.is_alive()


def test_read_ahead_does_not_wait_for_a_slow_producer_when_the_consumer_fails():
    release = threading.Event()

    def items() -> Iterator[int]:
        yield 1
        release.wait()  # a request that takes long (a hang here would fail on pytest's timeout)
        yield 2

    reader = read_ahead(items())
    assert next(reader) == 1
    with pytest.raises(KeyError):
        try:
            raise KeyError("the consumer fails")
        finally:
            reader.close()
    producer = [t for t in threading.enumerate() if t.name == "algolia-read-ahead"]
    assert producer and producer[0].is_alive()  # close() returned while the producer was busy
    release.set()
    producer[0].join(5)
    assert not producer[0].is_alive()


def _insert_memory_limits(monkeypatch: Any) -> List[str]:
    """Records DuckDB's memory_limit at each parquet INSERT of a load."""
    import dlt.destinations.impl.duckdb.sql_client as duckdb_sql

    original = duckdb_sql.DuckDbSqlClient.execute_sql
    limits: List[str] = []

    def spy(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(sql, str) and "read_parquet" in sql:
            limits.append(original(self, "SELECT current_setting('memory_limit')")[0][0])
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(duckdb_sql.DuckDbSqlClient, "execute_sql", spy)
    return limits


def _mib(setting: str) -> float:
    number, unit = setting.split()
    return float(number) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


def test_the_initial_export_loads_with_duckdb_memory_bounded_and_merges_without(
    emulator, pipeline_factory, monkeypatch
):
    limits = _insert_memory_limits(monkeypatch)
    pipeline = pipeline_factory()

    first = run(pipeline, emulator)
    assert first.run["initial"] is True
    assert limits and all(_mib(limit) <= 128 for limit in limits), limits
    assert_warehouse_equals_emulator(pipeline, emulator)

    limits.clear()
    second = run(pipeline, emulator, reconcile=True)  # a full walk that merges
    assert second.run["initial"] is False
    assert limits and all(_mib(limit) > 1024 for limit in limits), limits
    with pipeline.sql_client() as client:  # the bound does not outlive the load
        assert _mib(client.execute_sql("SELECT current_setting('memory_limit')")[0][0]) > 1024


def test_a_configured_duckdb_setting_wins_over_the_bound(emulator, pipeline_factory, monkeypatch):
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "300MB"}')
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__PRAGMAS", '["enable_checkpoint_on_shutdown"]')
    limits = _insert_memory_limits(monkeypatch)
    pipeline = pipeline_factory()
    assert pipeline.destination.config_params["credentials"].pragmas == ["enable_checkpoint_on_shutdown"]

    run(pipeline, emulator)
    assert limits and all(280 <= _mib(limit) <= 300 for limit in limits), limits


def test_a_pipeline_scoped_duckdb_setting_is_read_before_the_global_one(emulator, pipeline_factory, monkeypatch):
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "300MB"}')
    monkeypatch.setenv("SCOPED_PROFILES__DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "200MB"}')
    limits = _insert_memory_limits(monkeypatch)
    pipeline = pipeline_factory("scoped_profiles")
    assert pipeline.destination.config_params["credentials"].global_config == {"memory_limit": "200MB"}
    other = pipeline_factory("other_profiles")  # another pipeline still reads the unscoped setting
    assert other.destination.config_params["credentials"].global_config == {"memory_limit": "300MB"}

    run(pipeline, emulator)
    assert limits and all(180 <= _mib(limit) <= 200 for limit in limits), limits


def test_a_bounded_load_that_fails_is_loaded_again_unbounded(emulator, pipeline_factory, monkeypatch, caplog):
    import algolia_profiles_source.load.duckdb as duckdb_module

    monkeypatch.setattr(duckdb_module, "INITIAL_LOAD_MIN_MB", 1)
    monkeypatch.setattr(duckdb_module, "INITIAL_LOAD_MB_PER_THREAD", 0)
    monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "1")
    pipeline = pipeline_factory()

    with caplog.at_level(logging.WARNING, logger="algolia_profiles_source.load.pipeline"):
        run(pipeline, emulator)
    assert "loading again with DuckDB's defaults" in caplog.text
    assert_warehouse_equals_emulator(pipeline, emulator)


def test_a_page_with_invalid_utf8_is_malformed_as_before():
    content = body([dict(PROFILE, affinities=[dict(PROFILE["affinities"][0], value="Caf\u00e9")])])
    broken = content.replace("Café".encode(), b"Caf\xe9")  # Latin-1 from a re-encoding proxy
    with pytest.raises(MalformedBody):
        parse_users_body(broken)


def test_a_null_profile_is_quarantined_on_both_paths():
    for page in (parse_users_body(body([PROFILE, None]))["users"], [PROFILE, None]):
        tables = page_to_tables(page)
        assert tables.users.column("user_id").to_pylist() == ["u-1"]
        assert [r["reason"].split()[0] for r in tables.rejected] == ["userID"]


def test_the_bound_is_undone_on_a_database_another_connection_keeps_open(emulator, pipeline_factory):
    import duckdb

    pipeline = pipeline_factory()
    path = pipeline.destination.config_params["credentials"].database
    with duckdb.connect(path) as held:  # a notebook or a dashboard on the same file
        before = held.execute(
            "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order')"
        ).fetchone()
        run(pipeline, emulator)
        after = held.execute(
            "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order')"
        ).fetchone()
    assert after == before and _mib(after[0]) > 1024 and after[1] is True


def test_the_read_ahead_thread_stops_when_the_walk_fails(emulator, pipeline_factory, monkeypatch):
    import algolia_profiles_source.extract.walk as source_module

    convert = source_module.page_to_tables
    calls = {"n": 0}

    def fail_on_second_page(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the consumer fails on page 2")
        return convert(*args, **kwargs)

    monkeypatch.setattr(source_module, "page_to_tables", fail_on_second_page)
    pipeline = pipeline_factory()
    with pytest.raises(Exception, match="the consumer fails") as failure:  # noqa: F841 - kept alive
        run(pipeline, emulator, page_size=7)  # 22 pages: the producer has many left
    for thread in threading.enumerate():
        if thread.name == "algolia-read-ahead":
            thread.join(5)
            assert not thread.is_alive(), "the read-ahead thread outlived the failed walk"
    assert len(api_calls(emulator)) <= 6  # pages 1-2 and what was read ahead, not the other 16


def test_page_batches_gather_pages_and_split_where_the_schema_changes():
    import pyarrow as pa

    from algolia_profiles_source.extract.batches import PageBatches

    def page(n: int, start: int, typ: Any = pa.int64()) -> Any:
        ids = list(range(start, start + n)) if typ == pa.int64() else [str(i) for i in range(start, start + n)]
        return pa.table({"user_id": pa.array(ids, typ)}), pa.table({"user_id": pa.array([u for u in ids for _ in range(3)], typ)})

    batches = PageBatches(max_rows=100)
    assert batches.add(*page(10, 0)) == []  # 40 rows
    assert batches.add(*page(10, 10)) == []  # 80 rows
    (users, affinities), = batches.add(*page(10, 20))  # 120 rows: one item of three pages
    assert users.column("user_id").to_pylist() == list(range(30))
    assert affinities.num_rows == 90
    assert batches.add(*page(5, 30)) == []
    (users, _), = batches.add(*page(5, 35, pa.string()))  # another schema: the pending page goes alone
    assert users.column("user_id").to_pylist() == list(range(30, 35))
    (users, affinities), = batches.flush()
    assert users.column("user_id").to_pylist() == [str(i) for i in range(35, 40)] and affinities.num_rows == 15
    assert batches.flush() == []


def test_a_new_duckdb_file_is_written_in_the_storage_format_of_duckdb_1_4(emulator, pipeline_factory):
    pipeline = pipeline_factory()
    path = pipeline.destination.config_params["credentials"].database
    run(pipeline, emulator)
    assert storage_version(path) == "v1.4.0+"
    assert_warehouse_equals_emulator(pipeline, emulator)


def test_a_configured_storage_format_is_used_and_an_existing_file_keeps_its_own(emulator, pipeline_factory, monkeypatch):
    import duckdb

    monkeypatch.setenv(
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"storage_compatibility_version": "v0.10.2"}'
    )
    configured = pipeline_factory()
    run(configured, emulator)
    assert storage_version(configured.destination.config_params["credentials"].database) == "v1.0.0+"

    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG")
    existing = pipeline_factory()
    path = existing.destination.config_params["credentials"].database
    os.remove(path)  # make_pipeline created it: make it again as DuckDB does by default, as if it
    duckdb.connect(path).close()  # had been made before this package ran
    run(existing, emulator)
    assert storage_version(path) == "v1.0.0+"
    assert_warehouse_equals_emulator(existing, emulator)


def test_dlts_default_duckdb_file_gets_the_bounded_load_and_the_1_4_format(emulator, tmp_path, monkeypatch):
    from algolia_profiles_source.load.pipeline import make_pipeline

    monkeypatch.chdir(tmp_path)  # dlt's default file is ./<pipeline_name>.duckdb
    limits = _insert_memory_limits(monkeypatch)
    pipeline = make_pipeline("default_file_profiles", pipelines_dir=str(tmp_path / "pipelines"))
    assert pipeline.destination.config_params["credentials"].database == str(tmp_path / "default_file_profiles.duckdb")

    run(pipeline, emulator)
    assert limits and all(_mib(limit) <= 128 for limit in limits), limits
    assert storage_version(str(tmp_path / "default_file_profiles.duckdb")) == "v1.4.0+"
    assert_warehouse_equals_emulator(pipeline, emulator)


def test_the_1_4_format_survives_a_command_run_before_the_first_load_and_a_relative_path(emulator, tmp_path, monkeypatch):
    from algolia_profiles_source.api import doctor
    from algolia_profiles_source.load.pipeline import make_pipeline

    first, later = tmp_path / "first", tmp_path / "later"
    first.mkdir(), later.mkdir()
    monkeypatch.chdir(first)
    pipeline = make_pipeline("relative_profiles", duckdb_path="relative.duckdb", pipelines_dir=str(tmp_path / "pipelines"))
    checks = doctor(pipeline, base_url=emulator.base_url)  # connects to the destination
    assert "destination" in [check.name for check in checks]
    monkeypatch.chdir(later)  # dlt resolves the relative path where the pipeline was first made
    run(make_pipeline("relative_profiles", duckdb_path="relative.duckdb", pipelines_dir=str(tmp_path / "pipelines")), emulator)
    assert storage_version(str(first / "relative.duckdb")) == "v1.4.0+"
    assert not (later / "relative.duckdb").exists()
