"""EWMA correlation matrix of log returns across products (RiskMetrics style, zero mean).

Per timestamp t the caller passes the log returns of the products that closed a bar at t.
For every pair (i, j) that *both* have a return at t (and for i = j), with α = 1 − 2^(−1/halflife)::

    C_ij ← (1 − α)·C_ij + α·r_i·r_j            (co-moment)
    S_ij ← (1 − α)·S_ij + α·r_i²               (i's second moment over the same timestamps)
    n_ij ← n_ij + 1

    ρ_ij = C_ij / √(S_ij·S_ji)

Because C_ij, S_ij and S_ji are sums over the same timestamps with the same weights, the
Cauchy–Schwarz inequality keeps |ρ_ij| ≤ 1 (it is still clipped against rounding). Returns
are not demeaned: at bar horizons the mean is noise next to the volatility (RiskMetrics 1996).

No NaN ever leaks out: ρ_ij is reported as 0 while ``n_ij < min_periods`` or when a second
moment is 0 (a flat price), and the diagonal is 1. Non-finite returns are ignored. A product
not known at construction is added the first time it has a return; its correlations start at
0 and fill in as co-observations accumulate.

* :meth:`EwmaCorrelation.average_pairwise` = mean of ρ_ij over pairs i < j with enough data
  (0 when there is none): the "systemic" correlation.
* :meth:`EwmaCorrelation.of` = mean of ρ_pj over the other products j with enough data.

Worked example (halflife 1 → α = ½, min_periods 1): returns {A: 0.01, B: 0.02} then
{A: −0.01, B: −0.02}: C_AB = ½·(½·0.0002) + ½·0.0002 = 0.00015, S_AB = 0.000075,
S_BA = 0.0003 → ρ = 0.00015 / √(0.000075·0.0003) = 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class EwmaCorrelation:
    """EWMA correlations of log returns between products (see the module docstring)."""

    def __init__(
        self, products: Iterable[str] = (), halflife: float = 60.0, *, min_periods: int = 10
    ) -> None:
        if halflife <= 0:
            raise ValueError(f"halflife must be > 0, was {halflife}")
        self.halflife = halflife
        self.alpha = float(1.0 - 0.5 ** (1.0 / halflife))
        self.min_periods = max(1, min_periods)
        self._index: dict[str, int] = {}
        self._co = np.zeros((0, 0))
        self._second = np.zeros((0, 0))
        self._count = np.zeros((0, 0), dtype=np.int64)
        for p in products:
            self._add(p)

    @property
    def products(self) -> tuple[str, ...]:
        """Known products, in matrix order (construction order, then order of appearance)."""
        return tuple(self._index)

    def _add(self, product: str) -> int:
        if product in self._index:
            return self._index[product]
        self._index[product] = len(self._index)
        self._co = np.pad(self._co, ((0, 1), (0, 1)))
        self._second = np.pad(self._second, ((0, 1), (0, 1)))
        self._count = np.pad(self._count, ((0, 1), (0, 1)))
        return self._index[product]

    def update(self, returns: Mapping[str, float]) -> None:
        """Add the log returns of the products that closed at one timestamp."""
        clean = {p: float(r) for p, r in returns.items() if math.isfinite(r)}
        if not clean:
            return
        idx = np.array([self._add(p) for p in clean], dtype=np.intp)
        r = np.array(list(clean.values()))
        a = self.alpha
        block = np.ix_(idx, idx)
        self._co[block] = (1.0 - a) * self._co[block] + a * np.outer(r, r)
        self._second[block] = (1.0 - a) * self._second[block] + a * (r * r)[:, None]
        self._count[block] += 1

    def update_prices(self, closes: Mapping[str, float], previous: Mapping[str, float]) -> None:
        """Convenience: returns ``ln(close / previous)`` for products with both prices > 0."""
        rets = {
            p: math.log(c / previous[p])
            for p, c in closes.items()
            if c > 0 and previous.get(p, 0.0) > 0
        }
        self.update(rets)

    def matrix(self) -> FloatArray:
        """The correlation matrix in :attr:`products` order (a copy; 1 on the diagonal)."""
        n = len(self._index)
        if n == 0:
            return np.zeros((0, 0))
        denom = self._second * self._second.T
        ok = (self._count >= self.min_periods) & (denom > 0.0)
        rho = np.zeros((n, n))
        np.divide(self._co, np.sqrt(denom, where=ok, out=np.ones_like(denom)), out=rho, where=ok)
        rho = np.clip(np.nan_to_num(rho, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
        np.fill_diagonal(rho, 1.0)
        return rho

    def _valid(self) -> npt.NDArray[np.bool_]:
        denom = self._second * self._second.T
        valid: npt.NDArray[np.bool_] = (self._count >= self.min_periods) & (denom > 0.0)
        np.fill_diagonal(valid, False)
        return valid

    def correlation(self, a: str, b: str) -> float:
        """ρ between two products (1 for a product with itself, 0 without enough data)."""
        if a == b:
            return 1.0
        if a not in self._index or b not in self._index:
            return 0.0
        return float(self.matrix()[self._index[a], self._index[b]])

    def average_pairwise(self) -> float:
        """Mean ρ over pairs with enough data (0 when no pair has)."""
        valid = np.triu(self._valid(), k=1)
        if not valid.any():
            return 0.0
        return float(self.matrix()[valid].mean())

    def of(self, product: str) -> float:
        """Mean ρ of ``product`` with the other products that have enough data (0 otherwise)."""
        i = self._index.get(product)
        if i is None:
            return 0.0
        valid = self._valid()[i]
        if not valid.any():
            return 0.0
        return float(self.matrix()[i][valid].mean())

    def volatility(self, product: str) -> float:
        """EWMA volatility per bar of ``product``'s returns, √S_pp (0 when unknown)."""
        i = self._index.get(product)
        if i is None:
            return 0.0
        return math.sqrt(max(float(self._second[i, i]), 0.0))
