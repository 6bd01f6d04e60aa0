"""The rate governor: the reserve left to the live site, calls in flight, throttled answers."""

from __future__ import annotations

from algolia_profiles_source.http.rate_limit import RateGovernor


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
