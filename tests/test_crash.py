"""SIGKILL at random moments of a full walk (starting, walking pages, normalizing, loading, marking
deletions), ten times in a row: every rerun completes, nothing is lost or duplicated, and the API
key is in no file the runs left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from algolia_profiles_source.load.pipeline import make_pipeline
from tests.conftest import API_KEY, APP_ID, assert_warehouse_equals_emulator
from tests.test_source_e2e import _apply_changes


def _load_command(tmp_path: Path, emu) -> tuple[list, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env.update({
        "SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID,
        "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
        "SOURCES__ALGOLIA_PROFILES__BASE_URL": emu.base_url,
        "SOURCES__ALGOLIA_PROFILES__BACKOFF_BASE": "0.01",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    })
    command = [sys.executable, "-m", "algolia_profiles_source.cli", "load", "--dir", str(tmp_path / "work"),
               "--page-size", "50"]
    return command, env


@pytest.mark.timeout(900)  # 12 CLI loads and 10 killed ones: minutes on a busy 2-core machine
def test_killed_loads_resume_exactly(emulator_factory, tmp_path):
    emu = emulator_factory(n_users=1500, latency=0.02)
    command, env = _load_command(tmp_path, emu)
    full_walk = command + ["--reconcile"]  # every killed run walks every profile: long enough to hit
    assert subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    started = time.monotonic()
    assert subprocess.run(full_walk, env=env, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    duration = time.monotonic() - started
    rng = random.Random(4)
    killed_while_running = 0
    for cycle in range(10):
        if cycle % 3 == 1:
            _apply_changes(emu)  # new data between crashes: the cursor must not skip it
        started = time.monotonic()
        process = subprocess.Popen(full_walk, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = started + rng.uniform(0.25, 0.95) * duration  # start-up, walk, normalize, load
        while process.poll() is None and time.monotonic() < deadline:
            try:
                process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                pass
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed_while_running += 1
        else:  # the machine got faster (a busy neighbour finished): later kills aim at this pace
            duration = time.monotonic() - started
        process.communicate(timeout=60)

        rerun = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        pipeline = make_pipeline(workdir=str(tmp_path / "work"))
        assert_warehouse_equals_emulator(pipeline, emu)
    assert killed_while_running >= 7  # most cycles really were interrupted
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), f"API key written to {path}"


def test_a_run_killed_while_dlt_deletes_an_extracted_package_does_not_block_later_runs(emulator, tmp_path, caplog):
    """dlt deletes a normalized package's extracted copy folder by folder: a kill in between left
    `normalize/extracted/<id>` without `new_jobs`, and every later run failed in normalize."""
    from tests.conftest import run

    pipeline = make_pipeline(workdir=str(tmp_path / "work"))
    run(pipeline, emulator)
    leftover = Path(pipeline.working_dir) / "normalize" / "extracted" / "1795873168.7521079"
    (leftover / "completed_jobs").mkdir(parents=True)  # new_jobs already deleted when killed
    (leftover / "load_package_state.json").write_text("{}")
    assert pipeline.has_pending_data

    _apply_changes(emulator)
    result = run(pipeline, emulator)

    assert not leftover.exists()
    assert "removing the remains of extracted package 1795873168.7521079" in caplog.text
    assert result.run["initial"] is False
    assert_warehouse_equals_emulator(pipeline, emulator)
