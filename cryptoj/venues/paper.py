"""The paper venue: a pure, deterministic, thread-safe simulated exchange.

:class:`PaperExchange` plays the role of a remote exchange (like Coinbase) inside the process. It
holds the account (balances per currency and the funds held by open orders: *the venue wins*
whenever another component disagrees), the top of book of every product from replayed
:class:`~cryptoj.models.Quote` messages, and the orders with their fills.

Determinism: there is no wall clock and no randomness. Every method that changes state takes the
time (``ts``, ns) from its caller, or uses the quote's ``ts``; ids are sequence numbers
(``{id_prefix}-O00000001`` for orders, ``{id_prefix}-F00000001`` for fills). The same calls in
the same order always give the same results.

Thread safety: every public method runs under one ``threading.RLock``. Events for the listener
(the "user channel": every :class:`~cryptoj.models.Fill` and :class:`~cryptoj.models.OrderClosed`)
are queued under that lock *after* the state they describe has been updated, and delivered after
the lock is released, one thread at a time and in exactly the order they were produced. A call
that produced events returns only after they (and any queued before them) have been delivered, so
the Fills and the OrderClosed of an order that executes on ``submit`` reach the listener before
``submit`` returns its :class:`~cryptoj.models.OrderAccepted`. The listener may call back into the
exchange; it must not block. An exception raised by the listener is caught and counted
(:attr:`PaperExchange.listener_failures`) so that it can never corrupt the venue or stop delivery
of the remaining events. ``OrderAccepted`` is only returned by ``submit``, never pushed.

Matching model
--------------
* The book is the last valid quote of each product: best bid/ask and their sizes. Quotes that
  are not finite, not positive, crossed (``bid > ask``), older than the recorded one, or for a
  product not quoted in ``quote_currency`` are ignored (counted in ``ignored_quotes``).
* Our own orders deplete the book until the next quote only with ``deplete_book`` (config
  ``paper.deplete_book``): then what a fill took from a side (taker walks, and resting orders
  filled by a quote) is gone for every later order on that quote, which walks on from where
  the last one stopped; the next valid quote of the product restores its book (the recorded
  data cannot reflect our impact beyond that). Without it every order sees the full recorded
  top, so child orders of a split parent sent between two quotes each get the touch: a replay
  then flatters splitting. Resting orders that are crossed by one quote share that quote's
  size, best limit price first, then oldest first.
* MARKET orders are immediate-or-cancel and walk the book (see *Slippage model*), a BUY with a
  ``max_price`` no further than that price; the remainder
  that finds no liquidity within ``depth_levels`` levels expires (``OrderClosed`` EXPIRED with
  the filled quantity, FILLED when everything filled).
* LIMIT orders are good-till-cancelled. ``post_only`` orders that would cross the recorded top
  (BUY at or above the ask, SELL at or below the bid) are rejected. A crossing LIMIT order without
  ``post_only`` first takes liquidity like a market order limited to its price (taker fee), and
  its remainder rests at its limit price. A resting order fills as MAKER (maker fee) at its limit
  price when a later quote crosses it (ask <= limit for a BUY, bid >= limit for a SELL), up to the
  size on the touched side of that quote; partial fills keep the rest resting.
* Resting orders hold funds, released on fill and cancel: a BUY holds
  ``remaining × limit × (1 + maker_fee)`` of quote currency (rounded *up* to 1e-8), a SELL holds
  its remaining quantity of the base currency. ``available = total − held``.
* No shorting and no borrowing: a BUY is rejected when its cost (the taker walk including fees,
  plus the hold of the part that will rest) exceeds the available quote currency; a SELL is
  rejected when its quantity exceeds the available base currency. Rejections are returned as
  :class:`~cryptoj.models.OrderRejected` with a reason, never raised.
* ``submit`` is idempotent on ``client_order_id`` (Coinbase semantics): a repeated id returns the
  original result (accepted or rejected) and does nothing else.

Slippage model
--------------
A market order (or the taking part of a crossing limit order) walks ``depth_levels`` price levels
on the side it takes from (the ask for a BUY, the bid for a SELL):

* level 0 is the recorded top: its price and its size;
* level ``k > 0`` is a *virtual* level with the same size as level 0 and a price moved away from
  the touch by ``k × step``, where
  ``step = max(ask − bid, level_spacing_bps / 10_000 × mid)`` and ``mid = (bid + ask) / 2``
  (a SELL level whose price would not be positive does not exist).

Each level fills ``min(remaining, level size)`` (truncated to 1e-8) at the level price; what is
left after the last level expires. Worked example, with the defaults ``depth_levels = 5``,
``level_spacing_bps = 5`` and ``taker_fee = 0.006``: quote BTC-USD bid 10,000 / ask 10,001,
ask size 0.5. Then ``mid = 10,000.5``, the spread is 1 and 5 bps of mid is 5.00025, so
``step = 5.00025`` and the ask levels are 10,001, 10,006.00025, 10,011.0005, 10,016.00075 and
10,021.001, each with 0.5 BTC. A MARKET BUY of 1.2 BTC fills

====  ======  =============  =============  ==========
lvl   qty     price          notional       fee
====  ======  =============  =============  ==========
0     0.5     10,001         5,000.50       30.003
1     0.5     10,006.00025   5,003.000125   30.01800075
2     0.2     10,011.0005    2,002.2001     12.0132006
====  ======  =============  =============  ==========

for a notional of 12,005.700225 (average price 10,004.7501875, 3.75 bps above the touch) plus
72.03420135 of fees: the USD balance falls by 12,077.73442635 and the BTC balance rises by 1.2.
A MARKET BUY of 3 BTC would fill 2.5 BTC (5 levels × 0.5) and expire the other 0.5. With a wide
book the spread sets the step instead: bid 100 / ask 102 gives ``step = max(2, 0.0505) = 2`` and
ask levels 102, 104, 106, ...

Rounding
--------
Decimal arithmetic runs in an explicit context (``prec = 60``), never the thread's ambient one.
Base quantities are truncated to 1e-8 (an order never trades more than asked). Prices are used as
given. For every fill, ``notional = quantity × price`` and ``fee = notional × fee_rate`` are each
truncated (ROUND_DOWN) to 1e-8; a BUY pays ``notional + fee``, a SELL receives
``notional − fee`` (see :func:`fill_notional` and :func:`fill_cash_delta`). Holds round *up*.
Truncating the charges and rounding the holds up guarantees that the hold released by any
maker fill of a resting BUY covers that fill's cost: with ``c = limit × (1 + maker_fee)``,
``ceil(r_old·c) − ceil(r_new·c) ≥ floor((r_old − r_new)·c) ≥ cost``. So fills never take cash
that other orders hold, and no balance can go negative.

Invariants (checked by :meth:`PaperExchange.check_invariants`): no order's filled quantity
exceeds its quantity; no total or available balance is negative; quote total ==
``starting_cash − Σ buy notional + Σ sell notional − Σ fees``; each base total ==
``Σ buy qty − Σ sell qty``; the held funds equal exactly what the open orders require.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    localcontext,
)
from typing import TYPE_CHECKING

import msgspec

from cryptoj.models.base import Message
from cryptoj.models.market import Quote
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
    OrderStatus,
    OrderType,
    Side,
    SubmitOrder,
)

if TYPE_CHECKING:
    from cryptoj.config import PaperConfig

QUANTUM = Decimal("1e-8")
"""The increment of base quantities, cash and fees."""

MAX_MAGNITUDE = Decimal("1e15")
"""Prices, sizes, quantities and cash must be below this (keeps all arithmetic exact)."""

_CTX = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
_AVG_CTX = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero])
_ZERO = Decimal(0)
_BPS = Decimal(10_000)

Listener = Callable[[Message], None]
"""The user channel: receives every Fill and OrderClosed, in order."""


def _trunc8(x: Decimal) -> Decimal:
    return x.quantize(QUANTUM, rounding=ROUND_DOWN, context=_CTX)


def _ceil8(x: Decimal) -> Decimal:
    return x.quantize(QUANTUM, rounding=ROUND_CEILING, context=_CTX)


def notional_of(quantity: Decimal, price: Decimal) -> Decimal:
    """``quantity × price`` truncated to 1e-8: the quote-currency value of one fill."""
    return _trunc8(_CTX.multiply(quantity, price))


def fee_of(notional: Decimal, rate: Decimal) -> Decimal:
    """``notional × rate`` truncated to 1e-8: the fee of one fill."""
    return _trunc8(_CTX.multiply(notional, rate))


def fill_notional(fill: Fill) -> Decimal:
    """The notional the venue booked for ``fill`` (quantity × price, truncated to 1e-8)."""
    return notional_of(fill.quantity, fill.price)


def fill_cash_delta(fill: Fill) -> Decimal:
    """The change of the quote-currency balance caused by ``fill`` (negative for a BUY)."""
    return fill.cash_delta


def _decimal(x: object) -> Decimal | None:
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
class _Order:
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


def _limit(o: _Order) -> Decimal:
    """The limit price of a resting order (every resting order is a LIMIT order)."""
    assert o.limit_price is not None
    return o.limit_price


@dataclass(frozen=True, slots=True)
class _Take:
    """One planned taker execution of a walk."""

    quantity: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal


class PaperExchange:
    """A simulated exchange: balances, top of book per product, orders and fills.

    See the module docstring for the matching, slippage and rounding models. All amounts are
    ``Decimal``; every public method is thread-safe and deterministic.
    """

    def __init__(
        self,
        *,
        starting_cash: Decimal,
        quote_currency: str = "USD",
        taker_fee: Decimal,
        maker_fee: Decimal,
        depth_levels: int = 5,
        level_spacing_bps: Decimal = Decimal(5),
        id_prefix: str = "paper",
        deplete_book: bool = False,
    ) -> None:
        """Open an account holding ``starting_cash`` of ``quote_currency`` and nothing else.

        ``deplete_book``: what our fills take from a book is gone until the next quote (see
        *Matching model*).

        Raises ``ValueError`` for an invalid parameter (a negative fee, no depth, ...).
        """
        cash = _decimal(starting_cash)
        if cash is None or cash < 0:
            raise ValueError(f"starting_cash must be a finite Decimal >= 0, got {starting_cash!r}")
        for name, rate in (("taker_fee", taker_fee), ("maker_fee", maker_fee)):
            d = _decimal(rate)
            if d is None or not 0 <= d < 1:
                raise ValueError(f"{name} must be a Decimal in [0, 1), got {rate!r}")
        spacing = _decimal(level_spacing_bps)
        if spacing is None or spacing < 0:
            raise ValueError(f"level_spacing_bps must be a Decimal >= 0, got {level_spacing_bps!r}")
        if not isinstance(depth_levels, int) or depth_levels < 1:
            raise ValueError(f"depth_levels must be an int >= 1, got {depth_levels!r}")
        if not quote_currency or "-" in quote_currency:
            raise ValueError(f"quote_currency must be a currency code, got {quote_currency!r}")
        self._quote_ccy = quote_currency
        self._tradable_cache: dict[str, bool] = {}  # product -> _tradable (bounded: 4,096)
        self._starting_cash = _trunc8(cash)
        self._taker_fee = Decimal(taker_fee)
        self._maker_fee = Decimal(maker_fee)
        self._depth = depth_levels
        self._spacing = _CTX.divide(spacing, _BPS)
        self._prefix = id_prefix
        self._deplete = deplete_book

        self._lock = threading.RLock()
        self._deliver_lock = threading.RLock()
        self._outbox: deque[tuple[Listener, Message]] = deque()
        self._listener: Listener | None = None
        self._listener_failures = 0
        self._last_listener_error: Exception | None = None

        self._balances: dict[str, Decimal] = {quote_currency: self._starting_cash}
        self._held: dict[str, Decimal] = {quote_currency: _ZERO}
        self._books: dict[str, Quote] = {}
        #: (product, side of the orders) → quantity our fills took from the current quote's
        #: side those orders take from (only with ``deplete_book``; reset by the next quote).
        self._taken: dict[tuple[str, Side], Decimal] = {}
        self._orders: dict[str, _Order] = {}
        self._open: dict[str, _Order] = {}  # insertion order == time priority
        self._results: dict[str, OrderAccepted | OrderRejected] = {}
        self._fills: list[Fill] = []
        self._order_seq = 0
        self._fill_seq = 0
        self._ignored_quotes = 0

    @classmethod
    def from_config(cls, cfg: PaperConfig, id_prefix: str = "paper") -> PaperExchange:
        """Build the exchange from the ``paper`` section of the config (floats → Decimal)."""
        return cls(
            starting_cash=Decimal(str(cfg.starting_cash)),
            quote_currency=cfg.quote_currency,
            taker_fee=Decimal(str(cfg.taker_fee)),
            maker_fee=Decimal(str(cfg.maker_fee)),
            depth_levels=cfg.depth_levels,
            level_spacing_bps=Decimal(str(cfg.level_spacing_bps)),
            id_prefix=id_prefix,
            deplete_book=cfg.deplete_book,
        )

    # ----------------------------------------------------------------- plumbing

    @contextmanager
    def _session(self) -> Iterator[None]:
        """Hold the state lock with the exchange's decimal context; deliver events after."""
        try:
            with self._lock, localcontext(_CTX):
                yield
        finally:
            self._deliver()

    def _emit(self, event: Message) -> None:
        """Queue ``event`` for the listener (call with the state lock held)."""
        if self._listener is not None:
            self._outbox.append((self._listener, event))

    def _deliver(self) -> None:
        """Deliver queued events in order, one thread at a time, outside the state lock."""
        if not self._outbox:
            # Another thread may be delivering events we queued: wait for it to finish.
            with self._deliver_lock:
                pass
            return
        with self._deliver_lock:
            while True:
                try:
                    listener, event = self._outbox.popleft()
                except IndexError:
                    return
                try:
                    listener(event)
                except Exception as e:  # a consumer bug must not corrupt the venue
                    with self._lock:
                        self._listener_failures += 1
                        self._last_listener_error = e

    # ------------------------------------------------------------------ queries

    @property
    def quote_currency(self) -> str:
        """The currency cash, notionals and fees are in."""
        return self._quote_ccy

    @property
    def starting_cash(self) -> Decimal:
        """The quote-currency balance the account started with."""
        return self._starting_cash

    @property
    def taker_fee(self) -> Decimal:
        """Fee rate of taker fills."""
        return self._taker_fee

    @property
    def maker_fee(self) -> Decimal:
        """Fee rate of maker fills."""
        return self._maker_fee

    @property
    def ignored_quotes(self) -> int:
        """How many quotes ``on_quote`` ignored (invalid, crossed, stale or unsupported)."""
        with self._lock:
            return self._ignored_quotes

    @property
    def listener_failures(self) -> int:
        """How many times the listener raised (the events were still counted as delivered)."""
        with self._lock:
            return self._listener_failures

    @property
    def last_listener_error(self) -> Exception | None:
        """The last exception the listener raised, if any."""
        with self._lock:
            return self._last_listener_error

    def set_listener(self, fn: Listener | None) -> None:
        """Set (or clear with None) the user channel that receives every Fill and OrderClosed.

        Events are delivered after the state they describe was updated and after the state lock
        was released, in the order they were produced. Only events produced after this call
        are delivered to ``fn``.
        """
        with self._session():
            self._listener = fn

    def last_quote(self, product: str) -> Quote | None:
        """The recorded top of book of ``product`` (None before its first valid quote)."""
        with self._lock:
            return self._books.get(product)

    def get_order(self, client_order_id: str) -> VenueOrder | None:
        """The order with this id (None when unknown or when it was rejected)."""
        with self._lock, localcontext(_CTX):
            o = self._orders.get(client_order_id)
            return o.snapshot() if o is not None else None

    def open_orders(self) -> list[VenueOrder]:
        """The resting (OPEN) orders, oldest first."""
        with self._lock, localcontext(_CTX):
            return [o.snapshot() for o in self._open.values()]

    def fills_for(self, client_order_id: str) -> tuple[Fill, ...]:
        """Every fill of the order, oldest first (empty when unknown)."""
        with self._lock:
            o = self._orders.get(client_order_id)
            return tuple(o.fills) if o is not None else ()

    def all_fills(self) -> tuple[Fill, ...]:
        """Every fill of the account, oldest first."""
        with self._lock:
            return tuple(self._fills)

    def balances(self) -> dict[str, Decimal]:
        """Total balance per currency (including held funds), e.g. ``{"USD": ..., "BTC": ...}``."""
        with self._lock:
            return dict(self._balances)

    def available(self, currency: str) -> Decimal:
        """Total minus held funds of ``currency`` (0 for a currency never held)."""
        with self._lock, localcontext(_CTX):
            return self._balances.get(currency, _ZERO) - self._held.get(currency, _ZERO)

    def held(self, currency: str) -> Decimal:
        """Funds of ``currency`` held by open orders."""
        with self._lock:
            return self._held.get(currency, _ZERO)

    # ------------------------------------------------------------- market data

    def on_quote(self, q: Quote) -> None:
        """Record ``q`` as the top of book of ``q.product`` and fill the resting orders it crosses.

        Crossed BUYs (limit >= ask) fill up to ``ask_size``, crossed SELLs (limit <= bid) up to
        ``bid_size``, as MAKER at their own limit price, best price first then oldest first.
        Invalid, crossed, stale or unsupported quotes are ignored (see ``ignored_quotes``).
        """
        # The hot path of a replay (every quote): without resting orders of the product nothing
        # is matched, no event is produced and nothing waits for delivery; the decimal context
        # is only entered to match.
        matched = False
        try:
            with self._lock:
                if not self._valid_quote(q):
                    self._ignored_quotes += 1
                    return
                product = q.product
                self._books[product] = q
                if self._taken:
                    self._taken.pop((product, Side.BUY), None)
                    self._taken.pop((product, Side.SELL), None)
                if not self._open:
                    return
                resting = [o for o in self._open.values() if o.product == product]
                if resting:
                    matched = True
                    with localcontext(_CTX):
                        self._match_quote(q, resting)
        finally:
            if matched:
                self._deliver()

    def _match_quote(self, q: Quote, resting: list[_Order]) -> None:
        """Fill the resting orders ``q`` crosses (state lock and decimal context held)."""
        buys = [o for o in resting if o.side is Side.BUY]
        sells = [o for o in resting if o.side is Side.SELL]
        buys.sort(key=lambda o: (-_limit(o), o.seq))
        sells.sort(key=lambda o: (_limit(o), o.seq))
        self._match_resting(buys, q.ask_size, lambda lim: lim >= q.ask, q.ts)
        self._match_resting(sells, q.bid_size, lambda lim: lim <= q.bid, q.ts)

    def _valid_quote(self, q: Quote) -> bool:
        if not isinstance(q, Quote):
            return False
        product = q.product
        known = self._tradable_cache.get(product) if type(product) is str else None
        if not (known or self._tradable(product)):
            return False
        bid, ask, bid_size, ask_size = q.bid, q.ask, q.bid_size, q.ask_size
        if (
            isinstance(bid, Decimal)
            and isinstance(ask, Decimal)
            and isinstance(bid_size, Decimal)
            and isinstance(ask_size, Decimal)
            and bid.is_finite()
            and ask.is_finite()
            and bid_size.is_finite()
            and ask_size.is_finite()
        ):  # the usual case, checked without a call: _decimal's bounds, and a sane book
            if not (
                _ZERO < bid <= ask < MAX_MAGNITUDE
                and _ZERO <= bid_size < MAX_MAGNITUDE
                and _ZERO <= ask_size < MAX_MAGNITUDE
            ):
                return False
        else:
            values = (_decimal(bid), _decimal(ask), _decimal(bid_size), _decimal(ask_size))
            if None in values:
                return False
            bid, ask, bid_size, ask_size = values  # type: ignore[assignment]
            if not (_ZERO < bid <= ask and bid_size >= _ZERO and ask_size >= _ZERO):
                return False
        prev = self._books.get(product)
        return prev is None or q.ts >= prev.ts

    def _match_resting(
        self, orders: list[_Order], size: Decimal, crossed: Callable[[Decimal], bool], ts: int
    ) -> None:
        left = size
        for o in orders:
            price = _limit(o)
            if not crossed(price):
                break  # sorted best price first: nothing further is crossed either
            qty = _trunc8(min(o.remaining, left))
            if qty <= 0:
                break
            n = notional_of(qty, price)
            self._fill(o, qty, price, n, fee_of(n, self._maker_fee), "MAKER", ts)
            self._take(o.product, o.side, qty)
            left -= qty
            if o.remaining == 0:
                self._close(o, OrderStatus.FILLED, ts)
            else:
                self._set_hold(o, self._required_hold(o))

    # ------------------------------------------------------------------ orders

    def submit(self, order: SubmitOrder, ts: int) -> OrderAccepted | OrderRejected:
        """Accept or reject ``order``; execute what it takes now, rest the rest (LIMIT).

        Idempotent on ``client_order_id``: a repeated id returns the original result and does
        nothing else. Never raises for a bad order: returns :class:`OrderRejected` with a reason.
        """
        with self._session():
            cid = order.client_order_id
            previous = self._results.get(cid)
            if previous is not None:
                return previous
            result = self._submit(order, ts)
            self._results[cid] = result
            return result

    def _reject(self, order: SubmitOrder, ts: int, reason: str) -> OrderRejected:
        return OrderRejected(
            ts=ts, client_order_id=order.client_order_id, product=order.product, reason=reason
        )

    def _submit(self, order: SubmitOrder, ts: int) -> OrderAccepted | OrderRejected:
        if not order.client_order_id:
            return self._reject(order, ts, "client_order_id is empty")
        if not self._tradable(order.product):
            return self._reject(
                order,
                ts,
                f"unsupported product {order.product!r} (quote currency must be {self._quote_ccy})",
            )
        book = self._books.get(order.product)
        if book is None:
            return self._reject(order, ts, f"unknown product or no quote yet: {order.product}")
        if not isinstance(order.side, Side):
            return self._reject(order, ts, f"unknown side {order.side!r}")
        raw_qty = _decimal(order.quantity)
        if raw_qty is None:
            return self._reject(order, ts, f"quantity is not a finite number: {order.quantity!r}")
        if raw_qty <= 0:
            return self._reject(order, ts, f"quantity must be positive, got {raw_qty}")
        qty = _trunc8(raw_qty)
        if qty <= 0:
            return self._reject(order, ts, f"quantity {raw_qty} is below the increment {QUANTUM}")
        buy = order.side is Side.BUY
        limit: Decimal | None = None
        if order.order_type is OrderType.LIMIT:
            limit = _decimal(order.limit_price)
            if limit is None or limit <= 0:
                return self._reject(
                    order,
                    ts,
                    f"LIMIT order needs a positive limit price, got {order.limit_price!r}",
                )
            crosses = limit >= book.ask if buy else limit <= book.bid
            if order.post_only and crosses:
                return self._reject(order, ts, "post-only order would cross")
        cap: Decimal | None = None
        if order.order_type is OrderType.MARKET:
            if order.post_only:
                return self._reject(order, ts, "post-only requires a LIMIT order")
            if order.max_price is not None:
                cap = _decimal(order.max_price)
                if not buy or cap is None or cap <= 0:
                    return self._reject(
                        order,
                        ts,
                        f"max_price must be a positive price on a MARKET BUY, got "
                        f"{order.max_price!r} on a {order.side}",
                    )
        elif order.order_type is not OrderType.LIMIT:
            return self._reject(order, ts, f"unsupported order type {order.order_type!r}")

        takes = self._walk(book, order.side, qty, limit if limit is not None else cap)
        taken = sum((t.quantity for t in takes), _ZERO)
        rest = qty - taken if limit is not None else _ZERO
        base = order.product.partition("-")[0]
        if buy:
            cost = sum((t.notional + t.fee for t in takes), _ZERO)
            if limit is not None and rest > 0:
                cost += self._buy_hold(rest, limit)
            avail = self._balances[self._quote_ccy] - self._held[self._quote_ccy]
            if cost > avail:
                return self._reject(
                    order,
                    ts,
                    f"insufficient funds: needs {cost} {self._quote_ccy} "
                    f"(fees included), {avail} available",
                )
        else:
            avail = self._balances.get(base, _ZERO) - self._held.get(base, _ZERO)
            if qty > avail:
                return self._reject(
                    order, ts, f"insufficient funds: sells {qty} {base}, {avail} available"
                )

        self._order_seq += 1
        o = _Order(
            client_order_id=order.client_order_id,
            venue_order_id=f"{self._prefix}-O{self._order_seq:08d}",
            product=order.product,
            base=base,
            side=order.side,
            order_type=order.order_type,
            quantity=qty,
            limit_price=limit,
            post_only=order.post_only,
            created_ts=ts,
            updated_ts=ts,
            seq=self._order_seq,
        )
        self._orders[o.client_order_id] = o
        for t in takes:
            self._fill(o, t.quantity, t.price, t.notional, t.fee, "TAKER", ts)
        self._take(o.product, o.side, taken)
        if o.remaining == 0:
            self._close(o, OrderStatus.FILLED, ts)
        elif limit is None:
            self._close(o, OrderStatus.EXPIRED, ts)
        else:
            self._open[o.client_order_id] = o
            self._set_hold(o, self._required_hold(o))
        return OrderAccepted(
            ts=ts, client_order_id=o.client_order_id, venue_order_id=o.venue_order_id
        )

    def cancel(self, client_order_id: str, ts: int) -> bool:
        """Cancel the order if it is open (emits OrderClosed CANCELLED); True if it was open."""
        with self._session():
            o = self._open.get(client_order_id)
            if o is None:
                return False
            self._close(o, OrderStatus.CANCELLED, ts)
            return True

    def cancel_all(self, ts: int) -> list[str]:
        """Cancel every open order, oldest first; returns their client order ids."""
        with self._session():
            cancelled = list(self._open)
            for cid in cancelled:
                self._close(self._open[cid], OrderStatus.CANCELLED, ts)
            return cancelled

    # ------------------------------------------------------------------ engine

    def _tradable(self, product: object) -> bool:
        if not isinstance(product, str):
            return False
        known = self._tradable_cache.get(product)
        if known is None:
            if len(self._tradable_cache) >= 4096:
                self._tradable_cache.clear()
            base, sep, quote = product.partition("-")
            known = self._tradable_cache[product] = (
                bool(base) and sep == "-" and quote == self._quote_ccy
            )
        return known

    def levels(self, product: str, side: Side) -> list[tuple[Decimal, Decimal]]:
        """The (price, size) levels an order on ``side`` would walk now (empty without a quote).

        Level 0 is the recorded top; level ``k`` is ``k × step`` away from it with the same size
        (see *Slippage model* in the module docstring).
        """
        with self._lock, localcontext(_CTX):
            book = self._books.get(product)
            return self._levels(book, side) if book is not None else []

    def _levels(self, book: Quote, side: Side) -> list[tuple[Decimal, Decimal]]:
        mid = (book.bid + book.ask) / 2
        step = max(book.ask - book.bid, self._spacing * mid)
        if side is Side.BUY:
            touch, size, sign = book.ask, book.ask_size, 1
        else:
            touch, size, sign = book.bid, book.bid_size, -1
        out = [(touch, size)]  # level 0: the recorded top, price exactly as quoted
        for k in range(1, self._depth):
            price = touch + sign * k * step
            if price <= 0:
                break
            out.append((price, size))
        taken = self._taken.get((book.product, side), _ZERO)
        if taken <= 0:
            return out
        left: list[tuple[Decimal, Decimal]] = []  # what our earlier fills on this quote left
        for price, level_size in out:
            used = min(taken, level_size)
            taken -= used
            if level_size > used:
                left.append((price, level_size - used))
        return left

    def _take(self, product: str, side: Side, qty: Decimal) -> None:
        """Record that orders on ``side`` took ``qty`` from the current book (with depletion)."""
        if self._deplete and qty > 0:
            self._taken[(product, side)] = self._taken.get((product, side), _ZERO) + qty

    def _walk(self, book: Quote, side: Side, qty: Decimal, limit: Decimal | None) -> list[_Take]:
        takes: list[_Take] = []
        left = qty
        for price, size in self._levels(book, side):
            if left <= 0:
                break
            if limit is not None and (price > limit if side is Side.BUY else price < limit):
                break
            q = _trunc8(min(left, size))
            if q <= 0:
                continue
            n = notional_of(q, price)
            takes.append(_Take(q, price, n, fee_of(n, self._taker_fee)))
            left -= q
        return takes

    def _buy_hold(self, remaining: Decimal, limit: Decimal) -> Decimal:
        return _ceil8(remaining * limit * (1 + self._maker_fee))

    def _required_hold(self, o: _Order) -> Decimal:
        """What ``o`` must hold now: 0 unless open; see the module docstring."""
        if o.status is not OrderStatus.OPEN:
            return _ZERO
        if o.side is Side.SELL:
            return o.remaining
        return self._buy_hold(o.remaining, _limit(o))

    def _hold_currency(self, o: _Order) -> str:
        return self._quote_ccy if o.side is Side.BUY else o.base

    def _set_hold(self, o: _Order, amount: Decimal) -> None:
        ccy = self._hold_currency(o)
        self._held[ccy] = self._held.get(ccy, _ZERO) - o.hold + amount
        o.hold = amount

    def _fill(
        self,
        o: _Order,
        qty: Decimal,
        price: Decimal,
        notional: Decimal,
        fee: Decimal,
        liquidity: str,
        ts: int,
    ) -> None:
        self._fill_seq += 1
        fill = Fill(
            ts=ts,
            fill_id=f"{self._prefix}-F{self._fill_seq:08d}",
            client_order_id=o.client_order_id,
            product=o.product,
            side=o.side,
            quantity=qty,
            price=price,
            fee=fee,
            liquidity=liquidity,
        )
        q_ccy = self._quote_ccy
        if o.side is Side.BUY:
            self._balances[q_ccy] -= notional + fee
            self._balances[o.base] = self._balances.get(o.base, _ZERO) + qty
        else:
            self._balances[o.base] -= qty
            self._balances[q_ccy] += notional - fee
        o.filled += qty
        o.value += qty * price
        o.updated_ts = ts
        o.fills.append(fill)
        self._fills.append(fill)
        self._emit(fill)

    def restore(self, fills: Sequence[Fill]) -> None:
        """Re-book fills of an earlier run (paper account recovery after a restart).

        The simulated account then holds what those fills left: the state a real venue would
        still have. Only allowed before any order was placed in this run.
        """
        with self._lock:
            if self._orders:
                raise RuntimeError("restore() must run before the first order")
            q_ccy = self._quote_ccy
            for f in fills:
                base = f.product.partition("-")[0]
                delta = fill_cash_delta(f)
                signed = f.quantity if f.side is Side.BUY else -f.quantity
                self._balances[q_ccy] += delta
                self._balances[base] = self._balances.get(base, _ZERO) + signed
                self._held.setdefault(base, _ZERO)
                self._fills.append(f)

    def _close(self, o: _Order, status: OrderStatus, ts: int) -> None:
        o.status = status
        o.updated_ts = ts
        self._set_hold(o, _ZERO)
        self._open.pop(o.client_order_id, None)
        self._emit(
            OrderClosed(
                ts=ts,
                client_order_id=o.client_order_id,
                product=o.product,
                status=status,
                filled_quantity=o.filled,
            )
        )

    # -------------------------------------------------------------- invariants

    def check_invariants(self) -> list[str]:
        """The violated invariants, one line each (empty when everything holds).

        Recomputes from the recorded fills and open orders: filled ≤ quantity per order, no
        negative total or available balance, cash and base conservation, held funds equal to
        what the open orders require, unique fill ids.
        """
        with self._lock, localcontext(_CTX):
            problems: list[str] = []
            q_ccy = self._quote_ccy
            for ccy, total in sorted(self._balances.items()):
                if total < 0:
                    problems.append(f"balance {ccy} is negative: {total}")
                held = self._held.get(ccy, _ZERO)
                if held < 0:
                    problems.append(f"held {ccy} is negative: {held}")
                if total - held < 0:
                    problems.append(f"available {ccy} is negative: {total} - {held}")
            for ccy in self._held:
                if ccy not in self._balances and self._held[ccy] != 0:
                    problems.append(f"held {ccy} without a balance: {self._held[ccy]}")

            cash = self._starting_cash
            base: dict[str, Decimal] = {}
            fill_ids: set[str] = set()
            for f in self._fills:
                if f.fill_id in fill_ids:
                    problems.append(f"duplicate fill id {f.fill_id}")
                fill_ids.add(f.fill_id)
                cash += fill_cash_delta(f)
                ccy = f.product.partition("-")[0]
                signed = f.quantity if f.side is Side.BUY else -f.quantity
                base[ccy] = base.get(ccy, _ZERO) + signed
            if cash != self._balances[q_ccy]:
                problems.append(
                    f"cash conservation: {q_ccy} balance {self._balances[q_ccy]} != {cash} "
                    f"(starting cash − buys + sells − fees)"
                )
            for ccy in sorted(set(base) | (set(self._balances) - {q_ccy})):
                want, have = base.get(ccy, _ZERO), self._balances.get(ccy, _ZERO)
                if want != have:
                    problems.append(
                        f"base conservation: {ccy} balance {have} != {want} (buys − sells)"
                    )

            required: dict[str, Decimal] = {}
            for o in self._orders.values():
                cid = o.client_order_id
                if not 0 <= o.filled <= o.quantity:
                    problems.append(f"order {cid}: filled {o.filled} outside [0, {o.quantity}]")
                if sum((f.quantity for f in o.fills), _ZERO) != o.filled:
                    problems.append(f"order {cid}: fills do not add up to filled {o.filled}")
                is_open = cid in self._open
                if is_open != (o.status is OrderStatus.OPEN):
                    problems.append(f"order {cid}: status {o.status} but open={is_open}")
                if o.status is OrderStatus.FILLED and o.filled != o.quantity:
                    problems.append(f"order {cid}: FILLED at {o.filled} of {o.quantity}")
                if o.status is OrderStatus.OPEN and o.remaining <= 0:
                    problems.append(f"order {cid}: OPEN with nothing remaining")
                need = self._required_hold(o)
                if o.hold != need:
                    problems.append(f"order {cid}: holds {o.hold}, requires {need}")
                ccy = self._hold_currency(o)
                required[ccy] = required.get(ccy, _ZERO) + need
            for ccy in sorted(set(required) | set(self._held)):
                if required.get(ccy, _ZERO) != self._held.get(ccy, _ZERO):
                    problems.append(
                        f"held {ccy} {self._held.get(ccy, _ZERO)} != {required.get(ccy, _ZERO)} "
                        f"required by open orders"
                    )
            return problems


__all__ = [
    "MAX_MAGNITUDE",
    "QUANTUM",
    "Listener",
    "PaperExchange",
    "VenueOrder",
    "fee_of",
    "fill_cash_delta",
    "fill_notional",
    "notional_of",
]
