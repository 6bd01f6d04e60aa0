"""Reference (oracle) implementation of the audience semantics in ``docs/audiences.md``.

Written from the spec only, in plain Python, so tests can compare the SQL the segments builder
generates against it. It deliberately imports nothing from ``algolia_profiles_source``.

Inputs are API-shaped profiles (``Emulator.store.users()``) and the audience file parsed into a
plain dict (``tomllib``/``yaml`` output). No validation beyond what is needed to compute: a
reference cycle or an unknown audience raises ``ValueError``; a missing suppression table raises
``KeyError``.

Readings of the spec that are not spelled out there (see the module tests for worked examples):

* An affinity rule's ``name``/``value`` compare with exact, case-sensitive string equality.
  ``"name:value"`` splits at the first colon; ``"name:"`` means value ``""``.
* ``updated_within_days`` may be fractional: the cutoff is ``as_of - timedelta(days=N)`` and the
  comparison is ``>=``. A missing timestamp never matches.
* ``types``: a profile without ``type`` never matches a ``types`` condition (SQL ``NULL IN (...)``).
  ``profile`` with neither key matches every user.
* Score conditions compare floats; a row without a score fails any score condition and contributes
  nothing to the member's score (but counts as a matched row for ``matched_affinities``).
* Positive matched rows are every affinity row of a *candidate* that satisfies any affinity rule of
  this audience not under a ``none`` (at any depth), whether or not that rule decided the match.
* Empty groups (rejected by the validator): ``all`` -> true, ``any`` -> false, ``none`` -> true.
* ``history`` rules read ``history``: a list of ``(at, profiles)``, what Algolia served from ``at`` on
  (sorted by ``at``). The affinities at an instant are those of the last entry at or before it (none
  before the first); a rule whose *then* is before the first entry matches nobody (unknown, not
  absent). A (name, value) is considered when the user held it then or now; an absent score
  counts 0 for ``rose_by``/``fell_by`` and fails a score range.
* ``top.per_value``: the ranking score of a user on a (name, value) is the max score of its positive
  matched rows with that (name, value); rows without a score rank after scored ones (then user_id).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Set, Tuple

Member = Tuple[Optional[float], int]
Audiences = Dict[str, Dict[str, Member]]


def parse_ts(value: Any) -> Optional[datetime]:
    """An RFC 3339 string (``Z``/offset, 0-9 fraction digits, ``T``/``t``/space) -> aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        if len(text) > 10 and text[10] in ("t", " "):
            text = text[:10] + "T" + text[11:]
        dt = datetime.fromisoformat(text)  # 3.11: any number of fraction digits, extras truncated
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def split_affinity(spec: str) -> Tuple[str, Optional[str]]:
    """``"name"`` -> (name, None); ``"name:value"`` -> (name, value), split at the first colon."""
    if ":" in spec:
        name, value = spec.split(":", 1)
        return name, value
    return spec, None


def _score_ok(score: Any, cond: Dict[str, Any]) -> bool:
    if score is None:
        return False
    s = float(score)
    if "gte" in cond and not s >= float(cond["gte"]):
        return False
    if "gt" in cond and not s > float(cond["gt"]):
        return False
    if "lte" in cond and not s <= float(cond["lte"]):
        return False
    if "lt" in cond and not s < float(cond["lt"]):
        return False
    if "between" in cond:
        lo, hi = cond["between"]
        if not float(lo) <= s <= float(hi):
            return False
    return True


def _within(ts: Any, days: Any, as_of: datetime) -> bool:
    when = parse_ts(ts)
    return when is not None and when >= as_of - timedelta(days=float(days))


def row_matches(row: Dict[str, Any], rule: Dict[str, Any], as_of: datetime) -> bool:
    """Does one affinity row satisfy ALL conditions of an affinity rule?"""
    name, value = split_affinity(rule["affinity"])
    if row.get("name") != name:
        return False
    if value is not None and row.get("value") != value:
        return False
    if "values" in rule and row.get("value") not in list(rule["values"]):
        return False
    if "score" in rule and not _score_ok(row.get("score"), rule["score"]):
        return False
    if "indices" in rule:
        wanted = set(rule["indices"])
        if not any(index in wanted for index in (row.get("indices") or [])):
            return False
    if "updated_within_days" in rule and not _within(
        row.get("lastUpdatedAt"), rule["updated_within_days"], as_of
    ):
        return False
    return True


