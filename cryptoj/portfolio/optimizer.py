"""Target weights from the strategy's signals and the current risk snapshot. Pure (numpy).

Inputs per product ``p``: the signal ``s_p`` (the strategy's :class:`TargetWeight`, a fraction
of equity in [0, 1]; 0 means flat), the volatility ``σ_p`` and the pairwise correlations
``ρ_pq`` of the :class:`~cryptoj.models.risk.RiskParameters` snapshot, the snapshot's cap
``cap_p``, a size multiplier ``m`` (the risk level's and the emergency programme's) and a
per-product scale ``k_p`` (``portfolio.volatile_scale`` for a product in the VOLATILE regime,
else 1). Portfolio-wide: ``min_position_size`` and the cash buffer ``b``.

1. **Budgets.** ``s'_p = s_p·m·k_p``; the active set ``A`` holds the products with
   ``s'_p > 10⁻¹²`` (less counts as no signal) and ``cap_p > 0``. The gross budget is
   ``G = min(Σ_A s'_p, 1 − b)``: the strategy's total appetite, never more than the equity
   outside the cash buffer.
2. **Proportions** ``u_p`` (``Σ_A u_p = 1``), by ``method``:

   * ``risk_parity`` (default): equal risk contribution per unit of signal. With the covariance
     ``Σ_pq = σ_p·σ_q·ρ_pq`` over ``A`` and risk budgets ``β_p = s'_p / Σ_A s'``, ``x > 0``
     solves ``x_p·(Σx)_p = β_p`` (each product's share of the portfolio variance equals its
     budget) and ``u = x / Σx``. Solved by cyclical coordinate descent on the convex problem
     ``min ½xᵀΣx − Σ β_p ln x_p``, whose coordinate minimum is
     ``x_p = (−c_p + √(c_p² + 4·Σ_pp·β_p)) / (2·Σ_pp)`` with ``c_p = Σ_{q≠p} Σ_pq·x_q``.
     Without correlation (``ρ = 0``) this is ``x_p = √β_p / σ_p``; for equal budgets it is
     inverse-volatility weighting whatever the correlation of two products, and with three or
     more products the more correlated ones get less.
   * ``inverse_vol``: ``u_p ∝ s'_p / σ_p`` (correlation ignored).
   * ``signal``: ``u_p ∝ s'_p`` (the strategy's weights, only capped and buffered).

   A product without a volatility takes the median of the others'; when no active product has
   one (no risk view yet) every method falls back to ``signal``. The correlation matrix is
   repaired to the nearest valid one (eigenvalues floored at 1e-6, unit diagonal) before use.
3. **Caps** (water-filling): ``w_p = min(cap_p, λ·u_p)`` with ``λ`` chosen so that
   ``Σ w = G``, or every product at its cap when even that is less than ``G``: what a capped
   product cannot take goes to the others in proportion to ``u``, and what nobody can take
   stays in cash. With ``signal`` nothing is redistributed: ``w_p = min(cap_p, G·u_p)``.
4. **Minimum size.** A product whose weight comes out below ``min_position_size`` leaves ``A``
   and steps 1–3 run again without it (its budget leaves with it, so the others do not grow
   beyond their own budgets on its account).

Guarantees (property-tested): ``0 ≤ w_p ≤ cap_p``; ``w_p = 0`` or ``w_p ≥ min_position_size``;
``Σ w ≤ 1 − b``; ``Σ w ≤ Σ s'``; products without a signal get 0.

Worked example (``risk_parity``, ``m = 1``, buffer 0.05): BTC σ 0.02, ETH σ 0.03, ρ 0.8,
signals 0.06 each → ``G = min(0.12, 0.95) = 0.12``; equal budgets of two products →
inverse volatility: ``u = (1/0.02, 1/0.03) / (50 + 33.3) = (0.6, 0.4)`` → ``w = (0.072, 0.048)``.
With caps of 0.065 each, BTC is capped at 0.065 and its 0.007 goes to ETH: ``w = (0.065,
0.055)``. Add SOL (σ 0.03, ρ 0.9 with ETH, 0.3 with BTC, signal 0.06): ``G = 0.18`` and risk
parity gives ``u ≈ (0.458, 0.244, 0.297)``, so with caps of 0.10 ``w ≈ (0.0825, 0.0440,
0.0535)``: ETH and SOL are equally volatile, but ETH shares most of its risk with both others
(ρ 0.8 and 0.9), so it gets the least; each product then carries a third of the variance.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

METHODS = ("risk_parity", "inverse_vol", "signal")
FloatArray = npt.NDArray[np.float64]
_EIG_FLOOR = 1e-6
_EIG_MARGIN = 1e-9  # near the floor, the 2×2 shortcut defers to eigh's own rounding
_TOLERANCE = 1e-11
_MAX_SWEEPS = 1000
_NEGLIGIBLE = 1e-12  # a signal this small (a fraction of equity) counts as none


@dataclass(frozen=True)
class Allocation:
    """The optimiser's answer: target weight per product (every input product is listed)."""

    weights: dict[str, float]
    budget: float  # G of the last pass
    method: str  # the method actually used (``signal`` when no volatility was known)
    dropped: tuple[str, ...] = field(default=())  # left out for being below the minimum size

    @property
    def gross(self) -> float:
        """Σ w."""
        return math.fsum(self.weights.values())


