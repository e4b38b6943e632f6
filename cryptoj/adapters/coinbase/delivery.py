"""How the feed's events reach its callback: inline, or through a backlog and one thread.

``delivery: inline`` (the default): :meth:`Delivery.deliver` calls the callback at once on the
calling thread (a connection thread with its batch, or the REST thread one event at a time,
serialised by a lock). ``delivery: thread``: events wait in a
:class:`~cryptoj.adapters.coinbase.conflate.Conflator` (quotes superseded, trades merged beyond
``max_pending_events``: nothing refused) until the delivery thread (:meth:`Delivery.run`,
started by the feed under its guard) hands them on in order. Either way an exception the
callback raises is counted and logged (the 1st, 10th, 100th, ...), never kills the feed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from loguru import logger

from cryptoj.adapters.coinbase.conflate import Conflator, FeedEvent
from cryptoj.config.coinbase import CoinbaseFeedConfig


class Delivery:
    """The feed's hand-over to ``on_event``; see the module docstring."""

    def __init__(
        self,
        cfg: CoinbaseFeedConfig,
        on_event: Callable[[FeedEvent], None],
        stopping: threading.Event,
    ) -> None:
        self.on_event = on_event
        self.inline = cfg.delivery == "inline"
        self.outbox = Conflator(conflate=cfg.conflate, max_events=cfg.max_pending_events)
        self.counts = {"undelivered_at_stop": 0, "delivered": 0, "callback_errors": 0}
        self._stopping = stopping
        self._cond = threading.Condition()
        self._idle = False  # the delivery thread waits for events (guarded by _cond)
        self._batch_s = cfg.delivery_batch_ms / 1000
        self._inline_lock = threading.Lock()

    def put(self, event: FeedEvent) -> None:
        """One event from the REST thread (a polled quote, a ``degraded`` status)."""
        if self.inline:
            with self._inline_lock:  # from the REST thread: one caller at a time
                self.deliver([event])
            return
        with self._cond:
            self.outbox.put(event)
            if self._idle:
                self._cond.notify()

    def deliver(self, events: list[FeedEvent]) -> None:
        """A connection's batch of events: to the callback now (inline) or to the backlog."""
        if self.inline:
            on_event = self.on_event
            for e in events:
                try:
                    on_event(e)
                except Exception:
                    self._callback_failed(e)
            self.counts["delivered"] += len(events)
            return
        with self._cond:
            put = self.outbox.put
            for e in events:
                put(e)
            if self._idle:  # wake the delivery thread only when it waits
                self._cond.notify()

    def wake(self) -> None:
        """Wake the delivery thread (it checks ``stopping``)."""
        with self._cond:
            self._cond.notify_all()

    def status(self) -> dict[str, Any]:
        """The counters, the backlog's size and what it superseded and merged."""
        return {
            **self.counts,
            "pending": len(self.outbox),
            "conflated": self.outbox.conflated,
            "merged_trades": self.outbox.merged,
        }

    def _callback_failed(self, event: FeedEvent) -> None:
        """Count a failing callback; log the 1st, 10th, 100th, ... with the traceback."""
        n = self.counts["callback_errors"] = self.counts["callback_errors"] + 1
        if str(n).strip("0") == "1":
            logger.opt(exception=True).error(
                "coinbase feed: event callback failed for {} ({} failure(s) so far)",
                type(event).__name__,
                n,
            )

    def run(self, beat: Callable[[], None]) -> None:
        """The delivery thread (``delivery: thread``; idle otherwise): batches to the callback;
        ``beat`` after each batch (the guard's progress mark)."""
        while (events := self._next_batch()) is not None:
            beat()
            for i, e in enumerate(events):
                if self._stopping.is_set():
                    self.counts["undelivered_at_stop"] = len(events) - i
                    return
                try:
                    self.on_event(e)
                except Exception:
                    self._callback_failed(e)
                self.counts["delivered"] += 1

    def _next_batch(self) -> list[FeedEvent] | None:
        """The waiting events ([] after 0.5 s without any); None when stopping."""
        with self._cond:
            if not len(self.outbox) and not self._stopping.is_set():
                self._idle = True
                self._cond.wait(0.5)
                self._idle = False
            if self._stopping.is_set():
                # stopping: what is still pending is not delivered (the actors stop too)
                self.counts["undelivered_at_stop"] = len(self.outbox)
                return None
            if not len(self.outbox):
                return []
            if self._batch_s and len(self.outbox) < 256:
                # let a batch build up: fewer thread switches (the GIL hand-offs between
                # the receiving and the delivering thread dominate otherwise)
                self._cond.wait(self._batch_s)
            return self.outbox.take()
