"""Unit tests of the audience oracle (tests/reference_segments.py) on hand-written profiles.

Every expected result below is worked out by hand from docs/audiences.md against PROFILES.
AS_OF = 2026-11-28T00:00:00Z, so "within 7 days" means >= 2026-11-21T00:00:00Z.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import pytest
import yaml

from tests.reference_segments import compute_audiences, parse_ts, split_affinity

AS_OF = datetime(2026, 11, 28, tzinfo=timezone.utc)
OLD = "2026-11-01T00:00:00Z"  # default affinity timestamp: 27 days before AS_OF
EN = ["products_en_US"]

INJECTION = "O'Brien'; drop table users; --"
QUOTED = 'He said "hi"'


def aff(name: str, value: str, score: float, indices: Optional[List[str]] = None,
        updated: str = OLD) -> Dict[str, Any]:
    return {"name": name, "value": value, "indices": indices or EN, "score": score,
            "lastUpdatedAt": updated}


def user(uid: str, updated: str, affinities: List[Dict[str, Any]],
         type_: Optional[str] = "basic") -> Dict[str, Any]:
    profile: Dict[str, Any] = {"userID": uid, "lastUpdatedAt": updated, "affinities": affinities}
    if type_ is not None:
        profile["type"] = type_
    return profile


# Summary (score; row recency marks: * = within 7 days of AS_OF):
#   alice  basic      upd 11-27T12     Camping 15, Hiking 12 [en,fr], brand The North Face 18 [en,fr]*
#   bob    predictive upd 10-01 (old)  Camping 14.5, Kids 5
#   carol  realtime   upd 11-28 (=as_of) Climbing 20*, brand INJECTION 7*
#   dave   (no type)  upd 11-26T22Z    "Outdoor: Camping" 10 (* exactly at the boundary), Kids 4.999 (not *)
#   erin   basic      upd 11-27        no affinities
#   frank  basic      upd 11-21T00 (boundary) Camping 15 [de]* (boundary), brand "a,b" 1, brand QUOTED 20
#   gina   basic      upd 11-27        Camping 15, Hiking 12, Kids 13
#   hank   predictive upd 11-20T23:59:59.999999 (just too old) Hiking 1, Kids 20, categories.lvl1 "Sports > Outdoor" 9
PROFILES = [
    user("alice", "2026-11-27T12:00:00Z", [
        aff("category", "Camping", 15, updated="2026-11-20T00:00:00Z"),
        aff("category", "Hiking", 12, ["products_en_US", "products_fr_FR"]),
        aff("brand", "The North Face", 18, ["products_en_US", "products_fr_FR"],
            updated="2026-11-25T10:00:00.123456Z"),
    ]),
    user("bob", "2026-10-01T00:00:00Z", [
        aff("category", "Camping", 14.5, updated="2026-09-30T00:00:00Z"),
        aff("category", "Kids", 5, updated="2026-09-30T00:00:00Z"),
    ], type_="predictive"),
    user("carol", "2026-11-28T00:00:00Z", [
        aff("category", "Climbing", 20, updated="2026-11-27T23:59:59.5Z"),
        aff("brand", INJECTION, 7, updated="2026-11-27T00:00:00Z"),
    ], type_="realtime"),
    user("dave", "2026-11-27T00:00:00+02:00", [
        aff("category", "Outdoor: Camping", 10, updated="2026-11-20T23:00:00-01:00"),  # = 11-21T00Z
        aff("category", "Kids", 4.999, updated="2026-11-21T01:00:00+02:00"),  # = 11-20T23Z
    ], type_=None),
    user("erin", "2026-11-27T00:00:00Z", []),
    user("frank", "2026-11-21T00:00:00Z", [
        aff("category", "Camping", 15, ["products_de_DE"], updated="2026-11-21T00:00:00Z"),
        aff("brand", "a,b", 1),
        aff("brand", QUOTED, 20),
    ]),
    user("gina", "2026-11-27T00:00:00Z", [
        aff("category", "Camping", 15),
        aff("category", "Hiking", 12),
        aff("category", "Kids", 13),
    ]),
    user("hank", "2026-11-20T23:59:59.999999Z", [
        aff("category", "Hiking", 1),
        aff("category", "Kids", 20),
        aff("categories.lvl1", "Sports > Outdoor", 9),
    ], type_="predictive"),
]


def run(audiences: Dict[str, Any], **extra: Any) -> Dict[str, Dict[str, Any]]:
    tables = extra.pop("suppression_tables", None)
    as_of = extra.pop("as_of", AS_OF)
    return compute_audiences(PROFILES, {"audiences": audiences, **extra}, as_of, tables)


def one(rule: Dict[str, Any], **audience_keys: Any) -> Dict[str, Any]:
    return run({"a": {"rule": rule, **audience_keys}})["a"]


# --- timestamps and affinity strings --------------------------------------------------------

def test_parse_ts_variants() -> None:
    base = datetime(2026, 11, 28, tzinfo=timezone.utc)
    assert parse_ts("2026-11-28T00:00:00Z") == base
    assert parse_ts("2026-11-28t02:00:00+02:00") == base
    assert parse_ts("2026-11-27T19:00:00-05:00") == base
    assert parse_ts("2026-11-28T00:00:00.123456Z").microsecond == 123456
    assert parse_ts("2026-11-28T00:00:00.5Z").microsecond == 500000
    assert parse_ts("2026-11-28T00:00:00.123456789Z").microsecond == 123456  # truncated
    assert parse_ts("2026-11-28T00:00:00") == base  # naive -> UTC
    assert parse_ts(datetime(2026, 11, 28)) == base


def test_split_affinity_first_colon() -> None:
    assert split_affinity("category") == ("category", None)
    assert split_affinity("category:Outdoor: Camping") == ("category", "Outdoor: Camping")
    assert split_affinity("categories.lvl1:a:b:c") == ("categories.lvl1", "a:b:c")
    assert split_affinity("brand:") == ("brand", "")


# --- affinity rules ---------------------------------------------------------------------------

def test_affinity_name_only_matches_any_value() -> None:
    # every user with a `category` row; score = max over all category rows, count = distinct rows
    assert one({"affinity": "category"}) == {
        "alice": (15.0, 2), "bob": (14.5, 2), "carol": (20.0, 1), "dave": (10.0, 2),
        "frank": (15.0, 1), "gina": (15.0, 3), "hank": (20.0, 2),
    }
    # names with dots; "categories.lvl1" is not "category"
    assert one({"affinity": "categories.lvl1:Sports > Outdoor"}) == {"hank": (9.0, 1)}


def test_affinity_name_value() -> None:
    # dave's "Outdoor: Camping" is not "Camping"
    assert one({"affinity": "category:Camping"}) == {
        "alice": (15.0, 1), "bob": (14.5, 1), "frank": (15.0, 1), "gina": (15.0, 1)}


def test_value_with_colon() -> None:
    assert one({"affinity": "category:Outdoor: Camping"}) == {"dave": (10.0, 1)}
    assert one({"affinity": "category:Outdoor"}) == {}


def test_values_are_literal_data() -> None:
    assert one({"affinity": "brand:" + INJECTION}) == {"carol": (7.0, 1)}
    assert one({"affinity": "brand:O'Brien'"}) == {}  # exact match, not a prefix
    assert one({"affinity": "brand:a,b"}) == {"frank": (1.0, 1)}
    assert one({"affinity": "brand:a"}) == {}
    assert one({"affinity": "brand:" + QUOTED}) == {"frank": (20.0, 1)}
    assert one({"affinity": "brand", "values": ["a,b", INJECTION]}) == {
        "carol": (7.0, 1), "frank": (1.0, 1)}
    assert one({"affinity": "brand:the north face"}) == {}  # case-sensitive


def test_values_any_of() -> None:
    # Hiking: alice 12, gina 12, hank 1; Climbing: carol 20
    assert one({"affinity": "category", "values": ["Hiking", "Climbing"]}) == {
        "alice": (12.0, 1), "carol": (20.0, 1), "gina": (12.0, 1), "hank": (1.0, 1)}
    # a listed value with a colon; dave matches two rows
    assert one({"affinity": "category", "values": ["Outdoor: Camping", "Kids"]}) == {
        "bob": (5.0, 1), "dave": (10.0, 2), "gina": (13.0, 1), "hank": (20.0, 1)}


@pytest.mark.parametrize("score, expected", [
    # Camping: alice 15, bob 14.5, frank 15, gina 15
    ({"gte": 15}, {"alice", "frank", "gina"}),
    ({"gt": 15}, set()),
    ({"gt": 14.5}, {"alice", "frank", "gina"}),
    ({"gte": 14.5}, {"alice", "bob", "frank", "gina"}),
    ({"lte": 14.5}, {"bob"}),
    ({"lt": 14.5}, set()),
    ({"lt": 15}, {"bob"}),
    ({"between": [14.5, 15]}, {"alice", "bob", "frank", "gina"}),
    ({"between": [14.6, 15]}, {"alice", "frank", "gina"}),
    ({"between": [14, 14.5]}, {"bob"}),
    ({"gt": 14.5, "lte": 15}, {"alice", "frank", "gina"}),
    ({"gte": 14, "lt": 15}, {"bob"}),
])
def test_score_bounds_on_camping(score: Dict[str, Any], expected: set) -> None:
    assert set(one({"affinity": "category:Camping", "score": score})) == expected


@pytest.mark.parametrize("score, expected", [
    # Kids: bob 5, dave 4.999, gina 13, hank 20
    ({"gte": 5}, {"bob", "gina", "hank"}),
    ({"gt": 5}, {"gina", "hank"}),
    ({"lte": 5}, {"bob", "dave"}),
    ({"lt": 5}, {"dave"}),
])
def test_score_bounds_on_kids(score: Dict[str, Any], expected: set) -> None:
    assert set(one({"affinity": "category:Kids", "score": score})) == expected


def test_score_is_max_of_rows_satisfying_the_rule_not_of_all_rows() -> None:
    # category rows in [10, 12]: alice Hiking 12, dave "Outdoor: Camping" 10, gina Hiking 12
    # (alice's and gina's Camping 15 do not satisfy the rule, so they do not count)
    assert one({"affinity": "category", "score": {"between": [10, 12]}}) == {
        "alice": (12.0, 1), "dave": (10.0, 1), "gina": (12.0, 1)}


def test_indices_at_least_one() -> None:
    assert one({"affinity": "brand", "indices": ["products_fr_FR"]}) == {"alice": (18.0, 1)}
    # alice's Hiking is on fr, frank's Camping on de; nobody else's category rows are on those
    assert one({"affinity": "category", "indices": ["products_fr_FR", "products_de_DE"]}) == {
        "alice": (12.0, 1), "frank": (15.0, 1)}
    assert one({"affinity": "category", "indices": ["products_ja_JP"]}) == {}


def test_affinity_updated_within_days() -> None:
    # rows updated >= 11-21T00Z: carol Climbing, dave "Outdoor: Camping" (exactly, via -01:00
    # offset), frank Camping (exactly). Not dave Kids (11-20T23Z via +02:00), not alice Camping.
    assert one({"affinity": "category", "updated_within_days": 7}) == {
        "carol": (20.0, 1), "dave": (10.0, 1), "frank": (15.0, 1)}
    assert one({"affinity": "brand", "updated_within_days": 7}) == {
        "alice": (18.0, 1), "carol": (7.0, 1)}
    # fractional days: >= 11-27T12:00Z
    assert one({"affinity": "category", "updated_within_days": 0.5}) == {"carol": (20.0, 1)}


def test_all_conditions_on_one_row() -> None:
    # the conditions must hold on the SAME row: alice has Hiking on fr (score 12) and
    # Camping on en only (score 15); none of her rows is Camping AND fr.
    assert one({"affinity": "category:Camping", "indices": ["products_fr_FR"]}) == {}
    assert one({"affinity": "category", "indices": ["products_fr_FR"], "score": {"gte": 13}}) == {}


# --- profile rules ------------------------------------------------------------------------------

def test_profile_updated_within_days() -> None:
    # >= 11-21T00Z: alice, carol (= as_of), dave (11-26T22Z), erin, frank (boundary), gina;
    # not bob (10-01), not hank (11-20T23:59:59.999999)
    expected = {u: (None, 0) for u in ["alice", "carol", "dave", "erin", "frank", "gina"]}
    assert one({"profile": {"updated_within_days": 7}}) == expected


def test_profile_types() -> None:
    assert one({"profile": {"types": ["predictive"]}}) == {"bob": (None, 0), "hank": (None, 0)}
    # dave has no type: never matches `types`
    assert set(one({"profile": {"types": ["realtime", "predictive"]}})) == {"bob", "carol", "hank"}
    assert set(one({"profile": {"updated_within_days": 7, "types": ["basic"]}})) == {
        "alice", "erin", "frank", "gina"}


# --- groups -------------------------------------------------------------------------------------

def test_all_group() -> None:
    rule = {"all": [{"affinity": "category:Camping", "score": {"gte": 15}},
                    {"profile": {"updated_within_days": 7}}]}
    assert one(rule) == {"alice": (15.0, 1), "frank": (15.0, 1), "gina": (15.0, 1)}


def test_any_group_collects_rows_of_every_positive_rule() -> None:
    rule = {"any": [{"affinity": "category:Camping", "score": {"gte": 15}},
                    {"affinity": "category", "values": ["Hiking", "Climbing"], "score": {"gte": 12}}]}
    # alice: Camping 15 + Hiking 12 -> 2 rows; hank Hiking 1 and bob Camping 14.5 fail scores
    assert one(rule) == {"alice": (15.0, 2), "carol": (20.0, 1), "frank": (15.0, 1),
                         "gina": (15.0, 2)}


def test_positive_rule_in_a_branch_that_did_not_decide_still_counts() -> None:
    rule = {"any": [
        {"all": [{"affinity": "category:Kids"}, {"profile": {"types": ["predictive"]}}]},
        {"affinity": "category:Hiking"},
    ]}
    # candidates: bob, hank (Kids & predictive); alice, gina (Hiking). dave: Kids but no type.
    # gina is basic, so the Kids branch fails for her, but her Kids 13 row still satisfies the
    # positive rule `category:Kids`: score 13, 2 rows.
    assert one(rule) == {"alice": (12.0, 1), "bob": (5.0, 1), "gina": (13.0, 2),
                         "hank": (20.0, 2)}


def test_none_group() -> None:
    assert one({"none": [{"affinity": "category"}]}) == {"erin": (None, 0)}
    # recent users without a Kids row: dave and gina have one; bob, hank are not recent
    rule = {"all": [{"profile": {"updated_within_days": 7}}, {"none": [{"affinity": "category:Kids"}]}]}
    assert one(rule) == {u: (None, 0) for u in ["alice", "carol", "erin", "frank"]}


def test_nested_groups() -> None:
    rule = {"all": [
        {"any": [{"affinity": "brand"}, {"affinity": "category:Kids", "score": {"gte": 5}}]},
        {"none": [{"all": [{"profile": {"types": ["predictive"]}}, {"affinity": "category:Kids"}]}]},
    ]}
    # any -> alice, carol, frank (brand); bob, gina, hank (Kids >= 5)
    # none removes predictive users with Kids: bob, hank
    # scores from `brand` and `category:Kids >= 5` rows only (the Kids rule under none is not positive)
    assert one(rule) == {"alice": (18.0, 1), "carol": (7.0, 1), "frank": (20.0, 2),
                         "gina": (13.0, 1)}


def test_rules_under_none_do_not_score_at_any_depth() -> None:
    # double negation: has Climbing; but Climbing is under `none`, so only brand rows score
    rule = {"all": [{"affinity": "brand"}, {"none": [{"none": [{"affinity": "category:Climbing"}]}]}]}
    assert one(rule) == {"carol": (7.0, 1)}
    # category users without Camping >= 15; the Camping rows of bob etc. still count through `category`
    rule = {"all": [{"affinity": "category"},
                    {"none": [{"affinity": "category:Camping", "score": {"gte": 15}}]}]}
    assert one(rule) == {"bob": (14.5, 2), "carol": (20.0, 1), "dave": (10.0, 2),
                         "hank": (20.0, 2)}


# --- audience references and exclude ----------------------------------------------------------

KIDS = {"rule": {"affinity": "category:Kids", "score": {"gte": 5}}}  # bob 5, gina 13, hank 20


def test_audience_of_audience() -> None:
    result = run({
        # declared before what they reference: order must not matter
        "recent_kids": {"rule": {"all": [{"audience": "kids"}, {"profile": {"updated_within_days": 7}}]}},
        "kids_hikers": {"rule": {"all": [{"audience": "kids"}, {"affinity": "category:Hiking"}]}},
        "ref_top": {"rule": {"audience": "kids_top1"}},
        "kids": KIDS,
        "kids_top1": {**KIDS, "top": {"n": 1}},
    })
    assert result["kids"] == {"bob": (5.0, 1), "gina": (13.0, 1), "hank": (20.0, 1)}
    # the referenced audience's affinity rules do not score
    assert result["recent_kids"] == {"gina": (None, 0)}
    assert result["kids_hikers"] == {"gina": (12.0, 1), "hank": (1.0, 1)}
    # final membership of the referenced audience (after its top)
    assert result["kids_top1"] == {"hank": (20.0, 1)}
    assert result["ref_top"] == {"hank": (None, 0)}


def test_exclude() -> None:
    result = run({
        "campers": {"rule": {"affinity": "category:Camping"}, "exclude": ["kids"]},
        "kids": KIDS,
        "kids_strong": {**KIDS, "min_score": 10},  # gina, hank
        "campers2": {"rule": {"affinity": "category:Camping"}, "exclude": ["kids_strong"]},
        "kids_no_gina": {**KIDS, "suppress": {"user_ids": ["gina"]}},  # bob, hank
        "campers3": {"rule": {"affinity": "category:Camping"}, "exclude": ["kids_no_gina"]},
        "campers4": {"rule": {"affinity": "category:Camping"}, "exclude": ["kids_strong", "kids_no_gina"]},
    })
    assert result["campers"] == {"alice": (15.0, 1), "frank": (15.0, 1)}
    assert result["campers2"] == {"alice": (15.0, 1), "bob": (14.5, 1), "frank": (15.0, 1)}
    assert result["campers3"] == {"alice": (15.0, 1), "frank": (15.0, 1), "gina": (15.0, 1)}
    assert result["campers4"] == {"alice": (15.0, 1), "frank": (15.0, 1)}


# --- suppression --------------------------------------------------------------------------------

def test_global_and_audience_suppression() -> None:
    tables = {"crm.opted_out.user_token": {"frank", "nobody"},
              "analytics.crm.blocked.id": {"gina"}}
    result = run(
        {
            "campers": {"rule": {"affinity": "category:Camping"}},
            "campers_nobob": {"rule": {"affinity": "category:Camping"}, "suppress": {"user_ids": ["bob"]}},
            "campers_vip": {"rule": {"affinity": "category:Camping"},
                            "suppress": {"table": "analytics.crm.blocked", "column": "id"}},
            "campers_top1": {"rule": {"affinity": "category:Camping"}, "top": {"n": 1}},
            "not_campers": {"rule": {"none": [{"audience": "campers"}]}},
        },
        suppression={"user_ids": ["alice"], "table": "crm.opted_out", "column": "user_token"},
        suppression_tables=tables,
    )
    # Camping: alice, bob, frank, gina; alice and frank suppressed everywhere
    assert result["campers"] == {"bob": (14.5, 1), "gina": (15.0, 1)}
    assert result["campers_nobob"] == {"gina": (15.0, 1)}
    assert result["campers_vip"] == {"bob": (14.5, 1)}
    # suppression happens before top: alice (and frank, who would win the tie) are gone
    assert result["campers_top1"] == {"gina": (15.0, 1)}
    # not in campers = alice, carol, dave, erin, frank, hank; minus the suppressed alice, frank
    assert result["not_campers"] == {u: (None, 0) for u in ["carol", "dave", "erin", "hank"]}


def test_suppression_table_missing_from_lookup_is_an_error() -> None:
    with pytest.raises(KeyError, match="crm.x.id"):
        run({"a": {"rule": {"affinity": "brand"}}}, suppression={"table": "crm.x", "column": "id"})


# --- min_score and top ---------------------------------------------------------------------------

def test_min_score() -> None:
    assert set(one({"affinity": "category:Camping"}, min_score=15)) == {"alice", "frank", "gina"}
    assert set(one({"affinity": "category:Camping"}, min_score=14.5)) == {
        "alice", "bob", "frank", "gina"}
    rule = {"any": [{"affinity": "category:Camping"}, {"profile": {"types": ["realtime"]}}]}
    assert one(rule)["carol"] == (None, 0)  # candidate through the profile rule, no score
    assert one(rule, min_score=1) == {"alice": (15.0, 1), "bob": (14.5, 1), "frank": (15.0, 1),
                                      "gina": (15.0, 1)}


TOP_RULE = {"any": [{"affinity": "category:Camping", "score": {"gte": 15}},
                    {"profile": {"types": ["realtime", "predictive"]}}]}
# candidates: alice, frank, gina (15); bob, carol, hank (NULL: bob's 14.5 fails gte 15)


@pytest.mark.parametrize("n, expected", [
    (1, ["alice"]),
    (2, ["alice", "frank"]),             # tie at 15 broken by user_id
    (4, ["alice", "frank", "gina", "bob"]),   # NULLs last, by user_id
    (5, ["alice", "bob", "carol", "frank", "gina"]),
    (100, ["alice", "bob", "carol", "frank", "gina", "hank"]),
])
def test_top_n_ties_and_nulls(n: int, expected: List[str]) -> None:
    assert sorted(one(TOP_RULE, top={"n": n})) == sorted(expected)


def test_top_after_min_score_and_fractional_order() -> None:
    assert one(TOP_RULE, top={"n": 4}, min_score=1) == {
        "alice": (15.0, 1), "frank": (15.0, 1), "gina": (15.0, 1)}
    # Camping: 15, 15, 15, 14.5 -> the 14.5 comes last
    assert set(one({"affinity": "category:Camping"}, top={"n": 3})) == {"alice", "frank", "gina"}


def test_top_per_value() -> None:
    rule = {"affinity": "category", "values": ["Camping", "Hiking"]}
    # Camping: alice 15, frank 15, gina 15, bob 14.5; Hiking: alice 12, gina 12, hank 1
    assert one(rule, top={"n": 1, "per_value": True}) == {"alice": (15.0, 2)}
    assert one(rule, top={"n": 2, "per_value": True}) == {
        "alice": (15.0, 2), "frank": (15.0, 1), "gina": (15.0, 2)}

    # per value ranks by that row's score, not the member's overall score
    rule = {"affinity": "category", "values": ["Hiking", "Kids"]}
    # Hiking: alice 12, gina 12, hank 1 -> alice; Kids: hank 20, gina 13, bob 5, dave 4.999 -> hank
    assert one(rule, top={"n": 1, "per_value": True}) == {"alice": (12.0, 1), "hank": (20.0, 2)}
    # overall: hank 20, gina 13, alice 12, bob 5, dave 4.999
    assert one(rule, top={"n": 2}) == {"gina": (13.0, 2), "hank": (20.0, 2)}


def test_top_per_value_drops_users_without_matched_rows() -> None:
    rule = {"any": [{"affinity": "category:Climbing"}, {"profile": {"types": ["basic"]}}]}
    assert set(one(rule)) == {"alice", "carol", "erin", "frank", "gina"}
    assert one(rule, top={"n": 5, "per_value": True}) == {"carol": (20.0, 1)}


def test_top_per_value_only_positive_rows() -> None:
    # Camping is under `none`: only Hiking rows are positive and ranked
    rule = {"all": [{"affinity": "category:Hiking"},
                    {"none": [{"affinity": "category:Camping"}]}]}
    # Hiking without Camping: hank only (alice and gina have Camping)
    assert one(rule, top={"n": 1, "per_value": True}) == {"hank": (1.0, 1)}


# --- settings.as_of -----------------------------------------------------------------------------

def test_settings_as_of_overrides_argument() -> None:
    rule = {"profile": {"updated_within_days": 7}}
    later = datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert run({"a": {"rule": rule}}, as_of=later)["a"] == {}
    expected = {"alice", "carol", "dave", "erin", "frank", "gina"}
    for value in ["2026-11-28T00:00:00Z", "2026-11-28T02:00:00+02:00", AS_OF]:
        result = run({"a": {"rule": rule}}, as_of=later, settings={"as_of": value})
        assert set(result["a"]) == expected
    # empty settings: the argument is used
    assert run({"a": {"rule": rule}}, as_of=AS_OF, settings={})["a"].keys() == expected


# --- cycles and unknown references ---------------------------------------------------------------

@pytest.mark.parametrize("audiences", [
    {"a": {"rule": {"audience": "a"}}},
    {"a": {"rule": {"audience": "b"}}, "b": {"rule": {"all": [{"audience": "a"}]}}},
    {"a": {"rule": {"affinity": "brand"}, "exclude": ["b"]},
     "b": {"rule": {"affinity": "brand"}, "exclude": ["a"]}},
    {"a": {"rule": {"none": [{"audience": "b"}]}}, "b": {"rule": {"affinity": "brand"}, "exclude": ["c"]},
     "c": {"rule": {"audience": "a"}}},
])
def test_cycle_is_an_error(audiences: Dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cycle"):
        run(audiences)


def test_unknown_audience_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown audience 'ghost'"):
        run({"a": {"rule": {"audience": "ghost"}}})


# --- the spec's own example, through tomllib and yaml ---------------------------------------------

SPEC_TOML = """
[settings]
as_of = "2026-11-28T00:00:00Z"

