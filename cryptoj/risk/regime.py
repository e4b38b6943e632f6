"""Market regime detection (CALM / TRENDING / VOLATILE), incremental over closes.

For each new close C_t of one product:

1. Log return ``r_t = ln(C_t / C_{t−1})``.
2. Short-run realised volatility, an exponentially weighted, *demeaned* standard deviation
   with smoothing α = 2 / (vol_span + 1) (so a steady drift is not mistaken for volatility)::

       δ_t = r_t − m_{t−1}
       m_t = m_{t−1} + α·δ_t
       v_t = (1 − α)·(v_{t−1} + α·δ_t²)             σ_t = √v_t

3. Volatility percentile: the mid-rank of σ_t among the previous ``window`` values of σ
   (values below count 1, ties ½), so ``p_t ∈ [0, 1]``; 0.9 means σ_t is higher than 90 % of
   the recent history.
4. Trend strength: Kaufman's efficiency ratio over ``trend_lookback`` returns, on log prices::

       ER_t = |ln C_t − ln C_{t−k}| / Σ_{i=t−k+1..t} |r_i|   ∈ [0, 1]

   1 is a straight line, a random walk gives about √(2/(π·k)) (≈ 0.18 for k = 20).

Classification (first rule that matches; volatility first because it is the riskier state):

* ``VOLATILE``  if ``p_t ≥ vol_percentile_high``;
* ``TRENDING``  if ``ER_t ≥ trend_threshold``;
* ``CALM``      otherwise.

:meth:`RegimeDetector.update` returns ``None`` during warm-up: until ``min_history`` values of
σ are in the percentile history (default: a quarter of ``window``, at least ``vol_span``) and
``trend_lookback`` returns are known.

Worked example (k = 4): closes 100, 101, 102, 101, 103 → |r| ≈ 0.00995, 0.00985, 0.00985,
0.01961; ER = ln(103/100) / Σ|r| = 0.02956 / 0.04926 ≈ 0.60 → TRENDING with a threshold of
0.5 unless the volatility percentile is at or above ``vol_percentile_high``.

The detector is per product; keep one per product.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections import deque


class Regime(enum.StrEnum):
    """Market regime of one product."""

    CALM = "CALM"
    TRENDING = "TRENDING"
    VOLATILE = "VOLATILE"


class RegimeDetector:
    """Classifies each new close by volatility percentile and trend strength (module docstring).

    Args:
        window: length of the volatility history the percentile is taken in (bars).
        vol_percentile_high: percentile (0–1) at or above which the regime is VOLATILE.
        trend_threshold: efficiency ratio (0–1) at or above which the regime is TRENDING.
        vol_span: EWMA span of the short-run volatility (bars).
        trend_lookback: number of returns of the efficiency ratio.
        min_history: σ values needed before classifying (default ``max(vol_span, window // 4)``).
    """

    def __init__(
        self,
        window: int = 500,
        vol_percentile_high: float = 0.8,
        trend_threshold: float = 0.5,
        *,
        vol_span: int = 20,
        trend_lookback: int = 20,
        min_history: int | None = None,
    ) -> None:
        if window < 2 or vol_span < 1 or trend_lookback < 1:
            raise ValueError("window must be >= 2, vol_span and trend_lookback >= 1")
        if not 0.0 < vol_percentile_high <= 1.0:
            raise ValueError(f"vol_percentile_high must be in (0, 1], was {vol_percentile_high}")
        if not 0.0 < trend_threshold <= 1.0:
            raise ValueError(f"trend_threshold must be in (0, 1], was {trend_threshold}")
        self.window = window
        self.vol_percentile_high = vol_percentile_high
        self.trend_threshold = trend_threshold
        self.vol_span = vol_span
        self.trend_lookback = trend_lookback
        self.min_history = (
            max(vol_span, window // 4) if min_history is None else max(1, min_history)
        )
        self._alpha = 2.0 / (vol_span + 1.0)
        self._last_close: float | None = None
        self._mean = 0.0
        self._var: float | None = None
        self._n_returns = 0
        self._history: deque[float] = deque()  # σ in arrival order
        self._sorted: list[float] = []  # the same values, sorted
        self._log_closes: deque[float] = deque(maxlen=trend_lookback + 1)
        self._abs_returns: deque[float] = deque(maxlen=trend_lookback)
        self._abs_sum = 0.0
        self.vol: float | None = None
        self.vol_percentile: float | None = None
        self.trend_strength: float | None = None
        self.regime: Regime | None = None

    def update(self, close: float) -> Regime | None:
        """Add one close; return the regime, or ``None`` during warm-up.

        Non-positive or non-finite closes are ignored (the previous regime is returned).
        """
        if not (math.isfinite(close) and close > 0):
            return self.regime
        log_c = math.log(close)
        prev = self._last_close
        self._last_close = close
        log_closes = self._log_closes
        if prev is None:
            log_closes.append(log_c)
            return self.regime
        r = log_c - log_closes[-1]  # the previous close's log, as math.log(prev) gives it
        log_closes.append(log_c)
        self._update_trend(abs(r))
        sigma = self._update_vol(r)
        self.vol = sigma
        at = None  # where sigma goes in the sorted history (found by the percentile)
        if len(self._sorted) >= self.min_history:
            self.vol_percentile, at = self._percentile(sigma)
        self._push_history(sigma, at)
        if self.vol_percentile is None or self.trend_strength is None:
            return None
        if self.vol_percentile >= self.vol_percentile_high:
            self.regime = Regime.VOLATILE
        elif self.trend_strength >= self.trend_threshold:
            self.regime = Regime.TRENDING
        else:
            self.regime = Regime.CALM
        return self.regime

    def _update_vol(self, r: float) -> float:
        a = self._alpha
        self._n_returns += 1
        if self._var is None:
            self._mean, self._var = r, r * r  # first return: no mean to deviate from yet
        else:
            delta = r - self._mean
            self._mean += a * delta
            self._var = (1.0 - a) * (self._var + a * delta * delta)
        return math.sqrt(max(self._var, 0.0))

    def _update_trend(self, abs_r: float) -> None:
        if len(self._abs_returns) == self._abs_returns.maxlen:
            self._abs_sum -= self._abs_returns[0]
        self._abs_returns.append(abs_r)
        self._abs_sum += abs_r
        if len(self._abs_returns) < self.trend_lookback:
            return
        # Recompute the denominator now and then to stop float drift of the running sum.
        if self._n_returns % 1024 == 0:
            self._abs_sum = math.fsum(self._abs_returns)
        net = abs(self._log_closes[-1] - self._log_closes[0])
        self.trend_strength = min(1.0, net / self._abs_sum) if self._abs_sum > 0 else 0.0

    def _percentile(self, sigma: float) -> tuple[float, int]:
        """(sigma's percentile in the history, the index after its equals: where
        :func:`bisect.insort` puts it)."""
        lo = bisect.bisect_left(self._sorted, sigma)
        hi = bisect.bisect_right(self._sorted, sigma)
        return (lo + 0.5 * (hi - lo)) / len(self._sorted), hi

    def _push_history(self, sigma: float, at: int | None = None) -> None:
        self._history.append(sigma)
        if at is None:
            bisect.insort(self._sorted, sigma)
        else:
            self._sorted.insert(at, sigma)
        if len(self._history) > self.window:
            old = self._history.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
