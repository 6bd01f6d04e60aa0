"""A throwaway BigQuery emulator (bqemulator, DuckDB-backed, REST on loopback) for the tests.

bqemulator pins ``sqlglot<30.12`` and ``duckdb 2.x``, which conflict with the project's pins, so it
lives in ITS OWN virtualenv: ``~/.cache/algolia-profiles-tests/bqemulator-<version>`` (under
``$XDG_CACHE_HOME`` when set; ``ALGOLIA_PROFILES_BQEMULATOR_VENV`` overrides the folder), created
with pip on first use (~1.5 min, needs the package registry) and reused by later runs. A marker file
records the requirements it was built with; a folder without it (an interrupted install) is rebuilt.

``bigquery_endpoint`` (session fixture) starts the server with ``bqemulator_launcher.py`` (which
disables bqemulator's download of DuckDB's ``spatial`` extension, see there) on 127.0.0.1 on free
ports, polls ``/readyz`` until it answers, yields ``http://127.0.0.1:PORT`` and stops the process at
the end of the session. ``bigquery_client`` yields a ``google.cloud.bigquery.Client`` on it
(anonymous credentials). Tests talk to it only through the official client.

Without the client library, or when the emulator cannot be installed or started, the tests using
it are skipped with the reason (failed when ``CI`` is set).

Run ``python -m tests.warehouses.bigquery_server`` to start one by hand (Enter stops it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.availability import unavailable

VERSION = "1.4.0"
# numpy: DuckDB needs it to hand bqemulator query results ("'numpy' is required for this
# operation"); bqemulator lists it only in its `all` extra
# sqlglot and duckdb pinned to the versions measured (bqemulator allows sqlglot>=30.9,<30.12, duckdb>=1.0):
# its SQL translation depends on both
REQUIREMENTS = [f"bqemulator=={VERSION}", "sqlglot==30.11.0", "duckdb==2.0.1", "numpy>=1.26"]
PROJECT = "algolia-profiles-test"
VENV_ENV = "ALGOLIA_PROFILES_BQEMULATOR_VENV"
LAUNCHER = Path(__file__).with_name("bqemulator_launcher.py")
INSTALL_TIMEOUT = 900.0  # seconds; a cold install takes ~1.5 min
START_TIMEOUT = 60.0  # seconds; a start takes ~5 s (imports) on a busy 2-core machine
_MARKER = ".algolia-profiles-installed"


class BigQueryUnavailable(RuntimeError):
    """The emulator cannot be installed or started here; the message says why."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "algolia-profiles-tests"


def venv_dir() -> Path:
    override = os.environ.get(VENV_ENV)
    return Path(override) if override else cache_root() / f"bqemulator-{VERSION}"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _run(argv: List[str], timeout: float) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BigQueryUnavailable(f"`{' '.join(argv)}` did not finish in {timeout:.0f} s") from None
    except OSError as error:
        raise BigQueryUnavailable(f"`{' '.join(argv)}` could not run: {error}") from None
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise BigQueryUnavailable(f"`{' '.join(argv)}` failed (exit {done.returncode}): {output}")


