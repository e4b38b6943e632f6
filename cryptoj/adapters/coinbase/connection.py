"""One websocket connection thread: websocket-client I/O around a :class:`FeedSession`.

The thread connects (host chosen by the manager's circuit breakers, under the shared
connection-rate limit; websocket-client does the handshake and the sending), lets the session
subscribe, then reads the socket in chunks with a 100 ms timeout, so the session's watchdogs run
even when nothing arrives; :class:`~.frames.FrameReader` cuts each chunk into messages (one
socket read per TLS record instead of three per frame: each read releases the GIL; a frame over
``max_frame_bytes`` is skipped unread and reported to the session as ``oversize``). Every text
frame is written to the raw-frame buffer (if configured) and handed to the session; the events
of a chunk's frames are passed on together; the actions the session returns are executed here
(sends, pings, reconnects, REST backfill requests); a ping is answered with a pong. After
a failure or a lost connection it backs off (:class:`ReconnectPolicy`) and tries again, until
stopped or until ``max_retries`` consecutive attempts failed.

Other threads talk to it only through :meth:`FeedConnection.call`: the function runs on this
thread between two frames (used for REST backfill results, for reading the books and for the
session's status snapshot, :meth:`FeedConnection.publish`). The last snapshot also stays in
:attr:`FeedConnection.published` for readers that cannot wait (the thread is connecting).
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

import websocket

from cryptoj.adapters.coinbase.buffer import RawFrameBuffer
from cryptoj.adapters.coinbase.conflate import FeedEvent, QuoteWindow
from cryptoj.adapters.coinbase.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_OVERSIZE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    WebSocketProtocolError,
)
from cryptoj.adapters.coinbase.policy import ReconnectPolicy
from cryptoj.adapters.coinbase.session import (
    Action,
    Backfill,
    FeedSession,
    Ping,
    Reconnect,
    Send,
)

TICK_NS = 100_000_000
FLUSH_NS = 1_000_000_000
CHUNK_BYTES = 1 << 18  # per socket read (TLS returns at most one record, ~16 KB, per read)
BATCH_BYTES = 1 << 17  # what is already waiting is read on up to this, and handled as one batch
CLOSE_WAIT_S = 0.2  # after our close frame: how long the server's is awaited
_TEXT = (OP_TEXT, OP_BINARY)
_PING, _PONG, _CLOSE, _OVERSIZE = OP_PING, OP_PONG, OP_CLOSE, OP_OVERSIZE


class ConnectionHost(Protocol):
    """What a connection needs from the feed manager."""

    def choose_url(self, conn: FeedConnection, now: int) -> tuple[str | None, int]:
        """A host to try now, or (None, ns to wait) when every host's circuit is open."""
        ...

    def rate_wait(self, now: int) -> int:
        """ns to wait before connecting (connection-rate limit)."""
        ...

    def attempt_failed(
        self, conn: FeedConnection, url: str, reason: str, was_live: bool, delay_ns: int | None
    ) -> None:
        """An attempt failed or a connection was lost (breakers, one log line, history)."""
        ...

    def went_live(self, conn: FeedConnection, url: str) -> None:
        """All subscriptions were acknowledged."""
        ...

    def crashed(self, conn: FeedConnection, error: BaseException) -> None:
        """The connection's loop raised: log it with its traceback, record it."""
        ...

    def gave_up(self, conn: FeedConnection, reason: str) -> None:
        """``max_retries`` consecutive attempts failed: the connection stops."""
        ...

    def record(self, conn: FeedConnection, state: str, reason: str = "") -> None:
        """Add to the connection-state history."""
        ...

    def deliver(self, events: list[FeedEvent]) -> None:
        """Hand a batch of the session's events to the delivery thread (copies them)."""
        ...

    def backfill(self, conn: FeedConnection, request: Backfill) -> None:
        """Fetch missed trades over REST and hand them back through ``conn.call``."""
        ...

    def should_failback(self, conn: FeedConnection, url: str, now: int) -> bool:
        """Whether a connection on a failover host should go back to the primary now."""
        ...


