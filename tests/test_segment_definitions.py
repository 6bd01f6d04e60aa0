"""Every validation error of an audience file names the audience and the field, before any SQL."""

from __future__ import annotations

import pytest

from algolia_profiles_source.segments import DefinitionError, load_definitions, parse_definitions
from algolia_profiles_source.segments.definitions import AffinityRule, GroupRule, ScoreRange

KNOWN = {"category", "brand", "categories.lvl1", "color"}


def problems(data, known=KNOWN):
    with pytest.raises(DefinitionError) as error:
        parse_definitions(data, known)
    return error.value.problems


def one(rule=None, **audience):
    body = {"rule": rule if rule is not None else {"affinity": "category:Camping"}, **audience}
    return {"audiences": {"aud": body}}


@pytest.mark.parametrize(
    "data, fragments",
    [
        (one(descripton="x"), ["audience 'aud'", "unknown key 'descripton'", "did you mean 'description'"]),
        (one({"affinity": "categroy:Camping"}), ["audience 'aud'.rule.affinity", "unknown affinity name 'categroy'", "did you mean 'category'"]),
        (one({"affinity": "category", "score": {"gte": 15, "lte": 10}}), ["rule.score", "empty range"]),
        (one({"affinity": "category", "score": {"between": [12, 4]}}), ["rule.score.between", "empty range"]),
        (one({"affinity": "category", "score": {"gte": 25}}), ["rule.score.gte", "outside the score range"]),
        (one({"affinity": "category", "score": {"gt": 5, "lt": 5}}), ["empty range"]),
        (one({"affinity": "category", "score": {"gte": 5, "gt": 6}}), ["one lower bound"]),
        (one({"affinity": "category", "score": {"above": 5}}), ["unknown key 'above'"]),
        (one({"affinity": "category:Camping", "values": ["Hiking"]}), ["rule.values", "not allowed with the name:value form"]),
        (one({"affinity": "category", "updated_within_days": -3}), ["updated_within_days", "positive number of days"]),
        (one({"profile": {"updated_within_days": 0}}), ["profile.updated_within_days"]),
        (one({"profile": {"types": ["vip"]}}), ["profile.types"]),
        (one({}), ["no rule form"]),
        (one({"affinity": "brand", "all": []}), ["several rule forms"]),
        (one({"any": []}), ["rule.any", "non-empty list"]),
        (one({"all": [{"affinity": "brand", "scroe": {"gte": 1}}]}), ["rule.all[0]", "unknown key 'scroe'", "did you mean 'score'"]),
        (one({"audience": "campres"}), ["refers to unknown audience 'campres'"]),
        (one(exclude=["nobody"]), ["refers to unknown audience 'nobody'"]),
        (one(min_score=0), ["min_score", "outside the score range"]),
        (one(top={"n": 0}), ["top.n", ">= 1"]),
        (one(top={"n": 5, "per": True}), ["top", "unknown key 'per'"]),
        (one(suppress={"table": "crm.opt_out; drop table users", "column": "id"}), ["suppress.table", "not a table name"]),
        (one(suppress={"table": "crm.opt_out"}), ["`table` and `column` go together"]),
        ({"audiences": {"bad name!": {"rule": {"affinity": "brand"}}}}, ["audience 'bad name!'", "names are"]),
        ({"audiences": {}}, ["no audience is defined"]),
        ({"audience": {}}, ["unknown key 'audience'", "did you mean 'audiences'", "missing required key 'audiences'"]),
        ({"settings": {"as_of": "tomorrow"}, "audiences": {"a": {"rule": {"affinity": "brand"}}}}, ["settings.as_of", "RFC 3339"]),
    ],
)
def test_each_problem_is_named(data, fragments):
    text = "\n".join(problems(data))
    for fragment in fragments:
        assert fragment in text, text


