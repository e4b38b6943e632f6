"""The state one websocket connection's :class:`~.session.FeedSession` keeps, and the product
freshness rules it applies (sans I/O: pure, injected time).

:class:`SessionState` holds what outlives a single TCP connection (books, trade ids seen, each
product's ``new`` / ``fresh`` / ``stale`` status) and what belongs to the current one (sequence
tracker, heartbeat, acknowledgements, counters). Its transitions: a product goes ``stale``
(a ``FeedStatus`` is emitted; its book is dropped and its channels resubscribed for a fresh
snapshot, missed trades backfilled over REST) and ``fresh`` again (``healthy`` the first time,
``recovered`` after a stale spell). What the frames and the timers do is the session's protocol,
in :mod:`.session`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from cryptoj.adapters.coinbase.actions import (
    COUNTERS,
    Action,
    Backfill,
    S,
    Send,
    SessionSettings,
)
from cryptoj.adapters.coinbase.book import OrderBook
from cryptoj.adapters.coinbase.parse import FrameDecoder, rfc3339_ns
from cryptoj.adapters.coinbase.schemas import Subscribe
from cryptoj.adapters.coinbase.sequence import SequenceTracker
from cryptoj.adapters.coinbase.stats import LatencyStats
from cryptoj.adapters.coinbase.validate import DROP_REASONS, RateLimitedLog
from cryptoj.models.market import FeedStatus, Quote, Trade

FeedEvent = Quote | Trade | FeedStatus


class SessionState:
    """One connection shard's state and freshness transitions (the base of
    :class:`~.session.FeedSession`, which drives them). Not thread-safe."""

    def __init__(
        self,
        name: str,
        products: tuple[str, ...],
        settings: SessionSettings,
        emit: Callable[[FeedEvent], None],
        *,
        jwt: Callable[[], str | None] = lambda: None,
        log: Callable[[str, str], None] = lambda level, text: None,
    ) -> None:
        self.name = name
        self.products = tuple(dict.fromkeys(products))
        self.settings = settings
        self.emit = emit
        self.jwt = jwt
        self.log = log
        ch = settings.channels
        self.l2 = "level2" in ch
        self.ticker_quotes = not self.l2 and ("ticker" in ch or "ticker_batch" in ch)
        self.decoder = FrameDecoder(tickers=self.ticker_quotes)
        self.tracker: SequenceTracker[object] = SequenceTracker(
            settings.reorder_window, settings.reorder_hold_ns
        )
        self.books = {p: OrderBook(p) for p in self.products}
        self.status: dict[str, str] = dict.fromkeys(self.products, "new")
        self.stale_since: dict[str, int] = {}
        self.needs_snapshot: set[str] = set()
        self.awaiting_ack: set[str] = set()
        self.resync_deadline: dict[str, int] = {}
        self.last_book_ns: dict[str, int] = {}
        self.last_trade_ns: dict[str, int] = {}
        self.last_top: dict[str, tuple[object, ...]] = {}
        self._seen: dict[str, tuple[set[str], deque[str]]] = {
            p: (set(), deque()) for p in self.products
        }
        self.live = False
        self.live_since = 0
        self.subscriptions: dict[str, list[str]] = {}
        self.ack_deadline = 0
        self.last_heartbeat_ns = 0
        self.last_counter: int | None = None
        self.ping_sent_ns: int | None = None
        self.last_ping_ns = 0
        self.lag = LatencyStats()
        self.rtt = LatencyStats()
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.rlog = RateLimitedLog(log, settings.log_interval_ns)
        self.delivered = False  # data (a snapshot, a ticker, a trade) arrived since opened()
        self.max_recovery_ns = 0
        self._ts_text, self._ts_ns = "", 0
        # channels whose loss leaves the books or the trades incomplete (a bad one → resync)
        self._data_channels = frozenset(
            {"l2_data", "market_trades"}
            | ({"ticker", "ticker_batch"} if self.ticker_quotes else set())
        )
        self._dispatch = self._frame_handlers()

    def _frame_handlers(self) -> dict[type, Callable[[object, int, list[Action]], None]]:
        """The handler of each decoded frame type (the protocol, :class:`~.session.FeedSession`)."""
        return {}

    # -- stale and fresh ---------------------------------------------------------------------

    def _drop(
        self,
        reason: str,
        products: tuple[str, ...],
        detail: str,
        now: int,
        actions: list[Action],
    ) -> None:
        """Count a dropped frame (or one product's part of it) by ``reason``, log it (rate
        limited) and resync ``products`` unless a resync of theirs is already under way."""
        self.dropped[reason] += 1
        self.counts["dropped"] += 1
        self.rlog(f"drop:{reason}", "warning", f"{self.name}: dropped {detail} ({reason})", now)
        if products:
            self._resync(products, f"dropped frame ({reason})", now, actions, again=False)

    def _resync(
        self,
        products: tuple[str, ...],
        reason: str,
        now: int,
        actions: list[Action],
        *,
        again: bool = True,
    ) -> None:
        """Mark ``products`` stale and resubscribe them for a fresh snapshot.

        ``again=False``: products whose resync is already under way are left to it (a flood of
        bad frames costs one resubscribe, not one per frame).
        """
        if not again:
            products = tuple(p for p in products if p not in self.resync_deadline)
            if not products:
                return
        self._stale(products, reason, now)
        self.counts["resyncs"] += 1
        self.rlog(
            f"resync:{reason.split(':', 1)[0]}",
            "warning",
            f"{self.name}: resync of {', '.join(products)}: {reason}",
            now,
        )
        resubscribe: tuple[str, ...] = ("level2", "market_trades")
        if self.ticker_quotes:
            resubscribe += ("ticker", "ticker_batch")
        channels = [ch for ch in self.settings.channels if ch in resubscribe]
        for ch in channels:
            actions.append(self._sub("unsubscribe", ch, products))
            actions.append(self._sub("subscribe", ch, products))
        deadline = now + self.settings.resync_timeout_ns
        for p in products:
            self.resync_deadline[p] = deadline
            if self.l2:
                self.needs_snapshot.add(p)
                self.books[p].clear()
                self.last_top.pop(p, None)
            elif not self.ticker_quotes:
                self.awaiting_ack.add(p)
        if not channels:
            for p in products:
                self.resync_deadline.pop(p, None)
        since = self._backfill_since(products)
        if since:
            actions.append(Backfill(since))

    def _stale(self, products: tuple[str, ...], reason: str, now: int) -> None:
        newly = tuple(p for p in products if self.status[p] == "fresh")
        for p in newly:
            self.status[p] = "stale"
            self.stale_since[p] = now
            self.last_top.pop(p, None)
        if newly:
            self.counts["stale_events"] += 1
            self.emit(FeedStatus(ts=now, products=newly, state="stale", reason=reason))

    def _fresh(self, products: tuple[str, ...], now: int) -> None:
        first = tuple(p for p in products if self.status[p] == "new")
        back = tuple(p for p in products if self.status[p] == "stale")
        for p in products:
            self.status[p] = "fresh"
        self.delivered = True
        if first:
            self.emit(
                FeedStatus(ts=now, products=first, state="healthy", reason=f"{self.name} live")
            )
        if back:
            worst = max(now - self.stale_since.pop(p, now) for p in back)
            self.max_recovery_ns = max(self.max_recovery_ns, worst)
            self.counts["recoveries"] += 1
            self.emit(
                FeedStatus(
                    ts=now,
                    products=back,
                    state="recovered",
                    reason=f"fresh snapshot after {worst / S:.2f}s",
                )
            )

    # -- helpers -----------------------------------------------------------------------------

    def _backfill_since(self, products: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
        if not (self.settings.backfill and "market_trades" in self.settings.channels):
            return ()
        return tuple((p, self.last_trade_ns[p]) for p in products if p in self.last_trade_ns)

    def _sub(self, kind: str, channel: str, products: tuple[str, ...]) -> Send:
        msg = Subscribe(
            type=kind, product_ids=list(products), channel=channel, jwt=self.jwt() or ""
        )
        return Send(msgspec.json.encode(msg).decode())

    def _ts(self, text: str, default: int) -> int:
        """``text`` as ns (cached: the handlers re-read the timestamp the frame was timed by)."""
        if text == self._ts_text:
            return self._ts_ns
        try:
            ns = rfc3339_ns(text)
        except ValueError:
            return default
        self._ts_text, self._ts_ns = text, ns
        return ns

    def fresh_products(self) -> tuple[str, ...]:
        """Products whose data is current."""
        return tuple(p for p, s in self.status.items() if s == "fresh")

    def stale_products(self) -> tuple[str, ...]:
        """Products marked stale and not yet recovered."""
        return tuple(p for p, s in self.status.items() if s == "stale")

    def snapshot(self, now: int | None = None) -> dict[str, Any]:
        """Counters and latencies for the status output (a new dict each call).

        With ``now``: also the seconds since the last heartbeat of a live connection.
        """
        hb_age = (
            (now - self.last_heartbeat_ns) / S
            if now is not None and self.live and self.last_heartbeat_ns
            else None
        )
        return {
            **self.counts,
            "live": self.live,
            "live_since": self.live_since if self.live else None,
            "heartbeat_age_s": hb_age,
            "reordered": self.tracker.reordered,
            "dropped_old": self.tracker.dropped,
            "stale": list(self.stale_products()),
            "dropped_by_reason": dict(self.dropped),
            "log_lines_suppressed": sum(self.rlog.suppressed.values()),
            "max_recovery_s": self.max_recovery_ns / S,
            "lag": self.lag.as_dict(),
            "rtt": self.rtt.as_dict(),
        }
