"""Volatility forecasting: HAR-RV (Corsi 2009) fit by ridge least squares, naive baselines, losses.

Realised variance of period t (a "day" is ``bars_per_period`` bars, e.g. 6 bars of 4 h)::

    RV_t = Σ_{bars b in period t} r_b²          r_b = ln(C_b / C_{b−1})

HAR-RV with lags (1, w, m) periods (default (1, 7, 30): day, week, month of a 24/7 market),
on x_t = ln RV_t (``log=True``, the default) or x_t = RV_t::

    x_{t+1} = β₀ + β_d·x_t + β_w·mean(x_{t−w+1..t}) + β_m·mean(x_{t−m+1..t}) + ε_{t+1}

The coefficients minimise a ridge criterion on standardised components (scale-free λ, the
intercept is not penalised). With centred design X_c, centred target y_c and G = X_cᵀX_c::

    β = (G + λ·diag(G))⁻¹ X_cᵀ y_c,       β₀ = ȳ − x̄ᵀβ

The forecast of RV_{t+1} is ``exp(ŷ + s²/2)`` in the log model (s² = residual variance, the
log-normal mean correction) and ``max(ŷ, floor)`` in the plain model. Zero RV periods (a flat
market) are floored at ``rel_floor × mean(RV)`` of the training data before the logarithm.

Naive baselines (one-step forecasts of RV_{t+1} known at the end of period t):

* previous period: ``RV_t``;
* EWMA (RiskMetrics): ``σ²_{t+1} = λ·σ²_t + (1 − λ)·RV_t`` with λ = 0.94, started at RV_0.

Losses (Patton 2011: both are robust to noise in the realised proxy)::

    QLIKE(f, RV) = RV/f − ln(RV/f) − 1     (≥ 0, 0 iff f = RV; both floored at ``eps``)
    MSE(f, RV)   = (f − RV)²

Worked example: f = 2e-4, RV = 1e-4 → QLIKE = 0.5 − ln 0.5 − 1 = 0.193; f = 0.5e-4 →
QLIKE = 2 − ln 2 − 1 = 0.307: under-forecasting is penalised more than over-forecasting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = Sequence[float] | FloatArray
RISKMETRICS_LAMBDA = 0.94


def realised_variance(returns: ArrayLike, bars_per_period: int) -> FloatArray:
    """Sum of squared returns over consecutive blocks of ``bars_per_period`` (the tail drops)."""
    if bars_per_period < 1:
        raise ValueError(f"bars_per_period must be >= 1, was {bars_per_period}")
    r = np.asarray(returns, dtype=np.float64)
    n = len(r) // bars_per_period
    return np.asarray((r[: n * bars_per_period] ** 2).reshape(n, bars_per_period).sum(axis=1))


def _trailing_means(x: FloatArray, lag: int) -> FloatArray:
    """m[t] = mean(x[t−lag+1..t]) for t ≥ lag − 1 (NaN before)."""
    out = np.full(len(x), np.nan)
    if len(x) >= lag:
        c = np.concatenate(([0.0], np.cumsum(x)))
        out[lag - 1 :] = (c[lag:] - c[:-lag]) / lag
    return out


def har_components(x: FloatArray, lags: Sequence[int]) -> FloatArray:
    """Matrix (n × k) of trailing means of ``x`` over each lag (NaN rows during warm-up)."""
    return np.column_stack([_trailing_means(x, lag) for lag in lags])


def ridge_fit(x: FloatArray, y: FloatArray, ridge: float) -> tuple[float, FloatArray]:
    """Intercept and slopes of the standardised ridge regression in the module docstring."""
    x_mean, y_mean = x.mean(axis=0), float(y.mean())
    xc, yc = x - x_mean, y - y_mean
    g = xc.T @ xc
    a = g + ridge * np.diag(np.diag(g)) + 1e-12 * np.eye(len(g)) * max(1.0, float(np.trace(g)))
    beta = np.linalg.solve(a, xc.T @ yc)
    return y_mean - float(x_mean @ beta), np.asarray(beta, dtype=np.float64)


class HarForecaster:
    """HAR-RV forecaster (see the module docstring).

    Usage::

        har = HarForecaster(bars_per_period=6)     # 4 h bars, "day" = 6 bars
        har.fit(log_returns)                       # or har.fit_rv(daily_rv)
        next_day_variance = har.forecast_next()    # forecast of RV for the next period
        har.update(rv_of_the_period_that_just_ended)  # roll forward without refitting
    """

    def __init__(
        self,
        lags: Sequence[int] = (1, 7, 30),
        *,
        log: bool = True,
        ridge: float = 1e-3,
        bars_per_period: int = 6,
        rel_floor: float = 1e-3,
    ) -> None:
        if not lags or min(lags) < 1 or list(lags) != sorted(set(lags)):
            raise ValueError(f"lags must be distinct, increasing and >= 1, were {lags}")
        if ridge < 0 or rel_floor <= 0:
            raise ValueError("ridge must be >= 0 and rel_floor > 0")
        self.lags = tuple(lags)
        self.log = log
        self.ridge = ridge
        self.bars_per_period = bars_per_period
        self.rel_floor = rel_floor
        self.intercept = 0.0
        self.coef: FloatArray = np.zeros(len(self.lags))
        self.resid_var = 0.0
        self.floor = 0.0
        self.n_obs = 0
        self._history: list[float] = []

    @property
    def min_periods(self) -> int:
        """Fewest RV periods :meth:`fit_rv` accepts (the longest lag plus 2·(k + 1) equations)."""
        return max(self.lags) + 2 * (len(self.lags) + 1)

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` or :meth:`fit_rv` has run."""
        return self.n_obs > 0

    def _transform(self, rv: FloatArray) -> FloatArray:
        clipped = np.maximum(rv, self.floor)
        return np.log(clipped) if self.log else clipped

    def fit(self, returns: ArrayLike) -> HarForecaster:
        """Fit on bar log returns (grouped into periods of ``bars_per_period``)."""
        return self.fit_rv(realised_variance(returns, self.bars_per_period))

    def fit_rv(self, rv: ArrayLike) -> HarForecaster:
        """Fit on a series of per-period realised variances (oldest first).

        Raises:
            ValueError: fewer than :attr:`min_periods` periods, or negative / non-finite RV.
        """
        series = np.asarray(rv, dtype=np.float64)
        if len(series) < self.min_periods:
            raise ValueError(f"need >= {self.min_periods} periods of RV, got {len(series)}")
        if not np.all(np.isfinite(series)) or np.any(series < 0):
            raise ValueError("realised variances must be finite and >= 0")
        mean = float(series.mean())
        self.floor = max(self.rel_floor * mean, 1e-300)
        x = self._transform(series)
        comps = har_components(x, self.lags)
        start = max(self.lags) - 1
        design, target = comps[start:-1], x[start + 1 :]
        self.intercept, self.coef = ridge_fit(design, target, self.ridge)
        resid = target - (self.intercept + design @ self.coef)
        self.resid_var = float(resid.var())
        self.n_obs = len(target)
        self._history = [float(v) for v in series[-max(self.lags) :]]
        return self

    def update(self, rv: float) -> None:
        """Append the RV of the period that just ended (the coefficients stay as fitted)."""
        if not (math.isfinite(rv) and rv >= 0):
            raise ValueError(f"realised variance must be finite and >= 0, was {rv}")
        self._history.append(float(rv))
        del self._history[: -max(self.lags)]

    def forecast_from(self, rv_history: ArrayLike) -> float:
        """Forecast RV of the period after ``rv_history`` (needs ≥ the longest lag of history)."""
        if not self.fitted:
            raise RuntimeError("fit the model before forecasting")
        hist = np.asarray(rv_history, dtype=np.float64)[-max(self.lags) :]
        if len(hist) < max(self.lags):
            raise ValueError(f"need >= {max(self.lags)} periods of history, got {len(hist)}")
        x = self._transform(hist)
        feats = np.array([x[-lag:].mean() for lag in self.lags])
        y_hat = self.intercept + float(feats @ self.coef)
        if self.log:
            return math.exp(min(y_hat + 0.5 * self.resid_var, 700.0))
        return max(y_hat, self.floor)

    def forecast_next(self) -> float:
        """Forecast RV of the next period from the fitted (and updated) history."""
        return self.forecast_from(self._history)


