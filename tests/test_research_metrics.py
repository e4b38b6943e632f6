"""The sweep's pure measures on constructed series whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.research.metrics import (
    cagr,
    calmar,
    deflated_sharpe,
    expected_max_sharpe,
    max_drawdown,
    moments,
    pbo_cscv,
    probabilistic_sharpe,
    sample_equity,
    sharpe,
    simple_returns,
)


def test_sample_equity_takes_each_periods_last_value_and_fills_gaps() -> None:
    curve = [(0, 100.0), (5, 101.0), (12, 102.0), (35, 99.0)]
    assert sample_equity(curve, 10) == [100.0, 101.0, 102.0, 102.0, 99.0]
    assert sample_equity([], 10) == []
    with pytest.raises(ValueError, match="period_ns"):
        sample_equity(curve, 0)


def test_sharpe_drawdown_cagr_calmar_by_hand() -> None:
    assert sharpe([0.01, 0.03]) == pytest.approx(0.02 / math.sqrt(0.0002))
    assert sharpe([0.01, 0.03], 4) == pytest.approx(2 * 0.02 / math.sqrt(0.0002))
    assert sharpe([0.01, 0.01, 0.01]) == 0.0
    assert sharpe([0.5]) == 0.0
    assert max_drawdown([100, 120, 90, 130, 117]) == pytest.approx(0.25)
    assert cagr([100, 121], 2) == pytest.approx(0.1)
    assert calmar([100, 110, 99, 121], 2) == pytest.approx(1.0)
    assert calmar([100, 101, 102], 1) == math.inf
    assert calmar([100, 100], 1) == 0.0
    assert simple_returns([100, 110, 99]) == pytest.approx([0.1, -0.1])


@given(st.lists(st.floats(min_value=1, max_value=1e6), min_size=1, max_size=50))
@settings(max_examples=50, deadline=None)
def test_drawdown_is_a_fraction_and_zero_for_a_rising_series(values: list[float]) -> None:
    dd = max_drawdown(values)
    assert 0.0 <= dd < 1.0
    assert max_drawdown(sorted(values)) == 0.0


def test_moments_of_symmetric_and_normal_samples() -> None:
    skew, kurt = moments([-1.0, 1.0] * 50)
    assert skew == pytest.approx(0.0) and kurt == pytest.approx(1.0)
    skew, kurt = moments(np.random.default_rng(3).standard_normal(200_000))
    assert skew == pytest.approx(0.0, abs=0.03) and kurt == pytest.approx(3.0, abs=0.05)


def test_probabilistic_sharpe_known_values() -> None:
    # at the benchmark it is a coin toss
    assert probabilistic_sharpe(0.2, 50, 0.0, 3.0, benchmark=0.2) == pytest.approx(0.5)
    # SR 0.1 over 101 normal returns: z = 0.1 × 10 / sqrt(1 + 0.01 / 2) = 0.99751
    assert probabilistic_sharpe(0.1, 101) == pytest.approx(0.84074, abs=1e-5)
    # negative skew and fat tails make the same SR less certain
    assert probabilistic_sharpe(0.1, 101, -1.0, 9.0) < probabilistic_sharpe(0.1, 101)


def test_expected_max_sharpe_matches_the_maximum_of_normals() -> None:
    rng = np.random.default_rng(1)
    for n in (10, 100):
        simulated = float(rng.standard_normal((20_000, n)).max(axis=1).mean())
        assert expected_max_sharpe(n, 1.0) == pytest.approx(simulated, rel=0.03)
    assert expected_max_sharpe(100, 4.0) == pytest.approx(2 * expected_max_sharpe(100, 1.0))
    assert expected_max_sharpe(1, 1.0) == 0.0


def test_deflated_sharpe_of_one_trial_is_its_probabilistic_sharpe() -> None:
    r = list(np.random.default_rng(5).normal(0.001, 0.01, 300))
    skew, kurt = moments(r)
    assert deflated_sharpe(r, [sharpe(r)]) == pytest.approx(
        probabilistic_sharpe(sharpe(r), 300, skew, kurt)
    )


def test_deflated_sharpe_discounts_the_best_of_many_noise_trials() -> None:
    """The best of 200 strategies with no edge looks significant alone and not once deflated."""
    rng = np.random.default_rng(11)
    trials = rng.normal(0.0, 0.01, (250, 200))
    srs = [sharpe(trials[:, j]) for j in range(200)]
    best = trials[:, int(np.argmax(srs))]
    skew, kurt = moments(best)
    assert probabilistic_sharpe(max(srs), 250, skew, kurt) > 0.95
    assert deflated_sharpe(best, srs) < 0.5


def test_pbo_is_zero_when_one_strategy_dominates_everywhere() -> None:
    rng = np.random.default_rng(2)
    mat = rng.normal(0.0, 0.01, (160, 6))
    mat[:, 0] += 0.02  # strategy 0 is far better in every block
    assert pbo_cscv(mat, 8) == 0.0


def test_pbo_is_one_when_in_sample_winners_lose_out_of_sample() -> None:
    """Two strategies whose good and bad halves alternate: the in-sample winner always has the
    bad half out of sample."""
    rng = np.random.default_rng(4)
    noise = rng.normal(0.0, 0.001, (40, 2))
    a = np.r_[np.full(20, 0.01), np.full(20, -0.01)]
    mat = np.c_[a, -a] + noise
    assert pbo_cscv(mat, 2) == 1.0


def test_pbo_of_pure_noise_averages_one_half() -> None:
    values = [pbo_cscv(np.random.default_rng(s).standard_normal((400, 20)), 8) for s in range(20)]
    assert 0.35 < float(np.mean(values)) < 0.65


def test_pbo_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="strategies"):
        pbo_cscv(np.zeros((10, 1)), 2)
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(np.zeros((10, 3)), 3)
    with pytest.raises(ValueError, match="too few"):
        pbo_cscv(np.zeros((10, 3)), 8)
