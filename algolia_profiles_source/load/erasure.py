"""Erasure: removing people from everything this package writes, and keeping them out.

:func:`forget_users` deletes every row of the given user IDs from the tables of
:data:`..tables.PERSONAL_TABLES` (raw profiles, affinities, rejected records, audience members and
their membership events), from the copies dlt keeps of the last merge in its staging dataset, and
from the files of finished loads in the pipeline's working folder; and adds the users to the
suppression list ``erased_users``. Aggregates (``segment_sizes``, ``segment_builds``,
``affinity_catalog``) hold counts only and stay.

The suppression list holds the SHA-256 of each user ID (lower-case hex of its UTF-8 bytes), never
the ID: the list does not name anyone, yet a load can still tell that a profile it reads is on it.
The hash is unkeyed so that any warehouse can compute it (``sha256``, ``SHA2``, ``TO_HEX(SHA256())``)
to audit the list against its own ID lists; the price is that whoever holds a candidate ID can test
it against the list (see ``docs/privacy.md``).

Every load reads the list once, at the start of its run (:func:`erased_users_for_run`), and leaves
out every row of an erased user (:class:`ErasedUsers`), so neither an incremental load, a reconcile
nor a plain ``pipeline.run(algolia_profiles())`` writes them again, and no later build can select
them. The deletes and the insert into the list run in one transaction where the warehouse has them
(DuckDB, Postgres); elsewhere the list is written first, so a run that fails half-way keeps the
users out of the next load and is completed by running it again.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ..exceptions import ConfigurationError, TableNotFoundError
from ..tables import AFFINITIES, ERASED, ERASED_COLUMNS, HISTORY, MEMBERS, PERSONAL_TABLES, REJECTED, STAGED_TABLES, USERS
from ..warehouse import dialects
from ..warehouse.read import Dataset, open_dataset
from ..warehouse.target import COLUMN_NAME, TABLE_NAME, Statement, Target, dialect_for_destination
from .duckdb import waiting_for_duckdb_lock
from .state import restore_state
from .working_dir import exclusive

logger = logging.getLogger(__name__)

# user IDs per IN list: one statement stays small on every warehouse
CHUNK = 500
# the tables whose rows land in the pipeline's working folder as load files
_LOADED_PERSONAL_TABLES = (USERS, AFFINITIES, REJECTED, HISTORY)


def user_id_hash(user_id: str) -> str:
    """The suppression list's form of a user ID: SHA-256 of its UTF-8 bytes, lower-case hex."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


@dataclass
class ErasureReceipt:
    """What :func:`forget_users` did.

    ``removed``: rows deleted per table (``<dataset>_staging.<table>`` for dlt's staging copies),
    every table that exists listed, zeros included; ``added``: IDs newly on the suppression list;
    ``already_suppressed``: IDs that were on it before; ``audiences``: the audiences the users were
    members of (their lists outside the warehouse need the same erasure); ``load_files_removed``:
    files of finished loads deleted from the pipeline's working folder. ``rows_per_user`` holds the
    IDs themselves: it is left out of ``repr`` and of :meth:`as_dict` unless asked.
    """

    requested: int
    removed: dict[str, int] = field(default_factory=dict)
    added: int = 0
    already_suppressed: int = 0
    audiences: list[str] = field(default_factory=list)
    load_files_removed: int = 0
    rows_per_user: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def total_removed(self) -> int:
        return sum(self.removed.values())

    def as_dict(self, show_ids: bool = False) -> dict[str, Any]:
        """The receipt as plain data; the user IDs only with ``show_ids``."""
        data: dict[str, Any] = {
            "requested": self.requested,
            "removed": dict(self.removed),
            "total_removed": self.total_removed,
            "added_to_suppression_list": self.added,
            "already_suppressed": self.already_suppressed,
            "audiences": list(self.audiences),
            "load_files_removed": self.load_files_removed,
        }
        if show_ids:
            data["rows_per_user"] = dict(self.rows_per_user)
        return data


