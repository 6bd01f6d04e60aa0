"""Validation of the source's settings and their translation into ``GET /2/users`` parameters.

Everything here runs before the first request, so a wrong setting fails with a message that names
it, and nothing is fetched or written.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from collections.abc import Iterable
from urllib.parse import urlparse

from .. import settings
from ..exceptions import ConfigurationError
from ..times import format_rfc3339, parse_datetime


@dataclass(frozen=True)
class ProfilesQuery:
    """A validated description of which profiles to read."""

    base_url: str
    region: str | None
    indices: tuple[str, ...] = ()
    affinity: tuple[str, ...] = ()
    start_date: datetime | None = None
    end_date: datetime | None = None
    page_size: int = settings.DEFAULT_PAGE_SIZE

    def params(self, start_after: datetime | None = None) -> dict[str, Any]:
        """Wire parameters: lists comma-joined, dates in RFC 3339 UTC.

        ``start_after`` (the incremental cursor minus the overlap) replaces ``start_date`` when
        it is later.
        """
        start = self.start_date
        if start_after is not None and (start is None or start_after > start):
            start = start_after
        params: dict[str, Any] = {"limit": self.page_size}
        if start is not None:
            params["startDate"] = format_rfc3339(start)
        if self.end_date is not None:
            params["endDate"] = format_rfc3339(self.end_date)
        if self.indices:
            params["indices"] = ",".join(self.indices)
        if self.affinity:
            params["affinity"] = ",".join(self.affinity)
        return params

    @property
    def filters(self) -> dict[str, Any]:
        """The filters that decide which users exist in the tables (for detecting a change)."""
        return {"indices": list(self.indices), "affinity": list(self.affinity)}


def build_query(
    *,
    region: str | None,
    base_url: str | None,
    indices: Any = None,
    affinity: Any = None,
    start_date: Any = None,
    end_date: Any = None,
    page_size: Any = settings.DEFAULT_PAGE_SIZE,
) -> ProfilesQuery:
    """Validates the settings; raises :class:`ConfigurationError` naming the bad one."""
    region_value = (region or settings.DEFAULT_REGION).strip().lower()
    if base_url:
        url = check_base_url(base_url)
        region_value = region_value if region else None
    else:
        if region_value not in settings.REGIONS:
            raise ConfigurationError(
                f"region {region!r} is not an Algolia analytics region: use one of"
                f" {', '.join(settings.REGIONS)} (sources.algolia_profiles.region), or set base_url"
            )
        url = settings.HOST_TEMPLATE.format(region=region_value)

    start = parse_datetime(start_date, "start_date")
    end = parse_datetime(end_date, "end_date")
    if start is not None and end is not None and end <= start:
        raise ConfigurationError(
            f"end_date {format_rfc3339(end)} is not after start_date {format_rfc3339(start)}:"
            " swap them or widen the window"
        )
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        try:
            page_size = int(str(page_size))
        except ValueError:
            raise ConfigurationError(f"page_size must be a whole number, got {page_size!r}") from None
    if not settings.MIN_PAGE_SIZE <= page_size <= settings.MAX_PAGE_SIZE:
        raise ConfigurationError(
            f"page_size {page_size} is out of range: the API accepts {settings.MIN_PAGE_SIZE} to"
            f" {settings.MAX_PAGE_SIZE} profiles per page"
        )
    return ProfilesQuery(
        base_url=url,
        region=region_value,
        indices=_names(indices, "indices"),
        affinity=_names(affinity, "affinity"),
        start_date=start,
        end_date=end,
        page_size=page_size,
    )


def check_base_url(base_url: str) -> str:
    """Accepts https:// anywhere and http:// only on loopback (the emulator, a local proxy)."""
    parsed = urlparse(base_url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError(
            f"base_url {base_url!r} is not an http(s) URL, e.g."
            f" {settings.HOST_TEMPLATE.format(region='us')}"
        )
    if parsed.scheme == "http" and not _is_loopback(parsed.hostname):
        raise ConfigurationError(
            f"base_url {base_url!r} uses plain http:// to {parsed.hostname}, which is not loopback:"
            " the API key would cross the network unencrypted. Use https://"
        )
    return base_url.strip().rstrip("/")


def _names(value: Any, name: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    result = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{name} must be a list of non-empty strings, got {value!r}")
        if "," in item:
            if name == "indices":  # index names have no commas: several were joined into one item
                raise ConfigurationError(
                    f"indices item {item!r} contains a comma: give one index per item (repeat"
                    " --indices, or a list in sources.algolia_profiles.indices)"
                )
            raise ConfigurationError(
                f"{name} item {item!r} contains a comma: the API joins list items with commas, so"
                " such a value cannot be sent as a filter; filter on the attribute name alone and"
                " select the value in SQL"
            )
        result.append(item.strip())
    return tuple(result)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
