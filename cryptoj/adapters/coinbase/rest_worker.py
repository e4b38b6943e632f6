"""The Coinbase feed's REST worker: one thread (run under a guard by
:class:`~.manager.CoinbaseFeed`) that backfills missed trades after gaps and reconnects, and
polls the best bid/ask of the products of degraded connections while no websocket host is
available."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from loguru import logger

from cryptoj.adapters.coinbase.actions import Backfill
from cryptoj.adapters.coinbase.conflate import FeedEvent
from cryptoj.adapters.coinbase.connection import FeedConnection
from cryptoj.adapters.coinbase.rest import PublicRestClient, RestError
from cryptoj.config.coinbase import CoinbaseFeedConfig
from cryptoj.models.market import Trade


class RestWorker:
    """Backfills queued by the connections and REST polling; :meth:`run` is the thread's loop.

    ``degraded_products`` names the products to poll (those of degraded connections),
    ``put`` delivers a polled quote, ``revive`` replaces connection threads that ended, once
    per loop; ``beat`` tells the thread's guard it made progress.
    """

    def __init__(
        self,
        cfg: CoinbaseFeedConfig,
        rest: PublicRestClient,
        *,
        clock: Callable[[], int],
        stopping: threading.Event,
        beat: Callable[[], None],
        revive: Callable[[], None],
        degraded_products: Callable[[], list[str]],
        put: Callable[[FeedEvent], None],
    ) -> None:
        self.cfg = cfg
        self.rest = rest
        self.clock = clock
        self.stopping = stopping
        self.beat = beat
        self.revive = revive
        self.degraded_products = degraded_products
        self.put = put
        self.counts = {"rest_polls": 0, "rest_failures": 0, "backfilled": 0}
        self.polled: dict[str, tuple[object, ...]] = {}  # product → the last quote delivered
        self._backfills: list[tuple[FeedConnection, Backfill]] = []
        self._lock = threading.Lock()  # the backfill queue
        self._wake = threading.Event()
        self._failing = False

    def backfill(self, conn: FeedConnection, request: Backfill) -> None:
        """Queue a REST backfill of ``conn``'s missed trades (any thread)."""
        with self._lock:
            self._backfills.append((conn, request))
        self._wake.set()

    def wake(self) -> None:
        """Make :meth:`run` look at ``stopping`` and its queue now."""
        self._wake.set()

    def run(self) -> None:
        """The loop: revive, backfill what is queued, poll when due; until ``stopping``."""
        interval = self.cfg.rest_poll_interval_s
        next_poll = time.monotonic()
        beat = self.beat
        while not self.stopping.is_set():
            self.revive()
            beat()
            with self._lock:
                jobs, self._backfills = self._backfills, []
            for conn, req in jobs:
                self._run_backfill(conn, req)
            wait = 0.5
            if self.cfg.rest_poll:
                now = time.monotonic()
                if now >= next_poll:
                    next_poll = now + interval
                    self._poll()
                wait = min(wait, max(0.01, next_poll - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()

    def _run_backfill(self, conn: FeedConnection, req: Backfill) -> None:
        trades: list[Trade] = []
        for product, since in req.since:
            self.beat()  # progress: one REST call per product
            try:
                trades += [
                    t
                    for t in self.rest.market_trades(product, self.cfg.backfill_limit)
                    if t.ts >= since  # the same instant again: deduplicated by trade id
                ]
            except RestError as e:
                logger.warning(
                    "coinbase feed {}: trade backfill of {} failed: {}",
                    conn.session.name,
                    product,
                    e,
                )
        if trades:
            fut = conn.call(lambda: conn.session.backfilled(trades, self.clock()))
            fut.add_done_callback(self._count_backfill)

    def _count_backfill(self, fut: Future[Any]) -> None:
        if fut.exception() is None:
            self.counts["backfilled"] += int(fut.result())

    def _poll(self) -> None:
        for p in self.degraded_products():
            self.beat()
            try:
                q = self.rest.best_bid_ask(p)
            except RestError as e:
                self.counts["rest_failures"] += 1
                if not self._failing:
                    logger.warning("coinbase feed: REST polling failed: {}", e)
                self._failing = True
                return
            self._failing = False
            self.counts["rest_polls"] += 1
            if q is not None and self.polled.get(p) != (q.bid, q.bid_size, q.ask, q.ask_size):
                self.polled[p] = (q.bid, q.bid_size, q.ask, q.ask_size)
                self.put(q)
