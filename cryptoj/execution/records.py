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
a child's fill is first forwarded (venues ``events``: kind :data:`FILL_EVENT`, detail
whose fills are re-derived after a        ``"{child} {fill_id}"``
restart, i.e. Coinbase)
========================================  =====================================================

The portfolio books a child's fill under the *parent's* id (:meth:`ParentOrder.relabel`), so
the journal's ``fills`` rows alone cannot say which child a fill came from. A venue that derives
fills as deltas beyond what the journal booked for an order (Coinbase, see
:class:`~cryptoj.venues.base.TrackedOrder`) needs exactly that after a restart:
``Journal.fill_totals(parent, ids)`` sums the booked fills :data:`FILL_EVENT` assigns to the child.

:func:`restore_parents` rebuilds every parent whose own row is not terminal from exactly these
rows; the actor then reconciles the open children with the venue (feeding the reports and the
re-sent fills to the :class:`~cryptoj.execution.splitter.OrderSplitter`) and calls ``on_tick``.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import msgspec

from cryptoj.execution.parent import ParentOrder
from cryptoj.execution.plan import ChildRecord, SplitPlan, child_index
from cryptoj.journal import Journal, order_row
from cryptoj.models.orders import OrderStatus, SubmitOrder

PLAN_EVENT = "split_plan"
CANCEL_EVENT = "split_cancel"
FILL_EVENT = "split_fill"
ACTOR = "execution"


def journal_plan(journal: Journal, plan: SplitPlan, ts: int) -> None:
    """Journal a parent's plan (once, before its first child)."""
    journal.record_event(ts, ACTOR, PLAN_EVENT, plan.to_json())


def journal_cancel(journal: Journal, client_order_id: str, ts: int) -> None:
    """Journal that the cancel of a parent or of a child was requested (before sending it)."""
    journal.record_event(ts, ACTOR, CANCEL_EVENT, client_order_id)


def journal_order(journal: Journal, order: SubmitOrder, ts: int | None = None) -> bool:
    """Journal an order PENDING (created at ``ts``, by default the order's own), the whole
    order with it (:func:`submitted_order` reads it back); False if its id is already known."""
    row = order_row(order, order.ts if ts is None else ts)
    return journal.record_order({**row, "submitted": msgspec.json.encode(order).decode()})


def submitted_order(row: dict[str, Any]) -> SubmitOrder | None:
    """The order an ``orders`` row was journalled with (:func:`journal_order`), or None when
    the row does not hold it (written by an older version, or by another writer)."""
    text = row.get("submitted")
    return None if not text else msgspec.json.decode(text, type=SubmitOrder)


def resendable_order(
    journal: Journal, row: dict[str, Any], plans: Container[str]
) -> SubmitOrder | None:
    """The order of a PENDING ``orders`` row without a venue order id (after a restart its
    create outcome is unknown), for the venue to send again under its id
    (:func:`submitted_order`). None for any other row, a row without its order, and an order
    whose cancel was requested, or its split parent's (a split cancel, :func:`journal_cancel`,
    or the portfolio's leg ``cancel_requested``): such an order is only waited for."""
    if row["status"] != OrderStatus.PENDING or row["venue_order_id"]:
        return None
    order = submitted_order(row)
    if order is None:
        return None
    coid = order.client_order_id
    ids = {coid, parent_of(coid, plans) or coid}
    if journal.has_event(CANCEL_EVENT, ids) or journal.leg_cancel_requested(ids):
        return None
    return order


def journal_child_fill(journal: Journal, child: str, fill_id: str, ts: int) -> None:
    """Journal that ``fill_id`` is a fill of ``child`` (before it is forwarded re-labelled)."""
    journal.record_event(ts, ACTOR, FILL_EVENT, f"{child} {fill_id}")


def child_fill_ids(journal: Journal) -> dict[str, set[str]]:
    """Child id → the fill ids journalled for it (:func:`journal_child_fill`)."""
    out: dict[str, set[str]] = {}
    for row in journal.events(FILL_EVENT):
        child, _, fill_id = str(row["detail"]).partition(" ")
        out.setdefault(child, set()).add(fill_id)
    return out


def parent_of(client_order_id: str, plans: Container[str]) -> str | None:
    """The parent id when ``client_order_id`` is a child of one of ``plans`` (parent ids, or
    :func:`split_plans`), else None."""
    pid = client_order_id.rpartition("-c")[0]
    return pid if pid in plans and child_index(pid, client_order_id) is not None else None


def split_children(journal: Journal) -> set[str]:
    """Ids of every journalled child order (rows whose parent has a plan)."""
    plans = split_plans(journal)
    rows = journal.orders()
    return {
        str(r["client_order_id"])
        for r in rows
        if parent_of(str(r["client_order_id"]), plans) is not None
    }


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
        pid = parent_of(str(row["client_order_id"]), plans)
        if pid is not None:
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
    "FILL_EVENT",
    "PLAN_EVENT",
    "child_fill_ids",
    "journal_cancel",
    "journal_child_fill",
    "journal_order",
    "journal_plan",
    "parent_of",
    "resendable_order",
    "restore_parents",
    "split_children",
    "split_plans",
    "submitted_order",
]
