"""The docs hold: the Python API page runs as written (against the emulator, in a temporary folder),
the README keeps its two first commands, its commands exist, and every link in the docs resolves."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import duckdb
import pytest

from algolia_profiles_source.cli import cli
from algolia_profiles_source.emulator import Emulator
from tests.conftest import API_KEY, APP_ID

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, REPO / "CONTRIBUTING.md", REPO / "benchmarks" / "RESULTS.md", *sorted((REPO / "docs").glob("*.md"))]

DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/algolia-profiles demo"
TEST_COMMAND = 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'


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
        plan, sizes = ast.literal_eval(lines[2]), ast.literal_eval(lines[3])
        assert set(sizes) == {"campers", "not_campers"} and sizes["campers"] > 0 and sizes["not_campers"] > 0
        assert plan == {name: (members, members, 0) for name, members in sizes.items()}  # the first build
        assert lines[4] == "warnings: []"
        assert lines[5] == f"{sizes['campers']} rows in campers.parquet"
        assert lines[6] == "0 rows removed; 1 on the suppression list"
        assert lines[7] == "300 users"
        assert lines[8] == "failed checks: []"  # doctor reads the credentials from dlt config, like load
        assert lines[9] == "300 users in my_algolia_profiles.duckdb"

        # the same script again, as a schedule runs it, after a profile was deleted in Algolia
        gone = emu.store.users()[0]["userID"]
        assert emu.store.delete(gone)
        lines = run_page()
        assert lines[1] == "1 marked deleted"
        plan, sizes = ast.literal_eval(lines[2]), ast.literal_eval(lines[3])
        assert {name: members for name, (members, _, _) in plan.items()} == sizes
        assert lines[7] == "300 users"  # deleted users keep their row (history)
        assert lines[8] == "failed checks: []"

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


# ---------------------------------------------------------------- the README


def test_readme_first_two_commands_are_the_demo_and_the_test_suite():
    blocks = code_blocks(README.read_text(), "bash")
    assert [block.strip() for block in blocks[:2]] == [DEMO_COMMAND, TEST_COMMAND]
    # .ci/run runs exactly the README's test command
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert ci_lines[-1] == TEST_COMMAND


def test_readme_is_short_and_says_how_to_get_the_command_on_path():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    blocks = code_blocks(text, "bash")
    assert blocks[2].splitlines()[0] == "source .venv/bin/activate"
    assert text.count("Exit codes") == 1  # stated once
    assert "algolia_profiles_source.api" in text
    for other_story in ("build_segments", "export_audience", "segments.export"):
        assert other_story not in text, other_story


def readme_cli_commands() -> list[list[str]]:
    commands = []
    for block in code_blocks(README.read_text(), "bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("algolia-profiles "):
                commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.parametrize("argv", readme_cli_commands(), ids=" ".join)
def test_readme_commands_exist_with_their_options(argv):
    command: click.Command = cli
    args = list(argv)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in command.commands, f"no command {name!r} in {argv}"
        command = command.commands[name]
    options = {opt for param in command.params for opt in param.opts if opt.startswith("-")} | {"-h", "--help"}
    for arg in args:
        if arg.startswith("-"):
            assert arg.split("=", 1)[0] in options, f"{arg} is not an option of {' '.join(argv)}"


def test_readme_suggests_no_program_that_is_not_installed():
    for block in code_blocks(README.read_text(), "bash"):
        for line in block.splitlines():
            program = line.split("#", 1)[0].strip().split(" ", 1)[0]
            assert program in ("", "python3", "python", "source", "cp", "algolia-profiles", "dlt"), line


# ---------------------------------------------------------------- every doc


def github_anchor(heading: str) -> str:
    anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return anchor.replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(doc):
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"https?://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.exists(), f"{doc.name}: broken link {target}"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", resolved.read_text(), flags=re.M)
            assert anchor in {github_anchor(h) for h in headings}, f"{doc.name}: no heading for {target}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_machine_paths(doc):
    folders = ("work", "home", "tmp", "Users", "root")  # spelled apart: this file holds no path itself
    for pattern in (*(f"/{folder}/" for folder in folders), r"[A-Z]:\\\\"):
        assert not re.search(pattern, doc.read_text()), f"{doc.name} contains {pattern}"
