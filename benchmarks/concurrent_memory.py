"""Peak memory of `algolia-profiles load` with concurrent windows, against the emulator over HTTP.

The emulator runs in its own process (its data would otherwise count); the load runs as the CLI
runs it, with `concurrency` set, and its peak RSS is read from the child's resource usage. Two sizes
show whether memory grows with the export:

    python benchmarks/concurrent_memory.py --users 30000 300000 --concurrency 4
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

APP, KEY = "BENCH_APP", "bench-key-not-secret"


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the emulator exited")
        try:
            request = urllib.request.Request(
                f"{url}/2/users?limit=1", headers={"X-Algolia-Application-Id": APP, "X-Algolia-API-Key": KEY}
            )
            urllib.request.urlopen(request, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the emulator did not answer")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(users: int, concurrency: int, port: int) -> None:
    port = port or free_port()
    cli = [sys.executable, "-m", "algolia_profiles_source.cli"]
    emulator = subprocess.Popen(
        [*cli, "emulator", "--users", str(users), "--port", str(port), "--app-id", APP, "--api-key", KEY,
         "--rate-limit", "1000000", "--rate-window", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, emulator)
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(
                os.environ, RUNTIME__DLTHUB_TELEMETRY="false",
                SOURCES__ALGOLIA_PROFILES__APPLICATION_ID=APP, SOURCES__ALGOLIA_PROFILES__API_KEY=KEY,
                SOURCES__ALGOLIA_PROFILES__BASE_URL=url,
                SOURCES__ALGOLIA_PROFILES__CONCURRENCY=str(concurrency),
            )
            started = time.perf_counter()
            load = subprocess.Popen(
                [*cli, "load", "--dir", tmp, "--page-size", "1000"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            _, status, usage = os.wait4(load.pid, 0)  # this child's own peak, not the emulator's
            seconds = time.perf_counter() - started
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"the load failed with exit code {os.waitstatus_to_exitcode(status)}")
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    print(f"{users:>9,} profiles, concurrency {concurrency}: {seconds:6.1f} s,"
          f" peak RSS of the load {usage.ru_maxrss / 1024:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[30_000, 300_000])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--port", type=int, default=0, help="emulator port (0: a free one)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for users in args.users:
        measure(users, args.concurrency, args.port)


if __name__ == "__main__":
    main()
