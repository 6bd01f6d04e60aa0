"""Audience files: parsing and validation into typed definitions (the language is in docs/audiences.md).

Everything is checked before any SQL exists: unknown keys (with a did-you-mean and the keys allowed
in their place), unknown affinity names, impossible score ranges, bad references and cycles between
audiences. Each error names the audience and the field, one mistake gives one error, and all errors
of a file are reported together. Affinity values that no loaded profile holds are warnings (errors
when strict): a typo there would otherwise build an empty audience.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Collection, Iterable, Mapping, Sequence

from ..exceptions import ConfigurationError
from ..times import parse_datetime
from ..warehouse.target import COLUMN_NAME, TABLE_NAME

MIN_SCORE, MAX_SCORE = 1.0, 20.0
AUDIENCE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PROFILE_TYPES = ("basic", "predictive", "realtime")
RULE_FORMS = ("affinity", "profile", "all", "any", "none", "audience", "history")
AFFINITY_OPTIONS = ("values", "score", "indices", "updated_within_days")
HISTORY_KEYS = ("affinity", "values", "days", "rose_by", "fell_by", "then", "now")
ABSENT = "absent"


class DefinitionError(ConfigurationError):
    """One or more problems in an audience file; ``problems`` lists them all."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the audience definitions:\n{listing}")


@dataclass(frozen=True)
class ScoreRange:
    """Bounds on a score; ``*_inclusive`` say whether the bound itself matches."""

    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True


@dataclass(frozen=True)
class AffinityRule:
    name: str
    values: tuple[str, ...] = ()
    score: ScoreRange | None = None
    indices: tuple[str, ...] = ()
    updated_within_days: float | None = None


@dataclass(frozen=True)
class HistoryRule:
    """A change of an affinity between ``days`` before ``as_of`` (*then*) and ``as_of`` (*now*),
    read from ``user_affinities_history``; matched when some (name, value) of the rule meets every
    condition. ``then``/``now``: a score range the score must be in, or ``"absent"``; ``rose_by``/
    ``fell_by``: the score now minus (or then minus) the score then, an absent score counting 0."""

    name: str
    days: float
    values: tuple[str, ...] = ()
    rose_by: float | None = None
    fell_by: float | None = None
    then: ScoreRange | str | None = None
    now: ScoreRange | str | None = None


@dataclass(frozen=True)
class ProfileRule:
    updated_within_days: float | None = None
    types: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupRule:
    kind: str  # "all" | "any" | "none"
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class AudienceRule:
    audience: str


Rule = AffinityRule | ProfileRule | GroupRule | AudienceRule | HistoryRule


@dataclass(frozen=True)
class Suppression:
    user_ids: tuple[str, ...] = ()
    tables: tuple[tuple[str, str], ...] = ()  # (table, column)

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.tables)

    def __add__(self, other: Suppression) -> Suppression:
        return Suppression(self.user_ids + other.user_ids, self.tables + other.tables)


@dataclass(frozen=True)
class Top:
    n: int
    per_value: bool = False


@dataclass(frozen=True)
class Audience:
    name: str
    rule: Rule
    description: str = ""
    exclude: tuple[str, ...] = ()
    min_score: float | None = None
    top: Top | None = None
    suppress: Suppression = field(default_factory=Suppression)

    def references(self) -> list[str]:
        """Audiences this one depends on (through ``audience`` rules and ``exclude``)."""
        return list(self.exclude) + [r.audience for r in _leaves(self.rule, AudienceRule)]

    def positive_affinity_rules(self) -> list[AffinityRule]:
        """Affinity rules not inside a ``none``: the rows that give a member its score."""
        return _leaves(self.rule, AffinityRule, enter_none=False)

    def affinity_rules(self) -> list[AffinityRule]:
        """Every affinity rule of the audience, ``none`` groups included."""
        return _leaves(self.rule, AffinityRule)

    def history_rules(self) -> list[HistoryRule]:
        """Every history rule of the audience (they read ``user_affinities_history``)."""
        return _leaves(self.rule, HistoryRule)


