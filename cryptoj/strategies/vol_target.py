"""Volatility targeting: hold each product at the weight that gives it a chosen volatility.

From the last ``lookback`` bars' log returns, the product's annualised volatility ``σ``
(``interval_s`` of the bars gives the bars per year); its target weight is
``min(max_weight, target_vol / σ)``: more of a calm product, less of a wild one. With
``trend_filter`` (the default) it holds nothing while the close is below the close
``lookback`` bars ago: an always-invested allocator would never let a stop-loss re-arm (the
portfolio re-arms a product's stop when its target goes to 0). A new target is given only when
it moved more than ``rebalance_band`` from the last one (or to or from 0), so noise in the
estimate does not trade. The risk caps still apply on top (the portfolio's optimiser and
``risk.position_size_limit``).
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated

import msgspec

from cryptoj.models.market import Bar
from cryptoj.strategies.api import Output, Strategy, StrategyContext, Target

SECONDS_PER_YEAR = 365 * 24 * 3600


class VolTargetParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of :class:`VolTarget`."""

    target_vol: Annotated[float, msgspec.Meta(gt=0, le=5)] = 0.20  # annualised
    lookback: Annotated[int, msgspec.Meta(ge=2, le=1000)] = 240  # bars
    max_weight: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.10
    rebalance_band: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.02  # absolute weight
    trend_filter: bool = True  # hold nothing while the close is below the close lookback ago


class VolTarget(Strategy[VolTargetParams]):
    """The module docstring's allocator."""

    Params = VolTargetParams
    subscribes = frozenset({"bars"})
    history_bars = 1001
    warmup_bars = None  # the last weight given depends on the whole path

    def __init__(self, params: VolTargetParams, ctx: StrategyContext) -> None:
        super().__init__(params, ctx)
        self.weights: dict[str, float] = {}

    def on_bar(self, bar: Bar) -> Output:
        """A new target when the product's vol-scaled weight moved beyond the band."""
        p = self.params
        bars = self.ctx.bars(bar.product)[-(p.lookback + 1) :]
        if len(bars) <= p.lookback:
            return None
        rets = [
            math.log(float(b.close) / float(a.close))
            for a, b in itertools.pairwise(bars)
            if a.close > 0 and b.close > 0
        ]
        if len(rets) < 2:
            return None
        mean = sum(rets) / len(rets)
        var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
        vol = math.sqrt(var * SECONDS_PER_YEAR / max(1, bar.interval_s))
        want = p.max_weight if vol <= 0 else min(p.max_weight, p.target_vol / vol)
        want = round(want, 4)
        falling = p.trend_filter and bars[-1].close < bars[0].close
        if falling:
            want = 0.0
        last = self.weights.get(bar.product)
        moved = last is None or (want == 0) != (last == 0) or abs(want - last) > p.rebalance_band
        if not moved:
            return None
        self.weights[bar.product] = want
        why = "close below its level of lookback bars ago" if falling else f"vol {vol:.1%}"
        return Target(bar.product, want, f"{why} → weight {want:.4f}")
