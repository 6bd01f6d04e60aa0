"""Bad set-up: on Snowflake, BigQuery and Postgres a missing driver, missing credentials,
an unreachable host or an unknown name gets one line that says what to install, set or fix, exit 2,
and no folder is made; so does a load without the API's credentials."""

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


def _load_error(result):
    """The error of a ``load``, which may follow its progress line ("walking profiles...")."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert result.stderr.rstrip().endswith(errors[0]) and "Traceback" not in result.stderr, result.stderr
    return errors[0]


def test_a_load_without_the_api_credentials_names_them_and_leaves_no_folder(tmp_path):
    line = _load_error(_cli(["load", "--dir", "work"], tmp_path))
    assert "SOURCES__ALGOLIA_PROFILES__APPLICATION_ID" in line and "SOURCES__ALGOLIA_PROFILES__API_KEY" in line
    assert not (tmp_path / "work").exists()


def test_a_failed_load_keeps_a_folder_that_was_there(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("mine")
    _load_error(_cli(["load", "--dir", "work"], tmp_path))
    assert (tmp_path / "work" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("destination, module", [
    ("snowflake", "snowflake"), ("bigquery", "google.cloud.bigquery"), ("postgres", "psycopg2"),
])
def test_a_missing_driver_names_the_extra_to_install(destination, module, tmp_path):
    line = _one_line_error(_cli(["segments", "sizes", "--destination", destination, "--dir", "work"], tmp_path,
                                hide_module=module))
    assert f"pip install 'algolia-profiles[{destination}]'" in line
    assert not (tmp_path / "work").exists()


def _private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _unreachable(destination: str, port: int) -> dict:
    """Credentials whose host is a loopback port nothing accepts on (a refused connection)."""
    if destination == "postgres":
        return {"DESTINATION__POSTGRES__CREDENTIALS": f"postgresql://user:pw-3f9a1c@127.0.0.1:{port}/db"}
    if destination == "snowflake":  # the connector's own host/port/protocol, passed through dlt's query
        return {"DESTINATION__SNOWFLAKE__CREDENTIALS":
                f"snowflake://loader:pw-3f9a1c@myorg-account/DB?host=127.0.0.1&port={port}&protocol=http"}
    # a service account whose token endpoint (the first request) refuses; retried for 2 s
    return {"DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID": "my-project",
            "DESTINATION__BIGQUERY__CREDENTIALS__CLIENT_EMAIL": "loader@my-project.iam.gserviceaccount.com",
            "DESTINATION__BIGQUERY__CREDENTIALS__PRIVATE_KEY": _private_key(),
            "DESTINATION__BIGQUERY__CREDENTIALS__TOKEN_URI": f"http://127.0.0.1:{port}/token",
            "DESTINATION__BIGQUERY__RETRY_DEADLINE": "2"}


@pytest.mark.parametrize("destination, command", [
    ("postgres", "status"), ("snowflake", "load"), ("bigquery", "segments sizes"),
])
def test_an_unreachable_host_is_one_line_and_makes_no_folder(destination, command, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: bound, never accepting
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        line = _one_line_error(_cli(
            [*command.split(), "--destination", destination, "--dir", "work"], tmp_path,
            _unreachable(destination, port)))
    assert f"cannot connect to the destination {destination}" in line and "check its host, port" in line
    assert "pw-3f9a1c" not in line and "PRIVATE KEY" not in line
    assert not (tmp_path / "work").exists()


def test_doctor_reports_an_unreachable_destination_as_a_failed_check(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        result = _cli(["doctor", "--destination", "postgres", "--dir", "work"], tmp_path, _unreachable("postgres", port))
    assert result.returncode == 2, result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL destination: postgres:")]
    assert len(failed) == 1 and "cannot connect to the destination postgres" in failed[0], result.stdout
    assert "pw-3f9a1c" not in result.stdout + result.stderr and not (tmp_path / "work").exists()


def test_an_unknown_destination_lists_the_known_ones(tmp_path):
    line = _one_line_error(_cli(["status", "--destination", "snowflak", "--dir", "work"], tmp_path))
    assert "unknown destination 'snowflak'" in line and "snowflake" in line
    assert not (tmp_path / "work").exists()
