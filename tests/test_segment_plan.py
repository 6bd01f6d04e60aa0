"""A plan before a build: `segments plan` writes nothing and shows what the next build writes; values
are checked against the loaded catalog; empty audiences and size jumps are warnings."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from algolia_profiles_source.segments import build_segments
from algolia_profiles_source.segments.build import plan_segments
from algolia_profiles_source.segments.checks import size_warnings
from algolia_profiles_source.segments.definitions import DefinitionError
from algolia_profiles_source.warehouse.read import open_dataset
from tests.conftest import run

NOW = datetime(2026, 11, 28, tzinfo=timezone.utc)
AUDIENCES = {"audiences": {
    "campers": {"rule": {"affinity": "category:Camping"}},
    "brand_fans": {"rule": {"affinity": "brand", "score": {"gte": 12}}},
    "recent": {"rule": {"profile": {"updated_within_days": 10}}},
    "campers_not_fans": {"rule": {"audience": "campers"}, "exclude": ["brand_fans"]},
    "top_campers": {"rule": {"affinity": "category:Camping"}, "top": {"n": 25}},
}}


def warehouse_fingerprint(pipeline) -> dict[str, str]:
    """Every table and view of the DuckDB file, with a hash of its sorted content."""
    with pipeline.sql_client() as client:
        tables = [row[0] for row in client.execute_sql(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables ORDER BY 1")]
        return {table: hashlib.sha256(repr(sorted(map(repr, client.execute_sql(f"SELECT * FROM {table}"))))
                                      .encode()).hexdigest() for table in tables}


def planned(plan) -> dict[str, tuple[int, int, int]]:
    return {row["segment"]: (row["members"], row["entered"], row["exited"]) for row in plan.sizes}


def built(result) -> dict[str, tuple[int, int, int]]:
    return {row["segment"]: (row["members"], row["entered"], row["exited"]) for row in result.sizes}


@pytest.fixture
def loaded(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=800, seed=5, now=NOW)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=400)
    return emu, pipeline


def test_plan_writes_nothing_and_the_next_build_writes_what_it_showed(loaded):
    emu, pipeline = loaded
    before = warehouse_fingerprint(pipeline)
    first_plan = plan_segments(pipeline, AUDIENCES, as_of=NOW)
    assert warehouse_fingerprint(pipeline) == before  # no table created, changed or dropped
    assert [row["segment"] for row in first_plan.sizes] == list(AUDIENCES["audiences"])
    first = build_segments(pipeline, AUDIENCES, as_of=NOW)
    assert planned(first_plan) == built(first)
    assert all(entered == members and exited == 0 for members, entered, exited in built(first).values())

    # the profiles change; the plan against the first build shows who enters and who exits
    users = emu.store.users()
    for profile in users[:120]:  # recomputed now: all campers, nothing else
        emu.store.upsert({"userID": profile["userID"], "type": "basic", "affinities": [
            {"name": "category", "value": "Camping", "score": 15, "indices": ["products_en_US"],
             "lastUpdatedAt": "2026-11-27T10:00:00Z"}]})
    run(pipeline, emu, page_size=400)
    before = warehouse_fingerprint(pipeline)
    second_plan = plan_segments(pipeline, AUDIENCES, as_of=NOW)
    assert warehouse_fingerprint(pipeline) == before
    second = build_segments(pipeline, AUDIENCES, as_of=NOW)
    assert planned(second_plan) == built(second)
    assert any(entered for _, entered, _ in planned(second_plan).values())
    assert any(exited for _, _, exited in planned(second_plan).values())


def test_plan_names_the_audiences_a_build_would_retire(loaded):
    _, pipeline = loaded
    build_segments(pipeline, AUDIENCES, as_of=NOW)
    fewer = {"audiences": {"campers": AUDIENCES["audiences"]["campers"]}}
    plan = plan_segments(pipeline, fewer, as_of=NOW)
    with open_dataset(pipeline) as dataset:
        sizes = {row["segment"]: row["members"] for row in dataset.rows("segment_sizes")}
    assert plan.retiring == {name: size for name, size in sizes.items() if name != "campers"}


def test_a_value_no_profile_holds_is_a_warning_and_an_error_when_strict(loaded):
    _, pipeline = loaded
    typo = {"audiences": {"campers": {"rule": {"affinity": "category:Campng"}}}}
    result = build_segments(pipeline, typo, as_of=NOW)
    assert result.sizes[0]["members"] == 0
    value, empty = result.warnings
    assert "category = 'Campng'" in value and "did you mean 'Camping'?" in value
    assert "'campers' is empty" in empty
    with pytest.raises(DefinitionError) as error:
        build_segments(pipeline, typo, as_of=NOW, strict=True)
    assert error.value.problems == [value.replace("audience 'campers'", "audience 'campers'", 1)]


def test_size_warnings():
    sizes = [{"segment": "a", "members": 0}, {"segment": "b", "members": 160}, {"segment": "c", "members": 140},
             {"segment": "d", "members": 40}, {"segment": "new", "members": 5}]
    previous = {"a": 10, "b": 100, "c": 100, "d": 100}
    warnings = size_warnings(sizes, previous, 0.5)
    assert warnings == [
        "audience 'a' is empty: nobody matches it (it had 10 members)",
        "audience 'b' changed size by +60% since the last build (100 -> 160 members; warning threshold 50%)",
        "audience 'd' changed size by -60% since the last build (100 -> 40 members; warning threshold 50%)",
    ]
    lower = size_warnings(sizes, previous, 0.3)
    assert len(lower) == 4 and lower[2] == (
        "audience 'c' changed size by +40% since the last build (100 -> 140 members; warning threshold 30%)")


def test_history_rules_need_the_history_loaded(loaded):
    from algolia_profiles_source.exceptions import ConfigurationError

    _, pipeline = loaded
    rising = {"audiences": {"rising": {"rule": {"history": {"affinity": "category:Camping", "days": 30, "rose_by": 5}}}}}
    for call in (build_segments, plan_segments):
        with pytest.raises(ConfigurationError, match=r"history rules read user_affinities_history.*history = true"):
            call(pipeline, rising, as_of=NOW)