def forget_users(
    pipeline: Any,
    user_ids: Iterable[str] = (),
    *,
    file: str | Path | None = None,
    table: str | None = None,
    column: str = "user_id",
) -> ErasureReceipt:
    """Removes the users ``user_ids`` (plus those listed in ``file``, one ID a line, ``-`` for
    standard input, and those in the warehouse ``table``'s ``column``) from every table this
    package writes, and adds them to the suppression list that keeps them out of later loads.

    Idempotent: run again, it removes nothing and adds nothing. Refuses while a load runs or a
    load package is pending (its files would write the users again).
    """
    ids = set(_clean(user_ids))
    if file is not None:
        ids.update(_ids_from_file(file))
    restore_state(pipeline)  # a runner without the pipeline's folder still forgets
    tables = pipeline.default_schema.tables if pipeline.default_schema_name else {}
    if USERS not in tables:
        raise ConfigurationError(
            f"pipeline {pipeline.pipeline_name!r} has not loaded profiles yet (no `users` table):"
            " there is nothing to forget"
        )
    if table is not None:
        ids.update(waiting_for_duckdb_lock(lambda: _ids_from_table(pipeline, table, column)))
    if not ids:
        raise ConfigurationError("no user IDs to forget: give USER_ID arguments, --file or --table")
    with exclusive(pipeline):
        if pipeline.has_pending_data:
            raise ConfigurationError(
                "a load package is pending (a load failed or was stopped): its files may hold these"
                " users. Run `algolia-profiles load` to finish it, then forget again"
            )
        receipt = waiting_for_duckdb_lock(lambda: _erase(pipeline, sorted(ids)))
        receipt.load_files_removed = _remove_load_files(pipeline)
    return receipt


def erased_users_for_run() -> "ErasedUsers":
    """The suppression list of the running pipeline's destination, read once for a run (empty when
    the source runs outside a pipeline or nothing was erased yet)."""
    import dlt

    try:
        pipeline = dlt.current.pipeline()
    except Exception:  # noqa: BLE001 - iterated outside a pipeline: no destination to read
        return ErasedUsers(frozenset())
    try:
        dialect_for_destination(pipeline.destination.destination_type)
    except (AttributeError, ConfigurationError):  # no destination, or one without SQL: nothing was erased there
        return ErasedUsers(frozenset())
    return ErasedUsers(waiting_for_duckdb_lock(lambda: read_suppression_list(pipeline)))


def read_suppression_list(pipeline: Any) -> frozenset[str]:
    """The SHA-256 hashes on the pipeline's suppression list (empty when there is none yet)."""
    try:
        with open_dataset(pipeline) as dataset:
            rows = dataset.rows(exp.select("user_id_sha256").from_(dataset.table(ERASED)))
    except TableNotFoundError:
        return frozenset()
    return frozenset(row["user_id_sha256"] for row in rows)


class ErasedUsers:
    """Leaves the rows of erased users out of a run's items (``users`` and ``user_affinities``
    Arrow tables, ``rejected_records`` rows); ``left_out`` counts the erased users met."""

    def __init__(self, hashes: frozenset[str]) -> None:
        self.hashes = hashes
        self._met: set[str] = set()

    @property
    def left_out(self) -> int:
        return len(self._met)

    def leave_out(self, items: Iterable[Any]) -> Iterator[Any]:
        """``items`` without the rows of erased users (every item kept, maybe empty: the first of
        each table carries its hints)."""
        if not self.hashes:
            yield from items
            return
        from dlt.extract.items import DataItemWithMeta

        for item in items:
            if isinstance(item, DataItemWithMeta):
                yield DataItemWithMeta(item.meta, self._filter(item.data))
            else:
                yield self._filter(item)
        if self._met:
            logger.info("left out %d erased user(s) on the suppression list", len(self._met))

    def _filter(self, data: Any) -> Any:
        if isinstance(data, pa.Table) and "user_id" in data.column_names:
            ids = [i for i in pc.unique(data["user_id"]).to_pylist() if i is not None]
            erased = [i for i in ids if self._erased(i)]
            if not erased:
                return data
            mask = pc.invert(pc.is_in(data["user_id"], value_set=pa.array(erased, data["user_id"].type)))
            return data.filter(pc.fill_null(mask, True))
        if isinstance(data, list) and any(isinstance(row, dict) and self._erased(row.get("user_id")) for row in data):
            return [row for row in data if not (isinstance(row, dict) and self._erased(row.get("user_id")))]
        return data

    def _erased(self, user_id: Any) -> bool:
        if not isinstance(user_id, str):
            return False
        digest = user_id_hash(user_id)
        if digest in self.hashes:
            self._met.add(digest)
            return True
        return False


