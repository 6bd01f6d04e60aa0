"""The fakesnow rewrites on their own: each changes only what it is for; and the pipeline fixture."""

from __future__ import annotations

from tests.warehouses.fixtures import fakesnow_db, snowflake_pipeline_factory  # noqa: F401  (fixtures)
from tests.warehouses.snowflake_shims import (
    array_contains_as_json_contains, match_by_column_name_unquoted, options_without_commas,
    put_stage_unquoted, rewrite, split_statements, unquote_connect_names,
)


def test_connect_names_are_unquoted():
    assert unquote_connect_names({"schema": '"ALGOLIA"', "database": "DB", "user": "x"}) == {
        "schema": "ALGOLIA", "database": "DB", "user": "x"}
    assert unquote_connect_names({"schema": '"a""b"'})["schema"] == 'a"b'


def test_batches_split_on_semicolons_outside_literals_and_comments():
    sql = "CREATE TABLE a (x TEXT);\nINSERT INTO a VALUES ('x;y', 'O\\'Brien;');  -- c;\nSELECT \";\" FROM a;"
    assert split_statements(sql) == [
        "CREATE TABLE a (x TEXT)", "INSERT INTO a VALUES ('x;y', 'O\\'Brien;')", "-- c;\nSELECT \";\" FROM a"]
    assert split_statements("SELECT 1") == ["SELECT 1"]


def test_put_stage_location_loses_its_quotes_only():
    sql = """PUT 'file:///tmp/a b.parquet' '@"ALGOLIA"."%USERS"/"17.5"' OVERWRITE = TRUE, AUTO_COMPRESS = FALSE"""
    assert put_stage_unquoted(sql) == (
        """PUT 'file:///tmp/a b.parquet' @"ALGOLIA"."%USERS"/"17.5" OVERWRITE = TRUE, AUTO_COMPRESS = FALSE""")
    assert put_stage_unquoted("SELECT '@x'") == "SELECT '@x'"


def test_option_commas_become_blanks_but_not_inside_values():
    assert options_without_commas("PUT a @b OVERWRITE = TRUE, AUTO_COMPRESS = FALSE") == (
        "PUT a @b OVERWRITE = TRUE AUTO_COMPRESS = FALSE")
    sql = "COPY INTO t FROM '@s' FILE_FORMAT = (TYPE = 'CSV', NULL_IF = ('', 'x'), PARSE_HEADER = TRUE)"
    assert options_without_commas(sql) == (
        "COPY INTO t FROM '@s' FILE_FORMAT = (TYPE = 'CSV' NULL_IF = ('', 'x') PARSE_HEADER = TRUE)")


def test_match_by_column_name_value_is_unquoted():
    assert match_by_column_name_unquoted("COPY INTO t MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'") == (
        "COPY INTO t MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")


def test_array_contains_becomes_json_contains_and_nothing_else_changes():
    sql = "SELECT 1 FROM t AS a WHERE ARRAY_CONTAINS(CAST(c.name AS VARIANT), CAST(a.indices AS ARRAY))"
    assert array_contains_as_json_contains(sql) == (
        "SELECT 1 FROM t AS a WHERE JSON_CONTAINS(a.indices, TO_JSON(c.name))")
    untouched = "SELECT 'x;y' AS v FROM \"S\".\"T\""
    assert rewrite(untouched) == [untouched]


def test_snowflake_pipeline_factory_reaches_fakesnow(snowflake_pipeline_factory):  # noqa: F811
    """dlt's sql client connects through the fixture (quoted schema) and runs a two-statement batch."""
    pipeline = snowflake_pipeline_factory("probe_factory")
    with pipeline.sql_client() as client:
        if not client.has_dataset():  # fakesnow creates the connection's schema, Snowflake does not
            client.create_dataset()
        table = client.make_qualified_table_name("t")
        client.execute_sql(f"CREATE TABLE {table} (x INT); INSERT INTO {table} VALUES (1), (2)")
        assert client.execute_sql(f"SELECT SUM(x) FROM {table}")[0][0] == 3


def test_arrow_reads_work_like_the_connector(snowflake_pipeline_factory):  # noqa: F811
    """dlt's ``cursor.arrow()`` (the connector's fetch_arrow_all): a table, or None for no rows."""
    pipeline = snowflake_pipeline_factory("probe_arrow")
    with pipeline.sql_client() as client:
        with client.execute_query("SELECT 1 AS x, 'a' AS y UNION ALL SELECT 2, 'b'") as cursor:
            table = cursor.arrow()
        assert [c.upper() for c in table.column_names] == ["X", "Y"] and table.num_rows == 2
        with client.execute_query("SELECT 1 AS x WHERE FALSE") as cursor:
            assert cursor.arrow() is None
