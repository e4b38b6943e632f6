"""Book snapshots for the feed recorder (``feed.record``), taken on the connections' threads.

Every ``interval_s`` the sampler's own thread asks each connection (through
:meth:`~.connection.FeedConnection.call`, so the book is read on the thread that owns it,
between two frames) to hand the top ``depth`` levels of each of its fresh books to ``sink``
(the recorder's non-blocking ``offer_book``). The cost on a connection thread is one pass over
each book per interval; nothing waits for it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptoj.adapters.coinbase.manager import CoinbaseFeed
    from cryptoj.adapters.coinbase.session import FeedSession

Levels = Sequence[tuple[Decimal, Decimal]]
BookSink = Callable[[str, int, Levels, Levels], object]


class BookSampler:
    """A thread that requests book snapshots at a bounded rate (see the module docstring)."""

    def __init__(
        self,
        feed: CoinbaseFeed,
        sink: BookSink,
        *,
        interval_s: float = 1.0,
        depth: int = 10,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if interval_s <= 0 or depth < 1:
            raise ValueError("interval_s must be > 0 and depth >= 1")
        self.feed = feed
        self.sink = sink
        self.interval_s = interval_s
        self.depth = depth
        self.clock = clock
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="book-sampler", daemon=True)

    def start(self) -> BookSampler:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop sampling (requests already queued on a connection still run)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def sample(self) -> None:
        """Queue one snapshot request on every connection's thread."""
        for conn in self.feed.connections:
            conn.call(
                functools.partial(_offer_books, conn.session, self.sink, self.depth, self.clock)
            )
            self.requests += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()


def _offer_books(
    session: FeedSession, sink: BookSink, depth: int, clock: Callable[[], int]
) -> None:
    now = clock()
    for product, book in session.books.items():
        if session.status.get(product) != "fresh" or 0 in book.depth():
            continue
        bids, asks = book.levels(depth)
        sink(product, now, bids, asks)
