"""A pykka mailbox that conflates quotes: only the newest waiting quote per product is kept.

A quote is a price snapshot: when an actor is behind and a newer quote of the same product
(from the same sender) arrives while the older one still waits, the older one is dropped and the
newer one joins the end of the mailbox, after everything sent before it. The receiver then acts
on the freshest price instead of working through stale ones (each of which may cost it work:
marking, journalling the equity, stop-loss checks). Nothing else is ever dropped or reordered:
trades, bars, orders, fills and statuses are delivered one by one, in order. An actor that keeps
up never sees a difference. Dropped quotes are counted (``RuntimeStats.conflated``), not traced.

Used by the threaded runtime only; the deterministic runtime delivers every message.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from cryptoj.models.market import Quote
from cryptoj.runtime.common import Envelope


class _Cell:
    """A conflatable item in the mailbox; ``item`` None once a newer one replaced it."""

    __slots__ = ("item", "key")

    def __init__(self, key: Hashable, item: Any) -> None:
        self.key = key
        self.item: Any = item


def quote_key(item: Any) -> Hashable | None:
    """``(sender, product)`` for a told :class:`Quote` envelope, else None (never conflated)."""
    env = getattr(item, "message", None)
    if type(env) is not Envelope or getattr(item, "reply_to", None) is not None:
        return None
    msg = env.msg
    return (env.sender, msg.product) if type(msg) is Quote else None


class ConflatingInbox(queue.Queue[Any]):
    """``queue.Queue`` keeping only the newest waiting item per :func:`quote_key`."""

    def __init__(
        self,
        key: Callable[[Any], Hashable | None] = quote_key,
        on_drop: Callable[[Any], None] | None = None,
    ) -> None:
        self._key = key
        self._on_drop = on_drop
        super().__init__()

    # queue.Queue calls these with its mutex held

    def _init(self, maxsize: int) -> None:
        self.queue: deque[Any] = deque()
        self._latest: dict[Hashable, _Cell] = {}
        self._live = 0
        self.conflated = 0

    def _qsize(self) -> int:
        return self._live

    def _put(self, item: Any) -> None:
        key = self._key(item)
        if key is None:
            self.queue.append(item)
        else:
            old = self._latest.get(key)
            if old is not None and old.item is not None:
                dropped, old.item = old.item, None
                self._live -= 1
                self.conflated += 1
                if self._on_drop is not None:
                    self._on_drop(dropped)
            cell = self._latest[key] = _Cell(key, item)
            self.queue.append(cell)
        self._live += 1

    def _get(self) -> Any:
        while True:
            x = self.queue.popleft()
            if type(x) is not _Cell:
                break
            if x.item is None:
                continue  # replaced by a newer one further back
            if self._latest.get(x.key) is x:
                del self._latest[x.key]
            x = x.item
            break
        self._live -= 1
        return x


__all__ = ["ConflatingInbox", "quote_key"]
