"""Segments built in DuckDB equal the independent Python oracle over the emulator's data."""

from __future__ import annotations

import copy
import tomllib
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from algolia_profiles_source.times import format_rfc3339
from algolia_profiles_source.segments import build_segments
from tests.conftest import run
from tests.reference_segments import compute_audiences

REPO = Path(__file__).resolve().parents[1]
ALL_FEATURES = REPO / "tests" / "data" / "audiences_all_features.toml"
EXAMPLES = REPO / "algolia_profiles_source" / "segments" / "examples" / "audiences.toml"
NOW = datetime(2026, 11, 28, tzinfo=timezone.utc)
INJECTION = "O'Brien'; drop table users; --"


def members_of(pipeline):
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            f"SELECT segment, user_id, score, matched_affinities FROM {client.make_qualified_table_name('segment_members')}"
        )
    result = {}
    for segment, user_id, score, matched in rows:
        result.setdefault(segment, {})[user_id] = (score, matched)
    return result


def expected(emu, definitions, suppressed=frozenset()):
    found = compute_audiences(
        emu.store.users(), definitions, NOW, {"crm_opted_out.user_token": set(suppressed)}
    )
    return {name: members for name, members in found.items() if members}


def create_opt_outs(pipeline, user_ids):
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("crm_opted_out")
        client.execute_sql(f"CREATE TABLE {table} (user_token TEXT, customer_id BIGINT)")
        for i, user_id in enumerate(user_ids):
            client.execute_sql(f"INSERT INTO {table} VALUES (%s, %s)", user_id, i)


def add_injection_profile(emu):
    emu.store.upsert({
        "userID": "obrien-user", "type": "basic", "lastUpdatedAt": "2026-11-27T10:00:00Z",
        "affinities": [{"name": "brand", "value": INJECTION, "indices": ["products_en_US"],
                        "score": 11, "lastUpdatedAt": "2026-11-27T10:00:00Z"}],
    })


@pytest.fixture
def loaded(emulator_factory, pipeline_factory):
    emu = emulator_factory(n_users=1500, seed=21, now=NOW)
    add_injection_profile(emu)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=500)
    return emu, pipeline


def test_every_feature_matches_the_oracle(loaded):
    emu, pipeline = loaded
    definitions = tomllib.loads(ALL_FEATURES.read_text())
    users = [p["userID"] for p in emu.store.users()]
    opted_out = users[::37]
    definitions["suppression"]["user_ids"] = users[5::41]
    create_opt_outs(pipeline, opted_out)

    result = build_segments(pipeline, definitions)

    want = expected(emu, definitions, opted_out)
    got = members_of(pipeline)
    assert set(got) == set(want), (set(got) ^ set(want))
    for name in want:
        assert got[name] == want[name], f"{name}: {len(got[name])} members vs oracle {len(want[name])}"
    sizes = {row["segment"]: row["members"] for row in result.sizes}
    assert sizes == {name: len(members) for name, members in expected(emu, definitions, opted_out).items()} | {
        name: 0 for name in definitions["audiences"] if name not in want}
    # the checks bite: suppression removed someone, top kept exactly n per value or overall
    assert len(got["top_overall"]) == 25
    assert got["unusual_values"]["obrien-user"] == (11.0, 1)
    assert not set(opted_out) & set().union(*[set(m) for m in got.values()])


def test_example_audiences_match_the_oracle(loaded):
    emu, pipeline = loaded
    definitions = tomllib.loads(EXAMPLES.read_text())
    build_segments(pipeline, EXAMPLES, as_of=NOW)
    got = members_of(pipeline)
    want = expected(emu, {**definitions, "settings": {"as_of": NOW}})
    assert got == want
    assert all(len(members) > 10 for members in got.values()), {k: len(v) for k, v in got.items()}


def test_injection_text_is_only_a_value(loaded):
    emu, pipeline = loaded
    build_segments(pipeline, {"audiences": {"obrien": {"rule": {"affinity": f"brand:{INJECTION}"}}}})
    assert members_of(pipeline) == {"obrien": {"obrien-user": (11.0, 1)}}
    with pipeline.sql_client() as client:
        users = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name('users')}")
    assert users[0][0] == len(emu.store)


