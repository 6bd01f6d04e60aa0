"""The demo: emulator -> full load -> changes -> incremental load -> segments -> export.

Everything lands in one folder (a DuckDB file, the pipeline's working files, a synthetic customers
file and the export), so the commands it prints next work on it as they are.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from collections.abc import Callable

from .emulator import Emulator
from .exceptions import ConfigurationError
from .pipeline import DEFAULT_PIPELINE_NAME, load_profiles, make_pipeline
from .load.state import profiles_state
from .segments import build_segments
from .segments.export import export_audience

DEMO_APP_ID = "DEMO_APP"
DEMO_API_KEY = "demo-key-not-secret"
EXAMPLE_AUDIENCES = Path(__file__).parent / "segments" / "examples" / "audiences.toml"
FIRST_NAMES = ["Ana", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Greta", "Hiro", "Inès", "João", "Kofi", "Li", "Maya", "Noah", "Olga", "Pablo", "Sean", "Zoë"]
COUNTRIES = ["US", "FR", "DE", "CN", "BR", "GB", "CA", "JP"]


def write_demo_customers(users: list[dict[str, Any]], path: Path, seed: int = 42) -> int:
    """A CRM export matching the emulator's users: most have a customer record keyed by
    ``user_token`` (the Algolia userID), a few opted out, some customers never browsed."""
    rng = random.Random(seed)
    rows = []
    for i, user in enumerate(users):
        if rng.random() < 0.08:  # anonymous visitors: no customer record
            continue
        rows.append({
            "customer_id": 100000 + i,
            "user_token": user["userID"],
            "email": f"customer{100000 + i}@example.com",
            "first_name": rng.choice(FIRST_NAMES),
            "country": rng.choice(COUNTRIES),
            "opted_out": "true" if rng.random() < 0.05 else "false",
        })
    for j in range(len(users) // 20):  # customers who never browsed
        rows.append({"customer_id": 900000 + j, "user_token": "", "email": f"offline{j}@example.com",
                     "first_name": rng.choice(FIRST_NAMES), "country": rng.choice(COUNTRIES), "opted_out": "false"})
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def simulate_changes(emu: Emulator) -> int:
    """Updates a slice of the emulator's profiles the way a batch recompute would."""
    stamp = datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    users = emu.store.users()
    changed = 0
    for profile in users[:: max(1, len(users) // 50)]:
        profile = dict(profile)
        profile["lastUpdatedAt"] = stamp
        profile["affinities"] = [
            dict(a, lastUpdatedAt=stamp, score=min(20, (a.get("score") or 1) + 1))
            for a in profile.get("affinities", [])[:-1]
        ]
        emu.store.upsert(profile)
        changed += 1
    return changed


def start_over(directory: Path, echo: Callable[[str], None]) -> None:
    """Removes a previous demo's database and pipeline state from ``directory`` (a demo run twice
    would otherwise find its cursor and load nothing). Refuses a folder whose pipeline did not load
    the demo's application: that may be real data."""
    database = directory / f"{DEFAULT_PIPELINE_NAME}.duckdb"
    state = directory / "pipelines" / DEFAULT_PIPELINE_NAME
    if not (database.exists() or state.exists()):
        return
    if _loaded_application(state / "state.json") != DEMO_APP_ID:
        raise ConfigurationError(
            f"{str(directory)!r} already holds a pipeline {DEFAULT_PIPELINE_NAME!r} that did not load"
            " the demo's emulator: run the demo with another --dir (a demo folder made by an older"
            " version: delete it first)"
        )
    echo(f"Starting over in {directory}: the previous demo's database and pipeline state are replaced")
    for path in (database, directory / f"{database.name}.wal"):
        path.unlink(missing_ok=True)
    shutil.rmtree(state, ignore_errors=True)


def _loaded_application(state_file: Path) -> str | None:
    """The application whose profiles the pipeline state in ``state_file`` holds, if it says."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    return profiles_state(state if isinstance(state, dict) else None).get("application_id")


def run_demo(directory: Path, n_users: int, seed: int, echo: Callable[[str], None]) -> dict[str, Any]:
    """Runs the whole demo in ``directory``; returns paths and counts for the caller to print."""
    directory.mkdir(parents=True, exist_ok=True)
    start_over(directory, echo)
    with Emulator(n_users=n_users, seed=seed, app_id=DEMO_APP_ID, api_key=DEMO_API_KEY) as emu:
        echo(f"Emulator serving {len(emu.store)} synthetic profiles at {emu.base_url}")
        pipeline = make_pipeline(workdir=str(directory))
        args = dict(application_id=DEMO_APP_ID, api_key=DEMO_API_KEY, base_url=emu.base_url, page_size=500)
        first = load_profiles(pipeline, **args)
        echo(f"\n1) Full load: {first.run.get('profiles', 0)} profiles in {first.run.get('pages', 0)}"
             f" pages ({first.run.get('requests', 0)} requests)")
        _counts(echo, first.row_counts)

        changed = simulate_changes(emu)
        second = load_profiles(pipeline, **args)
        echo(f"\n2) {changed} profiles changed in Algolia; the incremental run sent"
             f" startDate={second.run.get('params', {}).get('startDate')} and read"
             f" {second.run.get('profiles', 0)} profiles in {second.run.get('pages', 0)} pages")
        _counts(echo, second.row_counts)
        customers = directory / "customers.csv"
        write_demo_customers(emu.store.users(), customers, seed)

    build = build_segments(pipeline, EXAMPLE_AUDIENCES)
    echo(f"\n3) Built {len(build.sizes)} example audiences in DuckDB ({EXAMPLE_AUDIENCES.name}):")
    for row in build.sizes:
        echo(f"   {row['segment']:<22} {row['members']:>7,} members ({row['share_of_users']:.1%} of users)")
    exported = export_audience(
        pipeline, "outdoor_enthusiasts", output_dir=directory / "exports", overwrite=True,
        customers=customers, customer_key="user_token",
    )
    echo(f"\n4) Exported outdoor_enthusiasts joined to {customers.name}: {exported.rows} rows to"
         f" {exported.path} ({exported.unmatched} members without a customer record,"
         f" {exported.opted_out} opted out, left out)")
    return {"pipeline": pipeline, "build": build, "export": exported, "customers": customers}


def _counts(echo: Callable[[str], None], counts: dict[str, int]) -> None:
    for table, count in counts.items():
        echo(f"   {table:<24} {count:>10,} rows")
