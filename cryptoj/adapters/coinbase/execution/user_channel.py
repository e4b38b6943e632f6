"""The authenticated ``user`` websocket channel: order updates pushed to the venue.

Two parts, like the market-data feed:

* :class:`UserSession` (pure, sans-I/O): what to send on connect (``subscribe heartbeats``, then
  ``subscribe user``, each with a **fresh** websocket JWT), what a frame means (order updates,
  the subscription acknowledgement that makes the channel *live*, ``sequence_num`` gaps, error
  frames) and when to give up on a connection (no frame for ``stale_after_ns``: heartbeats come
  every second; no acknowledgement within ``ack_timeout_ns``).
* :class:`UserChannel` (a daemon thread on ``websocket-client``): connects, runs the session,
  hands updates to ``on_updates``, reports every time the channel goes live (``on_live`` with the
  count of connections so far) and every gap (``on_gap``), and reconnects with exponential
  backoff and jitter (:class:`~cryptoj.supervision.spec.Backoff`) until stopped.

The venue reconciles over REST on every ``on_live`` and ``on_gap`` (protocol notes §4.4: the user
channel guarantees nothing across a reconnect). Updates carry **cumulative** quantities; the
order state machine (:mod:`.orders`) makes replays and duplicates harmless.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import websocket
from loguru import logger

from cryptoj.adapters.coinbase.execution.orders import OrderUpdate
from cryptoj.adapters.coinbase.execution.schemas import (
    Frame,
    UserEvent,
    UserOrder,
    convert,
    dec,
    reason_text,
)
from cryptoj.supervision.guard import ThreadGuard, clean_text
from cryptoj.supervision.spec import Backoff

_TEXT = (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY)
_CLOSE = websocket.ABNF.OPCODE_CLOSE
_FRAME = msgspec.json.Decoder(Frame)


def user_update(o: UserOrder) -> OrderUpdate | None:
    """A ``UserOrder`` as an :class:`OrderUpdate` (None without an order id and client id)."""
    if not o.order_id or not o.client_order_id:
        return None
    return OrderUpdate(
        venue_order_id=o.order_id,
        client_order_id=o.client_order_id,
        status=(o.status or "").upper(),
        filled_size=dec(o.cumulative_quantity),
        filled_value=dec(o.filled_value),
        total_fees=dec(o.total_fees),
        average_price=dec(o.avg_price),
        reason=reason_text(o.reject_reason, o.cancel_reason),
        source="user",
    )


@dataclass
class FrameResult:
    """What one frame meant."""

    updates: list[OrderUpdate] = field(default_factory=list)
    went_live: bool = False
    gap: bool = False
    error: str = ""


class UserSession:
    """The protocol of one user-channel connection (see the module docstring)."""

    def __init__(
        self,
        jwt: Callable[[], str | None],
        *,
        stale_after_ns: int = 10_000_000_000,
        ack_timeout_ns: int = 5_000_000_000,
    ) -> None:
        self.jwt = jwt
        self.stale_after_ns = stale_after_ns
        self.ack_timeout_ns = ack_timeout_ns
        self.live = False
        self.opened_ns = 0
        self.last_frame_ns = 0
        self.last_seq: int | None = None
        self.frames = 0
        self.bad_frames = 0
        self.gaps = 0

    def opened(self, now: int) -> list[str]:
        """The connection is open: the subscribe messages to send, in order."""
        self.live = False
        self.opened_ns = self.last_frame_ns = now
        self.last_seq = None
        out = []
        for channel in ("heartbeats", "user"):
            msg: dict[str, Any] = {"type": "subscribe", "channel": channel, "product_ids": []}
            token = self.jwt()
            if token:
                msg["jwt"] = token
            out.append(json.dumps(msg))
        return out

    def frame(self, data: bytes | str, now: int) -> FrameResult:
        """Interpret one text frame."""
        self.last_frame_ns = now
        self.frames += 1
        out = FrameResult()
        try:
            f = _FRAME.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            self.bad_frames += 1
            out.error = f"unreadable frame: {e}"
            return out
        if f.type == "error":
            out.error = f"error frame: {f.message or 'no message'}"
            return out
        if f.sequence_num is not None:
            if self.last_seq is not None and f.sequence_num > self.last_seq + 1:
                self.gaps += 1
                out.gap = True
            if self.last_seq is None or f.sequence_num > self.last_seq:
                self.last_seq = f.sequence_num
        if f.channel == "subscriptions":
            for ev in f.events:
                subs = ev.get("subscriptions") if isinstance(ev, dict) else None
                if isinstance(subs, dict) and "user" in subs and not self.live:
                    self.live = True
                    out.went_live = True
        elif f.channel == "user":
            for ev in f.events:
                try:
                    event = convert(ev, UserEvent)
                except msgspec.ValidationError:
                    self.bad_frames += 1
                    continue
                for order in event.orders:
                    u = user_update(order)
                    if u is not None:
                        out.updates.append(u)
        return out

    def tick(self, now: int) -> str:
        """A reason to reconnect now, or ''."""
        if not self.live and now - self.opened_ns > self.ack_timeout_ns:
            return "the user subscription was not acknowledged in time"
        if now - self.last_frame_ns > self.stale_after_ns:
            return f"no frame for {(now - self.last_frame_ns) / 1e9:.1f}s"
        return ""


class UserChannel(threading.Thread):
    """The user-channel connection thread (see the module docstring).

    Its loop runs under a :class:`~cryptoj.supervision.guard.ThreadGuard`: an exception that
    escapes it (a failing callback, a token that cannot be made) is logged with its traceback,
    counted, marks the thread ``restarting`` (``/health``, ``/ready``) and the loop reconnects
    after a backoff. Every connect, disconnect, subscription (and resubscription after a
    reconnect) and sequence gap leaves one log line (gaps and unreadable frames at most one
    line per ``LOG_EVERY_S`` with the count in between); never a token or key.
    """

    LOG_EVERY_S = 10.0

    def __init__(
        self,
        url: str,
        jwt: Callable[[], str | None],
        *,
        on_updates: Callable[[list[OrderUpdate]], None],
        on_live: Callable[[int], None],
        on_gap: Callable[[], None],
        ca_file: str | None = None,
        connect_timeout_s: float = 5.0,
        stale_after_s: float = 10.0,
        backoff: Backoff | None = None,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        guard: ThreadGuard | None = None,
    ) -> None:
        super().__init__(name="coinbase-user", daemon=True)
        self.url = url
        self.session = UserSession(jwt, stale_after_ns=int(stale_after_s * 1e9))
        self.on_updates = on_updates
        self.on_live = on_live
        self.on_gap = on_gap
        self.ca_file = ca_file
        self.connect_timeout_s = connect_timeout_s
        self.backoff = backoff or Backoff(500_000_000, 30_000_000_000, 0.2, 60_000_000_000)
        self.clock = clock
        self.rng = rng or random.Random()
        # a connect may take connect_timeout_s; the reconnect wait beats every second
        self.guard = guard or ThreadGuard(
            "coinbase-user", "venue", stall_after_s=max(30.0, 3 * connect_timeout_s)
        )
        self.guard.on_crash = self._crashed
        self._stopping = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self.connects = 0  # connection attempts
        self.lives = 0  # connections that reached live
        self.failures = 0  # consecutive failed attempts
        self.last_reason = ""
        self.live_since_ns: int | None = None
        self.down_since_ns: int | None = None
        self._where = _safe_url(url)
        self._gap_log = _Throttle(self.LOG_EVERY_S)
        self._bad_log = _Throttle(self.LOG_EVERY_S)

    @property
    def is_live(self) -> bool:
        """True while subscribed."""
        return self.live_since_ns is not None

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close the connection and end the thread."""
        self._stopping.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to close
                ws.shutdown()
        if self.is_alive():
            self.join(timeout_s)

    def run(self) -> None:
        """The guarded loop (see the class docstring)."""
        self.down_since_ns = self.clock()
        self.guard.run(self._loop, self._stopping)
        logger.info("coinbase user channel: stopped")

    def _loop(self) -> None:
        """Connect, serve, back off, repeat until stopped."""
        while not self._stopping.is_set():
            self.connects += 1
            try:
                ws = self._connect()
            except Exception as e:
                self.guard.beat()  # the loop works; the venue does not answer
                self._down(f"connect failed: {_describe(e)}")
                continue
            self._ws = ws
            logger.info(
                "coinbase user channel: connected to {} (attempt {}), subscribing",
                self._where,
                self.connects,
            )
            try:
                reason = self._serve(ws)
            finally:
                self._ws = None
                with contextlib.suppress(Exception):  # closing a broken socket
                    ws.shutdown()
            if self._stopping.is_set():
                break
            self._down(reason)

    def _crashed(self, error: BaseException) -> None:
        """After the guard logged a crash: the channel is down (the guard restarts it)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.shutdown()
        self.last_reason = _clean(f"thread crashed: {_describe(error)}")
        self.live_since_ns = None
        if self.down_since_ns is None:
            self.down_since_ns = self.clock()

    def _connect(self) -> websocket.WebSocket:
        sslopt: dict[str, Any] = {"ca_certs": self.ca_file} if self.ca_file else {}
        return websocket.create_connection(
            self.url,
            timeout=self.connect_timeout_s,
            sslopt=sslopt,
            skip_utf8_validation=True,
            enable_multithread=True,
        )

    def _down(self, reason: str) -> None:
        reason = _clean(reason)
        self.last_reason = reason
        was_live = self.live_since_ns
        if was_live is not None:
            self.failures = 0
        self.live_since_ns = None
        now = self.clock()
        if self.down_since_ns is None:
            self.down_since_ns = now
        delay_ns = self.backoff.delay_ns(self.failures, self.rng.random())
        self.failures += 1
        if was_live is not None:
            logger.warning(
                "coinbase user channel: disconnected after {:.1f}s live: {}; reconnecting in "
                "{:.2f}s",
                (now - was_live) / 1e9,
                reason,
                delay_ns / 1e9,
            )
        else:  # the backoff spaces these lines out (at most one per 30 s after a while)
            logger.warning(
                "coinbase user channel: {} ({}, attempt {}); retrying in {:.2f}s",
                reason,
                self._where,
                self.failures,
                delay_ns / 1e9,
            )
        end = time.monotonic() + delay_ns / 1e9
        while (left := end - time.monotonic()) > 0 and not self._stopping.wait(min(left, 1.0)):
            self.guard.beat()

    def _serve(self, ws: websocket.WebSocket) -> str:
        session, beat = self.session, self.guard.beat
        try:
            for text in session.opened(self.clock()):
                ws.send(text)
        except (OSError, websocket.WebSocketException) as e:
            return f"subscribe failed: {_describe(e)}"
        ws.settimeout(0.2)
        while not self._stopping.is_set():
            try:
                opcode, frame = ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                opcode, frame = None, None
            except (OSError, websocket.WebSocketException) as e:
                return f"connection lost: {_describe(e)}"
            now = self.clock()
            if opcode in _TEXT:
                before, bad = session.last_seq, session.bad_frames
                result = session.frame(frame.data, now)
                if result.error.startswith("error frame"):
                    return result.error
                if session.bad_frames > bad:
                    self._bad_frame(result.error or "an event that does not parse")
                if result.updates:
                    self.on_updates(result.updates)
                if result.went_live:
                    self.lives += 1
                    self.failures = 0
                    self.live_since_ns = now
                    self.down_since_ns = None
                    if self.lives == 1:
                        logger.info("coinbase user channel: subscribed, live")
                    else:
                        logger.info(
                            "coinbase user channel: resubscribed after a reconnect (connection "
                            "{}); reconciling orders over REST",
                            self.lives,
                        )
                    self.on_live(self.lives)
                if result.gap:
                    self._gap(before, session.last_seq)
                    self.on_gap()
            elif opcode == _CLOSE:
                return "closed by the server"
            reason = session.tick(now)
            if reason:
                return reason
            beat()
        return "stopped"

    def _gap(self, before: int | None, after: int | None) -> None:
        if (n := self._gap_log.due(time.monotonic())) is not None:
            logger.warning(
                "coinbase user channel: sequence gap ({} -> {}), reconciling orders over REST "
                "({} gap(s) since the last line)",
                before,
                after,
                n,
            )

    def _bad_frame(self, error: str) -> None:
        if (n := self._bad_log.due(time.monotonic())) is not None:
            logger.warning(
                "coinbase user channel: dropped {} ({} unreadable frame(s) since the last line)",
                _clean(error),
                n,
            )


class _Throttle:
    """At most one log line per ``every_s``: :meth:`due` counts an occurrence and returns how
    many there were since the last line when a line is due now, else None."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last: float | None = None
        self.pending = 0

    def due(self, now: float) -> int | None:
        self.pending += 1
        if self.last is not None and now - self.last < self.every_s:
            return None
        n, self.pending, self.last = self.pending, 0, now
        return n


def _clean(text: str) -> str:
    """A reason fit for the log: bounded, with anything shaped like a token taken out."""
    return clean_text(text)


def _safe_url(url: str) -> str:
    """The URL without any user information."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if type(e).__name__ in text else f"{type(e).__name__}: {text}"


__all__ = ["FrameResult", "UserChannel", "UserSession", "user_update"]
