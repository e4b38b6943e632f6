"""Is the journal's record of the rebalance transactions consistent? Pure over the journal.

:func:`txn_problems` lists every broken rule (empty when all hold):

* each transaction, rebuilt from its rows, passes
  :meth:`~cryptoj.portfolio.transaction.Transaction.problems` (a terminal transaction has no
  open leg, no buy was out while a sell was open, fills within the leg, FILLED means all);
* no product has a leg in two open transactions; with ``finished`` (the end of a run) no
  transaction is open;
* a leg that was sent has exactly one intent (same product, side, quantity), open while the
  leg is SENT and closed once the leg closed; a leg never sent has none;
* a closed leg's filled quantity equals the fills journalled under its order id;
* every sent leg's intent names the transaction's risk version (``risk vN``): one version per
  plan;
* in the steps log, a transaction's ``buys_sent`` step comes after every sell leg's close.
"""

from __future__ import annotations

import json
from decimal import Decimal

from cryptoj.journal import Journal
from cryptoj.models.orders import Side
from cryptoj.portfolio.transaction import Leg, LegState, Transaction


def txn_problems(journal: Journal, *, finished: bool = False) -> list[str]:
    """Every inconsistency in the journal's transactions (module docstring)."""
    out: list[str] = []
    intents = {str(r["client_order_id"]): r for r in journal.intents()}
    legs_by_txn: dict[str, list[dict[str, object]]] = {}
    for row in journal.txn_legs():
        legs_by_txn.setdefault(str(row["txn_id"]), []).append(row)
    steps_by_txn: dict[str, list[dict[str, object]]] = {}
    for row in journal.txn_steps():
        steps_by_txn.setdefault(str(row["txn_id"]), []).append(row)
    open_txns = []
    trading: dict[str, str] = {}  # product → the open transaction with a leg on it
    for row in journal.txns():
        txn = Transaction.from_rows(row, legs_by_txn.get(str(row["txn_id"]), []))
        out += txn.problems()
        if not txn.state.terminal:
            open_txns.append(txn.txn_id)
            for p in sorted(txn.products):
                if p in trading:
                    out.append(f"{p} trades in two open transactions: {trading[p]}, {txn.txn_id}")
                trading[p] = txn.txn_id
        for g in txn.legs:
            out += _leg_problems(journal, txn, g, intents.get(g.client_order_id))
        out += _step_problems(txn, steps_by_txn.get(txn.txn_id, []))
    if finished and open_txns:
        out.append(f"transactions still open at the end: {open_txns}")
    return out


def _leg_problems(
    journal: Journal, txn: Transaction, g: Leg, intent: dict[str, object] | None
) -> list[str]:
    name = f"{txn.txn_id} leg {g.client_order_id}"
    sent = g.state not in (LegState.PLANNED, LegState.CANCELLED)
    if not sent:
        return [f"{name}: never sent but has an intent"] if intent is not None else []
    if intent is None:
        return [f"{name}: sent without an intent"]
    out: list[str] = []
    same = (
        intent["product"] == g.product
        and intent["side"] == str(g.side)
        and Decimal(str(intent["quantity"])) == g.quantity
    )
    if not same:
        out.append(f"{name}: its intent differs from the leg")
    if (intent["status"] == "open") != (g.state == LegState.SENT):
        out.append(f"{name}: leg {g.state} but intent {intent['status']}")
    if f"risk v{txn.version} " not in str(intent["reason"]):
        out.append(f"{name}: not sent under the plan's risk v{txn.version}")
    if g.state.terminal and journal.filled_quantity(g.client_order_id) != g.filled:
        out.append(
            f"{name}: filled {g.filled} but the journal holds "
            f"{journal.filled_quantity(g.client_order_id)}"
        )
    return out


def _step_problems(txn: Transaction, steps: list[dict[str, object]]) -> list[str]:
    sells = {g.client_order_id for g in txn.legs if g.side == Side.SELL}
    closed: set[str] = set()
    for step in steps:
        if step["step"] == "leg_closed":
            closed.add(str(json.loads(str(step["detail"]))["leg"]))
        elif step["step"] == "buys_sent":
            sent_sells = {
                g.client_order_id
                for g in txn.legs
                if g.client_order_id in sells and g.state != LegState.CANCELLED
            }
            if not sent_sells <= closed:
                return [
                    f"{txn.txn_id}: buys sent before sells {sorted(sent_sells - closed)} closed"
                ]
    return []