def erasure_statements(
    target: Target, user_ids: list[str], tables: Iterable[str], erased_at: datetime,
    new_hashes: Iterable[str] = (),
) -> list[Statement]:
    """The statements of one erasure: the suppression list created if missing and ``new_hashes``
    added to it (first), then the users' rows deleted from ``tables`` of the dataset."""
    statements = [_create_suppression_list(target), *_suppress(target, list(new_hashes), erased_at)]
    for name in tables:
        statements += _delete(target, name, user_ids)
    return statements


def _suppress(target: Target, hashes: list[str], erased_at: datetime) -> list[Statement]:
    rows = [exp.Tuple(expressions=[exp.Literal.string(h), dialects.timestamp(erased_at)]) for h in hashes]
    return [
        Statement(f"suppress in {ERASED}", exp.insert(
            exp.values(chunk), target.table(ERASED), columns=["user_id_sha256", "erased_at"],
        ))
        for chunk in _chunks(rows)
    ]


def _delete(target: Target, name: str, user_ids: list[str]) -> list[Statement]:
    return [Statement(f"erase from {name}", exp.delete(target.table(name), where=_of_users(chunk)))
            for chunk in _chunks(user_ids)]


def _create_suppression_list(target: Target) -> Statement:

    return dialects.create_if_missing(target, ERASED, ERASED_COLUMNS)


def _erase(pipeline: Any, user_ids: list[str]) -> ErasureReceipt:

    hashes = {user_id_hash(user_id): user_id for user_id in user_ids}
    receipt = ErasureReceipt(requested=len(user_ids))
    main, staged = _existing_tables(pipeline)
    with open_dataset(pipeline) as dataset:
        client, target = dataset.client, dataset.target
        transaction = client.begin_transaction() if target.dialect in dialects.TRANSACTIONAL_DDL else nullcontext()
        with transaction:
            _execute(dataset, [_create_suppression_list(target)])
            known = _already_suppressed(dataset, list(hashes))
            receipt.already_suppressed = len(known)
            new = [digest for digest in hashes if digest not in known]
            receipt.added = len(new)
            now = datetime.now(timezone.utc)
            _execute(dataset, _suppress(target, new, now))
            if MEMBERS in main:
                receipt.audiences = _audiences_of(dataset, user_ids)
            for name in main:
                receipt.removed[name] = _count_and_delete(dataset, name, user_ids, receipt.rows_per_user)
            if staged:
                with client.with_staging_dataset():
                    for name in staged:
                        key = f"{client.dataset_name}.{name}"
                        receipt.removed[key] = _count_and_delete(dataset, name, user_ids, receipt.rows_per_user)
    for user_id in user_ids:
        receipt.rows_per_user.setdefault(user_id, 0)
    return receipt


def _count_and_delete(dataset: Dataset, name: str, user_ids: list[str], per_user: dict[str, int]) -> int:
    """Deletes the users' rows from the table ``name``; returns how many there were."""
    removed = 0
    for chunk in _chunks(user_ids):
        query = (
            exp.select(exp.column("user_id"), exp.func("COUNT", exp.Star()).as_("n"))
            .from_(dataset.table(name)).where(_of_users(chunk)).group_by(exp.column("user_id"))
        )
        for row in dataset.rows(query):
            per_user[row["user_id"]] = per_user.get(row["user_id"], 0) + int(row["n"])
            removed += int(row["n"])
    if removed:
        _execute(dataset, _delete(dataset.target, name, user_ids))
    return removed


