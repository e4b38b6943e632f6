"""Per-product conflation of quotes (pure): a time window, and a delivery backlog.

:class:`QuoteWindow` (in each connection thread): at most one quote per product per window.
A quote of a product that had none delivered within the last ``window_ns`` goes out at once;
later ones in the window replace each other and the newest goes out when the window ends. A
trade or status of a product first releases that product's held quote, so the order of what a
product's consumer sees is kept. Trades and statuses are never held or dropped.

:class:`Conflator` (the backlog of ``delivery: thread``): events wait here until the delivery
thread hands them to the callback. While they wait:

* a newer :class:`~cryptoj.models.market.Quote` of a product **supersedes** the pending one:
  the old one is dropped and the new one queued at its own arrival position (per-product
  conflation: a slow consumer sees the latest top of book, not a backlog, and never a quote
  ahead of something that happened before it);
* :class:`~cryptoj.models.market.Trade` and :class:`~cryptoj.models.market.FeedStatus` are never
  conflated;
* beyond ``max_events`` pending, new trades and quotes are refused (the caller counts them);
  status events are always accepted.

Not thread-safe: the manager guards it with its condition variable.
"""

from __future__ import annotations

from collections import deque

from cryptoj.models.market import FeedStatus, Quote, Trade

FeedEvent = Quote | Trade | FeedStatus


class Conflator:
    """Ordered backlog of feed events; see the module docstring."""

    def __init__(self, *, conflate: bool = True, max_events: int = 100_000) -> None:
        self.conflate = conflate
        self.max_events = max_events
        self._slots: deque[list[FeedEvent | None]] = deque()
        self._quote_slot: dict[str, list[FeedEvent | None]] = {}
        self._live = 0
        self.accepted = 0
        self.conflated = 0
        self.refused = 0

    def __len__(self) -> int:
        return self._live

    def put(self, event: FeedEvent) -> bool:
        """Queue ``event``; False when it was refused because the backlog is full."""
        if isinstance(event, Quote):
            old = self._quote_slot.get(event.product) if self.conflate else None
            if old is not None:
                old[0] = None  # superseded
                self._live -= 1
                self.conflated += 1
            elif self._live >= self.max_events:
                self.refused += 1
                return False
            slot: list[FeedEvent | None] = [event]
            self._slots.append(slot)
            if self.conflate:
                self._quote_slot[event.product] = slot
        elif isinstance(event, Trade) and self._live >= self.max_events:
            self.refused += 1
            return False
        else:
            self._slots.append([event])
        self._live += 1
        self.accepted += 1
        return True

    def take(self) -> list[FeedEvent]:
        """Everything pending, oldest first; the backlog is empty afterwards."""
        out = [e for (e,) in self._slots if e is not None]
        self._slots.clear()
        self._quote_slot.clear()
        self._live = 0
        return out


class QuoteWindow:
    """Time-window conflation of quotes; see the module docstring."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.held: dict[str, Quote] = {}
        self.sent_at: dict[str, int] = {}
        self.conflated = 0

    def push(self, events: list[FeedEvent], now: int) -> list[FeedEvent]:
        """Events to deliver now (in order), holding back quotes inside their window."""
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

    def due(self, now: int) -> list[FeedEvent]:
        """Held quotes whose window has ended."""
        if not self.held:
            return []
        out: list[FeedEvent] = []
        for p in [p for p in self.held if now - self.sent_at.get(p, 0) >= self.window_ns]:
            out.append(self.held.pop(p))
            self.sent_at[p] = now
        return out
