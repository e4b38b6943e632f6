"""The fake exchange's matching arithmetic (pure): walking a book by base size or by quote
size, Coinbase's split of a quote-sized buy's spend, and the stop checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal

from cryptoj.adapters.coinbase.fake.order_input import NewOrder, Rejection, reject_preview
from cryptoj.adapters.coinbase.fake.orders import Order, floor_to
from cryptoj.adapters.coinbase.fake.products import fmt

Level = tuple[Decimal, Decimal]  # (price, size)
Book = tuple[Sequence[Level], Sequence[Level]]  # (bids best first, asks best first)
Q16 = Decimal("1e-16")  # Coinbase's digits for quote-sized buys' values and fees [REC]
_FINE = Context(prec=60)


def stop_crossed(n: NewOrder, last_trade: Decimal | None) -> Rejection | None:
    """Coinbase's refusal of a stop order that would trigger at once: a ``STOP_DOWN`` stop at or
    above the last trade (``PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE``), a ``STOP_UP`` stop at
    or below it (``..._BELOW_...``); ``success:false`` with the reason in ``error`` and
    ``preview_failure_reason`` (as clients of the real API read it [ISSUE/INF]; the equal case
    is our reading)."""
    if n.kind != "stop_limit" or n.stop_price is None or last_trade is None:
        return None
    if n.stop_direction == "STOP_DIRECTION_STOP_DOWN" and n.stop_price >= last_trade:
        where = "ABOVE"
    elif n.stop_direction == "STOP_DIRECTION_STOP_UP" and n.stop_price <= last_trade:
        where = "BELOW"
    else:
        return None
    return reject_preview(
        f"PREVIEW_STOP_PRICE_{where}_LAST_TRADE_PRICE",
        f"stop price {fmt(n.stop_price)} is {where.lower()} the last trade price {fmt(last_trade)}",
    )


def crossing(side: str, limit: Decimal, bids: Sequence[Level], asks: Sequence[Level]) -> bool:
    """Whether a limit at ``limit`` on ``side`` would take liquidity now."""
    if side == "BUY":
        return bool(asks) and asks[0][0] <= limit
    return bool(bids) and bids[0][0] >= limit


def hits(o: Order, price: Decimal) -> bool:
    """Whether a trade at ``price`` triggers the stop order ``o``."""
    assert o.stop_price is not None
    if o.stop_direction == "STOP_DIRECTION_STOP_UP":
        return price >= o.stop_price
    return price <= o.stop_price


def walk_base(levels: Sequence[Level], size: Decimal, increment: Decimal) -> list[Level]:
    """Take ``size`` from the levels, best first: ``[(price, size), ...]`` (may fall short)."""
    left, out = size, []
    for price, avail in levels:
        take = min(left, floor_to(avail, increment))
        if take > 0:
            out.append((price, take))
            left -= take
        if left <= 0:
            break
    return out


@dataclass(frozen=True, slots=True)
class QuoteTake:
    """One fill of a quote-sized market buy: ``value + fee`` is what it spent (exactly)."""

    price: Decimal
    size: Decimal  # base
    value: Decimal  # quote, fee excluded (16 decimals)
    fee: Decimal  # quote (16 decimals)


def split_spend(spend: Decimal, rate: Decimal) -> tuple[Decimal, Decimal]:
    """A quote-sized buy's spend → ``(value, fee)``: value ``spend / (1 + rate)`` truncated to
    16 decimals, the fee the rest, so ``value + fee == spend`` exactly (the recorded Coinbase
    order: 6.36 at 0.6 % → 6.3220675944333996 + 0.0379324055666004)."""
    value = _FINE.divide(spend, 1 + rate).quantize(Q16, ROUND_DOWN, context=_FINE)
    return value, spend - value


def walk_quote(
    levels: Sequence[Level], budget: Decimal, rate: Decimal, increment: Decimal
) -> tuple[list[QuoteTake], bool]:
    """Spend ``budget`` (value + fee at ``rate``) on the levels, best first, as Coinbase does:
    whole levels (their size floored to ``increment``) while the budget lasts, then the rest of
    the budget at the next level, its base size ``value / price`` truncated to 16 decimals (not
    to the base increment). Returns the takes and whether the budget (not the book) ended it.
    """
    left, out = budget, []
    for price, avail in levels:
        have = floor_to(avail, increment)
        if have <= 0:
            continue
        whole = _FINE.multiply(_FINE.multiply(price, have), 1 + rate)
        if whole < left:
            value = _FINE.multiply(price, have)
            out.append(QuoteTake(price, have, value, whole - value))
            left -= whole
            continue
        value, fee = split_spend(left, rate)
        size = _FINE.divide(value, price).quantize(Q16, ROUND_DOWN, context=_FINE)
        if size > 0:
            out.append(QuoteTake(price, size, value, fee))
        return out, True
    return out, False
