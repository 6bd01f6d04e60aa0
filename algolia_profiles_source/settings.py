"""Endpoints, limits and defaults of the Advanced Personalization API v2 (see the API reference)."""

from __future__ import annotations

REGIONS = ("us", "eu")
# the dlt source's name: its config section (sources.algolia_profiles) and its state's key
SOURCE_NAME = "algolia_profiles"

DEFAULT_REGION = "us"
HOST_TEMPLATE = "https://ai-personalization.{region}.algolia.com"

USERS_PATH = "/2/users"
CONFIG_PATH = "/2/config"

MIN_PAGE_SIZE = 1
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 1000

# Profiles are recomputed in batches and can surface with a timestamp a little older than the newest
# one already loaded: every incremental run re-reads this much before the stored cursor.
DEFAULT_OVERLAP_SECONDS = 3600

# userID rule from the API reference.
USER_ID_PATTERN = r"^[A-Za-z0-9=+/_-]{1,129}$"

ACLS = ("search", "browse", "recommendation")

# HTTP behaviour
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_BASE = 1.0
MAX_BACKOFF = 60.0
# Throttled responses wait for the window to reset; they have their own, larger budget.
MAX_THROTTLED_WAITS = 60
# Share of the application's rate limit this exporter may use; the rest stays free for the live site.
DEFAULT_MAX_SHARE = 0.8
RETRY_STATUSES = frozenset({421, 429, 500, 502, 503, 504})
THROTTLE_STATUSES = frozenset({421, 429})

# Pagination guards
MAX_CONSECUTIVE_EMPTY_PAGES = 10