def _check_fraction(name: str, value: float, *, upper: float = 1.0) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= upper):
        raise ValueError(f"{name}: expected a number in [0, {upper:g}], got {value!r}")


def _check_fractions(kind: str, values: Mapping[str, float]) -> None:
    """:func:`_check_fraction` of every value (its name, ``<kind> <product>``, built only for
    the error)."""
    for p, v in values.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and 0.0 <= v <= 1.0):
            _check_fraction(f"{kind} {p}", v)


def target_weights(
    signals: Mapping[str, float],
    *,
    caps: Mapping[str, float],
    volatility: Mapping[str, float] | None = None,
    correlation: Mapping[tuple[str, str], float] | None = None,
    min_position_size: float = 0.0,
    cash_buffer: float = 0.0,
    multiplier: float = 1.0,
    scale: Mapping[str, float] | None = None,
    method: str = "risk_parity",
) -> Allocation:
    """Target weights by the method in the module docstring.

    ``correlation`` maps a pair of products (either order) to ρ; missing pairs count as 0.
    Raises ValueError naming the input that is out of range.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    _check_fraction("min_position_size", min_position_size)
    _check_fraction("cash_buffer", cash_buffer)
    if not (math.isfinite(multiplier) and multiplier >= 0):
        raise ValueError(f"multiplier: expected a number >= 0, got {multiplier!r}")
    _check_fractions("signal", signals)
    _check_fractions("cap", caps)
    _check_fractions("scale", scale or {})
    budget = {
        p: s * multiplier * (scale or {}).get(p, 1.0)
        for p, s in signals.items()
        if s > 0 and caps.get(p, 0.0) > 0
    }
    budget = {p: b for p, b in budget.items() if b > _NEGLIGIBLE}
    if not budget:  # nothing to allocate: all in cash (the loop below would find the same)
        return Allocation(dict.fromkeys(signals, 0.0), 0.0, method, ())
    vols = {p: v for p, v in (volatility or {}).items() if math.isfinite(v) and v > 0}
    dropped: list[str] = []
    weights: dict[str, float] = {}
    used = method
    gross = 0.0
    while True:
        active = sorted(budget)
        if not active:
            break
        used = method if any(p in vols for p in active) else "signal"
        gross = min(math.fsum(budget.values()), 1.0 - cash_buffer)
        u = _proportions(active, budget, vols, correlation or {}, used)
        weights = _water_fill(active, u, caps, gross, redistribute=used != "signal")
        small = [p for p in active if weights[p] < min_position_size]
        if not small:
            break
        dropped += small
        for p in small:
            del budget[p]
        weights = {}
    out = dict.fromkeys(signals, 0.0)
    out.update(weights)
    return Allocation(out, gross if weights else 0.0, used, tuple(dropped))


def _proportions(
    active: list[str],
    budget: Mapping[str, float],
    vols: Mapping[str, float],
    correlation: Mapping[tuple[str, str], float],
    method: str,
) -> dict[str, float]:
    if len(active) <= 2:
        small = _proportions_small(active, budget, vols, correlation, method)
        if small is not None:
            return small
    return _proportions_array(active, budget, vols, correlation, method)


def _proportions_array(
    active: list[str],
    budget: Mapping[str, float],
    vols: Mapping[str, float],
    correlation: Mapping[tuple[str, str], float],
    method: str,
) -> dict[str, float]:
    """:func:`_proportions` for any number of products, on numpy arrays."""
    b = np.array([budget[p] for p in active], dtype=float)
    b = b / b.sum()
    if method == "signal" or len(active) == 1:
        return dict(zip(active, b.tolist(), strict=True))
    fallback = statistics.median(vols[p] for p in active if p in vols)
    sigma = np.array([vols.get(p, fallback) for p in active], dtype=float)
    if method == "inverse_vol":
        x = b / sigma
    else:
        rho = correlation_matrix(active, correlation)
        x = risk_parity(np.outer(sigma, sigma) * rho, b)
    x = x / x.sum()
    return dict(zip(active, x.tolist(), strict=True))


def _proportions_small(
    active: list[str],
    budget: Mapping[str, float],
    vols: Mapping[str, float],
    correlation: Mapping[tuple[str, str], float],
    method: str,
) -> dict[str, float] | None:
    """:func:`_proportions` for one or two products on plain floats: the same operations in the
    same order as the array code (a sum of two is their one addition; ``np.outer`` times the
    correlation matrix is σ_i·σ_j·ρ_ij), so the same bits without numpy's per-call cost (the
    optimiser runs once per risk update). None where the correlation would need repair (the
    array code decides it)."""
    bs = [budget[p] for p in active]
    t = bs[0] if len(bs) == 1 else bs[0] + bs[1]
    b = [v / t for v in bs]
    if method == "signal" or len(active) == 1:
        return dict(zip(active, b, strict=True))
    fallback = statistics.median(vols[p] for p in active if p in vols)
    s0, s1 = (vols.get(p, fallback) for p in active)
    if method == "inverse_vol":
        x = [b[0] / s0, b[1] / s1]
    else:
        p, q = active
        r = correlation.get((p, q), correlation.get((q, p), 0.0))
        r = min(1.0, max(-1.0, float(r) if math.isfinite(r) else 0.0))
        smallest = 1.0 - abs(r)
        if not (smallest >= _EIG_FLOOR and smallest - _EIG_FLOOR > _EIG_MARGIN):
            return None
        cov = [[s0 * s0 * 1.0, s0 * s1 * r], [s1 * s0 * r, s1 * s1 * 1.0]]
        x = _sweeps(cov, b)
    t = x[0] + x[1]
    return {active[0]: x[0] / t, active[1]: x[1] / t}


def correlation_matrix(
    products: list[str], correlation: Mapping[tuple[str, str], float]
) -> FloatArray:
    """The repaired correlation matrix of ``products`` (module docstring, step 2)."""
    n = len(products)
    rho = np.eye(n)
    for i, p in enumerate(products):
        for j in range(i + 1, n):
            q = products[j]
            r = correlation.get((p, q), correlation.get((q, p), 0.0))
            r = float(r) if math.isfinite(r) else 0.0
            rho[i, j] = rho[j, i] = min(1.0, max(-1.0, r))
    # the eigenvalues of [[1, r], [r, 1]] are 1 ± r: decided without a decomposition, except
    # within _EIG_MARGIN of the floor, where eigh's rounding decides as before
    smallest = 1.0 - abs(rho[0, 1]) if n == 2 else 0.0
    if n == 2 and smallest >= _EIG_FLOOR and smallest - _EIG_FLOOR > _EIG_MARGIN:
        return rho
    values, vectors = np.linalg.eigh(rho)
    if values.min() >= _EIG_FLOOR:
        return rho
    fixed = vectors @ np.diag(np.maximum(values, _EIG_FLOOR)) @ vectors.T
    d = np.sqrt(np.diag(fixed))
    out: FloatArray = fixed / np.outer(d, d)
    return out


def risk_parity(cov: FloatArray, budgets: FloatArray) -> FloatArray:
    """``x > 0`` with ``x_p·(Σx)_p = β_p``, by cyclical coordinate descent (module docstring).

    ``cov`` must be positive definite (the repaired correlation guarantees it), ``budgets``
    positive. The scale of ``x`` follows the scale of ``cov``; callers normalise. The sweeps
    run on plain floats: for the handful of products a portfolio holds, that is several times
    faster than numpy's per-element indexing.
    """
    return np.array(_sweeps(cov.tolist(), [float(v) for v in budgets]), dtype=np.float64)


def _sweeps(cov: list[list[float]], b: list[float]) -> list[float]:
    """:func:`risk_parity` on lists: the covariance scaled by the mean of its diagonal, then
    the sweeps."""
    n = len(b)
    scale = sum(cov[i][i] for i in range(n)) / n if n < 8 else float(np.mean(np.diag(cov)))
    c = [[v / scale for v in row] for row in cov]
    x = [b[i] / math.sqrt(c[i][i]) for i in range(n)]
    total = sum(x)
    x = [v / total for v in x]
    if n == 2:
        return _sweeps_two(c, b, x)
    for _ in range(_MAX_SWEEPS):
        moved = 0.0
        for i in range(n):
            row, d = c[i], c[i][i]
            rest = sum(row[j] * x[j] for j in range(n) if j != i)
            new = (-rest + math.sqrt(rest * rest + 4.0 * d * b[i])) / (2.0 * d)
            moved = max(moved, abs(new - x[i]))
            x[i] = new
        if moved < _TOLERANCE * sum(x):
            break
    return x


def _sweeps_two(c: list[list[float]], b: list[float], x: list[float]) -> list[float]:
    """The sweeps of :func:`_sweeps` for two products, unrolled: the same operations in the same
    order (``sum`` of one term is ``0 + term``; of two, ``0 + x0 + x1``)."""
    (c00, c01), (c10, c11) = c
    b0, b1 = b
    x0, x1 = x
    for _ in range(_MAX_SWEEPS):
        rest = 0 + c01 * x1
        new = (-rest + math.sqrt(rest * rest + 4.0 * c00 * b0)) / (2.0 * c00)
        moved = max(0.0, abs(new - x0))
        x0 = new
        rest = 0 + c10 * x0
        new = (-rest + math.sqrt(rest * rest + 4.0 * c11 * b1)) / (2.0 * c11)
        moved = max(moved, abs(new - x1))
        x1 = new
        if moved < _TOLERANCE * (0 + x0 + x1):
            break
    return [x0, x1]


def _water_fill(
    active: list[str],
    u: Mapping[str, float],
    caps: Mapping[str, float],
    gross: float,
    *,
    redistribute: bool,
) -> dict[str, float]:
    """Step 3 of the module docstring."""
    if not redistribute:
        return {p: max(0.0, min(caps[p], gross * u[p])) for p in active}
    weights: dict[str, float] = {}
    free = list(active)
    left = gross
    while free:
        share = math.fsum(u[p] for p in free)
        capped = [p for p in free if left * u[p] / share >= caps[p]]
        if not capped:
            for p in free:
                weights[p] = left * u[p] / share
            break
        for p in capped:
            weights[p] = caps[p]
            left -= caps[p]
            free.remove(p)
        if left <= 0:
            for p in free:
                weights[p] = 0.0
            break
    out = {p: max(0.0, min(caps[p], w)) for p, w in weights.items()}
    total = math.fsum(out.values())
    if total > gross > 0:  # float rounding: never hand out more than the budget
        out = {p: w * (gross / total) for p, w in out.items()}
    return out
