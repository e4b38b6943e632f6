"""What the daemon says: one concise line per decision that matters, and the heartbeat.

:class:`Narrator` observes delivered messages (the :class:`~cryptoj.ops.runtime.OpsRuntime`
hands it every delivery, after the handler ran, as the tap sees them) and turns the few that
matter to an operator into log lines: an order sent, filled, closed or rejected, the risk
level changing, an emergency unwind's plan, slices and end, the feed's state changing, an
actor restarting, the end of the replayed data. Each message is narrated once, at the actor
that acts on it. Lines that can come in bursts (fills, slices) are rate-limited per kind:
at most ``burst`` lines per ``window_s`` seconds; the next line let through says how many
were left out. The actors themselves stay free of logging.

:func:`heartbeat_line` is the periodic one-line state (equity, positions, risk level, feed);
:func:`pace_line` estimates how long a paced replay takes. Both are pure.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from loguru import logger

from cryptoj.models.market import FeedFinished, FeedStatus
from cryptoj.models.orders import Fill, OrderClosed, OrderRejected, SubmitOrder
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import RiskLevelChanged, RiskParameters
from cryptoj.models.unwind import UnwindComplete, UnwindPlan, UnwindSliceReport
from cryptoj.runtime.common import Envelope

Say = Callable[[str, str], None]  # (level, line): e.g. loguru's logger.log
_REASON_WIDTH = 90
_MAX_OPEN = 10_000  # orders being summed, fill ids remembered (the oldest forgotten beyond)


def _short(text: str, width: int = _REASON_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(x: Decimal | float) -> str:
    return f"{Decimal(x).normalize():f}" if isinstance(x, Decimal) else f"{x:g}"


def market_time(ns: int | None) -> str:
    """``YYYY-MM-DD HH:MM`` UTC of a market timestamp (``-`` for None)."""
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M")


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h`` or ``2.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class _Limit:
    """At most ``burst`` lines per ``window_s``; counts what it held back."""

    __slots__ = ("burst", "held", "sent", "window_s", "window_start")

    def __init__(self, burst: int, window_s: float) -> None:
        self.burst, self.window_s = burst, window_s
        self.window_start = float("-inf")
        self.sent = 0
        self.held = 0

    def allow(self, now: float) -> int | None:
        """None when the line is held back; else how many were held back before it."""
        if now - self.window_start >= self.window_s:
            self.window_start, self.sent = now, 0
        if self.sent >= self.burst:
            self.held += 1
            return None
        self.sent += 1
        held, self.held = self.held, 0
        return held


class Narrator:
    """Turns observed deliveries into log lines (thread-safe; see the module docstring)."""

    def __init__(
        self,
        say: Say,
        *,
        burst: int = 10,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``say(level, line)`` writes a line; ``clock`` (seconds) drives the rate limits."""
        self.say = say
        self.clock = clock
        self.burst, self.window_s = burst, window_s
        self._limits: dict[str, _Limit] = {}
        self._lock = threading.Lock()
        self._feed_state: str | None = None
        self._orders: dict[str, tuple[int, Decimal, Decimal]] = {}  # fills, qty, notional
        self._fill_ids: OrderedDict[str, None] = OrderedDict()  # fills already narrated
        # decisions seen since the start (each key is counted by one actor's thread only)
        self.counts: dict[str, int] = {"sent": 0, "fills": 0, "rejected": 0}

    def _emit(self, kind: str, level: str, line: str, *, limited: bool = False) -> None:
        with self._lock:
            if limited:
                limit = self._limits.setdefault(kind, _Limit(self.burst, self.window_s))
                held = limit.allow(self.clock())
                if held is None:
                    return
                if held:
                    line += f" (+{held} {kind} line(s) not shown)"
        self.say(level, line)

    def observe(self, actor: str, env: Envelope) -> None:
        """Narrate one delivery to ``actor`` if it is a decision that matters."""
        msg = env.msg
        if isinstance(msg, SubmitOrder) and actor == "execution":
            self.counts["sent"] += 1
            price = f" limit {_num(msg.limit_price)}" if msg.limit_price is not None else ""
            self._emit(
                "order",
                "INFO",
                f"order sent {msg.client_order_id}: {msg.side} {msg.order_type} "
                f"{_num(msg.quantity)} {msg.product}{price} ({_short(msg.reason)})",
                limited=True,
            )
        elif isinstance(msg, Fill) and actor == "portfolio":
            with self._lock:
                if msg.fill_id in self._fill_ids:
                    return  # a fill delivered again (the portfolio books it once, too)
                self._fill_ids[msg.fill_id] = None
                while len(self._fill_ids) > _MAX_OPEN:
                    self._fill_ids.popitem(last=False)
                n, qty, notional = self._orders.get(
                    msg.client_order_id, (0, Decimal(0), Decimal(0))
                )
                self._orders[msg.client_order_id] = (
                    n + 1,
                    qty + msg.quantity,
                    notional + msg.quantity * msg.price,
                )
                while len(self._orders) > _MAX_OPEN:
                    self._orders.pop(next(iter(self._orders)))
            self.counts["fills"] += 1
            self._emit(
                "fill",
                "INFO",
                f"filled {msg.client_order_id}: {msg.side} {_num(msg.quantity)} {msg.product} "
                f"@ {_num(msg.price)}, fee {_num(msg.fee)}",
                limited=True,
            )
        elif isinstance(msg, OrderClosed) and actor == "portfolio":
            with self._lock:
                n, qty, notional = self._orders.pop(
                    msg.client_order_id, (0, Decimal(0), Decimal(0))
                )
            fills = f" in {n} fill(s), avg price {notional / qty:.10g}" if qty else ""
            self._emit(
                "closed",
                "INFO",
                f"order closed {msg.client_order_id}: {msg.status}, filled "
                f"{_num(msg.filled_quantity)} {msg.product}{fills}",
                limited=True,
            )
        elif isinstance(msg, OrderRejected) and actor == "portfolio":
            self.counts["rejected"] += 1
            self._emit(
                "rejected",
                "WARNING",
                f"order rejected {msg.client_order_id} {msg.product}: {_short(msg.reason)}",
                limited=True,
            )
        elif isinstance(msg, RiskLevelChanged) and actor == "shutdown":
            self._emit(
                "risk",
                "WARNING",
                f"risk level {msg.previous} → {msg.level}: {_short(msg.reason)}",
            )
        elif isinstance(msg, UnwindPlan) and actor == "portfolio":
            self._emit(
                "unwind",
                "WARNING",
                f"unwind {msg.plan_id}: level {msg.level} ({msg.trigger}), {len(msg.targets)} "
                f"target(s), mode {msg.mode}: {_short(msg.reason)}",
            )
        elif isinstance(msg, UnwindSliceReport) and actor == "shutdown":
            self._emit(
                "slice",
                "INFO",
                f"unwind slice {msg.client_order_id}: {msg.product} {msg.status}, filled "
                f"{_num(msg.filled)} of {_num(msg.quantity)}, remaining "
                f"{_num(msg.remaining_quantity)}",
                limited=True,
            )
        elif isinstance(msg, UnwindComplete) and actor == "shutdown":
            self._emit("unwind", "WARNING", f"unwind {msg.plan_id} complete: {msg.slices} slices")
        elif isinstance(msg, FeedStatus) and actor == "feed":
            what = f"{msg.state} {','.join(msg.products)} {msg.reason}".strip()
            with self._lock:
                changed, self._feed_state = msg.state != self._feed_state, msg.state
            if changed:
                level = "INFO" if msg.state in ("healthy", "recovered") else "WARNING"
                self._emit("feed", level, f"feed {what}")
        elif isinstance(msg, FeedFinished) and actor == "shutdown":
            self._emit(
                "feed",
                "INFO",
                f"end of data: the replay source is exhausted after {msg.events} events "
                f"(market time {market_time(msg.ts)}); positions are held, still serving; "
                "stop with SIGTERM or 'cryptoj shutdown'",
            )

    def lifecycle(self, actor: str, event: str, generation: int, reason: str = "") -> None:
        """Narrate an actor's crash or restart (the runtime calls this)."""
        if event == "crash":
            self._emit("actor", "WARNING", f"actor {actor} crashed: {_short(reason)}")
        elif event == "start" and generation > 1:
            what = "feed reconnected" if actor == "feed" else f"actor {actor} restarted"
            self._emit("actor", "WARNING", f"{what} (generation {generation})")


