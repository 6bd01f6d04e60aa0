"""Adaptive concurrency: the controller's decisions, the window planner, and one walk end to end."""

from __future__ import annotations

import math
import re
import threading
from datetime import datetime, timedelta, timezone

import pytest

from algolia_profiles_source.extract.concurrency import CONGESTION, ConcurrencyController, InFlightGate
from algolia_profiles_source.extract.concurrent_walk import WalkStats, walk_concurrently
from algolia_profiles_source.extract.windows import WINDOWS_PER_CALL, Window, WindowPlanner
from algolia_profiles_source.http.rate_limit import RateGovernor
from tests.conftest import assert_warehouse_equals_emulator, run

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def governor_with(limit=20, window=2, latency=None, max_share=0.8, base=None):
    governor = RateGovernor(max_share=max_share, clock=lambda: 1000.0, sleep=lambda s: None)
    for reset in (1002, 1002 + window):  # two windows: the step between resets is the window
        governor.acquire()
        governor.observe({"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(limit - 1),
                          "x-ratelimit-reset": str(reset)})
    if base is not None:
        governor.record_latency(base, 1000)
    if latency is not None:
        governor.latency = latency
    return governor


def test_the_governor_measures_the_window_and_the_allowed_rate():
    governor = RateGovernor(max_share=0.8, clock=lambda: 1000.0, sleep=lambda s: None)
    assert governor.allowed_rate() is None  # nothing known before an answer
    governor.acquire()
    governor.observe({"x-ratelimit-limit": "500", "x-ratelimit-remaining": "499", "x-ratelimit-reset": "1030"})
    assert governor.window_seconds is None and governor.allowed_rate() == pytest.approx(400 / 30)  # opened 30 s to the reset
    assert ConcurrencyController(governor).measured()
    governor.acquire()
    governor.observe({"x-ratelimit-limit": "500", "x-ratelimit-remaining": "499", "x-ratelimit-reset": "1036"})
    assert governor.window_seconds == 6 and governor.allowed_rate() == pytest.approx(400 / 6)
    governor.acquire()
    governor.observe({"x-ratelimit-limit": "500", "x-ratelimit-remaining": "499", "x-ratelimit-reset": "1048"})
    assert governor.window_seconds == 6  # an idle export skipped a window: the smallest step stays


def test_the_window_estimate_is_the_longest_time_from_a_call_to_its_reset():
    now = [1000.0]
    governor = RateGovernor(max_share=1, clock=lambda: now[0], sleep=lambda s: None)
    governor.acquire()
    now[0] = 1000.4  # the answer came 0.4 s after the call was sent
    governor.observe({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "59", "x-ratelimit-reset": "1006"},
                     sent_at=1000.0)
    assert governor.window_estimate == pytest.approx(6) and governor.allowed_rate() == pytest.approx(10)
    governor.acquire()
    governor.observe({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "58", "x-ratelimit-reset": "1006"},
                     sent_at=1000.4)
    assert governor.window_estimate == pytest.approx(6)  # later calls of the window see less: the longest stays
    busy = RateGovernor(max_share=1, clock=lambda: 1000.0, sleep=lambda s: None)
    busy.acquire()  # the window had 20 calls of other clients: it opened earlier, its reset says nothing
    busy.observe({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "39", "x-ratelimit-reset": "1002"},
                 sent_at=1000.0)
    assert busy.window_estimate is None and busy.allowed_rate() == pytest.approx(1)  # the documented minute
    assert RateGovernor().allowed_rate() is None and not ConcurrencyController(RateGovernor()).measured()


@pytest.mark.parametrize("latency", [0.05, 0.3, 1.0, 2.0, 4.0])
def test_the_target_keeps_rate_times_latency_in_flight_within_two_more(latency):
    controller = ConcurrencyController(governor_with(limit=20, window=2, latency=latency))
    needed = 8 * latency  # 16 calls per 2 s allowed
    target = controller.target()
    assert needed <= target <= math.ceil(needed) + 2 or (needed < 1 and target == 1)


def test_one_call_in_flight_while_one_is_enough_and_none_known_before_an_answer():
    assert ConcurrencyController(RateGovernor()).target() == 1  # no limit, no latency yet
    controller = ConcurrencyController(governor_with(limit=20, window=2, latency=0.05))
    assert controller.target() == 1  # 0.4 calls' worth: one sequential walk uses the share


