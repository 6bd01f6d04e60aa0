"""One project folder: commands run in a folder find its pipeline without --dir (the folder is
configured once in .dlt/config.toml or ALGOLIA_PROFILES__DIR); reading commands create nothing;
status says when a load is running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from algolia_profiles_source.load.pipeline import make_pipeline
from algolia_profiles_source.load.working_dir import exclusive
from tests.conftest import API_KEY, APP_ID


def _cli(args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "ALGOLIA_PROFILES__"))}
    env.update({"DLT_DATA_DIR": str(cwd / "dlt_data"), "RUNTIME__DLTHUB_TELEMETRY": "false", **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "algolia_profiles_source.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_commands_in_a_project_folder_need_no_dir(emulator, tmp_path):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        f'[algolia_profiles]\ndir = "warehouse"\naudiences = {json.dumps(str(EXAMPLE_AUDIENCES))}\n')
    env = {"SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID, "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
           "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url}
    assert _cli(["load"], tmp_path, env).returncode == 0
    assert (tmp_path / "warehouse" / "algolia_profiles.duckdb").exists()
    assert not (tmp_path / "algolia_profiles.duckdb").exists()
    status = _cli(["status"], tmp_path)
    assert status.returncode == 0 and f"{len(emulator.store):,} profiles" in status.stdout, status.stdout
    assert _cli(["segments", "build"], tmp_path).returncode == 0
    sizes = _cli(["segments", "sizes"], tmp_path)
    assert sizes.returncode == 0 and "outdoor_enthusiasts" in sizes.stdout
    (tmp_path / "typo.toml").write_text('[audiences.campers]\nrule = { affinity = "category:Campng" }\n')
    checked = _cli(["segments", "validate", "typo.toml"], tmp_path)
    assert checked.returncode == 0 and "names and values checked" in checked.stdout
    assert "category = 'Campng' (did you mean 'Camping'?)" in checked.stderr
    strict = _cli(["segments", "validate", "typo.toml", "--strict"], tmp_path)
    assert strict.returncode == 2 and "did you mean 'Camping'?" in strict.stderr
    typo = _cli(["segments", "show", "outdoor_enthusiast"], tmp_path)
    assert typo.returncode == 2 and "did you mean 'outdoor_enthusiasts'" in typo.stderr
    exported = _cli(["export", "outdoor_enthusiasts", "--output-dir", "out"], tmp_path)
    assert exported.returncode == 0 and (tmp_path / "out" / "outdoor_enthusiasts.csv").exists()
    # the environment variable wins over the file; --dir over both
    elsewhere = _cli(["segments", "sizes"], tmp_path, {"ALGOLIA_PROFILES__DIR": "warehous"})
    assert elsewhere.returncode == 2 and "did you mean" in elsewhere.stderr and "warehouse" in elsewhere.stderr
    assert _cli(["segments", "sizes", "--dir", "warehouse"], tmp_path, {"ALGOLIA_PROFILES__DIR": "x"}).returncode == 0
    assert not (tmp_path / "warehous").exists() and not (tmp_path / "x").exists()


def test_reading_commands_create_no_database_and_no_folder(tmp_path):
    for command in (["segments", "sizes"], ["segments", "list"], ["export", "campers"], ["report"]):
        result = _cli(command, tmp_path)
        assert result.returncode == 2 and "there is no DuckDB file" in result.stderr, (command, result.stderr)
    status = _cli(["status"], tmp_path)
    assert status.returncode == 0 and "no load yet" in status.stdout
    typo = _cli(["status", "--dir", "work"], tmp_path)
    assert typo.returncode == 2 and "'work' does not exist" in typo.stderr
    assert not list(tmp_path.glob("*.duckdb")) and not (tmp_path / "work").exists()
    # a project folder configured before its first load: nothing loaded yet, said with the setting
    configured = _cli(["status"], tmp_path, {"ALGOLIA_PROFILES__DIR": "warehouse"})
    assert configured.returncode == 0 and "no load yet: folder 'warehouse' (dir under [algolia_profiles]" in configured.stdout
    assert "--dir" not in configured.stdout and not (tmp_path / "warehouse").exists()


def test_status_during_a_load_says_a_load_is_running(emulator, tmp_path):
    workdir = tmp_path / "work"
    pipeline = make_pipeline("algolia_profiles", workdir=str(workdir))
    with exclusive(pipeline):  # what a load holds while it runs
        status = _cli(["status", "--dir", str(workdir)], tmp_path)
    assert status.returncode == 0 and f"a load is running: PID {os.getpid()}, since" in status.stdout, status.stdout
    assert "no load yet" not in status.stdout  # the first load is the one running
    assert "a load is running" not in _cli(["status", "--dir", str(workdir)], tmp_path).stdout


def test_a_build_needs_an_audience_file_it_was_given(emulator, tmp_path):
    env = {"SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID, "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY,
           "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url}
    assert _cli(["load", "--dir", "w"], tmp_path, env).returncode == 0
    refused = _cli(["segments", "build", "--dir", "w"], tmp_path)
    assert refused.returncode == 2 and "no audience file" in refused.stderr and "--file" in refused.stderr
    assert "segment_sizes" not in _cli(["status", "--dir", "w", "--json"], tmp_path).stdout
    configured = _cli(["segments", "build", "--dir", "w"], tmp_path, {"ALGOLIA_PROFILES__AUDIENCES": str(EXAMPLE_AUDIENCES)})
    assert configured.returncode == 0 and "outdoor_enthusiasts" in configured.stdout
    # run inside the folder a --dir load made (the demo's): the commands use its file and state,
    # and create nothing beside it nor in dlt's data folder
    inside = {"DLT_DATA_DIR": str(tmp_path / "dlt_data")}
    for command in (["status"], ["status", "--dir", "."], ["segments", "sizes"]):
        result = _cli(command, tmp_path / "w", inside)
        assert result.returncode == 0 and "outdoor_enthusiasts" in result.stdout, (command, result.stderr)
        assert str(tmp_path / "w" / "algolia_profiles.duckdb") in result.stdout or command == ["segments", "sizes"]
    assert not (tmp_path / "algolia_profiles.duckdb").exists()
    assert not (tmp_path / "dlt_data" / "pipelines" / "algolia_profiles").exists()
    # doctor checks a folder without making it, and names the one the user may have meant
    doctor = _cli(["doctor", "--dir", "ww"], tmp_path)
    assert "folder 'ww' does not exist yet (did you mean 'w'?)" in doctor.stdout, doctor.stdout
    assert not (tmp_path / "ww").exists()


def test_a_reading_command_does_not_decide_where_a_later_load_puts_its_file(emulator, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    env = {"DLT_DATA_DIR": str(tmp_path / "dlt_data"), "SOURCES__ALGOLIA_PROFILES__APPLICATION_ID": APP_ID,
           "SOURCES__ALGOLIA_PROFILES__API_KEY": API_KEY, "SOURCES__ALGOLIA_PROFILES__BASE_URL": emulator.base_url}
    assert "no load yet" in _cli(["status"], first, env).stdout
    assert not (tmp_path / "dlt_data" / "pipelines" / "algolia_profiles").exists()
    assert _cli(["load"], second, env).returncode == 0
    assert (second / "algolia_profiles.duckdb").exists() and not list(first.iterdir())


def test_a_relative_workdir_is_the_same_folder_from_wherever_it_is_named(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    first = make_pipeline("relative_dir", workdir="work")
    monkeypatch.chdir(tmp_path)
    again = make_pipeline("relative_dir", workdir="a/work", create=False)
    for pipeline in (first, again):
        assert Path(pipeline.pipelines_dir) == tmp_path / "a" / "work" / "pipelines"
        assert Path(pipeline.destination_client().config.credentials.database) == tmp_path / "a" / "work" / "relative_dir.duckdb"
    assert not (tmp_path / "relative_dir.duckdb").exists() and not (tmp_path / "a" / "relative_dir.duckdb").exists()
