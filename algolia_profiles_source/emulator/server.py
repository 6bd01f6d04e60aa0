"""HTTP server of the emulator: routing, auth, filters, cursor paging, rate limit and faults.

`Emulator` owns a `ProfileStore` and a `ThreadingHTTPServer` (HTTP/1.1 keep-alive, one daemon
thread per connection). The wire behaviour follows /work/shared/algolia-api.md; the module
docstring of the package lists the admin endpoints.
"""

from __future__ import annotations

import base64
import binascii
import math
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from .data import format_us, to_us
from .store import Matcher, ProfileStore, parse_rfc3339, valid_user_id

FAULT_KINDS: tuple[str, ...] = ("500", "503_html", "429", "reset", "truncated")
"""Injectable faults: JSON 500, load-balancer HTML 503, throttling 429, TCP reset, truncated body."""

LAST_PAGE_TOKEN_MODES: tuple[str, ...] = ("missing", "null", "empty")
"""How the last page signals the end: no ``nextPageToken`` key, ``null`` or ``""``."""

JSON_TYPE = "application/json; charset=utf-8"
HTML_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_FILTER_PARAMS = ("startDate", "endDate", "indices", "affinity", "limit",
                  "nextPageToken", "previousPageToken")


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator answered (API calls only, never admin calls).

    ``path`` is the path as sent (still percent-encoded, without the query string); ``params``
    is the decoded query string (a repeated key keeps all its values as a list). Headers are not
    recorded, and an ``x-algolia-api-key`` query parameter is dropped, so no key is ever stored.
    """

    method: str
    path: str
    params: dict[str, Any]
    status: int
    fault: str | None
    at: float


class _Unprocessable(Exception):
    """A 422 with ``message``."""


def _error(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "message": message}


class Emulator:
    """A local, faithful Advanced Personalization API v2 server with synthetic profiles.

    See the package docstring for every argument; `start` binds and returns once listening.
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
        self.store = ProfileStore(n_users, seed, self.now)
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._queued: deque[str] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.latency = 0.0
        self.set_latency(latency)
        self.set_rate_limit(rate_limit, rate_window)
        self.set_faults(rate=fault_rate, kinds=fault_kinds, seed=fault_seed)
        self.set_last_page_token(last_page_token)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Emulator:
        """Bind, listen and serve on a daemon thread; returns self once connections are accepted."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = _Server((self.host, self.port), _Handler)
        server.emulator = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"algolia-emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
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
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    # ---------------------------------------------------------------- knobs
    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the API calls served so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded API calls."""
        with self._lock:
            self._requests.clear()

    def inject(self, *kinds: str) -> None:
        """Queue faults for the next API calls, one per call, in order (before random faults)."""
        _check_kinds(kinds)
        with self._lock:
            self._queued.extend(kinds)

    def set_faults(self, rate: float | None = None, kinds: Iterable[str] | None = None,
                   seed: int | None = None) -> None:
        """Random fault injection: each API call faults with probability ``rate``.

        The kind is drawn from ``kinds`` by a generator seeded with ``seed`` (re-seeded whenever
        ``seed`` is given), so a given sequence of calls faults the same way every run.
        """
        with self._lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("fault rate must be between 0 and 1")
                self.fault_rate = float(rate)
            if kinds is not None:
                kinds = tuple(kinds)
                _check_kinds(kinds)
                self.fault_kinds = kinds
            if seed is not None or not hasattr(self, "_fault_rng"):
                self._fault_rng = random.Random(seed or 0)

    def set_rate_limit(self, limit: int, window: float) -> None:
        """Allow ``limit`` calls per fixed window of ``window`` seconds; starts a fresh window.

        Windows are aligned on the clock (like a counter keyed by ``floor(now / window)``), so with
        a whole number of seconds the integer ``x-ratelimit-reset`` header is the exact reset.
        """
        if limit < 1 or window <= 0:
            raise ValueError("rate limit and window must be positive")
        with self._lock:
            self.rate_limit, self.rate_window = int(limit), float(window)
            self._window_start, self._window_used = self._aligned(time.time()), 0

    def _aligned(self, now: float) -> float:
        return math.floor(now / self.rate_window) * self.rate_window

    def set_latency(self, seconds: float) -> None:
        """Seconds of delay added to every API response."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.latency = float(seconds)

    def set_last_page_token(self, mode: str) -> None:
        """How the last page signals the end: ``missing``, ``null`` or ``empty``."""
        if mode not in LAST_PAGE_TOKEN_MODES:
            raise ValueError(f"last_page_token must be one of {LAST_PAGE_TOKEN_MODES}")
        self.last_page_token = mode

    # ---------------------------------------------------------------- per-call helpers
    def _record(self, method: str, path: str, params: dict[str, Any], status: int,
                fault: str | None) -> None:
        with self._lock:
            self._requests.append(RequestRecord(method, path, params, status, fault, time.time()))

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._queued:
                return self._queued.popleft()
            if self.fault_rate > 0 and self.fault_kinds and self._fault_rng.random() < self.fault_rate:
                return self._fault_rng.choice(self.fault_kinds)
            return None

    def _rate_state(self, consume: bool) -> tuple[bool, dict[str, str]]:
        """Roll the window, optionally consume one call; returns (allowed, headers)."""
        with self._lock:
            now = time.time()
            if now >= self._window_start + self.rate_window:
                self._window_start, self._window_used = self._aligned(now), 0
            allowed = self._window_used < self.rate_limit
            if consume and allowed:
                self._window_used += 1
            headers = {
                "x-ratelimit-limit": str(self.rate_limit),
                "x-ratelimit-remaining": str(self.rate_limit - self._window_used),
                "x-ratelimit-reset": str(math.ceil(self._window_start + self.rate_window)),
            }
            return allowed, headers

    def _credentials_ok(self, app_id: str | None, api_key: str | None) -> bool:
        return app_id == self.app_id and api_key == self._api_key

    # ---------------------------------------------------------------- tokens
    def _token(self, direction: str, user_id: str) -> str:
        raw = orjson.dumps({"v": 1, "a": self.app_id, "d": direction, "u": user_id})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _read_token(self, param: str, token: str) -> str:
        direction = "n" if param == "nextPageToken" else "p"
        try:
            data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError, orjson.JSONDecodeError):
            data = None
        if (not isinstance(data, dict) or data.get("v") != 1 or data.get("a") != self.app_id
                or data.get("d") != direction or not isinstance(data.get("u"), str)):
            raise _Unprocessable(f"Unprocessable Entity: {param} is invalid")
        return data["u"]

    # ---------------------------------------------------------------- API handlers
    def list_users(self, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /2/users`` body for decoded ``params`` (raises `_Unprocessable`)."""
        p = {k: (v[-1] if isinstance(v, list) else v) for k, v in params.items()
             if k in _FILTER_PARAMS}
        p = {k: v for k, v in p.items() if v != ""}
        limit = self.default_limit
        if "limit" in p:
            try:
                limit = int(p["limit"].strip())
            except ValueError:
                raise _Unprocessable("Unprocessable Entity: limit must be an integer") from None
            if not 1 <= limit <= 1000:
                raise _Unprocessable("Unprocessable Entity: limit must be between 1 and 1000")
        bounds: dict[str, int] = {}
        for name in ("startDate", "endDate"):
            if name in p:
                try:
                    bounds[name] = to_us(parse_rfc3339(p[name]))
                except ValueError:
                    raise _Unprocessable(
                        f"Unprocessable Entity: {name} must be an RFC 3339 date-time") from None
        if "startDate" in bounds and "endDate" in bounds and bounds["startDate"] >= bounds["endDate"]:
            raise _Unprocessable("Unprocessable Entity: startDate must be before endDate")
        if "nextPageToken" in p and "previousPageToken" in p:
            raise _Unprocessable(
                "Unprocessable Entity: nextPageToken and previousPageToken are mutually exclusive")
        after = self._read_token("nextPageToken", p["nextPageToken"]) if "nextPageToken" in p else None
        before = (self._read_token("previousPageToken", p["previousPageToken"])
                  if "previousPageToken" in p else None)
        indices = [i for i in p.get("indices", "").split(",") if i]
        affinity = [a for a in p.get("affinity", "").split(",") if a]
        matcher = _matcher(indices, affinity) if indices or affinity else None
        users, more_before, more_after = self.store.page(
            after=after, before=before, limit=limit, start_us=bounds.get("startDate"),
            end_us=bounds.get("endDate"), matcher=matcher)
        body: dict[str, Any] = {"users": users}
        if users and more_after:
            body["nextPageToken"] = self._token("n", users[-1]["userID"])
        elif self.last_page_token == "null":
            body["nextPageToken"] = None
        elif self.last_page_token == "empty":
            body["nextPageToken"] = ""
        if users and more_before:
            body["previousPageToken"] = self._token("p", users[0]["userID"])
        return body

    def delete_user(self, user_id: str) -> dict[str, Any] | None:
        """``DELETE /2/users/{userID}`` body, or None when the user is unknown."""
        if not self.store.delete(user_id):
            return None
        deleted_at = datetime.now(timezone.utc)
        return {
            "message": "User deleted",
            "status": 200,
            "userID": user_id,
            "deletedUntil": format_us(to_us(deleted_at + timedelta(days=30))),
            "deletedAt": format_us(to_us(deleted_at)),
        }


