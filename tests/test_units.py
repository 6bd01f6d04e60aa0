"""Unit tests of pure pieces: parameters, Arrow transform, rate governor, backoff."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import orjson
import pytest

from algolia_profiles_source.query import build_query, format_rfc3339
from algolia_profiles_source.rate_limit import RateGovernor
from algolia_profiles_source.session import AlgoliaSession
from algolia_profiles_source.transform import page_to_tables


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


def test_page_to_tables_flattens_types_and_tombstones_empty_profiles():
    users = [
        {"userID": "a+b/c=", "type": "basic", "lastUpdatedAt": "2026-11-01T10:00:00.123456789Z",
         "affinities": [
             {"name": "categories.lvl1", "value": "Outdoor > Camping, \"Tents\"", "indices": ["i1", "i2"],
              "score": 12.5, "lastUpdatedAt": "2026-11-01T12:00:00+02:00"},
             {"name": "brand", "value": "户外", "indices": ["i1"], "score": 3, "lastUpdatedAt": "2026-11-01T09:00:00Z"},
         ]},
        {"userID": "zero", "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []},
    ]
    tables = page_to_tables(users, load_id="123.4")
    users_table, affinities = tables.users, tables.affinities
    assert tables.rejected == []
    assert users_table.column("user_id").to_pylist() == ["a+b/c=", "zero"]
    assert users_table.column("type").to_pylist() == ["basic", None]
    assert users_table.column("affinity_count").to_pylist() == [2, 0]
    stamp = users_table.column("last_updated_at").to_pylist()[0]
    assert stamp == datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert affinities.schema.field("score").type == pa.float64()
    assert affinities.column("score").to_pylist() == [12.5, 3.0, None]
    assert affinities.column("indices").to_pylist() == [["i1", "i2"], ["i1"], None]
    assert affinities.column("last_updated_at").to_pylist()[0] == datetime(2026, 11, 1, 10, tzinfo=timezone.utc)
    assert affinities.column("_deleted").to_pylist() == [None, None, True]
    assert set(affinities.column("_dlt_load_id").to_pylist()) == {"123.4"}


GOOD = {"userID": "ok", "lastUpdatedAt": "2026-11-01T10:00:00Z",
        "affinities": [{"name": "n", "value": "v", "score": 5, "indices": ["i"], "lastUpdatedAt": "2026-11-01T10:00:00Z"}]}


@pytest.mark.parametrize("bad, reason, loaded_affinities", [
    ({"lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []}, "userID missing", 1),
    ({"userID": "x" * 130, "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []}, "userID missing", 1),
    ({"userID": "bad id!", "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []}, "userID missing", 1),
    ({"userID": "x", "lastUpdatedAt": "not a date", "affinities": []}, "lastUpdatedAt", 1),
    ({"userID": "x", "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": [{"value": "v", "score": 3}]}, "affinity without name", 2),
    ({"userID": "x", "lastUpdatedAt": "2026-11-01T10:00:00Z",
      "affinities": [{"name": "n", "value": "v", "score": "high", "indices": []}]}, "not shaped like", 1),
    ({"userID": "x", "lastUpdatedAt": "2026-11-01T10:00:00Z",
      "affinities": [{"name": "n", "value": "v", "score": 25, "indices": []}]}, "score that is not a number from 1 to 20", 2),
    ("not an object", "not shaped like", 1),
])
def test_malformed_records_are_quarantined_not_loaded(bad, reason, loaded_affinities):
    tables = page_to_tables([GOOD, bad])
    assert len(tables.rejected) == 1 and reason in tables.rejected[0]["reason"]
    assert tables.rejected[0]["record"]  # the offending record, as JSON text, for inspection
    assert "ok" in tables.users.column("user_id").to_pylist()
    # the good profile always loads; a profile that only lost an affinity keeps a tombstone row
    assert tables.affinities.num_rows == loaded_affinities


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_governor_keeps_the_reserve_free_and_waits_for_the_reset():
    clock = FakeClock()
    governor = RateGovernor(max_share=0.8, clock=clock.time, sleep=clock.sleep)
    governor.acquire()  # nothing known yet: no wait
    governor.observe({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "9", "x-ratelimit-reset": "1006"})
    calls = 0
    while not clock.slept:
        governor.acquire()
        governor.observe({})
        calls += 1
    # 9 remaining, 2 reserved for the live site: 7 calls, then a wait until the reset
    assert calls == 8 and clock.slept[0] >= 6.0
    assert clock.now >= 1006


def test_governor_counts_calls_in_flight_and_ignores_late_answers():
    clock = FakeClock()
    governor = RateGovernor(max_share=1.0, clock=clock.time, sleep=clock.sleep)
    for _ in range(4):
        governor.acquire()  # four calls leave before any answer
    # the first answer was counted before the three others arrived: 10 - 1 = 9 left, 3 in flight
    governor.observe({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "9", "x-ratelimit-reset": "1006"})
    assert governor.remaining == 6 and governor.in_flight == 3
    clock.now = 1007  # the window rolled
    governor.acquire()
    assert governor.remaining == 9  # assumed the full limit, minus this call
    governor.observe({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "2", "x-ratelimit-reset": "1006"})
    assert governor.remaining == 9  # a late answer from the old window changes nothing


def test_governor_reads_a_throttled_response_as_wait_until_reset():
    clock = FakeClock()
    governor = RateGovernor(clock=clock.time, sleep=clock.sleep)
    wait = governor.observe(
        {"x-ratelimit-limit": "500", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"}, throttled=True
    )
    assert 30 <= wait <= 30.2 and governor.throttled == 1
    assert governor.observe({}, throttled=True) is not None  # keeps the known reset


def test_backoff_grows_has_jitter_and_a_floor():
    session = AlgoliaSession(backoff_base=1.0)
    for attempt in range(1, 12):
        wait = session._backoff(attempt)
        ceiling = min(60.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert len({session._backoff(3) for _ in range(20)}) > 1


def test_windows_keep_the_run_bounds_exact_and_overlap_their_cuts():
    from datetime import timedelta

    from algolia_profiles_source.windows import Window

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

    from algolia_profiles_source.page import parse_users_body
    from algolia_profiles_source.windows import Window

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


def test_progress_redraws_on_a_terminal_and_stays_quiet_in_logs():
    import io

    from algolia_profiles_source.progress import Reporter, report_page, reporting

    log = io.StringIO()
    with reporting(Reporter(log, interactive=False)) as progress:
        progress.stage("walking")
        for _ in range(50):
            report_page(1000)
        progress.stage("done")
    assert log.getvalue() == "walking\ndone\n" and progress.profiles == 50_000
    tty = io.StringIO()
    governor = RateGovernor()
    governor.observe({"x-ratelimit-limit": "500", "x-ratelimit-remaining": "420", "x-ratelimit-reset": "9999999999"})
    with reporting(Reporter(tty, interactive=True)):
        report_page(1000, governor)
    assert "1 pages · 1,000 profiles" in tty.getvalue() and "quota 420/500 left" in tty.getvalue()
    report_page(5)  # no reporter installed: silent
