"""Reconcile: profiles deleted (or expired) in Algolia are marked deleted, leave every audience, and
come back if Algolia brings them back."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pytest

from algolia_profiles_source.exceptions import ApiError, ConfigurationError
from algolia_profiles_source.pipeline import load_profiles
from algolia_profiles_source.segments import build_segments
from algolia_profiles_source.load.status import status
from tests.conftest import expected_snapshot, recomputed_during_walk, run, source_args, warehouse_snapshot

CAMPERS = {"audiences": {"campers": {"rule": {"affinity": "category:Camping"}}}}


def deleted_users(pipeline):
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("users")
        return {r[0] for r in client.execute_sql(f"SELECT user_id FROM {table} WHERE deleted_at IS NOT NULL")}


def live_view(pipeline):
    """Users and affinities of the staging views (what segments read), as snapshots."""
    users, affinities = warehouse_snapshot(pipeline)
    gone = deleted_users(pipeline)
    return ({k: v for k, v in users.items() if k not in gone},
            {k: v for k, v in affinities.items() if k[0] not in gone})


def test_reconcile_marks_deleted_profiles_and_segments_see_them_exit(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=300)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=50)
    build_segments(pipeline, CAMPERS)
    campers = sorted(p["userID"] for p in emu.store.users()
                     if any(a["name"] == "category" and a["value"] == "Camping" for a in p["affinities"]))
    gone = campers[:3] + [p["userID"] for p in emu.store.users()[::60]]
    for user_id in gone:
        assert emu.store.delete(user_id)

    run(pipeline, emu, page_size=50)  # incremental: cannot see deletions
    assert deleted_users(pipeline) == set()

    result = load_profiles(pipeline, reconcile=True, **source_args(emu, page_size=50))
    assert result.run["deleted"] == len(set(gone)) and result.run["reconcile"] is True
    assert deleted_users(pipeline) == set(gone)
    assert live_view(pipeline) == expected_snapshot(emu.store.users())
    assert warehouse_snapshot(pipeline)[0].keys() >= set(gone)  # history kept

    second = build_segments(pipeline, CAMPERS)
    with pipeline.sql_client() as client:
        events = client.execute_sql(
            f"SELECT user_id, event FROM {client.make_qualified_table_name('segment_membership_events')}"
            " WHERE build_id = %s", second.build_id)
    assert set(map(tuple, events)) == {(u, "exited") for u in set(gone) & set(campers)}
    with pipeline.sql_client() as client:  # the models read the live users' affinities only
        staged = client.execute_sql(
            f"SELECT user_id, name, value FROM {client.make_qualified_table_name('stg_algolia__user_affinities')}")
        catalog_rows = client.execute_sql(
            f"SELECT sum(users) FROM {client.make_qualified_table_name('affinity_catalog')}")[0][0]
    live_affinities = {(p["userID"], a["name"], a["value"]) for p in emu.store.users() for a in p["affinities"]}
    assert set(map(tuple, staged)) == live_affinities and len(staged) == len(live_affinities)
    assert catalog_rows == len(live_affinities) and not {row[0] for row in staged} & set(gone)

    # a profile that comes back is live again after the next load
    emu.store.upsert({"userID": gone[0], "type": "basic", "affinities": []})
    run(pipeline, emu, page_size=50)
    assert gone[0] not in deleted_users(pipeline)
    assert live_view(pipeline) == expected_snapshot(emu.store.users())


def test_a_walk_that_sees_too_few_profiles_deletes_nothing(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=200)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=100)
    small = emulator_factory(n_users=20, seed=99)  # e.g. a wrong proxy, or a mass expiry
    with pytest.raises(ApiError, match="refusing to mark") as refused:
        load_profiles(pipeline, reconcile=True, **source_args(small, page_size=100))
    assert deleted_users(pipeline) == set()
    # 20 of 220 live users seen: the message says how to go on if the expiry is real
    assert "(9.1%, under min_seen_share 50%)" in str(refused.value)
    assert "--min-seen-share 0.09" in str(refused.value)
    # a refused reconcile has not reconciled: one is still due
    info = status(pipeline)
    assert info["last_reconcile_at"] is None and info["reconcile_due"]

    before = datetime.now(timezone.utc)
    load_profiles(pipeline, reconcile=True, min_seen_share=0.09, **source_args(small, page_size=100))
    gone = {p["userID"] for p in emu.store.users()} - {p["userID"] for p in small.store.users()}
    assert deleted_users(pipeline) == gone and len(gone) >= 190
    info = status(pipeline)
    assert datetime.fromisoformat(info["last_reconcile_at"].replace("Z", "+00:00")) >= before.replace(microsecond=0)
    assert not info["reconcile_due"]
    # a runner without the pipeline's folder (CI) restores it from the destination
    shutil.rmtree(pipeline.pipelines_dir)
    fresh = pipeline_factory(pipeline.pipeline_name)
    assert status(fresh)["last_reconcile_at"] == info["last_reconcile_at"]
    run(fresh, emu, page_size=100)  # and the next load goes on from there
    assert status(fresh)["last_reconcile_at"] == info["last_reconcile_at"]


def test_the_share_the_refusal_suggests_is_accepted(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=93)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=100)
    small = emulator_factory(n_users=7, seed=99)  # 7 of 100 live users seen: 0.07 exactly
    with pytest.raises(ApiError, match=r"--min-seen-share (0\.\d\d)") as refused:
        load_profiles(pipeline, reconcile=True, **source_args(small, page_size=100))
    import re

    suggested = float(re.search(r"--min-seen-share (0\.\d\d)", str(refused.value)).group(1))
    load_profiles(pipeline, reconcile=True, min_seen_share=suggested, **source_args(small, page_size=100))
    assert status(pipeline)["last_reconcile_at"] is not None


@pytest.mark.parametrize("share", [-0.1, 1.5, "half", None])
def test_a_bad_min_seen_share_is_refused_before_the_walk(emulator, pipeline_factory, share):
    pipeline = pipeline_factory()
    with pytest.raises(ConfigurationError, match="min_seen_share must be a share from 0 to 1"):
        load_profiles(pipeline, reconcile=True, min_seen_share=share, **source_args(emulator))
    assert emulator.requests == []


@pytest.mark.parametrize("option", [{"affinity": ["category:Camping"]}, {"start_date": "2026-01-01T00:00:00Z"}])
def test_reconcile_refuses_partial_walks(emulator, option):
    from algolia_profiles_source import algolia_profiles

    with pytest.raises(ConfigurationError, match="reconcile walks every profile"):
        algolia_profiles(reconcile=True, **source_args(emulator, **option))


def test_two_loads_of_one_pipeline_at_once_do_not_both_run(emulator_factory, pipeline_factory):
    import threading
    import time

    from algolia_profiles_source.exceptions import PipelineBusyError

    emu = emulator_factory(n_users=200, latency=0.05)
    pipeline = pipeline_factory()
    first_done = {}

    def first():
        first_done["result"] = load_profiles(pipeline, **source_args(emu, page_size=20))

    thread = threading.Thread(target=first)
    thread.start()
    # wait (bounded, by polling the emulator) until the first load is walking pages
    deadline = time.monotonic() + 30
    while not [r for r in emu.requests if r.path == "/2/users"] and time.monotonic() < deadline:
        thread.join(timeout=0.01)
    with pytest.raises(PipelineBusyError, match="another load of pipeline"):
        load_profiles(pipeline, **source_args(emu, page_size=20))
    thread.join(timeout=120)
    assert first_done["result"].row_counts["users"] == 200
    load_profiles(pipeline, **source_args(emu, page_size=20))  # free again afterwards


def test_reconcile_after_a_pending_package_marks_only_the_really_deleted(emulator_factory, pipeline_factory):
    from algolia_profiles_source import algolia_profiles

    emu = emulator_factory(n_users=300)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=100)
    from tests.test_source_e2e import _apply_changes

    _apply_changes(emu)
    pipeline.extract(algolia_profiles(**source_args(emu, page_size=100)))  # a run that died before loading
    pipeline.normalize()
    assert pipeline.has_pending_data
    gone = [p["userID"] for p in emu.store.users()[::50]]
    for user_id in gone:
        emu.store.delete(user_id)
    result = load_profiles(pipeline, reconcile=True, **source_args(emu, page_size=100))
    assert result.run["deleted"] == len(gone)
    assert deleted_users(pipeline) == set(gone)
    assert live_view(pipeline) == expected_snapshot(emu.store.users())


def test_concurrent_reconcile_sees_profiles_recomputed_during_the_walk(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=800, latency=0.02)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=20)
    emu.clear_requests()
    restamp = lambda profile, stamp: dict(profile, lastUpdatedAt=stamp)  # noqa: E731
    with recomputed_during_walk(emu, restamp, after_requests=6) as moved:
        result = load_profiles(pipeline, reconcile=True, **source_args(emu, page_size=20, concurrency=4))
    assert moved and result.run["deleted"] == 0
    assert deleted_users(pipeline) == set()
