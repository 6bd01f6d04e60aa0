"""The benchmark scripts still run (at toy sizes; they assert their own correctness, not speed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script, args, expect", [
    ("local_cost.py", ["--profiles", "3000", "--naive-profiles", "300", "--repeat", "2"], "fast vs Arrow parse only"),
    ("segments_cost.py", ["--users", "3000"], "of which the per-user pass"),
    ("memory.py", ["--users", "2000", "--entry-points", "plain"], "peak memory (VmHWM)"),
    ("latency_sweep.py", ["--users", "3000", "--page-size", "100", "--latencies", "0.02", "0.1", "--limit", "40",
                          "--window", "1"], "targets (>= 90% share"),
    ("incremental_cost.py", ["--users", "3000"], "incremental / full requests"),
    ("window_plan.py", ["--users", "20000", "--page-size", "100", "--threads", "4", "--latency", "1",
                        "--seeds", "1"], "one window per batch, biggest first"),
    ("quota.py", ["--users", "600", "--page-size", "50", "--latency", "0.05", "--limit", "20",
                  "--window", "1", "--concurrency", "4"], "concurrency  4"),
])
def test_benchmark_runs(script, args, expect, tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert expect in done.stdout