def ensure_venv() -> Path:
    """bqemulator's virtualenv, created (under a lock, so parallel sessions wait) if missing."""
    venv = venv_dir()
    marker = venv / _MARKER
    wanted = json.dumps(REQUIREMENTS)
    if marker.is_file() and marker.read_text() == wanted and _venv_python(venv).exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.is_file() and marker.read_text() == wanted and _venv_python(venv).exists():
                return venv  # another session built it while we waited
            started = time.monotonic()
            print(f"\ninstalling {' '.join(REQUIREMENTS)} into {venv} (once)", file=sys.stderr)
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
            _run([sys.executable, "-m", "venv", "--clear", str(venv)], timeout=120)
            _run([str(_venv_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  *REQUIREMENTS], timeout=INSTALL_TIMEOUT)
            marker.write_text(wanted)
            print(f"bqemulator installed in {time.monotonic() - started:.1f} s", file=sys.stderr)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return venv


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.root = tempfile.mkdtemp(prefix="algolia-bqemulator-")
        self.log = os.path.join(self.root, "server.log")
        self.process: Optional[subprocess.Popen] = None
        self.url = ""

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                text = f.read().splitlines()[-lines:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(line[:500] for line in text) if text else ""

    def start(self) -> str:
        for attempt in range(3):  # a free port may be taken between probing and binding
            rest, grpc = _free_port(), _free_port()
            env: Dict[str, str] = {
                **os.environ,
                # best-effort INSTALL avro otherwise: a download attempt (and a 3 s wait) offline
                "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
                "BQEMU_LOG_LEVEL": "warning",
                "BQEMU_LOG_FORMAT": "console",
                "BQEMU_TRACING_ENABLED": "false",
                # uploaded load-job files (default: <system tmp>/bqemu_uploads, shared)
                "BQEMU_UPLOAD_STAGING_DIR": os.path.join(self.root, "uploads"),
            }
            argv = [str(_venv_python(self.venv)), str(LAUNCHER), "start", "--rest-host", "127.0.0.1",
                    "--rest-port", str(rest), "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc),
                    "--ephemeral", "--project", PROJECT]
            with open(self.log, "ab") as log:
                # cwd: bqemulator reads a .bqemu.toml from its working directory
                self.process = subprocess.Popen(argv, cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT)
            self.url = f"http://127.0.0.1:{rest}"
            try:
                self.wait_until_ready(time.monotonic() + START_TIMEOUT)
                return self.url
            except BigQueryUnavailable:
                self.stop()
                if attempt == 2 or "address already in use" not in self.log_tail().lower():
                    raise
        raise AssertionError("unreachable")

    def wait_until_ready(self, deadline: float) -> None:
        pause = 0.05
        last: Any = None
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise BigQueryUnavailable(
                    f"bqemulator exited with {self.process.returncode} while starting{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
                    last = response.status
            except (urllib.error.URLError, OSError) as error:
                last = error
            if time.monotonic() >= deadline:
                raise BigQueryUnavailable(f"bqemulator at {self.url} not ready: {last}{self.log_tail()}")
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: bqemulator shuts down cleanly
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def bigquery_emulator() -> Iterator[str]:
    """Yields the REST endpoint of a fresh bqemulator; raises ``BigQueryUnavailable`` on failure."""
    server = _Server(ensure_venv())
    try:
        yield server.start()
    finally:
        server.cleanup()


def client(endpoint: str) -> Any:
    """A BigQuery client on the emulator (anonymous credentials, project ``PROJECT``)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=endpoint)
    )


# One server per test session, shared by every module that imports the fixture.
_shared: Optional[str] = None
_failure: Optional[str] = None


@pytest.fixture(scope="session")
def bigquery_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a bqemulator for the whole session (see the module docstring)."""
    global _shared, _failure
    if _shared is not None:
        yield _shared
        return
    try:
        import google.cloud.bigquery  # noqa: F401
    except ImportError as error:
        unavailable("the BigQuery emulator", f"{error}: pip install 'dlt[bigquery]>=1.31,<1.32'")
    if _failure is not None:
        unavailable("the BigQuery emulator", _failure)
    started = time.monotonic()
    server = bigquery_emulator()
    try:
        url = server.__enter__()
    except BigQueryUnavailable as error:
        _failure = str(error)
    if _failure is not None:  # reported outside the except block: no chained traceback
        unavailable("the BigQuery emulator", _failure)
    print(f"\nbqemulator ready at {url} in {time.monotonic() - started:.2f} s", file=sys.stderr)
    _shared = url
    try:
        yield url
    finally:
        _shared = None
        server.__exit__(None, None, None)


@pytest.fixture
def bigquery_client(bigquery_endpoint: str) -> Iterator[Any]:
    bq = client(bigquery_endpoint)
    try:
        yield bq
    finally:
        bq.close()


def dlt_credentials() -> Any:
    """Credentials for dlt's bigquery destination: anonymous, project ``PROJECT``.

    dlt's credential specs refuse ``AnonymousCredentials`` as a native value (they take a service
    account or OAuth credentials), so the anonymous ones are set as the spec's default credentials,
    which is where dlt keeps credentials it found in the environment."""
    from dlt.common.configuration.specs import GcpServiceAccountCredentials
    from google.auth.credentials import AnonymousCredentials

    credentials = GcpServiceAccountCredentials()
    credentials._set_default_credentials(AnonymousCredentials())
    credentials.project_id = PROJECT
    credentials.resolve()
    return credentials


@pytest.fixture
def bigquery_destination(bigquery_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``create(**options)`` -> ``dlt.destinations.bigquery`` whose client reaches the emulator.

    dlt builds ``bigquery.Client(project, credentials=..., location=...)`` itself with no endpoint
    option; google-cloud-bigquery then reads the endpoint from ``BIGQUERY_EMULATOR_HOST``. dlt
    gzips its load files and bqemulator 1.4.0 reads a load job's file as gzip only when the job
    says ``compression`` (real BigQuery detects gzip itself; dlt never says it), so the test turns
    dlt's compression off (``normalize.data_writer.disable_compression``)."""
    import dlt

    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_endpoint)
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION", "true")

    def create(**options: Any) -> Any:
        return dlt.destinations.bigquery(credentials=dlt_credentials(), location="US", **options)

    return create


def main() -> None:
    """``python -m tests.warehouses.bigquery_server``: start one, print its URL, stop on Enter."""
    started = time.monotonic()
    with bigquery_emulator() as url:
        print(f"{url}  project {PROJECT}  (ready in {time.monotonic() - started:.2f} s; Enter stops it)")
        with contextlib.suppress(KeyboardInterrupt, EOFError):
            input()


if __name__ == "__main__":
    main()
