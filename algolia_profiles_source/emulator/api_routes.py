"""The API endpoints (``/2/*``): which one answers a call, and the bodies they answer with.

``GET /2/users`` (filters, limit and cursor paging), ``GET`` / ``DELETE /2/users/{userID}`` and
``GET /2/config``; any other path gets 404 and a wrong method on one of these paths 405, all with
Algolia's JSON error body. Authentication, faults, the rate limit and latency are applied by the
HTTP handler before and after routing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from .contract import EmulatorState
from .data import format_us, to_us
from .errors import UnprocessableEntity, error_body
from .page_tokens import decode_page_token, encode_page_token
from .store import Matcher, ProfileStore, parse_rfc3339, valid_user_id

LAST_PAGE_TOKEN_MODES: tuple[str, ...] = ("missing", "null", "empty")
"""How the last page signals the end: no ``nextPageToken`` key, ``null`` or ``""``."""

_LIST_PARAMS = ("startDate", "endDate", "indices", "affinity", "limit",
                "nextPageToken", "previousPageToken")
_USER_PREFIX = "/2/users/"


def route_api_call(emu: EmulatorState, method: str, raw_path: str,
                   params: dict[str, Any]) -> tuple[int, Any]:
    """``(status, JSON payload)`` of an authorized, allowed API call to ``raw_path``."""
    if raw_path in ("/2/users", _USER_PREFIX):
        if method != "GET":
            return 405, error_body(405, "Method Not Allowed")
        try:
            return 200, emu.list_users(params)
        except UnprocessableEntity as exc:
            return 422, error_body(422, str(exc))
    if raw_path.startswith(_USER_PREFIX):
        # a userID whose percent-encoding is not UTF-8 cannot be valid: it becomes "" (a 400)
        user_id = unquote(raw_path[len(_USER_PREFIX):], errors="strict") if _is_utf8(
            raw_path) else ""
        if method not in ("GET", "DELETE"):
            return 405, error_body(405, "Method Not Allowed")
        if not valid_user_id(user_id):
            return 400, error_body(400, "Invalid userID format")
        if method == "GET":
            profile = emu.store.get(user_id)
            return (200, profile) if profile is not None else (404, error_body(404, "Not Found"))
        deleted = emu.delete_user(user_id)
        return (200, deleted) if deleted is not None else (404, error_body(404, "Not Found"))
    if raw_path == "/2/config":
        if method != "GET":
            return 405, error_body(405, "Method Not Allowed")
        return 200, emu.store.config()
    return 404, error_body(404, "Not Found")


def list_users_body(store: ProfileStore, params: dict[str, Any], *, app_id: str,
                    default_limit: int, last_page_token: str) -> dict[str, Any]:
    """The ``GET /2/users`` body for decoded query ``params``.

    Only the endpoint's own parameters are read (the last value of a repeated one); empty ones
    count as absent. Tokens are checked against ``app_id``; on the last page ``nextPageToken``
    follows ``last_page_token`` (one of `LAST_PAGE_TOKEN_MODES`).

    Raises:
        UnprocessableEntity: naming the first invalid parameter.
    """
    p = {k: (v[-1] if isinstance(v, list) else v) for k, v in params.items() if k in _LIST_PARAMS}
    p = {k: v for k, v in p.items() if v != ""}
    limit = _limit(p, default_limit)
    bounds = _date_bounds(p)
    if "nextPageToken" in p and "previousPageToken" in p:
        raise UnprocessableEntity(
            "Unprocessable Entity: nextPageToken and previousPageToken are mutually exclusive")
    after = (decode_page_token(app_id, "nextPageToken", p["nextPageToken"])
             if "nextPageToken" in p else None)
    before = (decode_page_token(app_id, "previousPageToken", p["previousPageToken"])
              if "previousPageToken" in p else None)
    indices = [i for i in p.get("indices", "").split(",") if i]
    affinity = [a for a in p.get("affinity", "").split(",") if a]
    matcher = affinity_matcher(indices, affinity) if indices or affinity else None
    ids: list[str] = []
    users, more_before, more_after = store.page(
        after=after, before=before, limit=limit, start_us=bounds.get("startDate"),
        end_us=bounds.get("endDate"), matcher=matcher, ids=ids)
    body: dict[str, Any] = {"users": users}
    if users and more_after:
        body["nextPageToken"] = encode_page_token(app_id, "nextPageToken", ids[-1])
    elif last_page_token == "null":
        body["nextPageToken"] = None
    elif last_page_token == "empty":
        body["nextPageToken"] = ""
    if users and more_before:
        body["previousPageToken"] = encode_page_token(
            app_id, "previousPageToken", ids[0])
    return body


def _limit(p: dict[str, str], default: int) -> int:
    if "limit" not in p:
        return default
    try:
        limit = int(p["limit"].strip())
    except ValueError:
        raise UnprocessableEntity("Unprocessable Entity: limit must be an integer") from None
    if not 1 <= limit <= 1000:
        raise UnprocessableEntity("Unprocessable Entity: limit must be between 1 and 1000")
    return limit


def _date_bounds(p: dict[str, str]) -> dict[str, int]:
    """``startDate`` / ``endDate`` of ``p`` that are present, in microseconds since the epoch."""
    bounds: dict[str, int] = {}
    for name in ("startDate", "endDate"):
        if name in p:
            try:
                bounds[name] = to_us(parse_rfc3339(p[name]))
            except ValueError:
                raise UnprocessableEntity(
                    f"Unprocessable Entity: {name} must be an RFC 3339 date-time") from None
    if "startDate" in bounds and "endDate" in bounds and bounds["startDate"] >= bounds["endDate"]:
        raise UnprocessableEntity("Unprocessable Entity: startDate must be before endDate")
    return bounds


def affinity_matcher(indices: list[str], affinity: list[str]) -> Matcher:
    """Predicate for the ``indices`` / ``affinity`` filters (every item must match).

    An ``affinity`` item is ``name`` (any value) or ``name:value``, split at the first colon.
    """
    wanted: list[tuple[str, str | None]] = []
    for item in affinity:
        name, sep, value = item.partition(":")
        wanted.append((name, value if sep else None))

    def match(profile: dict[str, Any]) -> bool:
        affs = profile.get("affinities") or []
        for index in indices:
            if not any(index in (a.get("indices") or ()) for a in affs):
                return False
        for name, value in wanted:
            if value is None:
                if not any(a.get("name") == name for a in affs):
                    return False
            elif not any(a.get("name") == name and a.get("value") == value for a in affs):
                return False
        return True

    return match


def deleted_user_body(user_id: str) -> dict[str, Any]:
    """The ``DELETE /2/users/{userID}`` body of a user just deleted (now and in 30 days)."""
    deleted_at = datetime.now(timezone.utc)
    return {
        "message": "User deleted",
        "status": 200,
        "userID": user_id,
        "deletedUntil": format_us(to_us(deleted_at + timedelta(days=30))),
        "deletedAt": format_us(to_us(deleted_at)),
    }


def _is_utf8(raw_path: str) -> bool:
    try:
        unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        return False
    return True