def _audiences_of(dataset: Dataset, user_ids: list[str]) -> list[str]:
    names: set[str] = set()
    for chunk in _chunks(user_ids):
        query = exp.select("segment").distinct().from_(dataset.table(MEMBERS)).where(_of_users(chunk))
        names.update(row["segment"] for row in dataset.rows(query))
    return sorted(names)


def _already_suppressed(dataset: Dataset, hashes: list[str]) -> set[str]:
    known: set[str] = set()
    for chunk in _chunks(hashes):
        query = exp.select("user_id_sha256").from_(dataset.table(ERASED)).where(
            exp.column("user_id_sha256").isin(*[exp.Literal.string(h) for h in chunk])
        )
        known.update(row["user_id_sha256"] for row in dataset.rows(query))
    return known


def _execute(dataset: Dataset, statements: list[Statement]) -> None:
    for statement in statements:
        logger.debug("%s", statement.label)  # never the SQL: it holds the user IDs
        dataset.client.execute_sql(dataset.target.render(statement.tree))


def _existing_tables(pipeline: Any) -> tuple[list[str], list[str]]:
    """The personal tables that exist with a ``user_id`` column, in the dataset and in dlt's
    staging dataset (asked of the warehouse's information schema: the audience tables are not in
    dlt's schema)."""

    def present(job_client: Any, names: Iterable[str]) -> list[str]:
        found = dict(job_client.get_storage_tables(list(names)))
        return [name for name in names if any(c.lower() == "user_id" for c in found.get(name, {}))]

    with pipeline.destination_client() as job_client:
        main = present(job_client, PERSONAL_TABLES)
        staged: list[str] = []
        if hasattr(job_client, "with_staging_dataset"):
            with job_client.with_staging_dataset():
                staged = present(job_client, STAGED_TABLES)
    return main, staged


def _remove_load_files(pipeline: Any) -> int:
    """Deletes the files of finished loads of the personal tables from the pipeline's working
    folder: dlt keeps a copy of every loaded package there (``load/loaded``)."""
    root = Path(pipeline.working_dir) / "load" / "loaded"
    removed = 0
    if not root.is_dir():
        return 0
    for path in root.glob("*/completed_jobs/*"):
        if path.is_file() and path.name.split(".", 1)[0] in _LOADED_PERSONAL_TABLES:
            path.unlink()
            removed += 1
    return removed


def _of_users(user_ids: list[str]) -> exp.Expression:
    return exp.column("user_id").isin(*[exp.Literal.string(user_id) for user_id in user_ids])


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _clean(values: Iterable[str]) -> Iterator[str]:
    for value in values:
        if not isinstance(value, str):
            raise ConfigurationError(f"a user ID must be text, got {type(value).__name__}")
        value = value.strip()
        if value:
            yield value


def _ids_from_file(file: str | Path) -> list[str]:
    if str(file) == "-":
        return list(_clean(sys.stdin.read().splitlines()))
    path = Path(file)
    if not path.is_file():
        raise ConfigurationError(f"file of user IDs {str(file)!r} does not exist (one ID a line)")
    return list(_clean(path.read_text(encoding="utf-8").splitlines()))


def _ids_from_table(pipeline: Any, table: str, column: str) -> list[str]:

    if not TABLE_NAME.match(table):
        raise ConfigurationError(f"table {table!r} is not a table name like privacy.erasure_requests")
    if not COLUMN_NAME.match(column):
        raise ConfigurationError(f"column {column!r} is not a column name")
    with open_dataset(pipeline) as dataset:
        source = dataset.target.external_table(table)
        value = exp.cast(dataset.column(column), "TEXT")
        query = exp.select(value.as_("user_id")).distinct().from_(source).where(value.is_(exp.not_(exp.null())))
        try:
            rows = dataset.rows(query)
        except Exception as error:  # noqa: BLE001 - a missing table or column
            raise ConfigurationError(f"cannot read user IDs from column {column!r} of table {table!r}: {error}") from None
    return list(_clean(row["user_id"] for row in rows))
