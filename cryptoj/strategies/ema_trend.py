"""EMA trend: hold ``target_weight`` of a product while its fast EMA is above its slow EMA.

The signal flips only when the EMAs differ by more than ``band`` (a fraction of the slow EMA),
so noise around the cross does not churn. Until ``slow_period`` bars have been seen, no signal
is given (warm-up). State is derived only from bars, so a restarted StrategyActor rebuilds it
from the market data it receives.

Hysteresis against costs (``strategy.entry_band``, ``strategy.min_hold_s``):

* **Entry band.** A position is entered only when the fast EMA is above the slow one by at
  least ``entry_band``; it is left when the fast EMA falls ``band`` below. The EMA spread is
  about the return the trend has made over the lag between the two averages; a trend that
  runs on for as long again earns about that much, so entering below the round trip's cost
  (:func:`round_trip_cost`: fees both ways and the spread, the default ``entry_band``)
  expects less than it pays. On 1-minute bars this keeps the strategy out of the noise; on
  4-hour bars trends clear it easily.
* **Minimum holding time.** A new signal stands for at least ``min_hold_s`` of market time
  (bar timestamps) before it may flip back. It delays the strategy's own exits only: stop
  losses, risk levels and unwinds act on the position regardless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import msgspec

from cryptoj.config import Config
from cryptoj.models.market import Bar
from cryptoj.strategies.api import Output, Strategy, StrategyContext, Target


def round_trip_cost(cfg: Config) -> float:
    """Fees both ways and the modelled spread of ``cfg``'s paper venue and feed, a fraction:
    ``2 × paper.taker_fee + feed.bar_spread_bps / 10,000``."""
    return 2 * cfg.paper.taker_fee + cfg.feed.bar_spread_bps / 10_000


def entry_band(cfg: Config) -> float:
    """``strategy.entry_band``, or the round trip's cost when it is null (never below
    ``strategy.band``)."""
    band = cfg.strategy.entry_band
    return max(cfg.strategy.band, round_trip_cost(cfg) if band is None else band)


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
    entry_band: float = 0.0  # the spread needed to enter (never below band)
    min_hold_ns: int = 0  # a new signal stands at least this long (bar time)
    fast: Ema = field(init=False)
    slow: Ema = field(init=False)
    weight: float | None = None
    changed_ns: int | None = None  # bar time of the last change of the signal

    def __post_init__(self) -> None:
        self.fast = Ema(self.fast_period)
        self.slow = Ema(self.slow_period)

    def on_close(self, close: float, ts: int = 0) -> tuple[float, str] | None:
        """Feed one bar close (bar time ``ts``, ns); return (new weight, reason) when the
        target changes."""
        f = self.fast.update(close)
        s = self.slow.update(close)
        if self.slow.count < self.slow_period:
            return None
        spread = (f - s) / s
        holding = self.weight is not None and self.weight > 0
        if spread < -self.band:
            want = 0.0
        elif spread > (self.band if holding else max(self.band, self.entry_band)):
            want = self.target_weight
        else:
            return None
        if want == self.weight:
            return None
        if self.changed_ns is not None and ts - self.changed_ns < self.min_hold_ns:
            return None
        self.weight, self.changed_ns = want, ts
        direction = "above" if want > 0 else "below"
        return want, f"ema{self.fast_period} {f:.6g} {direction} ema{self.slow_period} {s:.6g}"


class EmaTrendParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of :class:`EmaTrendStrategy` (the ``strategy:`` fields of the same names)."""

    fast_period: Annotated[int, msgspec.Meta(gt=0)] = 12  # bars
    slow_period: Annotated[int, msgspec.Meta(gt=0)] = 48  # bars
    target_weight: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.10
    band: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0005
    entry_band: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None  # null: band
    min_hold_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0

    def __post_init__(self) -> None:
        if self.fast_period >= self.slow_period:
            raise ValueError(
                f"fast_period ({self.fast_period}) must be less than slow_period "
                f"({self.slow_period})"
            )


class EmaTrendStrategy(Strategy[EmaTrendParams]):
    """The EMA trend on the strategy API: one :class:`EmaTrend` per product, fed bar closes.

    Its EMAs remember every bar, so it warms up on the whole history (``warmup_bars = None``)."""

    Params = EmaTrendParams
    subscribes = frozenset({"bars"})
    warmup_bars = None

    def __init__(self, params: EmaTrendParams, ctx: StrategyContext) -> None:
        super().__init__(params, ctx)
        self.trends: dict[str, EmaTrend] = {}

    def on_bar(self, bar: Bar) -> Output:
        """Feed the close; a :class:`Target` when the product's signal changes."""
        p = self.params
        trend = self.trends.get(bar.product)
        if trend is None:
            trend = self.trends[bar.product] = EmaTrend(
                p.fast_period,
                p.slow_period,
                p.target_weight,
                p.band,
                entry_band=p.band if p.entry_band is None else max(p.band, p.entry_band),
                min_hold_ns=int(p.min_hold_s * 1e9),
            )
        change = trend.on_close(float(bar.close), bar.ts)
        if change is None:
            return None
        return Target(bar.product, change[0], change[1])
