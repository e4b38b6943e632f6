"""Performance and overfitting measures of a sweep: pure functions of equity and return series.

* :func:`sample_equity` turns a replay's journalled equity rows into one value per period;
* :func:`sharpe`, :func:`cagr`, :func:`max_drawdown`, :func:`calmar` score one such series;
* :func:`probabilistic_sharpe` and :func:`deflated_sharpe` ask whether the best Sharpe ratio of
  many trials is more than the luck of having tried many (Bailey and López de Prado, 2014);
* :func:`pbo_cscv` estimates the probability of backtest overfitting by combinatorially
  symmetric cross-validation (Bailey, Borwein, López de Prado and Zhu, 2017).

Sharpe ratios here are per period unless a function says it annualises; a year is 365 days
(crypto trades every day).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

YEAR_S = 365 * 86400
EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sample_equity(curve: Sequence[tuple[int, float]], period_ns: int) -> list[float]:
    """One equity value per period: the first row's value, then the last value at or before the
    end of each period (``ts // period_ns`` buckets) up to the last row's; a period without a row
    repeats the previous value."""
    if period_ns <= 0:
        raise ValueError(f"period_ns: expected > 0, got {period_ns}")
    if not curve:
        return []
    out = [float(curve[0][1])]
    bucket = curve[0][0] // period_ns
    last = float(curve[0][1])
    for ts, value in curve[1:]:
        b = ts // period_ns
        while bucket < b:
            out.append(last)
            bucket += 1
        last = float(value)
    out.append(last)
    return out


def simple_returns(values: Sequence[float]) -> list[float]:
    """Period-on-period returns of a positive series (one fewer than its values)."""
    return [b / a - 1.0 if a > 0 else 0.0 for a, b in itertools.pairwise(values)]


def sharpe(returns: Sequence[float] | np.ndarray, periods_per_year: float = 1.0) -> float:
    """Mean over sample standard deviation of ``returns``, × sqrt(periods_per_year);
    0 when there are fewer than two returns or they do not vary."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    if sd <= 1e-15:
        return 0.0
    return float(r.mean()) / sd * math.sqrt(periods_per_year)


def max_drawdown(values: Sequence[float]) -> float:
    """Largest fall from a running peak, as a fraction of that peak."""
    peak, worst = 0.0, 0.0
    for v in values:
        peak = max(peak, v)
        if peak > 0:
            worst = max(worst, (peak - v) / peak)
    return worst


def cagr(values: Sequence[float], years: float) -> float:
    """Compound annual growth rate from the first to the last value over ``years``."""
    if len(values) < 2 or years <= 0 or values[0] <= 0 or values[-1] <= 0:
        return 0.0
    return float((values[-1] / values[0]) ** (1.0 / years) - 1.0)


def calmar(values: Sequence[float], years: float) -> float:
    """CAGR over maximum drawdown. Without a drawdown: +inf if the series grew, else 0."""
    growth = cagr(values, years)
    dd = max_drawdown(values)
    if dd <= 1e-12:
        return math.inf if growth > 0 else 0.0
    return growth / dd


def moments(returns: Sequence[float]) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of ``returns`` (0 and 3 for a normal sample;
    0 and 3 also when the sample is too small or constant)."""
    r = np.asarray(returns, dtype=float)
    if r.size < 3:
        return 0.0, 3.0
    d = r - r.mean()
    m2 = float((d**2).mean())
    if m2 <= 1e-30:
        return 0.0, 3.0
    return float((d**3).mean()) / m2**1.5, float((d**4).mean()) / m2**2


def probabilistic_sharpe(
    sr: float, n_obs: int, skew: float = 0.0, kurt: float = 3.0, benchmark: float = 0.0
) -> float:
    """Probability that the true per-period Sharpe ratio exceeds ``benchmark``, given the
    observed per-period ``sr`` over ``n_obs`` returns with that skewness and kurtosis."""
    if n_obs < 2:
        return 0.5
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if var <= 0:
        return 1.0 if sr > benchmark else 0.0
    return _N.cdf((sr - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected largest of ``n_trials`` Sharpe ratios whose true value is 0 and whose spread
    across trials has variance ``sr_variance`` (the false-strategy benchmark)."""
    if n_trials < 2 or sr_variance <= 0:
        return 0.0
    z = (1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n_trials) + EULER_GAMMA * _N.inv_cdf(
        1 - 1 / (n_trials * math.e)
    )
    return math.sqrt(sr_variance) * z


def deflated_sharpe(best_returns: Sequence[float], trial_sharpes: Sequence[float]) -> float:
    """Deflated Sharpe ratio of the selected trial: the probabilistic Sharpe ratio of its
    per-period returns against :func:`expected_max_sharpe` of all ``trial_sharpes`` (the
    per-period Sharpe ratios of every trial tried, the selected one included)."""
    sr = sharpe(best_returns)
    skew, kurt = moments(best_returns)
    n = len(trial_sharpes)
    var = float(np.var(trial_sharpes, ddof=1)) if n > 1 else 0.0
    return probabilistic_sharpe(sr, len(best_returns), skew, kurt, expected_max_sharpe(n, var))


def pbo_cscv(
    returns: np.ndarray,
    blocks: int = 8,
    score: Callable[[np.ndarray], float] | None = None,
) -> float:
    """Probability of backtest overfitting of a (periods × strategies) return matrix.

    The rows are cut into ``blocks`` equal blocks (trailing rows dropped). For every way of
    choosing half of the blocks as in-sample (the rest out-of-sample), the strategy with the
    best in-sample score is ranked among all strategies out-of-sample; the PBO is the share of
    choices in which it ranks at or below the out-of-sample median (logit of its relative rank
    ≤ 0). ``score`` maps a 1-D return array to a figure (default: :func:`sharpe`).
    """
    mat = np.asarray(returns, dtype=float)
    if mat.ndim != 2 or mat.shape[1] < 2:
        raise ValueError("returns: expected a (periods × strategies) matrix of ≥ 2 strategies")
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks: expected an even number ≥ 2, got {blocks}")
    size = mat.shape[0] // blocks
    if size < 2:
        raise ValueError(f"returns: {mat.shape[0]} periods are too few for {blocks} blocks")
    fn = score or sharpe
    parts = [mat[i * size : (i + 1) * size] for i in range(blocks)]
    n = mat.shape[1]
    below = total = 0
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        ins = np.vstack([parts[i] for i in chosen])
        outs = np.vstack([parts[i] for i in range(blocks) if i not in chosen])
        is_scores = [fn(ins[:, j]) for j in range(n)]
        oos = np.array([fn(outs[:, j]) for j in range(n)])
        best = int(np.argmax(is_scores))
        # relative rank in (0, 1): ties count half
        rank = float((oos < oos[best]).sum()) + 0.5 * float((oos == oos[best]).sum() - 1) + 1.0
        omega = rank / (n + 1)
        total += 1
        if math.log(omega / (1 - omega)) <= 0:
            below += 1
    return below / total


def annualisation(period_s: float) -> float:
    """Periods per 365-day year."""
    return YEAR_S / period_s


__all__ = [
    "annualisation",
    "cagr",
    "calmar",
    "deflated_sharpe",
    "expected_max_sharpe",
    "max_drawdown",
    "moments",
    "pbo_cscv",
    "probabilistic_sharpe",
    "sample_equity",
    "sharpe",
    "simple_returns",
]
