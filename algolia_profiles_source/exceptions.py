"""Errors raised by the Algolia profiles source, grouped by what the caller should do.

- :class:`ConfigurationError` and its subclasses: the run cannot succeed until a setting is fixed
  (credentials, region, base URL, dates, page size, filters). Never retried.
- :class:`ApiError` and its subclasses: the API misbehaved or stayed unavailable after every retry
  (throttling, 5xx, network), or sent something that is not a page of profiles.

Messages never contain the API key.
"""

from __future__ import annotations

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
