"""Exports of an audience's members, optionally joined to the customer's own data.

Members come from ``segment_members`` in the warehouse. Customer data is either a table in the
warehouse (joined there, so large CRMs stay in BigQuery/Snowflake) or a CSV/Parquet file (joined
locally in DuckDB). Members without a customer record are counted (and left out unless
``keep_unmatched``); opted-out customers are always dropped. The output path must stay inside the
output directory, an existing file is never overwritten silently, and the file appears atomically.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlglot import exp

from ..exceptions import ConfigurationError, TableNotFoundError
from ..tables import MEMBERS, SIZES
from ..warehouse.read import open_dataset
from .definitions import COLUMN_NAME, TABLE_NAME, _did_you_mean

FORMATS = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}


@dataclass
class ExportResult:
    path: Path
    rows: int
    members: int
    unmatched: int = 0
    opted_out: int = 0
    joined: bool = False


def export_audience(
    pipeline: Any,
    audience: str,
    output_dir: str | Path = ".",
    filename: str | None = None,
    fmt: str = "csv",
    overwrite: bool = False,
    customers: str | Path | None = None,
    customers_table: str | None = None,
    customer_key: str = "user_token",
    opt_out_column: str | None = "opted_out",
    keep_unmatched: bool = False,
) -> ExportResult:
    """Writes the members of ``audience`` to ``output_dir/filename`` (default ``<audience>.<fmt>``)."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if customers is not None and customers_table is not None:
        raise ConfigurationError("give customer data as a file or as a warehouse table, not both")
    if not COLUMN_NAME.match(customer_key):
        raise ConfigurationError(f"customer key {customer_key!r} is not a column name")
    if opt_out_column is not None and not COLUMN_NAME.match(opt_out_column):
        raise ConfigurationError(f"opt-out column {opt_out_column!r} is not a column name")
    path = output_path(output_dir, filename or f"{audience}{FORMATS[fmt]}", overwrite)

    members = _members(pipeline, audience)
    result = ExportResult(path, 0, members.num_rows)
    if customers_table is not None:
        table = _join_in_warehouse(pipeline, audience, customers_table, customer_key)
    elif customers is not None:
        table = _join_file(members, Path(customers), customer_key)
    else:
        table = members
    if customers is not None or customers_table is not None:
        result.joined = True
        _require_one_record_per_member(table, customers_table or str(customers), customer_key)
        table, result.unmatched, result.opted_out = _apply_customer_rules(
            table, customer_key, opt_out_column, keep_unmatched
        )
    result.rows = table.num_rows
    _write_atomically(table, path, fmt)
    return result


def output_path(output_dir: str | Path, filename: str, overwrite: bool) -> Path:
    """``output_dir/filename``, refusing paths that leave the directory and silent overwrites."""
    directory = Path(output_dir).resolve()
    candidate = (directory / filename).resolve()
    if Path(filename).is_absolute() or candidate.parent != directory:
        raise ConfigurationError(
            f"output name {filename!r} would write outside the output directory {str(directory)!r}:"
            " give a plain file name and choose the directory with --output-dir"
        )
    if candidate.exists() and not overwrite:
        raise ConfigurationError(f"{str(candidate)!r} already exists: pass --overwrite to replace it")
    directory.mkdir(parents=True, exist_ok=True)
    return candidate


def _members(pipeline: Any, audience: str) -> pa.Table:
    with open_dataset(pipeline) as dataset:
        try:
            # the last build's sizes list every audience it built, also one with no members
            segments = [r["segment"] for r in dataset.rows(exp.select("segment").distinct().from_(dataset.table(SIZES)))]
        except TableNotFoundError:  # no build yet
            segments = []
        query = (
            exp.select("m.user_id", "m.score", "m.matched_affinities", "m.built_at")
            .from_(exp.alias_(dataset.table(MEMBERS), "m", table=True))
            .where(exp.column("segment", "m").eq(exp.Literal.string(audience)))
            .order_by(exp.Ordered(this=exp.column("score", "m"), desc=True, nulls_first=False), "m.user_id")
        )
        if audience not in segments:
            hint = _did_you_mean(audience, segments) or (
                f" (built: {', '.join(sorted(segments))})" if segments else " (run `segments build` first)"
            )
            raise ConfigurationError(f"audience {audience!r} has not been built{hint}")
        return dataset.arrow(query)