class FeedConnection(threading.Thread):
    """See the module docstring."""

    def __init__(
        self,
        session: FeedSession,
        host: ConnectionHost,
        policy: ReconnectPolicy,
        *,
        ca_file: str | None = None,
        connect_timeout_s: float = 5.0,
        buffer: RawFrameBuffer | None = None,
        events: list[FeedEvent] | None = None,
        conflate_ns: int = 0,
        merge_lag_ns: int = 0,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(name=f"coinbase-{session.name}", daemon=True)
        self.session = session
        self.host = host
        self.policy = policy
        self.ca_file = ca_file
        self.connect_timeout_s = connect_timeout_s
        self.buffer = buffer
        self.events = events if events is not None else []  # the session's emit appends here
        self.window = QuoteWindow(conflate_ns, merge_lag_ns)
        self.clock = clock
        self.rng = rng or random.Random()
        self.url: str | None = None
        self.live_url: str | None = None
        self.lives = 0  # connections that reached live
        self.crashes = 0  # exceptions that escaped the loop (each one restarted it)
        self.restarting = False  # crashed, and not live again yet
        self.gave_up = False
        self._ws: websocket.WebSocket | None = None
        self._stopping = threading.Event()
        self._clean = True
        self._inbox: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        # the session's last snapshot, for readers the thread cannot answer in time (it is
        # connecting): replaced as a whole, never mutated
        self.published: dict[str, Any] = session.snapshot()

    # -- control from other threads ----------------------------------------------------------

    def stop(self) -> None:
        """Ask the thread to close its connection and end (within about 100 ms)."""
        self._stopping.set()

    def drop_socket(self) -> None:
        """Shut the socket of the connection being served down (after a crash)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):  # a broken socket: nothing left to do
                ws.shutdown()

    def successor(self) -> FeedConnection:
        """A new thread for the same session, policy and event list (this one has ended)."""
        new = FeedConnection(
            self.session,
            self.host,
            self.policy,
            ca_file=self.ca_file,
            connect_timeout_s=self.connect_timeout_s,
            buffer=self.buffer,
            events=self.events,
            clock=self.clock,
            rng=self.rng,
        )
        new.window = self.window
        new.url, new.live_url, new.lives = self.url, self.live_url, self.lives
        new.crashes = self.crashes
        return new

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping.is_set()

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on this thread between two frames; the future holds its result."""
        fut: Future[Any] = Future()
        if not self.is_alive():
            try:
                fut.set_result(fn())
            except Exception as e:
                fut.set_exception(e)
            return fut
        self._inbox.append((fn, fut))
        return fut

    def publish(self) -> dict[str, Any]:
        """The session's snapshot, taken on this thread (through :meth:`call` from others);
        kept as :attr:`published`."""
        snap = self.session.snapshot(self.clock())
        self.published = snap
        return snap

    def _run_inbox(self) -> None:
        while self._inbox:
            fn, fut = self._inbox.popleft()
            try:
                fut.set_result(fn())
            except Exception as e:
                fut.set_exception(e)
        self._flush()

    def flush(self) -> None:
        """Hand on what the session emitted (only from the thread that owns the session)."""
        self._flush()

    def _flush(self) -> None:
        """Pass the session's events (one batch per socket read) through the quote window on."""
        window = self.window
        if self.events:
            out = window.push(self.events, self.clock(), self.session.lag.last_ns)
            self.events.clear()
            if window.held:
                out += window.due(self.clock())
            if out:
                self.host.deliver(out)
        elif window.held:
            out = window.due(self.clock())
            if out:
                self.host.deliver(out)

    # -- the thread --------------------------------------------------------------------------

    def run(self) -> None:
        """Connect, serve, back off, repeat until stopped, under a guard: an exception that
        escapes the loop is logged (with its traceback, through the host), counted, the
        products go stale, and the loop starts again after the backoff."""
        while True:
            try:
                stopped = self._loop()
            except Exception as e:
                stopped = None
                try:
                    if not self._crashed(e):
                        return
                except Exception as again:  # the recovery itself failed: log, pause, retry
                    self.host.crashed(self, again)
                    if self._sleep(self.policy.bound_ns(0)):
                        stopped = True
            if stopped is False:
                self.gave_up = True
                return
            if stopped:
                break
        self.session.closed("stopped", self.clock())
        self.publish()
        self._run_inbox()
        self.host.record(self, "stopped", self.session.name)

    def _crashed(self, error: Exception) -> bool:
        """After an exception escaped the loop: close the socket, mark the products stale,
        back off; False when the connection gives up."""
        self.crashes += 1
        self.session.counts["thread_crashes"] += 1
        self.restarting = True
        self.drop_socket()
        self.host.crashed(self, error)
        reason = f"connection thread crashed: {_describe(error)}"
        # was_live=True: a crash of this client is not counted against the host's circuit
        ok = self._after_failure(self.url or "", reason, True)
        if not ok:
            self.gave_up = True
        return ok

    def _loop(self) -> bool:
        """The connection loop; True when stopped, False when it gave up."""
        while not self._stopping.is_set():
            now = self.clock()
            url, wait = self.host.choose_url(self, now)
            if url is None:
                self._sleep(wait)
                continue
            wait = self.host.rate_wait(now)
            if wait and self._sleep(wait):
                return True
            self.url = url
            self.policy.attempt()
            self.host.record(self, "connecting", url)
            self.publish()  # a connect may block for connect_timeout_s
            try:
                ws = self._connect(url)
            except Exception as e:
                reason = _describe(e)
                if not self._after_failure(url, f"connect failed: {reason}", False):
                    return False
                continue
            self._ws = ws
            reason, was_live = self._serve(ws, url)
            self._ws = None
            self._run_inbox()
            if self._stopping.is_set():
                return True
            if not self._after_failure(url, reason, was_live):
                return False
        return True

    def _connect(self, url: str) -> websocket.WebSocket:
        sslopt: dict[str, Any] = {"ca_certs": self.ca_file} if self.ca_file else {}
        header = (
            [f"x-cb-retry-counter: {self.policy.attempts - 1}"] if self.policy.attempts > 1 else []
        )
        return websocket.create_connection(
            url,
            timeout=self.connect_timeout_s,
            sslopt=sslopt,
            skip_utf8_validation=True,
            enable_multithread=False,
            header=header,
        )

    def _after_failure(self, url: str, reason: str, was_live: bool) -> bool:
        """Back off after a failure; False when the connection gives up."""
        now = self.clock()
        self.session.closed(reason, now)
        self._flush()
        delay = self.policy.down(now, self.rng.random())
        self.host.attempt_failed(self, url, reason, was_live, delay)
        if delay is None:
            self.host.gave_up(self, reason)
            return False
        self.host.record(self, "backoff", f"{delay / 1e9:.2f}s after: {reason}")
        self.last_delay_ns = delay
        self._sleep(delay)
        return True

    def _sleep(self, ns: int) -> bool:
        """Wait ``ns`` (interruptible, serving :meth:`call`); True when stopping."""
        end = time.monotonic() + ns / 1e9
        while not self._stopping.is_set():
            self._run_inbox()
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._stopping.wait(min(left, 0.05))
        return True

    def _serve(self, ws: websocket.WebSocket, url: str) -> tuple[str, bool]:
        """Run one connection; return why it ended and whether it reached live."""
        session, buffer, clock, events = self.session, self.buffer, self.clock, self.events
        name = session.name
        now = clock()
        self.host.record(self, "subscribing", url)
        live = False
        data_seen = False
        reader = FrameReader(session.settings.max_frame_bytes)
        reason = self._execute(ws, session.opened(now))
        self._flush()
        if reason:
            return self._close(ws, reader, reason, live, clean=self._clean)
        ws.settimeout(TICK_NS / 1e9)
        sock = ws.sock
        if sock is None:
            return self._close(ws, reader, "connection lost: no socket", live, clean=False)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        next_tick = now + TICK_NS
        next_flush = now + FLUSH_NS
        while not self._stopping.is_set():
            try:
                chunk = sock.recv(CHUNK_BYTES)
                if chunk and len(chunk) < BATCH_BYTES and _waiting(sock, poller):
                    chunk = _read_waiting(sock, poller, chunk)
            except TimeoutError:
                chunk = None
            except OSError as e:
                return self._close(
                    ws, reader, f"connection error: {_describe(e)}", live, clean=False
                )
            if chunk == b"":
                return self._close(ws, reader, "connection lost: closed", live, clean=False)
            now = clock()
            if chunk:
                try:
                    messages = reader.feed(chunk)
                except WebSocketProtocolError as e:
                    return self._close(ws, reader, f"connection error: {e}", live, clean=False)
                for opcode, data in messages:
                    if opcode in _TEXT:
                        if buffer is not None:
                            buffer.append(now, name, data)
                        actions = session.frame(data, now)
                        if not data_seen and session.delivered:
                            data_seen = True
                            self.policy.delivered()  # a working link: the next backoff starts small
                        if actions and (reason := self._execute(ws, actions)):
                            return self._close(ws, reader, reason, live, clean=self._clean)
                    elif opcode == _PONG:
                        session.pong(data, now)
                    elif opcode == _PING:
                        try:
                            ws.pong(data)
                        except (OSError, websocket.WebSocketException) as e:
                            reason = f"send failed: {_describe(e)}"
                            return self._close(ws, reader, reason, live, clean=False)
                    elif opcode == _CLOSE:
                        with contextlib.suppress(Exception):  # the reply to a close: best effort
                            ws.send_close()
                        return self._close(
                            ws, reader, f"closed by server ({_close_text(data)})", live, clean=False
                        )
                    elif opcode == _OVERSIZE:  # skipped by the reader, never held
                        actions = session.oversize(int(data), now)
                        if actions and (reason := self._execute(ws, actions)):
                            return self._close(ws, reader, reason, live, clean=self._clean)
                if events:
                    self._flush()  # once per chunk: the events of all its frames together
            if self._inbox:
                self._run_inbox()
            if now >= next_tick:
                next_tick = now + TICK_NS
                actions = session.tick(now)
                self._flush()
                if actions and (reason := self._execute(ws, actions)):
                    return self._close(ws, reader, reason, live, clean=self._clean)
                if session.live and not live:
                    live = True
                    self.restarting = False
                    self.lives += 1
                    self.live_url = url
                    self.policy.up(now)
                    self.host.went_live(self, url)
                if live and self.host.should_failback(self, url, now):
                    return self._close(ws, reader, "failback to the primary host", live)
                if buffer is not None and now >= next_flush:
                    next_flush = now + FLUSH_NS
                    buffer.flush()
        return self._close(ws, reader, "stopped", live)

    def _execute(self, ws: websocket.WebSocket, actions: list[Action]) -> str:
        """Carry out the session's actions; return a reason to reconnect, or ''."""
        self._clean = True
        for a in actions:
            try:
                if isinstance(a, Send):
                    ws.send(a.text)
                elif isinstance(a, Ping):
                    ws.ping(a.payload)
                elif isinstance(a, Reconnect):
                    self._clean = a.clean
                    return a.reason
                elif isinstance(a, Backfill):
                    self.host.backfill(self, a)
            except (OSError, websocket.WebSocketException) as e:
                return f"send failed: {_describe(e)}"
        return ""

    def _close(
        self,
        ws: websocket.WebSocket,
        reader: FrameReader,
        reason: str,
        live: bool,
        *,
        clean: bool = True,
    ) -> tuple[str, bool]:
        close_socket(ws, reader, clean=clean)
        return reason, live


def close_socket(ws: websocket.WebSocket, reader: FrameReader, *, clean: bool) -> None:
    """Close the connection; ``clean``: with the closing handshake, bounded by
    :data:`CLOSE_WAIT_S` in all.

    The server's frames up to its close frame are read through ``reader`` (the connection's
    own: it may be in the middle of a frame), so an oversize frame is skipped there too.
    websocket-client's ``close`` would read them with its own parser from wherever the stream
    is, collect a frame of any declared length whole, and wait ``timeout`` per read, not in
    all: a server trickling a huge frame could hold the thread (and ``stop``) and its memory.
    """
    sock = ws.sock
    try:
        if clean and ws.connected and sock is not None:
            ws.send_close(websocket.STATUS_NORMAL, b"cryptoj reconnect")
            deadline = time.monotonic() + CLOSE_WAIT_S
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                chunk = sock.recv(CHUNK_BYTES)
                if not chunk or any(op == OP_CLOSE for op, _ in reader.feed(chunk)):
                    break
    except (OSError, websocket.WebSocketException, WebSocketProtocolError):
        pass  # a broken or timed-out socket, a bad frame: nothing left to wait for
    ws.shutdown()


def _waiting(sock: socket.socket, poller: select.poll) -> bool:
    """Whether bytes can be read from ``sock`` without waiting (TLS-buffered or in the kernel;
    ``poller`` has ``sock`` registered)."""
    pending = getattr(sock, "pending", None)  # ssl.SSLSocket: decrypted bytes not read yet
    return bool(pending is not None and pending()) or bool(poller.poll(0))


def _read_waiting(sock: socket.socket, poller: select.poll, first: bytes) -> bytes:
    """``first`` and what else is waiting, up to :data:`BATCH_BYTES` (a connection that is
    behind handles its backlog in large batches: fewer hand-overs, more trades merged)."""
    parts, size = [first], len(first)
    while size < BATCH_BYTES:
        try:
            more = sock.recv(CHUNK_BYTES)
        except (TimeoutError, OSError):  # e.g. half a TLS record: the next read goes on
            break
        if not more:  # closed: the next read says so
            break
        parts.append(more)
        size += len(more)
        if not _waiting(sock, poller):
            break
    return b"".join(parts)


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if type(e).__name__ in text else f"{type(e).__name__}: {text}"


def _close_text(data: bytes) -> str:
    if len(data) >= 2:
        code = int.from_bytes(data[:2], "big")
        text = data[2:].decode("utf-8", "replace")
        return f"{code} {text}".strip()
    return "no status"
