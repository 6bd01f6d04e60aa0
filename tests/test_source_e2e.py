"""End to end: the source over real HTTP against the emulator, into real DuckDB files."""

from __future__ import annotations

import logging
import math
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from algolia_profiles_source.emulator import FAULT_KINDS
from algolia_profiles_source.times import format_rfc3339
from tests.conftest import (
    assert_warehouse_equals_emulator,
    expected_snapshot,
    recomputed_during_walk,
    run,
    warehouse_snapshot,
)


def api_calls(emu, path="/2/users"):
    return [r for r in emu.requests if r.path == path]


@pytest.mark.parametrize("last_page_token", ["missing", "null", "empty"])
def test_full_load_equals_emulator_over_many_pages(emulator_factory, pipeline_factory, last_page_token):
    emu = emulator_factory(n_users=150, last_page_token=last_page_token)
    users, _ = expected_snapshot(emu.store.users())
    assert any(count == 0 for _, _, count in users.values()), "data must include zero-affinity users"

    pipeline = pipeline_factory()
    result = run(pipeline, emu, page_size=7)

    assert_warehouse_equals_emulator(pipeline, emu)
    calls = api_calls(emu)
    assert len(calls) == math.ceil(150 / 7)
    assert "nextPageToken" not in calls[0].params
    assert all(call.params.get("nextPageToken") for call in calls[1:])
    assert all(call.params["limit"] == "7" for call in calls)
    assert "startDate" not in calls[0].params  # first run: a full load
    assert result.run["profiles"] == 150 and result.run["pages"] == len(calls)
    assert result.run["initial"] is True  # the first complete walk replaces instead of merging


def test_fractional_scores_stay_doubles_without_variant_columns(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=300)
    scores = [a["score"] for p in emu.store.users() for a in p["affinities"]]
    assert any(s != int(s) for s in scores) and any(isinstance(s, int) for s in scores)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=100)
    columns = pipeline.default_schema.get_table("user_affinities")["columns"]
    assert columns["score"]["data_type"] == "double"
    assert columns["last_updated_at"]["data_type"] == "timestamp"
    assert columns["indices"]["data_type"] == "json"
    assert not [c for c in columns if "__v_" in c], f"variant columns: {list(columns)}"
    users = pipeline.default_schema.get_table("users")["columns"]
    assert users["user_id"]["primary_key"] and users["last_updated_at"]["timezone"]
    assert_warehouse_equals_emulator(pipeline, emu)


def _older_users(emu, newest, count):
    """Profiles last updated well before the overlap window of the next run."""
    cutoff = newest - timedelta(days=2)
    return [
        p for p in emu.store.users()
        if p.get("affinities") and len(p["affinities"]) >= 4 and _ts(p["lastUpdatedAt"]) < cutoff
    ][:count]


def _ts(value):
    from tests.conftest import ts

    return ts(value)


def _apply_changes(emu):
    """Same-second, back-dated, new, shrunk and emptied profiles; returns the previous maximum."""
    newest = emu.store.max_last_updated_at()
    same_second = format_rfc3339(newest)
    back_dated = format_rfc3339(newest - timedelta(minutes=20))
    later = format_rfc3339(newest + timedelta(seconds=1))
    a, b, c, d = _older_users(emu, newest, 4)

    emu.store.upsert(dict(a, lastUpdatedAt=same_second, affinities=[
        dict(x, score=20, lastUpdatedAt=same_second) for x in a["affinities"]]))
    emu.store.upsert(dict(b, lastUpdatedAt=back_dated, affinities=b["affinities"] + [
        {"name": "category", "value": "Tents, Tarps & \"Shelters\" > Ultralight", "indices": ["products_en_US"],
         "score": 13.5, "lastUpdatedAt": back_dated}]))
    emu.store.upsert(dict(c, lastUpdatedAt=later, affinities=c["affinities"][:2]))
    emu.store.upsert(dict(d, lastUpdatedAt=later, affinities=[]))
    for i, stamp in enumerate((same_second, back_dated, later)):
        emu.store.upsert({
            "userID": f"new+user/{i}==", "type": "basic", "lastUpdatedAt": stamp,
            "affinities": [{"name": "brand", "value": "Ñandú 户外", "indices": ["products_en_US"],
                            "score": 7, "lastUpdatedAt": stamp}],
        })
    return newest


