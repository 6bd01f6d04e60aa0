"""The fakesnow rewrites (and the one check) on their own: each changes only what it is for; and the
pipeline fixture."""

from __future__ import annotations

import pytest

from tests.warehouses.fixtures import fakesnow_db, require_fakesnow, snowflake_pipeline_factory  # noqa: F401  (fixtures)
from tests.warehouses.snowflake_shims import (
    array_contains_as_json_contains, integer_sums_stay_integers, match_by_column_name_unquoted,
    options_without_commas, put_stage_unquoted, quoted_names_are_case_sensitive, rewrite, split_statements,
    unquote_connect_names,
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


def test_sums_of_integer_cases_are_cast_and_nothing_else_changes():
    sql = ("SELECT segment, SUM(CASE WHEN event = 'entered' THEN 1 ELSE 0 END) AS entered, SUM(a.score) AS s"
           " FROM t GROUP BY segment")
    assert integer_sums_stay_integers(sql) == (
        "SELECT segment, SUM(CAST(CASE WHEN event = 'entered' THEN 1 ELSE 0 END AS DECIMAL(38, 0))) AS entered,"
        " SUM(a.score) AS s FROM t GROUP BY segment")
    for untouched in ("SELECT SUM(score) FROM t", "SELECT SUM(CASE WHEN x THEN 1.5 ELSE 0 END) FROM t",
                      "SELECT \"SUMMARY\" FROM t"):
        assert integer_sums_stay_integers(untouched) == untouched


def test_quoted_lower_case_names_are_refused_as_snowflake_refuses_them():
    require_fakesnow()  # the refusal is the connector's ProgrammingError
    from snowflake.connector.errors import ProgrammingError

    fine = 'SELECT c."USER_TOKEN", \'a "quoted" text\' AS x FROM "DB"."S"."T" AS c -- "comment"'
    assert quoted_names_are_case_sensitive(fine) == fine
    with pytest.raises(ProgrammingError, match="invalid identifier") as refused:
        quoted_names_are_case_sensitive('SELECT c."user_token" FROM t AS c')
    assert refused.value.errno == 904 and refused.value.sqlstate == "42000"  # Snowflake's own codes


def test_fakesnow_answers_like_snowflake_with_the_checks(snowflake_pipeline_factory):  # noqa: F811
    """An integer SUM comes back as a whole number (fakesnow alone: a float); a quoted lower-case
    name is refused (fakesnow alone: runs, as DuckDB ignores the case of identifiers)."""
    from dlt.destinations.exceptions import DatabaseTerminalException

    pipeline = snowflake_pipeline_factory("probe_checks")
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            client.create_dataset()
        table = client.make_qualified_table_name("t")
        client.execute_sql(f"CREATE TABLE {table} (user_token TEXT, n INT); INSERT INTO {table} VALUES ('a', 1), ('b', 2)")
        [(total,)] = client.execute_sql(f"SELECT SUM(CASE WHEN n > 0 THEN 1 ELSE 0 END) AS total FROM {table}")
        assert total == 2 and not isinstance(total, float)
        assert client.execute_sql(f'SELECT t."USER_TOKEN" FROM {table} AS t ORDER BY 1') == [("a",), ("b",)]
        with pytest.raises(DatabaseTerminalException, match="invalid identifier"):
            client.execute_sql(f'SELECT t."user_token" FROM {table} AS t')


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
