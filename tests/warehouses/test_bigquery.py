"""BigQuery, emulated by bqemulator (DuckDB underneath, SQL translated by sqlglot), through the official
client: the product end to end on dlt's bigquery destination (load, merge, reconcile, both audience
files against the oracle); the compiled model and audience SQL against DuckDB's build, table by table;
and dlt's own BigQuery load and merge into the emulator.

Equal results here prove that the SQL translates and runs, not every behaviour of real BigQuery
(APPROX_QUANTILES is approximate by definition; NUMERIC results, collation).
"""

from __future__ import annotations

import io
import json
import tomllib
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from algolia_profiles_source.emulator import Emulator
from algolia_profiles_source.pipeline import make_pipeline
from algolia_profiles_source.segments import (
    build_segments, load_definitions, model_statements, plan_segments, segment_statements, static_target,
)
from tests.conftest import API_KEY, APP_ID, assert_warehouse_equals_emulator, run
from tests.test_segments import ALL_FEATURES, NOW, add_injection_profile, expected, members_of
from tests.test_segments_postgres import close
from tests.warehouses.bigquery_server import (  # noqa: F401  (fixtures)
    PROJECT, bigquery_client, bigquery_destination, bigquery_endpoint,
)

TABLES = ("users", "user_affinities", "personalization_config")
DATASET = "algolia_probe"
BUILD_ID = "20261128T060000000000Z"

# dlt's sql client asks google-cloud-bigquery for a Storage API client it does not need
pytestmark = pytest.mark.filterwarnings("ignore:Cannot create BigQuery Storage client:UserWarning")


def bigquery_type(data_type: str) -> str:
    """The column type dlt's BigQuery destination creates for a dlt data type."""
    from dlt.destinations.impl.bigquery.factory import BigQueryTypeMapper

    return {**BigQueryTypeMapper.sct_to_unbound_dbt, "decimal": "NUMERIC"}[data_type]


def _jsonable(value: Any, data_type: str) -> Any:
    if value is None:
        return None
    if data_type == "json":
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, (date, Decimal)):
        return str(value)
    return value


def copy_to_bigquery(duck_pipeline: Any, bq: Any, dataset: str) -> Dict[str, int]:
    """Every column of the profile tables, from the DuckDB pipeline into ``dataset`` (created)."""
    from google.cloud import bigquery

    bq.create_dataset(dataset, exists_ok=True)
    counts = {}
    for table in TABLES:
        columns = duck_pipeline.default_schema.get_table_columns(table)
        with duck_pipeline.sql_client() as client:
            name = client.make_qualified_table_name(table)
            with client.execute_query(f"SELECT * FROM {name}") as cursor:
                names = [c[0] for c in cursor.description]
                rows = cursor.fetchall()
        assert set(names) == set(columns), (table, names, list(columns))
        types = {n: columns[n]["data_type"] for n in names}
        schema = [bigquery.SchemaField(n, bigquery_type(types[n])) for n in names]
        ndjson = "".join(
            json.dumps({n: _jsonable(v, types[n]) for n, v in zip(names, row)}) + "\n" for row in rows
        )
        # load_table_from_file without a size: a resumable upload, as dlt's destination does.
        # (load_table_from_json sends a multipart upload whose media part is typed */*, which
        # bqemulator 1.4.0 rejects: "multipart upload's second part has unsupported Content-Type")
        job = bq.load_table_from_file(
            io.BytesIO(ndjson.encode()), f"{PROJECT}.{dataset}.{table}",
            job_config=bigquery.LoadJobConfig(
                schema=schema, write_disposition="WRITE_TRUNCATE",
                source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            ),
        )
        job.result()
        counts[table] = len(rows)
    return counts


def bigquery_build(bq: Any, dataset: str, audiences: Any) -> List[str]:
    """The statements ``algolia-profiles segments sql --dialect bigquery`` prints, run one by one."""
    target = static_target("bigquery", dataset)
    file = load_definitions(audiences)
    built_at = datetime.now(timezone.utc)
    statements = model_statements(target) + segment_statements(file, target, built_at, BUILD_ID, NOW)
    labels = []
    for statement in statements:
        bq.query(statement.tree.sql(dialect="bigquery")).result()
        labels.append(statement.label)
    return labels


