"""Bad input fails at once with a message that says what to fix, and never shows the API key."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from algolia_profiles_source import (
    AuthenticationError,
    ConfigurationError,
    EndpointError,
    InvalidRequestError,
    PaginationError,
    ProfilesClient,
    ResponseFormatError,
    algolia_profiles,
)
from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from tests.conftest import API_KEY, APP_ID, FAST_RETRIES, run, source_args, storage_version

REPO = Path(__file__).resolve().parents[1]


def find(error, kind):
    while error is not None and not isinstance(error, kind):
        error = error.__cause__ or error.__context__
    return error


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"region": "mars", "base_url": None}, "region 'mars'"),
        ({"base_url": "http://profiles.example.com"}, "plain http://"),
        ({"base_url": "ftp://127.0.0.1"}, "not an http(s) URL"),
        ({"start_date": "yesterday"}, "start_date 'yesterday' is not an RFC 3339"),
        ({"end_date": "2026-13-40"}, "end_date '2026-13-40'"),
        ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "is not after start_date"),
        ({"page_size": 0}, "page_size 0 is out of range"),
        ({"page_size": 5000}, "page_size 5000 is out of range"),
        ({"api_key": ""}, "api_key is empty"),
        ({"application_id": "  "}, "application_id is empty"),
        ({"affinity": ["category:Tents, Tarps"]}, "contains a comma"),
        ({"indices": ["products_en_US,products_fr_FR"]}, "give one index per item (repeat --indices"),
        ({"max_share": 0}, "max_share"),
    ],
)
def test_bad_settings_fail_before_any_request(emulator, overrides, fragment):
    with pytest.raises(ConfigurationError) as error:
        algolia_profiles(**source_args(emulator, **overrides))
    assert fragment in str(error.value)
    assert API_KEY not in str(error.value)
    assert emulator.requests == []


def test_wrong_key_names_the_acls_and_region(emulator, pipeline_factory):
    pipeline = pipeline_factory()
    with pytest.raises(Exception) as failure:
        run(pipeline, emulator, api_key="wrong-" + API_KEY[::-1])
    error = find(failure.value, AuthenticationError)
    assert error is not None, failure.value
    for word in ("search", "browse", "recommendation", "401", APP_ID, "region"):
        assert word in str(error)
    assert API_KEY[::-1] not in str(failure.value)
    assert not pipeline.has_pending_data


def test_unknown_host_says_region_or_base_url():
    client = ProfilesClient("https://ai-personalization.mars.algolia.invalid", APP_ID, API_KEY, **FAST_RETRIES)
    with pytest.raises(EndpointError, match="check `region`"):
        client.get_config()


def test_wrong_base_url_path_is_a_404_that_says_so(emulator):
    client = ProfilesClient(emulator.base_url + "/proxy", APP_ID, API_KEY, **FAST_RETRIES)
    with pytest.raises(EndpointError, match="404"):
        list(client.iter_user_pages({"limit": 10}))


def test_refused_parameters_are_named_in_the_error(emulator):
    client = ProfilesClient(emulator.base_url, APP_ID, API_KEY, **FAST_RETRIES)
    with pytest.raises(InvalidRequestError) as error:
        list(client.iter_user_pages({"limit": 0, "startDate": "2026-01-01T00:00:00Z"}))
    assert "limit=0" in str(error.value) and "startDate='2026-01-01T00:00:00Z'" in str(error.value)
    assert "422" in str(error.value)


class _FakeApi(BaseHTTPRequestHandler):
    """Serves one canned body for every request (for behaviours the emulator will not show)."""

    body: bytes = b"{}"
    content_type = "application/json"

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("content-type", self.content_type)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_api():
    servers = []

    def serve(body, content_type="application/json"):
        handler = type("Handler", (_FakeApi,), {"body": body, "content_type": content_type})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_repeated_page_token_stops_the_walk(fake_api):
    url = fake_api(json.dumps({"users": [], "nextPageToken": "same"}).encode())
    client = ProfilesClient(url, APP_ID, API_KEY, **FAST_RETRIES)
    with pytest.raises(PaginationError, match="twice"):
        list(client.iter_user_pages({"limit": 10}))


def test_html_instead_of_json_is_a_format_error(fake_api):
    url = fake_api(b"<html>login</html>", content_type="text/html")
    client = ProfilesClient(url, APP_ID, API_KEY, backoff_base=0.001, max_attempts=2)
    with pytest.raises(ResponseFormatError, match="not JSON"):
        list(client.iter_user_pages({"limit": 10}))


def test_json_of_the_wrong_shape_is_a_format_error(fake_api):
    url = fake_api(json.dumps({"hits": [1, 2]}).encode())
    client = ProfilesClient(url, APP_ID, API_KEY, **FAST_RETRIES)
    with pytest.raises(ResponseFormatError, match="not shaped like"):
        list(client.iter_user_pages({"limit": 10}))


def _cli(args, tmp_path, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env.update({"DLT_DATA_DIR": str(tmp_path / "dlt_data"), **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "algolia_profiles_source.cli", "-v", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def _no_key_anywhere(tmp_path, key, *outputs):
    for text in outputs:
        assert key not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"API key written to {path}"


def test_cli_exit_codes_and_messages_never_show_the_key(emulator, tmp_path):
    good = {
        "SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID,
        "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
        "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url,
        "SOURCES__ALGOLIA_PROFILES__BACKOFF_BASE": "0.01",
        "RUNTIME__LOG_LEVEL": "DEBUG",
    }
    ok = _cli(["load", "--page-size", "40"], tmp_path, good)
    assert ok.returncode == 0, ok.stderr
    assert "Loaded 150 profiles" in ok.stdout
    assert "Making GET request" in ok.stderr  # dlt's request log ran at DEBUG, headers included

    wrong_key = "zz-WRONG-" + API_KEY
    bad = _cli(["load"], tmp_path, {**good, "SOURCES__ALGOLIA_PROFILES__API_KEY": wrong_key})
    assert bad.returncode == 2
    assert "recommendation" in bad.stderr and "Traceback" not in bad.stderr

    region = _cli(["load", "--region", "mars", "--base-url", ""], tmp_path,
                  {k: v for k, v in good.items() if "BASE_URL" not in k})
    assert region.returncode == 2 and "region 'mars'" in region.stderr

    dest = _cli(["load", "--destination", "nosuchwarehouse"], tmp_path, good)
    assert dest.returncode == 2 and "unknown destination" in dest.stderr

    missing = _cli(["load"], tmp_path, {"SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url})
    assert missing.returncode == 2 and "api_key" in missing.stderr.lower()

    traced = _cli(["load"], tmp_path, {**good, "SOURCES__ALGOLIA_PROFILES__API_KEY": wrong_key,
                                        "ALGOLIA_PROFILES_TRACEBACK": "1"})
    assert traced.returncode == 2 and "Traceback" in traced.stderr  # the whole chain, dlt's included

    outputs = [p.stdout + p.stderr for p in (ok, bad, region, dest, missing, traced)]
    _no_key_anywhere(tmp_path, API_KEY, *outputs)
    _no_key_anywhere(tmp_path, wrong_key, *outputs)


def test_debug_logs_of_a_run_never_show_the_key(emulator, pipeline_factory, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    pipeline = pipeline_factory()
    run(pipeline, emulator, page_size=50)
    emulator.inject("500", "reset")
    run(pipeline, emulator, page_size=50)
    assert "retrying" in caplog.text and "GET /2/users" in caplog.text
    assert API_KEY not in caplog.text
    _no_key_anywhere(tmp_path, API_KEY)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_malformed_records_are_quarantined_and_counted_not_fatal(fake_api, pipeline_factory, concurrency):
    good = {"userID": "good-user", "type": "basic", "lastUpdatedAt": "2026-11-01T10:00:00Z",
            "affinities": [{"name": "brand", "value": "Nike", "indices": ["i"], "score": 12, "lastUpdatedAt": "2026-11-01T10:00:00Z"}]}
    page = {"users": [
        good,
        {"type": "basic", "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []},  # no userID
        {"userID": "x" * 130, "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []},  # too long
        {"userID": "half-bad", "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": [
            {"name": "brand", "value": "Adidas", "indices": ["i"], "score": 7, "lastUpdatedAt": "2026-11-01T10:00:00Z"},
            {"name": "brand", "value": "Puma", "indices": ["i"], "score": 45, "lastUpdatedAt": "2026-11-01T10:00:00Z"}]},
        {"userID": "nan-score", "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": [
            {"name": "brand", "value": "Asics", "indices": ["i"], "score": "high"}]},
        {"userID": ["not", "a", "string"], "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []},
    ]}
    url = fake_api(json.dumps(page).encode())
    pipeline = pipeline_factory()
    from algolia_profiles_source.pipeline import load_profiles

    result = load_profiles(pipeline, application_id=APP_ID, api_key=API_KEY, base_url=url,
                           concurrency=concurrency, **FAST_RETRIES)
    assert result.run["rejected"] == 5 and result.row_counts["rejected_records"] == 5
    with pipeline.sql_client() as client:
        users = {r[0] for r in client.execute_sql(f"SELECT user_id FROM {client.make_qualified_table_name('users')}")}
        affinities = {(r[0], r[1]) for r in client.execute_sql(
            f"SELECT user_id, value FROM {client.make_qualified_table_name('user_affinities')}")}
        reasons = [r[0] for r in client.execute_sql(
            f"SELECT reason FROM {client.make_qualified_table_name('rejected_records')}")]
    assert users == {"good-user", "half-bad"}
    assert affinities == {("good-user", "Nike"), ("half-bad", "Adidas")}
    assert sum("score" in r for r in reasons) == 1 and sum("userID" in r for r in reasons) == 2
    assert sum("not shaped like" in r for r in reasons) == 2


def test_a_page_that_is_not_json_changes_nothing(fake_api, emulator, pipeline_factory):
    pipeline = pipeline_factory()
    run(pipeline, emulator, page_size=50)
    state_before = json.dumps(pipeline.state["sources"], sort_keys=True, default=str)
    broken = fake_api(b"<html>maintenance</html>", content_type="text/html")
    with pytest.raises(Exception) as failure:
        run(pipeline, emulator, base_url=broken, max_attempts=2)
    assert find(failure.value, ResponseFormatError) is not None
    assert json.dumps(pipeline.state["sources"], sort_keys=True, default=str) == state_before
    assert not pipeline.has_pending_data
    from tests.conftest import assert_warehouse_equals_emulator

    assert_warehouse_equals_emulator(pipeline, emulator)


def test_one_profile_by_id_with_reserved_characters(emulator):
    client = ProfilesClient(emulator.base_url, APP_ID, API_KEY, **FAST_RETRIES)
    user_id = next(p["userID"] for p in emulator.store.users() if "/" in p["userID"] or "+" in p["userID"])
    assert client.get_user(user_id) == emulator.store.get(user_id)


def test_config_requests_follow_the_same_retry_and_error_policy(emulator_factory):
    emulator = emulator_factory(rate_window=1.0)  # a 429 waits for the window to reset
    client = ProfilesClient(emulator.base_url, APP_ID, "wrong-key", **FAST_RETRIES)
    with pytest.raises(AuthenticationError):
        client.get_config()
    client = ProfilesClient(emulator.base_url, APP_ID, API_KEY, **FAST_RETRIES)
    emulator.inject("500", "503_html", "429")
    assert "indices" in client.get_config()
    assert client.stats["retries"] == 3


def test_a_command_run_before_the_first_load_leaves_no_file_and_the_load_uses_the_1_4_format(emulator, tmp_path):
    good = {
        "SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID,
        "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
        "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url,
    }
    sizes = _cli(["segments", "sizes"], tmp_path, good)
    assert sizes.returncode == 2 and "algolia-profiles load" in sizes.stderr and "Traceback" not in sizes.stderr
    database = tmp_path / "algolia_profiles.duckdb"  # dlt's default file
    assert not database.exists()
    load = _cli(["load"], tmp_path, good)
    assert load.returncode == 0, load.stderr
    assert storage_version(database) == "v1.4.0+"


def test_reading_commands_work_from_the_database_when_the_pipeline_folder_is_gone(emulator, tmp_path):
    import shutil

    good = {
        "SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID,
        "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
        "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url,
    }
    work = tmp_path / "work"
    assert _cli(["load", "--dir", str(work)], tmp_path, good).returncode == 0
    examples = ["--file", str(EXAMPLE_AUDIENCES)]
    assert _cli(["segments", "build", "--dir", str(work), *examples], tmp_path, good).returncode == 0
    shutil.rmtree(work / "pipelines")  # a new machine or a wiped runner: only the database is left
    sizes = _cli(["segments", "sizes", "--dir", str(work)], tmp_path, good)
    assert sizes.returncode == 0 and "kids_shoppers" in sizes.stdout, sizes.stderr
    export = _cli(["export", "kids_shoppers", "--dir", str(work), "--output-dir", str(tmp_path / "out")], tmp_path, good)
    assert export.returncode == 0, export.stderr
    assert list((tmp_path / "out").glob("kids_shoppers.*"))
    # status and a build restore the state from the destination, as a load does
    shutil.rmtree(work / "pipelines")
    shown = _cli(["status", "--dir", str(work)], tmp_path, good)
    assert shown.returncode == 0 and "last load:" in shown.stdout and "no load yet" not in shown.stdout
    shutil.rmtree(work / "pipelines")
    build = _cli(["segments", "build", "--dir", str(work), *examples], tmp_path, good)
    assert build.returncode == 0 and "kids_shoppers" in build.stdout, build.stderr


def test_another_application_into_the_same_pipeline_is_refused_before_any_request(emulator, pipeline_factory):
    from algolia_profiles_source.emulator import Emulator
    from tests.conftest import assert_warehouse_equals_emulator

    pipeline = pipeline_factory()
    run(pipeline, emulator, page_size=50)
    state_before = json.dumps(pipeline.state["sources"], sort_keys=True, default=str)
    other = Emulator(app_id="OTHER_APP", api_key=API_KEY, n_users=60, seed=3).start()
    try:
        with pytest.raises(Exception) as failure:
            run(pipeline, other, application_id="OTHER_APP")
        error = find(failure.value, ConfigurationError)
        assert error is not None, failure.value
        assert f"application {APP_ID!r}" in str(error) and "'OTHER_APP'" in str(error)
        assert "--pipeline-name" in str(error)
        assert other.requests == []  # refused before the config or the first page was read
    finally:
        other.stop()
    assert json.dumps(pipeline.state["sources"], sort_keys=True, default=str) == state_before
    assert not pipeline.has_pending_data
    assert_warehouse_equals_emulator(pipeline, emulator)
    run(pipeline, emulator, page_size=50)  # the pipeline's own application still loads
    assert_warehouse_equals_emulator(pipeline, emulator)


class _LockHolder:
    """Another process holding a DuckDB file open (as `status` or a DuckDB shell does) until released."""

    def __init__(self, path):
        code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True);"
                " sys.stdin.readline(); c.close()")
        self.process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked"  # blocks until the file is held

    def release(self):
        if self.process.poll() is None:
            self.process.stdin.write("\n")
            self.process.stdin.flush()
            self.process.wait(timeout=30)


def test_a_load_waits_for_another_process_holding_the_duckdb_file(emulator, pipeline_factory, monkeypatch):
    import algolia_profiles_source.load.duckdb as duckdb_module
    from algolia_profiles_source.exceptions import DatabaseBusyError
    from tests.conftest import assert_warehouse_equals_emulator

    pipeline = pipeline_factory()
    run(pipeline, emulator, page_size=50)
    emulator.store.upsert({"userID": "new-user", "type": "basic", "affinities": [
        {"name": "category", "value": "Camping", "score": 12, "indices": ["products_en_US"]}]})
    path = pipeline.destination_client().config.credentials.database

    # held for longer than the load waits: a clear error, and nothing is lost
    monkeypatch.setattr(duckdb_module, "DUCKDB_LOCK_WAIT_SECONDS", 0.3)
    holder = _LockHolder(path)
    try:
        with pytest.raises(DatabaseBusyError, match="in use by another process"):
            run(pipeline, emulator, page_size=50)
    finally:
        holder.release()
    run(pipeline, emulator, page_size=50)  # finishes the package the failed load left
    assert_warehouse_equals_emulator(pipeline, emulator)

    # held briefly (a `status` during the load): the load waits, then succeeds
    monkeypatch.setattr(duckdb_module, "DUCKDB_LOCK_WAIT_SECONDS", 60)
    emulator.store.upsert({"userID": "another-user", "type": "basic", "affinities": []})
    waiting = threading.Event()

    class Waiting(logging.Handler):
        def emit(self, record):
            if "held by another process" in record.getMessage():
                waiting.set()

    handler = Waiting()
    logger = logging.getLogger("algolia_profiles_source.load.duckdb")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    holder = _LockHolder(path)
    try:
        result = {}
        loader = threading.Thread(target=lambda: result.setdefault("info", run(pipeline, emulator, page_size=50)))
        loader.start()
        assert waiting.wait(timeout=60)
        holder.release()
        loader.join(timeout=120)
    finally:
        holder.release()
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert "info" in result
    assert_warehouse_equals_emulator(pipeline, emulator)


def test_a_command_on_a_duckdb_file_held_by_a_load_says_so(emulator, tmp_path):
    env = {
        "SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID,
        "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
        "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url,
    }
    assert _cli(["load", "--dir", "d"], tmp_path, env).returncode == 0
    holder = _LockHolder(tmp_path / "d" / "algolia_profiles.duckdb")
    try:
        busy = _cli(["status", "--dir", "d"], tmp_path, env)
    finally:
        holder.release()
    assert busy.returncode == 1
    assert "in use by another process" in busy.stderr and "run this again" in busy.stderr
    assert "DestinationConnectionError" not in busy.stderr and "internet connection" not in busy.stderr
    assert _cli(["status", "--dir", "d"], tmp_path, env).returncode == 0


def test_a_pipeline_name_that_is_a_path_and_a_closed_pipe_are_handled(tmp_path):
    for name in ("../evil", "a b", "Prod-EU", ""):
        bad = _cli(["status", "--pipeline-name", name, "--dir", "d"], tmp_path, {})
        assert bad.returncode == 2 and f"pipeline name {name!r} is not valid" in bad.stderr, bad.stderr
    assert not (tmp_path / "evil.duckdb").exists() and not (tmp_path / "d").exists()

    audiences = Path(__file__).resolve().parents[1] / "algolia_profiles_source/segments/examples/audiences.toml"
    reader = subprocess.Popen(
        [sys.executable, "-m", "algolia_profiles_source.cli", "segments", "sql", "--file", str(audiences)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "DLT_DATA_DIR": str(tmp_path / "dlt_data")},
    )
    reader.stdout.read(10)
    reader.stdout.close()  # as `| head -c 10` does
    stderr = reader.stderr.read().decode()
    reader.wait(timeout=60)
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr


def test_a_location_that_cannot_be_written_is_a_usage_error(tmp_path):
    (tmp_path / "a_file").write_text("")
    env = {"SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID, "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY}
    done = _cli(["load", "--dir", "a_file/work"], tmp_path, env)
    assert done.returncode == 2, done.stderr
    assert "cannot use 'a_file/work': Not a directory" in done.stderr
    assert "choose a location you can write to" in done.stderr and "Traceback" not in done.stderr
    read = _cli(["status", "--dir", "a_file/work"], tmp_path, env)  # a reading command creates nothing
    assert read.returncode == 2 and "'a_file/work' does not exist" in read.stderr and "Traceback" not in read.stderr


def test_the_reset_after_a_bounded_load_tolerates_another_process_holding_the_file(emulator, pipeline_factory):
    from algolia_profiles_source.load.duckdb import bounded_initial_load

    pipeline = pipeline_factory()
    run(pipeline, emulator, page_size=50)
    path = pipeline.destination_client().config.credentials.database
    with bounded_initial_load(pipeline) as bounded:
        assert bounded
        holder = _LockHolder(path)  # a `status` starting just after the load closed the file
    holder.release()
    with pipeline.sql_client() as client:  # the settings of the bound did not outlive the load
        assert client.execute_sql("SELECT current_setting('preserve_insertion_order')")[0][0] is True
