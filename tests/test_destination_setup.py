"""Bad destination set-up: a missing driver, missing credentials, an unreachable host or an unknown
name gets one line that says what to install or set, exit 2, and no folder is made."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def _cli(args, tmp_path, env_extra=None, hide_module=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update({"DLT_DATA_DIR": str(tmp_path / "dlt_data"), "RUNTIME__DLTHUB_TELEMETRY": "false", **(env_extra or {})})
    hide = f"import sys; sys.modules[{hide_module!r}] = None; " if hide_module else ""
    code = f"{hide}from algolia_profiles_source.cli import main; main({list(args)!r})"
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)


def _one_line_error(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("destination, settings", [
    ("snowflake", ["DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE", "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST"]),
    ("postgres", ["DESTINATION__POSTGRES__CREDENTIALS__HOST", "DESTINATION__POSTGRES__CREDENTIALS__PASSWORD"]),
    ("bigquery", ["DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID"]),
])
def test_missing_credentials_name_each_setting_and_make_no_folder(destination, settings, tmp_path):
    line = _one_line_error(_cli(["status", "--destination", destination, "--dir", "work"], tmp_path))
    assert f"destination {destination} is not configured" in line
    assert all(setting in line for setting in settings), line
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("destination, module", [("snowflake", "snowflake"), ("bigquery", "google.cloud.bigquery")])
def test_a_missing_driver_names_the_extra_to_install(destination, module, tmp_path):
    line = _one_line_error(_cli(["segments", "sizes", "--destination", destination, "--dir", "work"], tmp_path,
                                hide_module=module))
    assert f"pip install 'algolia-profiles[{destination}]'" in line
    assert not (tmp_path / "work").exists()


def test_an_unreachable_host_is_one_line(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: bound, never accepting
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        line = _one_line_error(_cli(
            ["status", "--destination", "postgres", "--dir", "work"], tmp_path,
            {"DESTINATION__POSTGRES__CREDENTIALS": f"postgresql://user:pw-3f9a1c@127.0.0.1:{port}/db"}))
    assert "cannot connect to the destination" in line and "check its host, port" in line
    assert "pw-3f9a1c" not in line


def test_an_unknown_destination_lists_the_known_ones(tmp_path):
    line = _one_line_error(_cli(["status", "--destination", "snowflak", "--dir", "work"], tmp_path))
    assert "unknown destination 'snowflak'" in line and "snowflake" in line
    assert not (tmp_path / "work").exists()
