"""Peak memory of a full export through each entry point, at two sizes.

Each load runs in a child process of its own against the emulator (in another process, so its data
does not count), and the child reports its own peak resident memory, ``VmHWM`` from
``/proc/self/status``, as it exits. (``ru_maxrss`` of a child is not its own: on Linux it starts
from the parent's peak across fork+exec.) Entry points:

- ``plain``: the documented plain-dlt usage, ``dlt.pipeline(..., destination="duckdb").run(algolia_profiles())``;
- ``cli``: ``algolia-profiles load --dir DIR``;
- ``pipelines``: ``load_incremental()`` of ``pipelines/algolia_profiles_pipeline.py``.

    python benchmarks/memory.py --users 100000 1000000

Target: every peak ≤ 400 MB, and the larger size within 20% of the smaller.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from emulator_process import APP, KEY, emulator_process  # noqa: E402

ENTRY_POINTS = ("plain", "cli", "pipelines")


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_entry_point(entry: str, folder: str) -> None:
    """Runs one entry point in this process (the child), credentials from the environment."""
    if entry == "plain":
        import dlt

        from algolia_profiles_source import algolia_profiles

        pipeline = dlt.pipeline("my_algolia_profiles", destination="duckdb", dataset_name="algolia")
        pipeline.run(algolia_profiles())
    elif entry == "cli":
        from algolia_profiles_source.cli import main

        try:
            main(["load", "--dir", folder])
        except SystemExit as exit_:
            if exit_.code:
                raise
    elif entry == "pipelines":
        sys.path.insert(0, str(ROOT / "pipelines"))
        from algolia_profiles_pipeline import load_incremental

        load_incremental()
    else:
        raise ValueError(entry)


def measure(entry: str, users: int, url: str) -> tuple[float, float]:
    """Runs ``entry`` in a child process; returns its peak (MB) and its seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ, RUNTIME__DLTHUB_TELEMETRY="false", DLT_DATA_DIR=str(Path(tmp) / "dlt"),
            SOURCES__ALGOLIA_PROFILES__APPLICATION_ID=APP, SOURCES__ALGOLIA_PROFILES__API_KEY=KEY,
            SOURCES__ALGOLIA_PROFILES__BASE_URL=url, PYTHONPATH=str(ROOT),
        )
        report = Path(tmp) / "peak"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--child", entry, "--folder", str(Path(tmp) / "dir"), "--report", str(report)],
            cwd=tmp, env=env, capture_output=True, text=True,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{entry} failed:\n{done.stderr[-3000:]}")
        return float(report.read_text()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--entry-points", nargs="+", choices=ENTRY_POINTS, default=list(ENTRY_POINTS))
    parser.add_argument("--child", choices=ENTRY_POINTS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_entry_point(args.child, args.folder)
        Path(args.report).write_text(f"{peak_mb():.1f}")
        return
    peaks: dict[str, list[float]] = {entry: [] for entry in args.entry_points}
    for users in args.users:
        with emulator_process(users, rate_limit=10**9, rate_window=60) as url:
            for entry in args.entry_points:
                peak, seconds = measure(entry, users, url)
                peaks[entry].append(peak)
                print(f"{entry:>9}: {users:>9,} profiles in {seconds:6.1f} s, peak memory (VmHWM) {peak:6.0f} MB",
                      flush=True)
    for entry, values in peaks.items():
        growth = values[-1] / values[0] if len(values) > 1 else 1.0
        met = max(values) <= 400 and growth <= 1.2
        print(f"{entry:>9}: peak {max(values):.0f} MB, largest/smallest size x{growth:.2f}"
              f" ({'met' if met else 'NOT met'}: <= 400 MB, <= x1.20)")


if __name__ == "__main__":
    main()
