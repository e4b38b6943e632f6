"""The fake exchange's accounts, orders and matching over the recorded book (pure: no sockets,
no threads; the clock and the id factory are injected; the caller serialises calls).

* **Accounts**: one per currency (the quote currency and every product's base currency); a
  total and the holds of open orders (``available = total - hold``). A limit or stop-limit BUY
  holds ``notional + fee`` at its limit price and the higher of the two fee rates, a SELL holds
  its remaining base size; a fill releases the hold of what it filled.
* **Market IOC** walks the current opposite side of the book level by level (one TAKER fill per
  level, each truncated to the base increment); a quote-sized BUY spends at most ``quote_size``
  including its fees. Nothing filled → ``EXPIRED``, the book ran out → ``CANCELLED``, else
  ``FILLED``. Funds are checked against the walk before anything happens.
* **Limit GTC** first takes the crossing levels as TAKER (a ``post_only`` order that would cross
  is refused instead), then rests; a later step whose book crosses its price fills it as MAKER
  at its limit price, up to the crossing levels' total size. **GTD** rests the same way until
  its ``end_time`` (then ``EXPIRED``); **IOC** (``sor_limit_ioc``) takes what crosses and
  cancels the rest (``EXPIRED`` when nothing filled); **FOK** fills whole from the crossing
  levels or not at all (``EXPIRED``).
* **Stop-limit GTC** is refused when the last trade has already crossed its stop
  (:func:`stop_crossed`, as Coinbase refuses it); otherwise it waits until a recorded trade
  prints at or through its stop
  (``STOP_UP``: price >= stop, ``STOP_DOWN``: price <= stop), then behaves as a limit order.
* Our orders do not consume the recorded book: the next step shows the recorded liquidity again.
* **Idempotency**: a ``client_order_id`` seen before returns the original order's answer and
  creates nothing (however the repeat's other fields differ).
* **User events**: every state change appends a cumulative UserOrder (``PENDING``, ``OPEN``,
  each fill, the end) to a bounded history, for the user channel and its replays.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptoj.adapters.coinbase.fake.matching import (
    Book,
    Level,
    QuoteTake,
    crossing,
    hits,
    split_spend,
    stop_crossed,
    walk_base,
    walk_quote,
)
from cryptoj.adapters.coinbase.fake.order_input import (
    NewOrder,
    Rejection,
    parse_order,
    reject,
    reject_preview,
)
from cryptoj.adapters.coinbase.fake.orders import ZERO, Fill, Order, floor_to, trunc8
from cryptoj.adapters.coinbase.fake.products import ProductSpec, fmt

USER_ID = "f4ce0000-0000-4000-8000-000000000001"
PORTFOLIO_ID = "f4ce0000-0000-4000-8000-000000000002"
NO_FUNDS = "Insufficient balance in source account"


@dataclass(frozen=True, slots=True)
class UserEvent:
    """One user-channel update: the order's cumulative state at that moment (JSON)."""

    no: int
    order_id: str
    product_id: str
    payload: bytes


