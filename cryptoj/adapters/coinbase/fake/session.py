"""One websocket connection of the local fake exchange, and the fault switches it obeys."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptoj.adapters.coinbase.fake.wire import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    encode_frame,
)
from cryptoj.adapters.coinbase.parse import format_rfc3339_ns

if TYPE_CHECKING:
    from cryptoj.adapters.coinbase.fake.server import FakeCoinbase

TOO_MANY_L2 = b'{"type":"error","message":"too many L2 streams requested in a single session"}'
CHANNELS = frozenset({"heartbeats", "level2", "ticker", "ticker_batch", "market_trades", "user"})


@dataclass
class Faults:
    """Pending faults; sessions take them under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    gaps: int = 0
    duplicates: int = 0
    reorders: int = 0
    ignore_subscribes: int = 0
    burst: int = 0
    outage_until: dict[int, float] = field(default_factory=dict)
    rest_outage_until: float = 0.0

    def take(self, name: str) -> bool:
        """Consume one unit of a counted fault."""
        with self.lock:
            left = getattr(self, name)
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True


class OutQueue:
    """A session's outgoing items: the data source offers (bounded), the session takes all."""

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.cond = threading.Condition()

    def push(self, item: Any) -> None:
        """Append unconditionally (subscription answers)."""
        with self.cond:
            self.items.append(item)
            self.cond.notify()

    def offer(self, item: Any, limit: int) -> bool:
        """Append while fewer than ``limit`` items wait; False (not added) otherwise."""
        with self.cond:
            if len(self.items) >= limit:
                return False
            self.items.append(item)
            self.cond.notify()
            return True

    def wait_room(self, limit: int, timeout_s: float) -> None:
        """Block until fewer than ``limit`` items wait, or ``timeout_s`` passed."""
        with self.cond:
            if len(self.items) >= limit:
                self.cond.wait_for(lambda: len(self.items) < limit, timeout_s)

    def take(self, timeout_s: float) -> list[Any]:
        """Everything waiting (after at most ``timeout_s`` for something to arrive)."""
        with self.cond:
            if not self.items and timeout_s > 0:
                self.cond.wait(timeout_s)
            out = list(self.items)
            self.items.clear()
            self.cond.notify_all()
            return out


# -- one websocket connection ------------------------------------------------------------------


