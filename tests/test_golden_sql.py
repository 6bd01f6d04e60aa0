"""The SQL of every model and audience, compiled for BigQuery and Snowflake (which cannot be reached
from here), is pinned in reviewed golden files and must survive a parse round trip in its dialect.

Regenerate after a deliberate change with ``UPDATE_GOLDEN=1 pytest tests/test_golden_sql.py`` and
review the diff like code.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlglot

from algolia_profiles_source.segments import load_definitions, model_statements, segment_statements, static_target
from tests.test_segments import ALL_FEATURES, EXAMPLES

GOLDEN = Path(__file__).parent / "golden"
BUILT_AT = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
DIALECTS = ("bigquery", "snowflake", "postgres", "duckdb")


def render(dialect: str, audiences: Path) -> list[tuple[str, str]]:
    target = static_target(dialect, "algolia")
    file = load_definitions(audiences)
    statements = model_statements(target) + segment_statements(file, target, BUILT_AT, "20261128T060000000000Z")
    return [(s.label, s.tree.sql(dialect=dialect, pretty=True)) for s in statements]


@pytest.mark.parametrize("audiences", [EXAMPLES, ALL_FEATURES], ids=["examples", "all_features"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_generated_sql_matches_the_reviewed_golden_file(dialect, audiences):
    text = "".join(f"-- {label}\n{sql};\n\n" for label, sql in render(dialect, audiences))
    path = GOLDEN / f"{audiences.stem}.{dialect}.sql"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{path.name} changed: review and regenerate with UPDATE_GOLDEN=1"


@pytest.mark.parametrize("audiences", [EXAMPLES, ALL_FEATURES], ids=["examples", "all_features"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_statement_parses_back_identically(dialect, audiences):
    for label, sql in render(dialect, audiences):
        reparsed = sqlglot.parse_one(sql, read=dialect)
        assert reparsed.sql(dialect=dialect, pretty=True) == sql, label


def test_dialect_specific_constructs_are_used():
    sql = {d: "\n".join(s for _, s in render(d, ALL_FEATURES)) for d in DIALECTS}
    assert "JSON_VALUE_ARRAY" in sql["bigquery"] and "APPROX_QUANTILES" in sql["bigquery"]
    assert "ARRAY_CONTAINS" in sql["snowflake"] and "PERCENTILE_CONT" in sql["snowflake"]
    assert 'COLLATE "C"' in sql["postgres"] and "JSONB" in sql["postgres"]
    assert "JSON_CONTAINS" in sql["duckdb"] and "QUANTILE_CONT" in sql["duckdb"]
    # the injection value is a quoted literal in every dialect
    assert "'O''Brien''; drop table users; --'" in sql["postgres"]
    assert "'O\\'Brien\\'; drop table users; --'" in sql["bigquery"]