class Exchange:
    """Balances, orders, fills and the matching engine; see the module docstring."""

    def __init__(
        self,
        specs: Mapping[str, ProductSpec],
        balances: Mapping[str, Decimal | str | int],
        *,
        clock: Callable[[], int],
        ids: Callable[[], str],
        taker_fee: Decimal = Decimal("0.006"),
        maker_fee: Decimal = Decimal("0.004"),
        history: int = 100_000,
    ) -> None:
        if not (ZERO <= maker_fee < 1 and ZERO <= taker_fee < 1):
            raise ValueError(f"fee rates must be in [0, 1): taker {taker_fee}, maker {maker_fee}")
        self.specs = dict(specs)
        self.clock, self.ids = clock, ids
        self.taker_fee, self.maker_fee = Decimal(taker_fee), Decimal(maker_fee)
        self.hold_rate = max(self.taker_fee, self.maker_fee)
        currencies = {c for s in self.specs.values() for c in (s.base_currency, s.quote_currency)}
        self.totals: dict[str, Decimal] = dict.fromkeys(sorted(currencies | set(balances)), ZERO)
        for cur, amount in balances.items():
            d = Decimal(str(amount))
            if not d.is_finite() or d < 0:
                raise ValueError(f"starting balance of {cur} must be >= 0, not {amount!r}")
            self.totals[cur] = d
        self.held: dict[str, Decimal] = dict.fromkeys(self.totals, ZERO)
        self.orders: dict[str, Order] = {}
        self.order_list: list[Order] = []
        self.by_client: dict[str, Order] = {}
        self.create_requests: Counter[str] = Counter()
        self.fills: list[Fill] = []
        self.open: dict[str, dict[str, Order]] = {p: {} for p in self.specs}
        self.finished: deque[str] = deque(maxlen=1000)
        self.events: deque[UserEvent] = deque(maxlen=history)
        self._new: list[UserEvent] = []
        self._event_no = 0
        self.volume = ZERO
        self.fees = ZERO

    # -- balances ----------------------------------------------------------------------------

    def available(self, currency: str) -> Decimal:
        """What new orders may use."""
        return self.totals.get(currency, ZERO) - self.held.get(currency, ZERO)

    def _hold_for(self, size: Decimal, price: Decimal) -> Decimal:
        notional = trunc8(price * size)
        return notional + trunc8(notional * self.hold_rate)

    def _set_hold(self, o: Order, amount: Decimal) -> None:
        cur = self._hold_currency(o)
        self.held[cur] += amount - o.hold
        o.hold = amount

    def _hold_currency(self, o: Order) -> str:
        spec = self.specs[o.product_id]
        return spec.quote_currency if o.side == "BUY" else spec.base_currency

    # -- create ------------------------------------------------------------------------------

    def create(
        self,
        body: Any,
        book_of: Callable[[str], Book],
        last_trade_of: Callable[[str], Decimal | None] = lambda _p: None,
    ) -> dict[str, Any]:
        """``POST /orders``: the HTTP 200 body (``success`` true or false).

        ``last_trade_of`` gives a product's last trade price (None: unknown, no stop check).
        """
        coid = body.get("client_order_id") if isinstance(body, dict) else None
        if isinstance(coid, str):
            self.create_requests[coid] += 1
            known = self.by_client.get(coid)
            if known is not None:
                return self.success_body(known)
        parsed = parse_order(body, self.specs)
        if isinstance(parsed, Rejection):
            return parsed.body(body)
        if parsed.end_ns is not None and parsed.end_ns <= self.clock():
            return reject("UNSUPPORTED_ORDER_CONFIGURATION", "end_time must be in the future").body(
                body
            )
        crossed = stop_crossed(parsed, last_trade_of(parsed.product_id))
        if crossed is not None:
            return crossed.body(body)
        book = book_of(parsed.product_id)
        plan = self._admit(parsed, book)
        if isinstance(plan, Rejection):
            return plan.body(body)
        o = self._accept(parsed)
        if parsed.kind == "market":
            takes, book_ran_out = plan
            for take in takes:
                if isinstance(take, QuoteTake):
                    self._fill(o, take.price, take.size, "TAKER", take.value, take.fee)
                else:
                    self._fill(o, take[0], take[1], "TAKER")
            if o.filled_size == 0:
                self._finish(o, "EXPIRED", "")
            elif book_ran_out:
                self._finish(o, "CANCELLED", "IOC remainder cancelled: the book ran out")
            else:
                self._finish(o, "FILLED", "")
        elif parsed.kind == "limit":
            if o.time_in_force == "FOK" and not self._fillable(o, book):
                self._finish(o, "EXPIRED", "FOK: the book cannot fill the whole size")
            else:
                self._take(o, book)
            if o.time_in_force in ("IOC", "FOK") and o.is_open:
                status = "CANCELLED" if o.filled_size else "EXPIRED"
                self._finish(o, status, "IOC remainder cancelled")
        return self.success_body(o)

    def _fillable(self, o: Order, book: Book) -> bool:
        """Whether the crossing levels hold ``o``'s whole size (fill or kill)."""
        assert o.limit_price is not None
        spec = self.specs[o.product_id]
        bids, asks = book
        levels = (
            [lv for lv in asks if lv[0] <= o.limit_price]
            if o.side == "BUY"
            else [lv for lv in bids if lv[0] >= o.limit_price]
        )
        return sum((s for _, s in walk_base(levels, o.remaining, spec.base_increment)), ZERO) >= (
            o.remaining
        )

    def success_body(self, o: Order) -> dict[str, Any]:
        """The ``success:true`` body of ``o`` (also what a repeated client_order_id gets)."""
        return {
            "success": True,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": o.order_id,
            "success_response": o.success_response(),
            "order_configuration": {o.config_key: dict(o.config)},
        }

    def _admit(
        self, n: NewOrder, book: Book
    ) -> Rejection | tuple[Sequence[Level | QuoteTake], bool]:
        spec = self.specs[n.product_id]
        bids, asks = book
        quote_cur, base_cur = spec.quote_currency, spec.base_currency
        if n.kind == "market":
            levels = asks if n.side == "BUY" else bids
            if n.quote_size is not None:
                if n.quote_size > self.available(quote_cur):
                    return reject("INSUFFICIENT_FUND", NO_FUNDS, "PREVIEW_INSUFFICIENT_FUND")
                takes, budget_left = walk_quote(
                    levels, n.quote_size, self.taker_fee, spec.base_increment
                )
                return takes, not budget_left
            assert n.base_size is not None
            if levels and levels[0][0] * n.base_size < spec.quote_min_size:
                return reject_preview(
                    "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
                    f"order value {fmt(levels[0][0] * n.base_size)} is below quote_min_size "
                    f"{fmt(spec.quote_min_size)}",
                )
            fills = walk_base(levels, n.base_size, spec.base_increment)
            if n.side == "BUY":
                cost = sum((self._cost(p, s, self.taker_fee) for p, s in fills), ZERO)
                if cost > self.available(quote_cur):
                    return reject("INSUFFICIENT_FUND", NO_FUNDS, "PREVIEW_INSUFFICIENT_FUND")
            elif n.base_size > self.available(base_cur):
                return reject("INSUFFICIENT_FUND", NO_FUNDS, "PREVIEW_INSUFFICIENT_FUND")
            return fills, sum((s for _, s in fills), ZERO) < n.base_size
        assert n.base_size is not None and n.limit_price is not None
        if n.post_only and crossing(n.side, n.limit_price, bids, asks):
            return reject(
                "INVALID_LIMIT_PRICE_POST_ONLY",
                f"post_only limit price {fmt(n.limit_price)} would cross the book",
                "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY",
            )
        if n.side == "BUY":
            if self._hold_for(n.base_size, n.limit_price) > self.available(quote_cur):
                return reject("INSUFFICIENT_FUND", NO_FUNDS, "PREVIEW_INSUFFICIENT_FUND")
        elif n.base_size > self.available(base_cur):
            return reject("INSUFFICIENT_FUND", NO_FUNDS, "PREVIEW_INSUFFICIENT_FUND")
        return [], False

    def _accept(self, n: NewOrder) -> Order:
        o = Order(
            seq=len(self.order_list),
            order_id=self.ids(),
            client_order_id=n.client_order_id,
            product_id=n.product_id,
            side=n.side,
            kind=n.kind,
            config=n.config,
            created_ns=self.clock(),
            base_size=n.base_size,
            quote_size=n.quote_size,
            limit_price=n.limit_price,
            stop_price=n.stop_price,
            stop_direction=n.stop_direction,
            post_only=n.post_only,
            config_key=n.config_key,
            time_in_force=n.time_in_force,
            end_ns=n.end_ns,
        )
        self.orders[o.order_id] = o
        self.order_list.append(o)
        self.by_client[o.client_order_id] = o
        self._emit(o)  # PENDING
        o.status = "OPEN"
        if o.kind != "market":
            assert o.base_size is not None and o.limit_price is not None
            held = self._hold_for(o.base_size, o.limit_price) if o.side == "BUY" else o.base_size
            self._set_hold(o, held)
            self.open[o.product_id][o.order_id] = o
        self._emit(o)
        return o

    # -- fills -------------------------------------------------------------------------------

    @staticmethod
    def _cost(price: Decimal, size: Decimal, rate: Decimal) -> Decimal:
        notional = trunc8(price * size)
        return notional + trunc8(notional * rate)

    def _fill(
        self,
        o: Order,
        price: Decimal,
        size: Decimal,
        liquidity: str,
        value: Decimal | None = None,
        commission: Decimal | None = None,
    ) -> None:
        """Book one fill; ``value`` and ``commission`` are given for quote-sized buys (their
        16-decimal split of the spend), else ``price × size`` and its fee, each truncated to
        1e-8."""
        spec = self.specs[o.product_id]
        rate = self.taker_fee if liquidity == "TAKER" else self.maker_fee
        notional = trunc8(price * size) if value is None else value
        fee = trunc8(notional * rate) if commission is None else commission
        quote, base = spec.quote_currency, spec.base_currency
        if o.side == "BUY":
            self.totals[quote] -= notional + fee
            self.totals[base] += size
        else:
            self.totals[base] -= size
            self.totals[quote] += notional - fee
        now = self.clock()
        f = Fill(len(self.fills), self.ids(), o.order_id, o.product_id, o.side, price, size,
                 notional, fee, liquidity, now, o.quote_size is not None)  # fmt: skip
        self.fills.append(f)
        o.fills.append(f)
        o.filled_size += size
        o.filled_value += notional
        o.total_fees += fee
        o.number_of_fills += 1
        o.last_fill_ns = now
        self.volume += notional
        self.fees += fee
        if o.kind != "market":
            assert o.limit_price is not None
            rest = o.remaining
            self._set_hold(o, self._hold_for(rest, o.limit_price) if o.side == "BUY" else rest)
            if rest <= 0:
                self._finish(o, "FILLED", "")
                return
        self._emit(o)

    def _finish(self, o: Order, status: str, reason: str) -> None:
        o.status = status
        o.cancel_reason = reason
        if o.hold:
            self._set_hold(o, ZERO)
        self.open[o.product_id].pop(o.order_id, None)
        self.finished.append(o.order_id)
        self._emit(o)

    def _take(self, o: Order, book: Book) -> None:
        """A (triggered) limit order takes the crossing levels as TAKER."""
        assert o.limit_price is not None
        spec = self.specs[o.product_id]
        bids, asks = book
        if o.side == "BUY":
            levels = [lv for lv in asks if lv[0] <= o.limit_price]
        else:
            levels = [lv for lv in bids if lv[0] >= o.limit_price]
        for price, size in walk_base(levels, o.remaining, spec.base_increment):
            self._fill(o, price, size, "TAKER")

    # -- market steps ------------------------------------------------------------------------

    def has_open(self, product: str) -> bool:
        """Whether ``product`` has working orders (the caller skips the book otherwise)."""
        return bool(self.open.get(product))

    def on_market(self, product: str, book: Book, trade_prices: Sequence[Decimal]) -> None:
        """A recorded step: expire GTD orders whose end time passed, trigger stops on its
        trades, then fill resting orders that cross."""
        now = self.clock()
        for o in list(self.open.get(product, {}).values()):
            if o.end_ns is not None and now >= o.end_ns:
                self._finish(o, "EXPIRED", "end_time reached")
        working = sorted(self.open.get(product, {}).values(), key=lambda o: o.seq)
        touched: set[str] = set()
        for price in trade_prices:
            for o in working:
                if o.kind == "stop_limit" and not o.triggered and o.is_open and hits(o, price):
                    o.triggered = True
                    self._emit(o)
                    self._take(o, book)
                    touched.add(o.order_id)
        bids, asks = book
        spec = self.specs[product]
        for o in working:
            if (
                not o.is_open
                or o.order_id in touched
                or (o.kind == "stop_limit" and not o.triggered)
            ):
                continue
            assert o.limit_price is not None
            if o.side == "BUY":
                depth = sum(
                    (floor_to(s, spec.base_increment) for p, s in asks if p <= o.limit_price), ZERO
                )
            else:
                depth = sum(
                    (floor_to(s, spec.base_increment) for p, s in bids if p >= o.limit_price), ZERO
                )
            size = min(depth, o.remaining)
            if size > 0:
                self._fill(o, o.limit_price, size, "MAKER")

    # -- cancel ------------------------------------------------------------------------------

    def cancel(self, order_ids: Sequence[str]) -> list[dict[str, Any]]:
        """``POST /orders/batch_cancel``: one result per id, in order."""
        out = []
        for oid in order_ids:
            o = self.orders.get(oid)
            if o is not None and o.is_open:
                self._finish(o, "CANCELLED", "User requested cancel")
                reason, ok = "UNKNOWN_CANCEL_FAILURE_REASON", True
            elif o is not None and o.status == "FILLED":
                reason, ok = "ORDER_IS_FULLY_FILLED", False
            else:
                reason, ok = "UNKNOWN_CANCEL_ORDER", False
            out.append({"success": ok, "failure_reason": reason, "order_id": oid})
        return out

    # -- user events -------------------------------------------------------------------------

    def _emit(self, o: Order) -> None:
        self._event_no += 1
        payload = json.dumps(o.to_user(), separators=(",", ":")).encode()
        e = UserEvent(self._event_no, o.order_id, o.product_id, payload)
        self.events.append(e)
        self._new.append(e)

    def take_new_events(self) -> list[UserEvent]:
        """The events since the last call (for the live user channel)."""
        out, self._new = self._new, []
        return out

    def open_orders(self) -> list[Order]:
        """Every working order, oldest first (the user channel's snapshot)."""
        return sorted((o for d in self.open.values() for o in d.values()), key=lambda o: o.seq)

    def replay_events(self, recent: int) -> list[UserEvent]:
        """The remembered events of the open orders and the ``recent`` last finished ones."""
        keep = {o.order_id for o in self.open_orders()}
        if recent > 0:
            keep.update(list(self.finished)[-recent:])
        return [e for e in self.events if e.order_id in keep]

    # -- checks ------------------------------------------------------------------------------

    def invariant_violations(self) -> list[str]:
        """Broken bookkeeping, if any: negative totals or availability, holds that do not add up."""
        problems = []
        sums: dict[str, Decimal] = dict.fromkeys(self.totals, ZERO)
        for d in self.open.values():
            for o in d.values():
                sums[self._hold_currency(o)] += o.hold
        for cur, total in self.totals.items():
            if total < 0:
                problems.append(f"{cur} total {total} < 0")
            if self.held[cur] != sums[cur]:
                problems.append(f"{cur} held {self.held[cur]} != open holds {sums[cur]}")
            if self.available(cur) < 0:
                problems.append(f"{cur} available {self.available(cur)} < 0")
        return problems


__all__ = [
    "NO_FUNDS",
    "PORTFOLIO_ID",
    "USER_ID",
    "Book",
    "Exchange",
    "Level",
    "QuoteTake",
    "UserEvent",
    "split_spend",
    "stop_crossed",
    "walk_base",
    "walk_quote",
]
