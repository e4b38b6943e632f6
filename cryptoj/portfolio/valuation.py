"""The books valued at the latest quotes: marks, equity, the snapshot and the monitor report.
Pure, no I/O.

The PortfolioActor keeps one :class:`Valuation` beside its ledger. The derived figures are
computed when first asked for after a change and kept until the next one: only quotes move the
marks, only quotes and fills move the equity and whether every holding has a quote
(reservations move neither). A market instant's quotes are all applied before anything is
asked for, so every figure values each product at its latest quote as of the same instant.
"""

from __future__ import annotations

from decimal import Decimal

from cryptoj.models.market import Quote
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import RiskParameters
from cryptoj.models.unwind import MonitorReport
from cryptoj.portfolio.books import books_snapshot
from cryptoj.portfolio.ledger import Ledger
from cryptoj.unwind.monitors import RiskFigures, monitor_report, risk_figures


class OrderOutcomes:
    """What the error-rate and latency monitors get of the orders: how many closed and how
    many of them as errors since the last report, and the slowest round trip (decision →
    close) since then, or the age of the oldest order still open if that is longer."""

    def __init__(self) -> None:
        self.decided: dict[str, int] = {}  # client order id → decision time (clock ns)
        self.closed = self.rejected = self.latency_ns = 0

    def sent(self, client_order_id: str, now: int) -> None:
        """An order was decided and sent at ``now``."""
        self.decided[client_order_id] = now

    def close(self, client_order_id: str, error: bool, now: int) -> None:
        """An order closed at ``now`` (``error``: rejected or never sent)."""
        self.closed += 1
        self.rejected += error
        decided = self.decided.pop(client_order_id, None)
        if decided is not None:
            self.latency_ns = max(self.latency_ns, now - decided)

    def take(self, now: int) -> tuple[int, int, int]:
        """(closed, rejected, latency ns) for a report at ``now``; the counts start again."""
        oldest = min(self.decided.values()) if self.decided else now
        out = (self.closed, self.rejected, max(self.latency_ns, now - oldest))
        self.closed = self.rejected = self.latency_ns = 0
        return out


class Valuation:
    """The latest quote per product and the figures derived from them and the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        #: product → latest quote (the one dict: the transaction desk reads it too)
        self.quotes: dict[str, Quote] = {}
        self._marks: dict[str, Decimal] | None = {}
        self._equity: Decimal | None = None
        self._marked: bool | None = None
        self._newest: int | None = None
        #: the MonitorReport's figures of the last RiskParameters seen (once per parameters)
        self._figures: tuple[RiskParameters | None, RiskFigures] = (None, risk_figures(None))

    def quotes_moved(self) -> None:
        """The quotes changed: marks, equity and the marked state are computed again."""
        self._marks = self._equity = self._marked = self._newest = None

    def books_moved(self, ledger: Ledger | None = None) -> None:
        """A fill changed the books (or ``ledger`` replaces them): equity and the marked state
        are computed again."""
        if ledger is not None:
            self.ledger = ledger
        self._equity = self._marked = None

    def marks(self) -> dict[str, Decimal]:
        """Latest mid per product (kept until the next quotes; callers do not change it)."""
        if self._marks is None:
            self._marks = {p: q.mid for p, q in self.quotes.items()}
        return self._marks

    def newest(self) -> int:
        """The newest quote's timestamp (-1 without quotes)."""
        if self._newest is None:
            self._newest = max((q.ts for q in self.quotes.values()), default=-1)
        return self._newest

    def equity(self) -> Decimal:
        """Cash plus positions at the latest mids (missing marks value a holding at cost)."""
        if self._equity is None:
            self._equity = self.ledger.equity(self.marks())
        return self._equity

    def fully_marked(self) -> bool:
        """Every holding has a quote (since this instance started): only then are the equity
        figures sent or journalled, never with a holding valued at its cost."""
        if self._marked is None:
            quotes = self.quotes
            self._marked = all(p in quotes for p, h in self.ledger.holdings.items() if h.quantity)
        return self._marked

    def snapshot(self, ts: int) -> PortfolioSnapshot:
        """An immutable view of the books."""
        return books_snapshot(self.ledger, self.marks(), ts, self.equity())

    def monitor_report(
        self, ts: int, params: RiskParameters | None, outcomes: OrderOutcomes, now: int
    ) -> MonitorReport:
        """The ShutdownActor's report at ``now`` on the books, ``params``' risk figures and
        the order outcomes since the last report."""
        closed, rejected, latency_ns = outcomes.take(now)
        if self._figures[0] is not params:
            self._figures = (params, risk_figures(params))
        holdings = {p: h.quantity for p, h in self.ledger.holdings.items()}
        return monitor_report(
            ts,
            self.equity(),
            holdings,
            self.marks(),
            self._figures[1],
            closed=closed,
            rejected=rejected,
            latency_ns=latency_ns,
        )
