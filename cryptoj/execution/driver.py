"""The ExecutionActor's side of order splitting: carry out what the splitter decides.

:class:`SplitDriver` keeps :class:`~cryptoj.actors.execution.ExecutionActor` thin. The actor
hands it every message that may concern a split order; the driver asks the
:class:`~cryptoj.execution.splitter.OrderSplitter` and carries out its
:class:`~cryptoj.execution.parent.Actions`, journal first, in this order:

1. each child in ``submit``: journalled PENDING (:func:`~.records.journal_order`), then sent
   through the actor (``send_child``: the same venue call, error journalling and row updates
   as a whole order). Accepted → the splitter learns it; an unknown outcome → the child stays
   PENDING and open, the actor's unknown-outcome machinery settles it by ``client_order_id``;
   rejected → the row is REJECTED and the splitter decides what follows (never the portfolio);
2. each id in ``cancel``: the request journalled (:func:`~.records.journal_cancel`, the rebuild
   depends on it), then cancelled at the venue;
3. ``fills`` to the portfolio, re-labelled with the parent's id (the parent's row gets its
   filled quantity with its report; the children's rows follow their fills as they come);
4. each report in ``reports``: the parent's row made terminal, then the report to the portfolio;
5. ``wake_at_ns``: a ``Tick("execution.split:<token>:<wake>")`` to the actor (one per distinct
   wake time; the token is the actor incarnation's, so a restart never doubles them).

What follows a child rejection (a retry in the next slot, or the parent's end) is carried out
after the rest.

Books: the touch comes from the venue's last quote (both venues receive every quote through
the feed's quote sink), :func:`~.splitting.book_view`. Product rules come from the venue when it
has them (Coinbase: increments and minimums of ``GET /products/{id}``); the paper venue uses the
defaults (its increment is 1e-8, no minimums). When the rules cannot be read an order is sent
whole.

Fills of children on a venue that re-derives fills after a restart (Coinbase: deltas beyond what
the journal booked) are journalled as ``split_fill`` events before they are forwarded, so the
baseline of each child can be found again (``Journal.fill_totals`` of its fill ids).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Protocol, runtime_checkable

import msgspec

from cryptoj.contract import Context
from cryptoj.execution.parent import Actions, ParentOrder
from cryptoj.execution.plan import child_id
from cryptoj.execution.records import (
    child_fill_ids,
    journal_cancel,
    journal_child_fill,
    journal_order,
    journal_plan,
    parent_of,
    restore_parents,
    split_plans,
)
from cryptoj.execution.splitter import OrderSplitter
from cryptoj.execution.splitting import (
    BookView,
    ProductRules,
    SplitDecision,
    SplitPolicy,
    book_view,
)
from cryptoj.journal import Journal
from cryptoj.models.market import Quote
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderStatus,
    OrderStatusReport,
    Side,
    SubmitOrder,
)
from cryptoj.models.system import Tick
from cryptoj.venues.base import ExecutionVenue, ReconcilingVenue

SPLIT_TIMER = "execution.split"

SendChild = Callable[[SubmitOrder, Context], OrderAccepted | OrderRejected | OrderOutcomeUnknown]
"""The actor's venue call for one order (journals errors, unknown outcomes and row states)."""


@runtime_checkable
class QuotingVenue(Protocol):
    """A venue that keeps the last quote of each product (both venues do)."""

    def last_quote(self, product: str) -> Quote | None:
        """The last quote of ``product``, or None."""
        ...


class VenueRules(Protocol):
    """The size rules of one product as a venue states them (Coinbase's product fields)."""

    @property
    def base_increment(self) -> Decimal:
        """Quantities are multiples of this."""
        ...

    @property
    def base_min_size(self) -> Decimal:
        """The smallest quantity."""
        ...

    @property
    def quote_min_size(self) -> Decimal:
        """The smallest notional, quote currency."""
        ...


@runtime_checkable
class RulesVenue(Protocol):
    """A venue with per-product size rules (Coinbase)."""

    def product_rules(self, product: str) -> VenueRules | None:
        """The product's rules; None when they cannot be read now."""
        ...


