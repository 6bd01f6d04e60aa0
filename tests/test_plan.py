"""The plan of a run, computed once from the resource state: one test per mode."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from algolia_profiles_source.exceptions import ConfigurationError
from algolia_profiles_source.extract.plan import check_application, plan_run
from algolia_profiles_source.http.query import build_query

HOUR = timedelta(hours=1)
CURSOR = "2026-11-20T12:00:00Z"
FILTERS = {"indices": [], "affinity": []}


def plan(state=None, reconcile=False, tables_exist=False, **query):
    return plan_run(state or {}, build_query(region="us", base_url=None, **query),
                    reconcile=reconcile, overlap=HOUR, tables_exist=tables_exist)


def test_the_first_unfiltered_walk_into_an_empty_schema_replaces_without_tombstones():
    first = plan()
    assert first.mode == "initial" and first.write_disposition == "replace"
    assert not first.tombstones and first.moves_cursor and "startDate" not in first.params


@pytest.mark.parametrize("query, tables_exist", [
    ({}, True),  # the tables exist already (another pipeline state, a wiped folder)
    ({"start_date": "2026-11-01T00:00:00Z"}, False),
    ({"indices": ["products"]}, False),
])
def test_a_first_walk_that_may_meet_existing_rows_merges(query, tables_exist):
    full = plan(tables_exist=tables_exist, **query)
    assert full.mode == "full" and full.write_disposition == "merge" and full.tombstones


def test_an_incremental_run_starts_an_overlap_before_the_cursor():
    run = plan({"last_updated_at": CURSOR, "filters": FILTERS})
    assert run.mode == "incremental" and run.write_disposition == "merge"
    assert run.params["startDate"] == "2026-11-20T11:00:00Z" and not run.warnings


def test_a_new_start_date_superseded_by_the_cursor_is_warned_about_once():
    state = {"last_updated_at": CURSOR, "filters": FILTERS}
    run = plan(state, start_date="2026-11-01T00:00:00Z")
    assert run.params["startDate"] == "2026-11-20T11:00:00Z"
    assert len(run.warnings) == 1 and "backfill window" in run.warnings[0]
    kept = plan(dict(state, start_date="2026-11-01T00:00:00Z"), start_date="2026-11-01T00:00:00Z")
    assert kept.warnings == ()


def test_changed_filters_read_every_matching_profile_again():
    run = plan({"last_updated_at": CURSOR, "filters": FILTERS}, affinity=["category"])
    assert run.mode == "full" and "startDate" not in run.params and "filters changed" in run.warnings[0]


def test_a_backfill_reads_its_window_and_leaves_the_cursor():
    state = {"last_updated_at": CURSOR, "filters": FILTERS, "start_date": None}
    run = plan(state, start_date="2026-10-01T00:00:00Z", end_date="2026-10-02T00:00:00Z")
    assert run.mode == "backfill" and not run.moves_cursor and run.write_disposition == "merge"
    assert run.params["startDate"] == "2026-10-01T00:00:00Z"
    run.save(state, datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert state == {"last_updated_at": CURSOR, "filters": FILTERS, "start_date": None}


def test_a_reconcile_walks_everything_whatever_the_cursor():
    run = plan({"last_updated_at": CURSOR, "filters": FILTERS}, reconcile=True, tables_exist=True)
    assert run.mode == "reconcile" and "startDate" not in run.params and run.tombstones


def test_saving_moves_the_cursor_forward_only():
    state = {"last_updated_at": CURSOR, "filters": FILTERS}
    run = plan(state)
    run.save(state, datetime(2026, 11, 19, tzinfo=timezone.utc))
    assert state["last_updated_at"] == CURSOR
    run.save(state, datetime(2026, 11, 21, tzinfo=timezone.utc))
    assert state["last_updated_at"] == "2026-11-21T00:00:00Z" and state["filters"] == FILTERS


def test_another_application_than_the_pipeline_holds_is_refused():
    check_application({}, "APP1")
    check_application({"application_id": "APP1"}, "APP1")
    with pytest.raises(ConfigurationError, match="its own pipeline and dataset"):
        check_application({"application_id": "APP1"}, "APP2")
