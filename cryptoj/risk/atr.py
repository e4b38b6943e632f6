"""Average True Range (Wilder 1978), incremental over bars.

True range of bar t (with the previous close C_{t−1})::

    TR_t = max(H_t − L_t, |H_t − C_{t−1}|, |L_t − C_{t−1}|)

The first bar has no previous close, so its true range is just ``H_1 − L_1``. The ATR of
period n is the plain mean of the first n true ranges, then Wilder's smoothing (an EWMA with
α = 1/n)::

    ATR_n = (TR_1 + … + TR_n) / n
    ATR_t = ((n − 1)·ATR_{t−1} + TR_t) / n          for t > n

:meth:`Atr.update` returns ``None`` for the first n − 1 bars (warm-up).

Worked example (n = 3)::

    bar  H    L    C    TR                                  ATR
    1    10   8    9    10 − 8 = 2                          None
    2    11   9    10   max(2, |11 − 9|, |9 − 9|) = 2       None
    3    12   9    11   max(3, |12 − 10|, |9 − 10|) = 3     (2 + 2 + 3)/3 = 2.333…
    4    11   10   10.5 max(1, |11 − 11|, |10 − 11|) = 1    (2·2.333… + 1)/3 = 1.888…
"""

from __future__ import annotations

import math


def true_range(high: float, low: float, prev_close: float | None) -> float:
    """``max(H − L, |H − C_prev|, |L − C_prev|)``; ``H − L`` without a previous close."""
    hl = high - low
    if prev_close is None:
        return hl
    return max(hl, abs(high - prev_close), abs(low - prev_close))


class Atr:
    """Wilder's ATR of ``period`` bars, fed one bar at a time (see the module docstring)."""

    def __init__(self, period: int = 14) -> None:
        if period < 1:
            raise ValueError(f"period must be >= 1, was {period}")
        self.period = period
        self._prev_close: float | None = None
        self._warmup_sum = 0.0
        self._count = 0
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The current ATR, or ``None`` during warm-up."""
        return self._value

    @property
    def count(self) -> int:
        """Number of bars seen."""
        return self._count

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one bar and return the ATR (``None`` until ``period`` bars have been seen).

        Raises:
            ValueError: a non-finite price or ``high < low``.
        """
        if not (math.isfinite(high) and math.isfinite(low) and math.isfinite(close)):
            raise ValueError(f"non-finite bar: high={high} low={low} close={close}")
        if high < low:
            raise ValueError(f"high {high} < low {low}")
        tr = true_range(high, low, self._prev_close)
        self._prev_close = close
        self._count += 1
        n = self.period
        if self._value is None:
            self._warmup_sum += tr
            if self._count == n:
                self._value = self._warmup_sum / n
        else:
            self._value = ((n - 1) * self._value + tr) / n
        return self._value

    def normalised(self, close: float) -> float | None:
        """ATR as a fraction of ``close`` (ATR / C), e.g. for a volatility-scaled stop distance."""
        if self._value is None or close <= 0:
            return None
        return self._value / close
