"""Exports of an audience's members, optionally joined to the customer's own data.

Members come from ``segment_members`` in the warehouse. Customer data is either a table in the
warehouse (joined there, so large CRMs stay in BigQuery/Snowflake) or a CSV/Parquet file (joined
locally in DuckDB). Members without a customer record are counted (and left out unless
``keep_unmatched``, which exports them without customer data). Consent fails closed: a customer is
exported only when its opt-out value reads as "not opted out" (:func:`read_opt_outs`); an empty one
is not consent (unless the column only marks opt-outs), and a value that cannot be read refuses the
whole export. The output path must stay inside the
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
from .definitions import COLUMN_NAME, TABLE_NAME, did_you_mean

FORMATS = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}


@dataclass
class ExportResult:
    path: Path
    rows: int
    members: int
    unmatched: int = 0
    opted_out: int = 0
    # customers left out because their opt-out value was empty (no consent recorded)
    no_consent: int = 0
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
    opt_outs_only: bool = False,
) -> ExportResult:
    """Writes the members of ``audience`` to ``output_dir/filename`` (default ``<audience>.<fmt>``).

    With customer data, ``opt_out_column`` must be one of its columns; ``None`` says the data has
    none (every matched customer is exported). ``opt_outs_only`` says the column marks opt-outs
    only, so an empty value means "not opted out" instead of "no consent".
    """
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
        table, result.unmatched, result.opted_out, result.no_consent = _apply_customer_rules(
            table, customers_table or str(customers), opt_out_column, keep_unmatched, opt_outs_only
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
            hint = did_you_mean(audience, segments) or (
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
            f"customers file has no column {key!r}{did_you_mean(key, customers.column_names)}"
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


OPTED_OUT = frozenset({"true", "t", "yes", "y", "1"})
NOT_OPTED_OUT = frozenset({"false", "f", "no", "n", "0"})


def read_opt_outs(values: pa.ChunkedArray | pa.Array, customers: str, column: str) -> pa.Array:
    """The opt-out column as booleans: true (opted out), false (not opted out), null (empty).

    Native booleans as they are; any other type as text, read case-insensitively with surrounding
    spaces ignored: ``true/t/yes/y/1`` and ``false/f/no/n/0``. Any other value refuses the export
    (:class:`ConfigurationError` with the count and examples): a consent that cannot be read is
    never taken as consent.
    """
    if pa.types.is_boolean(values.type):
        return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    text = pc.utf8_lower(pc.utf8_trim_whitespace(values.cast(pa.string())))
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    opted = pc.is_in(text, value_set=pa.array(sorted(OPTED_OUT)))
    cleared = pc.is_in(text, value_set=pa.array(sorted(NOT_OPTED_OUT)))
    unreadable = pc.and_(pc.is_valid(text), pc.invert(pc.or_(opted, cleared)))
    if pc.any(unreadable).as_py():
        bad = pc.filter(values.cast(pa.string()), unreadable)
        examples = ", ".join(repr(v) for v in sorted(set(bad.to_pylist()))[:3])
        raise ConfigurationError(
            f"customers {customers!r}: {len(bad):,} value(s) of the opt-out column {column!r} cannot be"
            f" read as opted out or not (e.g. {examples}); use true/false, yes/no, y/n, t/f or 1/0,"
            " so that no customer is exported without consent"
        )
    return pc.if_else(pc.is_valid(text), opted, pa.scalar(None, pa.bool_()))


def _apply_customer_rules(
    table: pa.Table, customers: str, opt_out_column: str | None, keep_unmatched: bool, opt_outs_only: bool
) -> tuple[pa.Table, int, int, int]:
    """Leaves out unmatched members (unless kept), opted-out customers and, unless the column only
    marks opt-outs, customers without a recorded choice; returns the table and those three counts."""
    matched = table["_matched"]
    unmatched = int(pc.sum(pc.invert(matched)).as_py() or 0)
    keep = matched if not keep_unmatched else pa.array([True] * table.num_rows)
    opted = pa.array([False] * table.num_rows)
    no_choice = pa.array([False] * table.num_rows)
    if opt_out_column is not None:
        if opt_out_column not in table.column_names:
            raise ConfigurationError(
                f"customers {customers!r} has no opt-out column {opt_out_column!r}"
                f"{did_you_mean(opt_out_column, table.column_names)}: name it with --opt-out-column,"
                " or pass --no-opt-out-column if the data holds no opt-outs"
            )
        # only matched members have customer data to read
        values = read_opt_outs(table[opt_out_column], customers, opt_out_column)
        empty = pc.and_(matched, pc.is_null(values))
        no_choice = pa.array([False] * table.num_rows) if opt_outs_only else empty
        opted = pc.and_(matched, pc.fill_null(values, False))
    opted_out = int(pc.sum(opted).as_py() or 0)
    no_consent = int(pc.sum(no_choice).as_py() or 0)
    table = table.filter(pc.and_(keep, pc.invert(pc.or_(opted, no_choice))))
    return table.drop_columns(["_matched"]), unmatched, opted_out, no_consent


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
