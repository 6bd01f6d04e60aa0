"""A local emulator of Algolia's Advanced Personalization API v2, with synthetic profiles.

It serves the endpoints an exporter uses, over real HTTP on loopback, with the wire behaviour of
Algolia's API described below (docs/emulator.md shows the CLI)::

    from algolia_profiles_source.emulator import Emulator

    with Emulator(n_users=1000, seed=42) as emu:   # app_id "demo-app", api_key "demo-key"
        emu.base_url                                 # "http://127.0.0.1:PORT"
        emu.store.users()                            # every live profile, sorted by userID

API (``/2/*``; headers ``x-algolia-application-id`` / ``x-algolia-api-key``, or query parameters of
the same names, required, else 401):

- ``GET /2/users`` with ``startDate`` (exclusive), ``endDate`` (exclusive), ``indices`` and
  ``affinity`` (comma-joined, every item must match; ``name`` or ``name:value`` split at the first
  colon), ``limit`` (1..1000, default ``default_limit``), ``nextPageToken`` / ``previousPageToken``.
  Users come in userID order; tokens are opaque, stateless and keyed by userID (they only carry
  the cursor, so filters must be sent on every page). Empty parameters count as absent, unknown
  ones are ignored; bad values get 422 naming the parameter. On the last page ``nextPageToken``
  is missing, ``null`` or ``""`` according to ``last_page_token``.
- ``GET /2/users/{userID}`` (percent-decoded; 400 ``Invalid userID format``, 404 ``Not Found``),
  ``DELETE /2/users/{userID}``, ``GET /2/config``. Anything else: 404 JSON; a wrong method on a
  known path: 405 JSON.
- Every API response carries ``x-ratelimit-limit`` / ``-remaining`` / ``-reset`` (reset = Unix
  seconds, rounded up), except those of the ``503_html`` and ``reset`` faults. Fixed windows of
  ``rate_window`` seconds; each authorized call outside ``/_emulator/`` consumes one, unless a
  fault answers it instead; once exhausted, 429 ``{"status":429,"message":"Too Many Requests"}``
  until the reset. ``latency`` seconds are added to every API response.
- Faults (`FAULT_KINDS`) hit authorized ``/2/*`` calls, drawn at random with ``fault_rate`` or
  queued with `Emulator.inject`: ``"500"`` JSON 500; ``"503_html"`` an nginx-style HTML 503
  *without* rate-limit headers (a load balancer knows nothing of them); ``"429"`` JSON 429 with
  remaining 0; ``"reset"`` the request is read, then the connection is aborted with a TCP RST;
  ``"truncated"`` the request is processed (so a truncated DELETE did delete) and the response is
  cut in half after a full Content-Length. Faults other than ``truncated`` answer instead of the
  call and consume no quota; a ``truncated`` call is served normally (it consumes quota, and may
  be the rate limit's 429, cut in half). Faulted calls are recorded with ``fault`` set (a reset
  is recorded with status 0).

Admin endpoints (same credentials; no rate limit, no faults, not recorded), to drive a standalone
emulator from another process:

- ``GET /_emulator/users`` — every live profile (a JSON list, sorted by userID);
- ``PUT /_emulator/users`` — body: a JSON list of profiles to upsert (API shape);
- ``DELETE /_emulator/users/{userID}`` — remove one profile (404 when unknown);
- ``POST /_emulator/faults`` — body ``{"rate": .., "kinds": [..], "seed": ..}`` (each optional);
- ``POST /_emulator/inject`` — body ``{"kinds": [..]}``: queue faults for the next API calls;
- ``GET /_emulator/requests`` / ``DELETE /_emulator/requests`` — recorded API calls / forget them.

The synthetic data (`SyntheticData`) is deterministic for a seed and generated lazily: only
sorted IDs and timestamps are kept, profiles are rendered per page, so a million users start in
seconds. The API key is never logged, echoed or recorded.
"""

from .api_routes import LAST_PAGE_TOKEN_MODES
from .data import ATTRIBUTES, INDICES, SyntheticData
from .faults import FAULT_KINDS
from .request_log import RequestRecord
from .server import Emulator
from .store import ProfileStore, parse_rfc3339, valid_user_id

__all__ = [
    "ATTRIBUTES",
    "Emulator",
    "FAULT_KINDS",
    "INDICES",
    "LAST_PAGE_TOKEN_MODES",
    "ProfileStore",
    "RequestRecord",
    "SyntheticData",
    "parse_rfc3339",
    "valid_user_id",
]