def bq_rows(bq: Any, dataset: str, table: str, columns: str) -> List[Tuple[Any, ...]]:
    return sorted(tuple(row.values()) for row in bq.query(f"SELECT {columns} FROM `{dataset}`.`{table}`").result())


def duck_rows(pipeline: Any, table: str, columns: str) -> List[Tuple[Any, ...]]:
    with pipeline.sql_client() as client:
        return sorted(map(tuple, client.execute_sql(f"SELECT {columns} FROM {client.make_qualified_table_name(table)}")))


@pytest.fixture(scope="module")
def duck_built(tmp_path_factory) -> Iterator[Tuple[Emulator, Any]]:
    """600 profiles loaded into DuckDB by ``load_profiles``, the example audiences built there."""
    workdir = tmp_path_factory.mktemp("bigquery_source")
    with Emulator(app_id=APP_ID, api_key=API_KEY, n_users=600, seed=21, now=NOW) as emu:
        add_injection_profile(emu)
        pipeline = make_pipeline("bigquery_probe_source", workdir=str(workdir))
        run(pipeline, emu, page_size=200)
        build_segments(pipeline, EXAMPLE_AUDIENCES, as_of=NOW)
        yield emu, pipeline


def test_bigquery_sql_builds_the_members_duckdb_builds(duck_built, bigquery_client):  # noqa: F811
    emu, duck = duck_built
    counts = copy_to_bigquery(duck, bigquery_client, DATASET)
    assert counts["users"] == len(emu.store) and counts["user_affinities"] > counts["users"]

    labels = bigquery_build(bigquery_client, DATASET, EXAMPLE_AUDIENCES)
    assert any(label.startswith("audience ") for label in labels)

    definitions = tomllib.loads(EXAMPLE_AUDIENCES.read_text())
    want = expected(emu, {**definitions, "settings": {"as_of": NOW}})
    got: Dict[str, Dict[str, Tuple[Any, int]]] = {}
    for segment, user_id, score, matched in bq_rows(
        bigquery_client, DATASET, "segment_members", "segment, user_id, score, matched_affinities"
    ):
        got.setdefault(segment, {})[user_id] = (score, matched)
    assert got == members_of(duck) == want
    assert all(len(m) > 10 for m in want.values())

    sizes = "segment, members, entered, exited, share_of_users"
    close(bq_rows(bigquery_client, DATASET, "segment_sizes", sizes), duck_rows(duck, "segment_sizes", sizes))
    overlaps = "segment_a, segment_b, overlap, pct_of_a, pct_of_b, jaccard"
    close(bq_rows(bigquery_client, DATASET, "segment_overlaps", overlaps), duck_rows(duck, "segment_overlaps", overlaps))
    # percentiles left out: BigQuery's APPROX_QUANTILES is approximate by definition
    catalog = "name, value, users, share_of_users, score_min, score_avg, score_max, index_count"
    close(bq_rows(bigquery_client, DATASET, "affinity_catalog", catalog), duck_rows(duck, "affinity_catalog", catalog))
    top = "user_id, name, value, score, affinity_rank"
    close(bq_rows(bigquery_client, DATASET, "user_top_affinities", top), duck_rows(duck, "user_top_affinities", top))
    coverage = "name, value, index_name, users"
    assert bq_rows(bigquery_client, DATASET, "affinity_index_coverage", coverage) == duck_rows(
        duck, "affinity_index_coverage", coverage)


def test_dlt_bigquery_destination_loads_and_merges_into_the_emulator(bigquery_destination, tmp_path):  # noqa: F811
    """The plumbing: dlt's own BigQuery load (resumable uploads of jsonl files, JSON column, merge
    in a session transaction) works against bqemulator."""
    import dlt

    @dlt.resource(primary_key="user_id", write_disposition="merge", columns={"indices": {"data_type": "json"}})
    def users(n):
        for i in range(n):
            yield {"user_id": f"u{i}", "indices": ["products", f"index_{i % 2}"], "score": i * 1.5}

    pipeline = dlt.pipeline("bigquery_plumbing", destination=bigquery_destination(), dataset_name="plumbing",
                            pipelines_dir=str(tmp_path / "pipelines"))
    pipeline.run(users(3), loader_file_format="jsonl")
    pipeline.run(users(5), loader_file_format="jsonl")
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT user_id, indices, score FROM plumbing.users ORDER BY user_id")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (f"u{i}", ["products", f"index_{i % 2}"], i * 1.5) for i in range(5)
    ]


