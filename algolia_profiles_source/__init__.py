"""dlt source for Algolia Advanced Personalization user profiles.

``algolia_profiles()`` has two resources. ``profiles`` walks ``GET /2/users`` page by page (cursor
``nextPageToken``) and writes:

- ``users``: one row per profile, merged on ``user_id``;
- ``user_affinities``: one row per (user, affinity), merged so that every reloaded user ends with
  exactly its current affinity set;
- ``rejected_records``: malformed records, with the reason (appended).

``personalization_config`` writes the ``GET /2/config`` snapshot, replaced on each run.

Incremental loading uses the profile's ``lastUpdatedAt``, sent as ``startDate``. The cursor is kept
in the resource state by hand rather than with ``dlt.sources.incremental``, because the latter
filters every item a resource yields: affinity rows whose own timestamp is older than the cursor
would be dropped. Profiles are recomputed in batches and can surface with a timestamp slightly older
than the newest one loaded, so each run re-reads ``overlap_seconds`` before the cursor; the merge on
``user_id`` makes that re-read idempotent. The cursor is stored at the end of a complete walk, and dlt
commits it with the load package: a failed or interrupted run re-reads, it never skips.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.extract.resource import DltResource

from . import settings
from .client import ProfilesClient
from .exceptions import (
    AlgoliaProfilesError,
    ApiError,
    AuthenticationError,
    ConfigurationError,
    EndpointError,
    InvalidRequestError,
    PaginationError,
    ResponseFormatError,
    RetriesExhaustedError,
)
from .query import ProfilesQuery, build_query, format_rfc3339, parse_datetime, seconds
from .progress import report_page
from .page import Page, keep, user_ids
from .rate_limit import RateGovernor
from .batches import PageBatches
from .read_ahead import read_ahead
from .seen_ids import SeenIds
from .windows import Window, walk_concurrently
from .transform import (
    AFFINITIES_COLUMNS,
    AFFINITIES_PRIMARY_KEY,
    REJECTED_COLUMNS,
    USERS_COLUMNS,
    page_to_tables,
)

__all__ = [
    "algolia_profiles",
    "ProfilesClient",
    "AlgoliaProfilesError",
    "ConfigurationError",
    "AuthenticationError",
    "InvalidRequestError",
    "EndpointError",
    "ApiError",
    "RetriesExhaustedError",
    "ResponseFormatError",
    "PaginationError",
]

logger = logging.getLogger(__name__)

USERS_TABLE = "users"
AFFINITIES_TABLE = "user_affinities"
CONFIG_TABLE = "personalization_config"
PROFILES_RESOURCE = "profiles"
REJECTED_TABLE = "rejected_records"

_REJECTED_HINTS = dlt.mark.make_hints(
    table_name=REJECTED_TABLE, write_disposition="append", columns=REJECTED_COLUMNS
)


def _table_hints(write_disposition: str) -> Tuple[Any, Any]:
    """Hints of ``users`` and ``user_affinities``; only the write disposition varies by run.

    Merge-only column hints (``hard_delete``, ``dedup_sort``) are left out of a replace, where dlt
    would ignore them with a warning; the next merge adds them back.
    """

    def columns(spec: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
        if write_disposition == "merge":
            return spec
        merge_only = ("hard_delete", "dedup_sort")
        return {name: {k: v for k, v in hints.items() if k not in merge_only} for name, hints in spec.items()}

    users = dlt.mark.make_hints(
        table_name=USERS_TABLE,
        write_disposition=write_disposition,
        primary_key="user_id",
        columns=columns(USERS_COLUMNS),
    )
    affinities = dlt.mark.make_hints(
        table_name=AFFINITIES_TABLE,
        write_disposition=write_disposition,
        primary_key=list(AFFINITIES_PRIMARY_KEY),
        merge_key="user_id",
        columns=columns(AFFINITIES_COLUMNS),
    )
    return users, affinities


@dlt.source(name="algolia_profiles", max_table_nesting=0)
def algolia_profiles(
    application_id: str = dlt.secrets.value,
    api_key: str = dlt.secrets.value,
    region: str = settings.DEFAULT_REGION,
    base_url: Optional[str] = None,
    indices: Optional[List[str]] = None,
    affinity: Optional[List[str]] = None,
    start_date: Optional[str] = None,
    end_date: Optional[str] = None,
    page_size: int = settings.DEFAULT_PAGE_SIZE,
    overlap_seconds: float = settings.DEFAULT_OVERLAP_SECONDS,
    max_pages: Optional[int] = None,
    max_share: float = settings.DEFAULT_MAX_SHARE,
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
    backoff_base: float = settings.DEFAULT_BACKOFF_BASE,
    timeout: float = settings.DEFAULT_TIMEOUT,
    reconcile: bool = False,
    concurrency: int = settings.DEFAULT_CONCURRENCY,
) -> Sequence[DltResource]:
    """Algolia Advanced Personalization profiles and their affinities.

    Args:
        application_id: Algolia application ID (secret or config).
        api_key: API key with the ACLs search, browse and recommendation (secret).
        region: The application's analytics region, ``us`` or ``eu``.
        base_url: Overrides the regional host (a proxy, the emulator). ``http://`` only on loopback.
        indices: Only users with affinities on all of these indices.
        affinity: Only users matching all of these items, ``name`` or ``name:value``.
        start_date: Only profiles updated after this instant (RFC 3339 or datetime). The initial
            cursor of an incremental load.
        end_date: Only profiles updated before this instant. A run with ``end_date`` is a backfill
            of the window: it neither reads nor moves the incremental cursor.
        page_size: Profiles per request, 1..1000.
        overlap_seconds: How far before the stored cursor each incremental run starts re-reading.
        max_pages: Fail instead of reading more pages than this (default: no cap).
        max_share: Share of the application's rate limit this export may use (0..1].
        max_attempts: Attempts per request on 5xx, network errors and broken bodies.
        backoff_base: First retry wait in seconds; doubles per attempt, with jitter.
        timeout: Seconds to wait for each response.
        concurrency: Windows of ``lastUpdatedAt`` walked at the same time (1 = one sequential
            cursor walk). All walks share the rate governor; see :mod:`.windows`.
        reconcile: Walk every profile (ignoring the cursor) so that profiles gone from Algolia can
            be marked deleted afterwards (:func:`algolia_profiles_source.reconcile.mark_deleted`,
            which ``load_profiles(..., reconcile=True)`` runs). Not allowed with filters or dates.

    Raises:
        ConfigurationError: a setting is missing or invalid (raised here, before any request).
    """
    for name, value in (("application_id", application_id), ("api_key", api_key)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(
                f"{name} is empty: set sources.algolia_profiles.{name} in .dlt/secrets.toml or"
                f" the environment variable SOURCES__ALGOLIA_PROFILES__{name.upper()}"
            )
    query = build_query(
        region=region,
        base_url=base_url,
        indices=indices,
        affinity=affinity,
        start_date=start_date,
        end_date=end_date,
        page_size=page_size,
    )
    if reconcile and (query.indices or query.affinity or query.start_date or query.end_date):
        raise ConfigurationError(
            "reconcile walks every profile to find the deleted ones: it cannot be combined with"
            " indices, affinity, start_date or end_date (profiles outside them would look deleted)"
        )
    overlap = seconds(overlap_seconds, "overlap_seconds")
    if max_pages is not None and int(max_pages) < 1:
        raise ConfigurationError(f"max_pages must be at least 1, got {max_pages!r}")
    try:
        governor = RateGovernor(max_share=float(max_share))
    except ValueError as error:
        raise ConfigurationError(f"{error} (sources.algolia_profiles.max_share)") from None
    if int(concurrency) < 1 or int(concurrency) > 64:
        raise ConfigurationError(f"concurrency must be from 1 to 64, got {concurrency!r}")
    if int(max_attempts) < 1:
        raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts!r}")

    client = ProfilesClient(
        query.base_url,
        application_id.strip(),
        api_key.strip(),
        region=query.region,
        governor=governor,
        max_attempts=int(max_attempts),
        backoff_base=float(backoff_base),
        timeout=float(timeout),
    )

    # One resource per API endpoint; it yields two tables, each with its own keys and types.
    profiles = dlt.resource(
        _profiles(client, query, overlap, max_pages, reconcile, int(concurrency)),
        name=PROFILES_RESOURCE,
        write_disposition="merge",
    )
    config = dlt.resource(
        _personalization_config(client),
        name=CONFIG_TABLE,
        write_disposition="replace",
        primary_key="index",
    )
    return config, profiles


def _profiles(
    client: ProfilesClient,
    query: ProfilesQuery,
    overlap: Any,
    max_pages: Optional[int],
    reconcile: bool = False,
    concurrency: int = 1,
) -> Iterator[Any]:
    """Walks ``GET /2/users`` and yields each page as a ``users`` and a ``user_affinities`` table."""
    state = dlt.current.resource_state()
    _check_application(state, client.application_id)
    backfill = query.end_date is not None
    start_after: Optional[datetime] = None
    cursor = parse_datetime(state.get("last_updated_at"), "state.last_updated_at")
    if not backfill and not reconcile and cursor is not None:
        if state.get("filters", query.filters) != query.filters:
            logger.warning(
                "indices/affinity filters changed since the last run (%s -> %s): reading every"
                " matching profile again",
                state.get("filters"),
                query.filters,
            )
        else:
            start_after = cursor - overlap
    params = query.params(start_after=start_after)
    # a start_date kept in config is the first run's start: only a new one, superseded, is news
    start_date = format_rfc3339(query.start_date) if query.start_date is not None else None
    if (
        start_after is not None and query.start_date is not None and start_after > query.start_date
        and start_date != state.get("start_date")
    ):
        logger.warning(
            "start_date %s is before this pipeline's cursor: the run reads from the cursor (%s)."
            " To read earlier profiles again, load a backfill window: start_date with end_date"
            " (it does not move the cursor)",
            start_date, params["startDate"],
        )
    started = datetime.now(timezone.utc)
    logger.info("reading %s%s with %s", client.base_url, settings.USERS_PATH, params)

    # Arrow items skip dlt's normalizer, which would add _dlt_load_id to dict rows: add it here, so
    # every row can be joined to _dlt_loads like rows of any other dlt table.
    load_id = dlt.current.load_package_state()["load_id"]
    indices_as_json = _arrow_written_as_csv()
    # The very first complete walk into a schema without the tables loads them directly ("replace"):
    # there is nothing to merge with, and skipping the merge's staging, dedup and delete makes the
    # initial export about twice as fast and half as memory-hungry. Every later run merges.
    initial = (
        not backfill and not reconcile and cursor is None and query.start_date is None
        and not query.indices and not query.affinity and not _has_table(USERS_TABLE)
    )
    users_hints, affinities_hints = _table_hints("replace" if initial else "merge")
    mark = _TableMarker()
    batches = PageBatches()

    def marked(done: List[Tuple[pa.Table, pa.Table]]) -> Iterator[Any]:
        for users_batch, affinities_batch in done:
            yield mark(users_batch, users_hints)
            yield mark(affinities_batch, affinities_hints)

    newest: Optional[datetime] = None
    profiles = 0
    rejected = 0
    seen: Optional[SeenIds] = None
    pages_read = 0
    if concurrency > 1:
        pages = _concurrent_pages(client, query, params, concurrency, reconcile, started, overlap)
        seen = SeenIds()  # a profile updated during the walk may be read twice: keep the first
    else:
        pages = read_ahead(client.iter_user_pages(params, max_pages=max_pages))
    try:
        for page in pages:
            pages_read += 1
            if max_pages is not None and pages_read > max_pages:
                raise PaginationError(
                    f"more than max_pages={max_pages} pages: raise max_pages if the application"
                    " really holds that many profiles"
                )
            if seen is not None:
                page = _first_sightings(page, seen)
            if len(page) == 0:
                continue
            tables = page_to_tables(
                page, load_id=load_id, indices_as_json=indices_as_json, tombstones=not initial
            )
            users_table, affinities_table = tables.users, tables.affinities
            if tables.rejected:
                rejected += len(tables.rejected)
                logger.warning("quarantined %d malformed record(s) in rejected_records", len(tables.rejected))
                yield mark(tables.rejected, _REJECTED_HINTS)
            profiles += users_table.num_rows
            report_page(users_table.num_rows, client.governor)
            page_newest = pc.max(users_table["last_updated_at"]).as_py()
            if page_newest is not None and (newest is None or page_newest > newest):
                newest = page_newest
            yield from marked(batches.add(users_table, affinities_table))
        yield from marked(batches.flush())
    finally:
        pages.close()  # stops a read-ahead or window thread now, not when the traceback is freed
        if seen is not None:
            seen.close()  # deletes its database file
    # the pages are in load files now: hand Arrow's cached buffers back before dlt loads them
    pa.default_memory_pool().release_unused()
    if profiles == 0 and query.indices:
        _hint_unknown_indices(client, query.indices)
    # Reached only after the last page: an interrupted walk leaves the cursor where it was.
    if seen is not None and newest is not None and newest > started:
        # first sighting wins: a newer version read later was dropped, and the next run must read
        # it again, so the cursor may not pass the walk's start
        newest = started
    state["application_id"] = client.application_id
    if not backfill:
        state["start_date"] = start_date
        if newest is not None and (cursor is None or newest > cursor):
            state["last_updated_at"] = format_rfc3339(newest)
        state["filters"] = query.filters
    state["last_run"] = {
        "started_at": format_rfc3339(started),
        "finished_at": format_rfc3339(datetime.now(timezone.utc)),
        "params": {k: v for k, v in params.items()},
        "profiles": profiles,
        "rejected": rejected,
        "backfill": backfill,
        "reconcile": reconcile,
        "initial": initial,
        "load_id": load_id,
        "overlap_seconds": overlap.total_seconds(),
        **{k: 0 for k in ("requests", "pages", "retries", "throttled")},
        **{k: int(v) for k, v in client.stats.items()},
    }


def _hint_unknown_indices(client: ProfilesClient, indices: Sequence[str]) -> None:
    """A filter on an index the application does not personalize matches nobody: say so."""
    try:
        configured = {index.get("index") for index in client.get_config().get("indices") or []}
    except Exception:  # noqa: BLE001 - only a hint; the walk itself succeeded
        return
    unknown = [name for name in indices if name not in configured]
    if unknown:
        logger.warning(
            "no profile matched: the application's personalization config has no index %s (its"
            " indices: %s); check the names given to `indices`",
            ", ".join(repr(name) for name in unknown), ", ".join(sorted(filter(None, configured))) or "none",
        )


def _check_application(state: Dict[str, Any], application_id: str) -> None:
    """Refuses to walk another application than the one whose profiles the pipeline holds.

    The cursor, the tables and a reconcile's notion of "deleted" all belong to one application:
    a second one loaded into the same dataset would start from the first one's cursor (reading
    almost nothing) and mix both applications' profiles.
    """
    known = state.get("application_id")
    if known is not None and known != application_id:
        raise ConfigurationError(
            f"this pipeline holds the profiles of application {known!r}, and this run reads"
            f" application {application_id!r}: loading both into one dataset would mix their"
            " profiles and their cursors. Give each application its own pipeline and dataset"
            " (--pipeline-name and --dataset-name, or another --dir), or set application_id back"
            f" to {known!r}"
        )


class _TableMarker:
    """Routes items to their table: with the table's hints the first time in a run, by name after.

    ``with_hints(..., create_table_variant=True)`` gives a table its own keys and types, and makes
    dlt merge the hints and drop its caches on every call; once the variant exists,
    ``with_table_name`` selects it for nothing.
    """

    def __init__(self) -> None:
        self._hinted: set = set()

    def __call__(self, item: Any, hints: Any) -> Any:
        name = hints["table_name"]
        if name in self._hinted:
            return dlt.mark.with_table_name(item, name)
        self._hinted.add(name)
        return dlt.mark.with_hints(item, hints, create_table_variant=True)


def _concurrent_pages(
    client: ProfilesClient,
    query: ProfilesQuery,
    params: Dict[str, Any],
    concurrency: int,
    reconcile: bool,
    started: datetime,
    overlap: Any,
) -> Iterator[List[Any]]:
    """Pages of concurrent window walks (see :mod:`.windows`).

    A profile recomputed during the walk moves to a newer window, which may already be done: the
    next incremental run picks it up. A reconcile cannot wait for that (an unseen profile counts as
    deleted), so it ends with one sequential walk of everything updated since it started.
    """
    start = Window.exact(params)
    yield from walk_concurrently(client.clone, params, [start], concurrency, query.page_size)
    if reconcile:
        catch_up = dict(params, startDate=format_rfc3339(started - overlap))
        yield from client.iter_user_pages(catch_up)


def _first_sightings(page: Page, seen: SeenIds) -> Page:
    """Drops profiles already yielded in this run; records without a usable ``userID`` pass
    through to be quarantined."""
    mask = seen.first_sightings(user_ids(page))
    return page if all(mask) else keep(page, mask)


def _has_table(name: str) -> bool:
    try:
        return name in dlt.current.source_schema().tables
    except Exception:  # iterated outside a pipeline
        return True


def _arrow_written_as_csv() -> bool:
    """True when the running pipeline's destination receives Arrow tables as CSV (Postgres does,
    unless told otherwise): CSV cannot hold a list column."""
    try:
        capabilities = dlt.current.pipeline().destination.capabilities()
    except Exception:  # no pipeline or no destination: the source is iterated on its own
        return False
    formats = [f for f in capabilities.supported_loader_file_formats if f in ("parquet", "csv")]
    preferred = capabilities.preferred_loader_file_format
    chosen = preferred if preferred in formats else (formats[0] if formats else None)
    return chosen == "csv"


def _personalization_config(client: ProfilesClient) -> Iterator[Dict[str, Any]]:
    """One row per index of ``GET /2/config``: its affinity attributes, source and status."""
    profiles_state = dlt.current.source_state().get("resources", {}).get(PROFILES_RESOURCE, {})
    _check_application(profiles_state, client.application_id)  # before the request
    config = client.get_config()
    status = config.get("status") or {}
    realtime = ((config.get("features") or {}).get("realtime") or {}).get("enabled")
    for index in config.get("indices") or []:
        source = index.get("source") or {}
        yield {
            "index": index.get("index"),
            "affinities": index.get("affinities") or [],
            "source_type": source.get("type"),
            "source_events": source.get("events") or [],
            "errors": index.get("errors") or [],
            "warnings": index.get("warnings") or [],
            "last_updated_at": parse_datetime(index.get("lastUpdatedAt"), "lastUpdatedAt"),
            "personalization_re_ranking": config.get("personalizationReRanking"),
            "profile_type": config.get("profileType"),
            "status": status.get("type"),
            "status_errors": status.get("errors") or [],
            "realtime_enabled": realtime,
        }
