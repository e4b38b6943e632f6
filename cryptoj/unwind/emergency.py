"""Flattening through the ShutdownActor's own venue client, while the tree is down.

Used only after a supervision escalation (the root supervisor failed: the PortfolioActor and
the ExecutionActor are gone, so the guardian is the last writer of the journal) and only when
``shutdown.triggers.escalation`` is ``flatten``. The venue wins: first the fills the venue
has and the journal lacks are journalled (with their position changes) and intents whose
orders ended are closed; then every base-currency balance with a book is sold, highest
priority first, in slices against the venue's visible depth (:mod:`cryptoj.unwind.slicing`),
one slice per product per fresh book, until ``emergency_deadline_s``; then the remainder at
market. Every order is journalled (intent and order row) before it is sent, every fill after
(journal first), so a restart recovers as after any crash; every slice is an ``unwind_slice``
event like the PortfolioActor's (fill, slippage against the arrival mid, what is left).

With the replay feed stopped the paper book does not change any more, so in a replay the
emergency flatten waits for the deadline and then sells at market on the last book.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from cryptoj.journal import Journal, order_row
from cryptoj.models.market import Quote
from cryptoj.models.orders import Fill, OrderStatus, OrderType, Side, SubmitOrder
from cryptoj.models.unwind import UnwindSliceReport
from cryptoj.portfolio.ledger import Ledger
from cryptoj.unwind.queue import UnwindItem, UnwindQueue
from cryptoj.unwind.report import slice_event
from cryptoj.unwind.slicing import SliceRules, next_slice, slippage_bps

#: After the deadline, at most this many market orders per product on an unchanged book.
MAX_MARKET_RETRIES = 3


@runtime_checkable
class BookVenue(Protocol):
    """What the emergency flatten needs of a venue client (the paper venue has all of it)."""

    @property
    def quote_currency(self) -> str:
        """The account's cash currency."""
        ...

    def submit(self, order: SubmitOrder, ts: int) -> Any:
        """Place an order."""
        ...

    def get_order(self, client_order_id: str) -> Any:
        """The venue's view of one order."""
        ...

    def fills_for(self, client_order_id: str) -> tuple[Fill, ...]:
        """Every fill of one order."""
        ...

    def all_fills(self) -> tuple[Fill, ...]:
        """Every fill of the account."""
        ...

    def balances(self) -> dict[str, Decimal]:
        """Total balance per currency."""
        ...

    def available(self, currency: str) -> Decimal:
        """Balance not held by open orders."""
        ...

    def last_quote(self, product: str) -> Quote | None:
        """The venue's top of book."""
        ...

    def levels(self, product: str, side: Side) -> list[tuple[Decimal, Decimal]]:
        """The visible (price, size) levels on ``side``."""
        ...