def _check_kinds(kinds: Iterable[str]) -> None:
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad:
        raise ValueError(f"unknown fault kinds {bad}; expected some of {FAULT_KINDS}")


def _matcher(indices: list[str], affinity: list[str]) -> Matcher:
    """Predicate for the ``indices`` / ``affinity`` filters (every item must match)."""
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


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections so `stop` can close them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    emulator: Emulator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    """Routes one HTTP/1.1 request; all answers are JSON with an exact Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "AlgoliaEmulator"
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silent: the emulator never logs (requests are in `Emulator.requests`)."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    do_DELETE = do_PUT = do_POST = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # ---------------------------------------------------------------- plumbing
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = JSON_TYPE, truncate: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection or truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        # one write for head and body: separate small writes stall on Nagle + delayed ACK
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body[: len(body) // 2] if truncate else body)
        self.flush_headers()

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None,
              truncate: bool = False) -> None:
        self._send(status, orjson.dumps(payload), headers, truncate=truncate)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST and no response."""
        self.close_connection = True
        conn = self.connection
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # drop the makefile reference so close() really closes the socket
        conn.close()

    def _dispatch(self) -> None:
        emu = self.server.emulator
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._json(400, _error(400, "Invalid request body"))
            return
        raw_path, _, query = self.path.partition("?")
        if raw_path.startswith(("http://", "https://")):  # absolute-form request target
            raw_path = "/" + raw_path.split("/", 3)[-1] if raw_path.count("/") >= 3 else "/"
        params = {k: (v[0] if len(v) == 1 else v)
                  for k, v in parse_qs(query, keep_blank_values=True).items()}
        app_id = self.headers.get("x-algolia-application-id") or _single(
            params.get("x-algolia-application-id"))
        api_key = self.headers.get("x-algolia-api-key") or _single(params.get("x-algolia-api-key"))
        params.pop("x-algolia-api-key", None)
        authorized = emu._credentials_ok(app_id, api_key)
        if raw_path.startswith("/_emulator/") or raw_path == "/_emulator":
            if not authorized:
                self._json(401, _error(401, "Unauthorized"))
            else:
                self._admin(emu, raw_path, body)
            return
        self._api(emu, raw_path, params, authorized)

    # ---------------------------------------------------------------- API
    def _api(self, emu: Emulator, raw_path: str, params: dict[str, Any], authorized: bool) -> None:
        method = self.command
        if not authorized:
            _, headers = emu._rate_state(consume=False)
            self._finish_api(emu, 401, _error(401, "Unauthorized"), headers, params, None)
            return
        fault = emu._next_fault() if raw_path.startswith("/2/") else None
        if fault in ("500", "503_html", "429", "reset"):
            if emu.latency:
                time.sleep(emu.latency)
            emu._record(method, raw_path, params, 0 if fault == "reset" else int(fault[:3]), fault)
            if fault == "reset":
                self._reset()
            elif fault == "503_html":
                self._send(503, HTML_503, content_type="text/html")
            else:
                _, headers = emu._rate_state(consume=False)
                if fault == "429":
                    headers["x-ratelimit-remaining"] = "0"
                    self._json(429, _error(429, "Too Many Requests"), headers)
                else:
                    self._json(500, _error(500, "Internal Server Error"), headers)
            return
        allowed, headers = emu._rate_state(consume=True)
        if not allowed:
            self._finish_api(emu, 429, _error(429, "Too Many Requests"), headers, params, fault)
            return
        status, payload = self._route(emu, method, raw_path, params)
        self._finish_api(emu, status, payload, headers, params, fault)

    def _finish_api(self, emu: Emulator, status: int, payload: Any, headers: dict[str, str],
                    params: dict[str, Any], fault: str | None) -> None:
        if emu.latency:
            time.sleep(emu.latency)
        emu._record(self.command, self.path.partition("?")[0], params, status, fault)
        self._json(status, payload, headers, truncate=fault == "truncated")

    def _route(self, emu: Emulator, method: str, raw_path: str,
               params: dict[str, Any]) -> tuple[int, Any]:
        if raw_path in ("/2/users", "/2/users/"):
            if method != "GET":
                return 405, _error(405, "Method Not Allowed")
            try:
                return 200, emu.list_users(params)
            except _Unprocessable as exc:
                return 422, _error(422, str(exc))
        if raw_path.startswith("/2/users/"):
            user_id = unquote(raw_path[len("/2/users/"):], errors="strict") if _utf8(
                raw_path) else ""
            if method not in ("GET", "DELETE"):
                return 405, _error(405, "Method Not Allowed")
            if not valid_user_id(user_id):
                return 400, _error(400, "Invalid userID format")
            if method == "GET":
                profile = emu.store.get(user_id)
                return (200, profile) if profile is not None else (404, _error(404, "Not Found"))
            deleted = emu.delete_user(user_id)
            return (200, deleted) if deleted is not None else (404, _error(404, "Not Found"))
        if raw_path == "/2/config":
            if method != "GET":
                return 405, _error(405, "Method Not Allowed")
            return 200, emu.store.config()
        return 404, _error(404, "Not Found")

    # ---------------------------------------------------------------- admin
    def _admin(self, emu: Emulator, raw_path: str, body: bytes) -> None:
        method = self.command
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            self._json(400, _error(400, "Invalid request body"))
            return
        try:
            if raw_path == "/_emulator/users":
                if method == "GET":
                    self._json(200, emu.store.users())
                elif method == "PUT":
                    if not isinstance(data, list) or not all(isinstance(p, dict) for p in data):
                        raise ValueError("Invalid request body")
                    stored = [emu.store.upsert(p) for p in data]
                    self._json(200, {"status": 200, "upserted": len(stored)})
                else:
                    self._json(405, _error(405, "Method Not Allowed"))
            elif raw_path.startswith("/_emulator/users/"):
                if method != "DELETE":
                    self._json(405, _error(405, "Method Not Allowed"))
                elif emu.store.delete(unquote(raw_path[len("/_emulator/users/"):])):
                    self._json(200, {"status": 200, "message": "User deleted"})
                else:
                    self._json(404, _error(404, "Not Found"))
            elif raw_path == "/_emulator/faults" and method == "POST":
                data = data or {}
                if not isinstance(data, dict):
                    raise ValueError("Invalid request body")
                emu.set_faults(rate=data.get("rate"), kinds=data.get("kinds"),
                               seed=data.get("seed"))
                self._json(200, {"status": 200, "rate": emu.fault_rate,
                                 "kinds": list(emu.fault_kinds)})
            elif raw_path == "/_emulator/inject" and method == "POST":
                if not isinstance(data, dict) or not isinstance(data.get("kinds"), list):
                    raise ValueError("Invalid request body")
                emu.inject(*data["kinds"])
                self._json(200, {"status": 200, "queued": len(data["kinds"])})
            elif raw_path == "/_emulator/requests":
                if method == "GET":
                    self._json(200, [asdict(r) for r in emu.requests])
                elif method == "DELETE":
                    emu.clear_requests()
                    self._json(200, {"status": 200})
                else:
                    self._json(405, _error(405, "Method Not Allowed"))
            else:
                self._json(404, _error(404, "Not Found"))
        except (ValueError, TypeError) as exc:
            self._json(400, _error(400, str(exc) or "Invalid request body"))


def _single(value: Any) -> str | None:
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def _utf8(raw_path: str) -> bool:
    try:
        unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        return False
    return True
