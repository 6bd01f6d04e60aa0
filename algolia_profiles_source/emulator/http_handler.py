"""The emulator's HTTP layer: a threading server that tracks its connections, and the handler.

The handler reads one request at a time on an HTTP/1.1 keep-alive connection, checks the
credentials, and passes admin calls to `route_admin_call` and API calls to `route_api_call`,
applying faults, the rate limit, latency and recording around the API calls.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import orjson

from .admin_routes import route_admin_call
from .api_routes import route_api_call
from .contract import EmulatorState
from .errors import error_body
from .faults import FAULTS_REPLACING_THE_ANSWER, HTML_503

JSON_TYPE = "application/json; charset=utf-8"


class EmulatorHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections so `Emulator.stop` can end them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    emulator: EmulatorState

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, conn: socket.socket, add: bool) -> None:
        """Remember (``add``) or forget an open connection."""
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_connections(self) -> None:
        """Shut down both directions of every open connection, so their handlers end."""
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class RequestHandler(BaseHTTPRequestHandler):
    """Answers the requests of one connection, each with a Content-Length (never chunked).

    Answers are JSON, except the HTML of the ``503_html`` fault; the ``truncated`` fault sends
    half of the body its Content-Length announces, and the ``reset`` fault no answer at all.
    """

    protocol_version = "HTTP/1.1"
    server_version = "AlgoliaEmulator"
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: EmulatorHTTPServer

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
        """Silent: the emulator never logs (API calls are in `Emulator.requests`)."""

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
            self._json(400, error_body(400, "Invalid request body"))
            return
        raw_path, _, query = self.path.partition("?")
        if raw_path.startswith(("http://", "https://")):  # absolute-form request target
            raw_path = "/" + raw_path.split("/", 3)[-1] if raw_path.count("/") >= 3 else "/"
        params = {k: (v[0] if len(v) == 1 else v)
                  for k, v in parse_qs(query, keep_blank_values=True).items()}
        # Algolia also accepts the credentials as query parameters
        app_id = self.headers.get("x-algolia-application-id") or _last(
            params.get("x-algolia-application-id"))
        api_key = self.headers.get("x-algolia-api-key") or _last(params.get("x-algolia-api-key"))
        params.pop("x-algolia-api-key", None)
        authorized = emu.credentials_ok(app_id, api_key)
        if raw_path.startswith("/_emulator/") or raw_path == "/_emulator":
            if not authorized:
                self._json(401, error_body(401, "Unauthorized"))
            else:
                self._admin(emu, raw_path, body)
            return
        self._api(emu, raw_path, params, authorized)

    # ---------------------------------------------------------------- API
    def _api(self, emu: EmulatorState, raw_path: str, params: dict[str, Any],
             authorized: bool) -> None:
        if not authorized:
            _, headers = emu.rate_limiter.check(consume=False)
            self._finish_api(emu, 401, error_body(401, "Unauthorized"), headers, params, None)
            return
        fault = emu.fault_schedule.next_fault() if raw_path.startswith("/2/") else None
        if fault in FAULTS_REPLACING_THE_ANSWER:
            self._answer_fault(emu, fault, raw_path, params)
            return
        allowed, headers = emu.rate_limiter.check(consume=True)
        if not allowed:
            self._finish_api(emu, 429, error_body(429, "Too Many Requests"), headers, params, fault)
            return
        status, payload = route_api_call(emu, self.command, raw_path, params)
        self._finish_api(emu, status, payload, headers, params, fault)

    def _answer_fault(self, emu: EmulatorState, fault: str, raw_path: str,
                      params: dict[str, Any]) -> None:
        """Answer with ``fault`` instead of the call; it consumes no quota."""
        if emu.latency:
            time.sleep(emu.latency)
        emu.request_log.record(self.command, raw_path, params,
                               0 if fault == "reset" else int(fault[:3]), fault)
        if fault == "reset":
            self._reset()
        elif fault == "503_html":
            # a load balancer knows nothing of the API's rate-limit headers
            self._send(503, HTML_503, content_type="text/html")
        else:
            _, headers = emu.rate_limiter.check(consume=False)
            if fault == "429":
                headers["x-ratelimit-remaining"] = "0"
                self._json(429, error_body(429, "Too Many Requests"), headers)
            else:
                self._json(500, error_body(500, "Internal Server Error"), headers)

    def _finish_api(self, emu: EmulatorState, status: int, payload: Any,
                    headers: dict[str, str], params: dict[str, Any], fault: str | None) -> None:
        if emu.latency:
            time.sleep(emu.latency)
        emu.request_log.record(self.command, self.path.partition("?")[0], params, status, fault)
        self._json(status, payload, headers, truncate=fault == "truncated")

    # ---------------------------------------------------------------- admin
    def _admin(self, emu: EmulatorState, raw_path: str, body: bytes) -> None:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            self._json(400, error_body(400, "Invalid request body"))
            return
        try:
            status, payload = route_admin_call(emu, self.command, raw_path, data)
            self._json(status, payload)
        except (ValueError, TypeError) as exc:
            self._json(400, error_body(400, str(exc) or "Invalid request body"))


def _last(value: Any) -> str | None:
    """A query parameter's value: the last one when it is repeated."""
    if isinstance(value, list):
        return value[-1] if value else None
    return value
