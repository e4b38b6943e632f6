"""Prometheus metrics: one :class:`CollectorRegistry` per daemon, read at scrape time.

:class:`DaemonCollector` builds every family when Prometheus scrapes (no global state, so
several daemons can run in one process, as in the tests). The two histograms (handling time
per actor, slippage) are observed by the runtime's tap as messages are delivered and live in
the same registry. ``docs/operations.md`` lists every family.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cryptoj.config.ops import risk_rank
from cryptoj.ops import journal_view
from cryptoj.ops.feed import FEED_STATES, live_families
from cryptoj.ops.probe import PortfolioStatus, RiskStatus
from cryptoj.ops.state import OpsState
from cryptoj.supervision.guard import UNHEALTHY

RISK_LEVELS = ("NORMAL", "CAUTION", "REDUCING", "HALTED")
ORDER_OUTCOMES = journal_view.TERMINAL


def _gauge(name: str, doc: str, labels: Iterable[str] = (), unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels), unit=unit)


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


class DaemonCollector(Collector):
    """Reads the runtime, the actors' snapshots, the journal and the flags at scrape time."""

    def __init__(self, state: OpsState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        """Every family (see the module docstring)."""
        st = self.state
        portfolio = st.portfolio()
        risk, answered = st.risk_view()
        try:
            fig: dict[str, Any] | None = journal_view.journal_figures(st.ctx.journal_path)
        except sqlite3.Error:
            fig = None
        probe = _gauge(
            "cryptoj_status_probe_ok", "1 when the actor answered its status probe", ["actor"]
        )
        probe.add_metric(["portfolio"], 0 if portfolio is None else 1)
        probe.add_metric(["risk"], 1 if answered else 0)
        yield probe
        yield from self._runtime()
        yield from self._feed()
        equity = yield from self._portfolio(portfolio)
        yield from self._risk(risk, portfolio, equity, fig)
        if fig is not None:
            yield from self._journal(fig)
        yield from self._flags()
        yield from self._venue()
        yield from self._threads()

    def _threads(self) -> Iterator[Metric]:
        board = self.state.ctx.threads
        crashes = _counter(
            "cryptoj_thread_crashes",
            "Exceptions that escaped a daemon thread's loop (guarded threads were restarted)",
            ["thread"],
        )
        threads = board.threads()
        counts = {t["name"]: 0 for t in threads} | board.crashes()  # 0 for the listed ones
        for name, n in sorted(counts.items()):
            crashes.add_metric([name], float(n))
        up = _gauge(
            "cryptoj_thread_up",
            "1 while a guarded thread runs; 0 while it restarts after a crash, is stalled or dead",
            ["thread", "component"],
        )
        for t in threads:
            up.add_metric([t["name"], t["component"]], 0 if t["state"] in UNHEALTHY else 1)
        yield from (crashes, up)

    def _venue(self) -> Iterator[Metric]:
        counters = self.state.venue_counters()
        if counters is None:
            return
        c = _counter(
            "cryptoj_venue_events",
            "Live venue events by kind (CoinbaseVenue.counters(): submits, accepted, rejected, "
            "unknown outcomes and their resolution, lookups, reconciles, fills, REST retries …)",
            ["event"],
        )
        for event, n in sorted(counters.items()):
            c.add_metric([event], float(n))
        yield c

    def _runtime(self) -> Iterator[Metric]:
        rt = self.state.rt
        ctx = self.state.ctx
        info = _gauge(
            "cryptoj_info", "Constant 1, labelled with the mode and the feed", ["mode", "feed"]
        )
        info.add_metric([ctx.mode, ctx.feed_name], 1)
        yield info
        uptime = _gauge("cryptoj_uptime_seconds", "Seconds since the daemon started")
        uptime.add_metric([], time.time() - rt.started_wall)
        yield uptime
        up = _gauge("cryptoj_actor_up", "1 when the actor is running", ["actor"])
        msgs = _counter("cryptoj_actor_messages", "Messages handled per actor", ["actor"])
        depth = _gauge("cryptoj_actor_mailbox_depth", "Messages waiting per actor", ["actor"])
        restarts = _counter("cryptoj_actor_restarts", "Restarts per actor", ["actor"])
        depths = rt.mailbox_depths()
        handled = rt.tap.view()["messages"]
        for name in rt.registry:
            up.add_metric([name], 1 if rt.is_alive(name) else 0)
            msgs.add_metric([name], handled.get(name, 0))
            depth.add_metric([name], depths.get(name, 0))
            restarts.add_metric([name], max(0, rt.generations.get(name, 0) - 1))
        yield from (up, msgs, depth, restarts)
        s = rt.stats
        for name, doc, value in (
            ("cryptoj_messages", "Messages delivered to actors", s.delivered),
            ("cryptoj_restarts", "Actor restarts by supervisors", s.restarts),
            ("cryptoj_crashes", "Abnormal actor exits", s.crashes),
            (
                "cryptoj_dead_letters",
                "Messages nobody handled (dead or restarting receiver)",
                s.dead_letters,
            ),
            (
                "cryptoj_escalations",
                "Supervisors that exceeded their restart intensity",
                s.escalations,
            ),
            (
                "cryptoj_conflated_quotes",
                "Quotes dropped from a mailbox for a newer quote of the same product",
                s.conflated,
            ),
            (
                "cryptoj_merged_trades",
                "Trades merged in a mailbox into a newer trade of the same product "
                "(their quantity is kept)",
                s.merged_trades,
            ),
        ):
            c = _counter(name, doc)
            c.add_metric([], value)
            yield c

        load = self.state.load()
        overloaded = _gauge(
            "cryptoj_overloaded", "1 while /ready reports overload (feed lag or a mailbox)"
        )
        overloaded.add_metric([], 1 if load["state"] == "overloaded" else 0)
        yield overloaded
        lag = load["feed_lag"]
        if lag["p99_s"] is not None:
            g = _gauge(
                "cryptoj_feed_actor_lag_seconds",
                "Age of the live feed's events when the FeedActor had handled them, "
                "over the last seconds",
                ["quantile"],
            )
            g.add_metric(["0.5"], lag["p50_s"])
            g.add_metric(["0.99"], lag["p99_s"])
            yield g

    def _feed(self) -> Iterator[Metric]:
        feed = self.state.feed()
        lbl = [feed["source"]]
        up = _gauge(
            "cryptoj_feed_up",
            "1 when the feed is connected (live: a websocket is live; replay: the FeedActor runs)",
            ["feed"],
        )
        up.add_metric(lbl, 1 if feed["connected"] else 0)
        state = _gauge("cryptoj_feed_state", "1 for the feed's current state", ["feed", "state"])
        for s in FEED_STATES:
            state.add_metric([*lbl, s], 1 if feed["state"] == s else 0)
        yield from (up, state)
        for name, doc, value in (
            ("cryptoj_feed_messages", "Market messages the feed delivered", feed["messages"]),
            (
                "cryptoj_feed_reconnects",
                "Websocket connections re-established after a loss (replay: always 0)",
                feed["reconnects"],
            ),
            ("cryptoj_feed_gaps", "Sequence gaps detected (replay: always 0)", feed["gaps"]),
        ):
            c = _counter(name, doc, ["feed"])
            c.add_metric(lbl, value)
            yield c
        lat = _gauge(
            "cryptoj_feed_latency_seconds",
            "Exchange-to-receive lag, median of the recent frames of the worst connection "
            "(replay: 0)",
            ["feed"],
        )
        lat.add_metric(lbl, feed["latency_s"])
        yield lat
        if feed["last_event_age_s"] is not None:
            age = _gauge(
                "cryptoj_feed_last_event_age_seconds",
                "Market-clock seconds since the last market event",
                ["feed"],
            )
            age.add_metric(lbl, feed["last_event_age_s"])
            yield age
        if "detail" in feed:
            yield from live_families(feed)

    def _portfolio(
        self, portfolio: PortfolioStatus | None
    ) -> Generator[Metric, None, float | None]:
        snap = self.state.rt.tap.view()["portfolio"] if portfolio is None else portfolio
        if snap is None:
            return None
        equity = float(snap.equity)
        for name, doc, value in (
            ("cryptoj_equity", "Cash plus positions at the latest mids (quote currency)", equity),
            ("cryptoj_cash", "Cash (quote currency)", float(snap.cash)),
            ("cryptoj_reserved_cash", "Cash reserved for open orders", float(snap.reserved_cash)),
        ):
            g = _gauge(name, doc)
            g.add_metric([], value)
            yield g
        qty = _gauge("cryptoj_position_quantity", "Position in base units", ["product"])
        exp = _gauge(
            "cryptoj_exposure", "Position value at the latest mid (quote currency)", ["product"]
        )
        weight = _gauge("cryptoj_exposure_weight", "Position value / equity", ["product"])
        for p in snap.positions:
            value = float(p.quantity * p.mark_price)
            qty.add_metric([p.product], float(p.quantity))
            exp.add_metric([p.product], value)
            weight.add_metric([p.product], value / equity if equity else 0.0)
        yield from (qty, exp, weight)
        return equity

    def _risk(
        self,
        risk: RiskStatus | None,
        portfolio: PortfolioStatus | None,
        equity: float | None,
        fig: dict[str, Any] | None,
    ) -> Iterator[Metric]:
        level = self.state.risk_level(risk)
        lv = _gauge("cryptoj_risk_level", "Risk level: 0 NORMAL, 1 CAUTION, 2 REDUCING, 3 HALTED")
        lv.add_metric([], risk_rank(level))
        ls = _gauge("cryptoj_risk_level_state", "1 for the current risk level", ["level"])
        for name in RISK_LEVELS:
            ls.add_metric([name], 1 if name == level else 0)
        yield from (lv, ls)
        sod = risk.start_of_day_equity if risk is not None else None
        daily = (sod - equity) / sod if sod and equity is not None else None
        if daily is None and fig is not None and fig["day"]:
            daily = fig["day"]["daily_loss"]  # the journal's equity when the actor is silent
        if daily is not None:
            g = _gauge(
                "cryptoj_daily_loss_ratio", "Loss since the UTC start of day / start-of-day equity"
            )
            g.add_metric([], daily)
            yield g
        if risk is None:
            return
        if risk.peak_equity and equity is not None:
            g = _gauge("cryptoj_intraday_drawdown_ratio", "Fall from the day's peak equity / peak")
            g.add_metric([], (risk.peak_equity - equity) / risk.peak_equity)
            yield g
        entries = _gauge(
            "cryptoj_entries_allowed", "0 while only exposure-reducing orders are allowed"
        )
        entries.add_metric([], 1 if risk.entries_allowed else 0)
        yield entries
        yield from _pairs(
            "cryptoj_volatility", "EWMA volatility of log returns per bar", risk.volatility
        )
        yield from _pairs(
            "cryptoj_volatility_excess",
            "Volatility over the reference, minus 1",
            risk.volatility_excess,
        )
        yield from _pairs(
            "cryptoj_correlation",
            "Average EWMA correlation with the other products",
            risk.correlation,
        )
        if risk.average_correlation is not None:
            g = _gauge("cryptoj_average_correlation", "Average pairwise EWMA correlation")
            g.add_metric([], risk.average_correlation)
            yield g
        regime = _gauge(
            "cryptoj_regime", "1 for each product's current regime", ["product", "regime"]
        )
        for product, name in risk.regimes:
            regime.add_metric([product, name], 1)
        yield regime
        ver = _gauge(
            "cryptoj_risk_parameters_version", "Version of the last published RiskParameters"
        )
        ver.add_metric([], risk.version)
        yield ver
        caps = portfolio.caps if portfolio is not None else ()
        yield from _pairs(
            "cryptoj_position_cap_weight", "Current cap on each product's weight", caps
        )

    def _journal(self, fig: dict[str, Any]) -> Iterator[Metric]:
        orders = _counter("cryptoj_orders", "Orders by final outcome (journal)", ["outcome"])
        for outcome in ORDER_OUTCOMES:
            orders.add_metric([outcome.lower()], fig["orders"].get(outcome, 0))
        open_ = _gauge("cryptoj_open_orders", "Orders pending or open (journal)")
        open_.add_metric([], sum(fig["orders"].get(s, 0) for s in ("PENDING", "OPEN")))
        fills = _counter("cryptoj_fills", "Fills (journal)", ["product", "side"])
        notional = _counter(
            "cryptoj_traded_notional", "Traded value, quote currency (journal)", ["product", "side"]
        )
        fees = _counter("cryptoj_fees", "Fees paid, quote currency (journal)", ["product"])
        fee_sum: dict[str, float] = {}
        for f in fig["fills"]:
            fills.add_metric([f["product"], f["side"].lower()], f["count"])
            notional.add_metric([f["product"], f["side"].lower()], f["notional"])
            fee_sum[f["product"]] = fee_sum.get(f["product"], 0.0) + f["fees"]
        for product, value in sorted(fee_sum.items()):
            fees.add_metric([product], value)
        yield from (orders, open_, fills, notional, fees)
        changes = _counter("cryptoj_risk_level_changes", "Risk level changes (journal)")
        changes.add_metric([], fig["events"].get("risk_level", 0))
        yield changes

    def _flags(self) -> Iterator[Metric]:
        flags = self.state.ctx.flags
        g = _gauge("cryptoj_feature_flag", "Feature flag value (on/off as 1/0)", ["flag"])
        for name, value in sorted(flags.values().items()):
            g.add_metric([name], float(value))
        c = _counter("cryptoj_feature_flag_changes", "Flag changes through the control endpoint")
        c.add_metric([], len(flags.history))
        yield from (g, c)


def _pairs(name: str, doc: str, pairs: Iterable[tuple[str, float]]) -> Iterator[Metric]:
    g = _gauge(name, doc, ["product"])
    for product, value in pairs:
        g.add_metric([product], float(value))
    yield g


def build_registry(state: OpsState, registry: CollectorRegistry) -> CollectorRegistry:
    """Register the daemon collector in ``registry`` (the tap's histograms are already there)."""
    registry.register(DaemonCollector(state))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(registry)


def parse_families(text: str) -> dict[str, Any]:
    """Family name → family, from exposition text (for tests and the status command)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


__all__ = ["DaemonCollector", "build_registry", "exposition", "parse_families"]
