"""A short soak: random changes, deletions, faults and latency, exact after every cycle
(benchmarks/soak.py runs the long version)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_short_soak_stays_exact(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--cycles", "6", "--users", "600", "--seed", "3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "6 cycles x 600 profiles" in done.stdout and "all exact" in done.stdout
    assert "reconcile ok" in done.stdout
