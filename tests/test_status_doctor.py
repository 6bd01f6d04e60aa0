"""`status` and `doctor`: what a pipeline holds, and what to fix when something is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from tests.conftest import API_KEY, APP_ID


def _cli(args, tmp_path, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env.update({"DLT_DATA_DIR": str(tmp_path / "dlt_data"), "RUNTIME__DLTHUB_TELEMETRY": "false", **env_extra})
    return subprocess.run([sys.executable, "-m", "algolia_profiles_source.cli", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)


def test_status_and_doctor_after_a_load(emulator, tmp_path):
    env = {"SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID, "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
           "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url}
    work = ["--dir", str(tmp_path / "work")]
    (tmp_path / "work").mkdir()  # a folder that a reading command does not create
    before = _cli(["status", *work], tmp_path, env)
    assert before.returncode == 0 and "no load yet" in before.stdout
    assert _cli(["load", "--reconcile", *work], tmp_path, env).returncode == 0
    assert _cli(["segments", "build", *work, "--file", str(EXAMPLE_AUDIENCES)], tmp_path, env).returncode == 0

    shown = _cli(["status", "--json", *work], tmp_path, env)
    info = json.loads(shown.stdout)
    assert info["last_run"]["profiles"] == 150 and info["tables"]["users"] == 150
    assert info["cursor"] and info["next_start_date"] and info["reconcile_due"] is False
    assert {a["segment"] for a in info["audiences"]} >= {"outdoor_enthusiasts", "kids_shoppers"}
    text = _cli(["status", *work], tmp_path, env)
    assert "cursor:" in text.stdout and "reconcile: last" in text.stdout and "Audiences" in text.stdout

    healthy = _cli(["doctor", *work], tmp_path, env)
    assert healthy.returncode == 0, healthy.stdout
    assert "ok   API access: GET /2/config answered: 3 indices" in healthy.stdout

    wrong = _cli(["doctor", *work], tmp_path, {**env, "SOURCES__ALGOLIA_PROFILES__API_KEY": "wrong-" + API_KEY})
    assert wrong.returncode == 2 and "FAIL API access" in wrong.stdout and "recommendation" in wrong.stdout
    missing = _cli(["doctor", *work], tmp_path, {"SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url})
    assert missing.returncode == 2 and "FAIL credentials: missing application_id and api_key" in missing.stdout
    for done in (before, shown, text, healthy, wrong, missing):
        assert API_KEY not in done.stdout + done.stderr


def test_status_after_the_database_file_was_deleted_says_what_to_do(emulator, tmp_path):
    env = {"SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID, "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
           "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url}
    work = ["--dir", str(tmp_path / "work")]
    assert _cli(["load", *work], tmp_path, env).returncode == 0
    (tmp_path / "work" / "algolia_profiles.duckdb").unlink()  # the pipeline folder keeps its state

    shown = _cli(["status", *work], tmp_path, env)
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert "tables are not in the destination" in shown.stderr and "algolia-profiles load" in shown.stderr
    again = _cli(["load", *work], tmp_path, env)  # and that advice works: every profile is read again
    assert again.returncode == 0, again.stderr
    info = json.loads(_cli(["status", "--json", *work], tmp_path, env).stdout)
    assert info["tables"]["users"] == 150