class EmergencyUnwinder:
    """Sells every position through ``venue`` (module docstring); call :meth:`step` on a timer."""

    def __init__(
        self,
        venue: BookVenue,
        journal: Journal,
        *,
        rules: SliceRules,
        deadline_ns: int,
        priorities: Mapping[str, float],
        max_concurrent: int = 1,
        prefix: str = "cj-emergency",
    ) -> None:
        self.venue = venue
        self.journal = journal
        self.rules = rules
        self.deadline_ns = deadline_ns
        self.priorities = dict(priorities)
        self.max_concurrent = max_concurrent
        self.prefix = prefix
        self.queue = UnwindQueue()
        self.orders = 0
        self.adopted = 0
        self.market_tries: dict[str, int] = {}
        start = journal.get_meta("starting_cash")
        self.ledger = Ledger(Decimal(start or "0"))
        for fill in journal.fills():
            self.ledger.apply_fill(fill)

    def _record_fill(self, fill: Fill) -> None:
        if self.journal.has_fill(fill.fill_id):
            return
        holding = self.ledger.apply_fill(fill)
        self.journal.record_fill(fill, holding.quantity, holding.average_price, self.ledger.cash)

    def adopt(self, now_ns: int) -> int:
        """Journal the venue's fills the journal lacks; close intents whose orders ended."""
        before = len(self.journal.fills())
        for fill in self.venue.all_fills():
            self._record_fill(fill)
        for row in self.journal.open_intents():
            coid = row["client_order_id"]
            order = self.venue.get_order(coid)
            if order is None:
                self.journal.close_intent(coid, "UNKNOWN_AT_VENUE", now_ns)
            elif order.status.terminal:
                self.journal.close_intent(coid, str(order.status), now_ns)
        self.adopted = len(self.journal.fills()) - before
        return self.adopted

    def start(self, now_ns: int) -> list[str]:
        """Queue every position the venue holds and has a book for, highest priority first
        (the priorities the ShutdownActor last computed; unknown products last)."""
        quote_ccy = self.venue.quote_currency
        items: list[UnwindItem] = []
        for currency, total in self.venue.balances().items():
            product = f"{currency}-{quote_ccy}"
            book = self.venue.last_quote(product)
            if currency == quote_ccy or total <= 0 or book is None:
                continue
            items.append(
                UnwindItem(
                    product=product,
                    target=Decimal(0),
                    priority=self.priorities.get(product, -1.0),
                    plan_id="emergency",
                    trigger="escalation",
                    deadline_ns=self.deadline_ns,
                    started_ns=now_ns,
                    start_mid=book.mid,
                )
            )
        items.sort(key=lambda i: (-i.priority, i.product))
        self.queue.replace_plan(items)
        return [i.product for i in self.queue.ordered()]

    def step(self, now_ns: int) -> bool:
        """Send the slices that are due now; True when nothing is left to sell."""
        for item in self.queue.active(self.max_concurrent, now_ns):
            base = item.product.partition("-")[0]
            remaining = self.venue.available(base)
            book = self.venue.last_quote(item.product)
            if remaining <= 0 or book is None:
                self.queue.remove(item.product)
                continue
            fresh = book.ts > item.last_quote_ts
            if not fresh and not item.past_deadline(now_ns):
                continue
            if not fresh:
                tries = self.market_tries.get(item.product, 0)
                if tries >= MAX_MARKET_RETRIES:
                    self.queue.remove(item.product)  # nothing more to get from this book
                    continue
                self.market_tries[item.product] = tries + 1
            decision = next_slice(
                remaining,
                self.venue.levels(item.product, Side.SELL),
                None,
                self.rules,
                now_ns=now_ns,
                deadline_ns=self.deadline_ns,
            )
            if decision is None:
                continue
            item.last_quote_ts = book.ts
            item.slices += 1
            self._sell(item, book, decision.quantity, decision.at_market, decision.why, now_ns)
            if self.venue.available(base) <= 0:
                self.queue.remove(item.product)
        return len(self.queue) == 0

    def _sell(
        self,
        item: UnwindItem,
        book: Quote,
        quantity: Decimal,
        at_market: bool,
        why: str,
        now_ns: int,
    ) -> None:
        product = item.product
        self.orders += 1
        coid = f"{self.prefix}-{self.orders:06d}"
        reason = f"emergency flatten through the guardian's own venue client: {why}"
        order = SubmitOrder(
            ts=now_ns,
            client_order_id=coid,
            product=product,
            side=Side.SELL,
            order_type=OrderType.MARKET,
            quantity=quantity,
            reason=reason,
            split=False,  # straight to the venue, never through the ExecutionActor
        )
        row = order_row(order, now_ns)
        self.journal.record_intent({**row, "reserved_cash": Decimal(0), "reserved_base": quantity})
        self.journal.record_order(row)
        self.venue.submit(order, now_ns)
        for fill in self.venue.fills_for(coid):
            self._record_fill(fill)
        v = self.venue.get_order(coid)
        status = v.status if v is not None else OrderStatus.REJECTED
        filled = v.filled_quantity if v is not None else Decimal(0)
        self.journal.update_order(coid, now_ns, status=status, filled_quantity=filled)
        self.journal.close_intent(coid, str(status), now_ns)
        avg = v.average_price if v is not None else None
        start = item.start_mid if item.start_mid is not None else book.mid
        left = self.venue.available(product.partition("-")[0])
        report = UnwindSliceReport(
            ts=now_ns,
            plan_id=item.plan_id,
            trigger=item.trigger,
            product=product,
            client_order_id=coid,
            quantity=quantity,
            filled=filled,
            average_price=avg,
            arrival_mid=book.mid,
            start_mid=start,
            slippage_bps=slippage_bps(book.mid, avg) if avg is not None else 0.0,
            shortfall_bps=slippage_bps(start, avg) if avg is not None else 0.0,
            remaining_quantity=left,
            remaining_exposure=left * book.mid,
            at_market=at_market,
            status=str(status),
            started_ns=item.started_ns,
        )
        self.journal.record_event(now_ns, "shutdown", "unwind_slice", slice_event(report))
