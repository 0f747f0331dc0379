"""The token bucket's pure core and the RateLimit setting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmill import ConfigurationError, RateLimit
from taskmill._ratelimit import TokenBucket


class TestRateLimit:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"rate": 0},
            {"rate": -1},
            {"rate": math.inf},
            {"rate": math.nan},
            {"rate": True},
            {"rate": "1"},
            {"rate": 1, "burst": 0},
            {"rate": 1, "burst": 1.5},
            {"rate": 1, "burst": True},
        ],
    )
    def test_invalid_values(self, kwargs: dict[str, object]) -> None:
        """Bad rates and bursts raise ConfigurationError at construction."""
        with pytest.raises(ConfigurationError):
            RateLimit(**kwargs)  # type: ignore[arg-type]

    def test_defaults_and_repr(self) -> None:
        """Burst defaults to 1."""
        assert RateLimit(5) == RateLimit(rate=5, burst=1)
        assert "RateLimit(rate=100, burst=10)" == repr(RateLimit(100, burst=10))


class TestTokenBucket:
    def test_full_bucket_grants_burst_at_once(self) -> None:
        """A fresh bucket holds `burst` tokens."""
        bucket = TokenBucket(1.0, 3, now=0.0)
        assert 3.0 == bucket.tokens(0.0)
        assert [True, True, True, False] == [bucket.try_acquire(0.0) for _ in range(4)]
        assert 1.0 == bucket.wait_time(0.0)
        assert 0.0 == bucket.tokens(0.0)

    @pytest.mark.parametrize(
        ("rate", "burst", "times", "granted"),
        [
            (10, 1, [0.0, 0.05, 0.1, 0.1, 0.2], [True, False, True, False, True]),
            (
                1,
                2,
                [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0],
                [True, True, False, False, True, False, True],
            ),
            (2, 1, [5.0, 5.0, 5.5], [True, False, True]),
        ],
    )
    def test_table(self, rate: float, burst: int, times: list[float], granted: list[bool]) -> None:
        """Grants follow rate and burst exactly."""
        bucket = TokenBucket(rate, burst, now=0.0)
        assert granted == [bucket.try_acquire(t) for t in times]

    def test_reserve_borrows_from_the_future(self) -> None:
        """Reservations on an empty bucket queue up at 1/rate intervals."""
        bucket = TokenBucket(4.0, 1, now=0.0)
        assert [0.0, 0.25, 0.5, 0.75] == [bucket.reserve(0.0) for _ in range(4)]
        assert -3.0 == bucket.tokens(0.0)
        assert 1.0 == bucket.wait_time(0.0)

    def test_refund_returns_a_token(self) -> None:
        """A refunded token can be taken again; refunds never overfill."""
        bucket = TokenBucket(1.0, 1, now=0.0)
        assert bucket.try_acquire(0.0)
        bucket.refund(0.0)
        assert bucket.try_acquire(0.0)
        bucket.refund(0.0)
        bucket.refund(0.0)
        assert 1.0 == bucket.tokens(0.0)
        assert bucket.is_full(0.0)

    def test_idle_bucket_refills_to_burst_only(self) -> None:
        """Tokens never exceed burst, however long the bucket was idle."""
        bucket = TokenBucket(100.0, 5, now=0.0)
        for _ in range(5):
            bucket.try_acquire(0.0)
        assert 5.0 == bucket.tokens(3600.0)
        assert "burst=5" in repr(bucket)

    @given(
        rate=st.floats(min_value=0.1, max_value=1000),
        burst=st.integers(min_value=1, max_value=20),
        gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
    )
    def test_never_more_than_burst_plus_rate_times_window(
        self, rate: float, burst: int, gaps: list[float]
    ) -> None:
        """Property: over any window [a, b] grants <= burst + rate * (b - a)."""
        bucket = TokenBucket(rate, burst, now=0.0)
        now = 0.0
        grants: list[float] = []
        for gap in gaps:
            now += gap
            if bucket.try_acquire(now):
                grants.append(now)
        for i, start in enumerate(grants):
            for j in range(i, len(grants)):
                window = grants[j] - start
                assert j - i + 1 <= burst + rate * window + 1e-6

    @given(
        rate=st.floats(min_value=0.1, max_value=1000),
        burst=st.integers(min_value=1, max_value=20),
        gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=100),
    )
    def test_reservations_respect_the_same_bound(
        self, rate: float, burst: int, gaps: list[float]
    ) -> None:
        """Property: reserved start times obey the same window bound, and never lie in the past."""
        bucket = TokenBucket(rate, burst, now=0.0)
        now = 0.0
        starts: list[float] = []
        for gap in gaps:
            now += gap
            wait = bucket.reserve(now)
            assert wait >= 0.0
            starts.append(now + wait)
        starts.sort()
        for i, start in enumerate(starts):
            for j in range(i, len(starts)):
                assert j - i + 1 <= burst + rate * (starts[j] - start) + 1e-6

    @given(
        rate=st.floats(min_value=0.1, max_value=100),
        burst=st.integers(min_value=1, max_value=10),
        gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=100),
    )
    def test_tokens_stay_within_bounds(self, rate: float, burst: int, gaps: list[float]) -> None:
        """Property: available tokens are in [0, burst] under try_acquire and refunds."""
        bucket = TokenBucket(rate, burst, now=0.0)
        now = 0.0
        for i, gap in enumerate(gaps):
            now += gap
            if bucket.try_acquire(now) and i % 3 == 0:
                bucket.refund(now)
            assert -1e-9 <= bucket.tokens(now) <= burst
            assert bucket.wait_time(now) >= 0.0