def test_the_product_loads_merges_reconciles_and_builds_in_bigquery(bigquery_destination, tmp_path):  # noqa: F811
    """dlt's bigquery destination end to end through the product: a full load, an incremental merge
    (shrunk, emptied and new profiles), a reconcile, and both audience files built by
    ``build_segments`` (through the one read path) with members equal to the oracle's. ``indices``
    lands as a STRING holding a JSON array (dlt cannot load a json column from parquet into
    BigQuery), and ``user_affinities`` is clustered on (name, value)."""
    emu = Emulator(app_id=APP_ID, api_key=API_KEY, n_users=150, seed=4, now=NOW).start()
    try:
        add_injection_profile(emu)
        pipeline = make_pipeline("bigquery_profiles", destination=bigquery_destination(), dataset_name="algolia_e2e",
                                 pipelines_dir=str(tmp_path / "pipelines"))
        run(pipeline, emu, page_size=40)
        assert_warehouse_equals_emulator(pipeline, emu)
        columns = pipeline.default_schema.get_table_columns("user_affinities")
        assert columns["indices"]["data_type"] == "text"
        # bqemulator keeps no clustering metadata: check the DDL dlt sends for the table instead
        with pipeline.destination_client() as job_client:
            ddl = job_client._get_table_update_sql("user_affinities", list(columns.values()), False)
        assert "CLUSTER BY `name`, `value`" in ddl[0], ddl[0]

        users = sorted(emu.store.users(), key=lambda u: u["userID"])
        shrunk, emptied = users[0], users[1]
        emu.store.upsert({**shrunk, "affinities": shrunk["affinities"][:1], "lastUpdatedAt": "2026-11-27T23:00:00Z"})
        emu.store.upsert({**emptied, "affinities": [], "lastUpdatedAt": "2026-11-27T23:00:00Z"})
        emu.store.upsert({"userID": "new-user", "type": "basic", "lastUpdatedAt": "2026-11-27T23:00:00Z",
                          "affinities": [{"name": "category", "value": "Camping", "score": 12,
                                          "indices": ["products_en_US"], "lastUpdatedAt": "2026-11-27T23:00:00Z"}]})
        run(pipeline, emu, page_size=40)
        assert_warehouse_equals_emulator(pipeline, emu)

        emu.store.delete(users[2]["userID"])
        result = run(pipeline, emu, page_size=40, reconcile=True)
        assert result.run["deleted"] == 1

        examples = tomllib.loads(EXAMPLE_AUDIENCES.read_text())
        planned = plan_segments(pipeline, EXAMPLE_AUDIENCES, as_of=NOW)
        built = build_segments(pipeline, EXAMPLE_AUDIENCES, as_of=NOW)
        counts = ("members", "entered", "exited")
        assert {r["segment"]: tuple(r[c] for c in counts) for r in planned.sizes} == \
            {r["segment"]: tuple(r[c] for c in counts) for r in built.sizes}
        want = expected(emu, {**examples, "settings": {"as_of": NOW}})
        assert members_of(pipeline) == want and len(want) >= 4
        assert {row["segment"]: row["members"] for row in built.sizes} == {n: len(m) for n, m in want.items()}

        definitions = tomllib.loads(ALL_FEATURES.read_text())
        live = [p["userID"] for p in emu.store.users()]
        opted_out = live[::37]
        definitions["suppression"]["user_ids"] = live[5::41]
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("crm_opted_out")
            values = ", ".join(f"('{user_id}', {i})" for i, user_id in enumerate(opted_out))
            client.execute_sql(f"CREATE TABLE {table} (user_token STRING, customer_id INT64)")
            client.execute_sql(f"INSERT INTO {table} VALUES {values}")
        build_segments(pipeline, definitions, retire=True)
        assert members_of(pipeline) == expected(emu, definitions, opted_out)
        assert len(members_of(pipeline)["top_overall"]) == 25
    finally:
        emu.stop()
