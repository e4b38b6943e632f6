"""Orders, venue events and the reconciliation protocol between Portfolio and Execution."""

from __future__ import annotations

import enum
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Context, Decimal

from cryptoj.models.base import Message


class Side(enum.StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    """Order types cryptoj submits."""

    MARKET = "MARKET"  # IOC at the venue
    LIMIT = "LIMIT"  # GTC
    STOP_LIMIT = "STOP_LIMIT"  # GTC limit order that rests once stop_price trades (Coinbase only)


class OrderStatus(enum.StrEnum):
    """Order states. Terminal: FILLED, CANCELLED, REJECTED, EXPIRED."""

    PENDING = "PENDING"  # journalled, not yet acknowledged by the venue
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"  # IOC remainder that found no liquidity

    @property
    def terminal(self) -> bool:
        """True when no more fills can follow."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class SubmitOrder(Message, frozen=True, kw_only=True):
    """Portfolio → Execution: send this order. Funds are already reserved under its id."""

    client_order_id: str
    product: str
    side: Side
    order_type: OrderType
    quantity: Decimal  # base units
    limit_price: Decimal | None = None
    post_only: bool = False
    reason: str = ""
    stop_price: Decimal | None = None  # STOP_LIMIT only
    #: False: the order must go whole, now (unwind slices, stop-loss exits, compensations);
    #: True: the ExecutionActor may split it over time (README "Order splitting").
    split: bool = True
    #: MARKET BUY only: never fill above this price (the venue walks the book no further and
    #: the rest expires; on Coinbase a limit IOC at this price). The portfolio sets it to the
    #: price its cash reservation was funded at, so a fill never costs more than reserved.
    max_price: Decimal | None = None


class CancelOrder(Message, frozen=True, kw_only=True):
    """Cancel one order by client order id."""

    client_order_id: str


class CancelAllOrders(Message, frozen=True, kw_only=True):
    """Cancel every open order (used by shutdown and at the end of a replay)."""

    reason: str


class OrderAccepted(Message, frozen=True, kw_only=True):
    """The venue acknowledged the order."""

    client_order_id: str
    venue_order_id: str


class OrderRejected(Message, frozen=True, kw_only=True):
    """The venue (or a pre-trade check) refused the order; any reservation is released."""

    client_order_id: str
    product: str
    reason: str


class OrderOutcomeUnknown(Message, frozen=True, kw_only=True):
    """The order was sent but the venue's answer was lost and a lookup could not settle it yet.

    Returned by a venue's ``submit`` instead of OrderAccepted / OrderRejected: the order stays
    PENDING (its reservation held) and Execution keeps looking it up by ``client_order_id``
    on a timer; it is never re-posted under another id.
    """

    client_order_id: str
    product: str
    reason: str


class ReconcileVenue(Message, frozen=True, kw_only=True):
    """Venue → Execution: reconcile with me now (user channel reconnected, a sequence gap)."""

    reason: str


class VenueCallDone(Message, frozen=True, kw_only=True):
    """Venue → Execution: a call the venue made in the background is back: a read of a
    reconciliation pass or a lookup (the pass can go on, ``ReconcilingVenue.reconcile``), or
    with ``call`` ``"cancel"`` the calls of a cancel (``ReconcilingVenue.cancel_later``:
    ``cancels_back`` applies them)."""

    call: str = ""


class OrderClosed(Message, frozen=True, kw_only=True):
    """The order reached a terminal state (filled, cancelled, expired) at ``filled_quantity``."""

    client_order_id: str
    product: str
    status: OrderStatus
    filled_quantity: Decimal


_STEPS = Context(prec=60)


def floor_to(x: Decimal, increment: Decimal) -> Decimal:
    """``x`` rounded down to a multiple of ``increment`` (> 0): sizes and passive prices."""
    steps = _STEPS.divide(x, increment).to_integral_value(rounding=ROUND_FLOOR, context=_STEPS)
    return _STEPS.multiply(steps, increment)


def ceil_to(x: Decimal, increment: Decimal) -> Decimal:
    """``x`` rounded up to a multiple of ``increment`` (> 0)."""
    steps = _STEPS.divide(x, increment).to_integral_value(rounding=ROUND_CEILING, context=_STEPS)
    return _STEPS.multiply(steps, increment)


#: Smallest unit of quote currency the books keep (cash, notionals and fees are truncated to it).
CASH_QUANTUM = Decimal("0.00000001")
_MONEY = Context(prec=38, rounding=ROUND_DOWN)


class Fill(Message, frozen=True, kw_only=True):
    """One execution. ``fill_id`` is unique at the venue; receivers deduplicate on it."""

    fill_id: str
    client_order_id: str
    product: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal  # in quote currency
    liquidity: str  # "TAKER" or "MAKER"
    value: Decimal | None = None  # the venue's exact notional, when finer than CASH_QUANTUM

    @property
    def notional(self) -> Decimal:
        """What the venue booked for this fill: ``value`` when the venue reported a notional
        finer than :data:`CASH_QUANTUM` (Coinbase's quote-sized buys carry 16 decimals), else
        ``quantity × price`` truncated to :data:`CASH_QUANTUM`."""
        if self.value is not None:
            return self.value
        return _MONEY.multiply(self.quantity, self.price).quantize(CASH_QUANTUM, context=_MONEY)

    @property
    def cash_delta(self) -> Decimal:
        """Quote-currency balance change: −(notional + fee) for a BUY, notional − fee for a SELL."""
        if self.side == Side.BUY:
            return -(self.notional + self.fee)
        return self.notional - self.fee


class OrderStatusRequest(Message, frozen=True, kw_only=True):
    """Portfolio → Execution: report these orders and re-send all their fills (reconcile)."""

    client_order_ids: tuple[str, ...]


class OrderStatusReport(Message, frozen=True, kw_only=True):
    """Execution → Portfolio: ``known`` is False when Execution never received the order."""

    client_order_id: str
    known: bool
    status: OrderStatus | None = None
    filled_quantity: Decimal = Decimal(0)
