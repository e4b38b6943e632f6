"""The protocol engine of one websocket connection (sans I/O: pure, injected time).

:class:`FeedSession` holds everything about one connection shard's products that outlives a
single TCP connection (books, trade ids seen, freshness) and everything about the current
connection (sequence tracker, heartbeat, acknowledgements): that state and its stale/fresh
transitions are its base, :class:`~.session_state.SessionState`; this module is the protocol
(frames, channels, watchdogs). The connection thread feeds it what happened and executes the
:data:`~.actions.Action` list it returns (the actions and the
:class:`~.actions.SessionSettings` are in :mod:`.actions`):

=====================  =========================================================================
call                   when
=====================  =========================================================================
``opened(now)``        the websocket handshake succeeded → subscribe messages to send
``frame(data, now)``   a text frame arrived
``oversize(size, now)`` a frame over ``max_frame_bytes`` was skipped unread
``tick(now)``          periodically (~every 100 ms): watchdogs, reorder expiry, pings
``pong(payload, now)`` a websocket pong arrived
``closed(reason, now)`` the connection ended (products go ``stale``)
``backfilled(...)``    trades fetched over REST after a gap or reconnect
=====================  =========================================================================

Market events (:class:`~cryptoj.models.market.Quote`, ``Trade``) and health events
(``FeedStatus`` with ``state`` ``healthy`` / ``stale`` / ``recovered``) go to ``emit`` as they
happen. A product is *fresh* once its level2 snapshot arrived (or, without level2, its first
ticker, or else its subscription ack). A sequence gap, heartbeat silence, a silent book or a
malformed level2 frame makes products ``stale``: their books are dropped, level2 and
market_trades are resubscribed (a fresh snapshot), missed trades are backfilled over REST, and
``recovered`` follows when the new snapshot is in, right after the new book's quote (so a
consumer that clears its stale mark on ``recovered`` already holds the resynced top). No other
quote of a stale product is emitted.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import cast

from cryptoj.adapters.coinbase.actions import (
    COUNTERS,
    Action,
    Backfill,
    Ping,
    Reconnect,
    S,
    Send,
    SessionSettings,
)
from cryptoj.adapters.coinbase.parse import (
    ErrorFrame,
    MalformedFrame,
    UnknownFrame,
    heartbeat_counter,
    ticker_problem,
    ticker_quote,
)
from cryptoj.adapters.coinbase.schemas import (
    Envelope,
    HeartbeatsFrame,
    L2Frame,
    MarketTradesFrame,
    SkippedTickerBatchFrame,
    SkippedTickerFrame,
    SubscriptionsFrame,
    TickerBatchFrame,
    TickerFrame,
)
from cryptoj.adapters.coinbase.sequence import Gap
from cryptoj.adapters.coinbase.session_state import FeedEvent, SessionState
from cryptoj.adapters.coinbase.validate import (
    levels_problem,
    pair_problem,
)
from cryptoj.models.market import Quote, Trade


class FeedSession(SessionState):
    """See the module docstring. Not thread-safe: one connection thread drives it."""

    def _frame_handlers(self) -> dict[type, Callable[[object, int, list[Action]], None]]:
        """The handler of each decoded frame type (called once, by the state's ``__init__``)."""
        return {
            L2Frame: self._l2,  # type: ignore[dict-item]
            MarketTradesFrame: self._trades,  # type: ignore[dict-item]
            TickerFrame: self._ticker,  # type: ignore[dict-item]
            TickerBatchFrame: self._ticker,  # type: ignore[dict-item]
            HeartbeatsFrame: self._heartbeat,  # type: ignore[dict-item]
            SkippedTickerFrame: self._skip,
            SkippedTickerBatchFrame: self._skip,
            SubscriptionsFrame: self._subscriptions,  # type: ignore[dict-item]
        }

    # -- connection lifecycle ----------------------------------------------------------------

    def opened(self, now: int) -> list[Action]:
        """The websocket is open: subscribe to heartbeats, then one message per channel."""
        self.tracker.reset()
        self.live = False
        self.subscriptions = {}
        self.ack_deadline = now + self.settings.ack_timeout_ns
        self.last_heartbeat_ns = now
        self.last_counter = None
        self.ping_sent_ns = None
        self.last_ping_ns = now
        self.resync_deadline.clear()
        self.awaiting_ack.clear()
        self.delivered = False
        if self.l2:
            self.needs_snapshot = set(self.products)
            for book in self.books.values():
                book.clear()
        self.last_top.clear()
        actions: list[Action] = [self._sub("subscribe", "heartbeats", ())]
        actions += [self._sub("subscribe", ch, self.products) for ch in self.settings.channels]
        since = self._backfill_since(self.products)
        if since:
            actions.append(Backfill(since))
        return actions

    def closed(self, reason: str, now: int) -> None:
        """The connection ended: fresh products become stale until the next snapshot."""
        self.tracker.reset()
        self.live = False
        self.ping_sent_ns = None
        self._stale(self.products, f"disconnected: {reason}", now)

    def pong(self, payload: bytes, now: int) -> None:
        """A pong arrived: record the round trip of the ping it answers."""
        try:
            sent = int(payload)
        except ValueError:
            return
        self.rtt.add(now - sent)
        if self.ping_sent_ns == sent:
            self.ping_sent_ns = None

    # -- frames ------------------------------------------------------------------------------

    def frame(self, data: bytes | str, now: int) -> list[Action]:
        """One text frame arrived at ``now``."""
        counts = self.counts
        counts["bytes"] += len(data)
        if len(data) > self.settings.max_frame_bytes:
            return self.oversize(len(data), now)
        counts["frames"] += 1
        actions: list[Action] = []
        parsed = self.decoder.decode(data)
        handler = self._dispatch.get(type(parsed))
        if handler is None:
            if isinstance(parsed, ErrorFrame):
                return self._error(parsed.message, now)
            if isinstance(parsed, UnknownFrame):
                counts["unknown"] += 1
            else:
                assert isinstance(parsed, MalformedFrame)
                counts["malformed"] += 1
                lost = parsed.reason == "undecodable" or parsed.channel in self._data_channels
                self._drop(
                    parsed.reason,
                    self.products if lost else (),
                    f"{parsed.channel or 'unknown'} frame: {parsed.problem[:200]}",
                    now,
                    actions,
                )
            if parsed.sequence_num is not None:  # keep the sequence continuous
                self._release(self.tracker.push(parsed.sequence_num, None, now), now, actions)
            return actions
        frame = cast(Envelope, parsed)
        ts = self._ts(frame.timestamp, 0)
        if ts:
            self.lag.add(now - ts)
        released = self.tracker.push(frame.sequence_num, frame, now)
        if len(released) == 1 and released[0] is frame:
            handler(frame, now, actions)
        else:
            self._release(released, now, actions)
        return actions

    def oversize(self, size: int, now: int) -> list[Action]:
        """A frame of ``size`` bytes, over ``max_frame_bytes``, was dropped undecoded (the
        connection's frame reader skips it as it streams in: ``size`` is what its header
        declared; its bytes are not counted in ``bytes``). What it held is unknown: every
        product may have lost data and is resynced."""
        self.counts["frames"] += 1
        actions: list[Action] = []
        detail = f"a frame of {size:,} bytes (limit {self.settings.max_frame_bytes:,})"
        self._drop("oversize", self.products, detail, now, actions)
        return actions

    def _release(self, items: list[object], now: int, actions: list[Action]) -> None:
        for item in items:
            if isinstance(item, Gap):
                self.counts["gaps"] += 1
                self.counts["missing"] += item.missing
                reason = f"sequence gap: {item.missing} frame(s) lost ({item.first}..{item.last})"
                self._resync(self.products, reason, now, actions)
            elif item is not None:
                self._dispatch[type(item)](item, now, actions)

    def _error(self, message: str, now: int) -> list[Action]:
        self.counts["errors"] += 1
        self.rlog(
            "error-frame", "error", f"{self.name}: error frame from Coinbase: {message!r}", now
        )
        if not self.live or self.resync_deadline:
            return [Reconnect(f"error frame: {message}")]
        return []

    def _l2(self, frame: L2Frame, now: int, actions: list[Action]) -> None:
        ts = 0
        for ev in frame.events:
            p = ev.product_id
            book = self.books.get(p)
            if book is None:
                self.counts["foreign_products"] += 1
                continue
            problem = levels_problem(ev.updates)
            if problem is not None:
                self._drop(problem, (p,), f"level2 {ev.type} of {p}", now, actions)
                continue
            if ev.type == "snapshot":
                book.clear()
                self.counts["unknown_sides"] += book.apply_levels(ev.updates)
                self.counts["snapshots"] += 1
                self.needs_snapshot.discard(p)
                self.resync_deadline.pop(p, None)
                self.last_book_ns[p] = now
            elif ev.type == "update":
                if p in self.needs_snapshot:
                    self.counts["updates_ignored"] += 1
                    continue
                self.counts["unknown_sides"] += book.apply_levels(ev.updates)
                self.last_book_ns[p] = now
            else:
                self.counts["unknown"] += 1
                continue
            top = book.top_text()
            if top is None and book.crossed():
                self.counts["crossed"] += 1
                bid, ask = book.best_bid(), book.best_ask()
                detail = f"level2 {ev.type} of {p} left bid {bid} >= ask {ask}"
                self._drop("crossed_book", (p,), detail, now, actions)
                continue
            if top is not None and self.last_top.get(p) != top:
                self.last_top[p] = top
                if not ts:
                    ts = self._ts(frame.timestamp, now)
                self.counts["quotes"] += 1
                self.emit(
                    Quote(
                        ts=ts,
                        product=p,
                        bid=Decimal(top[0]),
                        bid_size=Decimal(top[1]),
                        ask=Decimal(top[2]),
                        ask_size=Decimal(top[3]),
                    )
                )
            if ev.type == "snapshot":
                # after the new book's quote: whoever clears its stale mark on this status
                # already holds the resynced top, never the quote from before the outage
                self._fresh((p,), now)

    def _trades(self, frame: MarketTradesFrame, now: int, actions: list[Action]) -> None:
        seen, counts, emit = self._seen, self.counts, self.emit
        kept = self.settings.trade_ids_kept
        last_trade = self.last_trade_ns
        text, ts = "", now
        for ev in frame.events:
            for t in reversed(ev.trades):  # Coinbase lists them newest first
                p = t.product_id
                entry = seen.get(p)
                if entry is None:
                    continue
                problem = pair_problem(t.price, t.size)
                if problem is not None:
                    self._drop(problem, (p,), f"trade {t.trade_id} of {p}", now, actions)
                    continue
                ids, order = entry
                tid = t.trade_id
                if tid in ids:
                    counts["trades_duplicate"] += 1
                    continue
                ids.add(tid)
                order.append(tid)
                if len(order) > kept:
                    ids.discard(order.popleft())
                if t.time != text:  # trades of one frame often share their time
                    text = t.time
                    ts = self._ts(text, now)
                if ts > last_trade.get(p, 0):
                    last_trade[p] = ts
                counts["trades"] += 1
                self.delivered = True
                emit(
                    Trade(
                        ts=ts,
                        product=p,
                        price=t.price,
                        quantity=t.size,
                        taker_side=t.side.upper(),
                        trade_id=tid,
                    )
                )

    def _trade(self, trade: Trade) -> bool:
        ids, order = self._seen[trade.product]
        if trade.trade_id in ids:
            self.counts["trades_duplicate"] += 1
            return False
        ids.add(trade.trade_id)
        order.append(trade.trade_id)
        if len(order) > self.settings.trade_ids_kept:
            ids.discard(order.popleft())
        if trade.ts > self.last_trade_ns.get(trade.product, 0):
            self.last_trade_ns[trade.product] = trade.ts
        self.counts["trades"] += 1
        self.emit(trade)
        return True

    def _ticker(
        self, frame: TickerFrame | TickerBatchFrame, now: int, actions: list[Action]
    ) -> None:
        if not self.ticker_quotes:
            return
        for ev in frame.events:
            for item in ev.tickers:
                p = item.product_id
                if p not in self.status:
                    continue
                problem = ticker_problem(item)
                if problem is not None:
                    self._drop(problem, (p,), f"ticker of {p}", now, actions)
                    continue
                q = ticker_quote(item, self._ts(frame.timestamp, now))
                self.resync_deadline.pop(p, None)
                if q is not None and self.last_top.get(p) != (q.bid, q.bid_size, q.ask, q.ask_size):
                    self.last_top[p] = (q.bid, q.bid_size, q.ask, q.ask_size)
                    self.counts["quotes"] += 1
                    self.emit(q)
                if self.status[p] != "fresh":
                    self._fresh((p,), now)  # after its quote (as for a level2 snapshot)

    def _skip(self, frame: object, now: int, actions: list[Action]) -> None:
        """A frame this session does not need the events of (tickers when level2 is on)."""

    def _heartbeat(self, frame: HeartbeatsFrame, now: int, actions: list[Action]) -> None:
        for ev in frame.events:
            counter = heartbeat_counter(ev.heartbeat_counter)
            if (
                counter is not None
                and self.last_counter is not None
                and counter != self.last_counter + 1
            ):
                self.counts["heartbeat_skips"] += 1
            self.last_counter = counter
            self.counts["heartbeats"] += 1
        self.last_heartbeat_ns = now

    def _subscriptions(self, frame: SubscriptionsFrame, now: int, actions: list[Action]) -> None:
        subs: dict[str, list[str]] = {}
        for ev in frame.events:
            subs.update(ev.subscriptions)
        self.subscriptions = subs
        acked = [
            p for p in self.products if all(p in subs.get(ch, ()) for ch in self.settings.channels)
        ]
        if not self.live and "heartbeats" in subs and len(acked) == len(self.products):
            self.live = True
            self.live_since = now
            self.last_heartbeat_ns = now
            self.log("info", f"{self.name}: subscribed ({', '.join(self.settings.channels)})")
        if not self.l2 and not self.ticker_quotes:
            ready = [p for p in acked if self.status[p] != "fresh"]
            self.awaiting_ack.difference_update(ready)
            for p in ready:
                self.resync_deadline.pop(p, None)
            if ready and self.live:
                self._fresh(tuple(ready), now)

    # -- health ------------------------------------------------------------------------------

    def tick(self, now: int) -> list[Action]:
        """Watchdogs: reorder expiry, acks, heartbeats, resync deadlines, silent books, pings."""
        actions: list[Action] = []
        if self.tracker.pending:
            self._release(self.tracker.expire(now), now, actions)
        st = self.settings
        if not self.live and now > self.ack_deadline:
            actions.append(
                Reconnect(f"subscriptions not acknowledged within {st.ack_timeout_ns / S:g}s")
            )
            return actions
        silent = now - self.last_heartbeat_ns
        if self.live and silent > st.heartbeat_timeout_ns:  # before live: the ack deadline
            self.counts["heartbeat_timeouts"] += 1
            actions.append(Reconnect(f"no heartbeat for {silent / S:.1f}s", clean=False))
            return actions
        late = [p for p, t in self.resync_deadline.items() if now > t]
        if late:
            actions.append(
                Reconnect(f"no snapshot within {st.resync_timeout_ns / S:g}s of a resync")
            )
            return actions
        if self.live and self.l2 and st.book_stale_ns:
            silent_books = [
                p
                for p in self.products
                if self.status[p] == "fresh"
                and now - self.last_book_ns.get(p, now) > st.book_stale_ns
            ]
            if silent_books:
                self.counts["books_silent"] += len(silent_books)
                self._resync(
                    tuple(silent_books),
                    f"book silent for over {st.book_stale_ns / S:g}s",
                    now,
                    actions,
                )
        if self.live and st.ping_interval_ns:
            if self.ping_sent_ns is not None:
                if now - self.ping_sent_ns > st.ping_timeout_ns:
                    actions.append(
                        Reconnect(f"no pong within {st.ping_timeout_ns / S:g}s", clean=False)
                    )
            elif now - self.last_ping_ns >= st.ping_interval_ns:
                self.ping_sent_ns = self.last_ping_ns = now
                actions.append(Ping(str(now).encode()))
        return actions

    def backfilled(self, trades: list[Trade], now: int) -> int:
        """Trades fetched over REST: emit the ones not seen yet, oldest first; return how many."""
        n = 0
        for t in sorted(trades, key=lambda t: t.ts):
            if t.product in self._seen and self._trade(t):
                n += 1
        self.counts["backfilled"] += n
        return n


__all__ = [
    "COUNTERS",
    "Action",
    "Backfill",
    "FeedEvent",
    "FeedSession",
    "Ping",
    "Reconnect",
    "Send",
    "SessionSettings",
]