def _join_in_warehouse(pipeline: Any, audience: str, customers_table: str, key: str) -> pa.Table:
    if not TABLE_NAME.match(customers_table):
        raise ConfigurationError(f"customers table {customers_table!r} is not a table name like crm.customers")
    with open_dataset(pipeline) as dataset:
        customers = dataset.target.external_table(customers_table)
        query = (
            exp.select("m.user_id", "m.score", "m.matched_affinities", "m.built_at", "c.*")
            .from_(exp.alias_(dataset.table(MEMBERS), "m", table=True))
            .join(
                exp.alias_(customers, "c", table=True), join_type="left",
                on=exp.cast(dataset.column(key, "c"), "TEXT").eq(exp.column("user_id", "m")),
            )
            .where(exp.column("segment", "m").eq(exp.Literal.string(audience)))
            .order_by(exp.Ordered(this=exp.column("score", "m"), desc=True, nulls_first=False), "m.user_id")
        )
        try:
            table = dataset.arrow(query)
        except Exception as error:  # noqa: BLE001 - a missing table or column, a type the key cannot cast
            raise ConfigurationError(
                f"cannot join customers table {customers_table!r} on column {key!r}: {error}"
            ) from None
    # the join marks matches through the customer key column
    return table.append_column("_matched", pc.is_valid(table[key]))


def _join_file(members: pa.Table, path: Path, key: str) -> pa.Table:
    if not path.is_file():
        raise ConfigurationError(f"customers file {str(path)!r} does not exist")
    if path.suffix.lower() == ".parquet":
        customers = pq.read_table(path)
    elif path.suffix.lower() == ".csv":
        customers = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types={key: pa.string()}))
    else:
        raise ConfigurationError(f"customers file {str(path)!r} must be .csv or .parquet")
    if key not in customers.column_names:
        raise ConfigurationError(
            f"customers file has no column {key!r}{_did_you_mean(key, customers.column_names)}"
            f" (columns: {', '.join(customers.column_names)})"
        )
    customers = customers.set_column(
        customers.column_names.index(key), key, customers[key].cast(pa.string())
    )
    clashes = [c for c in customers.column_names if c in members.column_names]
    if clashes:
        customers = customers.rename_columns([f"customer_{c}" if c in clashes else c for c in customers.column_names])
        key = f"customer_{key}" if key in clashes else key
    joined = members.join(customers, keys="user_id", right_keys=key, join_type="left outer", use_threads=False)
    # keep the key column for matching (pyarrow drops the right key): rebuild it from matches
    matched = pc.is_in(joined["user_id"], value_set=customers[key])
    joined = joined.append_column("_matched", matched)
    return joined.sort_by([("score", "descending"), ("user_id", "ascending")])


def _require_one_record_per_member(table: pa.Table, customers: str, key: str) -> None:
    """A member with two customer records would be exported twice, and an opt-out in one of them
    could be outvoted by the other: the customer key must be unique among the members' records."""
    counts = pc.value_counts(table["user_id"])
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated):
        examples = ", ".join(repr(v) for v in sorted(repeated.to_pylist())[:3])
        raise ConfigurationError(
            f"customers {customers!r} has more than one record for {len(repeated):,} member(s) on"
            f" {key!r} (e.g. {examples}): keep one record per customer (deduplicate the file or"
            " table), so that each member is exported once and its opt-out is unambiguous"
        )


def _apply_customer_rules(table: pa.Table, key: str, opt_out_column: str | None, keep_unmatched: bool):
    matched = table["_matched"]
    unmatched = int(pc.sum(pc.invert(matched)).as_py() or 0)
    keep = matched if not keep_unmatched else pa.array([True] * table.num_rows)
    opted = pa.array([False] * table.num_rows)
    if opt_out_column is not None and opt_out_column in table.column_names:
        values = table[opt_out_column]
        if not pa.types.is_boolean(values.type):
            values = pc.is_in(
                pc.utf8_lower(values.cast(pa.string())), value_set=pa.array(["true", "1", "yes", "y", "t"])
            )
        opted = pc.fill_null(values, False)
    opted_out = int(pc.sum(pc.and_(opted, matched)).as_py() or 0)
    table = table.filter(pc.and_(keep, pc.invert(opted)))
    return table.drop_columns(["_matched"]), unmatched, opted_out


def _write_atomically(table: pa.Table, path: Path, fmt: str) -> None:
    # created as any new file is (0666 less the umask): mkstemp's 0600 would hide the export from
    # the jobs and people it is for
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    open(temp, "xb").close()
    try:
        if fmt == "csv":
            pa_csv.write_csv(table, temp)
        elif fmt == "parquet":
            pq.write_table(table, temp)
        else:
            with open(temp, "wb") as out:
                for row in table.to_pylist():
                    out.write(orjson.dumps(row, default=str) + b"\n")
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
