"""Per-product conflation of quotes and merging of late trades (pure): a time window, and a
delivery backlog.

:class:`QuoteWindow` (in each connection thread): at most one quote per product per window.
A quote of a product that had none delivered within the last ``window_ns`` goes out at once;
later ones in the window replace each other and the newest goes out when the window ends. A
trade or status of a product first releases that product's held quote, so the order of what a
product's consumer sees is kept. Statuses are never held or dropped, and neither are trades,
but when the connection reads them late (the frames' wire lag above ``merge_lag_ns``: the
connection is behind and the bytes waited in the socket) the trades of a product handed on
together are **merged** into one (:func:`~cryptoj.models.market.merge_trades`: the newest's
time, price, side and id, the summed quantity; never across a status of the product), as the
FeedActor's mailbox merges the trades that wait in it: the feed catches up instead of
delivering a backlog one trade at a time. Counted (``merged``); no volume is lost.

:class:`Conflator` (the backlog of ``delivery: thread``): events wait here until the delivery
thread hands them to the callback. While they wait:

* a newer :class:`~cryptoj.models.market.Quote` of a product **supersedes** the pending one
  (always; with ``conflate=False`` only beyond ``max_events`` pending): the old one is dropped
  and the new one queued at its own arrival position (per-product conflation: a slow consumer
  sees the latest top of book, not a backlog, and never a quote ahead of something that
  happened before it);
* beyond ``max_events`` pending, a newer :class:`~cryptoj.models.market.Trade` of a product is
  **merged** into the pending one (:func:`~cryptoj.models.market.merge_trades`: the newer
  trade's time, price, side and id, both quantities), which leaves its place: the merged trade
  is queued at the newer one's arrival position, as the actors' mailboxes do. Below the bound
  every trade is delivered as it came;
* nothing is refused: a product's first pending quote or trade is always accepted (the backlog
  holds at most ``max_events`` plus one quote and one trade per product, plus statuses);
  :class:`~cryptoj.models.market.FeedStatus` events are never conflated or merged.

Not thread-safe: the manager guards it with its condition variable.
"""

from __future__ import annotations

from collections import deque

from cryptoj.models.market import FeedStatus, Quote, Trade, merge_trades

FeedEvent = Quote | Trade | FeedStatus


class Conflator:
    """Ordered backlog of feed events; see the module docstring."""

    def __init__(self, *, conflate: bool = True, max_events: int = 100_000) -> None:
        self.conflate = conflate
        self.max_events = max_events
        self._slots: deque[list[FeedEvent | None]] = deque()
        self._quote_slot: dict[str, list[FeedEvent | None]] = {}
        self._trade_slot: dict[str, list[FeedEvent | None]] = {}
        self._live = 0
        self.accepted = 0
        self.conflated = 0  # quotes superseded by a newer one
        self.merged = 0  # trades merged into a newer one

    def __len__(self) -> int:
        return self._live

    def put(self, event: FeedEvent) -> None:
        """Queue ``event`` (superseding a pending quote, merging a pending trade beyond the
        bound: see the module docstring)."""
        slot: list[FeedEvent | None] = [event]
        if isinstance(event, Quote):
            old = self._quote_slot.get(event.product)
            if old is not None and (self.conflate or self._live >= self.max_events):
                old[0] = None  # superseded
                self._live -= 1
                self.conflated += 1
            self._quote_slot[event.product] = slot
        elif isinstance(event, Trade):
            old = self._trade_slot.get(event.product)
            if old is not None and self._live >= self.max_events:
                older = old[0]
                assert isinstance(older, Trade)
                slot[0] = merge_trades(older, event)
                old[0] = None  # merged into the new one
                self._live -= 1
                self.merged += 1
            self._trade_slot[event.product] = slot
        self._slots.append(slot)
        self._live += 1
        self.accepted += 1

    def take(self) -> list[FeedEvent]:
        """Everything pending, oldest first; the backlog is empty afterwards."""
        out = [e for (e,) in self._slots if e is not None]
        self._slots.clear()
        self._quote_slot.clear()
        self._trade_slot.clear()
        self._live = 0
        return out


class QuoteWindow:
    """Time-window conflation of quotes, and merging of trades read late; see the module
    docstring. ``merge_lag_ns`` 0: trades are never merged."""

    def __init__(self, window_ns: int, merge_lag_ns: int = 0) -> None:
        self.window_ns = window_ns
        self.merge_lag_ns = merge_lag_ns
        self.held: dict[str, Quote] = {}
        self.sent_at: dict[str, int] = {}
        self.conflated = 0
        self.merged = 0  # trades merged into a newer one of their product

    def push(self, events: list[FeedEvent], now: int, lag_ns: int = 0) -> list[FeedEvent]:
        """Events to deliver now (in order), holding back quotes inside their window; with
        ``lag_ns`` (how late the events were read) above ``merge_lag_ns``, each product's
        trades among them merged first."""
        if 0 < self.merge_lag_ns < lag_ns:
            events = self._merge_trades(events)
        if self.window_ns <= 0:
            return list(events)
        out: list[FeedEvent] = []
        held, sent = self.held, self.sent_at
        for e in events:
            if isinstance(e, Quote):
                p = e.product
                if p in held:
                    held[p] = e
                    self.conflated += 1
                elif now - sent.get(p, -self.window_ns) >= self.window_ns:
                    sent[p] = now
                    out.append(e)
                else:
                    held[p] = e
            else:
                products = (e.product,) if isinstance(e, Trade) else e.products
                for p in products:
                    q = held.pop(p, None)
                    if q is not None:
                        sent[p] = now
                        out.append(q)
                out.append(e)
        return out

    def _merge_trades(self, events: list[FeedEvent]) -> list[FeedEvent]:
        """``events`` with each product's trades merged into its last one (never across a
        status of the product)."""
        out: list[FeedEvent | None] = []
        trade_at: dict[str, int] = {}  # product → index in out of its trade that may merge
        merged = 0
        for e in events:
            if isinstance(e, Trade):
                i = trade_at.get(e.product)
                if i is not None:
                    older, out[i] = out[i], None
                    assert isinstance(older, Trade)
                    e = merge_trades(older, e)
                    merged += 1
                trade_at[e.product] = len(out)
            elif isinstance(e, FeedStatus):
                for p in e.products:
                    trade_at.pop(p, None)
            out.append(e)
        if not merged:
            return events
        self.merged += merged
        return [e for e in out if e is not None]

    def due(self, now: int) -> list[FeedEvent]:
        """Held quotes whose window has ended."""
        if not self.held:
            return []
        out: list[FeedEvent] = []
        for p in [p for p in self.held if now - self.sent_at.get(p, 0) >= self.window_ns]:
            out.append(self.held.pop(p))
            self.sent_at[p] = now
        return out
