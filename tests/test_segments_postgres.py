"""The same audience definitions built on a real PostgreSQL server and in DuckDB give the same
members, sizes, overlaps and models (and both equal the Python oracle)."""

from __future__ import annotations

import math
import tomllib

from algolia_profiles_source.segments import build_segments, plan_segments
from tests.conftest import run
from tests.postgres_server import postgres_url  # noqa: F401  (session fixture)
from tests.test_postgres_load import pg_pipeline_factory  # noqa: F401  (fixture)
from tests.test_segments import (
    ALL_FEATURES, EXAMPLES, NOW, add_injection_profile, create_opt_outs, expected, members_of,
)


def rows(pipeline, table, columns, order):
    with pipeline.sql_client() as client:
        name = client.make_qualified_table_name(table)
        return client.execute_sql(f"SELECT {columns} FROM {name} ORDER BY {order}")


def close(a, b):
    assert len(a) == len(b)
    for left, right in zip(a, b):
        for x, y in zip(left, right):
            if isinstance(x, float) or isinstance(y, float):
                assert x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (left, right)
            else:
                assert x == y, (left, right)


def test_postgres_and_duckdb_build_identical_segments(emulator_factory, pipeline_factory, pg_pipeline_factory):  # noqa: F811
    emu = emulator_factory(n_users=1200, seed=5, now=NOW)
    add_injection_profile(emu)
    definitions = tomllib.loads(ALL_FEATURES.read_text())
    examples = tomllib.loads(EXAMPLES.read_text())
    users = [p["userID"] for p in emu.store.users()]
    opted_out = users[::29]
    definitions["suppression"]["user_ids"] = users[3::31]
    definitions["audiences"].update({f"example_{k}": v for k, v in examples["audiences"].items()})
    def rename_references(rule: dict) -> None:
        if rule.get("audience") in examples["audiences"]:
            rule["audience"] = f"example_{rule['audience']}"
        for key in ("all", "any", "none"):
            for child in rule.get(key, []):
                rename_references(child)

    for audience in definitions["audiences"].values():
        audience["exclude"] = [f"example_{e}" if e in examples["audiences"] else e for e in audience.get("exclude", [])]
        rename_references(audience["rule"])

    built = {}
    for name, pipeline in (("duckdb", pipeline_factory()), ("postgres", pg_pipeline_factory())):
        run(pipeline, emu, page_size=400)
        create_opt_outs(pipeline, opted_out)
        planned = plan_segments(pipeline, definitions)
        sizes = build_segments(pipeline, definitions).sizes
        counts = ("members", "entered", "exited")
        assert {r["segment"]: tuple(r[c] for c in counts) for r in planned.sizes} == \
            {r["segment"]: tuple(r[c] for c in counts) for r in sizes}, name
        built[name] = pipeline

    duck, pg = built["duckdb"], built["postgres"]
    want = expected(emu, definitions, opted_out)
    assert members_of(duck) == want
    assert members_of(pg) == want
    assert len(want) == len(definitions["audiences"]) and all(want.values())

    close(rows(duck, "segment_sizes", "segment, members, entered, exited, share_of_users", "segment"),
          rows(pg, "segment_sizes", "segment, members, entered, exited, share_of_users", "segment"))
    close(rows(duck, "segment_overlaps", "segment_a, segment_b, overlap, pct_of_a, pct_of_b, jaccard", "segment_a, segment_b"),
          rows(pg, "segment_overlaps", "segment_a, segment_b, overlap, pct_of_a, pct_of_b, jaccard", "segment_a, segment_b"))
    catalog = "name, value, users, share_of_users, score_min, score_avg, score_p50, score_p90, score_max, index_count"
    order = "name, value"
    duck_catalog = rows(duck, "affinity_catalog", catalog, order)
    pg_catalog = rows(pg, "affinity_catalog", catalog, order)
    assert len(duck_catalog) > 50
    close(sorted(duck_catalog), sorted(pg_catalog))
    top = "user_id, name, value, score, affinity_rank"
    assert sorted(rows(duck, "user_top_affinities", top, "user_id")) == sorted(rows(pg, "user_top_affinities", top, "user_id"))
    coverage = "name, value, index_name, users"
    assert sorted(rows(duck, "affinity_index_coverage", coverage, "name")) == sorted(rows(pg, "affinity_index_coverage", coverage, "name"))
