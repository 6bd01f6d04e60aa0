"""Audiences as typed definitions: the rule tree, an audience and a validated audience file.

:mod:`.definitions` reads an audience file into these; the compiler reads them to generate SQL. A
rule's fields mean what docs/audiences.md says of the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..exceptions import ConfigurationError
from .hints import did_you_mean

MIN_SCORE, MAX_SCORE = 1.0, 20.0
PROFILE_TYPES = ("basic", "predictive", "realtime")
# a history rule's `then` or `now` that says the affinity was not held
ABSENT = "absent"


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
