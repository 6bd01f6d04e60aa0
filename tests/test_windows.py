"""Windows of ``lastUpdatedAt`` walked concurrently: exact bounds and half-open ranges."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson


def test_windows_keep_the_run_bounds_exact_and_overlap_their_cuts():
    from datetime import timedelta

    from algolia_profiles_source.extract.windows import Window

    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    window = Window.exact({"startDate": "2026-11-01T00:00:00Z", "endDate": "2026-11-02T00:00:00Z"})
    assert window.params({"limit": 5}) == {
        "limit": 5, "startDate": "2026-11-01T00:00:00Z", "endDate": "2026-11-02T00:00:00Z"}
    cut = t0 + timedelta(hours=6)
    first, second = window.split([cut, t0 - timedelta(hours=1), cut])
    assert first.params({}) == {"startDate": "2026-11-01T00:00:00Z", "endDate": "2026-11-01T06:00:01Z"}
    assert second.params({}) == {"startDate": "2026-11-01T05:59:59Z", "endDate": "2026-11-02T00:00:00Z"}
    assert window.split([t0 - timedelta(days=1)]) == [window]  # a cut outside changes nothing
    open_ended = Window.exact({})
    assert [w.params({}) for w in open_ended.split([cut])] == [
        {"endDate": "2026-11-01T06:00:01Z"}, {"startDate": "2026-11-01T05:59:59Z"}]


def test_a_window_keeps_only_its_own_half_open_range_of_what_the_widened_request_returns():
    from datetime import timedelta

    from algolia_profiles_source.http.page import parse_users_body
    from algolia_profiles_source.extract.windows import Window

    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    cut = t0 + timedelta(hours=6)
    run_window = Window.exact({"startDate": "2026-11-01T00:00:00Z"})
    below, above = run_window.split([cut])
    stamps = ["2026-11-01T05:59:59.500000Z", "2026-11-01T06:00:00Z", "2026-11-01T06:00:00.500000Z",
              "2026-10-31T23:59:59Z", "not a date", "2026-11-02T00:00:00Z"]
    profiles = [{"userID": f"u{i}", "lastUpdatedAt": s, "affinities": []} for i, s in enumerate(stamps)]
    for page in (profiles, parse_users_body(orjson.dumps({"users": profiles}))["users"]):
        ids = lambda p: [x["userID"] for x in (p if isinstance(p, list) else p.to_pylist())]  # noqa: E731
        # a cut is half-open: a profile exactly on it belongs above; the run's own start is exact
        assert ids(below.inside(page)) == ["u0", "u3", "u4"]
        assert ids(above.inside(page)) == ["u1", "u2", "u4", "u5"]
        assert ids(run_window.inside(page)) == ids(page)  # exact bounds are not re-checked
