"""Snowflake end to end, on fakesnow (dlt's real snowflake destination, DuckDB underneath, in this
process), next to DuckDB on the same emulator data:

1. a full load, an incremental merge (same-second, back-dated, new, shrunk and emptied profiles)
   and a reconcile (profiles deleted from the emulator get ``deleted_at``): after each, the tables,
   read back through the project's one read path, equal the emulator's data;
2. the bundled example audiences and ``tests/data/audiences_all_features.toml`` built in the
   warehouse equal the independent oracle;
3. every read path gives on Snowflake what it gives on DuckDB: the CLI's ``status``, ``segments
   list/sizes/overlaps/show``, ``export`` (plain, joined to a customers file, joined to a customers
   table in the warehouse) and ``report``, and the Python API (``algolia_profiles_source.api``).

One module-scoped world (fakesnow re-translates every statement through sqlglot, so each Snowflake
build costs seconds): one emulator, both warehouses loaded stage by stage in lock-step, each stage's
tables read back right after it, one build per audience file and warehouse. The CLI runs in process
(click's CliRunner, so fakesnow's patch applies) with ``--destination snowflake`` and the
credentials in ``DESTINATION__SNOWFLAKE__CREDENTIALS``, exactly as a user configures it.

Only what legitimately differs between the two is normalized before comparing: the pipeline's
name, folder and destination, DuckDB's database line, the output folder, wall-clock times of loads
and reconciles, and each warehouse's own build times and build ids (two builds, two instants) —
which must still appear, rendered the same way.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set

import pytest
from click.testing import CliRunner

from algolia_profiles_source import api
from algolia_profiles_source.cli import cli
from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from algolia_profiles_source.emulator import Emulator
from algolia_profiles_source.segments.report import collect
from algolia_profiles_source.warehouse.read import read_rows
from tests.conftest import API_KEY, APP_ID, expected_snapshot, source_args
from tests.test_segments import ALL_FEATURES, NOW, add_injection_profile, create_opt_outs, expected, members_of
from tests.test_source_e2e import _apply_changes
from tests.warehouses.fixtures import SNOWFLAKE_URL, require_fakesnow, snowflake_credentials

N_USERS = 400
PAGE_SIZE = 60  # 7 pages for a full walk
STAGES = ("full", "incremental", "reconcile")
WAREHOUSES = ("snowflake", "duckdb")
DATASET = "algolia"
CUSTOMERS_TABLE = "crm_customers"
#: the environment of every CLI run: how a user points ``--destination snowflake`` at an account
CLI_ENV = {"DESTINATION__SNOWFLAKE__CREDENTIALS": SNOWFLAKE_URL}


@dataclass
class Warehouse:
    name: str
    pipeline: Any
    workdir: Path
    runs: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # stage -> the run's counters
    start_dates: Dict[str, Set[Any]] = field(default_factory=dict)  # stage -> startDate params sent
    tables: Dict[str, Dict[str, List[Dict[str, Any]]]] = field(default_factory=dict)  # stage -> rows
    builds: Dict[str, Any] = field(default_factory=dict)  # audience file -> BuildResult
    plans: Dict[str, Any] = field(default_factory=dict)  # audience file -> PlanResult of its build
    members: Dict[str, Dict[str, Dict[str, Any]]] = field(default_factory=dict)  # file -> members

    @property
    def options(self) -> List[str]:
        """The CLI options that open this warehouse's pipeline."""
        options = ["--pipeline-name", self.pipeline.pipeline_name, "--dataset-name", DATASET,
                   "--dir", str(self.workdir)]
        return options + (["--destination", "snowflake"] if self.name == "snowflake" else [])


