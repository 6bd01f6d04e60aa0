"""Incremental cost: requests of a run after 1% of the profiles changed, as a share of a full run's,
with the default (adaptive) concurrency at a page latency where the full run walks many windows.

    python benchmarks/incremental_cost.py --users 100000 --changed 0.01
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

from algolia_profiles_source.emulator import Emulator  # noqa: E402
from algolia_profiles_source.pipeline import load_profiles, make_pipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--concurrency", type=int, default=None, help="fixed calls in flight (default: adaptive)")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per page")
    parser.add_argument("--limit", type=int, default=50, help="calls per window")
    parser.add_argument("--window", type=float, default=2.0, help="window seconds")
    parser.add_argument("--max-share", type=float, default=0.8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Emulator(
        n_users=args.users, seed=3, app_id="BENCH", api_key="bench-key", latency=args.latency,
        rate_limit=args.limit, rate_window=args.window,
    ) as emu:
        pipeline = make_pipeline("incremental_bench", workdir=tmp)
        creds = dict(application_id="BENCH", api_key="bench-key", base_url=emu.base_url,
                     concurrency=args.concurrency, max_share=args.max_share)
        full = load_profiles(pipeline, **creds).run
        full_calls = len([r for r in emu.requests if r.path == "/2/users"])
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rng = random.Random(1)
        ids = [p["userID"] for p in emu.store.users()]
        for user_id in rng.sample(ids, int(len(ids) * args.changed)):
            profile = emu.store.get(user_id)
            profile["lastUpdatedAt"] = stamp
            emu.store.upsert(profile)
        emu.clear_requests()
        incremental = load_profiles(pipeline, **creds).run
        calls = len([r for r in emu.requests if r.path == "/2/users"])
    print(f"{args.users:,} profiles; full run: {full_calls} requests ({full['profiles']:,} profiles)")
    print(f"{args.changed:.0%} changed; incremental run: {calls} requests"
          f" ({incremental['profiles']:,} profiles read, startDate {incremental['params'].get('startDate')})")
    print(f"incremental / full requests = {calls / full_calls:.1%}")


if __name__ == "__main__":
    main()
