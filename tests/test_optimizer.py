"""The portfolio optimiser (risk parity with correlation, caps, minimum size, cash buffer) and
the drift band: the documented examples and Hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.portfolio.optimizer import correlation_matrix, risk_parity, target_weights
from cryptoj.portfolio.rebalance import drift_threshold

PRODUCTS = ("BTC", "ETH", "SOL", "LTC")
EPS = 1e-9


def test_the_documented_two_product_example_is_inverse_volatility_then_water_filled() -> None:
    common = {
        "volatility": {"BTC": 0.02, "ETH": 0.03},
        "correlation": {("BTC", "ETH"): 0.8},
        "cash_buffer": 0.05,
    }
    a = target_weights({"BTC": 0.06, "ETH": 0.06}, caps={"BTC": 0.10, "ETH": 0.10}, **common)
    assert a.weights == pytest.approx({"BTC": 0.072, "ETH": 0.048})
    assert a.budget == pytest.approx(0.12) and a.method == "risk_parity"
    capped = target_weights({"BTC": 0.06, "ETH": 0.06}, caps={"BTC": 0.065, "ETH": 0.065}, **common)
    assert capped.weights == pytest.approx({"BTC": 0.065, "ETH": 0.055})


def test_the_documented_three_product_example_gives_the_most_shared_risk_the_least() -> None:
    a = target_weights(
        {"BTC": 0.06, "ETH": 0.06, "SOL": 0.06},
        caps=dict.fromkeys(("BTC", "ETH", "SOL"), 0.10),
        volatility={"BTC": 0.02, "ETH": 0.03, "SOL": 0.03},
        correlation={("BTC", "ETH"): 0.8, ("ETH", "SOL"): 0.9, ("SOL", "BTC"): 0.3},
        cash_buffer=0.05,
    )
    assert a.weights == pytest.approx({"BTC": 0.0825, "ETH": 0.0440, "SOL": 0.0535}, abs=5e-5)
    assert a.gross == pytest.approx(0.18)


def test_risk_parity_equalises_each_products_share_of_the_variance() -> None:
    sigma = np.array([0.02, 0.03, 0.05, 0.01])
    rho = correlation_matrix(
        list(PRODUCTS), {("BTC", "ETH"): 0.7, ("ETH", "SOL"): 0.4, ("BTC", "LTC"): -0.2}
    )
    cov = np.outer(sigma, sigma) * rho
    budgets = np.array([0.4, 0.3, 0.2, 0.1])
    x = risk_parity(cov, budgets)
    contributions = x * (cov @ x) / (x @ cov @ x)
    assert contributions == pytest.approx(budgets, rel=1e-8)


def test_an_invalid_correlation_matrix_is_repaired_to_a_valid_one() -> None:
    # ρ_AB = ρ_BC = 0.9 but ρ_AC = -0.9 is impossible (not positive semi-definite)
    rho = correlation_matrix(["A", "B", "C"], {("A", "B"): 0.9, ("B", "C"): 0.9, ("A", "C"): -0.9})
    assert np.linalg.eigvalsh(rho).min() > 0
    assert np.diag(rho) == pytest.approx(np.ones(3))


def test_without_any_volatility_the_signals_are_used_as_given() -> None:
    a = target_weights({"BTC": 0.10, "ETH": 0.05}, caps={"BTC": 0.10, "ETH": 0.10})
    assert a.method == "signal" and a.weights == pytest.approx({"BTC": 0.10, "ETH": 0.05})


def test_a_product_below_the_minimum_size_leaves_and_takes_its_budget_with_it() -> None:
    a = target_weights(
        {"BTC": 0.03, "ETH": 0.03},
        caps={"BTC": 0.10, "ETH": 0.10},
        volatility={"BTC": 0.01, "ETH": 0.05},
        min_position_size=0.02,
    )
    # ETH's inverse-vol share of 0.06 is 0.01 < 0.02: it is dropped, and BTC keeps only its own 0.03
    assert a.dropped == ("ETH",)
    assert a.weights == pytest.approx({"BTC": 0.03, "ETH": 0.0})


def test_the_cash_buffer_the_multiplier_and_the_volatile_scale_shrink_the_budget() -> None:
    signals = dict.fromkeys(PRODUCTS, 0.5)
    caps = dict.fromkeys(PRODUCTS, 1.0)
    a = target_weights(signals, caps=caps, cash_buffer=0.2)
    assert a.gross == pytest.approx(0.8)
    half = target_weights(signals, caps=caps, multiplier=0.25, scale={"BTC": 0.0})
    assert half.weights["BTC"] == 0.0 and half.gross == pytest.approx(0.375)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "kelly"}, "method: expected one of risk_parity, inverse_vol, signal"),
        ({"cash_buffer": 1.5}, "cash_buffer: expected a number in [0, 1]"),
        ({"multiplier": -1.0}, "multiplier: expected a number >= 0"),
        ({"caps": {"BTC": float("nan")}}, "cap BTC: expected a number in [0, 1]"),
    ],
)
def test_bad_input_names_what_was_wrong(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"caps": {"BTC": 0.1}, **kwargs}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        target_weights({"BTC": 0.1}, **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="signal ETH"):
        target_weights({"ETH": 2.0}, caps={"ETH": 0.1})


fractions = st.floats(0.0, 1.0, allow_nan=False)
vols = st.one_of(st.just(0.0), st.floats(1e-4, 0.2, allow_nan=False))
rhos = st.floats(-1.0, 1.0, allow_nan=False)


@settings(max_examples=300, deadline=None, database=None)
@given(
    signals=st.dictionaries(st.sampled_from(PRODUCTS), fractions, min_size=1),
    caps=st.fixed_dictionaries(dict.fromkeys(PRODUCTS, fractions)),
    vol=st.fixed_dictionaries(dict.fromkeys(PRODUCTS, vols)),
    pairs=st.lists(rhos, min_size=6, max_size=6),
    min_size=st.floats(0.0, 0.2, allow_nan=False),
    buffer=st.floats(0.0, 0.9, allow_nan=False),
    multiplier=st.floats(0.0, 1.0, allow_nan=False),
    method=st.sampled_from(["risk_parity", "inverse_vol", "signal"]),
)
def test_weights_stay_within_their_bounds_and_the_sum_within_the_budget(
    signals: dict[str, float],
    caps: dict[str, float],
    vol: dict[str, float],
    pairs: list[float],
    min_size: float,
    buffer: float,
    multiplier: float,
    method: str,
) -> None:
    keys = [(a, b) for i, a in enumerate(PRODUCTS) for b in PRODUCTS[i + 1 :]]
    a = target_weights(
        signals,
        caps=caps,
        volatility=vol,
        correlation=dict(zip(keys, pairs, strict=True)),
        min_position_size=min_size,
        cash_buffer=buffer,
        multiplier=multiplier,
        method=method,
    )
    w = a.weights
    assert set(w) == set(signals)
    for p, x in w.items():
        assert math.isfinite(x)
        assert 0.0 <= x <= caps[p] + EPS, (p, x, caps[p])
        assert x == 0.0 or x >= min_size - EPS, (p, x, min_size)
        if signals[p] == 0 or multiplier == 0:
            assert x == 0.0
    total = math.fsum(w.values())
    assert total <= 1.0 - buffer + EPS
    assert total <= math.fsum(signals.values()) * multiplier + EPS


@settings(max_examples=200, deadline=None, database=None)
@given(
    base=st.floats(0.0, 0.1, allow_nan=False),
    multiplier=st.floats(1.0, 5.0, allow_nan=False),
    regime=st.sampled_from([None, "CALM", "TRENDING", "VOLATILE"]),
)
def test_the_drift_band_only_widens_in_the_volatile_regime(
    base: float, multiplier: float, regime: str | None
) -> None:
    band = drift_threshold(base, regime, multiplier)
    assert band == (base * multiplier if regime == "VOLATILE" else base)
    assert band >= base


def test_the_drift_band_rejects_a_narrowing_multiplier() -> None:
    with pytest.raises(ValueError, match="volatile multiplier >= 1"):
        drift_threshold(0.005, "VOLATILE", 0.5)
