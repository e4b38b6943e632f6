"""The books as the journal says they are, and as the other actors see them.

On start the PortfolioActor rebuilds its ledger with :func:`rebuild_ledger`: every journalled
fill applied in order, every open intent reserved again (with what it already filled). Legs of a
rebalance transaction that were planned but never sent are *not* reserved again: a restart rolls
their transaction back (:meth:`~cryptoj.portfolio.transaction.Transaction.recover`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from cryptoj.journal import Journal
from cryptoj.models.orders import CASH_QUANTUM, Side
from cryptoj.models.portfolio import PortfolioSnapshot, Position
from cryptoj.portfolio.ledger import Ledger, Reservation

_NO_CASH = Decimal(0).quantize(CASH_QUANTUM)  # the reserved cash without reservations


def rebuild_ledger(journal: Journal, starting_cash: Decimal) -> Ledger:
    """The books as the journal says they are: every fill applied, open intents reserved."""
    ledger = Ledger(starting_cash)
    for fill in journal.fills():
        ledger.apply_fill(fill)
    for row in journal.open_intents():
        coid = row["client_order_id"]
        ledger.reservations[coid] = Reservation(
            coid,
            row["product"],
            Side(row["side"]),
            Decimal(row["quantity"]),
            Decimal(row["reserved_cash"]),
            Decimal(row["reserved_base"]),
            journal.filled_quantity(coid),
        )
    return ledger


def books_snapshot(
    ledger: Ledger, marks: Mapping[str, Decimal], ts: int, equity: Decimal | None = None
) -> PortfolioSnapshot:
    """An immutable view of the books at ``marks`` (positions at cost without a mark);
    ``equity``: ``ledger.equity(marks)`` when the caller has it already."""
    positions = tuple(
        Position(
            product=p,
            quantity=h.quantity,
            average_price=h.average_price,
            mark_price=marks.get(p, h.average_price),
        )
        for p, h in sorted(ledger.holdings.items())
        if h.quantity != 0
    )
    reserved = _NO_CASH  # display only (quantized): the ledger keeps it exact
    if ledger.reservations:
        reserved = sum((r.held_cash for r in ledger.reservations.values()), Decimal(0))
        reserved = reserved.quantize(CASH_QUANTUM)
    return PortfolioSnapshot(
        ts=ts,
        cash=ledger.cash,
        reserved_cash=reserved,
        equity=ledger.equity(dict(marks)) if equity is None else equity,
        positions=positions,
        open_orders=len(ledger.reservations),
    )
