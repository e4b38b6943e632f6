"""One split order: the parent's state machine over its child orders. Pure.

A :class:`ParentOrder` is driven by the ExecutionActor with the parent's events and its timer,
and answers each with :class:`Actions` (children to journal and send, children to cancel, fills
and the final report for the portfolio, when to call :meth:`ParentOrder.on_tick` next).

Children
    Child ``n`` (from 1) is ``f"{parent}-c{n}"``: the same product, side, order type, limit price
    and post-only flag as the parent, sized by :func:`~cryptoj.execution.splitting.next_child`.
    At most one child is open at a time and at most one is sent per slot. A LIMIT child still
    open when the next slot starts is cancelled (the parent asked: it does not stop the parent);
    the next child goes out when its close arrives. An open MARKET (IOC) child is waited for.
    Ids are derived, never drawn: after a restart ``n`` continues from the journalled children,
    so no child is ever posted twice under two ids.

Upstream (what the portfolio sees)
    The portfolio reserved funds under the *parent's* ``client_order_id`` and knows nothing of
    children. Every child :class:`~cryptoj.models.orders.Fill` is forwarded with its
    ``client_order_id`` replaced by the parent's and everything else unchanged (its ``fill_id``
    stays the venue's unique id, so the portfolio's deduplication still works); the reservation
    is consumed pro rata as usual. Child closes and rejections are *not* forwarded. Exactly one
    report ends the parent, once every child is terminal: :class:`OrderClosed` with the parent's
    status and the summed filled quantity, or :class:`OrderRejected` when it was rejected
    without any fill (what an unsplit order would have produced).

Parent status (first match, checked when no child is open)
    ========== ================================================================================
    FILLED     the children filled the whole (increment-floored) quantity
    CANCELLED  the parent was cancelled (:meth:`~ParentOrder.cancel`), or a child was cancelled
               by someone else (``CancelAllOrders``, the guardian's own venue client): no new
               children after either
    REJECTED   ``max_consecutive_rejections`` children in a row were rejected (a rejected
               child's quantity goes back to the pool and is retried in the next slot; any
               child that is accepted breaks the run)
    EXPIRED    the deadline passed (an open LIMIT child is cancelled then), or the remainder is
               below the minimum child and can never be sent
    ========== ================================================================================

Rebuild after a restart (:meth:`ParentOrder.restore`) uses only journalled data: the
:class:`SplitPlan` (journalled once, before the first child), one :class:`ChildRecord` per
journalled child row (quantity, status, filled quantity, creation time) and the ids whose
cancel the parent requested; then the venue's fills of the children, fed through
:meth:`ParentOrder.on_child_fill` (reconciliation re-sends them anyway), restore the average
price. Everything else (slot of the last child, run of rejections, remaining) is derived from
those, so the rebuilt parent equals the one that was running. See :mod:`cryptoj.execution.records`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Context, Decimal

import msgspec

from cryptoj.execution.plan import ChildRecord, SplitPlan, child_id, child_index
from cryptoj.execution.splitting import BookView, Step, next_child
from cryptoj.models.orders import (
    Fill,
    OrderClosed,
    OrderRejected,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    SubmitOrder,
)

_ZERO = Decimal(0)
_AVG = Context(prec=28)
_OPEN = frozenset({OrderStatus.PENDING, OrderStatus.OPEN})


class ParentStatus(enum.StrEnum):
    """States of a split parent; all but WORKING are terminal."""

    WORKING = "WORKING"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        """True once the parent has ended."""
        return self is not ParentStatus.WORKING

    @property
    def order_status(self) -> OrderStatus:
        """The :class:`OrderStatus` reported upstream (WORKING is OPEN)."""
        return OrderStatus.OPEN if self is ParentStatus.WORKING else OrderStatus(self.value)


@dataclass(frozen=True)
class Actions:
    """What the actor must do after a call, in this order.

    ``submit``: journal each child PENDING, then send it to the venue. ``cancel``: journal the
    request (:func:`cryptoj.execution.records.journal_cancel`), then cancel the child at the
    venue. ``fills``: send to the portfolio (already re-labelled with the parent's id).
    ``reports``: mark each parent's row terminal, then send the report to the portfolio.
    ``wake_at_ns``: call ``on_tick`` at that time (None: only events can move it on).
    """

    submit: tuple[SubmitOrder, ...] = ()
    cancel: tuple[str, ...] = ()
    fills: tuple[Fill, ...] = ()
    reports: tuple[OrderClosed | OrderRejected, ...] = ()
    wake_at_ns: int | None = None

    def merge(self, other: Actions) -> Actions:
        """Both sets of actions (this one's first) with the earlier wake-up."""
        wakes = [w for w in (self.wake_at_ns, other.wake_at_ns) if w is not None]
        return Actions(
            self.submit + other.submit,
            self.cancel + other.cancel,
            self.fills + other.fills,
            self.reports + other.reports,
            min(wakes) if wakes else None,
        )

    def __bool__(self) -> bool:
        """True when there is anything to do."""
        return bool(self.submit or self.cancel or self.fills or self.reports) or (
            self.wake_at_ns is not None
        )


class ChildView(msgspec.Struct, frozen=True):
    """A child as the parent sees it (for status displays and equality checks)."""

    client_order_id: str
    quantity: Decimal
    status: OrderStatus
    filled_quantity: Decimal
    slot: int
    cancel_requested: bool


class ParentView(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a parent: equal for a running parent and its rebuilt copy."""

    client_order_id: str
    status: ParentStatus
    quantity: Decimal
    filled_quantity: Decimal
    average_price: Decimal | None
    cancel_requested: bool
    children: tuple[ChildView, ...]
    fill_ids: tuple[str, ...]


@dataclass
class _Child:
    client_order_id: str
    quantity: Decimal
    slot: int
    status: OrderStatus = OrderStatus.PENDING
    closed_filled: Decimal = _ZERO  # as the venue's close (or the journal row) says
    fills: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # id → (qty, price)
    cancel_requested: bool = False
    reason: str = ""  # the venue's, when rejected

    @property
    def filled(self) -> Decimal:
        seen = sum((q for q, _ in self.fills.values()), _ZERO)
        return max(self.closed_filled, seen)

    @property
    def open(self) -> bool:
        return self.status in _OPEN


class ParentOrder:
    """The state machine of one split order (module docstring)."""

    def __init__(self, plan: SplitPlan) -> None:
        """A parent that has sent nothing yet; :meth:`on_tick` sends its first child."""
        self.plan = plan
        self._children: list[_Child] = []
        self._cancel_requested = False
        self._final: ParentStatus | None = None
        self._stranded = False

    # -- views ---------------------------------------------------------------------------

    @property
    def client_order_id(self) -> str:
        """The parent's id (the portfolio's)."""
        return self.plan.order.client_order_id

    @property
    def status(self) -> ParentStatus:
        """WORKING until the final report was produced."""
        return self._final if self._final is not None else ParentStatus.WORKING

    @property
    def filled_quantity(self) -> Decimal:
        """Σ filled quantity of the children."""
        return sum((c.filled for c in self._children), _ZERO)

    @property
    def average_price(self) -> Decimal | None:
        """Quantity-weighted price of the fills seen (None before the first)."""
        qty = value = _ZERO
        for c in self._children:
            for q, p in c.fills.values():
                qty += q
                value += q * p
        return _AVG.divide(value, qty) if qty > 0 else None

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet committed: not filled by a closed child, not in an open one."""
        committed = sum((c.quantity if c.open else c.filled for c in self._children), _ZERO)
        return self.plan.quantity - committed

    def child_ids(self) -> tuple[str, ...]:
        """Every child's id, in order."""
        return tuple(c.client_order_id for c in self._children)

    def open_child_ids(self) -> tuple[str, ...]:
        """Ids of the children that may still fill."""
        return tuple(c.client_order_id for c in self._children if c.open)

    def view(self) -> ParentView:
        """A snapshot (see :class:`ParentView`)."""
        children = tuple(
            ChildView(c.client_order_id, c.quantity, c.status, c.filled, c.slot, c.cancel_requested)
            for c in self._children
        )
        fill_ids = tuple(sorted(f for c in self._children for f in c.fills))
        return ParentView(
            client_order_id=self.client_order_id,
            status=self.status,
            quantity=self.plan.quantity,
            filled_quantity=self.filled_quantity,
            average_price=self.average_price,
            cancel_requested=self._cancel_requested,
            children=children,
            fill_ids=fill_ids,
        )

    def status_report(self, ts: int) -> OrderStatusReport:
        """The parent's answer to an :class:`OrderStatusRequest` (then re-send the fills)."""
        return OrderStatusReport(
            ts=ts,
            client_order_id=self.client_order_id,
            known=True,
            status=self.status.order_status,
            filled_quantity=self.filled_quantity,
        )

    def relabel(self, fill: Fill) -> Fill:
        """``fill`` of one of the children, as the portfolio must see it (parent's id)."""
        return msgspec.structs.replace(fill, client_order_id=self.client_order_id)

    # -- events --------------------------------------------------------------------------

    def on_tick(self, now: int, book: BookView | None) -> Actions:
        """The timer: send the child of this slot, replace a stale LIMIT child, or finish."""
        if self._final is not None:
            return Actions()
        open_children = [c for c in self._children if c.open]
        if self._cancel_requested or (now >= self.plan.deadline_ns and open_children):
            return self._cancel_open(open_children, self._finish_if_done(now))
        done = self._finish_if_done(now)
        if done.reports:
            return done
        slot = self.plan.slot_at(now)
        if self._children and slot <= self._children[-1].slot:
            return Actions(wake_at_ns=self._next_wake(self._children[-1].slot))
        if open_children:  # a new slot with a child still working
            limit = [c for c in open_children if self.plan.order.order_type is OrderType.LIMIT]
            return self._cancel_open(limit, Actions(wake_at_ns=self._next_wake(slot)))
        order = self.plan.order
        plan = next_child(
            self.remaining,
            self.plan.policy.slots - slot,
            book,
            self.plan.policy,
            self.plan.rules,
            order.limit_price if order.order_type is OrderType.LIMIT else None,
        )
        if plan.step is Step.SEND:  # the next slot replaces it if it still rests (LIMIT)
            child = self._new_child(plan.quantity, slot, now, plan.why)
            return Actions(submit=(child,), wake_at_ns=self._next_wake(slot))
        if plan.step is Step.WAIT:
            return Actions(wake_at_ns=self._next_wake(slot))
        self._stranded = plan.step is Step.STRANDED
        return self._finish_if_done(now)

    def on_child_fill(self, fill: Fill) -> Actions:
        """A child's fill: counted once per ``fill_id``, always forwarded re-labelled."""
        child = self._child(fill.client_order_id)
        child.fills.setdefault(fill.fill_id, (fill.quantity, fill.price))
        return Actions(fills=(self.relabel(fill),))

    def on_child_closed(self, msg: OrderClosed, now: int, book: BookView | None) -> Actions:
        """A child reached FILLED, CANCELLED or EXPIRED: the next child may go out now."""
        child = self._child(msg.client_order_id)
        if not child.status.terminal:  # states never regress
            child.status = msg.status
        child.closed_filled = max(child.closed_filled, msg.filled_quantity)
        return self.on_tick(now, book)

    def on_child_rejected(self, msg: OrderRejected, now: int, book: BookView | None) -> Actions:
        """A child was rejected: retried in the next slot, or the parent stops (REJECTED)."""
        child = self._child(msg.client_order_id)
        if not child.status.terminal:
            child.status = OrderStatus.REJECTED
            child.reason = msg.reason
        return self.on_tick(now, book)

    def on_child_accepted(self, client_order_id: str) -> None:
        """The venue acknowledged a child: PENDING → OPEN (as its journal row)."""
        child = self._child(client_order_id)
        if child.status is OrderStatus.PENDING:
            child.status = OrderStatus.OPEN

    def on_child_report(self, msg: OrderStatusReport, now: int, book: BookView | None) -> Actions:
        """A child's reconciliation with the venue (the venue wins; states never regress).

        Unknown at the venue counts as a rejection (never reached it, not re-posted); a
        terminal status as a close; an open one updates the filled quantity.
        """
        if not msg.known:
            reason = "never reached the venue (lost before sending); not re-posted"
            rejected = OrderRejected(
                ts=now,
                client_order_id=msg.client_order_id,
                product=self.plan.order.product,
                reason=reason,
            )
            return self.on_child_rejected(rejected, now, book)
        status = msg.status if msg.status is not None else OrderStatus.OPEN
        if status.terminal:
            closed = OrderClosed(
                ts=now,
                client_order_id=msg.client_order_id,
                product=self.plan.order.product,
                status=status,
                filled_quantity=msg.filled_quantity,
            )
            return self.on_child_closed(closed, now, book)
        child = self._child(msg.client_order_id)
        child.closed_filled = max(child.closed_filled, msg.filled_quantity)
        if child.status is OrderStatus.PENDING and status is OrderStatus.OPEN:
            child.status = OrderStatus.OPEN
        return self.on_tick(now, book)

    def cancel(self, now: int) -> Actions:
        """Cancel the parent: no new children, the open ones cancelled; reported when closed."""
        if self._final is not None:
            return Actions()
        self._cancel_requested = True
        return self.on_tick(now, None)

    # -- restore -------------------------------------------------------------------------

    @classmethod
    def restore(
        cls,
        plan: SplitPlan,
        children: Iterable[ChildRecord],
        cancelled: Iterable[str] = (),
    ) -> ParentOrder:
        """The parent as journalled (module docstring); then feed the venue's child fills.

        ``children``: the journalled rows of ``plan``'s children (any order; others ignored).
        ``cancelled``: ids whose cancel was requested (the parent's own id: the parent's).
        """
        parent = cls(plan)
        pid = plan.order.client_order_id
        indexed = sorted(
            (n, r) for r in children if (n := child_index(pid, r.client_order_id)) is not None
        )
        if [n for n, _ in indexed] != list(range(1, len(indexed) + 1)):
            ids = [r.client_order_id for _, r in indexed]
            raise ValueError(f"{pid}: journalled children are not numbered 1..n: {ids}")
        asked = set(cancelled)
        for _, r in indexed:
            parent._children.append(
                _Child(
                    r.client_order_id,
                    r.quantity,
                    plan.slot_at(r.created_ts),
                    r.status,
                    r.filled_quantity,
                    cancel_requested=r.client_order_id in asked,
                    reason=r.reason if r.status is OrderStatus.REJECTED else "",
                )
            )
        parent._cancel_requested = pid in asked
        return parent

    # -- internals -----------------------------------------------------------------------

    def _child(self, client_order_id: str) -> _Child:
        n = child_index(self.client_order_id, client_order_id)
        if n is None or n > len(self._children):
            raise ValueError(f"{client_order_id!r} is not a child of {self.client_order_id!r}")
        return self._children[n - 1]

    def _new_child(self, quantity: Decimal, slot: int, now: int, why: str) -> SubmitOrder:
        n = len(self._children) + 1
        cid = child_id(self.client_order_id, n)
        self._children.append(_Child(cid, quantity, slot))
        return msgspec.structs.replace(
            self.plan.order,
            ts=now,
            client_order_id=cid,
            quantity=quantity,
            reason=f"child {n} of {self.client_order_id}: {why}",
        )

    def _next_wake(self, slot: int) -> int:
        return min(self.plan.slot_start(slot + 1), self.plan.deadline_ns)

    def _cancel_open(self, children: list[_Child], then: Actions) -> Actions:
        ids = []
        for c in children:
            if not c.cancel_requested:
                c.cancel_requested = True
                ids.append(c.client_order_id)
        return replace(then, cancel=tuple(ids) + then.cancel)

    def _rejection_run(self) -> int:
        run = 0
        for c in reversed(self._children):
            if c.status is not OrderStatus.REJECTED:
                break
            run += 1
        return run

    def _finish_if_done(self, now: int) -> Actions:
        """The final report when no child is open and the parent has ended (status table)."""
        if self._final is not None or any(c.open for c in self._children):
            return Actions()
        filled = self.filled_quantity
        external = any(
            c.status is OrderStatus.CANCELLED and not c.cancel_requested for c in self._children
        )
        if filled >= self.plan.quantity:
            status = ParentStatus.FILLED
        elif self._cancel_requested or external:
            status = ParentStatus.CANCELLED
        elif self._rejection_run() >= self.plan.policy.max_consecutive_rejections:
            status = ParentStatus.REJECTED
        elif now >= self.plan.deadline_ns or self._stranded:
            status = ParentStatus.EXPIRED
        else:
            return Actions()
        self._final = status
        order = self.plan.order
        report: OrderClosed | OrderRejected
        if status is ParentStatus.REJECTED and filled == 0:
            report = OrderRejected(
                ts=now,
                client_order_id=order.client_order_id,
                product=order.product,
                reason=f"{self._rejection_run()} children rejected in a row; last: "
                f"{self._children[-1].reason or 'no reason given'}",
            )
        else:
            report = OrderClosed(
                ts=now,
                client_order_id=order.client_order_id,
                product=order.product,
                status=status.order_status,
                filled_quantity=filled,
            )
        return Actions(reports=(report,))


__all__ = ["Actions", "ChildView", "ParentOrder", "ParentStatus", "ParentView"]