@dataclass
class World:
    emu: Emulator
    root: Path
    warehouses: Dict[str, Warehouse]
    profiles: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)  # stage -> emulator data
    deleted: Set[str] = field(default_factory=set)
    all_features: Dict[str, Any] = field(default_factory=dict)
    opted_out: List[str] = field(default_factory=list)
    customers_file: Path = Path()
    customers: Dict[str, bool] = field(default_factory=dict)  # user_token -> opted out

    def load(self, stage: str, reconcile: bool = False) -> None:
        self.profiles[stage] = self.emu.store.users()
        for warehouse in self.warehouses.values():
            self.emu.clear_requests()
            result = api.load(warehouse.pipeline, reconcile=reconcile, **source_args(self.emu, page_size=PAGE_SIZE))
            warehouse.runs[stage] = result.run
            warehouse.start_dates[stage] = {
                r.params.get("startDate") for r in self.emu.requests if r.path == "/2/users"}
            warehouse.tables[stage] = {
                table: read_rows(warehouse.pipeline, table) for table in ("users", "user_affinities")}

    def oracle(self, audiences: str) -> Dict[str, Dict[str, Any]]:
        if audiences == "all_features":
            return expected(self.emu, self.all_features, self.opted_out)
        definitions = tomllib.loads(EXAMPLE_AUDIENCES.read_text())
        return expected(self.emu, {**definitions, "settings": {"as_of": NOW}})


