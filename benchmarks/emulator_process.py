"""The emulator in a process of its own, for benchmarks that measure the loading process alone.

    with emulator_process(users=1_000_000, latency=0.3, rate_limit=500, rate_window=60) as url:
        ...  # SOURCES__ALGOLIA_PROFILES__BASE_URL=url

The child prints its URL once it listens; the benchmark polls until an API call answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP, KEY = "BENCH_APP", "bench-key-not-secret"

_SERVE = """
import json, sys, threading
sys.path.insert(0, {root!r})
from algolia_profiles_source.emulator import Emulator
options = json.loads(sys.argv[1])
with Emulator(app_id={app!r}, api_key={key!r}, seed=1, **options) as emu:
    print(emu.base_url, flush=True)
    threading.Event().wait()
"""


@contextmanager
def emulator_process(users: int, **options: object) -> Iterator[str]:
    """Serves ``users`` profiles (``options``: latency, rate_limit, rate_window, batch_shape...)
    from a child process; yields its base URL. Profiles are serialized once at start
    (``prerender``): the emulator is one Python process, and generating pages as they are asked
    for would make it, not the client measured, the slowest part of a benchmark."""
    code = _SERVE.format(root=str(ROOT), app=APP, key=KEY)
    child = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(dict(n_users=users, prerender=True, **options))],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        url = (child.stdout.readline() if child.stdout else "").strip()
        if not url:
            raise RuntimeError("the emulator exited before listening")
        _wait_ready(url, child)
        yield url
    finally:
        child.terminate()
        child.wait(timeout=30)


def _wait_ready(url: str, child: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError("the emulator exited")
        try:
            request = urllib.request.Request(
                f"{url}/_emulator/requests", headers={"X-Algolia-Application-Id": APP, "X-Algolia-API-Key": KEY}
            )
            urllib.request.urlopen(request, timeout=5).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the emulator did not answer")


def api_requests(url: str) -> list[dict]:
    """The API calls the emulator recorded (admin calls are not recorded)."""
    request = urllib.request.Request(
        f"{url}/_emulator/requests", headers={"X-Algolia-Application-Id": APP, "X-Algolia-API-Key": KEY}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())
