"""A throwaway, real PostgreSQL server on loopback for the tests (no mocks, no Docker).

``postgres_server()`` initialises a cluster in a temporary directory, starts it on 127.0.0.1 on a
free port with trust authentication, creates a database and yields its URL
(``postgresql://postgres@127.0.0.1:PORT/DBNAME``); afterwards it stops the server
(``pg_ctl stop -m immediate``) and removes the directory. ``initdb`` refuses to run as root, so under
root the server commands run as the ``postgres`` OS user (created if missing) via ``runuser``.

With ``ALGOLIA_PROFILES_PG_URL`` set, that server is used instead and nothing is started.

Test modules use the session fixture with::

    from tests.postgres_server import postgres_url  # noqa: F401

If PostgreSQL cannot be found or started, tests using it fail with the reason when ``CI`` is set
and are skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from typing import Iterator, List, Optional, Sequence, Tuple

import pytest

from tests.availability import unavailable

URL_ENV = "ALGOLIA_PROFILES_PG_URL"
OS_USER = "postgres"  # the Debian package's server account
DB_USER = "postgres"  # the cluster's superuser (initdb -U)
DB_NAME = "algolia_profiles_test"
START_TIMEOUT = 60.0  # seconds; a healthy start takes 1-3 s
COMMAND_TIMEOUT = 120.0  # seconds; no server command may hang the test run


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be found or started here; the message says why."""