def create_customers_table(pipeline: Any, customers: Dict[str, bool]) -> None:
    """The customer's own CRM table in the warehouse, made the usual way (unquoted column names,
    which Snowflake stores upper-cased)."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(CUSTOMERS_TABLE)
        client.execute_sql(
            f"CREATE TABLE {table} (customer_id BIGINT, user_token TEXT, email TEXT, opted_out BOOLEAN)")
        values = ", ".join(
            f"({i}, '{token}', 'c{i}@example.com', {str(opted).upper()})"
            for i, (token, opted) in enumerate(sorted(customers.items())))
        client.execute_sql(f"INSERT INTO {table} VALUES {values}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: Any) -> Iterator[World]:
    require_fakesnow()
    import dlt

    from tests.warehouses.snowflake_shims import DESTINATION_OPTIONS, fakesnow_snowflake

    root = tmp_path_factory.mktemp("snowflake_e2e")
    (root / "fakesnow").mkdir()
    with Emulator(app_id=APP_ID, api_key=API_KEY, n_users=N_USERS, seed=21, now=NOW) as emu, \
            fakesnow_snowflake(root / "fakesnow"):
        add_injection_profile(emu)
        snowflake = dlt.destinations.snowflake(credentials=snowflake_credentials(), **DESTINATION_OPTIONS)
        warehouses = {
            "snowflake": Warehouse("snowflake", api.make_pipeline(
                "e2e_snowflake", snowflake, DATASET, workdir=str(root / "snowflake")), root / "snowflake"),
            "duckdb": Warehouse("duckdb", api.make_pipeline(
                "e2e_duckdb", "duckdb", DATASET, workdir=str(root / "duckdb")), root / "duckdb"),
        }
        world = World(emu, root, warehouses)

        world.load("full")
        _apply_changes(emu)
        world.load("incremental")
        users = [p["userID"] for p in emu.store.users()]
        world.deleted = set(users[7::30])
        for user_id in world.deleted:
            assert emu.store.delete(user_id)
        world.load("reconcile", reconcile=True)

        # the audiences: every feature (with a suppression table), then the bundled examples
        users = [p["userID"] for p in emu.store.users()]
        world.opted_out = users[::37]
        world.all_features = tomllib.loads(ALL_FEATURES.read_text())
        world.all_features["suppression"]["user_ids"] = users[5::41]
        # customers: all users but every fourth (members without a record); every fifth opted out
        world.customers = {token: i % 5 == 0 for i, token in enumerate(users) if i % 4 != 3}
        world.customers_file = root / "customers.csv"
        with world.customers_file.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["customer_id", "user_token", "email", "opted_out"])
            for i, (token, opted) in enumerate(sorted(world.customers.items())):
                writer.writerow([i, token, f"c{i}@example.com", "true" if opted else "false"])
        for warehouse in warehouses.values():
            create_opt_outs(warehouse.pipeline, world.opted_out)
            create_customers_table(warehouse.pipeline, world.customers)
            warehouse.builds["all_features"] = api.segments_build(warehouse.pipeline, copy.deepcopy(world.all_features))
            warehouse.members["all_features"] = members_of(warehouse.pipeline)
            warehouse.plans["examples"] = api.segments_plan(warehouse.pipeline, EXAMPLE_AUDIENCES, as_of=NOW)
            warehouse.builds["examples"] = api.segments_build(warehouse.pipeline, EXAMPLE_AUDIENCES, as_of=NOW, retire=True)
            warehouse.members["examples"] = members_of(warehouse.pipeline)
        yield world


# --------------------------------------------------------------------------------------------------
# 1. loads
# --------------------------------------------------------------------------------------------------


def tables_snapshot(tables: Dict[str, List[Dict[str, Any]]]):
    """(live users and affinities shaped like ``expected_snapshot``, deleted user ids), from the rows
    the read path returned; fails on duplicate keys and on a merge marker left in the table."""
    deleted = {row["user_id"] for row in tables["users"] if row["deleted_at"] is not None}
    users: Dict[str, Any] = {}
    for row in tables["users"]:
        assert row["user_id"] not in users, f"duplicate user {row['user_id']}"
        users[row["user_id"]] = (row["type"], row["last_updated_at"], row["affinity_count"])
    affinities: Dict[Any, Any] = {}
    for row in tables["user_affinities"]:
        key = (row["user_id"], row["name"], row["value"])
        assert key not in affinities, f"duplicate affinity {key}"
        assert row["_deleted"] is None, f"a zero-affinity marker row was inserted: {key}"
        indices = json.loads(row["indices"]) if isinstance(row["indices"], str) else row["indices"]
        affinities[key] = (row["score"], sorted(indices), row["last_updated_at"])
    live_users = {k: v for k, v in users.items() if k not in deleted}
    live_affinities = {k: v for k, v in affinities.items() if k[0] not in deleted}
    return (live_users, live_affinities), deleted, users


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("name", WAREHOUSES)
def test_tables_equal_the_emulator_after_each_load(world, name, stage):
    warehouse = world.warehouses[name]
    (users, affinities), deleted, every_user = tables_snapshot(warehouse.tables[stage])
    want_users, want_affinities = expected_snapshot(world.profiles[stage])
    missing, extra = want_users.keys() - users.keys(), users.keys() - want_users.keys()
    assert not missing and not extra, f"users missing {sorted(missing)[:5]} extra {sorted(extra)[:5]}"
    wrong = [k for k in want_users if want_users[k] != users[k]]
    assert not wrong, f"user {wrong[0]}: {want_users[wrong[0]]} != {users[wrong[0]]}"
    missing, extra = want_affinities.keys() - affinities.keys(), affinities.keys() - want_affinities.keys()
    assert not missing and not extra, f"affinities missing {sorted(missing)[:3]} extra {sorted(extra)[:3]}"
    wrong = [k for k in want_affinities if want_affinities[k] != affinities[k]]
    assert not wrong, f"affinity {wrong[0]}: {want_affinities[wrong[0]]} != {affinities[wrong[0]]}"
    # the data has what the stages are about: zero-affinity users, and the reconcile's deletions
    assert any(count == 0 for _, _, count in want_users.values())
    if stage == "reconcile":
        assert deleted == world.deleted and len(deleted) > 5
        assert every_user.keys() >= deleted  # rows kept as history
    else:
        assert deleted == set()


def test_the_stages_did_what_they_are_for(world):
    """Incremental: one window from the cursor minus the overlap, few profiles, the shrunk and emptied
    profiles' old affinities gone. Reconcile: a full walk that marked exactly the deleted profiles."""
    changed = [p for p in world.profiles["incremental"] if p["userID"].startswith("new+user/")]
    assert len(changed) == 3
    for name, warehouse in world.warehouses.items():
        full, incremental, reconcile = (warehouse.runs[s] for s in STAGES)
        assert full["initial"] is True and full["profiles"] == N_USERS + 1 and full["pages"] > 5, (name, full)
        assert warehouse.start_dates["full"] == {None}
        assert incremental["initial"] is False and 0 < incremental["profiles"] < 0.3 * N_USERS, (name, incremental)
        assert len(warehouse.start_dates["incremental"]) == 1 and None not in warehouse.start_dates["incremental"]
        assert reconcile["reconcile"] is True and reconcile["deleted"] == len(world.deleted), (name, reconcile)
        assert warehouse.start_dates["reconcile"] == {None}
    assert world.warehouses["snowflake"].start_dates == world.warehouses["duckdb"].start_dates
    # what the incremental merge had to change is really different from the full load
    assert tables_snapshot(world.warehouses["snowflake"].tables["full"])[0] != \
        tables_snapshot(world.warehouses["snowflake"].tables["incremental"])[0]


