"""Quota saturation: how much of the API's rate limit a full export uses, sequential vs windowed.

Runs the real source against the emulator with per-page latency and a scaled rate limit, once with
one sequential cursor walk and once with concurrent windows, and prints for each the steady-state
call rate as a share of the quota's ceiling and the share of throttled (429) calls.

    python benchmarks/quota.py --users 12000 --page-size 100 --latency 0.5 --limit 50 --window 6
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

from algolia_profiles_source.emulator import Emulator  # noqa: E402
from algolia_profiles_source.pipeline import load_profiles, make_pipeline  # noqa: E402


def measure(args: argparse.Namespace, concurrency: int, workdir: Path) -> dict:
    with Emulator(n_users=args.users, seed=1, app_id="BENCH", api_key="bench-key",
                  latency=args.latency, rate_limit=args.limit, rate_window=args.window) as emu:
        pipeline = make_pipeline(f"quota_{concurrency}", workdir=str(workdir / f"c{concurrency}"))
        started = time.time()
        result = load_profiles(
            pipeline, application_id="BENCH", api_key="bench-key", base_url=emu.base_url,
            page_size=args.page_size, concurrency=concurrency, max_share=args.max_share,
        )
        elapsed = time.time() - started
        calls = sorted(r.at for r in emu.requests if r.path.startswith("/2/"))
        # the emulator records a call when it answers, `latency` after the call was counted
        served = sorted(r.at - args.latency for r in emu.requests if r.path.startswith("/2/") and r.status == 200)
        throttled = sum(1 for r in emu.requests if r.status == 429)
        assert result.row_counts["users"] == args.users, result.row_counts
    # steady state: whole rate-limit windows after the first one and before the last one
    start = (served[0] // args.window + 1) * args.window
    end = (served[-1] // args.window) * args.window
    steady = [t for t in served if start <= t < end]
    rate = len(steady) / (end - start) if end > start else float("nan")
    ceiling = args.limit / args.window
    return {
        "concurrency": concurrency, "calls": len(calls), "seconds": elapsed, "rate": rate,
        "share_of_ceiling": rate / ceiling, "throttled": throttled / len(calls),
        "profiles_read": result.run.get("profiles_read", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=12000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-share", type=float, default=1.0)
    args = parser.parse_args()
    print(f"{args.users:,} profiles, {args.page_size}/page, {args.latency}s/page, quota {args.limit} calls"
          f" per {args.window}s (ceiling {args.limit / args.window:.2f} calls/s), max_share {args.max_share}")
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in (1, args.concurrency):
            r = measure(args, concurrency, Path(tmp))
            print(f"concurrency {r['concurrency']:>2}: {r['calls']:>4} calls in {r['seconds']:6.1f}s,"
                  f" steady {r['rate']:.2f} calls/s = {r['share_of_ceiling']:.0%} of the ceiling,"
                  f" throttled {r['throttled']:.2%}, profiles read {r['profiles_read']:,}"
                  f" ({r['profiles_read'] / args.users:.2f}x the profiles)")


if __name__ == "__main__":
    main()
