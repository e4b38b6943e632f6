"""The rebalance planner: from a target weight to one order (or a reason not to trade). Pure.

Given equity E, the current position value V = q·p and the target weight w (after the risk
caps), the order moves V toward w·E:

* ``w < min_position_size`` with w > 0 → treated as 0 (too small a position is not opened);
* a trade smaller than ``min_trade_fraction``·E is skipped (no churn around the target);
* at REDUCING only trades that shrink the position pass; at HALTED nothing passes;
* quantities are floored to the venue's base increment (1e-8 by default); buys are sized at the
  ask, so the new position valued at the mid stays within the target.

Example: E = 100,000 USD, BTC at 7,000, q = 0, w = 0.10 → buy 10,000 / 7,000 = 1.42857142 BTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from cryptoj.models.orders import Side
from cryptoj.models.risk import RiskLevel

BASE_INCREMENT = Decimal("0.00000001")


@dataclass(frozen=True)
class PlannedOrder:
    """What the planner decided."""

    side: Side
    quantity: Decimal
    target_weight: float


def plan_rebalance(
    *,
    equity: Decimal,
    quantity: Decimal,
    price: Decimal,
    ask: Decimal | None = None,
    target_weight: float,
    min_position_size: float,
    min_trade_fraction: float,
    level: RiskLevel,
) -> PlannedOrder | str:
    """Plan one order toward ``target_weight``; return it, or the reason for not trading."""
    if level == RiskLevel.HALTED:
        return "risk level HALTED: no new orders"
    if price <= 0 or equity <= 0:
        return f"no valid price/equity (price {price}, equity {equity})"
    w = target_weight if target_weight >= min_position_size else 0.0
    target_value = Decimal(repr(w)) * equity
    diff = target_value - quantity * price
    if abs(diff) < Decimal(repr(min_trade_fraction)) * equity and not (w == 0 and quantity > 0):
        return "within band of target"
    side = Side.BUY if diff > 0 else Side.SELL
    if level == RiskLevel.REDUCING and side == Side.BUY:
        return "risk level REDUCING: only exposure-reducing orders"
    # Buys are sized at the ask, so the position valued at ``price`` never exceeds the target.
    unit = ask if side == Side.BUY and ask is not None and ask > price else price
    qty = (abs(diff) / unit).quantize(BASE_INCREMENT, rounding=ROUND_DOWN)
    if side == Side.SELL:
        qty = min(qty, quantity) if w > 0 else quantity
    if qty <= 0:
        return "order rounds to zero"
    return PlannedOrder(side, qty, w)