# --------------------------------------------------------------------------------------------------
# 2. audiences
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("audiences", ["all_features", "examples"])
@pytest.mark.parametrize("name", WAREHOUSES)
def test_audiences_equal_the_oracle(world, name, audiences):
    warehouse = world.warehouses[name]
    want = world.oracle(audiences)
    got = warehouse.members[audiences]
    assert set(got) == set(want), set(got) ^ set(want)
    for audience in want:
        assert got[audience] == want[audience], f"{audience}: {len(got[audience])} members vs oracle {len(want[audience])}"
    if audiences == "all_features":
        assert len(got["top_overall"]) == 25 and got["unusual_values"]["obrien-user"] == (11.0, 1)
        assert not set(world.opted_out) & set().union(*map(set, got.values()))
    else:
        assert all(len(members) > 10 for members in want.values()), {k: len(v) for k, v in want.items()}
    # the build's own result, read back through the read path: lower-case keys, ints for counts
    sizes = warehouse.builds[audiences].sizes
    assert all(set(row) == {"segment", "members", "entered", "exited", "share_of_users", "built_at", "build_id"}
               for row in sizes), sizes[0]
    assert {row["segment"]: row["members"] for row in sizes if row["members"]} == {k: len(v) for k, v in want.items()}
    assert all(type(row[c]) is int for row in sizes for c in ("members", "entered", "exited")), sizes
    if audiences == "examples":  # planned against the all_features build, whose audiences it retires
        plan = warehouse.plans[audiences]
        counts = ("members", "entered", "exited")
        assert {r["segment"]: tuple(r[c] for c in counts) for r in plan.sizes} == \
            {r["segment"]: tuple(r[c] for c in counts) for r in sizes}
        assert set(plan.retiring) == {r["segment"] for r in warehouse.builds["all_features"].sizes} - set(want)


# --------------------------------------------------------------------------------------------------
# 3. every read path: Snowflake gives what DuckDB gives
# --------------------------------------------------------------------------------------------------


def invoke(world: World, name: str, *args: str) -> str:
    """``algolia-profiles ARGS`` on one warehouse (its options appended); stdout, normalized."""
    warehouse = world.warehouses[name]
    result = CliRunner().invoke(cli, [*args, *warehouse.options], env=CLI_ENV, catch_exceptions=False)
    assert result.exit_code == 0, f"{name}: algolia-profiles {' '.join(args)}: {result.output}"
    return normalize(world, name, result.stdout)


def build_renderings(build: Any) -> Dict[str, str]:
    """The ways a build's time and id appear in outputs, each with its placeholder."""
    built_at: datetime = build.built_at
    return {
        str(built_at): "<built_at>",  # a datetime printed (tables, titles, JSON)
        built_at.strftime("%Y-%m-%d %H:%M:%S.%f") + "Z": "<built_at>",  # Arrow's CSV writer
        built_at.isoformat(): "<built_at>",
        build.build_id: "<build_id>",
    }


def normalize(world: World, name: str, text: str) -> str:
    """Replaces what legitimately differs between the two warehouses' outputs."""
    warehouse = world.warehouses[name]
    for build in warehouse.builds.values():
        for rendering, placeholder in build_renderings(build).items():
            text = text.replace(rendering, placeholder)
    text = text.replace(str(warehouse.workdir), "<workdir>").replace(str(world.root / f"out_{name}"), "<out>")
    text = text.replace(warehouse.pipeline.pipeline_name, "<pipeline>")
    # the report's time axis shows seconds only when two builds fell in the same minute
    text = re.sub(r"%H:%M(:%S(\.%L)?)?", "<time of day>", text)
    lines = []
    for line in text.splitlines():
        if line.startswith("database: "):  # DuckDB's file; other destinations have none
            continue
        line = re.sub(r"^pipeline <pipeline> -> \w+:", "pipeline <pipeline> -> <destination>:", line)
        line = re.sub(r"^last load: \S+ -> \S+,", "last load: <started> -> <finished>,", line)
        line = re.sub(r"^reconcile: last \S+,", "reconcile: last <reconciled_at>,", line)
        lines.append(line)
    return "\n".join(lines)


def same_on_both(world: World, *args: str) -> str:
    snowflake, duckdb = (invoke(world, name, *args) for name in WAREHOUSES)
    assert snowflake == duckdb
    return snowflake


