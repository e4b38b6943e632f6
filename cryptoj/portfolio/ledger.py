"""The ledger: cash, positions and reservations, with check-and-reserve. Pure, no I/O.

Reservations make concurrent decisions safe: an order is only decided after the funds it can
consume are reserved in the same step, so two rebalances can never spend the same cash or sell the
same coins. ``available_cash = cash − Σ reserved cash``; ``available(product) = position − Σ
reserved base``. A fill consumes its order's reservation pro rata; closing the order releases the
rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from cryptoj.models.orders import Fill, Side

ZERO = Decimal(0)


@dataclass
class Reservation:
    """Funds held for one open order."""

    client_order_id: str
    product: str
    side: Side
    quantity: Decimal
    cash: Decimal  # quote currency held (buys)
    base: Decimal  # base units held (sells)
    filled: Decimal = ZERO

    def _unfilled_share_of(self, amount: Decimal) -> Decimal:
        """``amount × unfilled / quantity``, multiplied before dividing so it stays exact."""
        if self.quantity <= 0:
            return ZERO
        return amount * max(ZERO, self.quantity - self.filled) / self.quantity

    @property
    def held_cash(self) -> Decimal:
        """Cash still held."""
        return self._unfilled_share_of(self.cash)

    @property
    def held_base(self) -> Decimal:
        """Base units still held."""
        return self._unfilled_share_of(self.base)


@dataclass
class Holding:
    """A position: quantity and average entry price."""

    quantity: Decimal = ZERO
    average_price: Decimal = ZERO


@dataclass
class Ledger:
    """Cash, holdings and reservations of one account."""

    cash: Decimal
    holdings: dict[str, Holding] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)

    def available_cash(self) -> Decimal:
        """Cash not held by any reservation."""
        return self.cash - sum((r.held_cash for r in self.reservations.values()), ZERO)

    def position(self, product: str) -> Decimal:
        """Quantity held of ``product``."""
        h = self.holdings.get(product)
        return h.quantity if h else ZERO

    def available(self, product: str) -> Decimal:
        """Quantity of ``product`` not held for open sells."""
        held = sum((r.held_base for r in self.reservations.values() if r.product == product), ZERO)
        return self.position(product) - held

    def has_open_order(self, product: str) -> bool:
        """True while an order for ``product`` is in flight."""
        return any(r.product == product for r in self.reservations.values())

    def busy_products(self) -> set[str]:
        """The products with an order in flight (:meth:`has_open_order` for all at once)."""
        reservations = self.reservations
        return {r.product for r in reservations.values()} if reservations else set()

    def reserve(
        self, client_order_id: str, product: str, side: Side, quantity: Decimal, cash: Decimal
    ) -> Reservation | str:
        """Check and reserve in one step; return the reservation or the reason it was refused.

        For a BUY ``cash`` is the most the order can cost (price × quantity × (1 + slippage)
        + fee); for a SELL the ``quantity`` itself is held.
        """
        if quantity <= 0:
            return f"quantity must be positive, got {quantity}"
        if client_order_id in self.reservations:
            return f"duplicate client order id {client_order_id}"
        if side == Side.BUY:
            if cash > self.available_cash():
                return f"insufficient cash: need {cash}, available {self.available_cash()}"
            res = Reservation(client_order_id, product, side, quantity, cash, ZERO)
        else:
            if quantity > self.available(product):
                return (
                    f"insufficient {product}: need {quantity}, available {self.available(product)}"
                )
            res = Reservation(client_order_id, product, side, quantity, ZERO, quantity)
        self.reservations[client_order_id] = res
        return res

    def release(self, client_order_id: str) -> Reservation | None:
        """Drop a reservation (order closed, rejected or unknown)."""
        return self.reservations.pop(client_order_id, None)

    def overdraft(self, fill: Fill) -> Decimal:
        """How much more ``fill`` costs than its share of its order's reservation (0 for a
        sell, an unreserved order, or a fill within it).

        A buy's reservation covers its quantity at the price the portfolio saw, with headroom
        and fees (:func:`~cryptoj.portfolio.rebalance.buy_cost`); a venue whose book has moved
        further (the portfolio's quotes lag the venue's under load, or a split order's later
        children meet a higher price) fills beyond it, and the excess comes out of cash other
        reservations count on: available cash can then go negative.
        """
        res = self.reservations.get(fill.client_order_id)
        if res is None or fill.side != Side.BUY or res.quantity <= 0:
            return ZERO
        share = res.cash * min(fill.quantity, res.quantity) / res.quantity
        return max(ZERO, -fill.cash_delta - share)

    def apply_fill(self, fill: Fill) -> Holding:
        """Apply a fill to cash and holdings; return the holding after it."""
        h = self.holdings.setdefault(fill.product, Holding())
        if fill.side == Side.BUY:
            new_qty = h.quantity + fill.quantity
            h.average_price = (h.quantity * h.average_price + fill.notional) / new_qty
            h.quantity = new_qty
        else:
            h.quantity -= fill.quantity
            if h.quantity == 0:
                h.average_price = ZERO
        self.cash += fill.cash_delta
        res = self.reservations.get(fill.client_order_id)
        if res is not None:
            res.filled += fill.quantity
        return h

    def after_fill(self, fill: Fill) -> tuple[Holding, Decimal]:
        """The holding of ``fill``'s product and the cash it would leave (this ledger
        unchanged): what the journal records with the fill before the books change."""
        h = self.holdings.get(fill.product, Holding())
        preview = Ledger(self.cash, {fill.product: Holding(h.quantity, h.average_price)})
        return preview.apply_fill(fill), preview.cash

    def equity(self, marks: dict[str, Decimal]) -> Decimal:
        """Cash plus holdings marked at ``marks`` (missing marks value a holding at its cost)."""
        total = self.cash
        for product, h in self.holdings.items():
            total += h.quantity * marks.get(product, h.average_price)
        return total

    def problems(self) -> list[str]:
        """Broken invariants (empty when the books are sound)."""
        out = []
        if self.cash < 0:
            out.append(f"negative cash {self.cash}")
        if self.available_cash() < 0:
            out.append(f"reservations exceed cash: available {self.available_cash()}")
        for product, h in self.holdings.items():
            if h.quantity < 0:
                out.append(f"negative position {product} {h.quantity}")
            if self.available(product) < 0:
                out.append(f"reserved more {product} than held")
        return out
