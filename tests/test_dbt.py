"""The generated dbt project builds, with dbt-duckdb, the members this tool's own build writes.

One module-scoped load and two dbt invocations (parsing is dbt's slow part): ``dbt build`` on the
first load, then ``dbt run`` after profiles changed, whose membership events must equal the tool's
second build's. The loads keep affinity history, and two history rules join the all-features file. The file's ``as_of`` reaches the SQL as the project's dbt var, so "within N days"
counts back from the instant the tool's build counts from, not from the dbt run's start.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
import tomllib
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from algolia_profiles_source.cli import main
from algolia_profiles_source.emulator import Emulator
from algolia_profiles_source.exceptions import ConfigurationError
from algolia_profiles_source.load.pipeline import make_pipeline
from algolia_profiles_source.segments import build_segments
from algolia_profiles_source.segments.dbt import (
    AS_OF_JINJA,
    Destination,
    project_files,
    write_dbt_project,
)
from algolia_profiles_source.segments.definitions import load_definitions, parse_definitions
from algolia_profiles_source.tables import TRENDS_DAILY
from algolia_profiles_source.times import format_rfc3339
from tests.availability import unavailable
from tests.conftest import API_KEY, APP_ID, run
from tests.postgres_server import postgres_url  # noqa: F401  (session fixture)
from tests.test_postgres_load import pg_pipeline_factory  # noqa: F401  (fixture)
from tests.test_segments import ALL_FEATURES, NOW, add_injection_profile, create_opt_outs

DBT = Path(sys.executable).with_name("dbt")
SCHEMA = "algolia_dbt"
HISTORY_AUDIENCES = ("camping_rose", "category_gone")
CATALOG_MODELS = (("affinity_catalog", "name, value"), ("affinity_index_coverage", "name, value, index_name"),
                  ("user_top_affinities", "user_id, name, affinity_rank"))


def dbt(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false", DBT_PROFILES_DIR=str(project),
               DBT_VERSION_CHECK="false", **(env or {}))
    result = subprocess.run([str(DBT), *args, "--profiles-dir", str(project)], cwd=project, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result


def rows(path: str, sql: str) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as connection:
        return connection.execute(sql).fetchall()


def members(path: str, schema: str) -> dict[str, set[tuple]]:
    found: dict[str, set[tuple]] = {}
    for segment, *member in rows(path, f"SELECT segment, user_id, score, matched_affinities FROM {schema}.segment_members"):
        found.setdefault(segment, set()).add(tuple(member))
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if not DBT.exists():
        unavailable("dbt", f"{DBT} is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("dbt")
    emu = Emulator(app_id=APP_ID, api_key=API_KEY, n_users=300, seed=21, now=NOW).start()
    try:
        add_injection_profile(emu)
        database = str(root / "dbt_profiles.duckdb")
        pipeline = make_pipeline(pipeline_name="dbt_profiles", workdir=str(root))
        run(pipeline, emu, page_size=500, history=True)
        definitions = tomllib.loads(ALL_FEATURES.read_text())
        users = [p["userID"] for p in emu.store.users()]
        definitions["suppression"]["user_ids"] = users[5::41]
        create_opt_outs(pipeline, users[::37])
        # history rules whose *then* falls between the two loads (history is on Algolia's clock)
        stamp = NOW - timedelta(hours=2)
        first_load = max(datetime.fromisoformat(p["lastUpdatedAt"].replace("Z", "+00:00")) for p in emu.store.users())
        days = (NOW - (first_load + (stamp - first_load) / 2)) / timedelta(days=1)
        definitions["audiences"] |= {
            "camping_rose": {"rule": {"history": {"affinity": "category:Camping", "days": days, "rose_by": 5}}},
            "category_gone": {"rule": {"history": {"affinity": "category", "days": days, "then": {"gte": 1},
                                                   "now": "absent"}}},
        }

        build_segments(pipeline, definitions)
        written = write_dbt_project(pipeline, definitions, root / "project")
        dbt(written.path, "build")
        first = {"tool": members(database, "algolia"), "dbt": members(database, SCHEMA),
                 "models": {name: set(rows(database, f"SELECT user_id, score, matched_affinities FROM {SCHEMA}.{model}"))
                            for name, model in written.audiences.items()},
                 "catalogs": {model: (rows(database, f"SELECT * FROM algolia.{model} ORDER BY {key}"),
                                      rows(database, f"SELECT * FROM {SCHEMA}.{model} ORDER BY {key}"))
                              for model, key in CATALOG_MODELS}}

        # campers lose their categories, others gain camping
        stamp = format_rfc3339(stamp)
        leaving = sorted(u for u, *_ in first["tool"]["campers"])[:4]
        for user_id in leaving:
            profile = copy.deepcopy(emu.store.get(user_id))
            profile["affinities"] = [a for a in profile["affinities"] if a["name"] != "category"]
            emu.store.upsert(dict(profile, lastUpdatedAt=stamp))
        for profile in [p for p in emu.store.users() if p["affinities"]][-6:]:
            profile = copy.deepcopy(profile)
            profile["affinities"].append({"name": "category", "value": "Camping", "indices": ["products_en_US"],
                                          "score": 19, "lastUpdatedAt": stamp})
            emu.store.upsert(dict(profile, lastUpdatedAt=stamp))
        run(pipeline, emu, page_size=500, history=True)
        second = build_segments(pipeline, definitions)
        # the audiences and their history, not the catalog models: dbt's time is per node; the
        # same vars, so dbt reuses its parse of the first run
        dbt(written.path, "run", "--select", "+segment_builds")
        yield {"database": database, "root": root, "project": written, "first": first, "leaving": leaving,
               "second_build": second.build_id, "pipeline": pipeline, "definitions": definitions}
    finally:
        emu.stop()


def test_every_audience_has_the_members_of_the_tools_own_build(project):
    first = project["first"]
    assert first["dbt"] == first["tool"]
    audiences = [name for name in project["definitions"]["audiences"]]
    assert set(first["models"]) == set(audiences)
    for name in audiences:
        assert first["models"][name] == first["tool"].get(name, set()), name
    # the all-features file makes every audience non-empty on this data: the comparison bites (the
    # history rules match nobody before the second load)
    assert all(first["tool"].get(name) for name in audiences if name not in HISTORY_AUDIENCES), {
        k: len(v) for k, v in first["tool"].items()}


def test_the_catalog_models_equal_the_tools(project):
    for model, (ours, theirs) in project["first"]["catalogs"].items():
        assert ours == theirs and ours, model


def test_incremental_history_records_who_entered_and_exited_as_the_tool_does(project):
    database = project["database"]
    tool = Counter(rows(database, "SELECT segment, user_id, event FROM algolia.segment_membership_events"
                                  f" WHERE build_id = '{project['second_build']}'"))
    runs = rows(database, f"SELECT build_id, min(built_at) FROM {SCHEMA}.segment_membership_events"
                          " GROUP BY build_id ORDER BY 2")
    assert len(runs) == 2
    first_run, second_run = (build_id for build_id, _ in runs)
    theirs = Counter(rows(database, f"SELECT segment, user_id, event FROM {SCHEMA}.segment_membership_events"
                                    f" WHERE build_id = '{second_run}'"))
    assert theirs == tool
    # the changes bite: leavers exited, someone entered
    assert {("campers", u, "exited") for u in project["leaving"]} <= set(theirs)
    assert {("category_gone", u, "entered") for u in project["leaving"]} <= set(theirs)
    assert any(segment == "camping_rose" for segment, _, _ in theirs)
    assert any(event == "entered" for _, _, event in theirs)
    entered_first = rows(database, f"SELECT count(*) FROM {SCHEMA}.segment_membership_events"
                                   f" WHERE build_id = '{first_run}' AND event = 'entered'")[0][0]
    assert entered_first == sum(len(m) for m in project["first"]["tool"].values())
    assert members(database, SCHEMA) == members(database, "algolia")
    sizes = rows(database, f"SELECT segment, members, entered, exited FROM {SCHEMA}.segment_builds"
                           f" WHERE build_id = '{second_run}' ORDER BY segment")
    assert sizes == rows(database, "SELECT segment, members, entered, exited FROM algolia.segment_builds"
                                   f" WHERE build_id = '{project['second_build']}' ORDER BY segment")


def test_the_project_builds_into_its_own_schema_only(project):
    database = project["database"]
    tables = {name for name, in rows(database, f"SELECT table_name FROM information_schema.tables"
                                               f" WHERE table_schema = '{SCHEMA}'")}
    assert {"stg_algolia__users", "segment_user_flags", "segment_members", "audience__campers"} <= tables
    dataset = {name for name, in rows(database, "SELECT table_name FROM information_schema.tables"
                                                " WHERE table_schema = 'algolia'")}
    assert not any(name.startswith("audience__") or name == "segment_user_flags" for name in dataset)


def test_the_generated_files(project):
    path = project["project"].path
    settings = yaml.safe_load((path / "dbt_project.yml").read_text())
    assert settings["flags"]["send_anonymous_usage_stats"] is False
    assert settings["vars"]["as_of"] == NOW.isoformat()
    profile = yaml.safe_load((path / "profiles.yml").read_text())["algolia_profiles"]
    output = profile["outputs"][profile["target"]]
    assert output["type"] == "duckdb" and output["schema"] == SCHEMA
    assert "env_var(" in output["path"] and project["database"] in output["path"]
    sources = yaml.safe_load((path / "models" / "algolia_profiles" / "sources.yml").read_text())["sources"]
    algolia = next(s for s in sources if s["name"] == "algolia")
    assert algolia["schema"] == "algolia"
    loaded = {t["name"]: t for t in algolia["tables"]}
    assert {"users", "user_affinities", "personalization_config", "crm_opted_out"} <= set(loaded)
    assert loaded["users"]["config"]["loaded_at_field"] == "last_updated_at"
    # affinity history is loaded: its source and the trend models are in the project
    assert "user_affinities_history" in loaded
    assert (path / "models" / "algolia_profiles" / "marts" / f"{TRENDS_DAILY}.sql").exists()
    campers = (path / "models" / "algolia_profiles" / "audiences" / "audience__recent_campers_not_kids.sql").read_text()
    assert "{{ ref('audience__campers') }}" in campers and "{{ ref('segment_user_flags') }}" in campers
    assert AS_OF_JINJA in campers and "INTERVAL 2592000 SECOND" in campers  # 30 days back from as_of
    text = "".join(p.read_text() for p in path.rglob("*") if p.is_file() and "target" not in p.parts
                   and "logs" not in p.parts)
    assert "__algolia" not in text and API_KEY not in text


def test_every_dialect_renders_refs_and_the_as_of_var():
    file = load_definitions(ALL_FEATURES)
    for kind, settings in (("postgres", {"host": "db", "port": 5432, "user": "loader", "dbname": "shop"}),
                           ("snowflake", {"account": "acme", "user": "loader", "database": "SHOP"}),
                           ("bigquery", {"project": "acme"})):
        files = project_files(file, Destination(kind, "algolia", settings), "algolia_dbt")
        flags = files["models/algolia_profiles/audiences/segment_user_flags.sql"]
        assert "{{ source('algolia', 'user_affinities') }}" in flags
        # an affinity rule's "within N days" is a flag; a profile rule's is the audience's
        assert AS_OF_JINJA in flags, kind
        assert AS_OF_JINJA in files["models/algolia_profiles/audiences/audience__predictive_or_realtime.sql"], kind
        profile = yaml.safe_load(files["profiles.yml"])["algolia_profiles"]["outputs"][kind]
        secrets = [v for k, v in profile.items() if k in ("password", "keyfile")]
        assert secrets and all(v.startswith("{{ env_var(") for v in secrets), profile
        assert profile.get("schema", profile.get("dataset")) == "algolia_dbt"
    postgres = project_files(file, Destination("postgres", "algolia", {}), "algolia_dbt")
    assert "jsonb" in postgres["models/algolia_profiles/audiences/segment_user_flags.sql"].lower()


def test_a_suppression_table_in_another_schema_is_its_own_source():
    file = parse_definitions({"suppression": {"table": "crm.opted_out", "column": "token"},
                              "audiences": {"basic-users": {"rule": {"profile": {"types": ["basic"]}}}}})
    files = project_files(file, Destination("duckdb", "algolia", {"path": "x.duckdb"}), "algolia_dbt")
    model = files["models/algolia_profiles/audiences/audience__basic_users.sql"]
    assert "{{ source('crm', 'opted_out') }}" in model
    sources = {s["name"]: s for s in yaml.safe_load(files["models/algolia_profiles/sources.yml"])["sources"]}
    assert sources["crm"]["schema"] == "crm" and [t["name"] for t in sources["crm"]["tables"]] == ["opted_out"]


def test_the_tools_dataset_is_refused_as_the_projects_schema():
    file = load_definitions(ALL_FEATURES)
    with pytest.raises(ConfigurationError, match="its own schema"):
        project_files(file, Destination("duckdb", "algolia", {"path": "x.duckdb"}), "algolia")


def test_cli_writes_the_project_and_refuses_a_foreign_one(project, tmp_path, capsys):
    pipeline = project["pipeline"]
    args = ["segments", "dbt", "--pipeline-name", pipeline.pipeline_name, "--dir", str(project["root"]),
            "--file", str(ALL_FEATURES)]
    out = tmp_path / "generated"
    # a stale model of an audience the file no longer defines goes away on regeneration
    stale = out / "models" / "algolia_profiles" / "audiences" / "audience__gone.sql"
    with pytest.raises(SystemExit) as done:
        main([*args, "--out", str(out)])
    assert done.value.code == 0, capsys.readouterr().err
    stale.write_text("select 1")
    with pytest.raises(SystemExit) as done:
        main([*args, "--out", str(out)])
    assert done.value.code == 0 and not stale.exists()
    assert "10 audience model(s)" in capsys.readouterr().out

    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "dbt_project.yml").write_text("name: theirs\n")
    for bad, message in (([*args, "--out", str(foreign)], "did not write"),
                         ([*args, "--out", str(out), "--schema", "algolia"], "its own schema")):
        with pytest.raises(SystemExit) as done:
            main(bad)
        error = capsys.readouterr().err
        assert done.value.code == 2 and error.startswith("error: ") and message in error, error
    assert (foreign / "dbt_project.yml").read_text() == "name: theirs\n"


def test_postgres_builds_the_members_of_the_tools_own_build(emulator_factory, pg_pipeline_factory, postgres_url):  # noqa: F811
    """dbt-postgres on a real server: one ``dbt build`` (its data tests included), the password
    read through ``env_var()``."""
    import psycopg2

    if not DBT.exists():
        unavailable("dbt", f"{DBT} is not installed (pip install -e '.[test]')")
    emu = emulator_factory(n_users=150, seed=21, now=NOW)
    add_injection_profile(emu)
    pipeline = pg_pipeline_factory()
    run(pipeline, emu, page_size=500)
    definitions = tomllib.loads(ALL_FEATURES.read_text())
    users = [p["userID"] for p in emu.store.users()]
    definitions["suppression"]["user_ids"] = users[5::41]
    create_opt_outs(pipeline, users[::37])
    build_segments(pipeline, definitions)
    written = write_dbt_project(pipeline, definitions, Path(pipeline.pipelines_dir).parent / "project")
    output = yaml.safe_load((written.path / "profiles.yml").read_text())["algolia_profiles"]["outputs"]["postgres"]
    assert output["password"] == "{{ env_var('DESTINATION__POSTGRES__CREDENTIALS__PASSWORD') }}"
    try:
        dbt(written.path, "build", env={"DESTINATION__POSTGRES__CREDENTIALS__PASSWORD": ""})
        with contextlib.closing(psycopg2.connect(postgres_url)) as connection, connection.cursor() as cursor:
            found = {}
            for schema in (pipeline.dataset_name, written.schema):
                cursor.execute(f'SELECT segment, user_id, score, matched_affinities FROM "{schema}".segment_members')
                found[schema] = Counter(cursor.fetchall())
        assert found[written.schema] == found[pipeline.dataset_name] and len(found[written.schema]) > 100
    finally:
        with contextlib.closing(psycopg2.connect(postgres_url)) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{written.schema}" CASCADE')