class SplitDriver:
    """Drives the split orders of one ExecutionActor incarnation (module docstring)."""

    def __init__(
        self,
        venue: ExecutionVenue,
        policy: SplitPolicy | None,
        *,
        portfolio: str,
        send_child: SendChild,
        track_fills: bool,
    ) -> None:
        """``policy`` None: no new order is split (journalled parents are still finished)."""
        self.venue = venue
        self._quotes = venue if isinstance(venue, QuotingVenue) else None
        self._stale: set[str] = set()  # products whose feed is stale (FeedStatus)
        self._rules_of = venue if isinstance(venue, RulesVenue) else None
        self.portfolio = portfolio
        self.send_child = send_child
        self.track_fills = track_fills
        self.splitter = OrderSplitter(policy or SplitPolicy(enabled=False), self._rules)
        self.journal: Journal | None = None
        self.token = ""
        self.plans: set[str] = set()  # every journalled parent's id, working or finished
        self._rules_seen: dict[str, ProductRules] = {}
        self._armed: set[int] = set()
        self._child_fills: dict[str, set[str]] = {}
        self._restored: list[ParentOrder] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, journal: Journal, token: str) -> None:
        """Rebuild the working parents from the journal (before any reconciliation)."""
        self.journal, self.token = journal, token
        self.plans = set(split_plans(journal))
        self._restored = restore_parents(journal)
        self.splitter.restore(self._restored)
        if self.track_fills:
            self._child_fills = child_fill_ids(journal)

    def resume(self, ctx: Context, settled: Callable[[str], bool] | None = None) -> None:
        """Move the parents rebuilt from the journal on (each one's current slot): those whose
        every child ``settled`` says is settled (its final state and every fill known), or all
        of them when ``settled`` is None (after the reconciliation on start). Until then the
        split timer leaves a restored parent alone; its children's events still move it."""
        ready = [
            p
            for p in self._restored
            if settled is None or all(settled(cid) for cid in p.child_ids())
        ]
        if ready:
            ids = [p.client_order_id for p in ready]
            detail = f"{len(ids)} working parents rebuilt from the journal: {', '.join(ids)}"
            self._j().record_event(ctx.now(), "execution", "split_restored", detail)
            self._restored = [p for p in self._restored if p not in ready]
            self.splitter.release(ids)
        self.carry_out(self.splitter.on_tick(ctx.now(), self.books), ctx)

    def _j(self) -> Journal:
        assert self.journal is not None, "SplitDriver used before start"
        return self.journal

    # -- lookups ---------------------------------------------------------------------------

    def is_parent(self, client_order_id: str) -> bool:
        """True for a split parent (never at the venue), working or finished."""
        return client_order_id in self.plans

    def set_stale(self, products: tuple[str, ...], stale: bool) -> None:
        """The feed says these products are stale (or fresh again): while stale, no child of
        theirs goes out (their book is unknown); a parent's deadline still ends it."""
        if stale:
            self._stale.update(products)
        else:
            self._stale.difference_update(products)

    def books(self, product: str, side: Side) -> BookView | None:
        """The touch an order on ``side`` takes from, from the venue's last quote (None while
        the product's feed is stale: the splitter then waits)."""
        if product in self._stale:
            return None
        quote = self._quotes.last_quote(product) if self._quotes is not None else None
        return book_view(quote, side)

    def _rules(self, product: str) -> ProductRules:
        return self._rules_seen.get(product) or ProductRules()

    def _fetch_rules(self, product: str) -> ProductRules | None:
        if self._rules_of is None:
            return ProductRules()
        r = self._rules_of.product_rules(product)
        if r is None:
            return None
        rules = ProductRules(
            base_increment=r.base_increment,
            base_min_size=r.base_min_size,
            quote_min_size=r.quote_min_size,
        )
        self._rules_seen[product] = rules
        return rules

    def booked(self, client_order_id: str) -> tuple[Decimal, Decimal, Decimal] | None:
        """What the journal booked for a child (quantity, notional, fees); None if not one."""
        pid = parent_of(client_order_id, self.plans)
        if pid is None:
            return None
        ids = self._child_fills.get(client_order_id, set())
        return self._j().fill_totals(pid, ids)

    # -- new orders ------------------------------------------------------------------------

    def decide(self, order: SubmitOrder) -> SplitDecision:
        """Whether ``order`` (journalled, not yet sent) is split."""
        book = self.books(order.product, order.side)
        wanted = self.splitter.policy.enabled and order.split and book is not None
        if wanted and self._fetch_rules(order.product) is None:
            return SplitDecision(False, "product rules unavailable: sent whole")
        return self.splitter.decide(order, book)

    def start_parent(self, order: SubmitOrder, ctx: Context) -> None:
        """Split ``order``: journal its plan, its row OPEN, then its first actions."""
        now = ctx.now()
        plan, actions = self.splitter.start(order, self.books(order.product, order.side), now)
        journal_plan(self._j(), plan, now)
        self.plans.add(order.client_order_id)
        self._j().update_order(order.client_order_id, now, status=OrderStatus.OPEN)
        self.carry_out(actions, ctx)

    # -- venue events and reconciliation of children ---------------------------------------

    def on_accepted(self, msg: OrderAccepted) -> None:
        """A child was acknowledged (a no-op for other orders)."""
        self.splitter.on_accepted(msg)

    def route(
        self, msg: Fill | OrderClosed | OrderRejected | OrderStatusReport, ctx: Context
    ) -> bool:
        """Handle an event or a reconciliation result of a child; False when not a child's.

        A child of a parent finished before this incarnation: its fills still reach the
        portfolio re-labelled (it deduplicates), its closes and reports go nowhere.
        """
        now, actions = ctx.now(), None
        if isinstance(msg, Fill):
            actions = self._child_fill(msg, ctx)
        elif isinstance(msg, OrderClosed):
            actions = self.splitter.on_closed(msg, now, self.books)
        elif isinstance(msg, OrderRejected):
            actions = self.splitter.on_rejected(msg, now, self.books)
        else:
            actions = self.splitter.on_report(msg, now, self.books)
        if actions is not None:
            self.carry_out(actions, ctx)
            return True
        pid = parent_of(msg.client_order_id, self.plans)
        if pid is None:
            return False
        if isinstance(msg, Fill):
            self._map_fill(msg, ctx)
            ctx.send(self.portfolio, relabel_fill(msg, pid))
        return True

    def _child_fill(self, fill: Fill, ctx: Context) -> Actions | None:
        if self.splitter.owner(fill.client_order_id) is None:
            return None
        self._map_fill(fill, ctx)
        return self.splitter.on_fill(fill)

    def _map_fill(self, fill: Fill, ctx: Context) -> None:
        if not self.track_fills:
            return
        seen = self._child_fills.setdefault(fill.client_order_id, set())
        if fill.fill_id not in seen:
            journal_child_fill(self._j(), fill.client_order_id, fill.fill_id, ctx.now())
            seen.add(fill.fill_id)

    # -- requests from the portfolio -------------------------------------------------------

    def cancel(self, client_order_id: str, ctx: Context) -> bool:
        """Cancel a split parent (journalled first); False when it is not one.

        Children whose cancel was asked before and that are still open are asked again (a
        cancel the venue did not take the first time).
        """
        if client_order_id not in self.plans:
            return False
        parent = self.splitter.parent(client_order_id)
        if parent is None or parent.status.terminal:
            return True  # finished: nothing left to cancel
        now = ctx.now()
        journal_cancel(self._j(), client_order_id, now)
        actions = self.splitter.cancel(client_order_id, now) or Actions()
        again = [c for c in parent.open_child_ids() if c not in actions.cancel]
        self.carry_out(actions, ctx)
        for cid in again:
            self.venue_cancel(cid, now)
        return True

    def cancel_all(self, ctx: Context) -> None:
        """Cancel every working parent (``CancelAllOrders``; the actor then cancels the rest)."""
        now = ctx.now()
        for parent in self.splitter.working():
            journal_cancel(self._j(), parent.client_order_id, now)
        self.carry_out(self.splitter.cancel_all(now), ctx)

    def status(self, client_order_id: str, ctx: Context) -> bool:
        """Answer an ``OrderStatusRequest`` (or a duplicate submit) for a parent: every child
        fill re-labelled, then the parent's report; False when it is not a parent."""
        if client_order_id not in self.plans:
            return False
        parent = self.splitter.parent(client_order_id)
        if parent is not None:
            for cid in parent.child_ids():
                for fill in self._fills_for(cid):
                    self.carry_out(self._child_fill(fill, ctx) or Actions(), ctx)
            ctx.send(self.portfolio, parent.status_report(ctx.now()))
            return True
        # finished before this incarnation: its row says how it ended
        journal = self._j()
        n = 1
        while journal.order(cid := child_id(client_order_id, n)) is not None:
            for fill in self._fills_for(cid):
                self._map_fill(fill, ctx)
                ctx.send(self.portfolio, relabel_fill(fill, client_order_id))
            n += 1
        row = journal.order(client_order_id)
        ctx.send(
            self.portfolio,
            OrderStatusReport(
                ts=ctx.now(),
                client_order_id=client_order_id,
                known=row is not None,
                status=OrderStatus(row["status"]) if row is not None else None,
                filled_quantity=Decimal(row["filled_quantity"]) if row is not None else Decimal(0),
            ),
        )
        return True

    def on_timer(self, rest: str, ctx: Context) -> None:
        """A split timer (``<token>:<wake>`` after the kind); earlier incarnations' are ignored."""
        token, _, wake = rest.partition(":")
        if token != self.token:
            return
        if wake.isdigit():
            self._armed.discard(int(wake))
        self.carry_out(self.splitter.on_tick(ctx.now(), self.books), ctx)

    # -- carrying out ----------------------------------------------------------------------

    def carry_out(self, actions: Actions, ctx: Context) -> None:
        """Do what ``actions`` says, journal first (module docstring)."""
        journal, now = self._j(), ctx.now()
        follow = Actions()
        for child in actions.submit:
            journal_order(journal, child)
            result = self.send_child(child, ctx)
            if isinstance(result, OrderAccepted):
                self.splitter.on_accepted(result)
            elif isinstance(result, OrderRejected):
                follow = follow.merge(
                    self.splitter.on_rejected(result, ctx.now(), self.books) or Actions()
                )
        for cid in actions.cancel:
            journal_cancel(journal, cid, now)
            self.venue_cancel(cid, now)
        for fill in actions.fills:
            ctx.send(self.portfolio, fill)
        for report in actions.reports:
            if isinstance(report, OrderClosed):
                journal.update_order(
                    report.client_order_id,
                    now,
                    status=report.status,
                    filled_quantity=report.filled_quantity,
                )
            else:
                journal.update_order(
                    report.client_order_id, now, status=OrderStatus.REJECTED, reason=report.reason
                )
            ctx.send(self.portfolio, report)
            self.splitter.forget(report.client_order_id)
        if actions.wake_at_ns is not None and actions.wake_at_ns not in self._armed:
            self._armed.add(actions.wake_at_ns)
            tick = Tick(kind=f"{SPLIT_TIMER}:{self.token}:{actions.wake_at_ns}")
            ctx.schedule(max(0, actions.wake_at_ns - now), tick)
        if follow:
            self.carry_out(follow, ctx)

    def venue_cancel(self, client_order_id: str, now: int) -> None:
        """Cancel one order at the venue (a child, or one the actor was asked to cancel): on
        the venue's background thread when it has one, else here (its close arrives as a venue
        event either way)."""
        v = self.venue
        if not (isinstance(v, ReconcilingVenue) and v.cancel_later([client_order_id])):
            v.cancel(client_order_id, now)

    def _fills_for(self, client_order_id: str) -> tuple[Fill, ...]:
        return tuple(self.venue.fills_for(client_order_id))


def relabel_fill(fill: Fill, parent_id: str) -> Fill:
    """``fill`` of a child under its parent's id (the portfolio reserved funds under it)."""
    return msgspec.structs.replace(fill, client_order_id=parent_id)


__all__ = [
    "SPLIT_TIMER",
    "QuotingVenue",
    "RulesVenue",
    "SendChild",
    "SplitDriver",
    "VenueRules",
    "relabel_fill",
]
