"""HarStats: the caps' volatility from the HAR-RV forecast (``risk.volatility_model: har``)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from cryptoj.config import ConfigError, parse_config
from cryptoj.risk.har_stats import HarStats
from cryptoj.risk.limits import EwmaStats
from cryptoj.risk.volatility import HarForecaster


def _closes(n: int, seed: int, vol: float) -> list[float]:
    rng = random.Random(seed)
    x, out = 100.0, []
    for i in range(n):
        regime = 3.0 if (i // 60) % 4 == 0 else 1.0  # volatility clusters
        x *= math.exp(rng.gauss(0, vol * regime))
        out.append(x)
    return out


def test_har_takes_over_from_the_ewma_once_it_has_enough_periods() -> None:
    har, ewma = HarStats(60, period_s=600), EwmaStats(60)
    har.set_interval(60)  # 10 one-minute bars per period
    assert har.period_bars == 10
    closes = _closes(2000, 1, 0.001)
    need = HarForecaster().min_periods * 10 + 1  # one close before the first return
    for i, c in enumerate(closes):
        har.on_close("BTC-USD", c)
        ewma.on_close("BTC-USD", c)
        if i + 1 < need:
            assert har.vol("BTC-USD") == ewma.vol("BTC-USD")  # EWMA until HAR is fitted
    rv = har.rv["BTC-USD"]
    expected = HarForecaster(bars_per_period=10).fit_rv(rv).forecast_next() / 10
    assert har.vol("BTC-USD") == pytest.approx(math.sqrt(expected))
    assert har.vol("BTC-USD") != ewma.vol("BTC-USD")
    returns = [math.log(b / a) for a, b in itertools.pairwise(closes)]
    assert rv[0] == pytest.approx(sum(r * r for r in returns[:10]))


def test_the_median_reference_uses_the_forecasts() -> None:
    har = HarStats(60, period_s=600)
    har.set_interval(60)
    for p, vol in (("BTC-USD", 0.001), ("ETH-USD", 0.002), ("LTC-USD", 0.004)):
        for c in _closes(800, 2, vol):
            har.on_close(p, c)
    vols = {p: har.vol(p) for p in ("BTC-USD", "ETH-USD", "LTC-USD")}
    assert set(har.forecast_var) == set(vols)
    assert har.reference_vol() == (3, vols["ETH-USD"])
    assert har.vol_excess("LTC-USD") == pytest.approx(vols["LTC-USD"] / vols["ETH-USD"] - 1)


def test_the_volatility_model_is_configured_and_validated() -> None:
    assert parse_config({}).risk.volatility_model == "ewma"
    assert parse_config({"risk": {"volatility_model": "har"}}).risk.har_period_s == 86_400
    with pytest.raises(ConfigError) as e:
        parse_config({"risk": {"volatility_model": "garch"}})
    assert e.value.problems == ["risk.volatility_model: expected one of 'ewma', 'har', got 'garch'"]
