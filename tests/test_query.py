"""Settings validated into the ``GET /2/users`` query: parameters, base URLs, dates."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from algolia_profiles_source.http.query import build_query
from algolia_profiles_source.times import format_rfc3339


def test_params_join_lists_with_commas_and_format_dates_in_utc():
    query = build_query(
        region="EU", base_url=None, indices=["a", "b"], affinity="brand,category:Camping",
        start_date=datetime(2026, 1, 1, 1, 0, tzinfo=timezone.utc), end_date="2026-02-01T02:00:00+02:00",
        page_size="250",
    )
    assert query.base_url == "https://ai-personalization.eu.algolia.com"
    assert query.params() == {
        "limit": 250, "startDate": "2026-01-01T01:00:00Z", "endDate": "2026-02-01T00:00:00Z",
        "indices": "a,b", "affinity": "brand,category:Camping",
    }
    later = datetime(2026, 1, 5, tzinfo=timezone.utc)
    assert query.params(start_after=later)["startDate"] == "2026-01-05T00:00:00Z"
    earlier = datetime(2025, 1, 5, tzinfo=timezone.utc)
    assert query.params(start_after=earlier)["startDate"] == "2026-01-01T01:00:00Z"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8787", "http://localhost:1", "http://[::1]:9", "https://proxy.corp"])
def test_loopback_http_and_any_https_are_accepted(url):
    assert build_query(region=None, base_url=url).base_url == url


def test_microseconds_survive_formatting():
    value = datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert format_rfc3339(value) == "2026-11-01T10:00:00.123456Z"
