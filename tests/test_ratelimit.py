"""The token bucket's arithmetic, on a fake clock so it is exact."""

from __future__ import annotations

import pytest

from worker.delivery.ratelimit import RateLimits, TokenBucket
from worker.ops.settings import parse_rate_limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_first_send_goes_at_once_and_the_next_waits_one_interval() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock, sleep=clock.sleep)
    assert bucket.acquire() == 0
    assert bucket.acquire() == pytest.approx(0.25)


def test_n_sends_take_at_least_n_minus_one_intervals() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(51):
        bucket.acquire()
    assert clock.now - start == pytest.approx(5.0)


def test_idle_time_does_not_build_up_a_burst_beyond_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, clock=clock, sleep=clock.sleep)
    clock.now += 60  # a long quiet spell
    assert bucket.acquire() == 0
    assert bucket.acquire() == pytest.approx(0.5)


def test_backends_without_a_rate_are_not_limited() -> None:
    clock = FakeClock()
    limits = RateLimits({"twilio": 1}, clock=clock, sleep=clock.sleep)
    assert [limits.acquire("smtp") for _ in range(3)] == [0, 0, 0]
    assert [limits.acquire("twilio") for _ in range(2)] == [0, pytest.approx(1.0)]


@pytest.mark.parametrize("text", ["twilio", "twilio=0", "twilio=-1", "=5", "twilio=fast"])
def test_a_malformed_rate_setting_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate_limits(text)


def test_rate_settings_parse_per_backend() -> None:
    assert parse_rate_limits(" twilio=10, smtp=2.5 ") == {"twilio": 10.0, "smtp": 2.5}
    assert parse_rate_limits("") == {}