def test_incremental_run_picks_up_exactly_the_changes(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=400)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=50)
    assert_warehouse_equals_emulator(pipeline, emu)

    previous_max = _apply_changes(emu)
    emu.clear_requests()
    result = run(pipeline, emu, page_size=50)

    assert_warehouse_equals_emulator(pipeline, emu)
    calls = api_calls(emu)
    expected_start = format_rfc3339(previous_max - timedelta(hours=1))
    assert calls and all(call.params.get("startDate") == expected_start for call in calls)
    assert result.run["profiles"] < 0.3 * len(emu.store), result.run
    assert result.run["initial"] is False

    # a third run with nothing new changes nothing and stays cheap
    emu.clear_requests()
    third = run(pipeline, emu, page_size=50)
    assert_warehouse_equals_emulator(pipeline, emu)
    assert third.run["profiles"] <= result.run["profiles"]


def test_without_overlap_a_same_second_update_is_missed(emulator_factory, pipeline_factory):
    """The control for the test above: it shows the comparison does catch a missed update."""
    emu = emulator_factory(n_users=400)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=100, overlap_seconds=0)
    _apply_changes(emu)
    run(pipeline, emu, page_size=100, overlap_seconds=0)
    with pytest.raises(AssertionError):
        assert_warehouse_equals_emulator(pipeline, emu)


def test_incremental_state_does_not_advance_when_the_walk_fails(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=200)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=20)
    state_before = dict(pipeline.state["sources"]["algolia_profiles"]["resources"]["profiles"])

    _apply_changes(emu)
    emu.inject(*["500"] * 10)  # more consecutive failures than max_attempts=3 allows
    with pytest.raises(Exception) as failure:
        run(pipeline, emu, page_size=20, max_attempts=3)
    assert "failed 3 times" in str(failure.value)
    state_after = pipeline.state["sources"]["algolia_profiles"]["resources"]["profiles"]
    assert state_after["last_updated_at"] == state_before["last_updated_at"]

    emu.set_faults(rate=0.0)
    emu.clear_requests()
    emu.inject()  # nothing queued beyond what is left
    run(pipeline, emu, page_size=20)
    assert_warehouse_equals_emulator(pipeline, emu)


def test_exact_under_random_faults(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=250, rate_window=1.0, fault_rate=0.2, fault_seed=11)
    pipeline = pipeline_factory()
    first = run(pipeline, emu, page_size=5)
    assert_warehouse_equals_emulator(pipeline, emu)
    _apply_changes(emu)
    second = run(pipeline, emu, page_size=5)
    assert_warehouse_equals_emulator(pipeline, emu)

    faults = Counter(r.fault for r in emu.requests if r.fault)
    calls = len(emu.requests)
    assert sum(faults.values()) >= 0.1 * calls, (faults, calls)
    assert set(faults) == set(FAULT_KINDS), faults
    assert first.run["retries"] + second.run["retries"] >= sum(faults.values())


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_kind_is_retried(emulator_factory, pipeline_factory, kind):
    emu = emulator_factory(n_users=60, rate_window=1.0)
    emu.inject(kind, kind, kind)
    pipeline = pipeline_factory()
    result = run(pipeline, emu, page_size=20)
    assert_warehouse_equals_emulator(pipeline, emu)
    assert [r.fault for r in emu.requests if r.fault] == [kind] * 3
    assert result.run["retries"] >= 2  # the config call may take one of them


def test_paces_itself_under_the_rate_limit(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=240, rate_limit=10, rate_window=1.0)
    pipeline = pipeline_factory()
    result = run(pipeline, emu, page_size=10, max_share=0.8)
    assert_warehouse_equals_emulator(pipeline, emu)
    assert result.run["pages"] == 24
    assert not [r for r in emu.requests if r.status == 429], "the governor let the quota run out"


