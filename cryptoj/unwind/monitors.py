"""Monitoring thresholds of the emergency programme, fed by the portfolio's reports. Pure.

* **Equity drawdown** (``max_drawdown``): ``(peak − equity) / peak`` with ``peak`` the highest
  equity the monitor has seen. Neither a breach nor a recovery resets the peak, so falls
  cannot compound: after a recovery the book is still judged against the pre-crash peak. A
  breach is one-off **per peak**: it fires when the drawdown first reaches the threshold and
  fires again only after the equity has made a new peak (the risk level's ``max_drawdown``
  halt, which waits for an operator, is the backstop against a further slide).
* **Error rate** (``max_error_rate``): rejected (or lost) orders ÷ orders closed, over the last
  ``error_window`` closed orders; judged once that many have closed; one-off (the window is
  cleared after a breach).
* **Latency** (``max_latency_s``): the slowest order round trip (decision → close) since the
  previous report, or the age of the oldest order still open if that is longer; a
  *condition*, active while reports exceed it, cleared by the first report under it.

A threshold of 0 switches the monitor off. Latency is measured on the injected (market)
clock: in a live daemon that is the wall clock; in a replay at ``feed.speed`` N it runs N
times faster than the actors (and jumps at speed 0), which is why it is off by default.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from cryptoj.config import MonitorConfig
from cryptoj.models.risk import RiskParameters
from cryptoj.models.unwind import ExposureView, MonitorReport
from cryptoj.unwind.priority import book_correlations


@dataclass(frozen=True)
class Signal:
    """A monitor's finding: ``kind`` is ``breach`` or ``condition`` (``active`` on/off)."""

    name: str
    kind: str
    active: bool
    reason: str


@dataclass
class Monitors:
    """Evaluates :class:`~cryptoj.models.unwind.MonitorReport` against the thresholds."""

    cfg: MonitorConfig = field(default_factory=MonitorConfig)
    peak: Decimal | None = None
    armed: bool = True  # False after a drawdown breach, until a new peak
    outcomes: deque[tuple[int, int]] = field(default_factory=deque)

    def reset(self) -> None:
        """Forget the error window (at a recovery). The drawdown peak is kept."""
        self.outcomes.clear()

    def observe(self, report: MonitorReport) -> list[Signal]:
        """The findings of one report (empty when nothing is breached or changed)."""
        out: list[Signal] = []
        cfg = self.cfg
        equity = report.equity
        if equity > 0:
            if self.peak is None or equity > self.peak:
                self.peak, self.armed = equity, True
            dd = float((self.peak - equity) / self.peak) if self.peak > 0 else 0.0
            if cfg.max_drawdown > 0 and dd >= cfg.max_drawdown and self.armed:
                out.append(
                    Signal(
                        "drawdown",
                        "breach",
                        True,
                        f"equity drawdown {dd:.2%} >= {cfg.max_drawdown:.2%} "
                        f"(peak {self.peak:.2f}, now {equity:.2f})",
                    )
                )
                self.armed = False
        if cfg.max_latency_s > 0:
            latency_s = report.latency_ns / 1e9
            slow = latency_s > cfg.max_latency_s
            out.append(
                Signal(
                    "latency",
                    "condition",
                    slow,
                    f"order round trip {latency_s:.1f} s "
                    f"{'>' if slow else '<='} {cfg.max_latency_s:g} s",
                )
            )
        if report.closed > 0:
            self.outcomes.append((report.closed, report.rejected))
            while len(self.outcomes) > 1 and (
                sum(c for c, _ in self.outcomes) - self.outcomes[0][0] >= cfg.error_window
            ):
                self.outcomes.popleft()
            closed = sum(c for c, _ in self.outcomes)
            rejected = sum(r for _, r in self.outcomes)
            rate = rejected / closed if closed else 0.0
            if (
                cfg.max_error_rate > 0
                and closed >= cfg.error_window
                and (rate >= cfg.max_error_rate)
            ):
                out.append(
                    Signal(
                        "error_rate",
                        "breach",
                        True,
                        f"error rate {rate:.0%} >= {cfg.max_error_rate:.0%} "
                        f"({rejected} of the last {closed} orders rejected or lost)",
                    )
                )
                self.outcomes.clear()
        return out


@dataclass(frozen=True)
class RiskFigures:
    """What a :class:`~cryptoj.models.unwind.MonitorReport` takes from one RiskParameters
    (:func:`risk_figures`): computed once per parameters received, not once per report."""

    level: str | None = None
    volatility: tuple[tuple[str, float], ...] = ()
    correlation: tuple[tuple[str, float], ...] = ()  # per product (the average when unknown)
    pairs: Mapping[tuple[str, str], float] | None = None  # the pairwise matrix, when sent
    volatile: tuple[str, ...] = ()


def risk_figures(params: RiskParameters | None) -> RiskFigures:
    """The report's figures of ``params`` (none without parameters)."""
    if params is None:
        return RiskFigures()
    vols = tuple(params.volatility)
    per = dict(params.correlation)
    return RiskFigures(
        level=str(params.level),
        volatility=vols,
        correlation=tuple((p, float(per.get(p, params.avg_correlation))) for p, _ in vols),
        pairs=params.pair_correlations() if params.pairs else None,
        volatile=tuple(p for p, regime in params.regimes if regime == "VOLATILE"),
    )


def monitor_report(
    ts: int,
    equity: Decimal,
    holdings: Mapping[str, Decimal],
    marks: Mapping[str, Decimal],
    risk: RiskFigures,
    *,
    closed: int,
    rejected: int,
    latency_ns: int,
) -> MonitorReport:
    """The PortfolioActor's report: its books and the risk figures it last received
    (:func:`risk_figures` of its latest RiskParameters).

    The correlation of each position is its correlation with the rest of the book
    (:func:`~cryptoj.unwind.priority.book_correlations`, from the snapshot's pairwise matrix),
    so the wind-down ordering ranks positions by their true risk contribution; without a matrix
    it is the RiskParameters' ``correlation`` per product (a product without one yet counts at
    the average pairwise correlation).
    """
    corr = risk.correlation
    if risk.pairs is not None:  # (the book in the holdings' order: the sums' order)
        values = {p: float(q * marks[p]) for p, q in holdings.items() if q > 0 and p in marks}
        book = book_correlations(values, dict(risk.volatility), risk.pairs)
        corr = tuple((p, round(book.get(p, c), 6)) for p, c in corr)
    return MonitorReport(
        ts=ts,
        equity=equity,
        positions=tuple(
            ExposureView(product=p, quantity=q, mid=marks[p])
            for p, q in sorted(holdings.items())
            if q > 0 and p in marks
        ),
        risk_level=risk.level,
        volatility=risk.volatility,
        correlation=corr,
        volatile=risk.volatile,
        closed=closed,
        rejected=rejected,
        latency_ns=latency_ns,
    )
