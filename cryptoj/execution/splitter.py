"""The ExecutionActor's split orders: start them, route their children's events, cancel them.

Pure bookkeeping over :class:`~cryptoj.execution.parent.ParentOrder` (no actor, no venue, no
journal): each method answers with :class:`~cryptoj.execution.parent.Actions` for the actor to
carry out, or None when the message is not about a split order (the actor then handles it as
before). Books are read through a :data:`BookSource` the actor supplies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cryptoj.execution.parent import Actions, ParentOrder
from cryptoj.execution.plan import SplitPlan
from cryptoj.execution.splitting import (
    BookView,
    ProductRules,
    SplitDecision,
    SplitPolicy,
    should_split,
)
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
    OrderStatusReport,
    OrderType,
    Side,
    SubmitOrder,
)

BookSource = Callable[[str, Side], BookView | None]
"""``(product, side) → BookView | None``: the touch an order on ``side`` takes from, now."""

RulesSource = Callable[[str], ProductRules]
"""``product → ProductRules`` (the venue's increments and minimums)."""


def _default_rules(product: str) -> ProductRules:
    return ProductRules()


class OrderSplitter:
    """Every split parent of one ExecutionActor and the routing of their children's events."""

    def __init__(self, policy: SplitPolicy, rules: RulesSource = _default_rules) -> None:
        """Split with ``policy``; ``rules`` gives each product's increments and minimums."""
        self.policy = policy
        self.rules = rules
        self._parents: dict[str, ParentOrder] = {}
        self._owner: dict[str, ParentOrder] = {}  # child id → its parent
        self._held: set[str] = set()  # restored parents the timer leaves alone (release)

    # -- lookups ---------------------------------------------------------------------------

    def parent(self, client_order_id: str) -> ParentOrder | None:
        """The split parent with this id (working, or finished and not :meth:`forget`-ten),
        or None."""
        return self._parents.get(client_order_id)

    def owner(self, child_client_order_id: str) -> ParentOrder | None:
        """The parent of this child, or None when it is not a child."""
        return self._owner.get(child_client_order_id)

    def working(self) -> list[ParentOrder]:
        """Parents not finished yet, oldest first."""
        return [p for p in self._parents.values() if not p.status.terminal]

    # -- parents ---------------------------------------------------------------------------

    def decide(self, order: SubmitOrder, book: BookView | None) -> SplitDecision:
        """Whether ``order`` is split (:func:`~cryptoj.execution.splitting.should_split`).

        Only MARKET and LIMIT orders are split (a stop order waits for its trigger whole), and
        never one marked ``split=False`` (unwind slices, stop-loss exits, compensations).
        """
        if not order.split:
            return SplitDecision(False, "marked to go whole (split=False)")
        if order.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            return SplitDecision(False, f"{order.order_type} orders are not split")
        limit = order.limit_price if order.order_type is OrderType.LIMIT else None
        return should_split(order.quantity, book, self.policy, self.rules(order.product), limit)

    def start(
        self, order: SubmitOrder, book: BookView | None, now: int
    ) -> tuple[SplitPlan, Actions]:
        """Split ``order`` from ``now``: its plan (journal it first) and the first actions."""
        if order.client_order_id in self._parents:
            raise ValueError(f"{order.client_order_id!r} is already a split parent")
        plan = SplitPlan(
            order=order, policy=self.policy, rules=self.rules(order.product), start_ns=now
        )
        parent = ParentOrder(plan)
        self._parents[order.client_order_id] = parent
        return plan, self._track(parent, parent.on_tick(now, book))

    def restore(self, parents: Iterable[ParentOrder]) -> None:
        """Adopt parents rebuilt from the journal, held: :meth:`on_tick` leaves them alone
        until :meth:`release` (their children's events still reach them)."""
        for parent in parents:
            self._parents[parent.client_order_id] = parent
            self._held.add(parent.client_order_id)
            for cid in parent.child_ids():
                self._owner[cid] = parent

    def release(self, client_order_ids: Iterable[str]) -> None:
        """Restored parents the timer moves on from now on (then call :meth:`on_tick`)."""
        self._held.difference_update(client_order_ids)

    def forget(self, client_order_id: str) -> None:
        """Drop a finished parent and its children's routing (keeps a long run's memory flat;
        the actor answers for them from the journal from then on)."""
        parent = self._parents.get(client_order_id)
        if parent is None or not parent.status.terminal:
            return
        del self._parents[client_order_id]
        for cid in parent.child_ids():
            self._owner.pop(cid, None)

    def cancel(self, client_order_id: str, now: int) -> Actions | None:
        """Cancel a split parent (journal the request first); None when it is not one."""
        parent = self._parents.get(client_order_id)
        return None if parent is None else parent.cancel(now)

    def cancel_all(self, now: int) -> Actions:
        """Cancel every working parent (``CancelAllOrders``)."""
        out = Actions()
        for parent in self.working():
            out = out.merge(parent.cancel(now))
        return out

    def on_tick(self, now: int, books: BookSource) -> Actions:
        """The timer: every working parent's slot (but the held ones, see :meth:`restore`)."""
        out = Actions()
        for p in self.working():
            if p.client_order_id in self._held:
                continue
            order = p.plan.order
            out = out.merge(self._track(p, p.on_tick(now, books(order.product, order.side))))
        return out

    # -- children's events -----------------------------------------------------------------

    def on_accepted(self, msg: OrderAccepted) -> bool:
        """A child was acknowledged (True), or ``msg`` is not about a child (False)."""
        parent = self._owner.get(msg.client_order_id)
        if parent is None:
            return False
        parent.on_child_accepted(msg.client_order_id)
        return True

    def on_fill(self, fill: Fill) -> Actions | None:
        """A child's fill, re-labelled for the portfolio; None when not a child's."""
        parent = self._owner.get(fill.client_order_id)
        return None if parent is None else parent.on_child_fill(fill)

    def on_closed(self, msg: OrderClosed, now: int, books: BookSource) -> Actions | None:
        """A child closed; None when not a child's."""
        parent = self._owner.get(msg.client_order_id)
        if parent is None:
            return None
        order = parent.plan.order
        return self._track(
            parent, parent.on_child_closed(msg, now, books(order.product, order.side))
        )

    def on_rejected(self, msg: OrderRejected, now: int, books: BookSource) -> Actions | None:
        """A child was rejected; None when not a child's."""
        parent = self._owner.get(msg.client_order_id)
        if parent is None:
            return None
        order = parent.plan.order
        return self._track(
            parent, parent.on_child_rejected(msg, now, books(order.product, order.side))
        )

    def on_report(self, msg: OrderStatusReport, now: int, books: BookSource) -> Actions | None:
        """A child reconciled with the venue; None when not a child's."""
        parent = self._owner.get(msg.client_order_id)
        if parent is None:
            return None
        order = parent.plan.order
        return self._track(
            parent, parent.on_child_report(msg, now, books(order.product, order.side))
        )

    def _track(self, parent: ParentOrder, actions: Actions) -> Actions:
        for child in actions.submit:
            self._owner[child.client_order_id] = parent
        return actions


__all__ = ["BookSource", "OrderSplitter", "RulesSource"]
