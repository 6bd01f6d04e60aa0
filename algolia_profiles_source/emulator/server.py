"""`Emulator`: the emulator's lifecycle (start, stop, address) and its settings.

It owns the `ProfileStore`, the fault schedule, the rate limiter and the request log, and serves
them over an `EmulatorHTTPServer` (HTTP/1.1 keep-alive, one daemon thread per connection). The
package docstring describes the endpoints and their behaviour.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from .api_routes import LAST_PAGE_TOKEN_MODES, deleted_user_body, list_users_body
from .faults import FAULT_KINDS, FaultSchedule
from .http_handler import EmulatorHTTPServer, RequestHandler
from .rate_limit import FixedWindowRateLimiter
from .request_log import RequestLog, RequestRecord
from .store import ProfileStore


class Emulator:
    """A local Advanced Personalization API v2 server with synthetic profiles.

    Args:
        n_users: number of generated profiles.
        seed: seed of the generated profiles (same seed, same profiles).
        app_id: application ID every call must send.
        api_key: API key every call must send; never logged, echoed or recorded.
        host: address to listen on.
        port: port to listen on; 0 picks a free one (read `port` once started).
        now: aware instant the generated data is relative to; defaults to the current second.
        latency: seconds added to every API response.
        rate_limit: API calls allowed per window.
        rate_window: window length in seconds.
        fault_rate: probability that an authorized ``/2/*`` call gets a random fault.
        fault_kinds: kinds random faults are drawn from (some of `FAULT_KINDS`).
        fault_seed: seed of the random fault draws.
        last_page_token: how the last page signals the end (one of `LAST_PAGE_TOKEN_MODES`).
        default_limit: page size when a call sends no ``limit``.
        batch_shape: how profiles share timestamps, ``daily`` recompute batches or
            ``large_batches`` (see `SyntheticData`).
        prerender: serialize every profile once at start (see `ProfileStore.prerender`), so that
            pages are served faster than a client reads them: for benchmarks of the client.

    Raises:
        ValueError: when ``now`` is naive, ``n_users`` is negative, or a setting is out of range
            (see the ``set_*`` methods).

    `start` binds and serves; used as a context manager, it is started and stopped around the
    block. It satisfies `EmulatorState`, which lists what the request handler and the routes use
    of it (the store, the ``fault_schedule``, the ``rate_limiter``, the ``request_log``, and some
    settings and methods).
    """

    def __init__(
        self,
        n_users: int = 1000,
        seed: int = 42,
        app_id: str = "demo-app",
        api_key: str = "demo-key",
        host: str = "127.0.0.1",
        port: int = 0,
        now: datetime | None = None,
        latency: float = 0.0,
        rate_limit: int = 500,
        rate_window: float = 60.0,
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        fault_seed: int = 0,
        last_page_token: str = "missing",
        default_limit: int = 10,
        batch_shape: str = "daily",
        prerender: bool = False,
    ) -> None:
        if now is None:
            now = datetime.now(timezone.utc).replace(microsecond=0)
        elif now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        self.app_id = app_id
        self._api_key = api_key
        self.host = host
        self.port = port
        self.now = now.astimezone(timezone.utc)
        self.default_limit = default_limit
        self.store = ProfileStore(n_users, seed, self.now, batch_shape)
        if prerender:
            self.store.prerender()
        self.request_log = RequestLog()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.latency = 0.0
        self.set_latency(latency)
        self.rate_limiter = FixedWindowRateLimiter(rate_limit, rate_window)
        self.fault_schedule = FaultSchedule(fault_rate, fault_kinds, fault_seed)
        self.set_last_page_token(last_page_token)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Emulator:
        """Bind, listen and serve on a daemon thread; returns self.

        Connections can be made as soon as it returns: the socket already listens.

        Raises:
            RuntimeError: when the emulator is already started.
        """
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = EmulatorHTTPServer((self.host, self.port), RequestHandler)
        server.emulator = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"algolia-emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and shut down every open connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the server (the port is known once started)."""
        return f"http://{self.host}:{self.port}"

    def credentials_ok(self, app_id: str | None, api_key: str | None) -> bool:
        """Whether a call sent this emulator's application ID and API key."""
        return app_id == self.app_id and api_key == self._api_key

    # ---------------------------------------------------------------- recorded calls
    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the API calls served so far, oldest first."""
        return self.request_log.snapshot()

    def clear_requests(self) -> None:
        """Forget the recorded API calls."""
        self.request_log.clear()

    # ---------------------------------------------------------------- settings
    @property
    def fault_rate(self) -> float:
        """Probability that an API call without a queued fault gets a random one."""
        return self.fault_schedule.rate

    @property
    def fault_kinds(self) -> tuple[str, ...]:
        """Kinds random faults are drawn from."""
        return self.fault_schedule.kinds

    def inject(self, *kinds: str) -> None:
        """Queue faults for the next authorized ``/2/*`` calls, one per call, in order.

        Queued faults come before random ones.

        Raises:
            ValueError: when a kind is not one of `FAULT_KINDS` (then none is queued).
        """
        self.fault_schedule.queue(kinds)

    def set_faults(self, rate: float | None = None, kinds: Iterable[str] | None = None,
                   seed: int | None = None) -> None:
        """Random fault injection: each authorized ``/2/*`` call faults with probability ``rate``.

        The kind is drawn from ``kinds`` by a generator seeded with ``seed`` (re-seeded whenever
        ``seed`` is given), so a given sequence of calls faults the same way every run. Arguments
        left None keep their current value.

        Raises:
            ValueError: when ``rate`` is outside [0, 1] or a kind is unknown.
        """
        self.fault_schedule.configure(rate=rate, kinds=kinds, seed=seed)

    @property
    def rate_limit(self) -> int:
        """API calls allowed per window."""
        return self.rate_limiter.limit

    @property
    def rate_window(self) -> float:
        """Length of a rate-limit window in seconds."""
        return self.rate_limiter.window

    def set_rate_limit(self, limit: int, window: float) -> None:
        """Allow ``limit`` calls per fixed window of ``window`` seconds; starts a fresh window.

        Windows are aligned on the clock (like a counter keyed by ``floor(now / window)``), so with
        a whole number of seconds the integer ``x-ratelimit-reset`` header is the exact reset.

        Raises:
            ValueError: when ``limit`` < 1 or ``window`` <= 0.
        """
        self.rate_limiter.configure(limit, window)

    def set_latency(self, seconds: float) -> None:
        """Seconds of delay added to every API response.

        Raises:
            ValueError: when ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.latency = float(seconds)

    def set_last_page_token(self, mode: str) -> None:
        """How the last page signals the end: ``missing``, ``null`` or ``empty``.

        Raises:
            ValueError: when ``mode`` is not one of `LAST_PAGE_TOKEN_MODES`.
        """
        if mode not in LAST_PAGE_TOKEN_MODES:
            raise ValueError(f"last_page_token must be one of {LAST_PAGE_TOKEN_MODES}")
        self.last_page_token = mode

    # ---------------------------------------------------------------- API bodies
    def list_users(self, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /2/users`` body for decoded query ``params``.

        Raises:
            UnprocessableEntity: naming the first invalid parameter (answered with a 422).
        """
        return list_users_body(self.store, params, app_id=self.app_id,
                               default_limit=self.default_limit,
                               last_page_token=self.last_page_token)

    def delete_user(self, user_id: str) -> dict[str, Any] | None:
        """Delete ``user_id``: the ``DELETE /2/users/{userID}`` body, or None when it is unknown."""
        if not self.store.delete(user_id):
            return None
        return deleted_user_body(user_id)
