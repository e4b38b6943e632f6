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
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING

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
from cryptoj.venues.paper_invariants import account_problems
from cryptoj.venues.paper_model import (
    DECIMAL_CONTEXT,
    MAX_MAGNITUDE,
    QUANTUM,
    OrderRecord,
    Take,
    VenueOrder,
    as_amount,
    book_levels,
    buy_hold,
    fee_of,
    fill_cash_delta,
    fill_notional,
    limit_of,
    notional_of,
    required_hold,
    trunc8,
    walk,
)

if TYPE_CHECKING:
    from cryptoj.config import PaperConfig

_ZERO = Decimal(0)
_BPS = Decimal(10_000)

Listener = Callable[[Message], None]
"""The user channel: receives every Fill and OrderClosed, in order."""


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
        cash = as_amount(starting_cash)
        if cash is None or cash < 0:
            raise ValueError(f"starting_cash must be a finite Decimal >= 0, got {starting_cash!r}")
        for name, rate in (("taker_fee", taker_fee), ("maker_fee", maker_fee)):
            d = as_amount(rate)
            if d is None or not 0 <= d < 1:
                raise ValueError(f"{name} must be a Decimal in [0, 1), got {rate!r}")
        spacing = as_amount(level_spacing_bps)
        if spacing is None or spacing < 0:
            raise ValueError(f"level_spacing_bps must be a Decimal >= 0, got {level_spacing_bps!r}")
        if not isinstance(depth_levels, int) or depth_levels < 1:
            raise ValueError(f"depth_levels must be an int >= 1, got {depth_levels!r}")
        if not quote_currency or "-" in quote_currency:
            raise ValueError(f"quote_currency must be a currency code, got {quote_currency!r}")
        self._quote_ccy = quote_currency
        self._tradable_cache: dict[str, bool] = {}  # product -> _tradable (bounded: 4,096)
        self._starting_cash = trunc8(cash)
        self._taker_fee = Decimal(taker_fee)
        self._maker_fee = Decimal(maker_fee)
        self._depth = depth_levels
        self._spacing = DECIMAL_CONTEXT.divide(spacing, _BPS)
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
        self._orders: dict[str, OrderRecord] = {}
        self._open: dict[str, OrderRecord] = {}  # insertion order == time priority
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
            with self._lock, localcontext(DECIMAL_CONTEXT):
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
        with self._lock, localcontext(DECIMAL_CONTEXT):
            o = self._orders.get(client_order_id)
            return o.snapshot() if o is not None else None

    def open_orders(self) -> list[VenueOrder]:
        """The resting (OPEN) orders, oldest first."""
        with self._lock, localcontext(DECIMAL_CONTEXT):
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
        with self._lock, localcontext(DECIMAL_CONTEXT):
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
                    with localcontext(DECIMAL_CONTEXT):
                        self._match_quote(q, resting)
        finally:
            if matched:
                self._deliver()

    def _match_quote(self, q: Quote, resting: list[OrderRecord]) -> None:
        """Fill the resting orders ``q`` crosses (state lock and decimal context held)."""
        buys = [o for o in resting if o.side is Side.BUY]
        sells = [o for o in resting if o.side is Side.SELL]
        buys.sort(key=lambda o: (-limit_of(o), o.seq))
        sells.sort(key=lambda o: (limit_of(o), o.seq))
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
            values = (as_amount(bid), as_amount(ask), as_amount(bid_size), as_amount(ask_size))
            if None in values:
                return False
            bid, ask, bid_size, ask_size = values  # type: ignore[assignment]
            if not (_ZERO < bid <= ask and bid_size >= _ZERO and ask_size >= _ZERO):
                return False
        prev = self._books.get(product)
        return prev is None or q.ts >= prev.ts

    def _match_resting(
        self, orders: list[OrderRecord], size: Decimal, crossed: Callable[[Decimal], bool], ts: int
    ) -> None:
        left = size
        for o in orders:
            price = limit_of(o)
            if not crossed(price):
                break  # sorted best price first: nothing further is crossed either
            qty = trunc8(min(o.remaining, left))
            if qty <= 0:
                break
            n = notional_of(qty, price)
            self._fill(o, qty, price, n, fee_of(n, self._maker_fee), "MAKER", ts)
            self._take(o.product, o.side, qty)
            left -= qty
            if o.remaining == 0:
                self._close(o, OrderStatus.FILLED, ts)
            else:
                self._set_hold(o, required_hold(o, self._maker_fee))

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
        raw_qty = as_amount(order.quantity)
        if raw_qty is None:
            return self._reject(order, ts, f"quantity is not a finite number: {order.quantity!r}")
        if raw_qty <= 0:
            return self._reject(order, ts, f"quantity must be positive, got {raw_qty}")
        qty = trunc8(raw_qty)
        if qty <= 0:
            return self._reject(order, ts, f"quantity {raw_qty} is below the increment {QUANTUM}")
        buy = order.side is Side.BUY
        limit: Decimal | None = None
        if order.order_type is OrderType.LIMIT:
            limit = as_amount(order.limit_price)
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
                cap = as_amount(order.max_price)
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
                cost += buy_hold(rest, limit, self._maker_fee)
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
        o = OrderRecord(
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
            self._set_hold(o, required_hold(o, self._maker_fee))
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
        with self._lock, localcontext(DECIMAL_CONTEXT):
            book = self._books.get(product)
            return self._levels(book, side) if book is not None else []

    def _levels(self, book: Quote, side: Side) -> list[tuple[Decimal, Decimal]]:
        taken = self._taken.get((book.product, side), _ZERO)
        return book_levels(book, side, self._depth, self._spacing, taken)

    def _take(self, product: str, side: Side, qty: Decimal) -> None:
        """Record that orders on ``side`` took ``qty`` from the current book (with depletion)."""
        if self._deplete and qty > 0:
            self._taken[(product, side)] = self._taken.get((product, side), _ZERO) + qty

    def _walk(self, book: Quote, side: Side, qty: Decimal, limit: Decimal | None) -> list[Take]:
        return walk(self._levels(book, side), side, qty, limit, self._taker_fee)

    def _hold_currency(self, o: OrderRecord) -> str:
        return self._quote_ccy if o.side is Side.BUY else o.base

    def _set_hold(self, o: OrderRecord, amount: Decimal) -> None:
        ccy = self._hold_currency(o)
        self._held[ccy] = self._held.get(ccy, _ZERO) - o.hold + amount
        o.hold = amount

    def _fill(
        self,
        o: OrderRecord,
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

    def _close(self, o: OrderRecord, status: OrderStatus, ts: int) -> None:
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
        what the open orders require, unique fill ids
        (:func:`~cryptoj.venues.paper_invariants.account_problems`).
        """
        with self._lock, localcontext(DECIMAL_CONTEXT):
            return account_problems(
                quote_ccy=self._quote_ccy,
                starting_cash=self._starting_cash,
                maker_fee=self._maker_fee,
                balances=self._balances,
                held=self._held,
                fills=self._fills,
                orders=list(self._orders.values()),
                open_ids=self._open.keys(),
            )


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
