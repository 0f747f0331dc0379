"""Backoff functions: seed sequences, jitter bounds, validation, and no NaN/inf ever."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmill import Backoff, ConfigurationError, Constant, Exponential, Jitter
from taskmill._backoff import MAX_DELAY

JITTERS: tuple[Jitter, ...] = ("none", "full", "equal", "proportional", "decorrelated")


def delays(backoff: Backoff, retries: range, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [backoff.delay(n, rng) for n in retries]


class TestSeedSequences:
    def test_sc_bos_one_second_times_one_and_a_half_capped_at_ten(self) -> None:
        """sc-bos WithBackoff(1s, 10s): 1, 1.5, 2.25, 3.375, 5.0625, 7.59375, 10, 10."""
        backoff = Exponential(1.0, multiplier=1.5, max=10.0)
        expected = [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 10.0, 10.0]
        assert expected == delays(backoff, range(1, 9))

    @pytest.mark.parametrize("jitter", ["none", "proportional"])
    def test_rebuy_exponential_1s_60s(self, jitter: Jitter) -> None:
        """rebuy ExponentialBackoff(1s, 1m) without jitter: 0, 1, 2, 4, ... 32, 60, 60."""
        backoff = Exponential(1.0, max=60.0, jitter=jitter, proportion=0.0)
        expected = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
        assert expected == delays(backoff, range(9))

    def test_rebuy_exponential_3s_60s(self) -> None:
        """rebuy ExponentialBackoff(3s, 1m): 0, 3, 6, 12, 24, 48, 60."""
        expected = [0.0, 3.0, 6.0, 12.0, 24.0, 48.0, 60.0]
        assert expected == delays(Exponential(3.0, max=60.0), range(7))

    def test_rebuy_proportional_half_jitter_bounds(self) -> None:
        """J=0.5: each delay lies in [b/2, b] (b uncapped), and is exactly max once b/2 >= max."""
        backoff = Exponential(1.0, max=60.0, jitter="proportional", proportion=0.5)
        rng = random.Random(7)
        for retry in range(1, 40):
            base = 2.0 ** (retry - 1)
            for _ in range(50):
                value = backoff.delay(retry, rng)
                if base * 0.5 >= 60.0:
                    assert value == 60.0
                else:
                    assert base * 0.5 <= value <= min(base, 60.0)

    def test_rebuy_proportional_jitter_actually_varies(self) -> None:
        """Below the cap the proportional jitter spreads values (it is not a constant)."""
        backoff = Exponential(1.0, max=60.0, jitter="proportional", proportion=0.5)
        rng = random.Random(3)
        assert len({backoff.delay(4, rng) for _ in range(20)}) > 10

    def test_rebuy_static_backoff(self) -> None:
        """rebuy StaticBackoff: 0 for attempt 0, the sleep otherwise."""
        assert [0.0, 2.5, 2.5, 2.5] == delays(Constant(2.5), range(4))

    @pytest.mark.parametrize("proportion", [0.0, 0.5, 1.0])
    @pytest.mark.parametrize("retry", [1025, 1100, 10**6, 10**8])
    def test_rebuy_huge_attempts_stay_positive_and_finite(
        self, proportion: float, retry: int
    ) -> None:
        """The rebuy NaN/overflow at ~1025 attempts (J = 0 or 1) does not exist here."""
        backoff = Exponential(1.0, max=60.0, jitter="proportional", proportion=proportion)
        value = backoff.delay(retry, random.Random(0))
        assert math.isfinite(value)
        assert 0.0 < value <= 60.0
        if proportion < 1.0:
            assert value == 60.0

    def test_hive_exponential_min_then_doubling_capped(self) -> None:
        """hive ExponentialBackoff{Min: 1s, Max: 10s}: 1, 2, 4, 8, 10, 10."""
        assert [1.0, 2.0, 4.0, 8.0, 10.0, 10.0] == delays(Exponential(1.0, max=10.0), range(1, 7))

    def test_hive_constant_backoff(self) -> None:
        """hive ConstantBackoff(d) waits d before every retry."""
        assert [0.1, 0.1, 0.1] == delays(Constant(0.1), range(1, 4))

    def test_cenkalti_default_like_sequence(self) -> None:
        """marionette default (500 ms x1.5, max 60 s): exact without jitter, capped at retry 13."""
        backoff = Exponential(0.5, multiplier=1.5, max=60.0)
        values = delays(backoff, range(1, 16))
        assert [0.5, 0.75, 1.125, 1.6875] == values[:4]
        assert values[11] == pytest.approx(0.5 * 1.5**11)
        assert [60.0, 60.0, 60.0] == values[12:]

    @pytest.mark.parametrize("jitter", ["full", "equal"])
    def test_cenkalti_default_like_jitter_bounds(self, jitter: Jitter) -> None:
        """Jittered versions stay within [0, base] (full) or [base/2, base] (equal)."""
        backoff = Exponential(0.5, multiplier=1.5, max=60.0, jitter=jitter)
        rng = random.Random(11)
        for retry in range(1, 30):
            base = min(60.0, 0.5 * 1.5 ** (retry - 1))
            low = 0.0 if jitter == "full" else base / 2
            for _ in range(30):
                assert low <= backoff.delay(retry, rng) <= base


class TestJitter:
    def test_decorrelated_starts_at_initial(self) -> None:
        """With no previous delay, decorrelated jitter returns ``initial`` exactly."""
        backoff = Exponential(0.2, max=30.0, jitter="decorrelated")
        assert 0.2 == backoff.delay(1, random.Random(0))

    def test_decorrelated_range_follows_previous(self) -> None:
        """Each delay is in [initial, min(max, 3 * previous)]."""
        backoff = Exponential(0.2, max=30.0, jitter="decorrelated")
        rng = random.Random(5)
        previous = 0.0
        for retry in range(1, 200):
            value = backoff.delay(retry, rng, previous)
            assert 0.2 <= value <= min(30.0, max(0.2, 3 * previous))
            previous = value

    def test_decorrelated_reaches_the_cap(self) -> None:
        """Decorrelated jitter grows until it meets the cap, and never exceeds it."""
        values = list(
            Exponential(1.0, max=30.0, jitter="decorrelated").sequence(200, random.Random(1))
        )
        assert 30.0 == max(values)

    @pytest.mark.parametrize("previous", [math.nan, math.inf, -5.0])
    def test_decorrelated_tolerates_a_bad_previous(self, previous: float) -> None:
        """A NaN, infinite or negative ``previous`` still gives a value in [initial, max]."""
        value = Exponential(1.0, max=30.0, jitter="decorrelated").delay(
            3, random.Random(0), previous
        )
        assert 1.0 <= value <= 30.0

    @pytest.mark.parametrize("jitter", JITTERS)
    def test_seeded_rng_gives_the_same_sequence(self, jitter: Jitter) -> None:
        """The same seed reproduces the same delays; another seed does not."""
        backoff = Exponential(0.5, max=100.0, jitter=jitter)
        first = list(backoff.sequence(20, random.Random(42)))
        assert first == list(backoff.sequence(20, random.Random(42)))
        if jitter != "none":
            assert first != list(backoff.sequence(20, random.Random(43)))

    def test_full_jitter_spans_zero_to_base(self) -> None:
        """Full jitter uses the whole [0, base] range."""
        backoff = Exponential(8.0, jitter="full")
        rng = random.Random(2)
        values = [backoff.delay(1, rng) for _ in range(2000)]
        assert min(values) < 0.1
        assert max(values) > 7.9


class TestEdges:
    @pytest.mark.parametrize("jitter", JITTERS)
    def test_retry_zero_is_always_zero(self, jitter: Jitter) -> None:
        """delay(0) is 0.0 for every implementation: nothing has failed yet."""
        assert 0.0 == Exponential(3.0, max=5.0, jitter=jitter).delay(0, random.Random(0), 4.0)
        assert 0.0 == Constant(3.0).delay(0, random.Random(0))

    @pytest.mark.parametrize("jitter", JITTERS)
    def test_initial_zero_is_always_zero(self, jitter: Jitter) -> None:
        """initial == 0 gives 0 at every retry (rebuy: Initial = 0)."""
        assert [0.0] * 5 == delays(Exponential(0.0, jitter=jitter), range(1, 6))

    def test_max_zero_with_initial_zero_is_zero(self) -> None:
        """rebuy Max = 0 means no wait; here that is initial = max = 0."""
        assert [0.0, 0.0] == delays(Exponential(0.0, max=0.0), range(1, 3))

    def test_no_max_saturates_at_max_delay(self) -> None:
        """Without ``max`` the delay stops at the finite MAX_DELAY ceiling."""
        assert MAX_DELAY == Exponential(1.0).delay(10**6, random.Random(0))

    def test_multiplier_one_is_constant(self) -> None:
        """multiplier=1 never grows."""
        assert [2.0] * 4 == delays(Exponential(2.0, multiplier=1.0), range(1, 5))

    def test_negative_retry_is_refused(self) -> None:
        """A negative retry number is a caller bug."""
        with pytest.raises(ConfigurationError, match="retry"):
            Exponential(1.0).delay(-1, random.Random(0))
        with pytest.raises(ConfigurationError, match="retry"):
            Constant(1.0).delay(-1, random.Random(0))

    def test_extreme_ratio_does_not_overflow(self) -> None:
        """A denormal initial with a huge cap still gives finite values."""
        backoff = Exponential(5e-324, multiplier=1e300, max=1e300)
        assert [5e-324, 5e-324 * 1e300, 1e300, 1e300] == delays(backoff, range(1, 5))

    def test_values_are_floats_and_repr_is_readable(self) -> None:
        """Parameters are normalised to float; reprs name the parameters."""
        backoff = Exponential(1, max=10)
        assert isinstance(backoff.initial, float)
        assert isinstance(backoff.max, float)
        assert "Exponential(initial=1.0, multiplier=2.0, max=10.0" in repr(backoff)
        assert "Constant(delay=2.0)" == repr(Constant(2))
        assert Constant(2) == Constant(2.0)
        assert 2.0 == Constant(2).seconds

    def test_implementations_satisfy_the_protocol(self) -> None:
        """Constant and Exponential are Backoffs."""
        assert isinstance(Constant(1.0), Backoff)
        assert isinstance(Exponential(1.0), Backoff)

    def test_sequence_helper(self) -> None:
        """``sequence(n)`` yields the delays before retries 1..n."""
        assert [1.0, 2.0, 4.0] == list(Exponential(1.0).sequence(3))
        assert [0.5, 0.5] == list(Constant(0.5).sequence(2))


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"initial": -1.0}, "initial"),
            ({"initial": math.nan}, "initial"),
            ({"initial": math.inf}, "initial"),
            ({"initial": "1"}, "initial"),
            ({"initial": True}, "initial"),
            ({"initial": 1.0, "multiplier": 0.5}, "multiplier"),
            ({"initial": 1.0, "multiplier": math.inf}, "multiplier"),
            ({"initial": 1.0, "multiplier": -2.0}, "multiplier"),
            ({"initial": 1.0, "max": -1.0}, "max"),
            ({"initial": 1.0, "max": math.nan}, "max"),
            ({"initial": 1.0, "max": math.inf}, "max"),
            ({"initial": 2.0, "max": 1.0}, "max"),
            ({"initial": 1.0, "max": 0.0}, "max"),
            ({"initial": 1.0, "proportion": -0.1}, "proportion"),
            ({"initial": 1.0, "proportion": 1.1}, "proportion"),
            ({"initial": 1.0, "proportion": math.nan}, "proportion"),
            ({"initial": 1.0, "jitter": "bogus"}, "jitter"),
        ],
    )
    def test_invalid_exponential(self, kwargs: dict[str, object], name: str) -> None:
        """Bad parameters raise ConfigurationError naming the parameter."""
        with pytest.raises(ConfigurationError, match=name):
            Exponential(**kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [-0.1, math.nan, math.inf, "1", None])
    def test_invalid_constant(self, value: object) -> None:
        """A constant delay must be a finite number >= 0."""
        with pytest.raises(ConfigurationError, match="delay"):
            Constant(value)  # type: ignore[arg-type]

    def test_configuration_error_is_a_value_error(self) -> None:
        """Callers catching ValueError see bad backoff parameters too."""
        with pytest.raises(ValueError, match="multiplier"):
            Exponential(1.0, multiplier=0.0)


valid_exponentials = st.builds(
    lambda initial, ratio, multiplier, jitter, proportion, capped: Exponential(
        initial,
        multiplier=multiplier,
        max=initial * ratio if capped else None,
        jitter=jitter,
        proportion=proportion,
    ),
    initial=st.floats(0.0, 1e6, allow_nan=False),
    ratio=st.floats(1.0, 1e6),
    multiplier=st.floats(1.0, 1e3),
    jitter=st.sampled_from(JITTERS),
    proportion=st.floats(0.0, 1.0),
    capped=st.booleans(),
)


class TestProperties:
    @given(
        backoff=valid_exponentials,
        retry=st.integers(0, 10**6),
        previous=st.floats(allow_nan=True, allow_infinity=True),
        seed=st.integers(0, 2**32),
    )
    def test_never_nan_inf_negative_or_above_the_cap(
        self, backoff: Exponential, retry: int, previous: float, seed: int
    ) -> None:
        """Any valid backoff, any retry up to 10**6: finite, >= 0, <= the cap; 0 at retry 0."""
        value = backoff.delay(retry, random.Random(seed), previous)
        cap = backoff.max if backoff.max is not None else max(MAX_DELAY, backoff.initial)
        assert math.isfinite(value)
        assert 0.0 <= value <= cap
        if retry == 0:
            assert value == 0.0

    @given(backoff=valid_exponentials, retry=st.integers(1, 10**6))
    def test_without_jitter_never_shrinks(self, backoff: Exponential, retry: int) -> None:
        """Un-jittered delays are non-decreasing in the retry number."""
        plain = Exponential(backoff.initial, multiplier=backoff.multiplier, max=backoff.max)
        rng = random.Random(0)
        assert plain.delay(retry, rng) <= plain.delay(retry + 1, rng)

    @given(delay=st.floats(0.0, 1e12), retry=st.integers(1, 10**6))
    def test_constant_is_constant(self, delay: float, retry: int) -> None:
        """Constant(d) gives d for every retry >= 1."""
        assert delay == Constant(delay).delay(retry, random.Random(0))
