"""The rebalance planner: from target weights to the legs of one transaction. Pure.

For each product the caller lists (:class:`ProductView`: position, the quantity not held by
other orders, the latest quote, the target weight ``w`` from
:mod:`cryptoj.portfolio.optimizer`, its drift threshold ``θ`` and whether only reducing is
allowed), with equity ``E`` and the position's value ``V = q·mid``:

* **Drift.** ``d = w·E − V``. No leg when ``|d| < θ·E`` (no churn around the target), except a
  position whose target is 0, which is always closed. ``θ`` comes from
  :func:`drift_threshold`: ``portfolio.drift_threshold``, times
  ``portfolio.volatile_drift_multiplier`` in the VOLATILE regime (a wider band when prices
  swing, so noise does not trade).
* **Cost band** (a view with ``band > 0``, :mod:`cryptoj.portfolio.costs`). Around ``w`` a
  no-trade region ``[w − b, w + b]`` (:func:`band_edges`: not below 0, not above
  ``max(w, cap) + θ``), ``b`` at least ``θ`` and at least the round trip's cost rate. Inside
  it nothing trades; outside it the leg goes back to the nearest edge (``θ/2`` inside it,
  never past ``w``), not to the target (:func:`band_trade`). A product whose size risk cut
  (``risk_reduce``: a risk level or an unwind plan lowered the size multiplier), or that is
  more than ``θ`` above its cap, sells to its target as soon as it is ``θ`` above it: costs
  never hold back a reduction risk asks for. A target of 0 always closes.
* **Side and size.** ``d > 0`` buys ``d / ask`` (sized at the ask, so the new position valued at
  the mid stays within its target), ``d < 0`` sells ``|d| / mid`` (everything when ``w = 0``),
  never more than is available; quantities are floored to the base increment. Buys are dropped
  for products that may only reduce (risk level REDUCING, a stale feed, the emergency
  programme's reduce-only plans).
* **Liquidity** (:class:`LegRules`). ``D`` is the size visible at the touch the leg takes from
  (the ask for a buy, the bid for a sell). A leg never asks for more than
  ``max_depth_multiple·D`` (the rest waits for the next transaction); a leg above
  ``depth_share·D`` (``execution.max_depth_share``, the ExecutionActor's setting, tested with
  its own :func:`~cryptoj.execution.splitting.beyond_depth`) is marked ``beyond_depth``: the
  ExecutionActor splits such orders over time (TWAP against the visible depth), and with
  ``portfolio.limit_bps > 0`` it goes as a LIMIT order at the touch ± ``limit_bps`` so its
  children cannot chase the price. Legs within the depth go whole at market.
* **Order.** Sells first, then buys (each group by product): a transaction never holds more
  exposure than before it or after it.

Buys are funded from cash reserved when the plan is made (:func:`fund_buys`): a buy costs at
most ``quantity × price × BUY_HEADROOM × (1 + fee)`` (``price`` the ask, or the limit); when the
available cash does not cover every buy, the buys shrink in proportion (a sale's proceeds are
spent by the next transaction, never counted on in advance).

Example: E = 100,000 USD, BTC at 7,000 / 7,001 with 2 BTC at the ask, q = 0, w = 0.10,
θ = 0.005, share 0.25, multiple 5 → d = 10,000 → 1.42836737 BTC; 1.428 > 0.25 × 2, so the leg
is ``beyond_depth`` (0.71 × D) and goes to execution's splitting; reserved 1.42836737 × 7,001
× 1.02 × 1.006 = 10,261.20 USD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from cryptoj.execution.splitting import beyond_depth
from cryptoj.models.market import Quote
from cryptoj.models.orders import OrderType, Side

BASE_INCREMENT = Decimal("0.00000001")
PRICE_INCREMENT = Decimal("0.00000001")
#: Headroom reserved above the touch price for a market buy (slippage walk) before fees.
BUY_HEADROOM = Decimal("1.02")
ZERO = Decimal(0)


@dataclass(frozen=True)
class LegRules:
    """How legs are sized against the visible depth (module docstring, *Liquidity*)."""

    depth_share: float = 0.25
    max_depth_multiple: float = 5.0  # 0: no cap
    limit_bps: float = 0.0  # 0: legs go at market
    increment: Decimal = BASE_INCREMENT


@dataclass(frozen=True)
class ProductView:
    """What the planner needs of one product."""

    product: str
    quantity: Decimal
    available: Decimal
    quote: Quote
    target: float
    threshold: float
    reduce_only: bool = False
    #: cost band half-width, fraction of equity (:func:`~cryptoj.portfolio.costs.cost_band`);
    #: 0: the plain drift rule (trade to the target once ``|d| >= threshold·E``)
    band: float = 0.0
    cap: float = 1.0  # the product's weight cap: the band never holds more than cap + threshold
    risk_reduce: bool = False  # risk cut the size (level, plan): sells go to target, no band


@dataclass(frozen=True)
class LegPlan:
    """One leg of a planned transaction."""

    product: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    visible: Decimal  # size at the touch the leg takes from
    beyond_depth: bool  # larger than depth_share × visible: execution splits it
    depth_capped: bool  # shrunk to max_depth_multiple × visible
    target_weight: float
    current_weight: float
    touch: Decimal  # best price on the side the leg takes from (ask for a buy, bid for a sell)

    @property
    def depth_multiple(self) -> float:
        """quantity ÷ visible size (inf without a visible size)."""
        return float(self.quantity / self.visible) if self.visible > 0 else float("inf")

    def price(self) -> Decimal:
        """The price a buy is funded at: its limit, else the touch it takes from."""
        return self.limit_price if self.limit_price is not None else self.touch


def drift_threshold(base: float, regime: str | None, volatile_multiplier: float) -> float:
    """The drift band of one product: ``base``, times ``volatile_multiplier`` when VOLATILE."""
    if base < 0 or volatile_multiplier < 1:
        raise ValueError(
            f"drift threshold: base must be >= 0 and the volatile multiplier >= 1, "
            f"got {base} and {volatile_multiplier}"
        )
    return base * volatile_multiplier if regime == "VOLATILE" else base


def plan_legs(equity: Decimal, views: Sequence[ProductView], rules: LegRules) -> list[LegPlan]:
    """The legs that move the listed products to their targets: sells first, then buys."""
    if equity <= 0:
        return []
    sells: list[LegPlan] = []
    buys: list[LegPlan] = []
    for v in sorted(views, key=lambda v: v.product):
        leg = _plan_one(equity, v, rules)
        if leg is not None:
            (sells if leg.side == Side.SELL else buys).append(leg)
    return sells + buys


def _plan_one(equity: Decimal, v: ProductView, rules: LegRules) -> LegPlan | None:
    q = v.quote
    mid = q.mid
    if mid <= 0 or not 0 <= v.target <= 1:
        return None
    value = v.quantity * mid
    current = float(value / equity)
    diff = Decimal(repr(v.target)) * equity - value
    closing = v.target == 0 and v.quantity > 0
    if v.band > 0 and not closing:
        diff = band_trade(v.target, current, v.band, v.threshold, v.cap, v.risk_reduce) * equity
        if diff == 0:
            return None
    elif abs(diff) < Decimal(repr(v.threshold)) * equity and not closing:
        return None
    side = Side.BUY if diff > 0 else Side.SELL
    if side == Side.BUY and v.reduce_only:
        return None
    unit = q.ask if side == Side.BUY and q.ask > mid else mid
    qty = (abs(diff) / unit).quantize(rules.increment, rounding=ROUND_DOWN)
    if side == Side.SELL:
        qty = v.available if closing else min(qty, v.available)
    visible = q.ask_size if side == Side.BUY else q.bid_size
    capped = False
    if rules.max_depth_multiple > 0 and visible > 0:
        most = (visible * Decimal(repr(rules.max_depth_multiple))).quantize(
            rules.increment, rounding=ROUND_DOWN
        )
        if qty > most:
            qty, capped = most, True
    if qty <= 0:
        return None
    beyond = visible <= 0 or beyond_depth(
        qty, visible, Decimal(repr(rules.depth_share)), rules.increment
    )
    touch = q.ask if side == Side.BUY else q.bid
    limit: Decimal | None = None
    if beyond and rules.limit_bps > 0:
        offset = Decimal(repr(rules.limit_bps)) / Decimal(10_000)
        if side == Side.BUY:
            limit = (touch * (1 + offset)).quantize(PRICE_INCREMENT, rounding=ROUND_DOWN)
        else:
            limit = (touch * (1 - offset)).quantize(PRICE_INCREMENT, rounding=ROUND_UP)
    return LegPlan(
        product=v.product,
        side=side,
        quantity=qty,
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=limit,
        visible=visible,
        beyond_depth=beyond,
        depth_capped=capped,
        target_weight=v.target,
        current_weight=current,
        touch=touch,
    )


def band_edges(target: float, band: float, threshold: float, cap: float) -> tuple[float, float]:
    """The no-trade region ``[lower, upper]`` of weights around ``target``: ``target ± band``,
    never below 0 and never above ``max(target, cap) + threshold`` (the band does not let a
    position grow past its risk cap by more than the drift rule does)."""
    lower = max(0.0, target - band)
    upper = min(target + band, max(target, cap) + threshold)
    return lower, upper


def band_trade(
    target: float, current: float, band: float, threshold: float, cap: float, risk_reduce: bool
) -> Decimal:
    """The weight change the cost band asks for (module docstring, *Cost band*); 0 inside it.

    Outside the band the trade goes back to its edge and ``threshold / 2`` beyond it, into the
    band (so the spread a buy is sized at, the floor to the increment or the next tick do not
    put it straight back outside), never past the target. With ``risk_reduce``, or above its
    risk cap by more than ``threshold``, a position above ``target + threshold`` is sold to the
    target: a reduction risk demands is not held back by costs.
    """
    over_cap = current > cap + threshold
    if (risk_reduce or over_cap) and current > target + threshold:
        return Decimal(repr(target)) - Decimal(repr(current))
    lower, upper = band_edges(target, band, threshold, cap)
    if current < lower:
        return Decimal(repr(min(lower - current + threshold / 2, target - current)))
    if current > upper:
        return -Decimal(repr(min(current - upper + threshold / 2, current - target)))
    return ZERO


def buy_cost(quantity: Decimal, price: Decimal, fee: Decimal) -> Decimal:
    """The most a buy of ``quantity`` at ``price`` may cost: with headroom and fee."""
    return quantity * price * BUY_HEADROOM * (1 + fee)


def buy_cap(reserved_cash: Decimal, quantity: Decimal, fee: Decimal) -> Decimal | None:
    """The highest price a market buy of ``quantity`` holding ``reserved_cash`` may fill at
    (``SubmitOrder.max_price``): at it, quantity × price × (1 + fee) is exactly the reservation
    (rounded down to the price increment), so no fill costs more than was reserved. None when
    nothing is reserved."""
    if reserved_cash <= 0 or quantity <= 0:
        return None
    return (reserved_cash / (quantity * (1 + fee))).quantize(PRICE_INCREMENT, rounding=ROUND_DOWN)


def fund_buys(legs: Sequence[LegPlan], available_cash: Decimal, fee: Decimal) -> list[LegPlan]:
    """The legs with the buys shrunk (in proportion) to what ``available_cash`` covers.

    Buys that shrink to nothing are dropped; sells are unchanged. ``available_cash`` can be
    negative after a fill cost more than its reservation (see
    :meth:`~cryptoj.portfolio.ledger.Ledger.overdraft`): then every buy is dropped.
    """
    cost = sum((buy_cost(g.quantity, g.price(), fee) for g in legs if g.side == Side.BUY), ZERO)
    if cost <= max(ZERO, available_cash):
        return list(legs)
    ratio = max(ZERO, available_cash) / cost  # cost > 0 here: there is at least one buy
    out: list[LegPlan] = []
    for g in legs:
        if g.side == Side.BUY:
            qty = (g.quantity * ratio).quantize(BASE_INCREMENT, rounding=ROUND_DOWN)
            if qty <= 0:
                continue
            g = replace(g, quantity=qty)
        out.append(g)
    return out
