"""The one read path: rows and Arrow tables from any destination, normalized the same way."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlglot import exp

from algolia_profiles_source.exceptions import TableNotFoundError
from algolia_profiles_source.load.pipeline import make_pipeline
from algolia_profiles_source.warehouse import read


def test_values_come_back_as_plain_python_numbers_and_utc_datetimes():
    assert read._value(Decimal("42")) == 42 and isinstance(read._value(Decimal("42")), int)
    assert read._value(Decimal("0.25")) == 0.25 and isinstance(read._value(Decimal("1.00")), float)
    naive = datetime(2026, 11, 1, 12)
    assert read._value(naive) == naive.replace(tzinfo=timezone.utc)
    paris = datetime(2026, 11, 1, 13, tzinfo=timezone(timedelta(hours=1)))
    assert read._value(paris).tzinfo == timezone.utc and read._value(paris).hour == 12
    assert read._value("text") == "text" and read._value(None) is None


def test_a_missing_table_is_the_one_error_a_read_turns_into_table_not_found(tmp_path):
    pipeline = make_pipeline("read_test", workdir=str(tmp_path))
    with read.open_dataset(pipeline) as dataset:
        with pytest.raises(TableNotFoundError, match="segment_sizes") as raised:
            dataset.rows("segment_sizes")
        assert raised.value.table == "segment_sizes"
        with pytest.raises(Exception) as other:  # a wrong column is not a missing table
            dataset.rows(exp.select("no_such_column").from_(exp.to_table("information_schema.tables")))
        assert not isinstance(other.value, TableNotFoundError)


def test_rows_and_arrow_read_the_same_query(tmp_path):
    pipeline = make_pipeline("read_test", workdir=str(tmp_path))
    query = exp.select(exp.alias_(exp.Literal.number(7), "SEVEN"), exp.alias_(exp.Literal.string("x"), "name"))
    with read.open_dataset(pipeline) as dataset:
        assert dataset.rows(query) == [{"SEVEN": 7, "name": "x"}]  # DuckDB keeps the case it was given
        table = dataset.arrow(query)
    assert table.column_names == ["SEVEN", "name"] and table.to_pylist() == [{"SEVEN": 7, "name": "x"}]
