"""Errors raised by the Algolia profiles source, grouped by what the caller should do.

- :class:`ConfigurationError` and its subclasses: the run cannot succeed until a setting is fixed
  (credentials, region, base URL, dates, page size, filters). Never retried.
- :class:`ApiError` and its subclasses: the API misbehaved or stayed unavailable after every retry
  (throttling, 5xx, network), or sent something that is not a page of profiles.

Messages never contain the API key.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "AlgoliaProfilesError",
    "ConfigurationError",
    "AuthenticationError",
    "InvalidRequestError",
    "EndpointError",
    "ApiError",
    "RetriesExhaustedError",
    "ResponseFormatError",
    "PaginationError",
    "PipelineBusyError",
    "DatabaseBusyError",
    "TableNotFoundError",
    "NothingLoadedError",
]


class AlgoliaProfilesError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(AlgoliaProfilesError, ValueError):
    """A setting is wrong or missing; the message says which and how to fix it."""


class AuthenticationError(ConfigurationError):
    """The API answered 401/403: wrong application ID, wrong key, missing ACLs or wrong region."""


class InvalidRequestError(ConfigurationError):
    """The API refused the request's parameters (400/422)."""


class EndpointError(ConfigurationError):
    """The host does not serve the API: unknown host, wrong region or base URL (404)."""


class ApiError(AlgoliaProfilesError):
    """The API failed in a way that fixing the configuration would not cure."""


class RetriesExhaustedError(ApiError):
    """Throttling, server errors or network faults persisted through every retry."""


class ResponseFormatError(ApiError):
    """A response was not JSON, or not shaped like the documented response."""


class PaginationError(ApiError):
    """The cursor walk did not make progress (a repeated token, endless empty pages)."""


class PipelineBusyError(AlgoliaProfilesError):
    """Another load of the same pipeline is running; its state must not be written twice."""


class DatabaseBusyError(AlgoliaProfilesError):
    """The DuckDB file is held by another process (DuckDB lets one process at a time write to a file)."""


class NothingLoadedError(ConfigurationError):
    """A command that reads what a load wrote found nothing loaded where it looked."""


class TableNotFoundError(ConfigurationError):
    """A table to read is not in the destination (not loaded or not built yet)."""

    def __init__(self, table: str, where: str) -> None:
        super().__init__(f"table {table!r} is not in {where}")
        self.table = table


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then everything it wraps, depth first, each once.

    Followed: ``__cause__`` and ``__context__``; dlt's step errors keep the original in
    ``exception``; urllib3 and requests keep theirs in ``reason`` or as the first argument.
    """
    seen: set[int] = set()
    stack: list[object] = [error]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        first_arg = current.args[0] if current.args else None
        wrapped = [current.__cause__, current.__context__, getattr(current, "exception", None),
                   getattr(current, "reason", None), first_arg]
        stack.extend(reversed(wrapped))


def find_cause(error: BaseException, kind: type | tuple[type, ...]) -> BaseException | None:
    """The first of :func:`causes` that is a ``kind``, or None."""
    return next((cause for cause in causes(error) if isinstance(cause, kind)), None)
