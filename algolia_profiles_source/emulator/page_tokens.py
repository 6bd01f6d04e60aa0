"""Opaque, stateless page tokens of ``GET /2/users``.

A token is unpadded URL-safe base64 of ``{"v": 1, "a": app_id, "d": "n" | "p", "u": userID}``:
it carries only the cursor (the userID the page ends or starts at), its direction and the
application it belongs to, so filters must be sent again with every page, and a page stays keyed
by userID whatever changes between two calls.
"""

from __future__ import annotations

import base64
import binascii

import orjson

from .errors import UnprocessableEntity


def encode_page_token(app_id: str, param: str, user_id: str) -> str:
    """The ``param`` (``nextPageToken`` or ``previousPageToken``) for a cursor at ``user_id``."""
    raw = orjson.dumps({"v": 1, "a": app_id, "d": _direction(param), "u": user_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(app_id: str, param: str, token: str) -> str:
    """The cursor userID of ``token`` sent as ``param``.

    Raises:
        UnprocessableEntity: when ``token`` is malformed, was made for another application or
            for the other direction.
    """
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        data = None
    if (not isinstance(data, dict) or data.get("v") != 1 or data.get("a") != app_id
            or data.get("d") != _direction(param) or not isinstance(data.get("u"), str)):
        raise UnprocessableEntity(f"Unprocessable Entity: {param} is invalid")
    return data["u"]


def _direction(param: str) -> str:
    return "n" if param == "nextPageToken" else "p"
