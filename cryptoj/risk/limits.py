"""Risk limits and the graduated risk level. Pure functions and small state holders.

Dynamic position cap for product p (fractions of equity)::

    cap_p = position_size_limit × max(0, 1 − volatility_weight·v_p − correlation_weight·c_p)

where ``v_p = clip(σ_p / σ_ref − 1, 0, 1)`` is how far p's EWMA volatility σ_p exceeds the
reference σ_ref (the median of all products' volatilities, or p's own long-run EWMA when it is
the only product), and ``c_p = max(0, ρ̄_p)`` is p's average EWMA correlation with the other
products. A cap below ``min_position_size`` becomes 0 (the position is not opened).

Worked example: limit 0.10, σ_p = 1.5·σ_ref → v_p = 0.5; ρ̄_p = 0.8 → c_p = 0.8;
cap = 0.10 × (1 − 0.4·0.5 − 0.3·0.8) = 0.10 × 0.56 = 0.056.

The graduated risk level lives in :mod:`cryptoj.risk.levels`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

NS_PER_DAY = 86_400_000_000_000


def dynamic_cap(
    limit: float,
    vol_excess: float,
    correlation: float,
    vol_weight: float,
    corr_weight: float,
    min_position_size: float,
) -> float:
    """The formula in the module docstring."""
    v = min(1.0, max(0.0, vol_excess))
    c = max(0.0, correlation)
    cap = limit * max(0.0, 1.0 - vol_weight * v - corr_weight * c)
    return cap if cap >= min_position_size else 0.0


@dataclass
class EwmaStats:
    """EWMA volatility of log returns per product (correlation: :mod:`cryptoj.risk.correlation`).

    ``var`` uses the configured half-life; ``long_var`` one ten times longer, the reference for a
    product that has no peers.
    """

    halflife: int
    last: dict[str, float] = field(default_factory=dict)
    var: dict[str, float] = field(default_factory=dict)
    long_var: dict[str, float] = field(default_factory=dict)
    #: The median volatility, computed once after each change (not per product asked about).
    _median: float | None = field(default=None, init=False, repr=False)
    #: √var of every product, kept sorted as closes arrive (the median without a sort per bar).
    _sorted: list[float] = field(default_factory=list, init=False, repr=False)

    @property
    def alpha(self) -> float:
        """Weight of the newest observation."""
        return float(1.0 - 0.5 ** (1.0 / self.halflife))

    def on_close(self, product: str, close: float) -> None:
        """Add a bar close."""
        prev = self.last.get(product)
        self.last[product] = close
        if prev is None or prev <= 0 or close <= 0:
            return
        r = math.log(close / prev)
        a = self.alpha
        self._median = None
        old = self.var.get(product)
        if old is not None:
            del self._sorted[bisect.bisect_left(self._sorted, math.sqrt(old))]
        self.var[product] = (1 - a) * self.var.get(product, r * r) + a * r * r
        bisect.insort(self._sorted, math.sqrt(self.var[product]))
        self.long_var[product] = (1 - a / 10) * self.long_var.get(product, r * r) + a / 10 * r * r

    def vol(self, product: str) -> float:
        """Current EWMA volatility per bar."""
        return math.sqrt(self.var.get(product, 0.0))

    def vol_excess(self, product: str) -> float:
        """σ_p / σ_ref − 1 (see the module docstring)."""
        var = self.var
        vol = self.vol(product) if var else 0.0  # (a subclass may forecast it: HarStats)
        if vol == 0:
            return 0.0
        # one product: its own long-run volatility; several: the median
        ref = math.sqrt(self.long_var.get(product, 0.0)) if len(var) == 1 else self._median_vol()
        return vol / ref - 1.0 if ref > 0 else 0.0

    def reference_vol(self) -> tuple[int, float]:
        """(products with a volatility, their median volatility or 0 with fewer than two): what
        every product's :meth:`vol_excess` shares besides its own volatility."""
        return len(self.var), self._median_vol() if len(self.var) > 1 else 0.0

    def _median_vol(self) -> float:
        if self._median is None:
            vols = self._sorted
            mid = len(vols) // 2
            self._median = vols[mid] if len(vols) % 2 else (vols[mid - 1] + vols[mid]) / 2
        return self._median
