"""The paper venue's model (pure): amounts and their rounding, order records, holds and the
book walk. :class:`~cryptoj.venues.paper.PaperExchange` documents the models (matching,
slippage, rounding) and holds the state; this module computes on what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)

import msgspec

from cryptoj.models.market import Quote
from cryptoj.models.orders import Fill, OrderStatus, OrderType, Side

QUANTUM = Decimal("1e-8")
"""The increment of base quantities, cash and fees."""

MAX_MAGNITUDE = Decimal("1e15")
"""Prices, sizes, quantities and cash must be below this (keeps all arithmetic exact)."""

DECIMAL_CONTEXT = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""The venue's decimal context (never the thread's ambient one): exact within
:data:`MAX_MAGNITUDE`."""
_AVG_CTX = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero])
_ZERO = Decimal(0)


def trunc8(x: Decimal) -> Decimal:
    """``x`` truncated (toward zero) to :data:`QUANTUM`."""
    return x.quantize(QUANTUM, rounding=ROUND_DOWN, context=DECIMAL_CONTEXT)


def ceil8(x: Decimal) -> Decimal:
    """``x`` rounded up to :data:`QUANTUM` (holds)."""
    return x.quantize(QUANTUM, rounding=ROUND_CEILING, context=DECIMAL_CONTEXT)


def notional_of(quantity: Decimal, price: Decimal) -> Decimal:
    """``quantity × price`` truncated to 1e-8: the quote-currency value of one fill."""
    return trunc8(DECIMAL_CONTEXT.multiply(quantity, price))


def fee_of(notional: Decimal, rate: Decimal) -> Decimal:
    """``notional × rate`` truncated to 1e-8: the fee of one fill."""
    return trunc8(DECIMAL_CONTEXT.multiply(notional, rate))


def fill_notional(fill: Fill) -> Decimal:
    """The notional the venue booked for ``fill`` (quantity × price, truncated to 1e-8)."""
    return notional_of(fill.quantity, fill.price)


def fill_cash_delta(fill: Fill) -> Decimal:
    """The change of the quote-currency balance caused by ``fill`` (negative for a BUY)."""
    return fill.cash_delta


def as_amount(x: object) -> Decimal | None:
    """``x`` as a finite Decimal of sane magnitude, or None."""
    if isinstance(x, Decimal):
        d = x
    elif isinstance(x, int) and not isinstance(x, bool):
        d = Decimal(x)
    else:
        return None
    if not d.is_finite() or d.copy_abs() >= MAX_MAGNITUDE:
        return None
    return d


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """A read-only snapshot of one order as the venue sees it.

    ``average_price`` is the quantity-weighted price of the fills (None before the first fill);
    ``held`` is what the order holds now (quote currency for a BUY, base for a SELL, 0 once
    closed); ``fills`` are the :class:`Fill` messages of the order, oldest first.
    """

    client_order_id: str
    venue_order_id: str
    product: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    post_only: bool
    status: OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None
    held: Decimal
    created_ts: int
    updated_ts: int
    fills: tuple[Fill, ...]

    @property
    def remaining(self) -> Decimal:
        """Quantity not filled yet."""
        return self.quantity - self.filled_quantity


@dataclass(slots=True)
class OrderRecord:
    """The venue's mutable record of one accepted order (:class:`VenueOrder` is its snapshot)."""

    client_order_id: str
    venue_order_id: str
    product: str
    base: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    post_only: bool
    created_ts: int
    seq: int
    status: OrderStatus = OrderStatus.OPEN
    filled: Decimal = _ZERO
    value: Decimal = _ZERO  # Σ quantity × price (exact), for the average price
    hold: Decimal = _ZERO
    updated_ts: int = 0
    fills: list[Fill] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled

    def snapshot(self) -> VenueOrder:
        avg = _AVG_CTX.divide(self.value, self.filled) if self.filled > 0 else None
        return VenueOrder(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            product=self.product,
            side=self.side,
            order_type=self.order_type,
            quantity=self.quantity,
            limit_price=self.limit_price,
            post_only=self.post_only,
            status=self.status,
            filled_quantity=self.filled,
            average_price=avg,
            held=self.hold,
            created_ts=self.created_ts,
            updated_ts=self.updated_ts,
            fills=tuple(self.fills),
        )


def limit_of(o: OrderRecord) -> Decimal:
    """The limit price of a resting order (every resting order is a LIMIT order)."""
    assert o.limit_price is not None
    return o.limit_price


@dataclass(frozen=True, slots=True)
class Take:
    """One planned taker execution of a walk."""

    quantity: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal


def buy_hold(remaining: Decimal, limit: Decimal, maker_fee: Decimal) -> Decimal:
    """What a resting BUY of ``remaining`` at ``limit`` holds: its cost with the maker fee,
    rounded up (call in :data:`DECIMAL_CONTEXT`)."""
    return ceil8(remaining * limit * (1 + maker_fee))


def required_hold(o: OrderRecord, maker_fee: Decimal) -> Decimal:
    """What ``o`` must hold now: 0 unless open; a SELL its remaining base quantity, a BUY
    :func:`buy_hold` (see the paper venue's module docstring)."""
    if o.status is not OrderStatus.OPEN:
        return _ZERO
    if o.side is Side.SELL:
        return o.remaining
    return buy_hold(o.remaining, limit_of(o), maker_fee)


def book_levels(
    book: Quote, side: Side, depth: int, spacing: Decimal, taken: Decimal
) -> list[tuple[Decimal, Decimal]]:
    """The (price, size) levels an order on ``side`` walks on ``book`` (*Slippage model*):
    ``depth`` levels ``step = max(spread, spacing × mid)`` apart, less the ``taken`` quantity
    our earlier fills took from this quote (``deplete_book``). Call in :data:`DECIMAL_CONTEXT`."""
    mid = (book.bid + book.ask) / 2
    step = max(book.ask - book.bid, spacing * mid)
    if side is Side.BUY:
        touch, size, sign = book.ask, book.ask_size, 1
    else:
        touch, size, sign = book.bid, book.bid_size, -1
    out = [(touch, size)]  # level 0: the recorded top, price exactly as quoted
    for k in range(1, depth):
        price = touch + sign * k * step
        if price <= 0:
            break
        out.append((price, size))
    if taken <= 0:
        return out
    left: list[tuple[Decimal, Decimal]] = []  # what our earlier fills on this quote left
    for price, level_size in out:
        used = min(taken, level_size)
        taken -= used
        if level_size > used:
            left.append((price, level_size - used))
    return left


def walk(
    levels: list[tuple[Decimal, Decimal]],
    side: Side,
    qty: Decimal,
    limit: Decimal | None,
    taker_fee: Decimal,
) -> list[Take]:
    """The taker executions of ``qty`` on ``side`` over ``levels``, no further than
    ``limit`` (call in :data:`DECIMAL_CONTEXT`)."""
    takes: list[Take] = []
    left = qty
    for price, size in levels:
        if left <= 0:
            break
        if limit is not None and (price > limit if side is Side.BUY else price < limit):
            break
        q = trunc8(min(left, size))
        if q <= 0:
            continue
        n = notional_of(q, price)
        takes.append(Take(q, price, n, fee_of(n, taker_fee)))
        left -= q
    return takes
