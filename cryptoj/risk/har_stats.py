"""HarStats: the caps' volatility from the HAR-RV forecast (``risk.volatility_model: har``).

Per product, the bar log returns are summed into realised variances of ``risk.har_period_s``
(``RV_t = Σ r²`` over the period's bars; a day by default). Once a product has
:attr:`~cryptoj.risk.volatility.HarForecaster.min_periods` periods, a
:class:`~cryptoj.risk.volatility.HarForecaster` (log HAR, lags 1, 7 and 30 periods) is refitted
on all of them at the end of every period (an expanding window) and its forecast of the next
period's RV, divided by the bars in a period, is the product's per-bar variance: ``vol()`` and
so ``vol_excess()``, the median reference and the caps use it. Before that (and for a product
without enough history) the EWMA of :class:`~cryptoj.risk.limits.EwmaStats` stands in, as it
always does with ``volatility_model: ewma``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cryptoj.risk.limits import EwmaStats
from cryptoj.risk.volatility import HarForecaster


@dataclass
class HarStats(EwmaStats):
    """:class:`EwmaStats` whose ``vol`` is the HAR-RV forecast once a product has one."""

    period_s: float = 86_400.0
    period_bars: int = 0  # bars per RV period, from the first bar's interval
    rv: dict[str, list[float]] = field(default_factory=dict)  # completed periods
    forecast_var: dict[str, float] = field(default_factory=dict)  # per bar
    _acc: dict[str, tuple[float, int]] = field(default_factory=dict)
    _har: dict[str, HarForecaster] = field(default_factory=dict)

    def set_interval(self, interval_s: int) -> None:
        """The bars' length: fixes the bars per RV period (at least 2) on the first call."""
        if self.period_bars == 0 and interval_s > 0:
            self.period_bars = max(2, round(self.period_s / interval_s))

    def on_close(self, product: str, close: float) -> None:
        """Add a bar close: the EWMA as before, and the current period's RV."""
        prev = self.last.get(product)
        super().on_close(product, close)
        if prev is None or prev <= 0 or close <= 0:
            return
        r = math.log(close / prev)
        total, n = self._acc.get(product, (0.0, 0))
        total, n = total + r * r, n + 1
        if n < max(2, self.period_bars):
            self._acc[product] = (total, n)
            return
        self._acc[product] = (0.0, 0)
        series = self.rv.setdefault(product, [])
        series.append(total)
        har = self._har.setdefault(product, HarForecaster(bars_per_period=max(2, self.period_bars)))
        if len(series) >= har.min_periods:
            har.fit_rv(series)
            self.forecast_var[product] = har.forecast_next() / max(2, self.period_bars)
            self._median = None

    def vol(self, product: str) -> float:
        """The HAR forecast's volatility per bar, else the EWMA's."""
        var = self.forecast_var.get(product)
        return math.sqrt(var) if var is not None else super().vol(product)

    def _median_vol(self) -> float:
        if self._median is None:
            vols = sorted(self.vol(p) for p in self.var)
            mid = len(vols) // 2
            self._median = vols[mid] if len(vols) % 2 else (vols[mid - 1] + vols[mid]) / 2
        return self._median