[suppression]
user_ids = ["anon-123", "anon-456"]
table = "crm.opted_out"
column = "user_token"

[audiences.outdoor_enthusiasts]
description = "Strong interest in camping or hiking, active in the last 30 days, not kids shoppers"
rule.all = [
  { any = [ { affinity = "category:Camping", score = { gte = 15 } },
            { affinity = "category", values = ["Hiking", "Climbing"], score = { gte = 12 } } ] },
  { profile = { updated_within_days = 30 } },
]
exclude = ["kids_shoppers"]

[audiences.kids_shoppers]
rule = { affinity = "category:Kids", score = { gte = 5 } }

[audiences.top_north_face_fans]
rule = { affinity = "brand:The North Face", indices = ["products_en_US"] }
min_score = 10
top = { n = 100 }
"""

# kids_shoppers: bob 5, gina 13, hank 20.
# outdoor_enthusiasts: any -> alice (Camping 15, Hiking 12), carol (Climbing 20), frank (15), gina;
#   all recent within 30 days; minus kids_shoppers (gina); minus frank (in crm.opted_out).
# top_north_face_fans: alice (18 >= 10).
SPEC_EXPECTED = {
    "outdoor_enthusiasts": {"alice": (15.0, 2), "carol": (20.0, 1)},
    "kids_shoppers": {"bob": (5.0, 1), "gina": (13.0, 1), "hank": (20.0, 1)},
    "top_north_face_fans": {"alice": (18.0, 1)},
}


def test_spec_example_toml() -> None:
    definitions = tomllib.loads(SPEC_TOML)
    later = datetime(2030, 1, 1, tzinfo=timezone.utc)  # settings.as_of wins
    result = compute_audiences(PROFILES, definitions, later,
                               {"crm.opted_out.user_token": {"frank"}})
    assert result == SPEC_EXPECTED


def test_spec_example_yaml() -> None:
    definitions = yaml.safe_load(yaml.safe_dump(tomllib.loads(SPEC_TOML)))
    result = compute_audiences(PROFILES, definitions, AS_OF, {"crm.opted_out.user_token": {"frank"}})
    assert result == SPEC_EXPECTED


def test_oracle_is_independent_of_the_generator() -> None:
    import tests.reference_segments as oracle

    source = open(oracle.__file__, encoding="utf-8").read()
    assert "import algolia_profiles_source" not in source
    assert "from algolia_profiles_source" not in source