def test_cli_status(world):
    text = same_on_both(world, "status")
    assert "last load: <started> -> <finished>," in text and "(reconcile)" in text
    assert "reconcile: last <reconciled_at>, not due" in text
    assert re.search(rf"^ +users +{len(world.emu.store) + len(world.deleted)} rows$", text, re.MULTILINE), text
    assert "outdoor_enthusiasts" in text


def status_content(info: Dict[str, Any], name: str) -> Dict[str, Any]:
    """What ``status`` says about the data, without where it lives and when things ran."""
    info = copy.deepcopy(info)
    assert info.pop("destination") == name and info.pop("dataset") == DATASET
    for key in ("pipeline", "working_dir", "database"):
        info.pop(key)
    run = info["last_run"]
    for key in ("started_at", "finished_at", "load_id"):
        assert run.pop(key)
    assert info.pop("last_reconcile_at")
    for row in info["audiences"]:
        assert row.pop("built_at") and row.pop("build_id")
    return info


def test_cli_status_json(world):
    infos = {name: json.loads(invoke(world, name, "status", "--json")) for name in WAREHOUSES}
    snowflake, duckdb = (status_content(infos[name], name) for name in WAREHOUSES)
    assert snowflake == duckdb
    assert snowflake["tables"]["users"] == len(world.emu.store) + len(world.deleted)
    assert snowflake["last_run"]["reconcile"] is True and snowflake["reconcile_due"] is False
    assert [a["segment"] for a in snowflake["audiences"]] == sorted(world.oracle("examples"))


def test_cli_segments_list(world):
    assert same_on_both(world, "segments", "list").split() == sorted(world.oracle("examples"))


def test_cli_segments_sizes(world):
    text = same_on_both(world, "segments", "sizes")
    assert "(built <built_at>)" in text
    for audience, members in world.oracle("examples").items():
        assert re.search(rf"{audience[:15]}\S*\s+│\s+{len(members)} │", text), (audience, text)


def test_cli_segments_overlaps(world):
    text = same_on_both(world, "segments", "overlaps")
    pairs = len(world.oracle("examples")) * (len(world.oracle("examples")) - 1) // 2
    assert text.count("\n│ ") == pairs, text


@pytest.mark.parametrize("audience", ["outdoor_enthusiasts", "brand_loyalists"])
def test_cli_segments_show(world, audience):
    text = same_on_both(world, "segments", "show", audience, "--limit", "30")
    members = world.oracle("examples")[audience]
    assert f"{audience}: {len(members)} members" in text and "│ <built_at> │" in text
    top = sorted(members, key=lambda user_id: (-members[user_id][0], user_id))[:30]
    assert f"Top {len(top)} members" in text
    shown = re.findall(r"^│ (\S+) +│ +[\d.]+ │ +\d+ │$", text, re.MULTILINE)
    assert shown == top


def exported(world: World, name: str, *options: str) -> tuple[str, str]:
    """(normalized message, normalized file) of ``export`` into the warehouse's own output folder."""
    output_dir = world.root / f"out_{name}"
    message = invoke(world, name, "export", *options, "--output-dir", str(output_dir), "--overwrite")
    path = re.search(r" to (\S+)$", message.splitlines()[0]).group(1).replace("<out>", str(output_dir))
    return message, normalize(world, name, Path(path).read_text())


def export_on_both(world: World, *options: str) -> tuple[str, List[Dict[str, str]]]:
    (message, text), other = (exported(world, name, *options) for name in WAREHOUSES)
    assert (message, text) == other
    return message, list(csv.DictReader(text.splitlines()))


def test_cli_export_csv(world):
    message, rows = export_on_both(world, "outdoor_enthusiasts")
    members = world.oracle("examples")["outdoor_enthusiasts"]
    assert f"Wrote {len(members)} rows of outdoor_enthusiasts" in message
    assert {row["user_id"]: (float(row["score"]), int(row["matched_affinities"])) for row in rows} == members
    assert {row["built_at"] for row in rows} == {"<built_at>"}


def sendable(world: World, audience: str) -> Set[str]:
    """Members with a customer record that did not opt out."""
    members = world.oracle("examples")[audience]
    return {u for u in members if u in world.customers and not world.customers[u]}


