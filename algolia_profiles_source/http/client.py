"""A small client for the Advanced Personalization API v2, built on dlt's ``RESTClient``.

Algolia ships no Python client for this API. :class:`ProfilesClient` reads ``GET /2/users`` page by
page and ``GET /2/config``, and turns HTTP failures into the errors of :mod:`..exceptions` with a
message that says what to fix. The API key travels in a header set by :class:`.auth.AlgoliaAuth`
and appears in no message.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from collections.abc import Iterator, Mapping
from urllib.parse import quote

from dlt.sources.helpers.rest_client import RESTClient
from requests.exceptions import HTTPError

from .. import settings
from .auth import AlgoliaAuth
from ..exceptions import (
    ApiError,
    AuthenticationError,
    EndpointError,
    InvalidRequestError,
    ResponseFormatError,
    RetriesExhaustedError,
)
from .page import Page, is_page
from .pagination import NextPageTokenPaginator
from .rate_limit import RateGovernor
from .session import AlgoliaSession


class ProfilesClient:
    """Reads profiles and the personalization config of one Algolia application."""

    def __init__(
        self,
        base_url: str,
        application_id: str,
        api_key: str,
        *,
        region: str | None = None,
        governor: RateGovernor | None = None,
        max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
        backoff_base: float = settings.DEFAULT_BACKOFF_BASE,
        timeout: float = settings.DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.application_id = application_id
        self.region = region
        self._settings = dict(
            region=region, max_attempts=max_attempts, backoff_base=backoff_base, timeout=timeout
        )
        self._api_key = api_key
        self._clones: list[ProfilesClient] = []
        self.session = AlgoliaSession(
            governor, max_attempts=max_attempts, backoff_base=backoff_base, timeout=timeout
        )
        self._rest = RESTClient(
            base_url=self.base_url,
            auth=AlgoliaAuth(application_id=application_id, api_key=api_key),
            session=self.session,
            data_selector="users",
        )

    @property
    def stats(self) -> Mapping[str, int]:
        """Counters of this client's HTTP calls (and its clones'): requests, retries, throttled..."""
        total = Counter(self.session.stats)
        for clone in self._clones:
            total.update(clone.session.stats)
        return total

    @property
    def governor(self) -> RateGovernor:
        """The rate governor pacing this client (shared with its clones)."""
        return self.session.governor

    def clone(self) -> ProfilesClient:
        """A client with its own HTTP session sharing this one's rate governor (for one thread)."""
        twin = ProfilesClient(
            self.base_url, self.application_id, self._api_key,
            governor=self.governor, **self._settings,
        )
        self._clones.append(twin)
        return twin

    def __repr__(self) -> str:
        return f"ProfilesClient(base_url={self.base_url!r}, application_id={self.application_id!r})"

    def iter_user_pages(self, params: Mapping[str, Any]) -> Iterator[Page]:
        """Yields the profiles of each page of ``GET /2/users`` for ``params`` (see :mod:`.page`)."""
        paginator = NextPageTokenPaginator()
        try:
            for page in self._rest.paginate(
                settings.USERS_PATH, params=dict(params), paginator=paginator
            ):
                body = page.response.json()
                if not isinstance(body, dict) or not is_page(body.get("users")):
                    raise ResponseFormatError(
                        f"GET {settings.USERS_PATH} page {paginator.pages} is not shaped like"
                        f" {{\"users\": [...]}} (got {_shape(body)}): is base_url pointing at the"
                        " Advanced Personalization API?"
                    )
                self.session.stats["pages"] += 1
                self.session.stats["profiles_read"] += len(body["users"])
                yield body["users"]
        except HTTPError as error:
            raise self._explain(error, settings.USERS_PATH, params) from None

    def get_config(self) -> dict[str, Any]:
        """``GET /2/config``: the personalization configuration of every index."""
        return self._get_json(settings.CONFIG_PATH)

    def get_user(self, user_id: str) -> dict[str, Any]:
        """``GET /2/users/{userID}``, with ``/``, ``+`` and ``=`` percent-encoded."""
        return self._get_json(f"{settings.USERS_PATH}/{quote(user_id, safe='')}")

    def _get_json(self, path: str) -> dict[str, Any]:
        try:
            body = self._rest.get(path).json()
        except HTTPError as error:
            raise self._explain(error, path, {}) from None
        if not isinstance(body, dict):
            raise ResponseFormatError(f"GET {path} returned {_shape(body)}, expected an object")
        return body

    def _explain(self, error: HTTPError, path: str, params: Mapping[str, Any]) -> Exception:
        """Maps an HTTP error to an exception whose message says what to fix."""
        response = error.response
        status = response.status_code if response is not None else 0
        message = _server_message(response)
        where = f"{self.base_url}{path}"
        if status in (401, 403):
            region = f"region {self.region!r}" if self.region else f"base_url {self.base_url!r}"
            return AuthenticationError(
                f"Algolia refused the credentials ({status} {message}) for application"
                f" {self.application_id!r} at {self.base_url}. Check that application_id and"
                " api_key are right (sources.algolia_profiles.application_id/api_key in"
                " .dlt/secrets.toml, or SOURCES__ALGOLIA_PROFILES__APPLICATION_ID/API_KEY), that"
                f" the key has the ACLs {', '.join(settings.ACLS)}, and that {region} is the"
                " application's analytics region (us or eu)."
            )
        if status in (400, 422):
            sent = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no parameters"
            return InvalidRequestError(
                f"GET {path} was refused ({status} {message}); parameters sent: {sent}"
            )
        if status == 404:
            return EndpointError(
                f"{where} answered 404 {message}: the Advanced Personalization API is served at"
                f" {settings.HOST_TEMPLATE.format(region='us|eu')}; check `region` or `base_url`"
            )
        if status >= 500:
            return RetriesExhaustedError(f"GET {where} failed: HTTP {status} {message}")
        return ApiError(f"GET {where} failed: HTTP {status} {message}")


def _server_message(response: Any) -> str:
    if response is None:
        return ""
    try:
        body = response.json()
    except Exception:
        return (response.reason or "").strip()
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return (response.reason or "").strip()


def _shape(body: Any) -> str:
    if isinstance(body, dict):
        return "an object with keys " + ", ".join(sorted(map(str, body))[:8])
    return f"a {type(body).__name__}"
