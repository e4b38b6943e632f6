"""EWMA correlation matrix of log returns across products (RiskMetrics style, zero mean).

Per timestamp t (the RiskActor: per grid step, :mod:`cryptoj.risk.sync`) the caller passes the
log returns of the products that have one at t.
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
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


#: Up to this many products in an update (or known, for the summary) the work is done on
#: scalars; above it, on whole numpy slices. Both do the same float operations in the same
#: order, so they give the same bits; the switch only avoids numpy's per-call overhead for the
#: handful of products a daemon usually follows.
SMALL = 8


class EwmaCorrelation:
    """EWMA correlations of log returns between products (see the module docstring).

    The moments are kept in square numpy arrays indexed by product (grown by doubling). An
    update touches only the rows and columns of the products in it: with few of them, element
    by element; with many, as one slice (the per-bar cost at 200 products falls from O(n²)
    Python dictionary operations to a few array operations). The correlations, their average
    and the mean per product are derived once per update (:meth:`_summary`), not per query.
    """

    def __init__(
        self, products: Iterable[str] = (), halflife: float = 60.0, *, min_periods: int = 10
    ) -> None:
        if halflife <= 0:
            raise ValueError(f"halflife must be > 0, was {halflife}")
        self.halflife = halflife
        self.alpha = float(1.0 - 0.5 ** (1.0 / halflife))
        self.min_periods = max(1, min_periods)
        self._index: dict[str, int] = {}
        self._co = np.zeros((0, 0))  # C_ij (symmetric)
        self._second = np.zeros((0, 0))  # S_ij: i's second moment over the timestamps with j
        self._count = np.zeros((0, 0), dtype=np.int64)  # n_ij
        self._summary_cache: tuple[float, dict[str, float]] | None = None
        self._rho_cache: FloatArray | None = None  # ρ, NaN where a pair lacks data
        self.updates = 0  # calls of update() that changed something (a cache key for callers)
        for p in products:
            self._add(p)

    @property
    def products(self) -> tuple[str, ...]:
        """Known products, in matrix order (construction order, then order of appearance)."""
        return tuple(self._index)

    def _add(self, product: str) -> int:
        i = self._index.get(product)
        if i is None:
            i = self._index[product] = len(self._index)
            if i >= len(self._co):
                self._grow(max(4, 2 * len(self._co)))
            self._summary_cache = self._rho_cache = None
        return i

    def _grow(self, size: int) -> None:
        n = len(self._co)
        co, second = np.zeros((size, size)), np.zeros((size, size))
        count = np.zeros((size, size), dtype=np.int64)
        co[:n, :n], second[:n, :n], count[:n, :n] = self._co, self._second, self._count
        self._co, self._second, self._count = co, second, count

    def update(self, returns: Mapping[str, float]) -> None:
        """Add the log returns of the products that closed at one timestamp."""
        clean = [(self._add(p), float(r)) for p, r in returns.items() if math.isfinite(r)]
        if not clean:
            return
        a, b = self.alpha, 1.0 - self.alpha
        co, second, count = self._co, self._second, self._count
        if len(clean) <= SMALL:
            for i, rp in clean:
                ar = a * rp
                for j, rq in clean:
                    co[i, j] = b * co.item(i, j) + ar * rq
                    second[i, j] = b * second.item(i, j) + ar * rp
                    count[i, j] = count.item(i, j) + 1
        else:
            idx = np.array([i for i, _ in clean])
            r = np.array([x for _, x in clean])
            ar_v = a * r
            block = np.ix_(idx, idx)
            co[block] = b * co[block] + np.outer(ar_v, r)
            second[block] = b * second[block] + (ar_v * r)[:, None]
            count[block] += 1
        self._summary_cache = self._rho_cache = None
        self.updates += 1

    def update_prices(self, closes: Mapping[str, float], previous: Mapping[str, float]) -> None:
        """Convenience: returns ``ln(close / previous)`` for products with both prices > 0."""
        rets = {
            p: math.log(c / previous[p])
            for p, c in closes.items()
            if c > 0 and previous.get(p, 0.0) > 0
        }
        self.update(rets)

    def correlation(self, a: str, b: str) -> float:
        """ρ between two products (1 for a product with itself, 0 without enough data)."""
        if a == b:
            return 1.0
        rho = self._rho(a, b)
        return 0.0 if rho is None else rho

    def _rho(self, a: str, b: str) -> float | None:
        """ρ_ab, or None while the pair lacks data (fewer co-observations, a flat price)."""
        i, j = self._index.get(a), self._index.get(b)
        if i is None or j is None or self._count.item(i, j) < self.min_periods:
            return None
        second = self._second
        denom = second.item(i, j) * second.item(j, i)
        if not denom > 0.0:
            return None
        rho = self._co.item(i, j) / math.sqrt(denom)
        return max(-1.0, min(1.0, rho)) if math.isfinite(rho) else None

    def _rho_matrix(self) -> FloatArray:
        """Every ρ_ij at once, NaN where :meth:`_rho` gives None (same operations, same bits);
        the diagonal as computed (callers skip it)."""
        if self._rho_cache is None:
            n = len(self._index)
            s = self._second[:n, :n]
            denom = s * s.T
            with np.errstate(divide="ignore", invalid="ignore"):
                raw = self._co[:n, :n] / np.sqrt(denom)
            ok = (self._count[:n, :n] >= self.min_periods) & (denom > 0.0) & np.isfinite(raw)
            self._rho_cache = np.where(ok, np.clip(raw, -1.0, 1.0), np.nan)
        return self._rho_cache

    def pairs(self, products: Sequence[str], digits: int = 6) -> tuple[tuple[str, str, float], ...]:
        """``(p, q, ρ rounded to digits)`` for every pair p before q in ``products`` (0 for a
        pair without enough data or a product not known)."""
        if len(products) <= SMALL:
            return tuple(
                (p, q, round(self.correlation(p, q), digits))
                for i, p in enumerate(products)
                for q in products[i + 1 :]
            )
        at = [k for k, p in enumerate(products) if p in self._index]
        idx = [self._index[products[k]] for k in at]
        sub = np.zeros((len(products), len(products)))
        sub[np.ix_(at, at)] = np.nan_to_num(self._rho_matrix()[np.ix_(idx, idx)], nan=0.0)
        rows = round_like_python(sub, digits).tolist()
        return tuple(
            (p, products[j], rows[i][j])
            for i, p in enumerate(products)
            for j in range(i + 1, len(products))
        )

    def matrix(self) -> FloatArray:
        """The correlation matrix in :attr:`products` order (1 on the diagonal)."""
        names = self.products
        return np.array([[self.correlation(p, q) for q in names] for p in names], dtype=float)

    def average_pairwise(self) -> float:
        """Mean ρ over pairs with enough data (0 when no pair has)."""
        return self._summary()[0]

    def of(self, product: str) -> float:
        """Mean ρ of ``product`` with the other products that have enough data (0 otherwise)."""
        return self._summary()[1].get(product, 0.0)

    def means(self) -> Mapping[str, float]:
        """:meth:`of` of every product that has one (the others: 0), for a caller asking
        about every product; not to be changed."""
        return self._summary()[1]

    def _summary(self) -> tuple[float, dict[str, float]]:
        """(average pairwise ρ, mean ρ per product), computed once per update. The sums run
        over Python lists in pair order (i < j, row by row), so the figures do not depend on
        which path computed the ρ."""
        if self._summary_cache is None and len(self._index) < 2:
            self._summary_cache = (0.0, {})  # no pair: nothing to average
        if self._summary_cache is None:
            names = self.products
            pairs: list[float] = []
            per: dict[str, list[float]] = {p: [] for p in names}
            if len(names) <= SMALL:
                for i, p in enumerate(names):
                    for q in names[i + 1 :]:
                        rho = self._rho(p, q)
                        if rho is not None:
                            pairs.append(rho)
                            per[p].append(rho)
                            per[q].append(rho)
            else:
                # ρ_ij for i < j, as the scalar loop takes them (C_ij and C_ji may differ in
                # the last bit); NaN (not enough data) dropped by v == v
                rows = self._rho_matrix().tolist()
                for i, p in enumerate(names):
                    pairs += [v for v in rows[i][i + 1 :] if v == v]
                    per[p] = [v for v in (rows[k][i] for k in range(i)) if v == v]
                    per[p] += [v for v in rows[i][i + 1 :] if v == v]
            avg = sum(pairs) / len(pairs) if pairs else 0.0
            self._summary_cache = (avg, {p: sum(v) / len(v) for p, v in per.items() if v})
        return self._summary_cache

    def volatility(self, product: str) -> float:
        """EWMA volatility per bar of ``product``'s returns, √S_pp (0 when unknown)."""
        i = self._index.get(product)
        return 0.0 if i is None else math.sqrt(max(self._second.item(i, i), 0.0))


def round_like_python(values: FloatArray, digits: int) -> FloatArray:
    """``round(v, digits)`` of every value, as Python's round gives it, for values of
    magnitude at most 1 (correlations).

    Python rounds the exact decimal value of ``v`` half to even; ``rint(v·10^d)/10^d`` does the
    same unless the product's own rounding moved it across a half (the nearest double to the
    rounded decimal is the correctly rounded quotient either way). Such a value is at least
    a few ulps of the product from the half; values closer than ``1e-6`` to one are rounded by
    Python's round itself.
    """
    scale = 10.0**digits
    scaled = values * scale
    out: FloatArray = np.rint(scaled) / scale
    near = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) < 1e-6
    for i, j in zip(*np.nonzero(near), strict=True):
        out[i, j] = round(float(values[i, j]), digits)
    return out