def test_entered_and_exited_events_follow_the_data(loaded):
    emu, pipeline = loaded
    definitions = tomllib.loads(EXAMPLES.read_text())
    definitions["settings"] = {"as_of": NOW}
    first = build_segments(pipeline, definitions)
    before = expected(emu, definitions)
    assert {r["segment"]: r["entered"] for r in first.sizes} == {k: len(v) for k, v in before.items()}

    # campers lose camping, non-members gain it, a new camper appears
    stamp = format_rfc3339(NOW - timedelta(hours=2))
    leaving = sorted(before["outdoor_enthusiasts"])[:5]
    for user_id in leaving:
        profile = copy.deepcopy(emu.store.get(user_id))
        profile["affinities"] = [a for a in profile["affinities"] if a["name"] != "category"]
        emu.store.upsert(dict(profile, lastUpdatedAt=stamp))
    joining = [p for p in emu.store.users() if p["affinities"]
               and all(p["userID"] not in m for m in before.values())][:5]
    for profile in joining:
        profile = copy.deepcopy(profile)
        profile["affinities"].append({"name": "category", "value": "Camping", "indices": ["products_en_US"],
                                      "score": 19, "lastUpdatedAt": stamp})
        emu.store.upsert(dict(profile, lastUpdatedAt=stamp))
    run(pipeline, emu, page_size=500)
    second = build_segments(pipeline, definitions)
    after = expected(emu, definitions)

    want = Counter()
    for name in set(before) | set(after):
        old, new = set(before.get(name, {})), set(after.get(name, {}))
        want.update({(name, u, "entered") for u in new - old})
        want.update({(name, u, "exited") for u in old - new})
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            f"SELECT segment, user_id, event FROM {client.make_qualified_table_name('segment_membership_events')}"
            f" WHERE build_id = %s", second.build_id)
    assert Counter(map(tuple, rows)) == want
    assert {("outdoor_enthusiasts", u, "exited") for u in leaving} <= set(want)
    assert any(event[2] == "entered" and event[0] == "outdoor_enthusiasts" for event in want)
    assert members_of(pipeline) == after
    with pipeline.sql_client() as client:
        history = client.execute_sql(
            f"SELECT count(DISTINCT build_id) FROM {client.make_qualified_table_name('segment_builds')}")
    assert history[0][0] == 2


def test_a_view_on_segment_members_sees_each_new_build(loaded):
    """DuckDB swaps the new members in by renaming their table: a customer's view keeps working."""
    emu, pipeline = loaded
    definitions = tomllib.loads(EXAMPLES.read_text())
    build_segments(pipeline, definitions, as_of=NOW)
    with pipeline.sql_client() as client:
        members = client.make_qualified_table_name("segment_members")
        view = client.make_qualified_table_name("kids_only")
        client.execute_sql(f"CREATE VIEW {view} AS SELECT user_id FROM {members} WHERE segment = 'kids_shoppers'")
        before = {row[0] for row in client.execute_sql(f"SELECT user_id FROM {view}")}
    del definitions["audiences"]["kids_shoppers"]["rule"]["any"][1]  # a narrower audience
    del definitions["audiences"]["outdoor_enthusiasts"]["exclude"]
    build_segments(pipeline, definitions, as_of=NOW)
    with pipeline.sql_client() as client:
        seen = {row[0] for row in client.execute_sql(f"SELECT user_id FROM {view}")}
    assert seen == set(expected(emu, {**definitions, "settings": {"as_of": NOW}})["kids_shoppers"])
    assert seen and seen < before


def test_more_rules_than_one_mask_holds_match_the_oracle(loaded):
    """70 affinity rules: their flags span two mask columns (62 bits each)."""
    emu, pipeline = loaded
    pairs = sorted({(a["name"], a["value"]) for p in emu.store.users() for a in p["affinities"]})
    assert len(pairs) >= 70
    rules = [{"affinity": f"{name}:{value}", "score": {"gte": 3}} for name, value in pairs[:70]]
    definitions = {
        "settings": {"as_of": NOW},
        "audiences": {
            "early_bits": {"rule": {"any": rules[:30]}},
            "late_bits": {"rule": {"any": rules[60:70]}, "min_score": 5},
            "across_masks": {"rule": {"all": [rules[1], {"none": [rules[65]]}]}},
            "second_mask_only": {"rule": {"all": [rules[63], {"profile": {"updated_within_days": 400}}]}},
            "every_rule": {"rule": {"any": rules[30:60]}, "top": {"n": 7, "per_value": True}},
        },
    }
    build_segments(pipeline, definitions)
    want = expected(emu, definitions)
    got = members_of(pipeline)
    assert got == want
    assert all(len(want.get(name, {})) > 0 for name in definitions["audiences"]), {k: len(v) for k, v in want.items()}


def test_a_build_that_would_retire_audiences_names_them_and_needs_confirming(emulator, pipeline_factory):
    from algolia_profiles_source.exceptions import ConfigurationError
    from algolia_profiles_source.segments.build import build_segments as build

    pipeline = pipeline_factory()
    run(pipeline, emulator)
    two = {"audiences": {"campers": {"rule": {"affinity": "category:Camping"}},
                         "anyone": {"rule": {"affinity": "category"}}}}
    build(pipeline, two)
    one = {"audiences": {"campers": two["audiences"]["campers"]}}
    with pytest.raises(ConfigurationError, match=r"would retire 1 audience\(s\).*anyone.*--retire"):
        build(pipeline, one)
    assert set(members_of(pipeline)) == {"campers", "anyone"}  # nothing was written
    result = build(pipeline, one, retire=True)
    assert [row["segment"] for row in result.sizes] == ["campers"] and set(members_of(pipeline)) == {"campers"}
