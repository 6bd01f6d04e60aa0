"""Soak: many cycles of random changes, deletions and faults, each followed by a load that must leave
the warehouse exactly equal to the emulator's live profiles.

Each cycle updates, adds and deletes random profiles (same-second and back-dated timestamps
included), turns on a random mix of faults (429, 500, 503 HTML, connection reset, truncated body)
and latency spikes, then runs an incremental load (every 4th cycle a reconcile, which sees the
deletions). Prints cycles x profiles and the faults survived.

    python benchmarks/soak.py --cycles 50 --users 3000
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

from algolia_profiles_source.emulator import FAULT_KINDS, Emulator  # noqa: E402
from algolia_profiles_source.pipeline import load_profiles, make_pipeline  # noqa: E402
from algolia_profiles_source.times import format_rfc3339  # noqa: E402
from tests.conftest import expected_snapshot, warehouse_snapshot  # noqa: E402

APP, KEY = "SOAK", "soak-key"


def mutate(emu: Emulator, rng: random.Random, share: float) -> Counter:
    done: Counter = Counter()
    newest = emu.store.max_last_updated_at()
    ids = [p["userID"] for p in emu.store.users()]
    for user_id in rng.sample(ids, max(1, int(len(ids) * share))):
        action = rng.choice(["same_second", "back_dated", "later", "shrink", "delete"])
        profile = emu.store.get(user_id)
        if action == "delete":
            emu.store.delete(user_id)
        else:
            stamp = {"same_second": newest, "back_dated": newest - timedelta(minutes=rng.randint(1, 50)),
                     "later": newest + timedelta(seconds=rng.randint(1, 600)), "shrink": newest}[action]
            profile["lastUpdatedAt"] = format_rfc3339(stamp)
            profile["affinities"] = profile["affinities"][: rng.randint(0, len(profile["affinities"]))]
            emu.store.upsert(profile)
        done[action] += 1
    for i in range(rng.randint(0, 5)):
        emu.store.upsert({"userID": f"soak-{rng.getrandbits(40):x}+{i}=", "type": "basic",
                          "lastUpdatedAt": format_rfc3339(newest + timedelta(seconds=i)), "affinities": []})
        done["added"] += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.time()
    actions: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp, Emulator(
        n_users=args.users, seed=args.seed, app_id=APP, api_key=KEY, rate_window=1.0
    ) as emu:
        pipeline = make_pipeline("soak", workdir=tmp)
        creds = dict(application_id=APP, api_key=KEY, base_url=emu.base_url, page_size=100,
                     backoff_base=0.01, max_attempts=15, concurrency=rng.choice([1, 4]))
        load_profiles(pipeline, **creds)
        for cycle in range(1, args.cycles + 1):
            actions.update(mutate(emu, rng, share=0.02))
            kinds = rng.sample(FAULT_KINDS, rng.randint(1, len(FAULT_KINDS)))
            emu.set_faults(rate=rng.choice([0.05, 0.1, 0.2]), kinds=kinds, seed=cycle)
            emu.set_latency(rng.choice([0.0, 0.0, 0.01, 0.05]))
            reconcile = cycle % 4 == 0
            load_profiles(pipeline, reconcile=reconcile, **creds)
            emu.set_faults(rate=0.0)
            users, affinities = warehouse_snapshot(pipeline)
            with pipeline.sql_client() as client:
                gone = {r[0] for r in client.execute_sql(
                    f"SELECT user_id FROM {client.make_qualified_table_name('users')} WHERE deleted_at IS NOT NULL")}
            live = expected_snapshot(emu.store.users())
            if reconcile:  # after a reconcile the live view equals Algolia exactly
                got = ({k: v for k, v in users.items() if k not in gone},
                       {k: v for k, v in affinities.items() if k[0] not in gone})
                assert got == live, f"cycle {cycle}: live view differs from the emulator"
            else:  # an incremental load cannot see deletions: every live profile is exact
                assert all(users.get(k) == v for k, v in live[0].items()), f"cycle {cycle}: users differ"
                assert all(affinities.get(k) == v for k, v in live[1].items()), f"cycle {cycle}: affinities differ"
            print(f"cycle {cycle:>3}: {'reconcile' if reconcile else 'incremental'} ok", flush=True)
        faults = Counter(r.fault for r in emu.requests if r.fault)
        calls = len(emu.requests)
    print(f"\n{args.cycles} cycles x {args.users:,} profiles in {time.time() - started:.0f}s, all exact")
    print(f"changes applied: {dict(actions)}")
    print(f"faults survived: {sum(faults.values())} of {calls} calls {dict(faults)}")


if __name__ == "__main__":
    main()