def positive_affinity_rules(rule: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Affinity rules of this rule tree not under any ``none`` (audience references not entered)."""
    if "affinity" in rule:
        return [rule]
    if "all" in rule:
        return [r for sub in rule["all"] for r in positive_affinity_rules(sub)]
    if "any" in rule:
        return [r for sub in rule["any"] for r in positive_affinity_rules(sub)]
    return []  # none, profile, audience


class _Builder:
    def __init__(
        self,
        profiles: List[Dict[str, Any]],
        definitions: Dict[str, Any],
        as_of: datetime,
        suppression_tables: Optional[Dict[str, Set[str]]],
        history: Optional[List[Tuple[datetime, List[Dict[str, Any]]]]] = None,
    ) -> None:
        self.profiles = profiles
        self.history = sorted(history or [], key=lambda entry: entry[0])
        self.audiences: Dict[str, Dict[str, Any]] = dict(definitions.get("audiences") or {})
        self.global_suppression: Dict[str, Any] = dict(definitions.get("suppression") or {})
        settings = definitions.get("settings") or {}
        chosen = settings.get("as_of") if settings.get("as_of") is not None else as_of
        parsed = parse_ts(chosen)
        assert parsed is not None
        self.as_of = parsed
        self.suppression_tables = suppression_tables or {}
        self.done: Audiences = {}
        self.in_progress: List[str] = []

    # -- rule evaluation ---------------------------------------------------------------------
    def matches(self, profile: Dict[str, Any], rule: Dict[str, Any]) -> bool:
        if "affinity" in rule:
            return any(row_matches(row, rule, self.as_of) for row in profile.get("affinities") or [])
        if "profile" in rule:
            cond = rule["profile"] or {}
            if "updated_within_days" in cond and not _within(
                profile.get("lastUpdatedAt"), cond["updated_within_days"], self.as_of
            ):
                return False
            if "types" in cond and profile.get("type") not in list(cond["types"]):
                return False
            return True
        if "all" in rule:
            return all(self.matches(profile, sub) for sub in rule["all"])
        if "any" in rule:
            return any(self.matches(profile, sub) for sub in rule["any"])
        if "none" in rule:
            return not any(self.matches(profile, sub) for sub in rule["none"])
        if "audience" in rule:
            return profile["userID"] in self.members(rule["audience"])
        if "history" in rule:
            return self.changed(profile["userID"], rule["history"])
        raise ValueError(f"rule has no known form: {rule!r}")

    def scores_at(self, user_id: str, at: datetime) -> Dict[Tuple[str, str], float]:
        served: List[Dict[str, Any]] = []
        for when, profiles in self.history:
            if when <= at:
                served = profiles
        for profile in served:
            if profile["userID"] == user_id:
                return {(a["name"], a["value"]): float(a["score"]) for a in profile.get("affinities") or []}
        return {}

    def changed(self, user_id: str, spec: Dict[str, Any]) -> bool:
        name, value = split_affinity(spec["affinity"])
        values = [value] if value is not None else list(spec.get("values") or [])
        since = self.as_of - timedelta(days=float(spec["days"]))
        if not self.history or since < self.history[0][0]:
            return False  # before the history begins nothing is known
        then = self.scores_at(user_id, since)
        now = self.scores_at(user_id, self.as_of)
        for key in set(then) | set(now):
            if key[0] != name or (values and key[1] not in values):
                continue
            before, after = then.get(key), now.get(key)
            if "rose_by" in spec and not (after or 0) - (before or 0) >= float(spec["rose_by"]):
                continue
            if "fell_by" in spec and not (before or 0) - (after or 0) >= float(spec["fell_by"]):
                continue
            if not all(self._state_ok(score, spec[k]) for k, score in (("then", before), ("now", after)) if k in spec):
                continue
            return True
        return False

    @staticmethod
    def _state_ok(score: Optional[float], state: Any) -> bool:
        if state == "absent":
            return score is None
        return _score_ok(score, state)

    # -- suppression ---------------------------------------------------------------------------
    def suppressed_ids(self, spec: Dict[str, Any]) -> Set[str]:
        ids = set(spec.get("user_ids") or [])
        if spec.get("table") is not None:
            key = f"{spec['table']}.{spec['column']}"
            if key not in self.suppression_tables:
                raise KeyError(f"suppression table {key!r} not given in suppression_tables")
            ids |= set(self.suppression_tables[key])
        return ids

    # -- one audience ------------------------------------------------------------------------
    def members(self, name: str) -> Dict[str, Member]:
        if name in self.done:
            return self.done[name]
        if name not in self.audiences:
            raise ValueError(f"unknown audience {name!r}")
        if name in self.in_progress:
            cycle = self.in_progress[self.in_progress.index(name):] + [name]
            raise ValueError("audience reference cycle: " + " -> ".join(cycle))
        self.in_progress.append(name)
        try:
            result = self._compute(name, self.audiences[name])
        finally:
            self.in_progress.pop()
        self.done[name] = result
        return result

    def _compute(self, name: str, definition: Dict[str, Any]) -> Dict[str, Member]:
        rule = definition["rule"]
        positives = positive_affinity_rules(rule)

        # 1. candidates, with their positive matched rows (name, value) -> best score
        candidates: Dict[str, Member] = {}
        matched_rows: Dict[str, Dict[Tuple[str, str], Optional[float]]] = {}
        for profile in self.profiles:
            if not self.matches(profile, rule):
                continue
            user_id = profile["userID"]
            rows: Dict[Tuple[str, str], Optional[float]] = {}
            for row in profile.get("affinities") or []:
                if any(row_matches(row, r, self.as_of) for r in positives):
                    key = (row["name"], row["value"])
                    score = None if row.get("score") is None else float(row["score"])
                    rows[key] = _max(rows[key], score) if key in rows else score
            scores = [s for s in rows.values() if s is not None]
            candidates[user_id] = (max(scores) if scores else None, len(rows))
            matched_rows[user_id] = rows

        # 2. min_score
        if definition.get("min_score") is not None:
            floor = float(definition["min_score"])
            candidates = {
                u: m for u, m in candidates.items() if m[0] is not None and m[0] >= floor
            }

        # 3. exclude
        for other in definition.get("exclude") or []:
            excluded = self.members(other)
            candidates = {u: m for u, m in candidates.items() if u not in excluded}

        # 4. suppression (global + own)
        gone = self.suppressed_ids(self.global_suppression) | self.suppressed_ids(
            definition.get("suppress") or {}
        )
        candidates = {u: m for u, m in candidates.items() if u not in gone}

        # 5. top
        top = definition.get("top")
        if top:
            n = int(top["n"])
            if top.get("per_value"):
                kept: Set[str] = set()
                per_value: Dict[Tuple[str, str], List[Tuple[Optional[float], str]]] = {}
                for user_id in candidates:
                    for key, score in matched_rows[user_id].items():
                        per_value.setdefault(key, []).append((score, user_id))
                for entries in per_value.values():
                    entries.sort(key=_rank_key)
                    kept.update(user_id for _, user_id in entries[:n])
                candidates = {u: m for u, m in candidates.items() if u in kept}
            else:
                ranked = sorted(((m[0], u) for u, m in candidates.items()), key=_rank_key)
                keep = {user_id for _, user_id in ranked[:n]}
                candidates = {u: m for u, m in candidates.items() if u in keep}
        return candidates


def _max(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _rank_key(entry: Tuple[Optional[float], str]) -> Tuple[int, float, str]:
    """Score descending with NULL last, then user_id ascending."""
    score, user_id = entry
    return (1, 0.0, user_id) if score is None else (0, -score, user_id)


def compute_audiences(
    profiles: List[Dict[str, Any]],
    definitions: Dict[str, Any],
    as_of: datetime,
    suppression_tables: Optional[Dict[str, Set[str]]] = None,
    history: Optional[List[Tuple[datetime, List[Dict[str, Any]]]]] = None,
) -> Dict[str, Dict[str, Tuple[Optional[float], int]]]:
    """audience name -> {user_id: (score, matched_affinities)}: the final members of every audience.

    ``as_of`` (tz-aware; naive is taken as UTC) is used unless ``settings.as_of`` is present.
    ``suppression_tables`` maps ``"<table>.<column>"`` (the file's strings) to the user ids in it.
    ``history``: what Algolia served over time, for ``history`` rules (see the module notes).
    """
    builder = _Builder(profiles, definitions, as_of, suppression_tables, history)
    return {name: dict(builder.members(name)) for name in builder.audiences}


__all__ = ["compute_audiences", "parse_ts", "split_affinity", "row_matches"]
