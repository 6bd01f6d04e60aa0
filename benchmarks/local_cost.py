"""Local cost of an export: parse + normalize + load recorded API pages into DuckDB, no network.

Prints, for the same recorded pages in the same run (this machine is noisy, so ratios matter):

- ``orjson``: parsing the pages only (the floor for anything that reads JSON in Python);
- ``arrow``: parsing the pages only with the production parser (Arrow's JSON reader,
  :func:`algolia_profiles_source.http.page.parse_users_body`): one thread's share of the fast path, on
  its critical path, so the fast path cannot run faster than this on the same machine;
- ``fast``: the production path (``algolia_profiles``'s page walker: orjson pages -> Arrow tables ->
  dlt merge into DuckDB), with the HTTP client replaced by the recorded pages;
- ``naive``: a plain dlt pipeline yielding the API's dicts (nested affinities, default normalizer,
  merge), on a smaller slice, scaled per profile.

Each variant runs in its own process so its peak RSS is its own.

    python benchmarks/local_cost.py --profiles 100000 --naive-profiles 10000

``--repeat N`` runs the orjson, arrow and fast variants N times each, interleaved, and reports medians
(the rate) and the largest peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGE_SIZE = 1000
NAMES = ["category", "brand", "categories.lvl0", "categories.lvl1", "color", "price_range", "collection", "size"]


def record_pages(path: Path, profiles: int, affinities: int, seed: int = 1) -> None:
    """Writes API-shaped pages (one JSON body per line) with ``affinities`` per profile."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        for start in range(0, profiles, PAGE_SIZE):
            users = []
            for i in range(start, min(start + PAGE_SIZE, profiles)):
                stamp = f"2026-11-{1 + i % 27:02d}T{i % 24:02d}:00:00{'.123456' if i % 3 == 0 else ''}Z"
                users.append({
                    "userID": f"anon-{i:09d}+Q/{i % 97}==",
                    "type": "basic",
                    "lastUpdatedAt": stamp,
                    "affinities": [
                        {
                            "name": NAMES[j % len(NAMES)],
                            "value": f"Value {j}, \"{rng.randrange(100)}\" > 户外",
                            "indices": ["products_en_US", "products_fr_FR"][: 1 + j % 2],
                            "score": rng.randrange(1, 21) if j % 7 else 12.5,
                            "lastUpdatedAt": stamp,
                        }
                        for j in range(affinities)
                    ],
                })
            body: Dict[str, Any] = {"users": users}
            if start + PAGE_SIZE < profiles:
                body["nextPageToken"] = f"t{start}"
            out.write(orjson.dumps(body) + b"\n")


