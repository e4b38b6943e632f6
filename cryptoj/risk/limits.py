"""Risk limits and the graduated risk level. Pure functions and small state holders.

Dynamic position cap for product p (fractions of equity)::

    cap_p = position_size_limit × max(0, 1 − volatility_weight·v_p − correlation_weight·c_p)

where ``v_p = clip(σ_p / σ_ref − 1, 0, 1)`` is how far p's EWMA volatility σ_p exceeds the
reference σ_ref (the median of all products' volatilities, or p's own long-run EWMA when it is
the only product), and ``c_p = max(0, ρ̄_p)`` is p's average EWMA correlation with the other
products. A cap below ``min_position_size`` becomes 0 (the position is not opened).

Worked example: limit 0.10, σ_p = 1.5·σ_ref → v_p = 0.5; ρ̄_p = 0.8 → c_p = 0.8;
cap = 0.10 × (1 − 0.4·0.5 − 0.3·0.8) = 0.10 × 0.56 = 0.056.

Risk level from the portfolio (daily loss against the UTC start-of-day equity, intraday
drawdown from the day's peak):

* HALTED   when daily loss ≥ ``daily_loss_limit``;
* REDUCING when daily loss ≥ 0.75 × ``daily_loss_limit``;
* CAUTION  when the drawdown from the day's peak ≥ ``caution_drawdown`` (sizes × 0.5);
* NORMAL   otherwise.

Recovery: a level only goes down (toward NORMAL) after the conditions have been normal for
``cooldown_ns``; HALTED from the daily loss limit holds until the next UTC day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cryptoj.models.risk import RiskLevel

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
    """EWMA volatility of log returns per product and EWMA correlation between products."""

    halflife: int
    last: dict[str, float] = field(default_factory=dict)
    var: dict[str, float] = field(default_factory=dict)
    long_var: dict[str, float] = field(default_factory=dict)
    cov: dict[tuple[str, str], float] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        """Weight of the newest observation."""
        return float(1.0 - 0.5 ** (1.0 / self.halflife))

    def on_close(self, product: str, close: float) -> None:
        """Add a bar close; returns of products closing at the same time update correlations."""
        prev = self.last.get(product)
        self.last[product] = close
        if prev is None or prev <= 0 or close <= 0:
            return
        r = math.log(close / prev)
        a = self.alpha
        self.var[product] = (1 - a) * self.var.get(product, r * r) + a * r * r
        self.long_var[product] = (1 - a / 10) * self.long_var.get(product, r * r) + a / 10 * r * r
        self.pending[product] = r

    def end_of_batch(self) -> None:
        """Update pairwise covariances from the returns of one timestamp."""
        names = sorted(self.pending)
        a = self.alpha
        for i, p in enumerate(names):
            for q in names[i + 1 :]:
                key = (p, q)
                x = self.pending[p] * self.pending[q]
                self.cov[key] = (1 - a) * self.cov.get(key, x) + a * x
        self.pending.clear()

    def vol(self, product: str) -> float:
        """Current EWMA volatility per bar."""
        return math.sqrt(self.var.get(product, 0.0))

    def vol_excess(self, product: str) -> float:
        """σ_p / σ_ref − 1 (see the module docstring)."""
        vols = sorted(self.vol(p) for p in self.var)
        if not vols or self.vol(product) == 0:
            return 0.0
        if len(vols) == 1:
            ref = math.sqrt(self.long_var.get(product, 0.0))
        else:
            mid = len(vols) // 2
            ref = vols[mid] if len(vols) % 2 else (vols[mid - 1] + vols[mid]) / 2
        return self.vol(product) / ref - 1.0 if ref > 0 else 0.0

    def correlation(self, product: str) -> float:
        """Average correlation of ``product`` with every other product (0 without data)."""
        out = []
        for (p, q), c in self.cov.items():
            if product in (p, q):
                denom = self.vol(p) * self.vol(q)
                if denom > 0:
                    out.append(max(-1.0, min(1.0, c / denom)))
        return sum(out) / len(out) if out else 0.0


@dataclass
class LevelState:
    """The graduated level with day boundaries and recovery cool-down."""

    daily_loss_limit: float
    caution_drawdown: float
    cooldown_ns: int
    level: RiskLevel = RiskLevel.NORMAL
    day: int = -1
    start_equity: float = 0.0
    peak_equity: float = 0.0
    calm_since: int | None = None
    halted_day: int | None = None

    def on_equity(self, ts: int, equity: float) -> tuple[RiskLevel, str]:
        """Update with the latest equity; return the (possibly new) level and why."""
        day = ts // NS_PER_DAY
        if day != self.day:
            self.day, self.start_equity, self.peak_equity = day, equity, equity
        self.peak_equity = max(self.peak_equity, equity)
        loss = (self.start_equity - equity) / self.start_equity if self.start_equity > 0 else 0.0
        dd = (self.peak_equity - equity) / self.peak_equity if self.peak_equity > 0 else 0.0
        if loss >= self.daily_loss_limit:
            want, why = (
                RiskLevel.HALTED,
                f"daily loss {loss:.2%} >= limit {self.daily_loss_limit:.2%}",
            )
            self.halted_day = day
        elif loss >= 0.75 * self.daily_loss_limit:
            want, why = RiskLevel.REDUCING, f"daily loss {loss:.2%} near limit"
        elif dd >= self.caution_drawdown:
            want, why = RiskLevel.CAUTION, f"intraday drawdown {dd:.2%}"
        else:
            want, why = RiskLevel.NORMAL, "conditions normal"
        if self.halted_day == day:
            want, why = RiskLevel.HALTED, f"daily loss limit hit today (resets at 00:00 UTC); {why}"
        if want.rank >= self.level.rank:
            self.calm_since = None
            self.level = want
            return self.level, why
        if self.calm_since is None:
            self.calm_since = ts
        if ts - self.calm_since >= self.cooldown_ns:
            self.level, self.calm_since = want, None
            return self.level, f"recovered after cool-down: {why}"
        return self.level, f"holding {self.level} during cool-down"
