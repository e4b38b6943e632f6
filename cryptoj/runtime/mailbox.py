"""A pykka mailbox that conflates market data per product: bounded however fast it arrives.

When an actor is behind, what waits in its mailbox for one product (from one sender) is kept
to one item of each kind:

* **quotes** (price snapshots): a newer quote replaces the waiting one, which is dropped;
* **trades**: a newer trade is **merged** into the waiting one, which leaves the mailbox: the
  merged trade keeps the newest trade's time, price, side and id and the summed quantity of
  both, so no traded volume is lost (a run of merged trades counts as one tick for tick bars,
  priced at its last trade).

The surviving item joins the end of the mailbox, after everything sent before it. The receiver
then acts on the freshest state instead of working through stale ones, and the mailbox holds at
most one quote and one trade per (sender, product) besides the other messages. Nothing else is
ever dropped, merged or reordered: bars, orders, fills and statuses are delivered one by one, in
order. An actor that keeps up never sees a difference. Dropped quotes and merged trades are
counted (``RuntimeStats.conflated``, ``RuntimeStats.merged_trades``), not traced.

Used by the threaded runtime only; the deterministic runtime delivers every message.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable
from typing import Any

from cryptoj.models.market import Quote, Trade, merge_trades
from cryptoj.runtime.common import Envelope


class _Cell:
    """A conflatable item in the mailbox; ``item`` None once a newer one replaced it."""

    __slots__ = ("item", "key")

    def __init__(self, key: Hashable, item: Any) -> None:
        self.key = key
        self.item: Any = item


def market_key(item: Any) -> Hashable | None:
    """``(sender, product, type)`` for a told :class:`Quote` or :class:`Trade` envelope, else
    None (never conflated)."""
    env = getattr(item, "message", None)
    if type(env) is not Envelope or getattr(item, "reply_to", None) is not None:
        return None
    msg = env.msg
    if type(msg) is Quote or type(msg) is Trade:
        return (env.sender, msg.product, type(msg))
    return None


class ConflatingInbox:
    """A mailbox keeping one waiting quote and one waiting trade per :func:`market_key` (see
    the module docstring): the ``put``/``get``/``empty``/``qsize`` of a ``queue.Queue``.
    ``on_drop(item)`` is called (mailbox lock held) for each quote dropped and each trade
    merged into a newer one.

    Built on ``queue.SimpleQueue`` (implemented in C: a blocked ``get`` wakes on one lock
    release, without ``queue.Queue``'s Python-level condition variable and its lock per wait);
    a replaced item stays in it as an emptied cell that ``get`` skips. A small lock guards the
    bookkeeping (which cell is the newest per key, how many items are live)."""

    def __init__(
        self,
        key: Callable[[Any], Hashable | None] = market_key,
        on_drop: Callable[[Any], None] | None = None,
    ) -> None:
        self._key = key
        self._on_drop = on_drop
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._latest: dict[Hashable, _Cell] = {}
        self._live = 0
        self.conflated = 0  # quotes dropped
        self.merged = 0  # trades merged into a newer one

    def qsize(self) -> int:
        """Items waiting (replaced ones not counted)."""
        return self._live

    def empty(self) -> bool:
        """True when no item is waiting."""
        return self._live == 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item`` at the end, replacing (quote) or merging into itself (trade) the
        waiting one of its key; never blocks (the mailbox is unbounded)."""
        key = self._key(item)
        if key is None:
            with self._lock:
                self._live += 1
                self._items.put(item)
            return
        with self._lock:
            old = self._latest.get(key)
            if old is not None and old.item is not None:
                dropped, old.item = old.item, None
                self._live -= 1
                env = item.message
                if type(env.msg) is Trade:
                    env.msg = merge_trades(dropped.message.msg, env.msg)
                    self.merged += 1
                else:
                    self.conflated += 1
                if self._on_drop is not None:
                    self._on_drop(dropped)
            cell = self._latest[key] = _Cell(key, item)
            self._live += 1
            self._items.put(cell)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The oldest waiting item, waiting for one (``timeout`` as ``queue.Queue.get``)."""
        while True:
            x = self._items.get(block, timeout)
            with self._lock:
                if type(x) is _Cell:
                    item = x.item
                    if item is None:
                        continue  # replaced by a newer one further back
                    x.item = None
                    if self._latest.get(x.key) is x:
                        del self._latest[x.key]
                    x = item
                self._live -= 1
            return x


__all__ = ["ConflatingInbox", "market_key"]
