"""End-of-run checks and the replay summary: the books must equal the journal and the venue."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cryptoj.execution.records import split_children, split_plans
from cryptoj.journal import Journal
from cryptoj.models.market import Bar, MarketEvent, Quote
from cryptoj.portfolio.audit import txn_problems
from cryptoj.portfolio.books import rebuild_ledger
from cryptoj.portfolio.ledger import Ledger
from cryptoj.risk.levels import utc_day
from cryptoj.venues.paper import PaperExchange

if TYPE_CHECKING:  # type only: the checks read the actor's books (imports flow downward)
    from cryptoj.actors.portfolio import PortfolioActor


def check_invariants(
    journal: Journal, venue: PaperExchange, portfolio: PortfolioActor | None, starting_cash: Decimal
) -> list[str]:
    """Every broken invariant, as text (empty when all hold).

    * cash and positions of the live PortfolioActor equal the books rebuilt from the journal;
    * the journal equals the venue's balances (the venue is the source of truth);
    * no negative balance anywhere; no position decided over its limit;
    * no reservation leaked: no open intent, no open order at the venue, none in the ledger;
    * the journalled rebalance transactions are consistent and none is left open
      (:func:`cryptoj.portfolio.audit.txn_problems`).
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
    problems += [f"journal: {p}" for p in txn_problems(journal, finished=True)]
    return problems


def market_data_problems(
    sent: int, delivered: int, conflated: int, dead: int, crashes: int = 0
) -> list[str]:
    """The "no market data was dropped" invariant, as text (empty when it holds).

    ``sent``: market messages (quotes, bars, trades) the runtime was given for a mailbox;
    ``delivered``: those their receiver handled; ``conflated``: quotes a mailbox replaced by a
    newer one; ``dead``: those dead-lettered (receiver down or stopped). A replay in which the
    portfolio, risk or strategy actor missed market data did not test the risk rules on it.

    Market data dead-lettered while an actor was down after a crash (``crashes > 0``, as in a
    ``--chaos`` run) is what a real crash loses; it is counted in the summary
    (``market_dropped``) but is not a runtime fault. Everything else dropped is.
    """
    dropped = sent - delivered
    excused = min(dead, dropped) if crashes > 0 else 0
    if dropped - excused <= 0 and conflated == 0:
        return []
    return [
        f"market data dropped: {dropped} of {sent} market messages were not handled "
        f"({conflated} conflated in mailboxes, {dead} dead letters, {crashes} crashes)"
    ]


def max_drawdown(curve: list[tuple[int, Decimal]]) -> float:
    """Largest peak-to-trough fall of the equity curve, as a fraction."""
    peak, worst = Decimal(0), 0.0
    for _, eq in curve:
        peak = max(peak, eq)
        if peak > 0:
            worst = max(worst, float((peak - eq) / peak))
    return worst


_STRATEGY_REASON = re.compile(r"^target [0-9.]+ \(([A-Za-z0-9_.-]+):")


def order_strategy(reason: str) -> str:
    """Which strategy caused an order, from its reason: the name in the rebalance reason's
    ``<name>:<product>`` (``operator`` for manual targets); ``compensation`` for a rolled-back
    transaction's repair; ``risk`` for what risk decided (stop losses, unwind slices)."""
    m = _STRATEGY_REASON.match(reason)
    if m:
        return m.group(1)
    return "compensation" if reason.startswith("target ") else "risk"


def orders_by_strategy(reasons: Iterable[str]) -> dict[str, int]:
    """Orders per :func:`order_strategy`, by name."""
    return dict(sorted(Counter(order_strategy(r) for r in reasons).items()))


def books_summary(
    journal: Journal, starting_cash: Decimal, marks: dict[str, Decimal]
) -> dict[str, Any]:
    """Order, fill and equity figures from the journal alone.

    ``orders`` and ``rejections`` count the orders the portfolio decided (a split parent once,
    as it sees it), not the child orders execution sent for them: those are ``child_orders``
    (and ``split_orders`` parents had them). ``fills`` counts venue fills, children's included
    (the portfolio books each one, under its parent's id). ``orders_by_strategy`` splits
    ``orders`` by the strategy that caused each (:func:`order_strategy`).

    Costs: ``fees_paid`` is the sum of every fill's fee; ``turnover`` the traded notional
    (every fill's quantity × price) over the starting equity; ``fees_pct`` the fees over the
    starting equity (a fraction, 0.03 = 3 %).
    """
    books: Ledger = rebuild_ledger(journal, starting_cash)
    children = split_children(journal)
    orders = [o for o in journal.orders() if o["client_order_id"] not in children]
    final = books.equity(marks)
    curve = journal.equity_curve()
    fills = journal.fills()
    fees = sum((f.fee for f in fills), Decimal(0))
    traded = sum((f.quantity * f.price for f in fills), Decimal(0))
    start = starting_cash if starting_cash > 0 else Decimal(1)
    return {
        "orders": len(orders),
        "split_orders": len(split_plans(journal)),
        "child_orders": len(children),
        "fills": len(fills),
        "fees_paid": round(float(fees), 2),
        "turnover": round(float(traded / start), 4),
        "fees_pct": round(float(fees / start), 6),
        "rejections": sum(1 for o in orders if o["status"] == "REJECTED"),
        "orders_by_strategy": orders_by_strategy(o["reason"] for o in orders),
        "start_equity": float(starting_cash),
        "final_equity": float(final),
        "final_cash": float(books.cash),
        "positions": {p: str(h.quantity) for p, h in sorted(books.holdings.items()) if h.quantity},
        "max_drawdown": round(max_drawdown([*curve, (0, final)]), 6),
        **transaction_figures(journal),
    }


