"""The Coinbase market-data feed: connection shards, failover, REST fallback, delivery.

:class:`CoinbaseFeed` is what the daemon starts. It splits the products into shards of at most
``max_products_per_connection`` (one :class:`FeedConnection` thread each), owns one circuit
breaker per websocket host, the shared connection-rate limiter, the connection-state history,
the REST worker (trade backfill and best bid/ask polling, :mod:`.rest_worker`) and the delivery
thread; :meth:`~CoinbaseFeed.status` reports on them all (its plain-data parts are in
:mod:`.feed_status`).

**The callback.** ``on_event(event)`` receives:

* :class:`~cryptoj.models.market.Quote`: top of book (from the level2 book, else the ticker,
  else REST polling while degraded), at most one per product per ``conflate_ms`` (the newest);
* :class:`~cryptoj.models.market.Trade`: every trade once (deduplicated by trade id, backfilled
  over REST after gaps and reconnects), never conflated;
* :class:`~cryptoj.models.market.FeedStatus`: ``healthy`` (first data), ``stale`` (gap, silence,
  disconnect: do not open positions on these products), ``recovered`` (fresh snapshot in) and
  ``degraded`` (no websocket host available: quotes come from REST polling; treat like stale
  for new entries).

With ``delivery: inline`` (the default) it is called on the connection threads (one per shard;
the events of one product always come from one thread, in order) and on the REST thread, so
it must be thread-safe and must not block: the daemon points it at
``runtime.tell("feed", event)``. With ``delivery: thread`` one delivery thread calls it, in
order; quotes waiting while it is busy are conflated further and, beyond
``max_pending_events`` waiting, trades of a product are merged (for a callback that may block;
see :class:`~.conflate.Conflator`). An exception it raises is logged and counted, never kills
the feed.

Failover: each connection tries the hosts of ``ws_urls`` in order, skipping a host whose circuit
is open; when every circuit is open its products are ``degraded`` and polled over REST until a
half-open probe succeeds. A connection on a failover host returns to the primary after
``failback_s``.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger

from cryptoj.adapters.coinbase.buffer import RawFrameBuffer
from cryptoj.adapters.coinbase.circuit import OPEN, CircuitBreaker
from cryptoj.adapters.coinbase.conflate import FeedEvent
from cryptoj.adapters.coinbase.connection import FeedConnection
from cryptoj.adapters.coinbase.delivery import Delivery
from cryptoj.adapters.coinbase.feed_status import (
    TOTALS,
    buffer_row,
    circuit_rows,
    connection_row,
    flat_metrics,
    sum_dicts,
    worst_latency,
)
from cryptoj.adapters.coinbase.policy import RateLimiter, ReconnectPolicy, StateHistory
from cryptoj.adapters.coinbase.rest import PublicRestClient
from cryptoj.adapters.coinbase.rest_worker import RestWorker
from cryptoj.adapters.coinbase.session import (
    Backfill,
    FeedSession,
    SessionSettings,
)
from cryptoj.config.coinbase import CoinbaseFeedConfig, level2_shards
from cryptoj.models.market import FeedStatus
from cryptoj.supervision.guard import BOARD, ThreadBoard, ThreadGuard
from cryptoj.supervision.spec import Backoff

S = 1_000_000_000
STALL_S = 30.0  # a worker that has not made progress for this long is reported stalled


class CoinbaseFeed:
    """See the module docstring. ``start`` once, ``stop`` once; ``status`` from any thread."""

    def __init__(
        self,
        cfg: CoinbaseFeedConfig,
        products: Sequence[str],
        on_event: Callable[[FeedEvent], None],
        *,
        jwt: Callable[[], str | None] = lambda: None,
        clock: Callable[[], int] = time.time_ns,
        seed: int | None = None,
        rest: PublicRestClient | None = None,
        board: ThreadBoard | None = None,
    ) -> None:
        if not products:
            raise ValueError("CoinbaseFeed: no products to subscribe to")
        self.cfg = cfg
        self.on_event = on_event
        self.clock = clock
        self.rng = random.Random(seed)
        self.board = board if board is not None else BOARD  # thread crashes are counted here
        self.settings = SessionSettings.from_config(cfg)
        self.rest = rest or PublicRestClient(
            cfg.rest_url, ca_file=cfg.ca_file, timeout_s=cfg.rest_timeout_s
        )
        self.buffer = (
            RawFrameBuffer(
                cfg.buffer_dir,
                max_bytes=cfg.buffer_max_bytes,
                segment_bytes=cfg.buffer_segment_bytes,
            )
            if cfg.buffer_dir
            else None
        )
        self.breakers = {
            url: CircuitBreaker(
                cfg.circuit_failures, int(cfg.circuit_open_s * S), int(cfg.circuit_open_max_s * S)
            )
            for url in cfg.ws_urls
        }
        self.limiter = RateLimiter(cfg.connections_per_second)
        self.history = StateHistory()
        self._lock = threading.Lock()  # breakers, limiter, history, degraded
        self._stopping = threading.Event()
        self.degraded: dict[str, str] = {}  # connection name → reason
        self.delivery = Delivery(cfg, on_event, self._stopping)
        self.connections: list[FeedConnection] = []
        for i, shard in enumerate(level2_shards(tuple(products), cfg.max_products_per_connection)):
            events: list[FeedEvent] = []
            session = FeedSession(f"cb{i}", shard, self.settings, events.append, jwt=jwt, log=_log)
            policy = ReconnectPolicy(
                Backoff(
                    int(cfg.backoff_min_s * S),
                    int(max(cfg.backoff_min_s, cfg.backoff_max_s) * S),
                    cfg.backoff_jitter,
                ),
                max_retries=cfg.max_retries,
                reset_after_ns=int(cfg.backoff_reset_s * S),
            )
            self.connections.append(
                FeedConnection(
                    session,
                    self,
                    policy,
                    ca_file=cfg.ca_file,
                    connect_timeout_s=cfg.connect_timeout_s,
                    buffer=self.buffer,
                    events=events,
                    conflate_ns=int(cfg.conflate_ms * 1e6) if cfg.conflate else 0,
                    merge_lag_ns=int(cfg.merge_trades_lag_ms * 1e6),
                    clock=clock,
                    rng=random.Random(self.rng.random()),
                )
            )
        # the REST and delivery workers run under guards (a crash is logged, counted, makes
        # the feed ``restarting`` and the loop restarts after a backoff)
        self.guards = {
            # a REST call may take rest_timeout_s: stalled only well past that
            "rest": ThreadGuard(
                "coinbase-rest",
                "feed",
                board=board,
                stall_after_s=max(STALL_S, 3 * cfg.rest_timeout_s),
            ),
            "delivery": ThreadGuard(
                "coinbase-delivery", "feed", board=board, stall_after_s=STALL_S
            ),
        }
        self._delivery = threading.Thread(
            target=self.guards["delivery"].run,
            args=(
                functools.partial(self.delivery.run, self.guards["delivery"].beat),
                self._stopping,
            ),
            name="coinbase-delivery",
            daemon=True,
        )
        self.rest_worker = RestWorker(
            cfg,
            self.rest,
            clock=clock,
            stopping=self._stopping,
            beat=self.guards["rest"].beat,
            revive=self._revive,
            degraded_products=self._degraded_products,
            put=self._put,
        )
        self.counts = self.rest_worker.counts  # REST polls, failures and trades backfilled
        self._rest_thread = threading.Thread(
            target=self.guards["rest"].run,
            args=(self.rest_worker.run, self._stopping),
            name="coinbase-rest",
            daemon=True,
        )
        self.started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery, REST and connection threads."""
        self.started = True
        self._delivery.start()
        self._rest_thread.start()
        for c in self.connections:
            c.start()
        logger.info(
            "coinbase feed: {} connection(s) for {} product(s) to {}",
            len(self.connections),
            sum(len(c.session.products) for c in self.connections),
            ", ".join(self.cfg.ws_urls),
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close every connection and stop the threads (pending events are not delivered)."""
        deadline = time.monotonic() + timeout_s
        for c in self.connections:
            c.stop()
        for c in self.connections:
            if c.is_alive():
                c.join(max(0.0, deadline - time.monotonic()))
        self._stopping.set()
        self.rest_worker.wake()
        self.delivery.wake()
        for t in (self._rest_thread, self._delivery):
            if t.is_alive():
                t.join(max(0.0, deadline - time.monotonic()))
        if self.buffer is not None:
            self.buffer.close()

    # -- delivery ----------------------------------------------------------------------------

    def _put(self, event: FeedEvent) -> None:
        self.delivery.put(event)

    def deliver(self, events: list[FeedEvent]) -> None:
        """A connection's batch of events: to the callback now (inline) or to the backlog."""
        self.delivery.deliver(events)

    # -- ConnectionHost ----------------------------------------------------------------------

    def choose_url(self, conn: FeedConnection, now: int) -> tuple[str | None, int]:
        """The first host whose circuit allows an attempt; else degrade and wait."""
        with self._lock:
            for url in self.cfg.ws_urls:
                if self.breakers[url].allow(now):
                    return url, 0
            retry = min(b.retry_at() for b in self.breakers.values())
        self._degrade(conn, "every websocket host's circuit is open")
        return None, max(TICK, min(retry - now, S))

    def rate_wait(self, now: int) -> int:
        """Connection-rate limit shared by all connections."""
        with self._lock:
            return self.limiter.reserve(now)

    def attempt_failed(
        self, conn: FeedConnection, url: str, reason: str, was_live: bool, delay_ns: int | None
    ) -> None:
        """Count a failure against the host (unless the connection had gone live); one log line."""
        now = self.clock()
        name = conn.session.name
        with self._lock:
            breaker = self.breakers.get(url) or self.breakers[self.cfg.ws_urls[0]]
            was_open = breaker.state == OPEN
            if not was_live:
                breaker.failure(now, reason)
            opened = breaker.state == OPEN and not was_open
        self.record(conn, "disconnected" if was_live else "failed", reason)
        then = "giving up" if delay_ns is None else f"retrying in {delay_ns / S:.2f}s"
        logger.warning(
            "coinbase feed {}: {} ({}, attempt {}); {}",
            name,
            reason,
            url,
            conn.policy.failures,
            then,
        )
        if opened:
            logger.error(
                "coinbase feed: circuit for {} open after {} failure(s); next probe in {:.0f}s",
                url,
                breaker.failures,
                (breaker.retry_at() - now) / S,
            )
            self.record(conn, "circuit_open", url)

    def went_live(self, conn: FeedConnection, url: str) -> None:
        """Close the host's circuit; leave degraded mode."""
        now = self.clock()
        with self._lock:
            self.breakers[url].success(now)
            was = self.degraded.pop(conn.session.name, None)
        self.record(conn, "live", url)
        if was is not None:
            logger.info(
                "coinbase feed {}: websocket back on {}, REST polling stopped",
                conn.session.name,
                url,
            )
        elif conn.lives > 1:
            logger.info("coinbase feed {}: reconnected to {}", conn.session.name, url)

    def crashed(self, conn: FeedConnection, error: BaseException) -> None:
        """A connection's loop raised: one error line with the traceback (through loguru, not
        stderr), the process-wide thread-crash counter and the state history. The connection
        marks its products stale and restarts."""
        self.board.count(conn.name)
        logger.opt(exception=error).error(
            "coinbase feed {}: connection thread crashed ({} so far), restarting: {}: {}",
            conn.session.name,
            conn.crashes,
            type(error).__name__,
            error,
        )
        self.record(conn, "crashed", f"{type(error).__name__}: {error}"[:200])

    def gave_up(self, conn: FeedConnection, reason: str) -> None:
        """The connection stopped retrying: its products stay degraded."""
        logger.error(
            "coinbase feed {}: giving up after {} consecutive failures: {}",
            conn.session.name,
            conn.policy.failures,
            reason,
        )
        self.record(conn, "gave_up", reason)
        self._degrade(conn, f"gave up: {reason}")

    def record(self, conn: FeedConnection, state: str, reason: str = "") -> None:
        """Add to the state history."""
        with self._lock:
            self.history.record(self.clock(), conn.session.name, state, reason)

    def backfill(self, conn: FeedConnection, request: Backfill) -> None:
        """Queue a REST backfill of missed trades."""
        self.rest_worker.backfill(conn, request)

    def should_failback(self, conn: FeedConnection, url: str, now: int) -> bool:
        """On a failover host for ``failback_s``, and the primary's circuit allows a try."""
        primary = self.cfg.ws_urls[0]
        if url == primary or not self.cfg.failback_s:
            return False
        with self._lock:
            since = self.history.current.get(conn.session.name)
            live_for = now - since.ts if since is not None and since.state == "live" else 0
            return live_for >= self.cfg.failback_s * S and self.breakers[primary].would_allow(now)

    def _degrade(self, conn: FeedConnection, reason: str) -> None:
        with self._lock:
            if conn.session.name in self.degraded:
                return
            self.degraded[conn.session.name] = reason
        products = conn.session.products
        self.record(conn, "degraded", reason)
        how = (
            f"polling best bid/ask over REST every {self.cfg.rest_poll_interval_s:g}s"
            if self.cfg.rest_poll
            else "no data"
        )
        logger.error("coinbase feed {} degraded ({}): {}", conn.session.name, reason, how)
        self._put(FeedStatus(ts=self.clock(), products=products, state="degraded", reason=reason))

    def _degraded_products(self) -> list[str]:
        """The products of the degraded connections (the REST worker polls them)."""
        with self._lock:
            names = set(self.degraded)
        return [p for c in self.connections if c.session.name in names for p in c.session.products]

    # -- observation -------------------------------------------------------------------------

    def book_digest(self, product: str, timeout_s: float = 2.0) -> tuple[str, str, bool] | None:
        """``(last event_time, digest, fresh)`` of a product's book, read on its own thread."""
        for c in self.connections:
            if product in c.session.books:
                result: tuple[str, str, bool] = c.call(
                    functools.partial(_read_book, c.session, product)
                ).result(timeout_s)
                return result
        return None

    def _snapshots(self, timeout_s: float) -> list[tuple[dict[str, Any], bool]]:
        """Each connection's session snapshot, taken on the connection's own thread.

        ``(snapshot, True)``; or ``(last published snapshot, False)`` when the thread does not
        get to it within ``timeout_s`` (it is connecting). Sessions are never read from here.
        """
        me = threading.current_thread()
        futures = [None if c is me else c.call(c.publish) for c in self.connections]
        deadline = time.monotonic() + timeout_s
        out: list[tuple[dict[str, Any], bool]] = []
        for c, fut in zip(self.connections, futures, strict=True):
            if fut is None:
                out.append((c.publish(), True))
                continue
            try:
                out.append((fut.result(max(0.0, deadline - time.monotonic())), True))
            except TimeoutError:
                out.append((c.published, False))
        return out

    def _revive(self) -> None:
        """Replace a connection thread that ended on its own (its guard catches every
        ``Exception``, so only something like ``SystemExit`` gets here): its products go stale,
        one error line, and a new thread serves the same session (at the connection-rate
        limit)."""
        for i, c in enumerate(self.connections):
            if self._stopping.is_set() or c.is_alive() or c.stopping or c.gave_up:
                continue
            if c.ident is None:  # never started
                continue
            c.crashes += 1
            c.session.counts["thread_crashes"] += 1
            self.board.count(c.name)
            c.drop_socket()
            c.session.closed("connection thread ended", self.clock())  # its thread is gone
            logger.error(
                "coinbase feed {}: connection thread ended on its own; starting a new one",
                c.session.name,
            )
            self.record(c, "crashed", "thread ended")
            new = c.successor()
            new.restarting = True
            new.flush()  # the stale statuses go out now (neither thread runs)
            self.connections[i] = new
            new.start()

    def _dead(self) -> list[str]:
        """Connections whose thread ended although nobody stopped it and it did not give up."""
        return [
            c.session.name
            for c in self.connections
            if self.started and not c.is_alive() and not c.stopping and not c.gave_up
        ]

    def _workers_restarting(self) -> list[str]:
        """The REST and delivery workers that crashed and are not running again yet."""
        return [
            g.name for g in self.guards.values() if g.effective_state() in ("restarting", "dead")
        ]

    def _state(self, snaps: Sequence[dict[str, Any]], degraded: bool) -> str:
        if self._stopping.is_set():
            return "stopped"
        if self._dead():
            return "down"
        if any(c.restarting for c in self.connections) or self._workers_restarting():
            return "restarting"
        if degraded:
            return "degraded"
        if any(s["stale"] for s in snaps):
            return "stale"
        if all(s["live"] for s in snaps):
            return "healthy"
        return "connecting"

    def state(self, timeout_s: float = 0.5) -> str:
        """``healthy``, ``stale``, ``degraded``, ``connecting``, ``restarting`` (a connection
        thread crashed and is not live again yet), ``down`` (a connection thread ended on its
        own) or ``stopped``."""
        with self._lock:
            degraded = bool(self.degraded)
        return self._state([s for s, _ in self._snapshots(timeout_s)], degraded)

    def status(self, timeout_s: float = 0.5) -> dict[str, Any]:
        """Everything an operator needs: state, connections, circuits, history, counters,
        latencies (plain data, safe to serialise; callable from any thread).

        Each connection's figures are read on its own thread (``timeout_s``, see
        :meth:`_snapshots`); the manager's own state under its lock.
        """
        snaps = self._snapshots(timeout_s)
        now = self.clock()
        primary = self.cfg.ws_urls[0]
        with self._lock:
            circuits = circuit_rows(self.breakers)
            history = self.history.as_list()
            current = {name: c.as_dict() for name, c in self.history.current.items()}
            state_counts = dict(self.history.counts)
            degraded = dict(self.degraded)
        delivered = self.delivery.status()
        totals = dict.fromkeys(TOTALS, 0)
        conns = []
        for c, (snap, fresh) in zip(self.connections, snaps, strict=True):
            for k in TOTALS:
                totals[k] += int(snap.get(k, 0))
            name = c.session.name
            conns.append(
                connection_row(
                    c,
                    snap,
                    fresh,
                    primary=primary,
                    current=current.get(name),
                    degraded=name in degraded,
                )
            )
        plain = [s for s, _ in snaps]
        ages = [float(a) for s in plain if (a := s["heartbeat_age_s"]) is not None]
        return {
            "state": self._state(plain, bool(degraded)),
            "ts": now,
            "connected": any(
                s["live"] and c.is_alive() for c, s in zip(self.connections, plain, strict=True)
            ),
            "reconnects": sum(max(0, c.lives - 1) for c in self.connections),
            "messages": totals["frames"],
            "gaps": totals["gaps"],
            "resyncs": totals["resyncs"],
            "stale_products": sorted({p for s in plain for p in s["stale"]}),
            "dropped": sum_dicts(s["dropped_by_reason"] for s in plain),
            "thread_crashes": sum(c.crashes for c in self.connections),
            "restarting": [c.session.name for c in self.connections if c.restarting]
            + self._workers_restarting(),
            "workers": {g.name: g.describe() for g in self.guards.values()},
            "dead_threads": self._dead(),
            "heartbeat_age_s": max(ages) if ages else None,
            "rest_polling": bool(degraded) and self.cfg.rest_poll,
            "latency": {kind: worst_latency(conns, kind) for kind in ("rtt", "lag")},
            "totals": totals,
            "delivery": {
                **self.counts,
                **delivered,
                "conflated": delivered["conflated"]
                + sum(c.window.conflated for c in self.connections),
                "merged_trades": delivered["merged_trades"]
                + sum(c.window.merged for c in self.connections),
            },
            "degraded": degraded,
            "circuits": circuits,
            "connections": conns,
            "history": history,
            "state_counts": state_counts,
            "buffer": buffer_row(self.buffer),
        }

    def metrics(self) -> dict[str, float]:
        """Flat numbers (``cryptoj_feed_<name>``); the daemon's Prometheus families are built
        from :meth:`status` by :func:`cryptoj.ops.feed.live_families`."""
        return flat_metrics(self.status())


TICK = 100_000_000


def _read_book(session: FeedSession, product: str) -> tuple[str, str, bool]:
    book = session.books[product]
    return book.last_event_time, book.digest(), session.status[product] == "fresh"


def _log(level: str, text: str) -> None:
    logger.log(level.upper(), "coinbase feed {}", text)


__all__ = ["CoinbaseFeed", "FeedEvent"]
