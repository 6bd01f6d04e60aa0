"""Exports of an audience's members, optionally joined to the customer's own data.

Members come from ``segment_members`` in the warehouse. Customer data is either a table in the
warehouse (joined there, so large CRMs stay in BigQuery/Snowflake) or a CSV/Parquet file (joined
locally with Arrow), read and held to the consent rules by :mod:`.customers`. Members without a
customer record are counted (and left out unless ``keep_unmatched``, which exports them without
customer data). Consent fails closed: a customer is exported only when its opt-out value reads as
"not opted out" (:func:`.customers.read_opt_outs`); an empty one is not consent (unless the column
only marks opt-outs), and a value that cannot be read refuses the whole export. The output path
must stay inside the output directory, an existing file is never overwritten silently, and the
file appears atomically.

For an ad platform (``platform``) the file holds only the customers' identifiers, normalized and
hashed as that platform documents (:mod:`.identifiers`). A delta (``changes_since``) writes two
files, the members to add and to remove (:mod:`.delta`); the add list passes the same consent rules.
Every export is recorded in the warehouse, so the next delta can start from it.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
from . import delta, identifiers
from .customers import (
    apply_customer_rules,
    exited_customers,
    join_customers,
    join_in_warehouse,
    read_customers,
    require_one_record_per_member,
)
from ..warehouse.target import COLUMN_NAME
from .hints import did_you_mean

# hashes a table of customers into an ad platform's list (identifiers.hash_identifiers, its options set)
_Hasher = Callable[[pa.Table], identifiers.HashedIdentifiers]

FORMATS = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}
# a plain export (no platform) is one sync of its own when deltas are recorded
FILE_SYNC = "file"


@dataclass
class ExportResult:
    """What an export wrote. Consent counts cover the audience's current members; in a delta,
    ``path`` is the file of members to add and ``remove_path`` the file of members to remove."""

    path: Path
    rows: int
    members: int
    unmatched: int = 0
    opted_out: int = 0
    # customers left out because their opt-out value was empty (no consent recorded)
    no_consent: int = 0
    joined: bool = False
    platform: str | None = None
    # hashed exports: values that could not be normalized (left out), customers with no usable identifier
    unreadable_emails: int = 0
    unreadable_phones: int = 0
    no_identifier: int = 0
    build_id: str = ""
    sync: str = ""
    # delta exports
    changes_since: datetime | None = None
    remove_path: Path | None = None
    removed: int = 0
    # members to remove whose customer data holds no usable identifier (a hashed list cannot name them)
    unremovable: int = 0


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
    platform: str | None = None,
    email_column: str | None = None,
    phone_column: str | None = None,
    phone_region: str | None = None,
    include_user_id: bool = False,
    changes_since: str | datetime | None = None,
    sync: str | None = None,
) -> ExportResult:
    """Writes the members of ``audience`` to ``output_dir/filename`` (default ``<audience>.<fmt>``).

    With customer data, ``opt_out_column`` must be one of its columns; ``None`` says the data has
    none (every matched customer is exported). ``opt_outs_only`` says the column marks opt-outs
    only, so an empty value means "not opted out" instead of "no consent".

    ``platform`` (``google``, ``meta``, ``campaign_manager_360``) writes a customer list for that ad
    platform: the SHA-256 of each customer's normalized ``email_column`` and ``phone_column``
    (default: the columns ``email`` and ``phone`` the data has) and nothing else, but ``user_id``
    when ``include_user_id``. Phones without a country code take ``phone_region``'s (e.g. ``US``).

    ``changes_since`` (``"last"``, a build id or a time) writes the members to add and to remove
    since then, as ``<name>.add.<fmt>`` and ``<name>.remove.<fmt>``; ``"last"`` is the last export
    of this audience for ``sync`` (default: the platform's name, or ``file``).
    """
    target, region = _check_options(fmt, customers, customers_table, platform, phone_region, keep_unmatched,
                                    (("customer key", customer_key), ("opt-out column", opt_out_column),
                                     ("email column", email_column), ("phone column", phone_column)))
    sync = sync or platform or FILE_SYNC
    name = filename or f"{audience}{FORMATS[fmt]}"
    paths = _output_paths(output_dir, name, overwrite, changes=changes_since is not None)
    data = _CustomerData(customers, customers_table, customer_key,
                         [email_column or "email", phone_column or "phone"] if target is not None else [])

    members = _members(pipeline, audience)
    result = ExportResult(paths[0], 0, members.num_rows, platform=platform, sync=sync)
    table, left_out = _held_to_customer_data(
        pipeline, audience, members, data, result, opt_out_column, keep_unmatched, opt_outs_only
    )
    hashed: _Hasher | None = None
    if target is not None:
        columns = _identifier_columns(table.column_names, email_column, phone_column, data.source)
        hashed = functools.partial(
            identifiers.hash_identifiers, target=target, email_column=columns.get("email"),
            phone_column=columns.get("phone"), region=region, include_user_id=include_user_id,
        )

    with open_dataset(pipeline) as dataset:
        build = delta.current_build(dataset, audience)
        since = None if changes_since is None else delta.resolve_since(dataset, audience, sync, changes_since)
        changes = None if since is None else delta.membership_changes(dataset, audience, since)
    result.build_id, result.changes_since = build.build_id, since

    if changes is None:
        table = _hashed_list(hashed, table, result) if hashed is not None else table
        result.rows = table.num_rows
        _write_atomically(table, paths[0], fmt)
    else:
        add, remove = _delta_lists(pipeline, audience, table, left_out, changes, data, hashed, result)
        result.rows, result.removed, result.remove_path = add.num_rows, remove.num_rows, paths[1]
        _write_atomically(add, paths[0], fmt)
        _write_atomically(remove, paths[1], fmt)
    with open_dataset(pipeline) as dataset:
        delta.record_export(dataset, audience, sync, build, since, result.rows, result.removed)
    return result


@dataclass(frozen=True)
class _CustomerData:
    """Where an export's customer data is (a file, a warehouse table, or neither), the column that
    joins it to the members, and the columns read as text (the identifiers to hash)."""

    file: str | Path | None
    table: str | None
    key: str
    text_columns: list[str]

    @property
    def source(self) -> str:
        """The table's or the file's name, for messages (empty without customer data)."""
        return self.table or (str(self.file) if self.file is not None else "")


def _output_paths(output_dir: str | Path, name: str, overwrite: bool, changes: bool) -> list[Path]:
    """The file to write, or with ``changes`` the files of members to add and to remove."""
    if not changes:
        return [output_path(output_dir, name, overwrite)]
    return [output_path(output_dir, _with_part(name, part), overwrite) for part in ("add", "remove")]


def _held_to_customer_data(
    pipeline: Any, audience: str, members: pa.Table, data: _CustomerData, result: ExportResult,
    opt_out_column: str | None, keep_unmatched: bool, opt_outs_only: bool,
) -> tuple[pa.Table, pa.Table]:
    """The members to export, joined to their customer records and held to the consent rules, and
    the members left out (with their customer data); the counts go to ``result``. Without customer
    data, every member and none left out."""
    if data.table is not None:
        table = join_in_warehouse(pipeline, audience, data.table, data.key)
    elif data.file is not None:
        table = join_customers(members, read_customers(Path(data.file), data.key, data.text_columns), data.key)
    else:
        return members, members.slice(0, 0)
    result.joined = True
    require_one_record_per_member(table, data.source, data.key)
    table, left_out, result.unmatched, result.opted_out, result.no_consent = apply_customer_rules(
        table, data.source, opt_out_column, keep_unmatched, opt_outs_only
    )
    return table, left_out


def _delta_lists(
    pipeline: Any, audience: str, table: pa.Table, left_out: pa.Table, changes: delta.Changes,
    data: _CustomerData, hashed: _Hasher | None, result: ExportResult,
) -> tuple[pa.Table, pa.Table]:
    """The members to add (those of ``table`` who entered since ``changes.since``) and to remove
    (those who left, and those who were members before but are left out now), hashed when
    ``hashed`` is given; what hashing could not use is counted in ``result``."""
    add = _rows_of(table, changes.entered)
    # members left out now who were members before `since`: their consent (or customer record)
    # may have gone since an earlier export sent them
    withdrawn = _rows_of(left_out, changes.entered, keep=False)
    if hashed is None:
        remove_ids = sorted(set(changes.exited) | set(withdrawn["user_id"].to_pylist()))
        return add, pa.table({"user_id": pa.array(remove_ids, pa.string())})
    add = _hashed_list(hashed, add, result)
    # a member without a customer record has no identifier to name in a hashed list
    withdrawn = withdrawn.filter(withdrawn["_matched"]) if withdrawn.num_rows else withdrawn
    gone = [hashed(withdrawn)]
    if changes.exited:
        exited = exited_customers(pipeline, audience, changes, data.file, data.table, data.key, data.text_columns)
        gone.append(hashed(exited))
        result.unremovable = len(changes.exited) - exited.num_rows + gone[-1].no_identifier
    return add, pa.concat_tables([part.table for part in gone])


def _check_options(
    fmt: str, customers: str | Path | None, customers_table: str | None, platform: str | None,
    phone_region: str | None, keep_unmatched: bool, columns: tuple[tuple[str, str | None], ...],
) -> tuple[identifiers.Platform | None, str | None]:
    """Refuses options that are invalid or do not go together; the ad platform asked for (if any)
    and the default phone region, checked."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if customers is not None and customers_table is not None:
        raise ConfigurationError("give customer data as a file or as a warehouse table, not both")
    for what, column in columns:
        if column is not None and not COLUMN_NAME.match(column):
            raise ConfigurationError(f"{what} {column!r} is not a column name")
    target = identifiers.platform(platform) if platform is not None else None
    region = identifiers.phone_region(phone_region)
    if target is not None and customers is None and customers_table is None:
        raise ConfigurationError(
            f"a {platform} customer list is made of the customers' emails and phones: give the"
            " customer data with --customers FILE or --customers-table TABLE"
        )
    if target is not None and keep_unmatched:
        raise ConfigurationError(
            "--keep-unmatched keeps members without a customer record, who have no email or phone to"
            " hash: leave it out of a --platform export"
        )
    return target, region


def _hashed_list(hashed: _Hasher, rows: pa.Table, result: ExportResult) -> pa.Table:
    """``rows`` as the platform's hashed list; what hashing could not use is counted in ``result``."""
    out = hashed(rows)
    result.unreadable_emails, result.unreadable_phones = out.unreadable_emails, out.unreadable_phones
    result.no_identifier = out.no_identifier
    return out.table


def _rows_of(table: pa.Table, user_ids: list[str], keep: bool = True) -> pa.Table:
    """The rows of ``table`` whose ``user_id`` is (``keep``) or is not among ``user_ids``."""
    if table.num_rows == 0:
        return table
    among = pc.is_in(table["user_id"].cast(pa.string()), value_set=pa.array(user_ids, pa.string()))
    return table.filter(among if keep else pc.invert(among))


def _with_part(filename: str, part: str) -> str:
    """``campers.csv`` -> ``campers.add.csv``."""
    path = Path(filename)
    return str(path.with_name(f"{path.stem}.{part}{path.suffix}"))


def _identifier_columns(
    columns: list[str], email_column: str | None, phone_column: str | None, source: str
) -> dict[str, str]:
    """The customer columns a hashed list is made of: the ones named, else ``email`` and ``phone``
    where the data has them."""
    chosen = {}
    for kind, given in (("email", email_column), ("phone", phone_column)):
        name = given or kind
        if name in columns:
            chosen[kind] = name
        elif given is not None:
            raise ConfigurationError(
                f"customers {source!r} has no {kind} column {given!r}{did_you_mean(given, columns)}"
                f" (columns: {', '.join(columns)})"
            )
    if not chosen:
        raise ConfigurationError(
            f"customers {source!r} has no 'email' or 'phone' column to hash: name them with"
            f" --email-column / --phone-column (columns: {', '.join(columns)})"
        )
    return chosen


def output_path(output_dir: str | Path, filename: str, overwrite: bool) -> Path:
    """``output_dir/filename``, refusing paths that leave the directory and silent overwrites (the
    directory is made when the file is written)."""
    directory = Path(output_dir).resolve()
    candidate = (directory / filename).resolve()
    if Path(filename).is_absolute() or candidate.parent != directory:
        raise ConfigurationError(
            f"output name {filename!r} would write outside the output directory {str(directory)!r}:"
            " give a plain file name and choose the directory with --output-dir"
        )
    if candidate.exists() and not overwrite:
        raise ConfigurationError(f"{str(candidate)!r} already exists: pass --overwrite to replace it")
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


def _write_atomically(table: pa.Table, path: Path, fmt: str) -> None:
    # created as any new file is (0666 less the umask): mkstemp's 0600 would hide the export from
    # the jobs and people it is for
    path.parent.mkdir(parents=True, exist_ok=True)
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