def find_bin_dir() -> str:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``: from PATH, else the newest
    ``/usr/lib/postgresql/<version>/bin``."""
    tools = ("initdb", "pg_ctl", "postgres")
    candidates: List[str] = []
    initdb = shutil.which("initdb")
    if initdb:
        # /usr/local/bin/initdb may be a symlink (or Debian's wrapper): use the real binaries' dir
        candidates.append(os.path.dirname(os.path.realpath(initdb)))
        candidates.append(os.path.dirname(initdb))

    def version(path: str) -> Tuple[int, ...]:
        found = re.search(r"/postgresql/([\d.]+)/bin$", path)
        return tuple(int(x) for x in found.group(1).split(".") if x) if found else (0,)

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for directory in candidates:
        if all(os.access(os.path.join(directory, t), os.X_OK) for t in tools):
            return directory
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were found neither on PATH nor in"
        " /usr/lib/postgresql/*/bin; install them, e.g. `apt-get install -y postgresql`, or set"
        f" {URL_ENV}=postgresql://user@host:port/db to use a running server"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        pass
    # parallel test workers each start a server: one creates the account, the others wait for it
    with open(os.path.join(tempfile.gettempdir(), "algolia-profiles-useradd.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(OS_USER)
        except KeyError:
            pass
        done = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", OS_USER],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
        )
    if done.returncode != 0:
        raise PostgresUnavailable(
            f"running as root, and the OS user {OS_USER!r} to run PostgreSQL as could not be"
            f" created: {done.stderr.strip() or done.returncode}"
        )
    return pwd.getpwnam(OS_USER)


def _traversable_by_others(path: str) -> bool:
    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


class _Cluster:
    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.as_root = os.geteuid() == 0
        base: Optional[str] = None
        if self.as_root:
            account = _ensure_os_user()
            if not _traversable_by_others(tempfile.gettempdir()):
                base = "/tmp"  # the server account must reach its data directory
        self.root = tempfile.mkdtemp(prefix="algolia-pg-", dir=base)
        if self.as_root:
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self.data = os.path.join(self.root, "data")
        self.sockets = os.path.join(self.root, "sockets")
        self.log = os.path.join(self.root, "server.log")
        self.port = 0
        self.started = False

    def command(self, tool: str, *args: str) -> List[str]:
        prefix = ["runuser", "-u", OS_USER, "--"] if self.as_root else []
        return prefix + [os.path.join(self.bin_dir, tool), *args]

    def call(self, tool: str, *args: str, timeout: float = COMMAND_TIMEOUT) -> None:
        argv = self.command(tool, *args)
        try:
            done = subprocess.run(
                argv, cwd=self.root, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:
            raise PostgresUnavailable(
                f"`{' '.join(argv)}` did not finish in {timeout:.0f} s{self.log_tail()}"
            ) from None
        except OSError as error:
            raise PostgresUnavailable(f"`{' '.join(argv)}` could not run: {error}") from None
        if done.returncode != 0:
            output = (done.stderr.strip() or done.stdout.strip())[-2000:]
            raise PostgresUnavailable(
                f"`{' '.join(argv)}` failed (exit {done.returncode}): {output}{self.log_tail()}"
            )

    def log_tail(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()[-15:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(lines) if lines else ""

    def init(self) -> None:
        sockets_mode = 0o700
        os.makedirs(self.sockets, mode=sockets_mode)
        if self.as_root:
            account = pwd.getpwnam(OS_USER)
            os.chown(self.sockets, account.pw_uid, account.pw_gid)
        self.call("initdb", "-D", self.data, "-U", DB_USER, "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")

    def start(self, port: int) -> None:
        self.port = port
        options = " ".join([
            "-c listen_addresses=127.0.0.1",
            f"-c port={port}",
            f"-c unix_socket_directories={self.sockets}",
            # a throwaway cluster: durability only costs time
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        ])
        # -w: pg_ctl notices a postmaster that dies on start-up (port taken, bad setting) at once;
        # readiness is then proven by connecting (wait_until_ready)
        self.call("pg_ctl", "start", "-w", "-t", str(int(START_TIMEOUT)), "-D", self.data,
                  "-l", self.log, "-o", options, timeout=START_TIMEOUT + 30)
        self.started = True

    def url(self, database: str) -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(PostgresUnavailable):
                self.call("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w", "-t", "30")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


def wait_until_ready(url: str, deadline: float, log_tail=lambda: "") -> None:
    """Connects until the server answers a query, or raises at ``deadline`` (a monotonic time)."""
    import psycopg2

    last: Optional[Exception] = None
    pause = 0.02
    while True:
        try:
            with contextlib.closing(psycopg2.connect(url, connect_timeout=5)) as conn:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchone()
            return
        except psycopg2.OperationalError as error:
            last = error
        if time.monotonic() >= deadline:
            raise PostgresUnavailable(
                f"PostgreSQL at {url} did not accept connections: {last}{log_tail()}"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _create_database(url: str, name: str) -> None:
    import psycopg2

    with contextlib.closing(psycopg2.connect(url, connect_timeout=10)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')


@contextlib.contextmanager
def postgres_server(database: str = DB_NAME) -> Iterator[str]:
    """Yields the URL of a fresh database on a throwaway local PostgreSQL server (or the server
    in ``ALGOLIA_PROFILES_PG_URL``). Raises ``PostgresUnavailable`` with the reason on failure."""
    external = os.environ.get(URL_ENV)
    if external:
        try:
            wait_until_ready(external, time.monotonic() + 10)
        except ImportError as error:
            raise PostgresUnavailable(f"psycopg2 is not installed: {error}") from None
        yield external
        return
    try:
        import psycopg2  # noqa: F401
    except ImportError as error:
        raise PostgresUnavailable(
            f"psycopg2 is not installed ({error}): pip install -e '.[test]'"
        ) from None

    cluster = _Cluster()
    try:
        cluster.init()
        for attempt in range(3):  # the free port may be taken between probing and binding
            try:
                cluster.start(_free_port())
                break
            except PostgresUnavailable:
                if attempt == 2 or "could not bind" not in cluster.log_tail():
                    raise
        wait_until_ready(cluster.url("postgres"), time.monotonic() + START_TIMEOUT, cluster.log_tail)
        _create_database(cluster.url("postgres"), database)
        yield cluster.url(database)
    finally:
        cluster.stop()


# One server per test session, shared by every module that imports the fixture (each import
# registers its own fixture definition, so the state lives here).
_shared_url: Optional[str] = None
_failure: Optional[str] = None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL database for the whole session (see the module docstring)."""
    global _shared_url, _failure
    if _shared_url is not None:
        yield _shared_url
        return
    if _failure is not None:
        unavailable("PostgreSQL", _failure)
    started = time.monotonic()
    server = postgres_server()
    try:
        url = server.__enter__()
    except PostgresUnavailable as error:
        _failure = str(error)
    if _failure is not None:  # reported outside the except block: no chained traceback
        unavailable("PostgreSQL", _failure)
    print(f"\nPostgreSQL ready at {url} in {time.monotonic() - started:.2f} s")
    _shared_url = url
    try:
        yield url
    finally:
        _shared_url = None
        server.__exit__(None, None, None)


def main(argv: Sequence[str] = ()) -> None:
    """``python -m tests.postgres_server``: start a server, print its URL, stop on Enter/Ctrl-C."""
    started = time.monotonic()
    with postgres_server() as url:
        print(f"{url}  (ready in {time.monotonic() - started:.2f} s; Enter or Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt, EOFError):
            input()


if __name__ == "__main__":
    main()
