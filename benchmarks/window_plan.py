"""How evenly the window planner spreads a walk over its threads, simulated without a network.

The emulator's synthetic profiles (``SyntheticData``, the ``daily`` shape the latency sweep and the
headline serve: 90 daily recompute batches, one ``lastUpdatedAt`` each, and 10% real-time
updates) give every window its exact number of profiles. ``--threads`` threads each walk one window
at a time, a page taking ``--latency`` seconds, after the sequential pages the split samples, with
no quota; the planner is the production :class:`WindowPlanner`, fed the sample a real walk reads
(the first pages, in ``userID`` order). For each seed it prints:

- **end**: when the last window ends, against an even split of the pages over the threads after
  the sampled pages (no walk can end sooner);
- **requests**: against the pages of one sequential walk;
- the same planner fed an **exact sample** (evenly spaced over the sorted timestamps: each batch
  sampled in proportion to its size), which separates the planner's rules from the sample's noise;
- a **reference schedule** knowing every batch's size: one window per batch (with the real-time
  profiles after it), biggest first: what knowing the batches would buy, at half a request per
  window more. A batch is walked one page after the other, so neither can end sooner than its
  largest batches allow.

    python benchmarks/window_plan.py --users 500000 --page-size 500 --threads 17 --latency 2
    python benchmarks/window_plan.py --users 1000000 --page-size 1000 --threads 9 --latency 1

(17 and 9 are the calls in flight the controller keeps at 2 s for 20 calls per 2 s, and at 1 s for the
real limit of 500 calls a minute: the sweep's and the headline's.)
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import math
import statistics
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algolia_profiles_source.emulator.data import SyntheticData, format_us, to_us  # noqa: E402
from algolia_profiles_source.extract.concurrent_walk import SPLIT_AFTER_PAGES  # noqa: E402
from algolia_profiles_source.extract.windows import Window, WindowPlanner  # noqa: E402

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def planned_walk(stamps: list[int], sample: list[int], page_size: int, threads: int, latency: float) -> tuple[float, int, int]:
    """Walks ``stamps`` (sorted) with the planner fed ``sample``: (end, requests, windows)."""
    planner = WindowPlanner(Window(None, None), [format_us(s) for s in sample], page_size)
    start = SPLIT_AFTER_PAGES * latency
    free = [(start, n) for n in range(threads)]  # (when the thread is free, thread)
    running: list[tuple[float, int, int]] = []  # (end, samples, profiles) of windows being walked
    requests, windows, end = SPLIT_AFTER_PAGES, 0, start
    while free:
        now, thread = heapq.heappop(free)
        for done in [w for w in running if w[0] <= now]:
            planner.finished(done[1], done[2])
            running.remove(done)
        taken = planner.next_window(threads)
        if taken is None:
            end = max(end, now)
            continue
        window, samples = taken
        low = 0 if window.start is None else bisect.bisect_left(stamps, to_us(window.start))
        high = len(stamps) if window.end is None else bisect.bisect_left(stamps, to_us(window.end))
        pages = (high - low) // page_size + 1  # the last page is a partial (or empty) one
        requests += pages
        windows += 1
        heapq.heappush(free, (now + pages * latency, thread))
        running.append((now + pages * latency, samples, high - low))
    return end, requests, windows


def reference_walk(stamps: list[int], page_size: int, threads: int, latency: float) -> tuple[float, int]:
    """One window per batch and the real-time profiles after it, biggest first: (end, requests)."""
    counts = Counter(stamps)
    units, current = [], 0
    for stamp in sorted(counts):
        if counts[stamp] > 1 and current:
            units.append(current)
            current = 0
        current += counts[stamp]
    units.append(current)
    pages = sorted((n // page_size + 1 for n in units), reverse=True)
    loads = [0.0] * threads
    for p in pages:
        heapq.heapreplace(loads, loads[0] + p * latency)
    return SPLIT_AFTER_PAGES * latency + max(loads), SPLIT_AFTER_PAGES + sum(pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=17)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    pages = math.ceil(args.users / args.page_size)
    even = SPLIT_AFTER_PAGES * args.latency + pages * args.latency / args.threads
    print(f"{args.users:,} profiles, {args.page_size} per page ({pages} pages), {args.threads} threads,"
          f" {args.latency:g} s per page: an even split ends at {even:.1f} s")
    rows = []
    for seed in range(1, args.seeds + 1):
        data = SyntheticData(args.users, seed, NOW)
        stamps = sorted(data.last_updated)
        n = SPLIT_AFTER_PAGES * args.page_size
        first_pages = list(data.last_updated[:n])
        exact = [stamps[int(i * len(stamps) / n)] for i in range(n)]
        end, requests, windows = planned_walk(stamps, first_pages, args.page_size, args.threads, args.latency)
        exact_end, exact_requests, _ = planned_walk(stamps, exact, args.page_size, args.threads, args.latency)
        ref_end, ref_requests = reference_walk(stamps, args.page_size, args.threads, args.latency)
        row = (end / even, requests / pages, windows, exact_end / even, exact_requests / pages,
               ref_end / even, ref_requests / pages)
        rows.append(row)
        print(f"seed {seed}: planner end {row[0]:.3f}x, requests {row[1]:.3f}x, {windows} windows;"
              f" exact sample {row[3]:.3f}x, {row[4]:.3f}x; one window per batch {row[5]:.3f}x, {row[6]:.3f}x")
    mean = [statistics.mean(r[i] for r in rows) for i in range(len(rows[0]))]
    print(f"mean: planner end {mean[0]:.3f}x an even split at {mean[1]:.3f}x the requests ({mean[2]:.0f} windows);"
          f" exact sample {mean[3]:.3f}x at {mean[4]:.3f}x; one window per batch, biggest first"
          f" {mean[5]:.3f}x at {mean[6]:.3f}x")


if __name__ == "__main__":
    main()
