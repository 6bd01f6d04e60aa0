"""The headline: 1,000,000 profiles to an exported audience, against the quota bound.

For each page latency, serves the emulator (its own process) with the real rate limit, 500 calls
per 60 s, then runs the CLI as a user would, every setting at its default:

1. ``algolia-profiles load --dir DIR``;
2. ``algolia-profiles segments build --dir DIR --file <the example audiences>``;
3. ``algolia-profiles export --dir DIR outdoor_enthusiasts --customers customers.csv``
   (a customers file of every tenth loaded user, written before this stage and not timed).

It prints each stage's time and the total against the quota bound: the calls the profiles need
(``⌈profiles / 1000⌉``) at the rate the default ``max_share`` (0.8) allows, ``floor(500 × 0.8)``
calls per 60 s, so 150 s for 1,000,000 profiles. Target: total ≤ 1.15 × the bound.

    python benchmarks/headline.py --users 1000000 --latencies 0.3 1.0

The quota's windows are aligned on the clock, as the emulator's are, and a walk may make calls
faster than the share's average rate until the window's share is spent: where in a window the load
starts moves its time: at 10 calls a second (three in flight at 300 ms), 1,000 calls allowed 400 a
minute end 120 to 140 s after the first, 130 s on average over starting points. Each run starts at
the beginning of a window, one of the slowest starting points.

``--limit 50 --window 6`` runs a scaled quota with the same calls per second (shorter windows).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from emulator_process import APP, KEY, api_requests, emulator_process  # noqa: E402

AUDIENCES = ROOT / "algolia_profiles_source" / "segments" / "examples" / "audiences.toml"
AUDIENCE = "outdoor_enthusiasts"
PAGE_SIZE = 1000
MAX_SHARE = 0.8


def cli(args: list[str], env: dict[str, str], cwd: str) -> float:
    """Runs ``algolia-profiles ARGS``; returns its seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "algolia_profiles_source.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"algolia-profiles {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return seconds


def write_customers(folder: Path, path: Path) -> int:
    """A customers file of every tenth loaded user (user_token, email, opted_out)."""
    import duckdb

    with duckdb.connect(str(folder / "algolia_profiles.duckdb"), read_only=True) as db:
        ids = [row[0] for row in db.sql("SELECT user_id FROM algolia.users ORDER BY user_id").fetchall()[::10]]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_token", "email", "opted_out"])
        for n, user_id in enumerate(ids):
            writer.writerow([user_id, f"customer{n}@example.com", "true" if n % 20 == 0 else "false"])
    return len(ids)


def measure(args: argparse.Namespace, latency: float) -> dict:
    with emulator_process(args.users, latency=latency, rate_limit=args.limit, rate_window=args.window) as url, \
            tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ, RUNTIME__DLTHUB_TELEMETRY="false", PYTHONPATH=str(ROOT),
            SOURCES__ALGOLIA_PROFILES__APPLICATION_ID=APP, SOURCES__ALGOLIA_PROFILES__API_KEY=KEY,
            SOURCES__ALGOLIA_PROFILES__BASE_URL=url,
        )
        folder = Path(tmp) / "warehouse"
        # the emulator's quota windows are aligned on the clock, and where in one a walk starts
        # moves its time by up to a sixth (see the module docstring): every run starts with a whole
        # window, one of the slowest starts
        time.sleep(args.window - time.time() % args.window)
        load = cli(["load", "--dir", str(folder)], env, tmp)
        requests = [r for r in api_requests(url) if r["path"] == "/2/users"]
        build = cli(["segments", "build", "--dir", str(folder), "--file", str(AUDIENCES)], env, tmp)
        customers = Path(tmp) / "customers.csv"
        write_customers(folder, customers)
        export = cli(["export", "--dir", str(folder), AUDIENCE, "--customers", str(customers),
                      "--output-dir", str(Path(tmp) / "exports")], env, tmp)
    return {"load": load, "build": build, "export": export, "requests": len(requests),
            "throttled": sum(1 for r in requests if r["status"] == 429)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.3, 1.0])
    parser.add_argument("--limit", type=int, default=500, help="calls per window")
    parser.add_argument("--window", type=float, default=60.0, help="window seconds")
    args = parser.parse_args()
    calls = math.ceil(args.users / PAGE_SIZE)
    rate = math.floor(args.limit * MAX_SHARE + 1e-9) / args.window
    bound = calls / rate
    print(f"{args.users:,} profiles: {calls} calls at {rate:.2f} calls/s (max_share {MAX_SHARE} of {args.limit}"
          f" per {args.window:g} s) = a quota bound of {bound:.1f} s")
    for latency in args.latencies:
        r = measure(args, latency)
        total = r["load"] + r["build"] + r["export"]
        print(f"latency {latency:g} s: load {r['load']:.1f} s ({r['requests']} requests, {r['throttled']} throttled),"
              f" segments build {r['build']:.1f} s, export {r['export']:.1f} s; total {total:.1f} s ="
              f" {total / bound:.2f}x the bound ({'met' if total <= 1.15 * bound else 'NOT met'}: <= 1.15x)",
              flush=True)


if __name__ == "__main__":
    main()
