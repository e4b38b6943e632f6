"""Mean reversion on quotes: buy a product whose mid has fallen well below its recent average.

Per product an exponentially weighted mean and variance of the mid (``halflife`` quotes) give
``z = (mid − mean) / σ``. Below ``−entry_z`` — and at least ``min_edge`` (a fraction, the
round trip's cost by default) under the mean, so the expected reversion pays for the trade —
it holds ``target_weight``; once the mid is back above ``mean − exit_z·σ`` it holds nothing.
Long only (target weights are 0..1). Its state depends on every quote, so it warms up on the
whole history the run keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import msgspec

from cryptoj.models.market import Quote
from cryptoj.strategies.api import Output, Strategy, StrategyContext, Target


class MeanReversionParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of :class:`MeanReversion`."""

    halflife: Annotated[int, msgspec.Meta(gt=1)] = 60  # quotes
    entry_z: Annotated[float, msgspec.Meta(gt=0)] = 2.5  # enter below mean − entry_z·σ
    exit_z: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # leave above mean − exit_z·σ
    min_edge: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.013  # (mean − mid)/mid to enter
    target_weight: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.10
    min_quotes: Annotated[int, msgspec.Meta(gt=0)] = 120  # no signal before this many quotes

    def __post_init__(self) -> None:
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be below entry_z ({self.entry_z})")


@dataclass
class _Stats:
    mean: float = 0.0
    var: float = 0.0
    count: int = 0
    weight: float = 0.0


class MeanReversion(Strategy[MeanReversionParams]):
    """The module docstring's rule, one product at a time."""

    Params = MeanReversionParams
    subscribes = frozenset({"quotes"})
    warmup_bars = None

    def __init__(self, params: MeanReversionParams, ctx: StrategyContext) -> None:
        super().__init__(params, ctx)
        self.stats: dict[str, _Stats] = {}
        self.alpha = 1 - 0.5 ** (1 / params.halflife)

    def on_quote(self, quote: Quote) -> Output:
        """Update the product's average; a target when its position should change."""
        p, mid = self.params, float(quote.mid)
        s = self.stats.setdefault(quote.product, _Stats(mean=mid))
        sd = math.sqrt(s.var)
        z = (mid - s.mean) / sd if sd > 0 else 0.0
        edge = (s.mean - mid) / mid if mid > 0 else 0.0
        ready = s.count >= p.min_quotes
        delta = mid - s.mean
        s.mean += self.alpha * delta
        s.var = (1 - self.alpha) * (s.var + self.alpha * delta * delta)
        s.count += 1
        if not ready:
            return None
        if s.weight == 0 and z < -p.entry_z and edge >= p.min_edge:
            s.weight = p.target_weight
            return Target(quote.product, s.weight, f"mid {mid:.6g} is {z:.2f}σ below its mean")
        if s.weight > 0 and z > -p.exit_z:
            s.weight = 0.0
            return Target(quote.product, 0.0, f"mid {mid:.6g} back to {z:.2f}σ of its mean")
        return None
