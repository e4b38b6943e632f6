"""The order state machine of one Coinbase order: cumulative reports → fill deltas (pure).

Coinbase reports every order **cumulatively**, from several sources that may overlap, repeat
and arrive in any order: the create response, the ``user`` websocket channel (PENDING, OPEN,
then cumulative ``cumulative_quantity`` / ``filled_value`` / ``total_fees``; everything again
after a reconnect or a replay), and REST reads (``filled_size`` / ``filled_value`` /
``total_fees``) during reconciliation. :class:`OrderTracker` turns all of them into the events
cryptoj's actors understand, exactly once:

* **Fills are deltas beyond a baseline.** The tracker knows the cumulative quantity, value
  (notional) and fees it has already turned into fills. An :class:`OrderUpdate` with a larger
  cumulative quantity yields one :class:`~cryptoj.models.orders.Fill` for the difference; an
  equal or smaller one yields nothing (a duplicate, or a stale report). After a restart the
  baseline is what the journal holds for the order (:meth:`OrderTracker.restore`).
* **Fill identity is the cumulative point**: ``fill_id = f"{venue_order_id}:{cumulative}"`` with
  the cumulative quantity in plain notation. The same point reported by two sources, or by one
  source twice, or derived again after a restart from the same baseline, gets the same id,
  and the portfolio (which deduplicates by fill id) counts it once.
* **Exact cash**: ``price = Δvalue / Δquantity`` rounded **up** at 40 significant digits, so that
  ``Fill.notional`` (quantity × price truncated to 1e-8) equals the venue's Δvalue exactly
  whenever Δvalue is a multiple of 1e-8 (base-sized orders), and ``fee = Δfees``. When Δvalue
  is finer than 1e-8 (a quote-sized market buy: Coinbase reports ``filled_value`` and
  ``total_fees`` with 16 decimals, summing to the quote size), the fill carries Δvalue itself
  as :attr:`~cryptoj.models.orders.Fill.value`, so the books take Coinbase's digits. The sums
  over the fills then equal the venue's cumulative value and fees, and a quote-sized buy's
  cash change equals ``total_value_after_fees`` to the last digit.
  A dust fill whose notional truncated to 0 (Δvalue = 0) gets a price below 1e-8 / Δquantity
  (the report's average price when it qualifies), so its notional is 0 too.
* **States never regress**: PENDING (0) < OPEN (1) < terminal (2); a report of a lower rank
  changes nothing. An OPEN report before the create response is fine (the venue order id is
  learned from whichever source names it first, and :class:`OrderAccepted` is emitted once).
  The first terminal status wins; reaching it emits one :class:`OrderClosed` after the fill
  that completes the order. Coinbase statuses map as: PENDING/QUEUED → PENDING; OPEN,
  CANCEL_QUEUED, EDIT_QUEUED → OPEN; FILLED, CANCELLED, EXPIRED; FAILED → REJECTED; anything
  else leaves the status alone.
* A fill that a source reports after the terminal status is still booked (the venue wins).

Anomalies (a cumulative value or fee going down while the quantity grows, a report naming a
different venue order id for the same client order id) are counted in
:attr:`OrderTracker.anomalies` and handled conservatively (see :meth:`OrderTracker.apply`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, Context, Decimal

import msgspec

from cryptoj.adapters.coinbase.execution.quantize import plain
from cryptoj.models.base import Message
from cryptoj.models.orders import (
    CASH_QUANTUM,
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderStatus,
    OrderType,
    Side,
)

_PRICE = Context(prec=40, rounding=ROUND_CEILING)
_CALC = Context(prec=60, rounding=ROUND_DOWN)
_ZERO = Decimal(0)

STATUS_MAP: dict[str, OrderStatus] = {
    "PENDING": OrderStatus.PENDING,
    "QUEUED": OrderStatus.PENDING,
    "OPEN": OrderStatus.OPEN,
    "CANCEL_QUEUED": OrderStatus.OPEN,
    "EDIT_QUEUED": OrderStatus.OPEN,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.EXPIRED,
    "FAILED": OrderStatus.REJECTED,
}


def rank(status: OrderStatus) -> int:
    """0 for PENDING, 1 for OPEN, 2 for every terminal status."""
    if status is OrderStatus.PENDING:
        return 0
    return 2 if status.terminal else 1


def fill_price(value_delta: Decimal, quantity_delta: Decimal) -> Decimal:
    """``value_delta / quantity_delta`` rounded up at 40 digits (see the module docstring)."""
    return _PRICE.divide(value_delta, quantity_delta)


def fill_id(venue_order_id: str, cumulative_quantity: Decimal) -> str:
    """The deterministic id of the fill that brings an order to ``cumulative_quantity``."""
    return f"{venue_order_id}:{plain(cumulative_quantity)}"


class OrderUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """One cumulative report of an order, normalised from any source."""

    venue_order_id: str
    client_order_id: str
    status: str = ""  # Coinbase's status text
    filled_size: Decimal | None = None
    filled_value: Decimal | None = None
    total_fees: Decimal | None = None
    average_price: Decimal | None = None
    reason: str = ""  # reject / cancel reason, if any
    source: str = ""  # "create", "user", "rest", "reconcile" (diagnostics only)


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    """A read-only view of a tracked order (what ``CoinbaseVenue.get_order`` returns)."""

    client_order_id: str
    venue_order_id: str
    product: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    filled_quantity: Decimal
    filled_value: Decimal
    fees: Decimal
    average_price: Decimal | None
    created_ts: int
    updated_ts: int
    fills: tuple[Fill, ...]
    reason: str = ""


@dataclass
class OrderTracker:
    """The state of one order (see the module docstring); not thread-safe on its own."""

    client_order_id: str
    product: str
    side: Side
    order_type: OrderType
    created_ts: int
    post_only: bool = False
    venue_order_id: str | None = None
    status: OrderStatus = OrderStatus.PENDING
    filled_quantity: Decimal = _ZERO
    filled_value: Decimal = _ZERO
    fees: Decimal = _ZERO
    updated_ts: int = 0
    reason: str = ""
    fills: list[Fill] = field(default_factory=list)
    ignored: int = 0  # reports that changed nothing (duplicates, stale, replays)
    anomalies: int = 0
    anomaly_notes: list[str] = field(default_factory=list)

    # -- queries ---------------------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """True once the venue named its order id for this client order id."""
        return self.venue_order_id is not None

    @property
    def terminal(self) -> bool:
        """True once a terminal status was reached."""
        return self.status.terminal

    def view(self) -> OrderView:
        """A snapshot; an accepted order is reported OPEN until a terminal status."""
        status = self.status
        if status is OrderStatus.PENDING and self.accepted:
            status = OrderStatus.OPEN
        avg = (
            _PRICE.divide(self.filled_value, self.filled_quantity)
            if self.filled_quantity > 0
            else None
        )
        return OrderView(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id or "",
            product=self.product,
            side=self.side,
            order_type=self.order_type,
            status=status,
            filled_quantity=self.filled_quantity,
            filled_value=self.filled_value,
            fees=self.fees,
            average_price=avg,
            created_ts=self.created_ts,
            updated_ts=self.updated_ts,
            fills=tuple(self.fills),
            reason=self.reason,
        )

    # -- changes ---------------------------------------------------------------------------

    def restore(self, quantity: Decimal, value: Decimal, fees: Decimal) -> None:
        """Set the baseline to what is already booked (the journal's fills after a restart).

        Only raises the baseline: a tracker that already knows more keeps what it knows.
        """
        if quantity > self.filled_quantity:
            self.filled_quantity, self.filled_value, self.fees = quantity, value, fees

    def learn_id(self, venue_order_id: str, ts: int) -> list[Message]:
        """The venue named the order: emit :class:`OrderAccepted` the first time."""
        if not venue_order_id:
            return []
        if self.venue_order_id is None:
            self.venue_order_id = venue_order_id
            self.updated_ts = ts
            return [
                OrderAccepted(
                    ts=ts, client_order_id=self.client_order_id, venue_order_id=venue_order_id
                )
            ]
        if venue_order_id != self.venue_order_id:
            self._anomaly(
                f"venue order id {venue_order_id} reported for {self.client_order_id}, "
                f"known as {self.venue_order_id}"
            )
        return []

    def refuse(self, reason: str, ts: int) -> None:
        """The create was refused (``success: false`` or a local check): REJECTED, no events."""
        if rank(self.status) < 2:
            self.status = OrderStatus.REJECTED
            self.reason = reason
            self.updated_ts = ts

    def apply(self, u: OrderUpdate, ts: int) -> list[Message]:
        """Apply one cumulative report; return the events it causes, in order.

        A report for another venue order id is ignored (counted as an anomaly). A quantity
        increase with a missing value falls back to ``average_price × quantity``; a value or
        fee that decreased is treated as no change of that figure (anomaly), the fill then being
        priced at the report's average price.
        """
        if u.client_order_id and u.client_order_id != self.client_order_id:
            self._anomaly(f"report for {u.client_order_id} applied to {self.client_order_id}")
            return []
        if self.venue_order_id is not None and u.venue_order_id not in ("", self.venue_order_id):
            self._anomaly(
                f"report names venue order {u.venue_order_id}, tracker has {self.venue_order_id}"
            )
            return []
        events = self.learn_id(u.venue_order_id, ts)
        changed = bool(events)
        fill = self._fill_from(u, ts)
        if fill is not None:
            events.append(fill)
            changed = True
        new = STATUS_MAP.get((u.status or "").upper())
        if new is not None and rank(new) > rank(self.status):
            self.status = new
            self.updated_ts = ts
            changed = True
            if u.reason:
                self.reason = u.reason
            if new.terminal:
                events.append(
                    OrderClosed(
                        ts=ts,
                        client_order_id=self.client_order_id,
                        product=self.product,
                        status=new,
                        filled_quantity=self.filled_quantity,
                    )
                )
        if not changed:
            self.ignored += 1
        return events

    def _fill_from(self, u: OrderUpdate, ts: int) -> Fill | None:
        qty = u.filled_size
        if qty is None or qty <= self.filled_quantity:
            return None
        vid = self.venue_order_id or u.venue_order_id
        if not vid:
            return None
        dq = _CALC.subtract(qty, self.filled_quantity)
        value = u.filled_value
        if value is None and u.average_price is not None:
            value = _CALC.multiply(u.average_price, qty).quantize(CASH_QUANTUM, context=_CALC)
        dv = _CALC.subtract(value, self.filled_value) if value is not None else None
        price: Decimal | None = None
        if dv is not None and dv == 0:
            # a legitimate dust fill whose notional truncated to 0: any price below 1e-8 / Δq
            # books 0; prefer the reported average price when it qualifies
            ceiling = _CALC.divide(CASH_QUANTUM, dq)
            avg = u.average_price
            price = avg if avg is not None and 0 < avg < ceiling else _CALC.divide(ceiling, 2)
        elif dv is None or dv < 0:
            self._anomaly(
                f"{self.client_order_id}: quantity rose to {qty} but the value did not "
                f"({value} after {self.filled_value})"
            )
            avg = u.average_price
            if avg is None or avg <= 0:
                avg = (
                    _PRICE.divide(self.filled_value, self.filled_quantity)
                    if self.filled_quantity > 0
                    else None
                )
            if avg is None or avg <= 0:
                return None  # nothing to price it with: wait for a complete report
            dv = _CALC.multiply(avg, dq).quantize(CASH_QUANTUM, context=_CALC)
            value = _CALC.add(self.filled_value, dv)
        fees = u.total_fees if u.total_fees is not None else self.fees
        df = _CALC.subtract(fees, self.fees)
        if df < 0:
            self._anomaly(f"{self.client_order_id}: total fees fell from {self.fees} to {fees}")
            df, fees = _ZERO, self.fees
        assert value is not None and dv is not None
        fill = Fill(
            ts=ts,
            fill_id=fill_id(vid, qty),
            client_order_id=self.client_order_id,
            product=self.product,
            side=self.side,
            quantity=dq,
            price=price if price is not None else fill_price(dv, dq),
            fee=df,
            liquidity=self._liquidity(),
        )
        if fill.notional != dv:  # finer than 1e-8 (quote-sized buys): book Coinbase's digits
            fill = msgspec.structs.replace(fill, value=dv)
        self.filled_quantity, self.filled_value, self.fees = qty, value, fees
        self.updated_ts = ts
        self.fills.append(fill)
        return fill

    def _liquidity(self) -> str:
        if self.order_type is OrderType.MARKET:
            return "TAKER"
        if self.post_only or self.status is OrderStatus.OPEN:
            return "MAKER"  # it rested before this fill
        return "TAKER"

    def _anomaly(self, note: str) -> None:
        self.anomalies += 1
        if len(self.anomaly_notes) < 20:
            self.anomaly_notes.append(note)


__all__ = [
    "STATUS_MAP",
    "OrderTracker",
    "OrderUpdate",
    "OrderView",
    "fill_id",
    "fill_price",
    "rank",
]
