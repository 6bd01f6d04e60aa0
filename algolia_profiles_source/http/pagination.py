"""dlt's JSON cursor paginator for ``nextPageToken``, with guards against walks that never end.

``JSONResponseCursorPaginator`` already stops on a missing, ``null`` or empty token and re-sends the
original parameters with each page; it has no guard against a server that repeats a token or keeps
answering empty pages with a token. This subclass adds both. (The run's
page cap, ``max_pages``, is the walk's: it counts the pages of every window.)
"""

from __future__ import annotations

from typing import Any

from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import Request, Response

from .. import settings
from ..exceptions import PaginationError


class NextPageTokenPaginator(JSONResponseCursorPaginator):
    """Follows ``nextPageToken`` until it is missing, ``null`` or ``""``; fails on a loop."""

    def __init__(self) -> None:
        super().__init__(cursor_path="nextPageToken", cursor_param="nextPageToken")
        self.pages = 0
        self._empty_in_a_row = 0
        self._seen_tokens: set[int] = set()

    def init_request(self, request: Request) -> None:
        self.pages = 0
        self._empty_in_a_row = 0
        self._seen_tokens = set()
        super().init_request(request)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        self.pages += 1
        token = self._next_reference
        if token is None:
            return
        if not isinstance(token, str):
            raise PaginationError(f"nextPageToken must be a string, got {type(token).__name__}")
        # a hash keeps memory flat on long walks; a collision would only end the walk with an error
        key = hash(token)
        if key in self._seen_tokens:
            raise PaginationError(
                f"the API returned nextPageToken {token[:40]!r} twice (page {self.pages}): the walk"
                " would never end; report this to Algolia support"
            )
        self._seen_tokens.add(key)
        body = response.json()
        users = body.get("users") if isinstance(body, dict) else None
        self._empty_in_a_row = self._empty_in_a_row + 1 if users is None or len(users) == 0 else 0
        if self._empty_in_a_row >= settings.MAX_CONSECUTIVE_EMPTY_PAGES:
            raise PaginationError(
                f"the API returned {self._empty_in_a_row} empty pages in a row, each with a"
                " nextPageToken: stopping instead of looping"
            )
