"""The customer's own data beside an audience's members: read, joined, and held to the consent rules.

Customer data is a table in the warehouse (joined there) or a CSV/Parquet file (joined locally).
Each joined row carries ``_matched``: whether the member has a customer record. Consent fails
closed (:func:`read_opt_outs`, :func:`apply_customer_rules`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlglot import exp

from ..exceptions import ConfigurationError
from ..tables import EVENTS, MEMBERS
from ..warehouse import dialects
from ..warehouse.read import open_dataset
from ..warehouse.target import TABLE_NAME
from . import delta
from .hints import did_you_mean


def join_in_warehouse(
    pipeline: Any, audience: str, customers_table: str, key: str, exited_since: datetime | None = None
) -> pa.Table:
    """The audience's members (or those with an exit event after ``exited_since``) left-joined to
    the customers table, inside the warehouse."""
    if not TABLE_NAME.match(customers_table):
        raise ConfigurationError(f"customers table {customers_table!r} is not a table name like crm.customers")
    segment = exp.Literal.string(audience)
    with open_dataset(pipeline) as dataset:
        customers = dataset.target.external_table(customers_table)
        if exited_since is None:
            columns = ["m.user_id", "m.score", "m.matched_affinities", "m.built_at"]
            source = exp.alias_(dataset.table(MEMBERS), "m", table=True)
            where = exp.column("segment", "m").eq(segment)
            order: list[Any] = [exp.Ordered(this=exp.column("score", "m"), desc=True, nulls_first=False), "m.user_id"]
        else:
            columns = ["m.user_id"]
            source = exp.select("user_id").distinct().from_(dataset.table(EVENTS)).where(exp.and_(
                exp.column("segment").eq(segment), exp.column("event").eq(exp.Literal.string("exited")),
                exp.column("built_at") > dialects.timestamp(exited_since),
            )).subquery("m")
            where = exp.true()
            order = ["m.user_id"]
        query = (
            exp.select(*columns, "c.*")
            .from_(source)
            .join(
                exp.alias_(customers, "c", table=True), join_type="left",
                on=exp.cast(dataset.column(key, "c"), "TEXT").eq(exp.column("user_id", "m")),
            )
            .where(where)
            .order_by(*order)
        )
        try:
            table = dataset.arrow(query)
        except Exception as error:  # noqa: BLE001 - a missing table or column, a type the key cannot cast
            raise ConfigurationError(
                f"cannot join customers table {customers_table!r} on column {key!r}: {error}"
            ) from None
    # the join marks matches through the customer key column
    return table.append_column("_matched", pc.is_valid(table[key]))


def read_customers(path: Path, key: str, text_columns: list[str]) -> pa.Table:
    """A customers file, its key (and ``text_columns``: phones keep their leading zeros) as text."""
    if not path.is_file():
        raise ConfigurationError(f"customers file {str(path)!r} does not exist")
    if path.suffix.lower() == ".parquet":
        customers = pq.read_table(path)
    elif path.suffix.lower() == ".csv":
        types = {column: pa.string() for column in [key, *text_columns]}
        customers = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=types))
    else:
        raise ConfigurationError(f"customers file {str(path)!r} must be .csv or .parquet")
    if key not in customers.column_names:
        raise ConfigurationError(
            f"customers file has no column {key!r}{did_you_mean(key, customers.column_names)}"
            f" (columns: {', '.join(customers.column_names)})"
        )
    return customers.set_column(customers.column_names.index(key), key, customers[key].cast(pa.string()))


def join_customers(members: pa.Table, customers: pa.Table, key: str) -> pa.Table:
    clashes = [c for c in customers.column_names if c in members.column_names]
    if clashes:
        customers = customers.rename_columns([f"customer_{c}" if c in clashes else c for c in customers.column_names])
        key = f"customer_{key}" if key in clashes else key
    joined = members.join(customers, keys="user_id", right_keys=key, join_type="left outer", use_threads=False)
    # keep the key column for matching (pyarrow drops the right key): rebuild it from matches
    matched = pc.is_in(joined["user_id"], value_set=customers[key])
    joined = joined.append_column("_matched", matched)
    if "score" in joined.column_names:
        return joined.sort_by([("score", "descending"), ("user_id", "ascending")])
    return joined.sort_by("user_id")


def exited_customers(
    pipeline: Any, audience: str, changes: delta.Changes, customers: str | Path | None,
    customers_table: str | None, key: str, text_columns: list[str],
) -> pa.Table:
    """The customer records of the members who left since ``changes.since`` (to hash for removal)."""
    exited = pa.array(changes.exited, pa.string())
    if customers_table is not None:
        table = join_in_warehouse(pipeline, audience, customers_table, key, exited_since=changes.since)
        table = table.filter(pc.is_in(table["user_id"], value_set=exited))
    else:
        assert customers is not None
        ids = pa.table({"user_id": exited})
        table = join_customers(ids, read_customers(Path(customers), key, text_columns), key)
    require_one_record_per_member(table, customers_table or str(customers), key)
    return table.filter(table["_matched"]).drop_columns(["_matched"])


def require_one_record_per_member(table: pa.Table, customers: str, key: str) -> None:
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


def apply_customer_rules(
    table: pa.Table, customers: str, opt_out_column: str | None, keep_unmatched: bool, opt_outs_only: bool
) -> tuple[pa.Table, pa.Table, int, int, int]:
    """Leaves out unmatched members (unless kept), opted-out customers and, unless the column only
    marks opt-outs, customers without a recorded choice; returns the rows kept, the rows left out
    (``_matched`` says which have a customer record) and those three counts."""
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
    exported = pc.and_(keep, pc.invert(pc.or_(opted, no_choice)))
    kept, left_out = table.filter(exported), table.filter(pc.invert(exported))
    return kept.drop_columns(["_matched"]), left_out, unmatched, opted_out, no_consent
