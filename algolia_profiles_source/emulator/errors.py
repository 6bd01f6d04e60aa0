"""Error answers shared by the API and admin routes.

Algolia answers every error with the same JSON body, ``{"status": <code>, "message": <text>}``;
parameter checks signal a 422 by raising `UnprocessableEntity`.
"""

from __future__ import annotations

from typing import Any


class UnprocessableEntity(Exception):
    """A request parameter is invalid: answered with a 422 whose message is ``str(exc)``."""


def error_body(status: int, message: str) -> dict[str, Any]:
    """Algolia's JSON error body."""
    return {"status": status, "message": message}
