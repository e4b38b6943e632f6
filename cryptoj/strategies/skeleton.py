"""``cryptoj new-strategy NAME``: write a working strategy skeleton and its test.

The skeleton (``NAME.py``) holds a small but complete strategy on the API of
:mod:`cryptoj.strategies.api` (hold a weight while the close is above its average over the
last ``lookback`` bars); the test (``test_NAME.py``) drives it without threads. Load it with
``strategy.kind: "NAME:ClassName"`` from the directory the files are in.
"""

from __future__ import annotations

import keyword
from pathlib import Path


class SkeletonError(Exception):
    """The skeleton cannot be written (bad name, files already there)."""


def class_name(module: str) -> str:
    """``my_strategy`` → ``MyStrategy``."""
    return "".join(part[:1].upper() + part[1:] for part in module.split("_") if part) or "Strategy"


STRATEGY = '''"""{cls}: hold ``weight`` of a product while its close is above its recent average.

A cryptoj strategy (README "Writing a strategy"). Handlers get market events and return target
weights (fractions of this strategy's capital share); the portfolio and the risk limits do the
rest. Time comes from ``self.ctx.now()``, randomness from ``self.ctx.rng``: no I/O here.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from cryptoj.models.market import Bar
from cryptoj.strategies.api import Output, Strategy, StrategyContext, Target


class {cls}Params(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters, from ``strategy.params`` in the config (validated by check-config)."""

    lookback: Annotated[int, msgspec.Meta(ge=2, le=500)] = 20  # bars in the average
    weight: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.1  # target when above it


class {cls}(Strategy[{cls}Params]):
    """Above the average: hold ``weight``; below: hold nothing."""

    Params = {cls}Params
    subscribes = frozenset({{"bars"}})  # also: "quotes", "trades", "fills", "risk"
    history_bars = 500  # ctx.bars() keeps this many bars per product
    warmup_bars = None  # bars replayed before live events and after a restart (None: all)

    def __init__(self, params: {cls}Params, ctx: StrategyContext) -> None:
        super().__init__(params, ctx)
        self.holding: dict[str, bool] = {{}}

    def on_bar(self, bar: Bar) -> Output:
        bars = self.ctx.bars(bar.product)[-self.params.lookback :]
        if len(bars) < self.params.lookback:
            return None  # not enough history yet
        average = sum(b.close for b in bars) / len(bars)
        above = bar.close > average
        if self.holding.get(bar.product) == above:
            return None  # no change
        self.holding[bar.product] = above
        weight = self.params.weight if above else 0.0
        return Target(bar.product, weight, f"close {{bar.close}} vs average {{average:.2f}}")
'''

TEST = '''"""Tests of {cls}: its handlers called directly, no actors, no threads."""

from __future__ import annotations

from decimal import Decimal

from {module} import {cls}, {cls}Params

from cryptoj.models.market import Bar
from cryptoj.strategies.api import StrategyContext, targets_of


def bar(i: int, close: float) -> Bar:
    c = Decimal(str(close))
    return Bar(
        ts=i * 60 * 10**9, product="BTC-USD", open=c, high=c, low=c, close=c,
        volume=Decimal(1), interval_s=60,
    )


def test_holds_above_the_average_and_leaves_below() -> None:
    ctx = StrategyContext("{module}", seed=7, history_bars={cls}.history_bars)
    s = {cls}({cls}Params(lookback=3, weight=0.2), ctx)
    weights = []
    for i, close in enumerate([100, 100, 100, 103, 104, 90]):
        ctx._on_bar(bar(i, close))  # the StrategyActor does this before each on_bar
        weights += [t.weight for t in targets_of(s.on_bar(bar(i, close)))]
    assert weights == [0.0, 0.2, 0.0]
'''


def write_skeleton(module: str, directory: Path) -> list[Path]:
    """Write ``module.py`` and ``test_module.py`` into ``directory``; their paths."""
    if not module.isidentifier() or keyword.iskeyword(module):
        raise SkeletonError(f"{module!r} is not a valid Python module name")
    cls = class_name(module)
    directory.mkdir(parents=True, exist_ok=True)
    files = [(directory / f"{module}.py", STRATEGY), (directory / f"test_{module}.py", TEST)]
    for path, _ in files:
        if path.exists():
            raise SkeletonError(f"{path} already exists (not overwritten)")
    for path, text in files:
        path.write_text(text.format(cls=cls, module=module), encoding="utf-8")
    return [p for p, _ in files]
