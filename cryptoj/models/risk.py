"""Risk parameters and risk events."""

from __future__ import annotations

import enum

from cryptoj.models.base import Message


class RiskLevel(enum.StrEnum):
    """Graduated risk levels, from normal trading to halted."""

    NORMAL = "NORMAL"
    CAUTION = "CAUTION"  # sizes cut
    REDUCING = "REDUCING"  # only exposure-reducing orders
    HALTED = "HALTED"  # no new orders

    @property
    def rank(self) -> int:
        """0 for NORMAL up to 3 for HALTED."""
        return _RANK[self]


_RANK = {level: i for i, level in enumerate(RiskLevel)}


class RiskParameters(Message, frozen=True, kw_only=True):
    """Risk → Portfolio: a versioned snapshot of the limits, applied atomically by its user.

    ``max_weight`` maps product → the largest fraction of equity it may hold now.
    """

    version: int
    level: RiskLevel
    max_weight: tuple[tuple[str, float], ...]
    stop_loss: float
    min_position_size: float
    size_multiplier: float  # 1.0 at NORMAL, < 1 at CAUTION
    reason: str = ""
    entries_allowed: bool = True  # False: only exposure-reducing orders (REDUCING, stale feed)
    avg_correlation: float = 0.0  # average pairwise EWMA correlation of the products
    regimes: tuple[tuple[str, str], ...] = ()  # product → calm / trending / volatile
    volatility: tuple[tuple[str, float], ...] = ()  # product → EWMA volatility per bar
    correlation: tuple[tuple[str, float], ...] = ()  # product → its average ρ with the others
    pairs: tuple[tuple[str, str, float], ...] = ()  # (p, q, ρ_pq) for p < q: the EWMA matrix

    def pair_correlations(self) -> dict[tuple[str, str], float]:
        """ρ by pair of products, both orders (empty when the snapshot has no matrix)."""
        out: dict[tuple[str, str], float] = {}
        for p, q, rho in self.pairs:
            out[(p, q)] = out[(q, p)] = rho
        return out

    def regime(self, product: str) -> str | None:
        """The product's regime (CALM / TRENDING / VOLATILE), None while unknown."""
        for name, regime in self.regimes:
            if name == product:
                return regime
        return None

    def weight_cap(self, product: str) -> float:
        """The cap for ``product`` (0 when unknown: no exposure without a risk view)."""
        for name, cap in self.max_weight:
            if name == product:
                return cap
        return 0.0


class RiskLevelChanged(Message, frozen=True, kw_only=True):
    """The graduated risk level moved."""

    previous: RiskLevel
    level: RiskLevel
    reason: str


class StopLossTriggered(Message, frozen=True, kw_only=True):
    """Portfolio → Risk: a position hit its stop loss (counted per UTC day)."""

    product: str


class RiskResume(Message, frozen=True, kw_only=True):
    """Operator → Risk: clear the drawdown halt (``risk.max_drawdown``) and start the
    high-water mark again from the current equity; ``by`` names the operator (journalled)."""

    by: str
    reason: str = ""


class RiskOverride(Message, frozen=True, kw_only=True):
    """Operator → Risk: force ``level`` until ``until_ns`` (None: until released); level None
    releases the override."""

    level: RiskLevel | None
    until_ns: int | None = None
    reason: str = "operator"