@pytest.mark.parametrize("join", ["--customers", "--customers-table"])
def test_cli_export_joined_to_customers(world, join):
    audience = "brand_loyalists"
    customers = str(world.customers_file) if join == "--customers" else CUSTOMERS_TABLE
    message, rows = export_on_both(world, audience, join, customers)
    members = world.oracle("examples")[audience]
    unmatched = len([u for u in members if u not in world.customers])
    opted_out = len([u for u in members if world.customers.get(u)])
    assert unmatched and opted_out
    assert f"{unmatched} members had no customer record (left out); {opted_out} opted out" in message
    assert {row["user_id"] for row in rows} == sendable(world, audience)
    assert {"email", "opted_out", "customer_id"} <= set(rows[0]) and all(r["email"].endswith("@example.com") for r in rows)


def comparable_report(data: Dict[str, Any], builds: Dict[str, Any]) -> Dict[str, Any]:
    """The report's numbers without build times and ids (checked to be this warehouse's own)."""
    data = copy.deepcopy(data)
    times = {b.built_at for b in builds.values()}
    ids = {b.build_id for b in builds.values()}
    for section in ("sizes", "history", "overlaps"):
        for row in data[section]:
            assert row.pop("built_at") in times, row
            if "build_id" in row:
                assert row.pop("build_id") in ids, row
    return data


def assert_close(left: Any, right: Any, where: str = "") -> None:
    if isinstance(left, float) or isinstance(right, float):
        assert isinstance(left, (int, float)) and isinstance(right, (int, float)), (where, left, right)
        assert math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-9), (where, left, right)
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys(), (where, left, right)
        for key in left:
            assert_close(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, (list, tuple)):
        assert isinstance(right, (list, tuple)) and len(left) == len(right), (where, left, right)
        for i, (x, y) in enumerate(zip(left, right)):
            assert_close(x, y, f"{where}[{i}]")
    else:
        assert type(left) is type(right) and left == right, (where, left, right)


def test_report_numbers(world):
    snowflake, duckdb = (
        comparable_report(collect(world.warehouses[name].pipeline), world.warehouses[name].builds)
        for name in WAREHOUSES)
    assert_close(snowflake, duckdb)
    assert [r["segment"] for r in snowflake["sizes"]] == sorted(world.oracle("examples"))
    assert len(snowflake["history"]) == len(world.all_features["audiences"]) + len(world.oracle("examples"))
    assert len(snowflake["catalog"]) > 50 and len(snowflake["buckets"]) > 20 and snowflake["freshness"]


def test_cli_report(world):
    pages = {}
    for name in WAREHOUSES:
        path = world.root / f"out_{name}" / "report.html"
        message = invoke(world, name, "report", "--output", str(path), "--overwrite")
        assert message == "Wrote <out>/report.html"
        html = normalize(world, name, path.read_text())
        pages[name] = re.sub(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "generated <now>", html)
    assert pages["snowflake"] == pages["duckdb"]
    assert "outdoor_enthusiasts" in pages["snowflake"] and "2 build(s)" in pages["snowflake"]


def test_python_api(world):
    """The functions the commands call: status, export, and the builds' results."""
    snowflake, duckdb = (status_content(api.status(world.warehouses[name].pipeline), name) for name in WAREHOUSES)
    assert snowflake == duckdb and snowflake["tables"]["user_affinities"] > 1000
    files = {}
    for name in WAREHOUSES:
        result = api.export(world.warehouses[name].pipeline, "kids_shoppers", output_dir=world.root / f"api_{name}",
                            fmt="jsonl", customers_table=CUSTOMERS_TABLE, keep_unmatched=True)
        files[name] = (result.rows, result.members, result.unmatched, result.opted_out,
                       normalize(world, name, result.path.read_text()))
    assert files["snowflake"] == files["duckdb"]
    rows = [json.loads(line) for line in files["snowflake"][-1].splitlines()]
    members = world.oracle("examples")["kids_shoppers"]
    assert {r["user_id"] for r in rows} == {u for u in members if not world.customers.get(u)}
    assert all(set(r) >= {"user_id", "score", "matched_affinities", "built_at", "user_token", "email"} for r in rows)
    for audiences in ("all_features", "examples"):
        sizes = [{k: v for k, v in row.items() if k not in ("built_at", "build_id")}
                 for name in WAREHOUSES for row in world.warehouses[name].builds[audiences].sizes]
        half = len(sizes) // 2
        assert_close(sizes[:half], sizes[half:], audiences)