def test_filters_and_window_send_exactly_the_documented_parameters(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=300)
    pipeline = pipeline_factory()
    result = run(
        pipeline, emu, page_size=25,
        indices=["products_en_US"], affinity=["category:Camping", "brand"],
        start_date="2000-01-01T00:00:00Z", end_date="2100-01-01T12:30:00.250000+02:00",
    )
    calls = api_calls(emu)
    expected = {
        "limit": "25", "indices": "products_en_US", "affinity": "category:Camping,brand",
        "startDate": "2000-01-01T00:00:00Z", "endDate": "2100-01-01T10:30:00.250000Z",
    }
    assert {k: v for k, v in calls[0].params.items()} == expected
    for call in calls[1:]:
        assert {k: v for k, v in call.params.items() if k != "nextPageToken"} == expected

    def matches(p):
        affinities = p["affinities"]
        return (any("products_en_US" in a["indices"] for a in affinities)
                and any(a["name"] == "category" and a["value"] == "Camping" for a in affinities)
                and any(a["name"] == "brand" for a in affinities))

    wanted = {p["userID"] for p in emu.store.users() if matches(p)}
    assert wanted and result.run["profiles"] == len(wanted)
    with pipeline.sql_client() as client:
        loaded = {r[0] for r in client.execute_sql(
            f"SELECT user_id FROM {client.make_qualified_table_name('users')}")}
    assert loaded == wanted
    # a backfill window neither reads nor moves the incremental cursor
    state = pipeline.state["sources"]["algolia_profiles"]["resources"]["profiles"]
    assert "last_updated_at" not in state and state["last_run"]["backfill"] is True


def test_dataset_queries_work_with_the_pinned_sqlglot(emulator_factory, pipeline_factory):
    """dlt 1.31's dataset lineage breaks with sqlglot >= 30.22; this fails if the pin is lifted early."""
    emu = emulator_factory(n_users=40)
    pipeline = pipeline_factory()
    run(pipeline, emu)
    table = pipeline.dataset()["users"].select("user_id", "affinity_count").arrow()
    assert table.num_rows == 40


@pytest.mark.parametrize("concurrency", [3, 8])
def test_concurrent_windows_are_exact_under_faults(emulator_factory, pipeline_factory, concurrency):
    emu = emulator_factory(n_users=400, rate_window=1.0, fault_rate=0.1, fault_seed=concurrency, latency=0.01)
    pipeline = pipeline_factory()
    first = run(pipeline, emu, page_size=10, concurrency=concurrency)
    assert_warehouse_equals_emulator(pipeline, emu)
    assert first.run["profiles"] == 400  # each profile loaded once, whatever the windows re-read
    windows = {(c.params.get("startDate"), c.params.get("endDate")) for c in api_calls(emu)}
    # it did walk several windows at once (how many it carves depends on how fast each thread is
    # served: windows are handed out as threads ask for them)
    assert len(windows) > concurrency // 2
    _apply_changes(emu)
    emu.clear_requests()
    second = run(pipeline, emu, page_size=10, concurrency=concurrency)
    assert_warehouse_equals_emulator(pipeline, emu)
    assert all(c.params.get("startDate") for c in api_calls(emu))
    assert second.run["profiles"] < 0.3 * len(emu.store)


@pytest.mark.parametrize("lag_seconds", [0, 5])  # 5: the API's clock (or its stamps) run behind ours
def test_profiles_recomputed_during_a_concurrent_export_load_once_and_the_next_run_updates_them(
    emulator_factory, pipeline_factory, lag_seconds
):
    emu = emulator_factory(n_users=800, latency=0.02)
    emu.clear_requests()
    pipeline = pipeline_factory()
    shrink = lambda profile, stamp: dict(profile, lastUpdatedAt=stamp, affinities=profile["affinities"][:1])  # noqa: E731
    with recomputed_during_walk(emu, shrink, lag_seconds=lag_seconds) as moved:
        first = run(pipeline, emu, page_size=20, concurrency=4)
    assert moved and first.run["initial"] is True
    users, _ = warehouse_snapshot(pipeline)  # fails on a user or affinity loaded twice
    assert set(users) <= {p["userID"] for p in emu.store.users()}

    run(pipeline, emu, page_size=20, concurrency=4)  # picks up the versions the first walk dropped
    assert_warehouse_equals_emulator(pipeline, emu)