def test_fewer_calls_in_flight_when_latency_drops_and_a_fixed_concurrency_wins():
    governor = governor_with(limit=20, window=2, latency=2.0)
    controller = ConcurrencyController(governor)
    high = controller.target()
    governor.latency = 0.5
    assert controller.target() < high and controller.target() == math.ceil(1.05 * 4 + 0.3)
    assert ConcurrencyController(governor, fixed=4).target() == 4
    assert ConcurrencyController(governor_with(limit=10**6, window=1, latency=5.0)).target() == 32  # the ceiling


def test_a_slow_consumer_caps_the_calls_and_a_congested_server_is_not_fed_more():
    controller = ConcurrencyController(governor_with(limit=10**6, window=60, latency=1.0))
    controller.record_consumer(0.25)  # the consumer takes 4 pages a second: the quota does not bind
    assert controller.target() == math.ceil(1.05 * 4 + 0.3)
    controller.governor.record_latency(1.0, 1000, parse_seconds=0.25)  # parsing in the threads costs as much
    assert controller.target() == math.ceil(1.05 * 2 + 0.3)
    # calls take 3 s where the fastest large answer took 0.2 s: they queue; count CONGESTION × 0.2 s
    congested = ConcurrencyController(governor_with(limit=20, window=2, latency=3.0, base=0.2))
    assert congested.target() == math.ceil(1.05 * 8 * CONGESTION * 0.2 + 0.3) < ConcurrencyController(
        governor_with(limit=20, window=2, latency=3.0)).target()


def test_the_gate_admits_up_to_the_current_limit():
    limit = [2]
    gate = InFlightGate(lambda: limit[0])
    assert gate.enter() and gate.enter()
    entered = threading.Event()
    third = threading.Thread(target=lambda: (gate.enter(), entered.set()))
    third.start()
    assert not entered.wait(0.3)  # the third waits
    limit[0] = 3  # a higher target lets it in without anyone leaving
    assert entered.wait(5)
    third.join()
    assert gate.peak == 3
    stopped = InFlightGate(lambda: 1, stopped=lambda: True)
    assert stopped.enter() and not stopped.enter()  # a stopped walk lets nobody wait


def sample_stamps(batch=0):
    """1,000 sampled timestamps: one a minute, plus ``batch`` sharing one instant."""
    stamps = [T0 + timedelta(minutes=i) for i in range(1000)] + [T0 + timedelta(minutes=500, seconds=30)] * batch
    return [s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in stamps]


def walk_plan(planner, target):
    windows = []
    while (taken := planner.next_window(target)) is not None:
        windows.append(taken)
    return windows


