"""CallRunner: a background thread of the venue for REST calls the actor must not wait for.

The ExecutionActor never waits for a reconciliation read: :meth:`CoinbaseVenue.reconcile` with
``max_calls`` hands each call of a pass to a runner and returns; the call's result is kept by
the venue, and a :class:`~cryptoj.models.VenueCallDone` tells the actor to go on with the pass.
Lookups (``lookup_later``) run on the same runner; the actor's cancels (``cancel_later``) on a
second one with its own connection, so a cancel waits neither for a read nor an order for it.
One thread runs the calls in order (a pass has at most one call in flight); the calls catch
their own errors (the venue hands them back to the actor), so the thread never dies of one,
and anything else is logged.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from loguru import logger

Runner = Callable[[Callable[[], None]], None]
"""Runs a call somewhere (a :class:`CallRunner`, or ``lambda fn: fn()`` inline in tests)."""


class CallRunner:
    """One daemon thread running the calls it is given, in order (started on first use)."""

    def __init__(self, name: str = "coinbase-reconcile", limit: int = 64) -> None:
        self.name = name
        self._calls: queue.Queue[Callable[[], None] | None] = queue.Queue(limit)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the thread, after the calls given before it."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
        self._calls.put(fn, timeout=60)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the calls given so far finish, then end the thread."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._calls.put(None, timeout=timeout_s)
            thread.join(timeout_s)

    def _loop(self) -> None:
        while (fn := self._calls.get()) is not None:
            try:
                fn()
            except Exception:
                logger.exception("{}: a background call failed", self.name)


__all__ = ["CallRunner", "Runner"]
