"""Segment build cost in DuckDB, relative to one full ``GROUP BY name, value`` scan of the affinities.

Loads N synthetic profiles of the emulator (rendered directly, no HTTP) with the production source,
then times in the same process: the scan, the models (catalog, top affinities) and the example
audiences.

    python benchmarks/segments_cost.py --users 1000000
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

import dlt  # noqa: E402

from algolia_profiles_source import PROFILES_RESOURCE, _profiles  # noqa: E402
from algolia_profiles_source.demo import EXAMPLE_AUDIENCES  # noqa: E402
from algolia_profiles_source.emulator import ProfileStore  # noqa: E402
from algolia_profiles_source.load.pipeline import make_pipeline, run_source  # noqa: E402
from algolia_profiles_source.http.query import build_query  # noqa: E402
from algolia_profiles_source.segments import build_models, build_segments  # noqa: E402
from algolia_profiles_source.tables import WORK_FLAGS  # noqa: E402


class StoreClient:
    """Stands in for ProfilesClient: pages straight from the emulator's store."""

    base_url = "store://"
    application_id = "emulator-store"
    governor = None  # no pacing: pages come from memory
    stats: Dict[str, int] = {}

    def __init__(self, store: ProfileStore) -> None:
        self.store = store

    def iter_user_pages(self, params: Any, max_pages: Any = None) -> Iterator[List[Dict[str, Any]]]:
        after = None
        while True:
            page, _, more = self.store.page(after=after, limit=1000)
            if page:
                yield page
                after = page[-1]["userID"]
            if not more:
                return


class StatementTimes(logging.Handler):
    """Collects the per-statement timings :mod:`algolia_profiles_source.segments.build` logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.times: Dict[str, List[float]] = {}
        self.logger = logging.getLogger("algolia_profiles_source.segments.build")

    def emit(self, record: logging.LogRecord) -> None:
        match = re.fullmatch(r"(.+) took ([\d.]+) s", record.getMessage())
        if match:
            self.times.setdefault(match.group(1), []).append(float(match.group(2)))

    def medians(self) -> List[Any]:
        return sorted(((k, statistics.median(v)) for k, v in self.times.items()), key=lambda kv: -kv[1])

    def __enter__(self) -> "StatementTimes":
        self.previous_level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.previous_level)


def timed(function: Any, repeat: int = 1) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    store = ProfileStore(args.users, 7, now)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = make_pipeline("segments_bench", workdir=tmp)
        resource = dlt.resource(
            _profiles(StoreClient(store), build_query(region="us", base_url=None), timedelta(hours=1), None),
            name=PROFILES_RESOURCE, write_disposition="merge",
        )
        started = time.perf_counter()
        # as `algolia-profiles load` runs it (a new DuckDB file is created in DuckDB 1.4's format)
        run_source(pipeline, dlt.source(name="algolia_profiles", max_table_nesting=0)(lambda: resource)())
        load = time.perf_counter() - started
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("user_affinities")
            rows = client.execute_sql(f"SELECT count(*) FROM {table}")[0][0]

            def scan() -> None:
                client.execute_sql(f"SELECT name, value, count(*) FROM {table} GROUP BY name, value")

            scan_s = timed(scan, repeat=3)
        models_s = timed(lambda: build_models(pipeline))
        with StatementTimes() as statements:  # the build logs each statement's time at DEBUG
            audiences_s = timed(lambda: build_segments(pipeline, EXAMPLE_AUDIENCES, models=False), repeat=3)
    print(f"{args.users:,} profiles, {rows:,} affinity rows (loaded in {load:.1f}s)")
    print(f"GROUP BY name, value scan: {scan_s:.2f}s")
    print(f"example audiences (5, with sizes/overlaps/events): {audiences_s:.2f}s = {audiences_s / scan_s:.1f}x the scan")
    per_user = dict(statements.medians()).get(f"table {WORK_FLAGS}")
    if per_user is not None:  # the floor of a first build: every audience reads this pass's output
        print(f"of which the per-user pass (the rows the rules name, grouped per user, joined to the live users):"
              f" {per_user:.2f}s = {per_user / scan_s:.1f}x the scan")
    print("per statement (median of the builds, the slowest first): " + ", ".join(
        f"{label} {seconds:.2f}s" for label, seconds in statements.medians()[:8]
    ))
    print(f"models (staging, catalog with percentiles, index coverage, top affinities): {models_s:.2f}s = {models_s / scan_s:.1f}x the scan")


if __name__ == "__main__":
    main()
