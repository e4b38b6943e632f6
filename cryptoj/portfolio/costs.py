"""What trading costs, and when a rebalance is worth it. Pure.

**Cost of one order** (:func:`one_way_rate`), as a fraction of its notional at the mid:

* the taker fee (``paper.taker_fee``: the Coinbase Advanced fee tier the paper venue charges;
  rebalance legs take liquidity);
* half the spread, ``(ask − bid) / 2 / mid`` (a buy pays the ask, a sell receives the bid);
* the modelled impact: the paper venue's book walk (:mod:`cryptoj.venues.paper`, *Slippage
  model*): level 0 is the touch with its size ``D``, level ``k`` is ``k × step`` further with
  the same size, ``step = max(ask − bid, level_spacing_bps × mid)``; the impact is the average
  distance beyond the touch the order's size walks, over the mid (a size beyond the modelled
  levels is priced at the last one). An order execution splits (``execution.split_enabled``,
  larger than ``execution.max_depth_share × D``) goes in children of at most that share of
  the size at the touch, so the model gives it no walk.

A **round trip** (:func:`round_trip_rate`) is the buy and the sell of the same size: every
position that is entered is left again, so an entry or a re-sizing pays both.

**The cost band** (:func:`cost_band`): the no-trade half-width around a product's target
weight, as a fraction of equity, is the larger of ``portfolio.drift_threshold`` and
``portfolio.cost_band_multiple × the round trip's rate``: a position is re-sized only once it
is further from its target than a round trip costs. (The optimum of Davis and Norman needs a
risk aversion and expected returns the daemon does not know; this rule is the break-even of a
unit quadratic tracking penalty against a proportional cost, stated plainly so an operator
can widen or narrow it with the multiple.) :mod:`cryptoj.portfolio.rebalance` trades only when
a position leaves the band, and then back to the band's edge (half the drift threshold inside
it), not to the target.

**Turnover budget** (:func:`turnover_left`): ``risk.max_daily_turnover × equity`` of traded
notional per UTC day; what the day's fills and the open buys' remaining quantities already
use is not available to new exposure-increasing orders (exposure-reducing ones always go).

Example: BTC bid 40,000 / ask 40,008 (spread 2 bps), taker fee 0.6 %, an order within the
touch size: one way 0.006 + 0.0001 = 0.61 %, round trip 1.22 %; with the multiple 1 and
``drift_threshold`` 0.005 the band is ±1.22 % of equity around the target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from cryptoj.config import Config
from cryptoj.models.market import Quote
from cryptoj.models.orders import Fill, Side
from cryptoj.portfolio.ledger import Ledger

ZERO = Decimal(0)
DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class CostModel:
    """The fee and the paper venue's book model an order's cost is estimated with."""

    fee: Decimal  # taker fee rate
    depth_levels: int = 5
    level_spacing_bps: Decimal = Decimal(5)
    split_share: Decimal | None = Decimal("0.25")  # execution's split threshold; None: no split

    @classmethod
    def from_config(cls, cfg: Config) -> CostModel:
        """The model of ``cfg``: ``paper.*`` and ``execution.split_enabled / max_depth_share``."""
        return cls(
            fee=Decimal(repr(cfg.paper.taker_fee)),
            depth_levels=cfg.paper.depth_levels,
            level_spacing_bps=Decimal(repr(cfg.paper.level_spacing_bps)),
            split_share=(
                Decimal(repr(cfg.execution.max_depth_share))
                if cfg.execution.split_enabled
                else None
            ),
        )


def impact_rate(quote: Quote, side: Side, quantity: Decimal, model: CostModel) -> Decimal:
    """The modelled walk beyond the touch of ``quantity`` on ``side``, over the mid."""
    mid = quote.mid
    size = quote.ask_size if side == Side.BUY else quote.bid_size
    if quantity <= 0 or mid <= 0 or size <= 0:
        return ZERO
    if (
        model.split_share is not None
        and model.split_share <= 1
        and quantity > size * model.split_share
    ):
        return ZERO  # children of at most split_share × the touch size: each fills at the touch
    step = max(quote.ask - quote.bid, model.level_spacing_bps / Decimal(10_000) * mid)
    left, walked, level = quantity, ZERO, 0
    while left > 0:
        take = min(left, size) if level < model.depth_levels - 1 else left
        walked += take * level * step
        left -= take
        level += 1
    return walked / quantity / mid


def one_way_rate(quote: Quote, side: Side, quantity: Decimal, model: CostModel) -> Decimal:
    """Fee, half the spread and the modelled impact of one order, over its notional at the mid."""
    mid = quote.mid
    if mid <= 0:
        return model.fee
    half_spread = max(ZERO, quote.ask - quote.bid) / 2 / mid
    return model.fee + half_spread + impact_rate(quote, side, quantity, model)


def round_trip_rate(quote: Quote, quantity: Decimal, model: CostModel) -> Decimal:
    """A buy and a sell of ``quantity`` (module docstring)."""
    return one_way_rate(quote, Side.BUY, quantity, model) + one_way_rate(
        quote, Side.SELL, quantity, model
    )


def cost_band(drift_threshold: float, round_trip: Decimal, multiple: float) -> float:
    """The no-trade half-width, a fraction of equity (module docstring)."""
    if drift_threshold < 0 or multiple < 0 or round_trip < 0:
        raise ValueError(
            f"cost band: threshold, round trip and multiple must be >= 0, got "
            f"{drift_threshold}, {round_trip} and {multiple}"
        )
    return max(drift_threshold, multiple * float(round_trip))


def band_floor(model: CostModel, multiple: float) -> float:
    """A band no :func:`cost_band` priced with ``model`` and ``multiple`` is narrower than
    (whatever the drift threshold): ``multiple`` × the two fees of a round trip. Each of
    :func:`round_trip_rate`'s orders pays the fee plus half a spread (never negative) plus its
    modelled impact (a walk of levels ``step`` apart, ``step`` never negative while
    ``level_spacing_bps`` is not), and Decimal sums, ``float`` and a product with a
    non-negative ``multiple`` never decrease as their operands grow; 0 when
    ``level_spacing_bps`` is negative (a crossed book could then price a negative walk)."""
    if model.level_spacing_bps < 0:
        return 0.0
    return multiple * float(model.fee + model.fee)


def turnover_left(
    multiple: float, equity: Decimal, traded_today: Decimal, open_buys: Decimal
) -> Decimal:
    """Notional still available to exposure-increasing orders today (never below 0)."""
    return max(ZERO, Decimal(repr(multiple)) * equity - traded_today - open_buys)


def budget_left(
    multiple: float, ledger: Ledger, book: TurnoverBook, equity: Decimal, now_ns: int
) -> Decimal:
    """:func:`turnover_left` for the PortfolioActor's books: the day's fills in ``book``, the
    cash still held for open buys (their most: headroom and fee included) in ``ledger``."""
    held = sum((r.held_cash for r in ledger.reservations.values() if r.side == Side.BUY), ZERO)
    return turnover_left(multiple, equity, book.today(now_ns), held)


class TurnoverBook:
    """Traded notional of the current UTC day, from fills (market time).

    Rebuilt from the journal's fills on start (:meth:`rebuild`), so a restart keeps the day's
    figure; a fill of a new day starts the count again.
    """

    def __init__(self) -> None:
        self.day = -1
        self.traded = ZERO

    def add(self, fill: Fill) -> None:
        """Count one fill's notional in its day."""
        day = fill.ts // DAY_NS
        if day > self.day:
            self.day, self.traded = day, ZERO
        if day == self.day:
            self.traded += fill.quantity * fill.price

    def today(self, now_ns: int) -> Decimal:
        """What the UTC day of ``now_ns`` has traded so far."""
        return self.traded if now_ns // DAY_NS == self.day else ZERO

    @classmethod
    def rebuild(cls, fills: Iterable[Fill]) -> TurnoverBook:
        """The book after ``fills`` (in the order they were applied)."""
        book = cls()
        for f in fills:
            book.add(f)
        return book
