"""Schema hygiene: every documented table exists after the first load, columns are declared, counts
are BIGINT."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from algolia_profiles_source.segments import build_segments
from algolia_profiles_source.tables import CONFIG_COLUMNS
from tests.conftest import run
from tests.test_segments import NOW


def _types(pipeline, table):
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            pipeline.dataset_name, table,
        )
    return dict(rows)


def _readme_tables() -> set[str]:
    """The tables the README's "What lands in the warehouse" section names in bold."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text[text.index("## What lands in the warehouse"):]
    section = section[:section.index("\n## ", 5)]
    return set(re.findall(r"\*\*`(\w+)`\*\*", section))


def test_the_first_load_creates_every_documented_table_with_declared_columns(emulator, pipeline_factory, caplog):
    pipeline = pipeline_factory()
    with caplog.at_level(logging.WARNING):
        result = run(pipeline, emulator)
    assert result.row_counts["rejected_records"] == 0  # exists, empty
    documented = _readme_tables()
    assert documented >= {"users", "user_affinities", "personalization_config", "rejected_records"}
    assert all(_types(pipeline, table) for table in documented), [t for t in documented if not _types(pipeline, t)]
    assert set(_types(pipeline, "rejected_records")) >= {"reason", "user_id", "record", "rejected_at"}
    config = pipeline.default_schema.get_table_columns("personalization_config")
    assert {name: column["data_type"] for name, column in config.items() if name in CONFIG_COLUMNS} == {
        name: column["data_type"] for name, column in CONFIG_COLUMNS.items()}
    assert "could not have its type inferred" not in caplog.text


def test_segment_counts_are_bigint(emulator, pipeline_factory):
    pipeline = pipeline_factory()
    run(pipeline, emulator)
    build_segments(pipeline, EXAMPLE_AUDIENCES, as_of=NOW)
    for table in ("segment_sizes", "segment_builds"):
        types = _types(pipeline, table)
        assert all(types[column] == "BIGINT" for column in ("members", "entered", "exited")), (table, types)
    with pipeline.sql_client() as client:
        wide = client.execute_sql(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s"
            " AND data_type IN ('HUGEINT', 'INTEGER', 'SMALLINT', 'UBIGINT')", pipeline.dataset_name)
    assert not wide, wide  # every integer count of every table and model is BIGINT
