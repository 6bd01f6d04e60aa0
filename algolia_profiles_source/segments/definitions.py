"""Audience files: parsing and validation into the typed definitions of :mod:`.audience` (the language
is in docs/audiences.md).

Everything is checked before any SQL exists: unknown keys (with a did-you-mean and the keys allowed
in their place), unknown affinity names, impossible score ranges, bad references and cycles between
audiences. Each error names the audience and the field, one mistake gives one error, and all errors
of a file are reported together. Affinity values that no loaded profile holds are warnings (errors
when strict): a typo there would otherwise build an empty audience.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from collections.abc import Collection, Iterable, Mapping, Sequence

from ..exceptions import ConfigurationError
from ..times import parse_datetime
from ..warehouse.target import COLUMN_NAME, TABLE_NAME
from .audience import (ABSENT, MAX_SCORE, MIN_SCORE, PROFILE_TYPES, AffinityRule, Audience, AudienceFile,
                       AudienceRule, GroupRule, HistoryRule, ProfileRule, Rule, ScoreRange, Suppression, Top)
from .hints import did_you_mean
from .rule_parser import RuleParser, kind_of

# the audience types and did_you_mean are importable from here as well: the documented import path
__all__ = [
    "ABSENT", "MAX_SCORE", "MIN_SCORE", "PROFILE_TYPES", "AffinityRule", "Audience", "AudienceFile",
    "AudienceRule", "DefinitionError", "GroupRule", "HistoryRule", "ProfileRule", "Rule", "ScoreRange",
    "Suppression", "Top", "did_you_mean", "load_definitions", "parse_definitions", "read_file",
]

AUDIENCE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class DefinitionError(ConfigurationError):
    """One or more problems in an audience file; ``problems`` lists them all."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the audience definitions:\n{listing}")


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


class _Parser(RuleParser):
    """Checks a whole audience file on top of the rule checks."""

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
            self.problem("audiences", f"expected a table of audiences, got {kind_of(raw)}")
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