def test_cycles_between_audiences_are_refused():
    text = "\n".join(problems({"audiences": {
        "a": {"rule": {"audience": "b"}},
        "b": {"rule": {"all": [{"affinity": "brand"}, {"audience": "c"}]}},
        "c": {"rule": {"affinity": "brand"}, "exclude": ["a"]},
    }}))
    assert "cycle between audiences" in text and "a -> b -> c -> a" in text


def test_all_problems_are_reported_together():
    found = problems({"audiences": {
        "x": {"rule": {"affinity": "colr"}, "min_score": 30},
        "y": {"rule": {"audience": "zz"}},
    }})
    assert len(found) == 3


def test_valid_definitions_parse_into_typed_rules_in_dependency_order():
    parsed = parse_definitions({"audiences": {
        "top": {"rule": {"audience": "base"}, "top": {"n": 3}},
        "base": {"rule": {"any": [{"affinity": "category", "values": ["A", "B"], "score": {"gt": 2}},
                                   {"none": [{"affinity": "brand:O'Brien'; drop table users; --"}]}]}},
    }}, KNOWN)
    assert parsed.names == ["base", "top"]
    rule = parsed.get("base").rule
    assert isinstance(rule, GroupRule) and rule.kind == "any"
    assert rule.rules[0] == AffinityRule("category", ("A", "B"), ScoreRange(2.0, False, None, True))
    assert parsed.get("base").positive_affinity_rules() == [rule.rules[0]]


def test_unknown_names_are_not_checked_without_loaded_data():
    assert parse_definitions({"audiences": {"a": {"rule": {"affinity": "anything"}}}}, None).names == ["a"]


def test_yaml_and_toml_files(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "audiences:\n  campers:\n    rule:\n      affinity: 'category:Camping'\n      score: {gte: 15}\n"
    )
    assert load_definitions(tmp_path / "a.yaml", KNOWN).names == ["campers"]
    (tmp_path / "b.toml").write_text("[audiences.campers]\nrule = { affinity = 'category' \n")
    with pytest.raises(Exception, match="not valid TOML"):
        load_definitions(tmp_path / "b.toml")
    with pytest.raises(Exception, match="does not exist"):
        load_definitions(tmp_path / "missing.toml")


def test_an_unknown_key_lists_the_keys_allowed_in_its_place():
    with pytest.raises(DefinitionError) as raised:
        parse_definitions({"audiences": {"a": {"rule": {"affinity": "brand", "count": 3}}}})
    message = str(raised.value)
    assert "unknown key 'count'" in message and "allowed here:" in message
    assert all(key in message.split("allowed here:")[1] for key in ("values", "score", "indices"))


@pytest.mark.parametrize("data", [
    one(top={"percent": 10}),                      # a misspelt required key: unknown and missing at once
    one({"affnity": "category:Camping"}),          # a misspelt rule form
    one({"all": [{"affinty": "brand"}]}),
    {"audiences": {"aud": {"rul": {"affinity": "brand"}}}},
    {"audience": {"aud": {"rule": {"affinity": "brand"}}}},
])
def test_one_mistake_gives_one_error(data):
    found = problems(data)
    assert len(found) == 1, found
    assert "did you mean" in found[0] or "allowed here" in found[0]


def test_values_no_loaded_profile_holds_are_warnings_or_errors_when_strict():
    data = one({"affinity": "category", "values": ["Camping", "hiking", "Campng"]})
    values = {"category": {"Camping", "Hiking"}}
    parsed = parse_definitions(data, KNOWN, known_values=values)
    assert [w.split(": ", 1)[1].split(":")[0] for w in parsed.warnings] == [
        "no loaded profile has category = 'hiking' (did you mean 'Hiking'?)",
        "no loaded profile has category = 'Campng' (did you mean 'Camping'?)",
    ]
    with pytest.raises(DefinitionError) as error:
        parse_definitions(data, KNOWN, known_values=values, strict=True)
    assert len(error.value.problems) == 2
    # a name whose values were not loaded (only in the config) is not checked
    assert not parse_definitions(one({"affinity": "color:Red"}), KNOWN, known_values=values).warnings
