"""The README's entry points run: the demo and the example pipelines script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env["DLT_DATA_DIR"] = str(tmp_path / "dlt_data")
    return env


def test_demo_loads_then_loads_changes_incrementally(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "algolia_profiles_source.cli", "demo", "--users", "300", "--dir", str(out)],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Full load: 300 profiles" in done.stdout
    assert "the incremental run sent startDate=" in done.stdout
    assert "Built 5 example audiences" in done.stdout
    exported = out / "exports" / "outdoor_enthusiasts.csv"
    header = exported.read_text().splitlines()[0]
    assert "email" in header and "user_id" in header
    for command in (["segments", "sizes"], ["segments", "show", "kids_shoppers"], ["segments", "overlaps"]):
        shown = subprocess.run(
            [sys.executable, "-m", "algolia_profiles_source.cli", *command, "--dir", str(out)],
            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120,
        )
        assert shown.returncode == 0 and "kids_shoppers" in shown.stdout, shown.stderr
    # the plan shows, without writing, exactly what the next build of the same file writes
    examples = REPO / "algolia_profiles_source" / "segments" / "examples" / "audiences.toml"
    shown = {}
    for command in ("plan", "build"):
        shown[command] = subprocess.run(
            [sys.executable, "-m", "algolia_profiles_source.cli", "segments", command, "--file", str(examples),
             "--as-of", "2026-12-24T00:00:00Z", "--dir", str(out)],
            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120,
        )
        assert shown[command].returncode == 0, shown[command].stderr
    plan, build = (_table_rows(shown[c].stdout, 4) for c in ("plan", "build"))
    assert len(plan) == 5 and any(row[2] != "0" or row[3] != "0" for row in plan)  # --as-of moves members
    assert sorted(plan) == sorted(build)
    dlt_cli = Path(sys.executable).with_name("dlt")  # dlt's own tooling works on our pipeline
    shown = {}
    for command in ("info", "trace"):
        shown[command] = subprocess.run(
            [str(dlt_cli), "pipeline", "--pipelines-dir", str(out / "pipelines"), "algolia_profiles", command],
            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120,
        )
        assert shown[command].returncode == 0, shown[command].stderr
    assert "Found pipeline algolia_profiles" in shown["info"].stdout
    with duckdb.connect(str(out / "algolia_profiles.duckdb"), read_only=True) as db:
        assert db.sql("SELECT count(*) FROM algolia.users").fetchone()[0] == 300
        changed = db.sql(
            "SELECT count(DISTINCT _dlt_load_id) FROM algolia.users"
        ).fetchone()[0]
    assert changed == 2  # the second load rewrote only the changed users

    # run again in the same folder: the demo starts over instead of finding its cursor
    again = subprocess.run(
        [sys.executable, "-m", "algolia_profiles_source.cli", "demo", "--users", "200", "--dir", str(out)],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "Starting over in" in again.stdout and "Full load: 200 profiles" in again.stdout
    with duckdb.connect(str(out / "algolia_profiles.duckdb"), read_only=True) as db:
        assert db.sql("SELECT count(*) FROM algolia.users").fetchone()[0] == 200


def test_the_demo_does_not_start_over_on_a_pipeline_of_another_application(tmp_path, emulator):
    from tests.conftest import API_KEY, APP_ID

    def demo(folder):
        return subprocess.run(
            [sys.executable, "-m", "algolia_profiles_source.cli", "demo", "--users", "50", "--dir", str(folder)],
            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300,
        )

    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "algolia_profiles.duckdb").write_bytes(b"precious")  # no state says whose it is
    done = demo(unknown)
    assert done.returncode == 2 and "did not load the demo's emulator" in done.stderr
    assert (unknown / "algolia_profiles.duckdb").read_bytes() == b"precious"

    # a real application loaded where a demo ran before
    project = tmp_path / "project"
    assert demo(project).returncode == 0
    (project / "algolia_profiles.duckdb").unlink()
    shutil.rmtree(project / "pipelines")
    env = {**_env(tmp_path), "SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID,
           "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY, "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url}
    loaded = subprocess.run([sys.executable, "-m", "algolia_profiles_source.cli", "load", "--dir", str(project)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    again = demo(project)
    assert again.returncode == 2 and "did not load the demo's emulator" in again.stderr
    with duckdb.connect(str(project / "algolia_profiles.duckdb"), read_only=True) as db:
        assert db.sql("SELECT count(*) FROM algolia.users").fetchone()[0] == len(emulator.store)


def test_example_pipelines_run_against_the_emulator(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "algolia_profiles_pipeline.py"), "--emulator"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("load package") >= 3 or done.stdout.count("Load package") >= 3, done.stdout
    with duckdb.connect(str(tmp_path / "algolia_profiles.duckdb"), read_only=True) as db:
        assert db.sql("SELECT count(*) FROM algolia.users").fetchone()[0] == 1000
    with duckdb.connect(str(tmp_path / "algolia_profiles_camping.duckdb"), read_only=True) as db:
        campers = db.sql(
            "SELECT count(DISTINCT user_id) FROM algolia_camping.user_affinities"
            " WHERE name = 'category' AND value = 'Camping'"
        ).fetchone()[0]
        users = db.sql("SELECT count(*) FROM algolia_camping.users").fetchone()[0]
    assert 0 < campers == users


def _table_rows(printed: str, columns: int) -> list[tuple[str, ...]]:
    """The first ``columns`` cells of each data row of a table the CLI printed."""
    rows = [[cell.strip() for cell in line.strip("│ ").split("│")] for line in printed.splitlines() if "│" in line]
    return [tuple(row[:columns]) for row in rows if row and row[0] != "segment"]