def _leaves(rule: Rule, kind: type, enter_none: bool = True) -> list[Any]:
    """The rules of type ``kind`` in ``rule``'s tree, in order."""
    if isinstance(rule, kind):
        return [rule]
    if isinstance(rule, GroupRule) and (enter_none or rule.kind != "none"):
        return [leaf for child in rule.rules for leaf in _leaves(child, kind, enter_none)]
    return []


@dataclass(frozen=True)
class AudienceFile:
    """A validated audience file. ``audiences`` is in dependency order (referenced ones first)."""

    audiences: tuple[Audience, ...]
    suppression: Suppression = field(default_factory=Suppression)
    as_of: datetime | None = None
    source: str = "<audiences>"
    # what is suspicious but buildable: affinity values no loaded profile holds
    warnings: tuple[str, ...] = ()

    def get(self, name: str) -> Audience:
        for audience in self.audiences:
            if audience.name == name:
                return audience
        raise ConfigurationError(
            f"no audience {name!r} in {self.source}{did_you_mean(name, self.names)}"
        )

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.audiences]

    @property
    def uses_history(self) -> bool:
        """Whether a rule reads ``user_affinities_history`` (loaded with ``history = true``)."""
        return any(a.history_rules() for a in self.audiences)


def read_file(path: str | Path) -> dict[str, Any]:
    """Reads a TOML or YAML audience file into plain data."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"audience file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = tomllib.loads(text)
    except Exception as error:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise ConfigurationError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: expected a table of audiences at the top level")
    return data


def load_definitions(
    path: str | Path,
    known_affinities: Iterable[str] | None = None,
    known_values: Mapping[str, Collection[str]] | None = None,
    strict: bool = False,
) -> AudienceFile:
    """Reads and validates an audience file (see :func:`parse_definitions`)."""
    return parse_definitions(read_file(path), known_affinities, source=str(path), known_values=known_values,
                             strict=strict)


def parse_definitions(
    data: Mapping[str, Any],
    known_affinities: Iterable[str] | None = None,
    source: str = "<audiences>",
    known_values: Mapping[str, Collection[str]] | None = None,
    strict: bool = False,
) -> AudienceFile:
    """Validates plain data into an :class:`AudienceFile`; raises :class:`DefinitionError`.

    ``known_affinities``: the affinity attribute names that exist (from ``personalization_config``
    and the loaded affinities); when given, rules naming another attribute are errors.
    ``known_values``: per affinity name, the values the loaded profiles hold; a rule value of such
    a name that is not among them is a warning (in :attr:`AudienceFile.warnings`), or an error
    when ``strict``. Names missing from ``known_values`` have their values unchecked.
    """
    parser = _Parser(set(known_affinities) if known_affinities is not None else None, known_values or {}, strict)
    result = parser.parse(data, source)
    if parser.problems:
        raise DefinitionError(source, parser.problems)
    return result


class _Parser:
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
            self.problem(where, f"expected a table, got {_kind(value)}")
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

    def parse(self, data: Mapping[str, Any], source: str) -> AudienceFile:
        self.keys("file", data, ("settings", "suppression", "audiences"), ("audiences",))
        as_of = None
        settings = data.get("settings", {})
        if self.keys("settings", settings, ("as_of",)) and settings.get("as_of") is not None:
            try:
                as_of = parse_datetime(settings["as_of"], "as_of")
            except ConfigurationError as error:
                self.problem("settings.as_of", str(error))
        suppression = self.suppression("suppression", data.get("suppression", {}))
        raw = data.get("audiences", {})
        audiences: dict[str, Audience] = {}
        if isinstance(raw, Mapping):
            if not raw and "audiences" in data:
                self.problem("audiences", "no audience is defined")
            for name, body in raw.items():
                audience = self.audience(str(name), body)
                if audience is not None:
                    audiences[audience.name] = audience
        elif "audiences" in data:
            self.problem("audiences", f"expected a table of audiences, got {_kind(raw)}")
        ordered = self.order(audiences)
        return AudienceFile(tuple(ordered), suppression, as_of, source, tuple(self.warnings))

    def suppression(self, where: str, value: Any) -> Suppression:
        if not self.keys(where, value, ("user_ids", "table", "column")):
            return Suppression()
        user_ids = value.get("user_ids", [])
        if not isinstance(user_ids, list) or not all(isinstance(u, str) and u for u in user_ids):
            self.problem(f"{where}.user_ids", "expected a list of user IDs (strings)")
            user_ids = []
        tables: list[tuple[str, str]] = []
        table, column = value.get("table"), value.get("column")
        if (table is None) != (column is None):
            self.problem(where, "`table` and `column` go together: name the table and its user-ID column")
        elif table is not None:
            if not isinstance(table, str) or not TABLE_NAME.match(table):
                self.problem(f"{where}.table", f"{table!r} is not a table name like crm.opted_out")
            elif not isinstance(column, str) or not COLUMN_NAME.match(column):
                self.problem(f"{where}.column", f"{column!r} is not a column name")
            else:
                tables.append((table, column))
        return Suppression(tuple(user_ids), tuple(tables))

    def audience(self, name: str, body: Any) -> Audience | None:
        where = f"audience {name!r}"
        if not AUDIENCE_NAME.match(name):
            self.problem(where, "names are 1-64 characters of A-Z a-z 0-9 _ -")
        allowed = ("description", "rule", "exclude", "min_score", "top", "suppress")
        if not self.keys(where, body, allowed, ("rule",)):
            return None
        description = body.get("description", "")
        if not isinstance(description, str):
            self.problem(f"{where}.description", "expected text")
            description = ""
        rule = self.rule(f"{where}.rule", body["rule"]) if "rule" in body else None
        exclude = body.get("exclude", [])
        if isinstance(exclude, str):
            exclude = [exclude]
        if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
            self.problem(f"{where}.exclude", "expected a list of audience names")
            exclude = []
        min_score = None
        if "min_score" in body:
            min_score = self.score_value(f"{where}.min_score", body["min_score"])
        top = None
        if "top" in body and self.keys(f"{where}.top", body["top"], ("n", "per_value"), ("n",)):
            n, per_value = body["top"].get("n"), body["top"].get("per_value", False)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                self.problem(f"{where}.top.n", f"must be a whole number >= 1, got {n!r}")
            elif not isinstance(per_value, bool):
                self.problem(f"{where}.top.per_value", f"must be true or false, got {per_value!r}")
            else:
                top = Top(n, per_value)
        suppress = self.suppression(f"{where}.suppress", body.get("suppress", {}))
        if rule is None:
            return None
        return Audience(name, rule, description, tuple(exclude), min_score, top, suppress)

    def rule(self, where: str, value: Any) -> Rule | None:
        if not isinstance(value, Mapping):
            self.problem(where, f"expected a rule table, got {_kind(value)}")
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

    def order(self, audiences: dict[str, Audience]) -> list[Audience]:
        """Dependency order; unknown references and cycles are problems."""
        for audience in audiences.values():
            for ref in audience.references():
                if ref not in audiences:
                    self.problem(
                        f"audience {audience.name!r}",
                        f"refers to unknown audience {ref!r}{did_you_mean(ref, list(audiences))}",
                    )
        ordered: list[Audience] = []
        state: dict[str, str] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == "done" or name not in audiences:
                return
            if state.get(name) == "visiting":
                cycle = path[path.index(name):] + [name]
                self.problem(f"audience {name!r}", f"cycle between audiences: {' -> '.join(cycle)}")
                return
            state[name] = "visiting"
            for ref in audiences[name].references():
                visit(ref, path + [name])
            state[name] = "done"
            ordered.append(audiences[name])

        for name in audiences:
            visit(name, [])
        return ordered


def _unknown_key(key: Any, allowed: Sequence[str]) -> str:
    """An unknown key, what it may have meant, and the keys allowed in its place."""
    return f"unknown key {key!r}{did_you_mean(str(key), allowed)}; allowed here: {', '.join(allowed)}"


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]