def log_line(level: str, line: str) -> None:
    """A :data:`Say` that writes to loguru."""
    logger.log(level, line)


def heartbeat_line(
    view: dict[str, Any],
    *,
    feed_state: str,
    speed: float,
    counts: dict[str, int] | None = None,
) -> str:
    """One line of state from the tap's :meth:`~cryptoj.ops.runtime.Tap.view`; ``counts``
    (the narrator's) adds the orders sent, fills and rejections since the start."""
    snap: PortfolioSnapshot | None = view.get("portfolio")
    risk: RiskParameters | None = view.get("risk")
    if snap is None:
        money = "equity -"
        held = "positions -"
    else:
        money = f"equity {snap.equity:,.2f} (cash {snap.cash:,.2f})"
        open_positions = [p for p in snap.positions if p.quantity]
        held = "positions " + (
            ", ".join(f"{p.product} {_num(p.quantity)}" for p in open_positions) or "none"
        )
        if snap.open_orders:
            held += f", {snap.open_orders} open order(s)"
    level = f"risk {risk.level}" if risk is not None else "risk -"
    pace = "" if speed == 1 else (" max speed" if speed == 0 else f" {speed:g}x")
    tally = (
        f"; since start: {counts['sent']} orders sent, {counts['fills']} fills, "
        f"{counts['rejected']} rejected"
        if counts is not None
        else ""
    )
    return (
        f"heartbeat: {money}; {held}; {level}; feed {feed_state}; "
        f"market {market_time(view.get('last_market_ts'))}{pace}{tally}"
    )


def feed_state(view: dict[str, Any], live: bool) -> str:
    """``finished``, the live feed's last state, or ``replaying``."""
    if view.get("feed_finished"):
        return "finished"
    status: FeedStatus | None = view.get("feed_status")
    if status is not None:
        return status.state
    return "connecting" if live else "replaying"


def pace_line(first_ns: int, last_ns: int, batches: int, speed: float) -> str:
    """How long a replay source of ``batches`` from ``first_ns`` to ``last_ns`` takes."""
    if batches == 0:
        return "replay: no market data left to replay"
    span_s = max(0.0, (last_ns - first_ns) / 1e9)
    what = (
        f"replay of {batches} timestamps from {market_time(first_ns)} to "
        f"{market_time(last_ns)} UTC ({duration(span_s)} of market time)"
    )
    if speed == 0:
        return f"{what} as fast as possible (feed.speed 0)"
    return f"{what} at {speed:g}x takes about {duration(span_s / speed)} (feed.speed)"


__all__ = [
    "Narrator",
    "duration",
    "feed_state",
    "heartbeat_line",
    "log_line",
    "market_time",
    "pace_line",
]
