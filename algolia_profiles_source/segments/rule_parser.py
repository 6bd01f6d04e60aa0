"""One rule of an audience file checked into a typed rule (:mod:`.audience`), with every problem it has.

:class:`RuleParser` collects problems instead of raising, so that all mistakes of a file are
reported together; :mod:`.definitions` parses the rest of the file (settings, suppression, the
audiences and their order) on top of it.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Collection, Mapping, Sequence

from .audience import (
    ABSENT,
    MAX_SCORE,
    MIN_SCORE,
    PROFILE_TYPES,
    AffinityRule,
    AudienceRule,
    GroupRule,
    HistoryRule,
    ProfileRule,
    Rule,
    ScoreRange,
)
from .hints import did_you_mean

RULE_FORMS = ("affinity", "profile", "all", "any", "none", "audience", "history")
AFFINITY_OPTIONS = ("values", "score", "indices", "updated_within_days")
HISTORY_KEYS = ("affinity", "values", "days", "rose_by", "fell_by", "then", "now")


class RuleParser:
    """Checks rule tables; ``problems`` (errors) and ``warnings`` collect what it finds."""

    def __init__(self, known_affinities: set | None, known_values: Mapping[str, Collection[str]],
                 strict: bool) -> None:
        self.known = known_affinities
        self.known_values = known_values
        self.strict = strict
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def keys(self, where: str, value: Any, allowed: Sequence[str], required: Sequence[str] = ()) -> bool:
        """Checks a table's keys. Whatever is wrong with them is one problem (a misspelt required
        key is an unknown key and a missing one at once). False when ``value`` is not a table or
        lacks a required key, so that the caller does not report the same mistake again."""
        if not isinstance(value, Mapping):
            self.problem(where, f"expected a table, got {kind_of(value)}")
            return False
        unknown = [key for key in value if key not in allowed]
        missing = [key for key in required if key not in value]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(", ".join(f"unknown key {key!r}{did_you_mean(str(key), allowed)}" for key in unknown)
                             + f"; allowed here: {', '.join(allowed)}")
            if missing:
                parts.append(f"missing required key {', '.join(repr(key) for key in missing)}")
            self.problem(where, "; ".join(parts))
        return not missing

    def rule(self, where: str, value: Any) -> Rule | None:
        if not isinstance(value, Mapping):
            self.problem(where, f"expected a rule table, got {kind_of(value)}")
            return None
        forms = [k for k in RULE_FORMS if k in value]
        if len(forms) != 1:
            unknown = [key for key in value if key not in RULE_FORMS + AFFINITY_OPTIONS]
            if unknown and not forms:
                self.problem(where, _unknown_key(unknown[0], RULE_FORMS).replace("allowed here", "a rule is one of"))
            else:
                what = "no rule form" if not forms else f"several rule forms ({', '.join(forms)})"
                self.problem(where, f"{what}: use exactly one of {', '.join(RULE_FORMS)}")
            return None
        form = forms[0]
        if form == "affinity":
            return self.affinity(where, value)
        if form == "profile":
            self.keys(where, value, ("profile",))
            body = value["profile"]
            if not self.keys(f"{where}.profile", body, ("updated_within_days", "types")):
                return None
            days = self.days(f"{where}.profile.updated_within_days", body.get("updated_within_days"))
            types = body.get("types", [])
            if not isinstance(types, list) or any(t not in PROFILE_TYPES for t in types):
                self.problem(f"{where}.profile.types", f"expected a list of {', '.join(PROFILE_TYPES)}")
                types = []
            if days is None and not types:
                self.problem(f"{where}.profile", "give updated_within_days and/or types")
            return ProfileRule(days, tuple(types))
        if form == "history":
            self.keys(where, value, ("history",))
            return self.history(f"{where}.history", value["history"])
        if form == "audience":
            self.keys(where, value, ("audience",))
            if not isinstance(value["audience"], str):
                self.problem(f"{where}.audience", "expected an audience name")
                return None
            return AudienceRule(value["audience"])
        self.keys(where, value, (form,))
        children = value[form]
        if not isinstance(children, list) or not children:
            self.problem(f"{where}.{form}", "expected a non-empty list of rules")
            return None
        parsed = [self.rule(f"{where}.{form}[{i}]", child) for i, child in enumerate(children)]
        if any(p is None for p in parsed):
            return None
        return GroupRule(form, tuple(parsed))  # type: ignore[arg-type]

    def affinity(self, where: str, value: Mapping[str, Any]) -> AffinityRule | None:
        self.keys(where, value, ("affinity",) + AFFINITY_OPTIONS)
        named = self.affinity_values(where, value)
        if named is None:
            return None
        name, values = named
        score = self.score_range(f"{where}.score", value["score"]) if "score" in value else None
        indices = value.get("indices", [])
        if not isinstance(indices, list) or not all(isinstance(i, str) and i for i in indices):
            self.problem(f"{where}.indices", "expected a list of index names")
            indices = []
        days = self.days(f"{where}.updated_within_days", value.get("updated_within_days"))
        return AffinityRule(name, values, score, tuple(indices), days)

    def history(self, where: str, body: Any) -> HistoryRule | None:
        if not self.keys(where, body, HISTORY_KEYS, ("affinity", "days")):
            return None
        named = self.affinity_values(where, body)
        if named is None:
            return None
        name, values = named
        days = self.days(f"{where}.days", body["days"])
        changes = {}
        for key in ("rose_by", "fell_by"):
            if key in body:
                amount = body[key]
                if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 < amount <= MAX_SCORE:
                    self.problem(f"{where}.{key}", f"must be a number of score points from above 0 to 20, got {amount!r}")
                else:
                    changes[key] = float(amount)
        states = {}
        for key in ("then", "now"):
            if key in body:
                state = body[key]
                if state == ABSENT:
                    states[key] = ABSENT
                elif isinstance(state, Mapping):
                    states[key] = self.score_range(f"{where}.{key}", state)
                else:
                    self.problem(f"{where}.{key}", f"expected a score range like {{ gte = 10 }} or \"absent\", got {state!r}")
        if not any(key in body for key in ("rose_by", "fell_by", "then", "now")):
            self.problem(where, "give at least one of rose_by, fell_by, then, now: what changed")
            return None
        if states.get("then") == ABSENT and states.get("now") == ABSENT:
            self.problem(where, "then and now both \"absent\": such a change is not in the history")
            return None
        if days is None or None in states.values():
            return None
        return HistoryRule(name, days, values, changes.get("rose_by"), changes.get("fell_by"),
                           states.get("then"), states.get("now"))

    def affinity_values(self, where: str, body: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
        """The affinity name and values a rule names (``affinity = "name"`` or ``"name:value"``, and
        ``values``), checked against the loaded catalog; None when ``affinity`` is not usable."""
        spec = body["affinity"]
        if not isinstance(spec, str) or not spec.strip(":"):
            self.problem(f"{where}.affinity", f"expected 'name' or 'name:value', got {spec!r}")
            return None
        name, colon, single = spec.partition(":")
        values: list[str] = [single] if colon else []
        if "values" in body:
            listed = body["values"]
            if colon:
                self.problem(f"{where}.values", f"not allowed with the name:value form {spec!r}; use affinity = {name!r}")
            elif not isinstance(listed, list) or not listed or not all(isinstance(v, str) for v in listed):
                self.problem(f"{where}.values", "expected a non-empty list of values (strings)")
            else:
                values = list(listed)
        if self.known is not None and name not in self.known:
            self.problem(
                f"{where}.affinity",
                f"unknown affinity name {name!r}{did_you_mean(name, sorted(self.known))}"
                f" (known: {', '.join(sorted(self.known)[:12])})",
            )
        elif name in self.known_values:
            self.check_values(f"{where}.{'values' if 'values' in body else 'affinity'}", name, values)
        return name, tuple(values)

    def check_values(self, where: str, name: str, values: Sequence[str]) -> None:
        """Values of ``name`` that no loaded profile holds: a warning, or a problem when strict."""
        held = self.known_values[name]
        for value in values:
            if value in held:
                continue
            same_but_case = [v for v in held if v.casefold() == value.casefold()]
            hint = f" (did you mean {same_but_case[0]!r}?)" if same_but_case else did_you_mean(value, held)
            message = (f"no loaded profile has {name} = {value!r}{hint}: a rule on it matches nobody"
                       f" ({len(held):,} values of {name} are loaded)")
            if self.strict:
                self.problem(where, message)
            else:
                self.warnings.append(f"{where}: {message}")

    def score_value(self, where: str, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(where, f"expected a number, got {value!r}")
            return None
        if not MIN_SCORE <= value <= MAX_SCORE:
            self.problem(where, f"{value} is outside the score range 1-20")
            return None
        return float(value)

    def score_range(self, where: str, value: Any) -> ScoreRange | None:
        if not self.keys(where, value, ("gte", "gt", "lte", "lt", "between")):
            return None
        if not value:
            self.problem(where, "give at least one of gte, gt, lte, lt, between")
            return None
        if "between" in value:
            if len(value) > 1:
                self.problem(where, "`between` cannot be combined with gte/gt/lte/lt")
                return None
            pair = value["between"]
            if not isinstance(pair, list) or len(pair) != 2:
                self.problem(f"{where}.between", "expected [low, high]")
                return None
            low = self.score_value(f"{where}.between[0]", pair[0])
            high = self.score_value(f"{where}.between[1]", pair[1])
            if low is not None and high is not None and low > high:
                self.problem(f"{where}.between", f"empty range: {low} > {high}")
                return None
            return ScoreRange(low, True, high, True)
        if "gte" in value and "gt" in value or "lte" in value and "lt" in value:
            self.problem(where, "use one lower bound (gte or gt) and one upper bound (lte or lt)")
            return None
        low_key = "gte" if "gte" in value else "gt" if "gt" in value else None
        high_key = "lte" if "lte" in value else "lt" if "lt" in value else None
        low = self.score_value(f"{where}.{low_key}", value[low_key]) if low_key else None
        high = self.score_value(f"{where}.{high_key}", value[high_key]) if high_key else None
        result = ScoreRange(low, low_key != "gt", high, high_key != "lt")
        if low is not None and high is not None:
            if low > high or (low == high and not (result.low_inclusive and result.high_inclusive)):
                self.problem(where, f"empty range: no score is {low_key} {low} and {high_key} {high}")
                return None
        return result

    def days(self, where: str, value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.problem(where, f"must be a positive number of days, got {value!r}")
            return None
        return float(value)


def _unknown_key(key: Any, allowed: Sequence[str]) -> str:
    """An unknown key, what it may have meant, and the keys allowed in its place."""
    return f"unknown key {key!r}{did_you_mean(str(key), allowed)}; allowed here: {', '.join(allowed)}"


def kind_of(value: Any) -> str:
    """A value's type and text, short, for a message saying what was found instead."""
    return f"{type(value).__name__} {value!r}"[:80]