def _pages(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        for line in f:
            yield line


class ReplayClient:
    """Stands in for ProfilesClient: yields recorded pages, parsed as the session parses them."""

    base_url = "replay://"
    application_id = "recorded-pages"
    governor = None  # no pacing: recorded pages

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stats: Dict[str, int] = {}

    def iter_user_pages(self, params: Any, max_pages: Any = None) -> Iterator[List[Dict[str, Any]]]:
        from algolia_profiles_source.http.page import parse_users_body

        for raw in _pages(self.path):
            yield parse_users_body(raw)["users"]


def run_variant(variant: str, path: Path, workdir: Path) -> Dict[str, Any]:
    import dlt

    from algolia_profiles_source import PROFILES_RESOURCE, _profiles
    from algolia_profiles_source.load.pipeline import make_pipeline, run_source
    from algolia_profiles_source.http.query import build_query

    # imports (dlt, DuckDB: ~0.5 s once per process) happen before the clock starts, as orjson's do
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    started = time.perf_counter()
    profiles = 0
    if variant == "orjson":
        import gc

        gc.disable()  # the fastest way Python can parse these bytes: the floor
        for raw in _pages(path):
            profiles += len(orjson.loads(raw)["users"])
    elif variant == "arrow":
        from algolia_profiles_source.http.page import parse_users_body

        for raw in _pages(path):
            profiles += len(parse_users_body(raw)["users"])
    else:
        shutil.rmtree(workdir / variant, ignore_errors=True)  # a repeated run starts empty
        pipeline = make_pipeline(f"bench_{variant}", dataset_name="bench", workdir=str(workdir / variant))
        if variant == "fast":
            query = build_query(region="us", base_url=None)
            from datetime import timedelta

            profiles_resource = dlt.resource(
                _profiles(ReplayClient(path), query, timedelta(hours=1), None),
                name=PROFILES_RESOURCE, write_disposition="merge",
            )
            source = dlt.source(name="algolia_profiles", max_table_nesting=0)(lambda: profiles_resource)()
            run_source(pipeline, source)  # as `algolia-profiles load` runs it
        else:  # naive: dicts, nested child table, default normalizer, merge
            @dlt.resource(name="users", write_disposition="merge", primary_key="userID")
            def users() -> Iterator[List[Dict[str, Any]]]:
                for raw in _pages(path):
                    yield orjson.loads(raw)["users"]

            pipeline.run(users())
        with pipeline.sql_client() as client:
            profiles = client.execute_sql("SELECT count(*) FROM bench.users")[0][0]
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "variant": variant, "profiles": profiles, "seconds": elapsed,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_before, "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--naive-profiles", type=int, default=10_000)
    parser.add_argument("--affinities", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1, help="runs of orjson and fast (medians reported)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--pages-file", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:  # child process
        print(json.dumps(run_variant(args.variant, Path(args.pages_file), Path(args.workdir))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        full, small = work / "pages.jsonl", work / "pages_small.jsonl"
        record_pages(full, args.profiles, args.affinities)
        record_pages(small, args.naive_profiles, args.affinities)
        mb = full.stat().st_size / 1e6
        print(f"recorded {args.profiles:,} profiles x {args.affinities} affinities = {mb:,.0f} MB of JSON")
        runs: Dict[str, List[Dict[str, Any]]] = {"orjson": [], "arrow": [], "fast": [], "naive": []}
        plan = [("orjson", full), ("arrow", full), ("fast", full)] * args.repeat + [("naive", small)]
        for variant, pages in plan:
            out = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--pages-file", str(pages), "--workdir", tmp],
                capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]
            runs[variant].append(json.loads(out))
        results = {}
        for variant, done in runs.items():
            r = results[variant] = {
                "profiles": done[0]["profiles"],
                "seconds": statistics.median(x["seconds"] for x in done),
                "cpu_seconds": statistics.median(x["cpu_seconds"] for x in done),
                "peak_rss_mb": max(x["peak_rss_mb"] for x in done),
            }
            rate = r["profiles"] / r["seconds"]
            seconds = ", ".join(f"{x['seconds']:.2f}" for x in done)
            spread = f" (runs: {seconds} s)" if len(done) > 1 else ""
            print(f"{variant:>7}: {r['profiles']:>9,} profiles in {r['seconds']:7.2f} s = {rate:>9,.0f} profiles/s,"
                  f" {r['cpu_seconds']:.2f} CPU-s, peak RSS {r['peak_rss_mb']:,.0f} MB{spread}")
        per = {k: v["seconds"] / v["profiles"] for k, v in results.items()}
        print(f"fast vs naive: {per['naive'] / per['fast']:.1f}x faster per profile")
        print(f"fast vs orjson parse only: {per['fast'] / per['orjson']:.1f}x the parse time")
        print(f"fast vs Arrow parse only (its own parser, alone): {per['fast'] / per['arrow']:.1f}x the parse time;"
              f" parsing alone runs at {1 / per['arrow']:,.0f} profiles/s on this machine now")
        cpu = {k: v["cpu_seconds"] / v["profiles"] for k, v in results.items()}
        print(f"CPU per profile: fast = {cpu['fast'] / cpu['orjson']:.1f}x orjson parse only,"
              f" naive = {cpu['naive'] / cpu['fast']:.0f}x fast")
        print(f"API ceiling (500 calls/min x 1000 profiles) = 8,333 profiles/s;"
              f" fast path = {1 / per['fast'] / 8333:.1f}x the ceiling")


if __name__ == "__main__":
    main()