class WsSession:
    """One client connection: reads its subscribes, writes its frames (a single thread)."""

    def __init__(
        self, fake: FakeCoinbase, sock: ssl.SSLSocket, conn_id: int, listener: int
    ) -> None:
        self.fake = fake
        self.sock = sock
        self.conn_id = conn_id
        self.listener = listener
        self.out = OutQueue()
        self.subs: dict[str, set[str]] = {ch: set() for ch in CHANNELS}
        self.seq = 0
        self.reader = FrameReader()
        self.closed = False
        self.close_reason = ""
        self.disconnect_mode = ""
        self.slow = False
        self.subscribed = False
        self.ignore_subscribes = fake.faults.take("ignore_subscribes")
        self.sent_frames = 0
        self.stall_until = 0.0  # monotonic time; set by the "stall" fault
        self.stall_what = "all"
        self._gap_pending = False
        self._held: bytes | None = None

    # -- the loop --

    def run(self) -> None:
        fake = self.fake
        opened = time.monotonic()
        next_hb = opened + fake.heartbeat_s
        pending: deque[Any] = deque()
        try:
            while not self.closed and not fake.stopping.is_set():
                if self.disconnect_mode:
                    self._disconnect(self.disconnect_mode)
                    return
                now = time.monotonic()
                stalled = now < self.stall_until
                stall_all = stalled and self.stall_what == "all"
                if not stall_all:
                    pending.extend(self.out.take(0.005 if not pending else 0))
                else:
                    time.sleep(0.005)
                self._read_client(stall_all)
                if self.slow:
                    self._close(1008, b"slow consumer")
                    return
                if not self.subscribed and now - opened > fake.subscribe_deadline_s:
                    self._close(1008, b"no subscribe received in time")
                    fake.count("subscribe_timeouts")
                    return
                if stall_all:
                    continue
                buf: list[bytes] = []
                if now >= next_hb:
                    next_hb = now + fake.heartbeat_s
                    if self.subs["heartbeats"] and not stalled:
                        buf.append(self._heartbeat())
                while pending:
                    self._render(pending.popleft(), buf)
                if self._held is not None:  # nothing to swap it with in this batch: retry later
                    buf.append(self._held)
                    self._held = None
                    with fake.faults.lock:
                        fake.faults.reorders += 1
                if buf:
                    self._send(b"".join(buf))
        except (OSError, ValueError) as e:
            self.close_reason = f"{type(e).__name__}: {e}"
        finally:
            self.closed = True
            fake.session_ended(self)
            with contextlib.suppress(OSError):
                self.sock.close()

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except TimeoutError:
            self.slow = True
            self.fake.count("slow_consumers")

    def _read_client(self, stalled: bool) -> None:
        sock = self.sock
        while sock.pending() or select.select([sock], [], [], 0)[0]:
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError("client closed the TCP connection")
            for opcode, payload in self.reader.feed(data):
                if opcode == OP_TEXT:
                    self._on_text(payload)
                elif opcode == OP_PING and not stalled:
                    self.sock.sendall(encode_frame(OP_PONG, payload))
                elif opcode == OP_CLOSE:
                    self._close(1000, b"")
                    return

    # -- output --

    def _frame(self, channel: bytes, ts: bytes, events: bytes) -> bytes:
        seq = self.seq
        self.seq += 1
        body = (
            b'{"channel":"%s","client_id":"","timestamp":"%s","sequence_num":%d,"events":[%s]}'
            % (
                channel,
                ts,
                seq,
                events,
            )
        )
        return encode_frame(OP_TEXT, body)

    def _heartbeat(self) -> bytes:
        fake = self.fake
        counter = int(time.monotonic() - fake.started_mono)
        now = time.time_ns()
        up = time.monotonic() - fake.started_mono
        current = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now // 10**9))
        c = f'"{counter}"' if fake.counter_string else str(counter)
        stamp = f"{current}.{now % 10**9:09d} +0000 UTC m=+{up:.9f}"
        ev = f'{{"current_time":"{stamp}","heartbeat_counter":{c}}}'
        fake.count("heartbeats")
        return self._frame(b"heartbeats", format_rfc3339_ns(now).encode(), ev.encode())

    def _render(self, item: Any, buf: list[bytes]) -> None:
        kind = item[0]
        if kind == "batch":  # one recorded step's frames for this connection
            for sub in item[1]:
                self._render(sub, buf)
            return
        faults = self.fake.faults
        if kind == "raw":  # an error frame: no envelope, no sequence number
            buf.append(encode_frame(OP_TEXT, item[1]))
            return
        _, channel, ts, events, is_data = item
        if kind == "l2u" and (
            channel == b"l2_data" and self.subs["level2"] and faults.gaps and faults.take("gaps")
        ):
            self.seq += 1  # the lost frame's number
            self._gap_pending = True
            return
        frame = self._frame(channel, ts, events)
        if self._gap_pending:
            self._gap_pending = False
            self.fake.count("gaps_injected")
        if is_data and faults.duplicates and faults.take("duplicates"):
            buf.append(frame)
            self.fake.count("duplicates_injected")
        if self._held is not None:
            buf.append(frame)
            buf.append(self._held)
            self._held = None
            self.fake.count("reorders_injected")
            return
        if is_data and faults.reorders and faults.take("reorders"):
            self._held = frame
            return
        buf.append(frame)
        self.sent_frames += 1

    # -- client messages --

    def _on_text(self, payload: bytes) -> None:
        fake = self.fake
        try:
            msg = json.loads(payload)
            kind, channel = msg["type"], msg.get("channel", "")
            products = [str(p) for p in msg.get("product_ids") or []]
        except (ValueError, KeyError, TypeError):
            self.out.push(("raw", b'{"type":"error","message":"failure to parse message"}'))
            return
        fake.record_subscribe(self.conn_id, msg)
        if self.ignore_subscribes:
            return
        self.subscribed = True
        if channel == "user":  # its own JWT rules and answers: user_channel.py
            fake.user.on_message(self, kind, products, msg)
            return
        if "jwt" in msg and not fake.jwt_ok(msg.get("jwt")):  # public channels need none
            self.out.push(("raw", b'{"type":"error","message":"authentication failure"}'))
            return
        if channel not in CHANNELS or kind not in ("subscribe", "unsubscribe"):
            self.out.push(("raw", b'{"type":"error","message":"authentication failure"}'))
            return
        unknown = [p for p in products if p not in fake.sim.products]
        if unknown and channel != "heartbeats":
            self.out.push(("raw", b'{"type":"error","message":"failure to subscribe"}'))
            return
        fake.lock_waiters += 1
        with fake.lock:
            fake.lock_waiters -= 1
            subs = self.subs[channel]
            if kind == "unsubscribe":
                if products:
                    subs.difference_update(products)
                else:
                    subs.clear()
                self.ack()
                return
            if channel == "heartbeats":
                subs.add("heartbeats")
                self.ack()
                return
            if channel == "level2" and len(subs | set(products)) > fake.max_l2_products:
                self.out.push(("raw", TOO_MANY_L2))
                return
            new = [p for p in products if p not in subs]
            subs.update(products)
            self.ack()
            if new:
                fake.snapshot_into(self, channel, new)

    def ack(self) -> None:
        """Queue a ``subscriptions`` message listing every subscription of this connection."""
        subs = {ch: sorted(ps) for ch, ps in self.subs.items() if ps}
        events = json.dumps({"subscriptions": subs}, separators=(",", ":")).encode()
        self.out.push(
            ("ack", b"subscriptions", format_rfc3339_ns(time.time_ns()).encode(), events, False)
        )

    # -- closing --

    def _close(self, code: int, reason: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(encode_frame(OP_CLOSE, struct.pack("!H", code) + reason))
        self.closed = True
        self.close_reason = f"{code} {reason.decode()}"

    def _disconnect(self, mode: str) -> None:
        if mode == "clean":
            self._close(1000, b"fake: clean disconnect")
        else:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.closed = True
            self.close_reason = "dropped"
