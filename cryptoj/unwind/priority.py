"""Which positions unwind first, and how far: risk contribution and the plan's targets. Pure.

Risk contribution of position p (value ``V_p = q_p × mid_p`` in quote currency)::

    RC_p = V_p × σ_p × ρ_p

with σ_p the RiskActor's EWMA volatility per bar and ρ_p p's correlation with the rest of the
book, clipped to [0, 1] (a position alone in the book is the whole book: ρ = 1). Negatively
correlated positions hedge the rest and go last. This is the Euler risk contribution
``w_p·σ_p·ρ_{p,portfolio}`` with the correlation to the other positions standing in for the
correlation to the portfolio.

Orderings (``priority``), largest key first; ties fall back to ``V·σ``, then ``V``, then the
product name, so an ordering is total and deterministic:

=============  =================================================================
``risk``       ``RC``                                               (default)
``correlation``  ``ρ``, then ``RC`` — a systemic event: most correlated first
``size``       ``V``
=============  =================================================================

Targets: FLATTEN holds 0 of everything. REDUCE cuts the gross exposure ``G = Σ V_p`` to
``target × equity``, taking the excess from positions in priority order (largest first)::

    excess = G − target·E;   for p in order: cut_p = min(V_p, excess); excess −= cut_p

The correlation ``ρ_p`` the PortfolioActor reports (:func:`book_correlations`) is p's
correlation with the rest of the book, from the RiskActor's pairwise EWMA matrix: with the
other positions' values ``V_q`` and volatilities ``σ_q``::

    ρ_p = Σ_{q≠p} V_q·σ_q·ρ_pq / √(Σ_{q≠p} Σ_{r≠p} V_q·V_r·σ_q·σ_r·ρ_qr)

(the correlation of p's return with the value-weighted return of everything else held).
Example: BTC 8,000 (σ 0.02), ETH 6,000 (σ 0.03), SOL 2,000 (σ 0.05); ρ(BTC, ETH) 0.8,
ρ(BTC, SOL) 0.2, ρ(ETH, SOL) 0.5. For BTC the rest is ETH 180 and SOL 100 (V·σ):
ρ = (180·0.8 + 100·0.2) / √(180² + 100² + 2·180·100·0.5) = 164 / 245.8 = 0.667.

Worked example: E = 100,000, target 0.05; BTC V = 8,000 (σ 0.02, ρ 0.9 → RC 144), ETH
V = 6,000 (σ 0.03, ρ 0.9 → RC 162). Order ETH, BTC; excess = 14,000 − 5,000 = 9,000: ETH is cut
by 6,000 to 0, BTC by 3,000 to 5,000.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

BASE_INCREMENT = Decimal("0.00000001")
PRIORITIES = ("risk", "correlation", "size")


@dataclass(frozen=True)
class Exposure:
    """One long position with the risk figures the ordering needs."""

    product: str
    quantity: Decimal
    mid: Decimal
    volatility: float = 0.0  # σ per bar (RiskActor's EWMA)
    correlation: float = 0.0  # with the rest of the book

    @property
    def value(self) -> Decimal:
        """Quantity × mid (quote currency)."""
        return self.quantity * self.mid


def effective_correlation(correlation: float, alone: bool) -> float:
    """ρ clipped to [0, 1]; 1 for a position alone in the book."""
    if alone:
        return 1.0
    if correlation != correlation:  # NaN
        return 0.0
    return min(1.0, max(0.0, correlation))


def book_correlations(
    values: Mapping[str, float],
    volatility: Mapping[str, float],
    correlation: Mapping[tuple[str, str], float],
) -> dict[str, float]:
    """Each position's correlation with the rest of the book (module docstring).

    ``correlation`` maps a pair (either order) to ρ (missing pairs: 0). Positions without a
    volatility are left out of the answer; one with nothing else held gets 0
    (:func:`effective_correlation` treats a lone position as ρ = 1).
    """

    def rho(a: str, b: str) -> float:
        if a == b:
            return 1.0
        r = correlation.get((a, b), correlation.get((b, a), 0.0))
        return min(1.0, max(-1.0, r)) if math.isfinite(r) else 0.0

    risk = {
        p: v * volatility.get(p, 0.0)
        for p, v in values.items()
        if v > 0 and volatility.get(p, 0.0) > 0
    }
    out = dict.fromkeys(risk, 0.0)
    for p in risk:
        rest = [q for q in risk if q != p]
        var = sum(risk[q] * risk[r] * rho(q, r) for q in rest for r in rest)
        if not rest or var <= 0:
            continue
        cov = sum(risk[q] * rho(p, q) for q in rest)
        out[p] = min(1.0, max(-1.0, cov / math.sqrt(var)))
    return out


def risk_contribution(e: Exposure, alone: bool = False) -> float:
    """``V × σ × ρ`` (module docstring); never negative."""
    return float(e.value) * max(0.0, e.volatility) * effective_correlation(e.correlation, alone)


def priority_key(e: Exposure, mode: str, alone: bool = False) -> tuple[float, float, float]:
    """The sort key of ``e`` under ``mode`` (larger unwinds first)."""
    value = float(e.value)
    vs = value * max(0.0, e.volatility)
    rc = risk_contribution(e, alone)
    if mode == "risk":
        return (rc, vs, value)
    if mode == "correlation":
        return (effective_correlation(e.correlation, alone), rc, value)
    if mode == "size":
        return (value, vs, rc)
    raise ValueError(f"unknown priority {mode!r} (expected one of {', '.join(PRIORITIES)})")


def order_exposures(exposures: Sequence[Exposure], mode: str = "risk") -> list[Exposure]:
    """Positions with something to unwind, highest priority first (ties: product name)."""
    live = [e for e in exposures if e.quantity > 0 and e.mid > 0]
    alone = len(live) == 1
    return sorted(live, key=lambda e: (tuple(-k for k in priority_key(e, mode, alone)), e.product))


@dataclass(frozen=True)
class Target:
    """Hold at most ``quantity`` of ``product``; ``priority`` is the ordering's first key."""

    product: str
    quantity: Decimal
    priority: float


def plan_targets(
    exposures: Sequence[Exposure],
    equity: Decimal,
    *,
    target_exposure: float,
    mode: str = "risk",
) -> list[Target]:
    """The products to unwind and what to keep of each, highest priority first.

    ``target_exposure`` 0 flattens everything; otherwise the excess of the gross exposure over
    ``target_exposure × equity`` is cut in priority order (module docstring). Positions left
    untouched are not in the result.
    """
    ordered = order_exposures(exposures, mode)
    alone = len(ordered) == 1
    gross = sum((e.value for e in ordered), Decimal(0))
    excess = gross - Decimal(repr(target_exposure)) * max(equity, Decimal(0))
    out: list[Target] = []
    for e in ordered:
        if excess <= 0 and target_exposure > 0:
            break
        cut = e.value if target_exposure == 0 else min(e.value, excess)
        keep = ((e.value - cut) / e.mid).quantize(BASE_INCREMENT, rounding=ROUND_DOWN)
        excess -= cut
        out.append(Target(e.product, max(keep, Decimal(0)), priority_key(e, mode, alone)[0]))
    return out
