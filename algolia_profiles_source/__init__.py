"""dlt source for Algolia Advanced Personalization user profiles.

``algolia_profiles()`` has two resources. ``profiles`` walks ``GET /2/users`` page by page (cursor
``nextPageToken``) and writes ``users``, ``user_affinities`` and ``rejected_records``
(:mod:`.tables`); ``personalization_config`` writes the ``GET /2/config`` snapshot, replaced on each run.

The path of a page: :mod:`.http` reads and parses it, :mod:`.extract` plans the run and turns pages
into Arrow tables, :mod:`.load` runs them through a dlt pipeline, :mod:`.segments` builds models and
audiences inside the warehouse and exports them.

Incremental loading uses the profile's ``lastUpdatedAt``, sent as ``startDate``. The cursor is kept
in the resource state by hand rather than with ``dlt.sources.incremental``, because the latter
filters every item a resource yields: affinity rows whose own timestamp is older than the cursor
would be dropped. The cursor is stored at the end of a complete walk, and dlt commits it with the
load package: a failed or interrupted run re-reads, it never skips (:mod:`.extract.plan`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from . import settings
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
from .extract.history import STATE_KEY as HISTORY_STATE_KEY, HistoryItems, boundary as history_boundary
from .extract.plan import check_application, plan_run
from .extract.walk import ProfilesWalk
from .http.client import ProfilesClient
from .http.query import ProfilesQuery, build_query
from .http.rate_limit import RateGovernor
from .load.erasure import erased_users_for_run
from .load.history import prune as prune_history, retention
from .tables import AFFINITIES, CONFIG, CONFIG_COLUMNS, PROFILES_RESOURCE, REJECTED, USERS
from .times import format_rfc3339, parse_datetime, seconds

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


@dlt.source(name=settings.SOURCE_NAME, max_table_nesting=0)
def algolia_profiles(
    application_id: str = dlt.secrets.value,
    api_key: str = dlt.secrets.value,
    region: str = settings.DEFAULT_REGION,
    base_url: str | None = None,
    indices: list[str] | None = None,
    affinity: list[str] | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    page_size: int = settings.DEFAULT_PAGE_SIZE,
    overlap_seconds: float = settings.DEFAULT_OVERLAP_SECONDS,
    max_pages: int | None = None,
    max_share: float = settings.DEFAULT_MAX_SHARE,
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
    backoff_base: float = settings.DEFAULT_BACKOFF_BASE,
    timeout: float = settings.DEFAULT_TIMEOUT,
    reconcile: bool = False,
    concurrency: int | None = None,
    history: bool = False,
    history_retention_days: float | None = None,
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
        concurrency: Calls kept in flight, each walking its own window of ``lastUpdatedAt``. By
            default (None) as many as use ``max_share`` of the quota at the measured page latency
            (one while one is enough); a number fixes it (1 = one sequential cursor walk). All
            calls share the rate governor; see :mod:`.extract.concurrency`.
        reconcile: Walk every profile (ignoring the cursor) so that profiles gone from Algolia can
            be marked deleted afterwards (:func:`algolia_profiles_source.load.reconcile.mark_deleted`,
            which ``load_profiles(..., reconcile=True)`` runs). Not allowed with filters or dates.
        history: Also keep every version of every user's affinities in ``user_affinities_history``
            (dlt's scd2 merge; see :mod:`.extract.history`). The snapshot tables are unchanged.
        history_retention_days: With ``history``, delete versions that ended more than this many
            days before the previous load's boundary (default: keep all).

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
    if concurrency is not None and (int(concurrency) < 1 or int(concurrency) > 64):
        raise ConfigurationError(
            f"concurrency must be from 1 to 64 (or unset, to adapt to the quota), got {concurrency!r}"
        )
    if int(max_attempts) < 1:
        raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts!r}")
    keep_history = retention(history_retention_days) if history else None

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
        _profiles(client, query, overlap, max_pages, reconcile, None if concurrency is None else int(concurrency),
                  history=bool(history), keep_history=keep_history),
        name=PROFILES_RESOURCE,
        write_disposition="merge",
    )
    config = dlt.resource(
        _personalization_config(client),
        name=CONFIG,
        write_disposition="replace",
        primary_key="index",
        columns=CONFIG_COLUMNS,
    )
    return config, profiles


def _profiles(
    client: ProfilesClient,
    query: ProfilesQuery,
    overlap: timedelta,
    max_pages: int | None,
    reconcile: bool = False,
    concurrency: int | None = 1,
    history: bool = False,
    keep_history: timedelta | None = None,
) -> Iterator[Any]:
    """Plans the run, walks its pages as ``users`` and ``user_affinities`` tables, saves the cursor."""
    state = dlt.current.resource_state()
    check_application(state, client.application_id)
    # read once per run: no row of a user on the suppression list is written again
    erased = erased_users_for_run()
    plan = plan_run(state, query, reconcile=reconcile, overlap=overlap, tables_exist=_has_table(USERS))
    for warning in plan.warnings:
        logger.warning(warning)
    started = datetime.now(timezone.utc)
    logger.info("reading %s%s with %s", client.base_url, settings.USERS_PATH, plan.params)
    walk = ProfilesWalk(
        client, plan, page_size=query.page_size, concurrency=concurrency, max_pages=max_pages,
        overlap=overlap, started=started,
        # Arrow items skip dlt's normalizer, which would add _dlt_load_id to dict rows: the walk
        # adds it, so every row can be joined to _dlt_loads like rows of any other dlt table
        load_id=dlt.current.load_package_state()["load_id"],
        indices=_indices_encoding(),
        materialize_rejected=not _has_table(REJECTED),
    )
    items = erased.leave_out(walk.items())
    if history:
        previous = state.get(HISTORY_STATE_KEY)
        if keep_history is not None and previous:
            prune_history(parse_datetime(previous, HISTORY_STATE_KEY) - keep_history)
        versions = HistoryItems(lambda: history_boundary(previous, walk.newest))
        items = versions.items(items)
    yield from items
    if walk.profiles == 0 and query.indices:
        _hint_unknown_indices(client, query.indices)
    # reached only after the last page: an interrupted walk leaves the cursor where it was
    state["application_id"] = client.application_id
    plan.save(state, walk.newest)
    if history:
        versions.save(state)
    state["last_run"] = {
        "started_at": format_rfc3339(started),
        "finished_at": format_rfc3339(datetime.now(timezone.utc)),
        "params": dict(plan.params),
        "profiles": walk.profiles,
        "rejected": walk.rejected,
        "erased_left_out": erased.left_out,
        "backfill": plan.mode == "backfill",
        "reconcile": plan.mode == "reconcile",
        "initial": plan.initial,
        "load_id": walk.load_id,
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


def _has_table(name: str) -> bool:
    try:
        return name in dlt.current.source_schema().tables
    except Exception:  # iterated outside a pipeline
        return True


def _destination() -> Any:
    """The running pipeline's destination (None when the source is iterated on its own)."""
    try:
        return dlt.current.pipeline().destination
    except Exception:  # noqa: BLE001 - no pipeline is active
        return None


