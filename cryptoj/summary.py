"""End-of-run checks and the replay summary: the books must equal the journal and the venue."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cryptoj.actors.portfolio import PortfolioActor, rebuild_ledger
from cryptoj.journal import Journal
from cryptoj.portfolio.ledger import Ledger
from cryptoj.venues.paper import PaperExchange


def check_invariants(
    journal: Journal, venue: PaperExchange, portfolio: PortfolioActor | None, starting_cash: Decimal
) -> list[str]:
    """Every broken invariant, as text (empty when all hold).

    * cash and positions of the live PortfolioActor equal the books rebuilt from the journal;
    * the journal equals the venue's balances (the venue is the source of truth);
    * no negative balance anywhere; no position decided over its limit;
    * no reservation leaked: no open intent, no open order at the venue, none in the ledger.
    """
    problems: list[str] = []
    books = rebuild_ledger(journal, starting_cash)
    problems += [f"journal: {p}" for p in books.problems()]
    if portfolio is not None:
        live = portfolio.ledger
        if live.cash != books.cash:
            problems.append(f"portfolio cash {live.cash} != journal cash {books.cash}")
        for product in sorted(set(live.holdings) | set(books.holdings)):
            if live.position(product) != books.position(product):
                live_q, book_q = live.position(product), books.position(product)
                problems.append(f"portfolio {product} {live_q} != journal {book_q}")
        if live.reservations:
            problems.append(f"leaked reservations: {sorted(live.reservations)}")
        if portfolio.limit_breaches:
            problems.append(
                f"{portfolio.limit_breaches} orders would have breached the position limit"
            )
        problems += [f"portfolio: {p}" for p in live.problems()]
    if books.reservations:
        problems.append(f"open intents in the journal: {sorted(books.reservations)}")
    balances = venue.balances()
    quote = venue.quote_currency
    if balances.get(quote, Decimal(0)) != books.cash:
        problems.append(f"venue {quote} {balances.get(quote)} != journal cash {books.cash}")
    for product, h in books.holdings.items():
        base = product.split("-")[0]
        if balances.get(base, Decimal(0)) != h.quantity:
            problems.append(f"venue {base} {balances.get(base)} != journal {h.quantity}")
    if venue.open_orders():
        problems.append(f"{len(venue.open_orders())} orders still open at the venue")
    problems += [f"venue: {p}" for p in venue.check_invariants()]
    return problems


def max_drawdown(curve: list[tuple[int, Decimal]]) -> float:
    """Largest peak-to-trough fall of the equity curve, as a fraction."""
    peak, worst = Decimal(0), 0.0
    for _, eq in curve:
        peak = max(peak, eq)
        if peak > 0:
            worst = max(worst, float((peak - eq) / peak))
    return worst


def books_summary(
    journal: Journal, starting_cash: Decimal, marks: dict[str, Decimal]
) -> dict[str, Any]:
    """Order, fill and equity figures from the journal alone."""
    books: Ledger = rebuild_ledger(journal, starting_cash)
    orders = journal.orders()
    final = books.equity(marks)
    curve = journal.equity_curve()
    return {
        "orders": len(orders),
        "fills": len(journal.fills()),
        "rejections": sum(1 for o in orders if o["status"] == "REJECTED"),
        "start_equity": float(starting_cash),
        "final_equity": float(final),
        "final_cash": float(books.cash),
        "positions": {p: str(h.quantity) for p, h in sorted(books.holdings.items()) if h.quantity},
        "max_drawdown": round(max_drawdown([*curve, (0, final)]), 6),
    }
