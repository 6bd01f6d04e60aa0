"""Algolia's two-header authentication as a dlt auth spec.

dlt's ``APIKeyAuth`` sets a single header, and headers passed to ``RESTClient(headers=...)`` are
printed (key included) by its DEBUG request log. Setting both headers here, at request preparation,
keeps the key out of that log line.
"""

from __future__ import annotations

from typing import Any

from dlt.common.configuration.specs import configspec
from dlt.common.typing import TSecretStrValue
from dlt.sources.helpers.rest_client.auth import AuthConfigBase
from requests import PreparedRequest

APPLICATION_ID_HEADER = "x-algolia-application-id"
API_KEY_HEADER = "x-algolia-api-key"


@configspec
class AlgoliaAuth(AuthConfigBase):
    """Sends ``x-algolia-application-id`` and ``x-algolia-api-key`` on every request."""

    application_id: str = None
    api_key: TSecretStrValue = None

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers[APPLICATION_ID_HEADER] = self.application_id
        request.headers[API_KEY_HEADER] = self.api_key
        return request

    def __repr__(self) -> str:  # never show the key, not even in a debugger or a trace
        return f"AlgoliaAuth(application_id={self.application_id!r}, api_key='***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("AlgoliaAuth holds a secret and is not serializable")