def transaction_figures(journal: Journal) -> dict[str, Any]:
    """Rebalance transactions by final state, and how many had more than one leg."""
    states: dict[str, int] = {}
    for row in journal.txns():
        states[str(row["state"])] = states.get(str(row["state"]), 0) + 1
    legs: dict[str, int] = {}
    for row in journal.txn_legs():
        legs[str(row["txn_id"])] = legs.get(str(row["txn_id"]), 0) + 1
    return {
        "transactions": dict(sorted(states.items())),
        "multi_leg_transactions": sum(1 for n in legs.values() if n > 1),
    }


def market_path(batches: Sequence[tuple[MarketEvent, ...]]) -> list[tuple[int, dict[str, Decimal]]]:
    """(ts, price per product so far) after each batch: quote mids where the data has quotes,
    else bar closes or trade prices."""
    quoted = {e.product for b in batches for e in b if isinstance(e, Quote)}
    marks: dict[str, Decimal] = {}
    out: list[tuple[int, dict[str, Decimal]]] = []
    for batch in batches:
        changed = False
        for ev in batch:
            if isinstance(ev, Quote):
                marks[ev.product] = ev.mid
                changed = True
            elif ev.product not in quoted:
                marks[ev.product] = ev.close if isinstance(ev, Bar) else ev.price
                changed = True
        if changed:
            out.append((batch[-1].ts, dict(marks)))
    return out


def risk_figures(
    journal: Journal, starting_cash: Decimal, path: list[tuple[int, dict[str, Decimal]]]
) -> dict[str, Any]:
    """Position weights, daily losses, risk levels and the buy-and-hold benchmark.

    * ``max_position_weight``: the largest value of one position over equity at any market
      timestamp (positions from the journal, marked at that timestamp's mid);
    * ``worst_day_loss``: the largest fall of equity below its UTC day's reference equity (the
      day convention of :mod:`cryptoj.risk.levels`: the last equity at or before 00:00, the
      day running to the next 00:00 inclusive);
    * ``risk_levels_reached``: every level the RiskActor journalled (NORMAL included);
    * ``benchmark_max_drawdown``: equal-weight buy-and-hold of every product from its first
      mark, over the same data.
    """
    changes = journal.position_history()
    cash, qty = starting_cash, dict[str, Decimal]()
    i = 0
    max_w, max_w_product = 0.0, None
    day: int | None = None
    day_start = 0.0
    last_equity: float | None = None
    worst_day = 0.0
    bench_units: dict[str, Decimal] = {}
    bench_peak, bench_dd = 0.0, 0.0
    products = sorted({p for _, m in path for p in m})
    for ts, marks in path:
        while i < len(changes) and changes[i][0] <= ts:
            _, product, q, c = changes[i]
            qty[product], cash = q, c
            i += 1
        equity = cash + sum((q * marks.get(p, Decimal(0)) for p, q in qty.items()), Decimal(0))
        if equity > 0:
            for p, q in qty.items():
                w = float(q * marks.get(p, Decimal(0)) / equity)
                if w > max_w:
                    max_w, max_w_product = w, p
        if utc_day(ts) != day:
            day = utc_day(ts)
            day_start = float(equity) if last_equity is None else last_equity
        last_equity = float(equity)
        if day_start > 0:
            worst_day = max(worst_day, (day_start - float(equity)) / day_start)
        for p in products:
            if p in marks and p not in bench_units:
                bench_units[p] = starting_cash / len(products) / marks[p]
        bench = float(
            sum((u * marks[p] for p, u in bench_units.items()), Decimal(0))
            + starting_cash * (len(products) - len(bench_units)) / len(products)
        )
        bench_peak = max(bench_peak, bench)
        bench_dd = max(bench_dd, (bench_peak - bench) / bench_peak if bench_peak else 0.0)
    levels = ["NORMAL"]
    for e in journal.events("risk_level"):
        level = e["detail"].split(" -> ", 1)[1].split(":", 1)[0]
        if level not in levels:
            levels.append(level)
    return {
        "max_position_weight": round(max_w, 6),
        "max_position_product": max_w_product,
        "worst_day_loss": round(worst_day, 6),
        "risk_levels_reached": levels,
        "benchmark_max_drawdown": round(bench_dd, 6),
    }
