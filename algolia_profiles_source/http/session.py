"""The HTTP session behind dlt's ``RESTClient``: pacing, retries and one JSON parse per response.

dlt's retrying ``Client`` covers 429/5xx/connection errors but not the API's ``x-ratelimit-reset``,
truncated bodies, jitter, or a floor under ``Retry-After: 0``. This session keeps dlt's
``RESTClient`` (paginators, auth, the raise-for-status hook with redacted URLs) and replaces only the
transport policy:

- every call first asks the shared :class:`~.rate_limit.RateGovernor` for a slot, and reports
  how long it took once sent;
- 429/421 wait for the window to reset (their own budget of waits); 5xx, connection resets,
  timeouts, truncated or unparseable bodies back off exponentially with jitter;
- a 2xx JSON body is parsed once and cached, so the paginator and the page reader do not parse
  megabytes twice; a page of ``GET /2/users`` goes straight into Arrow (see :mod:`.page`);
- an unknown host fails at once (no retry can fix a wrong region or base URL).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from dlt.sources.helpers.rest_client.redaction import sanitize_url
from requests.exceptions import (
    ChunkedEncodingError,
    ConnectionError,
    ContentDecodingError,
    HTTPError,
    Timeout,
)
from urllib3.exceptions import NameResolutionError

from .. import settings
from ..exceptions import EndpointError, ResponseFormatError, RetriesExhaustedError, find_cause
from .page import MalformedBody, parse_json, parse_users_body
from .rate_limit import RateGovernor

logger = logging.getLogger(__name__)

_TRANSIENT_ERRORS = (ConnectionError, Timeout, ChunkedEncodingError, ContentDecodingError)


@dataclass
class _Attempts:
    """The failed attempts of one request so far: throttles and other failures have budgets of their own."""

    failures: int = 0
    throttled: int = 0


class AlgoliaSession(requests.Session):
    """A ``requests.Session`` that paces, retries and parses responses for the Algolia API."""

    def __init__(
        self,
        governor: RateGovernor | None = None,
        *,
        max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
        backoff_base: float = settings.DEFAULT_BACKOFF_BASE,
        timeout: float = settings.DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.governor = governor or RateGovernor()
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.timeout = timeout
        self._sleep = sleep
        self.stats: Counter[str] = Counter()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Sends ``request`` in a slot of the governor's and returns the answer with its JSON parsed,
        waiting and sending again after a throttle or a transient failure until a budget runs out."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        attempts = _Attempts()
        while True:
            self.governor.acquire()
            self.stats["requests"] += 1
            sent, sent_at = time.monotonic(), self.governor.clock()
            try:
                response = super().send(request, **kwargs)  # runs dlt's raise-for-status hook, if set
                if response.status_code >= 400:  # RESTClient.get/request set no hook: same policy
                    raise HTTPError(f"HTTP {response.status_code}", response=response)
                self.governor.observe(response.headers, sent_at=sent_at)
                parse_started = time.thread_time()
                _parse_json_once(response)
                self.governor.record_latency(time.monotonic() - sent, len(response.content),
                                             parse_seconds=time.thread_time() - parse_started)
                return response
            except HTTPError as error:
                retry = self._retry_http_error(request, error, sent_at, attempts)
                if retry is None:
                    raise
                reason, wait = retry
            except _TRANSIENT_ERRORS as error:
                reason, wait = self._retry_transient_error(request, error, attempts)
            except MalformedBody as error:
                reason, wait = self._retry_malformed_body(request, error, attempts)
            self.stats["retries"] += 1
            logger.info("%s: %s, retrying in %.2fs", _describe(request), reason, wait)
            self._sleep(wait)

    def _retry_http_error(
        self, request: requests.PreparedRequest, error: HTTPError, sent_at: float, attempts: _Attempts
    ) -> tuple[str, float] | None:
        """Reports the error's rate-limit headers to the governor; for a status worth retrying, the
        reason and the wait before the next attempt (a throttle waits for the window's reset), else
        ``None``. Raises :class:`RetriesExhaustedError` once the throttle or failure budget is spent."""
        response = error.response
        status = response.status_code if response is not None else 0
        is_throttle = status in settings.THROTTLE_STATUSES
        reset_wait = self.governor.observe(
            response.headers if response is not None else {}, throttled=is_throttle, sent_at=sent_at
        )
        if status not in settings.RETRY_STATUSES:
            return None
        if is_throttle:
            self.stats["throttled"] += 1
            attempts.throttled += 1
            if attempts.throttled > settings.MAX_THROTTLED_WAITS:
                raise RetriesExhaustedError(
                    f"{_describe(request)} was throttled {attempts.throttled} times in a row"
                    f" (HTTP {status}): the application's rate limit is used up by other"
                    " clients; lower max_share or run later"
                ) from error
            return f"HTTP {status}", max(reset_wait or 0.0, self._backoff(attempts.throttled))
        attempts.failures += 1
        self.stats[f"http_{status}"] += 1
        self._give_up_if_exhausted(attempts.failures, request, f"HTTP {status}", error)
        return f"HTTP {status}", max(_retry_after(response), self._backoff(attempts.failures))

    def _retry_transient_error(
        self, request: requests.PreparedRequest, error: Exception, attempts: _Attempts
    ) -> tuple[str, float]:
        """The reason and the wait before the next attempt after a connection error or a timeout;
        an unknown host fails at once with :class:`EndpointError`."""
        self.governor.observe({})  # no answer, but the call is no longer in flight
        if _is_unknown_host(error):
            host = requests.utils.urlparse(request.url).hostname
            raise EndpointError(
                f"cannot resolve host {host!r}: check `region` (us or eu, the application's"
                " analytics region) or `base_url`"
            ) from None
        attempts.failures += 1
        reason = type(error).__name__
        self.stats[f"error_{reason}"] += 1
        self._give_up_if_exhausted(attempts.failures, request, reason, error)
        return reason, self._backoff(attempts.failures)

    def _retry_malformed_body(
        self, request: requests.PreparedRequest, error: MalformedBody, attempts: _Attempts
    ) -> tuple[str, float]:
        """The reason and the wait before the next attempt after a body that is not JSON;
        :class:`ResponseFormatError` once the failure budget is spent."""
        attempts.failures += 1
        self.stats["malformed_body"] += 1
        if attempts.failures >= self.max_attempts:
            raise ResponseFormatError(
                f"{_describe(request)} returned a body that is not JSON after"
                f" {attempts.failures} attempts: {error}"
            ) from None
        return "malformed body", self._backoff(attempts.failures)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: never zero, never above MAX_BACKOFF."""
        ceiling = min(settings.MAX_BACKOFF, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _give_up_if_exhausted(
        self, failures: int, request: requests.PreparedRequest, reason: str, error: Exception
    ) -> None:
        if failures >= self.max_attempts:
            raise RetriesExhaustedError(
                f"{_describe(request)} failed {failures} times (last: {reason}); the API or the"
                " network is unavailable, try again later"
            ) from error


def _parse_json_once(response: requests.Response) -> None:
    """Parses a successful body once and makes ``response.json()`` return the result."""
    if response.status_code == 204:
        raise MalformedBody("empty body")
    if urlsplit(response.url).path.rstrip("/").endswith(settings.USERS_PATH):
        parsed = parse_users_body(response.content)
    else:
        parsed = parse_json(response.content)
    response.json = lambda **_: parsed  # type: ignore[method-assign]


def _retry_after(response: requests.Response | None) -> float:
    if response is None:
        return 0.0
    value = response.headers.get("retry-after")
    try:
        return min(float(value), settings.MAX_BACKOFF) if value is not None else 0.0
    except ValueError:
        return 0.0


def _is_unknown_host(error: Exception) -> bool:
    return find_cause(error, NameResolutionError) is not None


def _describe(request: requests.PreparedRequest) -> str:
    return f"{request.method} {sanitize_url(request.url or '')}"
