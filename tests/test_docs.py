"""The Python examples in the docs run as written (against the emulator, in a temporary folder)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from algolia_profiles_source.emulator import Emulator
from tests.conftest import API_KEY, APP_ID

REPO = Path(__file__).resolve().parents[1]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


# ---------------------------------------------------------------- docs/python_api.md runs


def test_python_api_page_runs_against_the_emulator(tmp_path):
    blocks = code_blocks((REPO / "docs" / "python_api.md").read_text(), "python")
    assert len(blocks) == 2  # the api functions, then the dlt source in your own pipeline
    script = tmp_path / "python_api.py"
    script.write_text("\n\n".join(blocks))

    with Emulator(n_users=300, seed=1, app_id=APP_ID, api_key=API_KEY) as emu:
        # what a user does to point the page at the emulator (docs/emulator.md): three variables
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
        env.update({
            "SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID,
            "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
            "SOURCES__ALGOLIA_PROFILES__BASE_URL": emu.base_url,
            "DLT_DATA_DIR": str(tmp_path / "dlt"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        })

        def run_page() -> list[str]:
            done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
            assert API_KEY not in done.stdout + done.stderr
            return done.stdout.splitlines()

        lines = run_page()
        assert lines[0].startswith("300 profiles;") and "'users': 300" in lines[0]
        assert lines[1] == "0 marked deleted"
        sizes = ast.literal_eval(lines[2])
        assert set(sizes) == {"campers", "not_campers"} and sizes["campers"] > 0 and sizes["not_campers"] > 0
        assert lines[3] == f"{sizes['campers']} rows in campers.parquet"
        assert lines[4] == "300 users"
        assert lines[5] == "failed checks: []"  # doctor reads the credentials from dlt config, like load
        assert lines[6] == "300 users in my_algolia_profiles.duckdb"

        # the same script again, as a schedule runs it, after a profile was deleted in Algolia
        gone = emu.store.users()[0]["userID"]
        assert emu.store.delete(gone)
        lines = run_page()
        assert lines[1] == "1 marked deleted"
        assert lines[4] == "300 users"  # deleted users keep their row (history)
        assert lines[5] == "failed checks: []"

    assert (tmp_path / "report.html").exists() and (tmp_path / "exports" / "campers.parquet").exists()
    with duckdb.connect(str(tmp_path / "work" / "algolia_profiles.duckdb"), read_only=True) as db:
        deleted = db.sql("SELECT user_id FROM algolia.users WHERE deleted_at IS NOT NULL").fetchall()
    assert deleted == [(gone,)]


def test_cli_help_names_the_config_keys():
    done = subprocess.run([sys.executable, "-m", "algolia_profiles_source.cli", "load", "--help"],
                          capture_output=True, text=True, timeout=60)
    for name in ("region", "base_url", "indices", "affinity", "start_date", "end_date", "page_size"):
        assert f"SOURCES__ALGOLIA_PROFILES__{name.upper()}" in done.stdout.replace("\n", " ").replace("  ", " ") or \
            f"sources.algolia_profiles.{name}" in done.stdout, name
