"""What a split order leaves in the journal, and how the parents are rebuilt from it.

The ExecutionActor writes, journal first:

========================================  =====================================================
when                                      row
========================================  =====================================================
the parent arrives (as every order)       ``orders``: the parent, PENDING (then OPEN; terminal
                                          when its report is sent)
the split starts, before any child        ``events``: kind :data:`PLAN_EVENT`, detail the
                                          :class:`~cryptoj.execution.parent.SplitPlan` as JSON
before a child is sent                    ``orders``: the child ``{parent}-c{n}``, PENDING, then
                                          updated like any order (OPEN, filled, terminal)
before a cancel is sent (parent or        ``events``: kind :data:`CANCEL_EVENT`, detail the id
child)                                    whose cancel was requested
========================================  =====================================================

:func:`restore_parents` rebuilds every parent whose own row is not terminal from exactly these
rows; the actor then reconciles the open children with the venue (feeding the reports and the
re-sent fills to the :class:`~cryptoj.execution.splitter.OrderSplitter`) and calls ``on_tick``.
"""

from __future__ import annotations

from cryptoj.execution.parent import ParentOrder
from cryptoj.execution.plan import ChildRecord, SplitPlan, child_index
from cryptoj.journal import Journal
from cryptoj.models.orders import OrderStatus, SubmitOrder

PLAN_EVENT = "split_plan"
CANCEL_EVENT = "split_cancel"
ACTOR = "execution"


def journal_plan(journal: Journal, plan: SplitPlan, ts: int) -> None:
    """Journal a parent's plan (once, before its first child)."""
    journal.record_event(ts, ACTOR, PLAN_EVENT, plan.to_json())


def journal_cancel(journal: Journal, client_order_id: str, ts: int) -> None:
    """Journal that the cancel of a parent or of a child was requested (before sending it)."""
    journal.record_event(ts, ACTOR, CANCEL_EVENT, client_order_id)


def journal_order(journal: Journal, order: SubmitOrder) -> bool:
    """Journal a parent or child PENDING as the ExecutionActor does; False if already known."""
    return journal.record_order(
        {
            "client_order_id": order.client_order_id,
            "product": order.product,
            "side": str(order.side),
            "order_type": str(order.order_type),
            "quantity": order.quantity,
            "limit_price": order.limit_price,
            "reason": order.reason,
            "ts": order.ts,
        }
    )


def split_plans(journal: Journal) -> dict[str, SplitPlan]:
    """Every journalled plan by parent id (a parent is split at most once)."""
    plans: dict[str, SplitPlan] = {}
    for row in journal.events(PLAN_EVENT):
        plan = SplitPlan.from_json(str(row["detail"]))
        plans[plan.order.client_order_id] = plan
    return plans


def restore_parents(journal: Journal) -> list[ParentOrder]:
    """The parents whose own ``orders`` row is missing or not terminal, as journalled."""
    plans = split_plans(journal)
    rows = journal.orders()
    status = {str(r["client_order_id"]): OrderStatus(str(r["status"])) for r in rows}
    children: dict[str, list[ChildRecord]] = {pid: [] for pid in plans}
    for row in rows:
        cid = str(row["client_order_id"])
        pid = cid.rpartition("-c")[0]
        if pid in plans and child_index(pid, cid) is not None:
            children[pid].append(ChildRecord.from_row(row))
    cancelled = {str(r["detail"]) for r in journal.events(CANCEL_EVENT)}
    out = []
    for pid, plan in plans.items():
        if pid in status and status[pid].terminal:
            continue
        out.append(ParentOrder.restore(plan, children[pid], cancelled))
    return out


__all__ = [
    "CANCEL_EVENT",
    "PLAN_EVENT",
    "journal_cancel",
    "journal_order",
    "journal_plan",
    "restore_parents",
    "split_plans",
]