def test_planned_windows_cover_the_run_without_gaps_and_shrink_towards_the_end():
    run_window = Window.exact({"startDate": "2026-10-01T00:00:00Z"})
    planner = WindowPlanner(run_window, sample_stamps(), page_size=1000)
    windows = walk_plan(planner, target=4)
    ordered = sorted((w for w, _ in windows), key=lambda w: w.start)
    assert ordered[0].start == run_window.start and ordered[0].exact_start and ordered[-1].end is None
    assert all(a.end == b.start for a, b in zip(ordered, ordered[1:]))  # no gap, no overlap
    sizes = [samples for _, samples in windows]
    assert sum(sizes) == 1000 and sizes[0] == 1000 // (4 * WINDOWS_PER_CALL)
    assert sizes[0] > sizes[len(sizes) // 2] > sizes[-2]


def test_once_windows_are_measured_none_is_planned_below_the_minimum_pages():
    planner = WindowPlanner(Window.exact({}), sample_stamps(), page_size=100, min_pages=6)
    planner.finished(samples=100, profiles=10_000)  # a sample stands for 100 profiles, one page
    sizes = [samples for _, samples in walk_plan(planner, target=20)]
    assert min(sizes[:-1]) >= 6


def test_a_batch_sharing_one_timestamp_is_walked_first_and_whole():
    planner = WindowPlanner(Window.exact({}), sample_stamps(batch=400), page_size=1000)
    (first, samples), *rest = walk_plan(planner, target=8)
    assert samples == 400
    batch = T0 + timedelta(minutes=500, seconds=30)
    assert (first.start, first.end) == (batch - timedelta(seconds=15), batch + timedelta(seconds=15))
    assert not any(w.start <= batch < w.end for w, _ in rest if w.start and w.end)


def test_a_batch_takes_the_few_samples_beside_it_instead_of_leaving_them_a_window_of_their_own():
    # ten samples, then a batch of 200 sharing one instant, then 990 more: the batch is walked
    # first, and the ten before it go with it rather than costing a request of their own later
    stamps = [T0 + timedelta(minutes=i) for i in range(1000)] + [T0 + timedelta(minutes=9, seconds=30)] * 200
    run_window = Window.exact({"startDate": "2026-10-01T00:00:00Z"})
    planner = WindowPlanner(run_window, [s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in stamps], page_size=1000)
    (first, samples), *rest = walk_plan(planner, target=4)
    assert samples == 210 and first.start == run_window.start and first.exact_start
    assert all(w.start > T0 + timedelta(minutes=9) for w, _ in rest)


class ListClient:
    """Pages of in-memory profiles in userID order, filtered like ``GET /2/users`` (inclusive
    bounds). The first request of each of the first two windows waits for the other at ``meet``."""

    def __init__(self, profiles, meet):
        self.profiles = sorted(profiles, key=lambda p: p["userID"])
        self.meet = meet

    def iter_user_pages(self, params):
        start, end = (params.get(k) and datetime.fromisoformat(params[k]) for k in ("startDate", "endDate"))
        if start or end:
            with self.meet["lock"]:
                waiting = self.meet["windows"] < 2
                self.meet["windows"] += 1
            if waiting:
                self.meet["barrier"].wait()
        chosen = [p for p in self.profiles if (start is None or datetime.fromisoformat(p["lastUpdatedAt"]) >= start)
                  and (end is None or datetime.fromisoformat(p["lastUpdatedAt"]) <= end)]
        for offset in range(0, len(chosen) + 1, params["limit"]):
            yield chosen[offset:offset + params["limit"]]
            if len(chosen) - offset < params["limit"]:
                return


class StubController:
    """Wants two calls in flight, on a measured quota."""

    governor = RateGovernor()

    def target(self):
        return 2

    def measured(self):
        return True

    def record_consumer(self, seconds):
        pass


def test_after_a_split_the_windows_get_every_call_in_flight_the_target_allows():
    # the first thread's page generator used to keep its place in the gate after the split: one
    # call in flight fewer than the target, and none at all once the target dropped to one
    profiles = [{"userID": f"u{i:04d}", "lastUpdatedAt": (T0 + timedelta(minutes=(i * 37) % 200)).isoformat()}
                for i in range(200)]
    meet = {"lock": threading.Lock(), "windows": 0, "barrier": threading.Barrier(2, timeout=10)}
    stats = WalkStats()
    pages = walk_concurrently(lambda: ListClient(profiles, meet), {"limit": 10}, Window.exact({}), StubController(),
                              10, stats=stats)
    walked = [p["userID"] for page in pages for p in page]  # raises BrokenBarrierError if they never met
    assert stats.windows > 2 and sorted(walked) == sorted(p["userID"] for p in profiles)


WALKED = re.compile(r"walked (\d+) window\(s\), at most (\d+) calls in flight \(([\d.]+) s per call\)")


def test_an_adaptive_walk_keeps_more_calls_in_flight_than_four_windows_where_four_fall_short(
    emulator_factory, pipeline_factory, caplog
):
    # 20 calls a second allowed; a page takes 0.3 s: four calls in flight would make 13 calls a second
    emu = emulator_factory(n_users=2000, latency=0.3, rate_limit=20, rate_window=1.0)
    caplog.set_level("INFO", logger="algolia_profiles_source.extract.concurrent_walk")
    result = run(pipeline_factory(), emu, page_size=25, concurrency=None, max_share=1.0)
    assert_warehouse_equals_emulator(result.pipeline, emu)
    windows, peak, per_call = next(
        (int(m[1]), int(m[2]), float(m[3])) for m in map(WALKED.search, caplog.messages) if m
    )
    assert peak > 4 and peak <= math.ceil(20 * per_call) + 2
    requests = [r for r in emu.requests if r.path == "/2/users"]
    assert sum(r.status == 429 for r in requests) <= 0.01 * len(requests)
    # 80 pages for one sequential walk; the first pages read again, and one partial page a window
    assert len(requests) <= 80 + 4 + windows