def test_a_concurrent_backfill_ending_in_the_future_loads_recomputed_profiles_once(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=800, latency=0.02)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=20)
    emu.clear_requests()

    def recompute(profile, stamp):
        return dict(profile, lastUpdatedAt=stamp, affinities=[
            dict(a, value=a["value"] + " (recomputed)") for a in profile["affinities"][:1]])

    tomorrow = format_rfc3339(datetime.now(timezone.utc) + timedelta(days=1))
    with recomputed_during_walk(emu, recompute) as moved:
        run(pipeline, emu, page_size=20, concurrency=4, start_date="2000-01-01T00:00:00Z", end_date=tomorrow)
    versions = {old["userID"]: [expected_snapshot([v])[1] for v in (old, new)] for old, new in moved}
    _, affinities = warehouse_snapshot(pipeline)  # fails on an affinity loaded twice
    assert versions
    for user_id, (old, new) in versions.items():
        loaded = {k: v for k, v in affinities.items() if k[0] == user_id}
        assert loaded in (old, new), f"{user_id}: a mix of two versions"


def test_concurrent_backfill_keeps_the_window_bounds_exact(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=600)
    stamps = sorted(p["lastUpdatedAt"] for p in emu.store.users())
    start, end = stamps[100], stamps[450]
    loaded = {}
    for concurrency in (1, 4):
        pipeline = pipeline_factory()
        run(pipeline, emu, page_size=20, start_date=start, end_date=end, concurrency=concurrency)
        with pipeline.sql_client() as client:
            loaded[concurrency] = {r[0] for r in client.execute_sql(
                f"SELECT user_id FROM {client.make_qualified_table_name('users')}")}
    from tests.conftest import ts

    inside = {p["userID"] for p in emu.store.users() if ts(start) < ts(p["lastUpdatedAt"]) < ts(end)}
    assert loaded[1] == inside and loaded[4] == inside


def test_max_pages_caps_the_whole_run_also_with_windows(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=400)
    with pytest.raises(Exception, match="max_pages=3"):
        run(pipeline_factory(), emu, page_size=10, max_pages=3, concurrency=4)


def test_a_start_date_before_the_cursor_is_reported_not_silently_ignored(emulator_factory, pipeline_factory, caplog):
    emu = emulator_factory(n_users=100)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=50)
    emu.clear_requests()
    with caplog.at_level(logging.WARNING, logger="algolia_profiles_source"):
        run(pipeline, emu, page_size=50, start_date="2020-01-01T00:00:00Z")
    starts = {call.params.get("startDate") for call in api_calls(emu)}
    assert len(starts) == 1 and "2020-01-01T00:00:00Z" not in starts  # the cursor, which is later
    warning = [r.getMessage() for r in caplog.records if "before this pipeline's cursor" in r.getMessage()]
    assert warning and "2020-01-01T00:00:00Z" in warning[0] and "end_date" in warning[0]

    # the same start_date again (kept in config for every scheduled run) is not news
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="algolia_profiles_source"):
        run(pipeline, emu, page_size=50, start_date="2020-01-01T00:00:00Z")
    assert not [r for r in caplog.records if "before this pipeline's cursor" in r.getMessage()]


def test_an_indices_filter_on_an_index_the_application_lacks_says_so(emulator_factory, pipeline_factory, caplog):
    emu = emulator_factory(n_users=60)
    pipeline = pipeline_factory()
    with caplog.at_level(logging.WARNING, logger="algolia_profiles_source"):
        result = run(pipeline, emu, page_size=50, indices=["products_en_UX"])
    assert result.run["profiles"] == 0
    hints = [r.getMessage() for r in caplog.records if "no profile matched" in r.getMessage()]
    assert hints and "'products_en_UX'" in hints[0] and "products_en_US" in hints[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="algolia_profiles_source"):
        run(pipeline_factory(), emu, page_size=50, indices=["products_en_US"])
    assert not [r for r in caplog.records if "no profile matched" in r.getMessage()]
