"""EMA trend: hold ``target_weight`` of a product while its fast EMA is above its slow EMA.

The signal flips only when the EMAs differ by more than ``band`` (a fraction of the slow EMA),
so noise around the cross does not churn. Until ``slow_period`` bars have been seen, no signal
is given (warm-up). State is derived only from bars, so a restarted StrategyActor rebuilds it
from the market data it receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Ema:
    """Exponential moving average with ``alpha = 2 / (period + 1)``."""

    period: int
    value: float | None = None
    count: int = 0

    def update(self, x: float) -> float:
        """Add one observation; return the new average."""
        alpha = 2.0 / (self.period + 1)
        self.value = x if self.value is None else self.value + alpha * (x - self.value)
        self.count += 1
        return self.value


@dataclass
class EmaTrend:
    """One product's EMA-trend state."""

    fast_period: int
    slow_period: int
    target_weight: float
    band: float
    fast: Ema = field(init=False)
    slow: Ema = field(init=False)
    weight: float | None = None

    def __post_init__(self) -> None:
        self.fast = Ema(self.fast_period)
        self.slow = Ema(self.slow_period)

    def on_close(self, close: float) -> tuple[float, str] | None:
        """Feed one bar close; return (new weight, reason) when the target changes."""
        f = self.fast.update(close)
        s = self.slow.update(close)
        if self.slow.count < self.slow_period:
            return None
        spread = (f - s) / s
        if spread > self.band:
            want = self.target_weight
        elif spread < -self.band:
            want = 0.0
        else:
            return None
        if want == self.weight:
            return None
        self.weight = want
        direction = "above" if want > 0 else "below"
        return want, f"ema{self.fast_period} {f:.6g} {direction} ema{self.slow_period} {s:.6g}"
