"""Tests of the pure risk maths: ATR, regimes, EWMA correlation, HAR-RV, losses, risk levels.

The price and return series here are synthetic (seeded generators), built to test the maths;
they are not recorded market data. ``tools/vol_eval.py`` evaluates on the recorded sets.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.models.risk import RiskLevel
from cryptoj.risk.correlation import EwmaCorrelation
from cryptoj.risk.levels import NS_PER_DAY, NS_PER_MINUTE, LevelConfig, LevelMachine, utc_day
from cryptoj.risk.regime import Regime, RegimeDetector
from cryptoj.risk.volatility import (
    EwmaVariance,
    HarForecaster,
    ewma_forecasts,
    har_components,
    mse,
    previous_forecasts,
    qlike,
    realised_variance,
)

DAY0 = 19_000 * NS_PER_DAY  # 2022-01-08 00:00 UTC
COOL = LevelConfig().cooldown_ns

# --- regime -----------------------------------------------------------------------------------


def _prices(returns: np.ndarray, start: float = 100.0) -> np.ndarray:
    return np.asarray(start * np.exp(np.cumsum(returns)))


def _classify(det: RegimeDetector, closes: np.ndarray) -> list[Regime | None]:
    return [det.update(float(c)) for c in closes]


def test_regime_of_a_calm_random_walk_is_mostly_calm() -> None:
    rng = np.random.default_rng(1)
    out = _classify(RegimeDetector(500, 0.8, 0.5), _prices(rng.normal(0, 0.01, 1500)))
    counts = Counter(r for r in out if r is not None)

    assert counts.most_common(1)[0][0] is Regime.CALM
    assert counts[Regime.CALM] / sum(counts.values()) > 0.6
    assert counts[Regime.TRENDING] / sum(counts.values()) < 0.1


def test_regime_turns_volatile_when_volatility_jumps() -> None:
    rng = np.random.default_rng(2)
    rets = np.concatenate([rng.normal(0, 0.01, 800), rng.normal(0, 0.04, 40)])
    out = _classify(RegimeDetector(500, 0.8, 0.5), _prices(rets))

    assert out[-30:] == [Regime.VOLATILE] * 30


def test_regime_recognises_a_steady_trend() -> None:
    rng = np.random.default_rng(3)
    rets = np.concatenate([rng.normal(0, 0.01, 800), rng.normal(0.004, 0.004, 80)])
    det = RegimeDetector(500, 0.8, 0.5)
    out = _classify(det, _prices(rets))

    assert out[-30:] == [Regime.TRENDING] * 30
    assert det.trend_strength is not None and det.trend_strength > 0.7


def test_regime_warm_up_and_efficiency_ratio_worked_example() -> None:
    det = RegimeDetector(8, 0.99, 0.5, vol_span=2, trend_lookback=4, min_history=1)
    out = _classify(det, np.array([100.0, 101, 102, 101, 103]))

    assert out[:4] == [None] * 4
    assert det.trend_strength == pytest.approx(math.log(1.03) / 0.0492620, rel=1e-4)
    # ER ≈ 0.60 ≥ 0.5, but the last, largest return puts σ above all its history
    # (percentile 1.0 ≥ 0.99): volatility takes precedence over trend.
    assert det.vol_percentile == 1.0
    assert out[4] is Regime.VOLATILE


# --- EWMA correlation -------------------------------------------------------------------------


def _feed(corr: EwmaCorrelation, series: dict[str, np.ndarray]) -> None:
    n = len(next(iter(series.values())))
    for t in range(n):
        corr.update({p: float(x[t]) for p, x in series.items()})


@pytest.mark.parametrize(("factor", "expected"), [(2.0, 1.0), (-0.5, -1.0)])
def test_correlation_of_perfectly_linked_series(factor: float, expected: float) -> None:
    x = np.random.default_rng(4).normal(0, 0.01, 400)
    corr = EwmaCorrelation(["A", "B"], halflife=30)
    _feed(corr, {"A": x, "B": factor * x})

    assert corr.average_pairwise() == pytest.approx(expected, abs=1e-9)
    assert corr.of("A") == pytest.approx(expected, abs=1e-9)
    assert corr.matrix() == pytest.approx(np.array([[1, expected], [expected, 1]]), abs=1e-9)


def test_correlation_of_independent_series_is_near_zero() -> None:
    rng = np.random.default_rng(5)
    corr = EwmaCorrelation(["A", "B", "C"], halflife=60)
    _feed(corr, {p: rng.normal(0, 0.01, 3000) for p in "ABC"})

    assert abs(corr.average_pairwise()) < 0.15
    assert np.all(np.abs(corr.matrix() - np.eye(3)) < 0.25)


def test_correlation_worked_example_and_late_products() -> None:
    corr = EwmaCorrelation(["A", "B"], halflife=1, min_periods=1)
    corr.update({"A": 0.01, "B": 0.02})
    corr.update({"A": -0.01, "B": -0.02})
    assert corr.correlation("A", "B") == pytest.approx(1.0)

    corr.update({"C": 0.01})  # appears later, alone
    assert corr.products == ("A", "B", "C")
    assert corr.of("C") == 0.0
    assert corr.correlation("A", "C") == 0.0
    assert corr.average_pairwise() == pytest.approx(1.0)  # only the pair with data counts


def test_correlation_never_returns_nan() -> None:
    corr = EwmaCorrelation(["A", "B"], halflife=10)
    assert corr.average_pairwise() == 0.0 and corr.of("A") == 0.0 and corr.of("X") == 0.0
    for _ in range(50):
        corr.update({"A": 0.0, "B": 0.01})  # A is flat: zero variance
        corr.update({"A": math.nan, "B": math.inf})  # ignored
    assert np.all(np.isfinite(corr.matrix()))
    assert corr.correlation("A", "B") == 0.0
    assert corr.volatility("B") > 0 and corr.volatility("X") == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["A", "B", "C", "D"]),
            st.one_of(
                st.floats(-0.5, 0.5, allow_nan=False),
                st.sampled_from([0.0, 1e-300, -1e-300, math.nan]),
            ),
            max_size=4,
        ),
        max_size=40,
    )
)
def test_correlation_is_always_finite_symmetric_and_bounded(
    steps: list[dict[str, float]],
) -> None:
    corr = EwmaCorrelation(["A"], halflife=3, min_periods=2)
    for step in steps:
        corr.update(step)
    m = corr.matrix()
    assert np.all(np.isfinite(m)) and np.all(np.abs(m) <= 1.0)
    assert np.allclose(m, m.T) and np.all(np.diag(m) == 1.0)
    assert -1.0 <= corr.average_pairwise() <= 1.0
    assert all(-1.0 <= corr.of(p) <= 1.0 for p in corr.products)


# --- HAR-RV and losses ------------------------------------------------------------------------


def _simulate_log_har(n: int, coef: tuple[float, float, float, float], seed: int) -> np.ndarray:
    b0, bd, bw, bm = coef
    rng = np.random.default_rng(seed)
    mu = b0 / (1 - bd - bw - bm)
    x = [mu] * 30
    for _ in range(n):
        week, month = sum(x[-7:]) / 7, sum(x[-30:]) / 30
        x.append(b0 + bd * x[-1] + bw * week + bm * month + float(rng.normal(0, 0.4)))
    return np.asarray(np.exp(np.array(x[30:])))


def test_har_recovers_the_coefficients_of_a_known_log_har_process() -> None:
    true = (-0.8, 0.35, 0.35, 0.2)
    rv = _simulate_log_har(6000, true, seed=6)
    har = HarForecaster((1, 7, 30), log=True, ridge=0.0).fit_rv(rv)

    assert har.intercept == pytest.approx(true[0], abs=0.25)
    assert har.coef == pytest.approx(np.array(true[1:]), abs=0.06)
    assert har.resid_var == pytest.approx(0.16, rel=0.1)


def test_har_forecast_is_the_lognormal_mean_of_the_fitted_equation() -> None:
    rv = _simulate_log_har(500, (-0.8, 0.35, 0.35, 0.2), seed=7)
    har = HarForecaster((1, 7, 30)).fit_rv(rv)
    x = np.log(rv)
    y_hat = har.intercept + har.coef @ [x[-1], x[-7:].mean(), x[-30:].mean()]

    assert har.forecast_next() == pytest.approx(math.exp(y_hat + har.resid_var / 2))
    har.update(float(rv[-1]))
    assert har.forecast_next() == pytest.approx(har.forecast_from(np.append(rv, rv[-1])))


def test_har_fit_from_returns_groups_bars_into_periods() -> None:
    rng = np.random.default_rng(8)
    returns = rng.normal(0, 0.01, 6 * 200 + 3)  # 200 days of 6 bars, 3 bars left over
    rv = realised_variance(returns, 6)
    har = HarForecaster(bars_per_period=6).fit(returns)

    assert len(rv) == 200 and rv[0] == pytest.approx(float(np.sum(returns[:6] ** 2)))
    assert har.n_obs == 200 - 30
    assert 0 < har.forecast_next() < 10 * rv.mean()
    with pytest.raises(ValueError):
        HarForecaster().fit_rv(rv[:20])


def test_har_components_are_trailing_means() -> None:
    comps = har_components(np.arange(10.0), (1, 3))
    assert comps[2].tolist() == [2.0, 1.0]
    assert math.isnan(comps[1, 1])


def test_naive_baselines() -> None:
    rv = np.array([1.0, 2.0, 4.0])
    assert previous_forecasts(rv).tolist() == [1.0, 2.0, 4.0]
    assert ewma_forecasts(rv, 0.5).tolist() == [1.0, 1.5, 2.75]
    ew = EwmaVariance(0.5)
    assert [ew.update(v) for v in rv] == [1.0, 1.5, 2.75]


def test_qlike_and_mse_definitions() -> None:
    assert qlike(2e-4, 1e-4) == pytest.approx(0.5 - math.log(0.5) - 1)
    assert qlike(0.5e-4, 1e-4) == pytest.approx(2 - math.log(2) - 1)
    assert qlike(0.5e-4, 1e-4) > qlike(2e-4, 1e-4)  # under-forecasting costs more
    assert qlike([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert math.isfinite(qlike(0.0, 1e-4)) and math.isfinite(qlike(1e-4, 0.0))
    assert mse([1.0, 3.0], [2.0, 1.0]) == pytest.approx((1 + 4) / 2)


# --- risk levels ------------------------------------------------------------------------------


def test_levels_worked_example_and_recovery_one_step_per_cooldown() -> None:
    m = LevelMachine()
    assert m.update(DAY0, 100_000).level is RiskLevel.NORMAL
    u = m.update(DAY0 + 1, 99_000)
    assert (u.level, u.size_multiplier, u.entries_allowed) == (RiskLevel.CAUTION, 0.5, True)
    u = m.update(DAY0 + 2, 98_400)
    assert (u.level, u.previous, u.entries_allowed) == (
        RiskLevel.REDUCING,
        RiskLevel.CAUTION,
        False,
    )
    assert "daily loss 1.60%" in u.reason
    t = DAY0 + 3
    assert m.update(t, 99_500).level is RiskLevel.REDUCING  # cool-down starts
    assert m.update(t + COOL - 1, 99_500).level is RiskLevel.REDUCING
    u = m.update(t + COOL, 99_500)
    assert (u.previous, u.level) == (RiskLevel.REDUCING, RiskLevel.CAUTION)
    assert "recovered" in u.reason
    assert m.update(t + 2 * COOL - 1, 99_500).level is RiskLevel.CAUTION
    assert m.update(t + 2 * COOL, 99_500).level is RiskLevel.NORMAL


def test_levels_release_threshold_is_below_the_trigger() -> None:
    m = LevelMachine()
    m.update(DAY0, 100_000)
    m.update(DAY0 + 1, 99_000)  # 1 % drawdown → CAUTION
    for k in range(1, 5):
        u = m.update(DAY0 + k * COOL, 99_100)  # 0.9 %: below trigger, above release (0.8 %)
        assert u.level is RiskLevel.CAUTION and u.required is RiskLevel.NORMAL


def test_levels_daily_loss_halts_until_the_next_utc_day() -> None:
    m = LevelMachine()
    m.update(DAY0 + 3600 * 10**9, 100_000)
    assert m.update(DAY0 + 2 * 3600 * 10**9, 97_900).level is RiskLevel.HALTED
    u = m.update(DAY0 + NS_PER_DAY, 101_000)  # recovered; 00:00 still closes the same day
    assert u.level is RiskLevel.HALTED and "until 00:00 UTC" in u.reason
    ts = DAY0 + NS_PER_DAY + 1
    assert m.update(ts, 101_000).level is RiskLevel.HALTED  # new day: cool-down starts
    assert m.update(ts + COOL, 101_000).level is RiskLevel.REDUCING
    assert m.update(ts + 2 * COOL, 101_000).level is RiskLevel.CAUTION
    assert m.update(ts + 3 * COOL, 101_000).level is RiskLevel.NORMAL


def test_the_bar_that_closes_at_midnight_belongs_to_the_day_it_closes() -> None:
    assert utc_day(DAY0) == utc_day(DAY0 - 1) == utc_day(DAY0 - NS_PER_DAY + 1)
    assert utc_day(DAY0 + 1) == utc_day(DAY0) + 1
    m = LevelMachine()
    m.update(DAY0 - 4 * 3600 * 10**9, 100_000)  # 20:00: the day's last equity but one
    # the 20:00-24:00 bar, stamped at its close 00:00, loses 1.8 %: counted in that day
    u = m.update(DAY0, 98_200)
    assert u.daily_loss == pytest.approx(0.018) and u.level is RiskLevel.REDUCING
    # the next day's reference is the equity at 00:00 (the last at or before its start)
    u = m.update(DAY0 + 4 * 3600 * 10**9, 97_000)
    assert u.daily_loss == pytest.approx(1 - 97_000 / 98_200)
    assert u.level is RiskLevel.REDUCING  # 1.22 %: not halted, the fall from 20:00 is in the
    # previous day; measured from 20:00 it would have been 3 %


def test_the_day_reference_is_the_last_equity_before_midnight_even_after_a_gap() -> None:
    m = LevelMachine()
    m.update(DAY0 - 3 * 3600 * 10**9, 100_000)
    u = m.update(DAY0 + 5 * 3600 * 10**9, 97_900)  # first equity of the day, 2.1 % lower
    assert u.daily_loss == pytest.approx(0.021) and u.level is RiskLevel.HALTED


def test_the_drawdown_limit_holds_across_days_and_recoveries_until_resumed() -> None:
    m = LevelMachine(LevelConfig(max_drawdown=0.10))
    ts = DAY0 + 1
    m.update(ts, 100_000)
    for day in range(1, 7):  # 1.8 % a day: the daily limit never trips, the slide adds up
        u = m.update(ts + day * NS_PER_DAY, 100_000 * (1 - 0.018 * day))
    assert u.hwm_drawdown == pytest.approx(0.108) and u.level is RiskLevel.HALTED
    assert "high-water mark" in u.reason and m.drawdown_halted
    later = ts + 30 * NS_PER_DAY
    for k in range(10):  # equity recovers above the mark; days and cool-downs pass
        u = m.update(later + k * COOL, 105_000)
    assert u.level is RiskLevel.HALTED and "operator resumes" in u.reason
    r = m.resume("alice")
    assert "alice" in r.reason and m.hwm == 105_000 and not m.drawdown_halted
    t = later + 10 * COOL
    levels = [m.update(t + k * COOL, 105_000).level for k in range(4)]
    assert levels == [RiskLevel.HALTED, RiskLevel.REDUCING, RiskLevel.CAUTION, RiskLevel.NORMAL]


def test_the_drawdown_limit_is_validated() -> None:
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="max_drawdown"):
            LevelConfig(max_drawdown=bad)


def test_levels_stale_feed_stop_hits_and_systemic_risk() -> None:
    m = LevelMachine()
    m.update(DAY0, 100_000)
    u = m.update(DAY0 + 1, 100_000, stale_feed=True)
    assert (u.level, u.entries_allowed) == (RiskLevel.CAUTION, False)
    u = m.update(DAY0 + 2, 100_000, stale_feed=False)
    assert (u.level, u.entries_allowed) == (RiskLevel.CAUTION, True)  # cools down as usual

    m = LevelMachine()
    m.update(DAY0, 100_000)
    assert m.update(DAY0 + 1, 100_000, stop_loss_hits_today=2).level is RiskLevel.CAUTION
    assert m.update(DAY0 + 2, 100_000, stop_loss_hits_today=4).level is RiskLevel.REDUCING

    m = LevelMachine()
    m.update(DAY0, 100_000)
    assert m.update(DAY0 + 1, 99_500, avg_correlation=0.95).level is RiskLevel.NORMAL
    u = m.update(DAY0 + 2, 98_950, avg_correlation=0.95)
    assert u.level is RiskLevel.REDUCING and "systemic" in u.reason
    assert m.update(DAY0 + 3, 98_950, avg_correlation=math.nan).level is RiskLevel.REDUCING


def test_levels_operator_override_and_expiry() -> None:
    m = LevelMachine()
    m.update(DAY0, 100_000)
    u = m.force(RiskLevel.HALTED, reason="maintenance")
    assert (u.previous, u.level, u.overridden) == (RiskLevel.NORMAL, RiskLevel.HALTED, True)
    assert "maintenance" in u.reason
    assert m.update(DAY0 + 10 * COOL, 100_000).level is RiskLevel.HALTED
    u = m.release()
    assert (u.level, u.overridden) == (RiskLevel.NORMAL, False)

    m.update(DAY0 + 11 * COOL, 97_000)  # HALTED by the daily loss
    m.force(RiskLevel.NORMAL, until_ns=DAY0 + 12 * COOL)
    assert m.update(DAY0 + 12 * COOL - 1, 97_000).level is RiskLevel.NORMAL
    u = m.update(DAY0 + 12 * COOL, 97_000)
    assert u.level is RiskLevel.HALTED and "expired" in u.reason


def test_level_config_from_risk_config() -> None:
    from cryptoj.config import RiskConfig

    cfg = LevelConfig.from_risk_config(RiskConfig(daily_loss_limit=0.03), cooldown_ns=5)
    assert (cfg.daily_loss_limit, cfg.caution_drawdown, cfg.cooldown_ns) == (0.03, 0.01, 5)
    assert LevelConfig() == LevelConfig.from_risk_config(RiskConfig())


_step = st.tuples(
    st.integers(0, 20 * NS_PER_MINUTE) | st.integers(0, 4 * 3600 * 10**9),  # to the next update
    st.floats(-0.003, 0.003) | st.floats(-0.025, 0.025),  # equity log change
    st.sampled_from([False] * 7 + [True]),  # stale feed (sometimes)
    st.sampled_from([0] * 19 + [1]),  # new stop-loss hits
    st.floats(0.0, 1.0),  # average correlation
)


def _loss_floor(loss: float, cfg: LevelConfig) -> RiskLevel:
    if loss >= cfg.daily_loss_limit:
        return RiskLevel.HALTED
    if loss >= cfg.reducing_loss_fraction * cfg.daily_loss_limit:
        return RiskLevel.REDUCING
    return RiskLevel.NORMAL


@settings(max_examples=200, deadline=None)
@given(st.integers(0, NS_PER_DAY - 1), st.lists(_step, min_size=30, max_size=120))
def test_level_machine_properties(
    start: int, steps: list[tuple[int, float, bool, int, float]]
) -> None:
    cfg = LevelConfig()
    m = LevelMachine(cfg)
    ts, equity, hits = DAY0 + start, 100_000.0, 0
    level, last_change = m.update(ts, equity).level, ts
    since_change: list[tuple[int, RiskLevel]] = []  # (ts, release level)
    halted_day: int | None = None
    for dt_ns, change, stale, new_hits, corr in steps:
        day_before = utc_day(ts)
        ts += dt_ns
        hits = (0 if utc_day(ts) != day_before else hits) + new_hits
        equity *= math.exp(change)
        u = m.update(ts, equity, stale, hits, corr)
        # Levels go down one step at a time, and only after the cool-down, during which
        # the release conditions asked for less than the level left.
        assert u.level.rank >= level.rank - 1
        since_change.append((ts, u.release))
        if u.level.rank < level.rank:
            assert ts - last_change >= cfg.cooldown_ns
            window = [r for t, r in since_change if t > ts - cfg.cooldown_ns]
            assert all(r.rank < level.rank for r in window)
        # The level is never below what the daily loss alone requires.
        assert u.level.rank >= _loss_floor(u.daily_loss, cfg).rank
        assert u.level.rank >= u.required.rank
        assert u.release.rank >= u.required.rank
        # HALTED by the daily loss holds for the rest of the UTC day.
        if u.daily_loss >= cfg.daily_loss_limit:
            halted_day = utc_day(ts)
        if halted_day == utc_day(ts):
            assert u.level is RiskLevel.HALTED
        assert u.entries_allowed == (u.level.rank <= 1 and not stale)
        if u.level is not level:
            last_change, since_change = ts, []
        level = u.level


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(list(RiskLevel)),
    st.one_of(st.none(), st.integers(1, 6 * 3600 * 10**9)),
    st.lists(st.tuples(st.integers(0, 40 * NS_PER_MINUTE), st.floats(-0.02, 0.02)), max_size=40),
    st.integers(0, 40),
)
def test_override_wins_until_released_or_expired(
    forced: RiskLevel, duration: int | None, steps: list[tuple[int, float]], release_at: int
) -> None:
    m = LevelMachine()
    ts, equity = DAY0, 100_000.0
    m.update(ts, equity)
    until = None if duration is None else ts + duration
    assert m.force(forced, until).level is forced
    released = False
    for i, (dt_ns, change) in enumerate(steps):
        if i == release_at:
            u = m.release()
            released = True
            assert u.level is m.auto and not u.overridden
        ts += dt_ns
        equity *= math.exp(change)
        u = m.update(ts, equity)
        active = not released and (until is None or ts < until)
        assert u.level is (forced if active else m.auto)
        assert u.overridden == active
