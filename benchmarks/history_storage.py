"""Storage growth of affinity history: bytes and rows that ``user_affinities_history`` gains per day of
simulated changes, against the snapshot tables (``users`` + ``user_affinities``) of the same data,
and the time of a daily load with history against one without (two pipelines, same changes).

    python benchmarks/history_storage.py --users 20000 --days 30 --changed 0.02

Sizes are those of each table written as a zstd parquet file (columnar and compressed, like a
warehouse's storage); the ratios are what to compare across machines.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

import duckdb  # noqa: E402

from algolia_profiles_source.emulator import Emulator  # noqa: E402
from algolia_profiles_source.pipeline import load_profiles, make_pipeline  # noqa: E402
from algolia_profiles_source.times import format_rfc3339  # noqa: E402

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
VALUES = ["Camping", "Hiking", "Kids", "Running", "Climbing", "Yoga"]


def table_bytes(database: str, dataset: str, table: str, folder: str) -> tuple[int, int]:
    """(rows, bytes as zstd parquet) of one table of a DuckDB file."""
    path = Path(folder) / f"{table}.parquet"
    with duckdb.connect(database, read_only=True) as con:
        rows = con.sql(f"SELECT COUNT(*) FROM {dataset}.{table}").fetchone()[0]
        con.sql(f"COPY (SELECT * FROM {dataset}.{table}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
    return rows, path.stat().st_size


def change(emu: Emulator, rng: random.Random, ids: list[str], share: float, day: datetime) -> None:
    """``share`` of the users change one affinity: a score, a new interest, or one gone."""
    stamp = format_rfc3339(day)
    for n, user_id in enumerate(rng.sample(ids, max(1, int(len(ids) * share)))):
        profile = emu.store.get(user_id)
        affinities = profile["affinities"]
        if n % 3 == 0 and affinities:
            affinities[0]["score"] = rng.randint(1, 20)
        elif n % 3 == 1:
            value = rng.choice(VALUES)
            affinities[:] = [a for a in affinities if (a["name"], a["value"]) != ("category", value)]
            affinities.append({"name": "category", "value": value, "score": rng.randint(1, 20),
                               "indices": ["products_en_US"], "lastUpdatedAt": stamp})
        elif affinities:
            affinities.pop()
        emu.store.upsert(dict(profile, lastUpdatedAt=stamp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--changed", type=float, default=0.02, help="share of users changed per day")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Emulator(
        n_users=args.users, seed=5, app_id="BENCH", api_key="bench-key", now=START
    ) as emu:
        creds = dict(application_id="BENCH", api_key="bench-key", base_url=emu.base_url, concurrency=1,
                     page_size=1000)
        with_history = make_pipeline("history_bench", workdir=f"{tmp}/with")
        without = make_pipeline("history_bench", workdir=f"{tmp}/without")
        load_profiles(with_history, history=True, **creds)
        load_profiles(without, **creds)
        database = f"{tmp}/with/history_bench.duckdb"
        first_rows, first_bytes = table_bytes(database, "algolia", "user_affinities_history", tmp)
        rng = random.Random(1)
        ids = [p["userID"] for p in emu.store.users()]
        timed = {"with": 0.0, "without": 0.0}
        for day in range(1, args.days + 1):
            change(emu, rng, ids, args.changed, START + timedelta(days=day))
            for name, pipeline, extra in (("with", with_history, {"history": True}), ("without", without, {})):
                started = time.perf_counter()
                load_profiles(pipeline, **creds, **extra)
                timed[name] += time.perf_counter() - started
        history_rows, history_bytes = table_bytes(database, "algolia", "user_affinities_history", tmp)
        snapshot = [table_bytes(database, "algolia", t, tmp) for t in ("users", "user_affinities")]
    snapshot_rows, snapshot_bytes = sum(r for r, _ in snapshot), sum(b for _, b in snapshot)
    per_day_rows = (history_rows - first_rows) / args.days
    per_day_bytes = (history_bytes - first_bytes) / args.days
    print(f"{args.users:,} users, {args.days} days, {args.changed:.1%} of users changed per day")
    print(f"snapshot tables (users + user_affinities): {snapshot_rows:,} rows, {snapshot_bytes / 1e6:.2f} MB")
    print(f"history after the first load: {first_rows:,} rows, {first_bytes / 1e6:.2f} MB"
          f" = {first_bytes / snapshot_bytes:.2f}x the snapshot")
    print(f"history after {args.days} days: {history_rows:,} rows, {history_bytes / 1e6:.2f} MB")
    print(f"growth per day: {per_day_rows:,.0f} rows, {per_day_bytes / 1e3:.1f} kB"
          f" = {per_day_bytes / snapshot_bytes:.2%} of the snapshot per day")
    print(f"daily load time with history / without = {timed['with'] / timed['without']:.2f}x"
          f" ({timed['with'] / args.days:.2f} s vs {timed['without'] / args.days:.2f} s)")


if __name__ == "__main__":
    main()
