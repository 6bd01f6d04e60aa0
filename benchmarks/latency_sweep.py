"""Adaptive concurrency across page latencies: the share of the quota a default export uses.

For each page latency, runs the source with its defaults (``concurrency`` unset, ``max_share``
0.8, pages of 1,000 profiles) against the emulator, in a process of its own, with a scaled rate
limit, and prints:

- the steady-state call rate (whole rate-limit windows after the first and before the last) as a
  share of the rate the export may use (``floor(limit × max_share)`` per window): target ≥ 90%;
- the share of calls throttled (HTTP 429): target < 1%;
- the most calls in flight against ``⌈allowed calls/s × latency⌉ + 2``, latency being the mean
  seconds per call the client measured (the emulator's delay plus rendering and parsing);
- the requests against the pages one sequential walk of the same profiles needs (measured first,
  in the same process, without latency or limit): target ≤ 1.03×.

    python benchmarks/latency_sweep.py --users 500000 --page-size 500 --limit 20 --window 2

``--shape large_batches`` serves profiles where a few recompute batches share one timestamp each
(:class:`algolia_profiles_source.emulator.SyntheticData`); the largest batch is one window that no
split can shorten.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

from algolia_profiles_source.pipeline import load_profiles, make_pipeline  # noqa: E402
from emulator_process import APP, KEY, api_requests, emulator_process  # noqa: E402
WALK_LINE = re.compile(r"walked (\d+) window\(s\), at most (\d+) calls in flight \(([\d.]+) s per call\)")


class WalkLog(logging.Handler):
    """Keeps the walk's summary line (windows, calls in flight, seconds per call)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.summary: tuple[int, int, float] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        found = WALK_LINE.search(record.getMessage())
        if found:
            self.summary = (int(found[1]), int(found[2]), float(found[3]))


def walk(args: argparse.Namespace, workdir: Path, name: str, latency: float, limited: bool, **source: object) -> dict:
    limit = dict(rate_limit=args.limit, rate_window=args.window) if limited else dict(rate_limit=10**9, rate_window=60)
    log = WalkLog()
    logger = logging.getLogger("algolia_profiles_source.extract.concurrent_walk")
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    try:
        with emulator_process(args.users, latency=latency, batch_shape=args.shape, **limit) as url:
            pipeline = make_pipeline(name, workdir=str(workdir / name))
            started = time.time()
            result = load_profiles(pipeline, application_id=APP, api_key=KEY, base_url=url,
                                   page_size=args.page_size, **source)
            seconds = time.time() - started
            records = [r for r in api_requests(url) if r["path"] == "/2/users"]
    finally:
        logger.removeHandler(log)
    assert result.row_counts["users"] == args.users, result.row_counts
    return {"records": records, "seconds": seconds, "summary": log.summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=400_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.05, 0.3, 1.0, 2.0])
    parser.add_argument("--limit", type=int, default=10, help="calls per window (scaled)")
    parser.add_argument("--window", type=float, default=2.0, help="window seconds (scaled)")
    parser.add_argument("--max-share", type=float, default=0.8)
    parser.add_argument("--shape", default="daily", help="daily or large_batches")
    args = parser.parse_args()
    allowed = math.floor(args.limit * args.max_share + 1e-9) / args.window
    print(f"{args.users:,} profiles ({args.shape}), {args.page_size}/page, quota {args.limit} calls per"
          f" {args.window:g} s, max_share {args.max_share}: {allowed:.2f} calls/s allowed")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sequential = walk(args, Path(tmp), "sequential", 0.0, False, concurrency=1)
        pages = len(sequential["records"])
        print(f"one sequential walk, no latency or limit: {pages} pages")
        for latency in args.latencies:
            run = walk(args, Path(tmp), f"adaptive_{int(latency * 1000)}", latency, True,
                       max_share=args.max_share)
            records = run["records"]
            served = sorted(r["at"] - latency for r in records if r["status"] == 200)
            throttled = sum(1 for r in records if r["status"] == 429) / len(records)
            start = (served[0] // args.window + 1) * args.window
            end = (served[-1] // args.window) * args.window
            steady = [t for t in served if start <= t < end]
            rate = len(steady) / (end - start) if end > start else float("nan")
            windows, peak, per_call = run["summary"] or (1, 1, latency)
            bound = math.ceil(allowed * per_call) + 2
            row = dict(latency=latency, share=rate / allowed, throttled=throttled, peak=peak, bound=bound,
                       per_call=per_call, requests=len(records) / pages, windows=windows, seconds=run["seconds"])
            rows.append(row)
            print(f"latency {latency:4.2f} s ({per_call:.2f} s per call measured): {row['share']:.0%} of the"
                  f" allowed share, throttled {throttled:.2%}, at most {peak} in flight (bound {bound}),"
                  f" {len(records)} requests = {row['requests']:.3f}x the sequential pages, {windows} window(s),"
                  f" {run['seconds']:.1f} s")
    met = all(r["share"] >= 0.9 and r["throttled"] < 0.01 and r["peak"] <= r["bound"] and r["requests"] <= 1.03
              for r in rows)
    print(f"targets (>= 90% share, < 1% throttled, in flight <= bound, requests <= 1.03x): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
