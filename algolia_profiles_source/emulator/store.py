"""The emulator's profile store: generated profiles plus admin overrides, behind one lock.

Generated users live in `SyntheticData` (sorted IDs and timestamps; profiles rendered on demand).
Admin changes are kept apart: ``_overrides`` (profiles upserted as given), ``_deleted`` (generated IDs
removed) and ``_extra_ids`` (sorted IDs that exist only as overrides). Listing merges the two sorted
sequences, so paging stays keyed by userID whatever changes between two page calls.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from .data import SyntheticData, format_us, from_us, to_us

USER_ID_RE = re.compile(r"[A-Za-z0-9=+/_-]{1,129}")
"""Algolia's userID rule."""

Matcher = Callable[[dict[str, Any]], bool]


def valid_user_id(user_id: str) -> bool:
    """True when ``user_id`` satisfies Algolia's rule ``[A-Za-z0-9=+/_-]``, 1..129 characters."""
    return USER_ID_RE.fullmatch(user_id) is not None


_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 date-time (offset ``Z`` or ``+hh:mm`` required) to an aware UTC datetime.

    Fractions beyond micro-seconds are truncated. Written out rather than `datetime.fromisoformat`
    so that it is equally strict on every Python version.

    Raises:
        ValueError: when ``text`` is not an RFC 3339 date-time with a UTC offset.
    """
    m = _RFC3339_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "").ljust(6, "0")[:6])
    offset = timedelta(0)
    if m.group(9):
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if m.group(9) == "-":
            offset = -offset
    dt = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
    return dt.astimezone(timezone.utc)


class ProfileStore:
    """Thread-safe set of live profiles, sorted by userID.

    Args:
        n_users: number of generated users.
        seed: generator seed (same seed, same users).
        now: instant the generated data is relative to (aware datetime).
        batch_shape: how profiles share timestamps (see `SyntheticData`).
    """

    def __init__(self, n_users: int, seed: int, now: datetime, batch_shape: str = "daily") -> None:
        self.now = now
        self._data = SyntheticData(n_users, seed, now, batch_shape)
        self._lock = threading.RLock()
        self._overrides: dict[str, dict[str, Any]] = {}
        self._override_us: dict[str, int] = {}
        self._deleted: set[str] = set()
        self._extra_ids: list[str] = []
        self._json: list[bytes] | None = None  # each generated profile serialized (see prerender)

    def prerender(self) -> None:
        """Serializes every generated profile once (about 1.7 KB each), so that listing a page
        splices stored JSON instead of generating and serializing 1,000 profiles: a benchmark's
        emulator then serves pages faster than the client under test can read them, whatever the
        machine. The bytes are the ones a page would hold; profiles changed through the admin API
        are served from their overrides as before."""
        data = self._data
        with self._lock:
            self._json = [
                orjson.dumps(data.render(data.source_index[pos], uid, data.last_updated[pos]))
                for pos, uid in enumerate(data.ids)
            ]

    # ---------------------------------------------------------------- public admin API
    def __len__(self) -> int:
        with self._lock:
            return len(self._data.ids) - len(self._deleted) + len(self._extra_ids)

    def users(self) -> list[dict[str, Any]]:
        """Every live profile in exact API shape, sorted by userID."""
        with self._lock:
            return [self._render(uid, pos) for uid, pos, _ in self._iter_from(None, forward=True)]

    def get(self, user_id: str) -> dict[str, Any] | None:
        """The live profile ``user_id`` in API shape, or None."""
        with self._lock:
            if user_id in self._overrides:
                return _copy(self._overrides[user_id])
            pos = self._base_pos(user_id)
            if pos is None or user_id in self._deleted:
                return None
            return self._render(user_id, pos)

    def upsert(self, profile: dict[str, Any]) -> dict[str, Any]:
        """Add or replace one profile given in API shape; returns the stored copy.

        A missing ``lastUpdatedAt`` is set to the later of the wall clock and the store's ``now``
        (so an upserted profile is never older than the generated ones). A missing ``affinities``
        becomes ``[]``.

        Raises:
            ValueError: when ``userID`` is missing or breaks Algolia's rule, or ``lastUpdatedAt``
                is a string that is not RFC 3339 (a non-string one raises AttributeError).
        """
        user_id = profile.get("userID")
        if not isinstance(user_id, str) or not valid_user_id(user_id):
            raise ValueError("Invalid userID format")
        stored = _copy(profile)
        stored.setdefault("affinities", [])
        if not stored.get("lastUpdatedAt"):
            stamp = max(datetime.now(timezone.utc), self.now)
            stored["lastUpdatedAt"] = format_us(to_us(stamp))
        stamp_us = to_us(parse_rfc3339(stored["lastUpdatedAt"]))
        with self._lock:
            if user_id not in self._overrides and self._base_pos(user_id) is None:
                bisect.insort(self._extra_ids, user_id)
            self._overrides[user_id] = stored
            self._override_us[user_id] = stamp_us
            self._deleted.discard(user_id)
        return _copy(stored)

    def delete(self, user_id: str) -> bool:
        """Remove a live profile; False when there was none."""
        with self._lock:
            in_base = self._base_pos(user_id) is not None
            if user_id in self._overrides:
                del self._overrides[user_id]
                del self._override_us[user_id]
                if in_base:
                    self._deleted.add(user_id)
                else:
                    self._extra_ids.pop(bisect.bisect_left(self._extra_ids, user_id))
                return True
            if in_base and user_id not in self._deleted:
                self._deleted.add(user_id)
                return True
            return False

    def max_last_updated_at(self) -> datetime:
        """The newest ``lastUpdatedAt`` of any live profile (the store's ``now`` when empty)."""
        with self._lock:
            stamps = self._data.last_updated
            if not self._deleted and not self._overrides:
                best = max(stamps, default=None)
            else:
                skip = self._deleted | self._overrides.keys()
                ids = self._data.ids
                best = max((s for s, u in zip(stamps, ids) if u not in skip), default=None)
            if self._override_us:
                extra = max(self._override_us.values())
                best = extra if best is None else max(best, extra)
            return self.now if best is None else from_us(best)

    def config(self) -> dict[str, Any]:
        """The application's personalization config (``GET /2/config``)."""
        return self._data.config()

    # ---------------------------------------------------------------- listing
    def page(
        self,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 10,
        start_us: int | None = None,
        end_us: int | None = None,
        matcher: Matcher | None = None,
        ids: list[str] | None = None,
    ) -> tuple[list[Any], bool, bool]:
        """One page of matching profiles in userID order (their user IDs appended to ``ids``).

        Profiles are dicts, or serialized JSON (``orjson.Fragment``) once :meth:`prerender` ran.

        Forward (``before`` is None): the first ``limit`` matches with userID > ``after`` (all
        when ``after`` is None). Backward: the last ``limit`` matches with userID < ``before``.
        Date bounds are exclusive: ``start_us < lastUpdatedAt < end_us``.

        Returns:
            ``(profiles, more_before, more_after)``: whether any match exists before the
            page's first userID / after its last one.
        """
        with self._lock:
            forward = before is None
            cursor = after if forward else before
            found: list[tuple[str, dict[str, Any]]] = []
            more = False
            for uid, pos, stamp in self._iter_from(cursor, forward=forward):
                if (start_us is not None and stamp <= start_us) or (
                    end_us is not None and stamp >= end_us
                ):
                    continue
                profile = (self._render(uid, pos) if matcher else self._listed(uid, pos)) if (
                    matcher or len(found) < limit) else None
                if matcher is not None and not matcher(profile):  # type: ignore[arg-type]
                    continue
                if len(found) == limit:
                    more = True
                    break
                found.append((uid, profile))  # type: ignore[arg-type]
            if not forward:
                found.reverse()
            profiles = [p for _, p in found]
            if ids is not None:
                ids.extend(uid for uid, _ in found)
            if not found:
                return profiles, False, False

            def exists(cursor_id: str, fwd: bool) -> bool:
                for uid, pos, stamp in self._iter_from(cursor_id, forward=fwd):
                    if (start_us is not None and stamp <= start_us) or (
                        end_us is not None and stamp >= end_us
                    ):
                        continue
                    if matcher is None or matcher(self._render(uid, pos)):
                        return True
                return False

            if forward:
                more_before = after is not None and exists(found[0][0], False)
                return profiles, more_before, more
            return profiles, more, exists(found[-1][0], True)

    # ---------------------------------------------------------------- internals
    def _base_pos(self, user_id: str) -> int | None:
        ids = self._data.ids
        pos = bisect.bisect_left(ids, user_id)
        return pos if pos < len(ids) and ids[pos] == user_id else None

    def _render(self, user_id: str, pos: int) -> dict[str, Any]:
        """Profile ``user_id``: its override when present, else generated position ``pos``."""
        override = self._overrides.get(user_id)
        if override is not None:
            return _copy(override)
        data = self._data
        return data.render(data.source_index[pos], user_id, data.last_updated[pos])

    def _listed(self, user_id: str, pos: int) -> Any:
        """Profile ``user_id`` as a page lists it: its stored JSON when prerendered and unchanged."""
        if self._json is not None and pos >= 0 and user_id not in self._overrides:
            return orjson.Fragment(self._json[pos])
        return self._render(user_id, pos)

    def _iter_from(self, cursor: str | None, *, forward: bool) -> Iterator[tuple[str, int, int]]:
        """Live ``(userID, base position or -1, lastUpdatedAt µs)`` strictly after/before ``cursor``.

        Must be consumed while holding the lock.
        """
        ids, stamps, extra = self._data.ids, self._data.last_updated, self._extra_ids
        deleted, over_us = self._deleted, self._override_us
        if forward:
            i = 0 if cursor is None else bisect.bisect_right(ids, cursor)
            j = 0 if cursor is None else bisect.bisect_right(extra, cursor)
            n, m = len(ids), len(extra)
            while i < n or j < m:
                if j >= m or (i < n and ids[i] < extra[j]):
                    uid = ids[i]
                    if uid not in deleted:
                        yield uid, i, over_us.get(uid, stamps[i])
                    i += 1
                else:
                    yield extra[j], -1, over_us[extra[j]]
                    j += 1
        else:
            i = (len(ids) if cursor is None else bisect.bisect_left(ids, cursor)) - 1
            j = (len(extra) if cursor is None else bisect.bisect_left(extra, cursor)) - 1
            while i >= 0 or j >= 0:
                if j < 0 or (i >= 0 and ids[i] > extra[j]):
                    uid = ids[i]
                    if uid not in deleted:
                        yield uid, i, over_us.get(uid, stamps[i])
                    i -= 1
                else:
                    yield extra[j], -1, over_us[extra[j]]
                    j -= 1


def _copy(profile: dict[str, Any]) -> dict[str, Any]:
    """Copy of a profile deep enough that callers cannot mutate the store."""
    out = dict(profile)
    if isinstance(out.get("affinities"), list):
        out["affinities"] = [
            {**a, "indices": list(a["indices"])} if isinstance(a, dict) and isinstance(
                a.get("indices"), list) else (dict(a) if isinstance(a, dict) else a)
            for a in out["affinities"]
        ]
    return out
