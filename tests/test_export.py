"""Exports: formats, joins to a customers file or warehouse table, opt-outs, unmatched counts, safe paths."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from algolia_profiles_source.exceptions import ConfigurationError
from algolia_profiles_source.segments import build_segments
from algolia_profiles_source.segments.export import export_audience
from tests.conftest import run

AUDIENCES = {"audiences": {"campers": {"rule": {"affinity": "category:Camping"}}}}


@pytest.fixture
def built(emulator_factory, pipeline_factory, tmp_path):
    emu = emulator_factory(n_users=400, seed=3)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=200)
    build_segments(pipeline, AUDIENCES)
    campers = sorted(
        p["userID"] for p in emu.store.users()
        if any(a["name"] == "category" and a["value"] == "Camping" for a in p["affinities"])
    )
    assert len(campers) > 20
    return pipeline, campers


def write_customers(path, campers):
    """Every camper but the first three is a customer; every fifth customer opted out."""
    customers = campers[3:]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "user_token", "email", "opted_out"])
        for i, token in enumerate(customers):
            writer.writerow([i, token, f"c{i}@example.com", "true" if i % 5 == 0 else "false"])
        writer.writerow([9999, "not-a-member", "x@example.com", "false"])
    opted = {t for i, t in enumerate(customers) if i % 5 == 0}
    return set(customers) - opted, opted


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_plain_export_in_each_format(built, tmp_path, fmt):
    pipeline, campers = built
    result = export_audience(pipeline, "campers", output_dir=tmp_path / "out", fmt=fmt)
    assert result.path == (tmp_path / "out" / f"campers.{fmt}").resolve()
    if fmt == "csv":
        ids = [row["user_id"] for row in csv.DictReader(result.path.open())]
    elif fmt == "parquet":
        ids = pq.read_table(result.path).column("user_id").to_pylist()
    else:
        ids = [json.loads(line)["user_id"] for line in result.path.read_text().splitlines()]
    assert sorted(ids) == campers and result.rows == result.members == len(campers)


def test_join_to_a_customers_file_drops_opt_outs_and_counts_unmatched(built, tmp_path):
    pipeline, campers = built
    sendable, opted = write_customers(tmp_path / "customers.csv", campers)
    result = export_audience(pipeline, "campers", output_dir=tmp_path, customers=tmp_path / "customers.csv")
    rows = list(csv.DictReader(result.path.open()))
    assert {r["user_id"] for r in rows} == sendable
    assert all(r["email"].endswith("@example.com") for r in rows)
    assert result.unmatched == 3 and result.opted_out == len(opted)

    kept = export_audience(pipeline, "campers", output_dir=tmp_path, filename="all.csv",
                           customers=tmp_path / "customers.csv", keep_unmatched=True)
    assert kept.rows == len(sendable) + 3


def test_join_to_a_warehouse_table(built, tmp_path):
    pipeline, campers = built
    sendable, opted = write_customers(tmp_path / "customers.csv", campers)
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("crm_customers")
        client.execute_sql(f"CREATE TABLE {table} AS SELECT * FROM read_csv_auto('{tmp_path / 'customers.csv'}')")
    result = export_audience(pipeline, "campers", output_dir=tmp_path, fmt="parquet", customers_table="crm_customers")
    exported = pq.read_table(result.path)
    assert set(exported.column("user_id").to_pylist()) == sendable
    assert result.unmatched == 3 and result.opted_out == len(opted)


@pytest.mark.parametrize("name", ["../escape.csv", "/tmp/absolute.csv", "sub/dir.csv"])
def test_paths_outside_the_output_directory_are_refused(built, tmp_path, name):
    pipeline, _ = built
    with pytest.raises(ConfigurationError, match="outside the output directory"):
        export_audience(pipeline, "campers", output_dir=tmp_path / "out", filename=name)
    assert not (tmp_path / "escape.csv").exists()


def test_existing_files_are_not_overwritten_silently(built, tmp_path):
    pipeline, _ = built
    (tmp_path / "campers.csv").write_text("precious")
    with pytest.raises(ConfigurationError, match="already exists"):
        export_audience(pipeline, "campers", output_dir=tmp_path)
    assert (tmp_path / "campers.csv").read_text() == "precious"
    export_audience(pipeline, "campers", output_dir=tmp_path, overwrite=True)
    assert (tmp_path / "campers.csv").read_text().startswith('"user_id"')


def test_unknown_audience_and_bad_customer_key(built, tmp_path):
    pipeline, campers = built
    with pytest.raises(ConfigurationError, match="did you mean 'campers'"):
        export_audience(pipeline, "camper", output_dir=tmp_path / "exports")
    assert not (tmp_path / "exports").exists()  # a refused export makes no folder either
    write_customers(tmp_path / "customers.csv", campers)
    with pytest.raises(ConfigurationError, match="no column 'token'"):
        export_audience(pipeline, "campers", output_dir=tmp_path, customers=tmp_path / "customers.csv", customer_key="token")
    assert not list(tmp_path.glob("campers*"))


def test_an_audience_built_empty_exports_an_empty_file_with_its_columns(built, tmp_path):
    pipeline, _ = built
    never = {"all": [{"affinity": "category:Camping"}, {"none": [{"affinity": "category:Camping"}]}]}
    build_segments(pipeline, {"audiences": {**AUDIENCES["audiences"], "nobody": {"rule": never}}})
    result = export_audience(pipeline, "nobody", output_dir=tmp_path)
    assert result.rows == result.members == 0
    assert result.path.read_text().splitlines() == ['"user_id","score","matched_affinities","built_at"']
    empty = export_audience(pipeline, "nobody", output_dir=tmp_path, fmt="parquet")
    assert pq.read_table(empty.path).num_rows == 0 and "user_id" in pq.read_table(empty.path).column_names


def test_export_files_get_the_usual_permissions(built, tmp_path):
    import os
    import stat

    pipeline, _ = built
    umask = os.umask(0o022)
    try:
        result = export_audience(pipeline, "campers", output_dir=tmp_path / "out")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert [p.name for p in (tmp_path / "out").iterdir()] == [result.path.name]  # no temporary file left


def test_a_customer_key_repeated_among_the_members_is_refused(built, tmp_path):
    pipeline, campers = built
    path = tmp_path / "customers.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_token", "opted_out"])
        for token in campers:
            writer.writerow([token, "false"])
        writer.writerow([campers[0], "true"])  # the same person again, opted out this time
    with pytest.raises(ConfigurationError, match=r"more than one record for 1 member\(s\) on 'user_token'") as error:
        export_audience(pipeline, "campers", output_dir=tmp_path / "out", customers=path)
    assert repr(campers[0]) in str(error.value)
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("crm_dupes")
        client.execute_sql(f"CREATE TABLE {table} AS SELECT * FROM read_csv_auto('{path}', all_varchar=true)")
    with pytest.raises(ConfigurationError, match="more than one record"):
        export_audience(pipeline, "campers", output_dir=tmp_path / "out", customers_table="crm_dupes")
    assert not list((tmp_path / "out").glob("*"))


def _customers(path, rows, header=("user_token", "email", "opted_out")):
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_consent_is_read_strictly_and_an_unreadable_value_refuses_the_export(built, tmp_path):
    pipeline, campers = built
    readable = ["true", " YES ", "y", "T", "1", "false", "No", " n ", "F", "0"]
    rows = [(token, f"{i}@example.com", readable[i % len(readable)]) for i, token in enumerate(campers)]
    result = export_audience(pipeline, "campers", output_dir=tmp_path / "ok",
                             customers=_customers(tmp_path / "ok.csv", rows))
    kept = {row["user_id"] for row in csv.DictReader(result.path.open())}
    assert kept == {token for i, token in enumerate(campers) if i % len(readable) >= 5}
    assert result.opted_out == len(campers) - len(kept) and result.no_consent == 0

    rows[0] = (campers[0], "x@example.com", "opted out")  # fails open before: only true/1/yes/y/t counted
    rows[1] = (campers[1], "y@example.com", "unsubscribed")
    with pytest.raises(ConfigurationError, match=r"2 value\(s\) of the opt-out column 'opted_out' cannot be read"):
        export_audience(pipeline, "campers", output_dir=tmp_path / "bad", customers=_customers(tmp_path / "bad.csv", rows))
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_an_empty_choice_is_not_consent_unless_the_column_only_marks_opt_outs(built, tmp_path):
    pipeline, campers = built
    rows = [(token, f"{i}@example.com", "" if i % 2 else "false") for i, token in enumerate(campers)]
    path = _customers(tmp_path / "c.csv", rows)
    closed = export_audience(pipeline, "campers", output_dir=tmp_path / "a", customers=path)
    assert closed.rows == len(campers[::2]) and closed.no_consent == len(campers[1::2]) and closed.opted_out == 0
    marks_only = export_audience(pipeline, "campers", output_dir=tmp_path / "b", customers=path, opt_outs_only=True)
    assert marks_only.rows == len(campers) and marks_only.no_consent == 0


def test_a_missing_opt_out_column_refuses_unless_the_data_holds_none(built, tmp_path):
    pipeline, campers = built
    path = _customers(tmp_path / "c.csv", [(t, "e", "true") for t in campers], ("user_token", "email", "unsubscribed"))
    with pytest.raises(ConfigurationError, match="no opt-out column 'opted_out'.*--no-opt-out-column"):
        export_audience(pipeline, "campers", output_dir=tmp_path / "a", customers=path)
    assert export_audience(pipeline, "campers", output_dir=tmp_path / "b", customers=path,
                           opt_out_column="unsubscribed").rows == 0
    assert export_audience(pipeline, "campers", output_dir=tmp_path / "c", customers=path,
                           opt_out_column=None).rows == len(campers)


def test_members_kept_without_a_customer_record_carry_no_customer_data(built, tmp_path):
    pipeline, campers = built
    path = _customers(tmp_path / "c.csv", [(t, f"{t}@example.com", "false") for t in campers[5:]])
    result = export_audience(pipeline, "campers", output_dir=tmp_path / "a", customers=path, keep_unmatched=True)
    rows = {row["user_id"]: row for row in csv.DictReader(result.path.open())}
    assert result.rows == len(campers) and result.unmatched == 5
    assert all(rows[t]["email"] == "" and rows[t]["opted_out"] == "" for t in campers[:5])