def _indices_encoding() -> str:
    """How ``user_affinities.indices`` reaches the running pipeline's destination (see
    :data:`.tables.INDICES_ENCODINGS`): ``list`` where Arrow tables are written as parquet and dlt
    loads a json column from it, ``json`` (JSON text into the json column) where they are written as
    CSV, which cannot hold a list (Postgres), ``text`` (a text column holding a JSON array) where dlt
    cannot load a json column from parquet (BigQuery)."""
    destination = _destination()
    if destination is None:  # the source is iterated on its own
        return "list"
    capabilities = destination.capabilities()
    formats = [f for f in capabilities.supported_loader_file_formats if f in ("parquet", "csv")]
    preferred = capabilities.preferred_loader_file_format
    chosen = preferred if preferred in formats else (formats[0] if formats else None)
    if chosen == "csv":
        return "json"
    from dlt.common.exceptions import TerminalValueError

    column = {"name": "indices", "data_type": "json", "nullable": True}
    try:
        capabilities.get_type_mapper().ensure_supported_type(
            column, {"name": AFFINITIES, "columns": {"indices": column}}, "parquet"
        )
    except TerminalValueError:  # dlt's refusal: a json column cannot come from parquet here
        return "text"
    except Exception:  # noqa: BLE001 - a destination without a usable type check keeps the list
        return "list"
    return "list"


def _personalization_config(client: ProfilesClient) -> Iterator[dict[str, Any]]:
    """One row per index of ``GET /2/config``: its affinity attributes, source and status."""
    check_application(dlt.current.resource_state(PROFILES_RESOURCE), client.application_id)  # before the request
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