def previous_forecasts(rv: ArrayLike) -> FloatArray:
    """f[t] = forecast of RV[t+1] by the previous-period rule = RV[t]."""
    return np.asarray(rv, dtype=np.float64).copy()


def ewma_forecasts(rv: ArrayLike, lam: float = RISKMETRICS_LAMBDA) -> FloatArray:
    """f[t] = EWMA forecast of RV[t+1] after seeing RV[0..t]: f[t] = λ·f[t−1] + (1 − λ)·RV[t].

    f[0] = RV[0] (start value). λ ∈ [0, 1).
    """
    if not 0.0 <= lam < 1.0:
        raise ValueError(f"lam must be in [0, 1), was {lam}")
    x = np.asarray(rv, dtype=np.float64)
    out = np.empty_like(x)
    s = float(x[0]) if len(x) else 0.0
    for t, v in enumerate(x):
        if t:
            s = lam * s + (1.0 - lam) * float(v)
        out[t] = s
    return out


class EwmaVariance:
    """Incremental EWMA variance forecast (the RiskMetrics baseline)."""

    def __init__(self, lam: float = RISKMETRICS_LAMBDA) -> None:
        if not 0.0 <= lam < 1.0:
            raise ValueError(f"lam must be in [0, 1), was {lam}")
        self.lam = lam
        self.value: float | None = None

    def update(self, rv: float) -> float:
        """Add one period's RV; return the forecast for the next period."""
        self.value = rv if self.value is None else self.lam * self.value + (1 - self.lam) * rv
        return self.value


def qlike(forecast: ArrayLike | float, realised: ArrayLike | float, eps: float = 1e-12) -> float:
    """Mean QLIKE loss ``RV/f − ln(RV/f) − 1``, both floored at ``eps`` (guards zeros)."""
    f = np.maximum(np.asarray(forecast, dtype=np.float64), eps)
    r = np.maximum(np.asarray(realised, dtype=np.float64), eps)
    ratio = r / f
    return float(np.mean(ratio - np.log(ratio) - 1.0))


def mse(forecast: ArrayLike | float, realised: ArrayLike | float) -> float:
    """Mean squared error ``(f − RV)²``."""
    f = np.asarray(forecast, dtype=np.float64)
    r = np.asarray(realised, dtype=np.float64)
    return float(np.mean((f - r) ** 2))
