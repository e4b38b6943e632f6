"""A small hostile Coinbase market-data websocket server for tests (plain ``ws://`` on 127.0.0.1,
port 0).

It speaks just enough of the protocol for the real feed client to go live: it acknowledges
every subscribe, beats every ``heartbeat_s``, and answers a level2 subscribe with a snapshot
(bid 100 / ask 101) and a ticker subscribe with one ticker per product. Frames are stamped with
the current time, as Coinbase stamps them. With ``market_s > 0`` a market keeps moving: every
``market_s`` each product's best bid size changes (a level2 update, or a ticker without
level2: a new quote) and one trade prints (so bars form); the market pauses while snapshots
are held (a ticker would recover a stale product as a snapshot does). On top of that a test
can push any frame: an enveloped frame with the next sequence number (:meth:`send_frame`) or
raw bytes as they are (:meth:`send_raw`). ``hold_snapshots`` keeps the answers to level2 and
ticker subscribes back, ``hold_acks`` the subscription acknowledgements, until :meth:`release`
(so a test sees the product stale, or the connection not live, before it recovers).

Framing and the handshake reuse the fake exchange's wire helpers (read-only).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import select
import socket
import threading
import time
from typing import Any

from cryptoj.adapters.coinbase.fake.wire import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WS_GUID,
    FrameReader,
    encode_frame,
    read_request,
)
from cryptoj.adapters.coinbase.parse import format_rfc3339_ns
from tests.test_coinbase_failover import closed_port

TIMESTAMP = "2024-10-04T07:04:40.812675707Z"


def now_text() -> str:
    """The current time as Coinbase writes timestamps."""
    return format_rfc3339_ns(time.time_ns())


def snapshot_levels(bid: str = "100", ask: str = "101") -> list[dict[str, str]]:
    """Two bid levels and one ask level."""
    return [
        {"side": "bid", "event_time": TIMESTAMP, "price_level": bid, "new_quantity": "1"},
        {"side": "bid", "event_time": TIMESTAMP, "price_level": "99", "new_quantity": "2"},
        {"side": "offer", "event_time": TIMESTAMP, "price_level": ask, "new_quantity": "3"},
    ]


def feed_settings(server: HostileServer, **overrides: Any) -> dict[str, Any]:
    """The Coinbase feed settings (``feed.coinbase``) of a client of ``server``: no REST (a
    closed port), and watchdogs that never fire during a test (the server holds snapshots on
    purpose); ``overrides`` replace or add fields."""
    settings: dict[str, Any] = {
        "ws_urls": [server.url],
        "rest_url": f"http://127.0.0.1:{closed_port()}",
        "heartbeat_timeout_s": 5.0,
        "subscribe_ack_timeout_s": 60.0,
        "resync_timeout_s": 60.0,
        "book_stale_s": 0.0,
        "ping_interval_s": 0.0,
        "backoff_min_s": 0.05,
        "backoff_max_s": 0.2,
        "backfill_trades": False,
        "rest_poll": False,
    }
    settings.update(overrides)
    return settings


def good_ticker(product: str) -> dict[str, str]:
    """A well-formed ticker with a top of book."""
    return {
        "product_id": product,
        "price": "100.5",
        "best_bid": "100",
        "best_bid_quantity": "1",
        "best_ask": "101",
        "best_ask_quantity": "3",
    }


class HostileServer:
    """See the module docstring. One client connection at a time is served."""

    def __init__(self, *, heartbeat_s: float = 0.05, market_s: float = 0.0) -> None:
        self.heartbeat_s = heartbeat_s
        self.market_s = market_s
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        self.hold_snapshots = False
        self.hold_acks = False
        self.connections = 0
        self.subscribes: list[dict[str, Any]] = []
        self._held: list[tuple[str, str]] = []
        self._out: queue.Queue[bytes] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="hostile-ws", daemon=True)

    def start(self) -> HostileServer:
        """Start accepting connections."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.close()
        self._thread.join(5)

    # -- what a test sends ----------------------------------------------------------------------

    def send_frame(self, channel: str, events: list[dict[str, Any]]) -> None:
        """An enveloped frame; the connection thread gives it the next sequence number."""
        self._out.put(json.dumps({"channel": channel, "events": events}).encode())

    def send_raw(self, data: bytes) -> None:
        """``data`` as one text frame, exactly as given (no envelope, no sequence number)."""
        self._out.put(b"RAW" + data)

    def send_huge(self, declared: int, streamed: int) -> None:
        """The header of a text frame declaring ``declared`` bytes, then ``streamed`` bytes of
        its payload; what the server sends after is, for the client, more of that payload."""
        self._out.put(b"HUGE%d %d" % (declared, streamed))

    def disconnect(self) -> None:
        """Close the current client connection (no close frame: a lost link)."""
        self._out.put(b"CLOSE")

    def release(self) -> None:
        """Send the snapshots held back while ``hold_snapshots`` was set, and stop holding."""
        with self._lock:
            self.hold_snapshots = False
            self.hold_acks = False
        self._out.put(b"RELEASE")

    # -- the server -----------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.settimeout(0.2)
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            try:
                self._session(conn)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    conn.close()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        _, _, headers, _ = read_request(conn)  # type: ignore[arg-type]
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.connections += 1
        conn.setblocking(False)
        reader = FrameReader()
        subs: dict[str, list[str]] = {}
        seq = [0]
        beats = [0]

        def send(data: bytes) -> None:
            conn.setblocking(True)
            conn.sendall(encode_frame(OP_TEXT, data))
            conn.setblocking(False)

        def frame(channel: str, events: list[dict[str, Any]]) -> None:
            body = {
                "channel": channel,
                "client_id": "",
                "timestamp": now_text(),
                "sequence_num": seq[0],
                "events": events,
            }
            seq[0] += 1
            send(json.dumps(body).encode())

        def snapshot(channel: str, product: str) -> None:
            if channel == "level2":
                levels = snapshot_levels()
                frame("l2_data", [{"type": "snapshot", "product_id": product, "updates": levels}])
            else:
                frame(channel, [{"type": "snapshot", "tickers": [good_ticker(product)]}])

        next_beat = next_tick = 0.0
        ticks = [0]
        ack_held = False

        def market_tick() -> None:
            """Each level2 (else ticker) product: a new best bid size, and one trade."""
            ticks[0] += 1
            size = f"1.{ticks[0] % 9 + 1}"
            for p in subs.get("level2", []):
                bid = {"side": "bid", "event_time": now_text(), "price_level": "100",
                       "new_quantity": size}  # fmt: skip
                frame("l2_data", [{"type": "update", "product_id": p, "updates": [bid]}])
            quoted = subs.get("level2") or subs.get("ticker", [])
            if "level2" not in subs and quoted:
                items = [{**good_ticker(p), "best_bid_quantity": size} for p in quoted]
                frame("ticker", [{"type": "update", "tickers": items}])
            for p in quoted:
                if "market_trades" in subs:
                    t = {"product_id": p, "trade_id": f"m{ticks[0]}-{p}", "price": "100.5",
                         "size": "0.01", "time": now_text(), "side": "BUY"}  # fmt: skip
                    frame("market_trades", [{"type": "update", "trades": [t]}])

        while not self._stop.is_set():
            ready, _, _ = select.select([conn], [], [], 0.01)
            if ready:
                try:
                    data = conn.recv(1 << 16)
                except BlockingIOError:  # a spurious wake-up
                    data = None
                if data == b"":
                    return
                for opcode, payload in reader.feed(data or b""):
                    if opcode == OP_CLOSE:
                        return
                    if opcode == OP_PING:
                        conn.setblocking(True)
                        conn.sendall(encode_frame(OP_PONG, payload))
                        conn.setblocking(False)
                    elif opcode == OP_TEXT:
                        msg = json.loads(payload)
                        self.subscribes.append(msg)
                        ch, products = msg["channel"], list(msg.get("product_ids", []))
                        if msg["type"] == "unsubscribe":
                            subs[ch] = [p for p in subs.get(ch, []) if p not in products]
                            continue
                        subs[ch] = sorted(set(subs.get(ch, [])) | set(products))
                        if ch == "heartbeats":
                            subs[ch] = ["heartbeats"]
                        if self.hold_acks:
                            ack_held = True
                        else:
                            frame("subscriptions", [{"subscriptions": dict(subs)}])
                        if ch in ("level2", "ticker", "ticker_batch"):
                            with self._lock:
                                hold = self.hold_snapshots
                                if hold:
                                    self._held += [(ch, p) for p in products]
                            if not hold:
                                for p in products:
                                    snapshot(ch, p)
            while True:
                try:
                    item = self._out.get_nowait()
                except queue.Empty:
                    break
                if item == b"CLOSE":
                    return
                if item == b"RELEASE":
                    if ack_held:
                        ack_held = False
                        frame("subscriptions", [{"subscriptions": dict(subs)}])
                    with self._lock:
                        held, self._held = self._held, []
                    for ch, p in dict.fromkeys(held):
                        snapshot(ch, p)
                elif item.startswith(b"RAW"):
                    send(item[3:])
                elif item.startswith(b"HUGE"):
                    declared, streamed = map(int, item[4:].split())
                    conn.setblocking(True)
                    conn.sendall(bytes([0x81, 0x7F]) + declared.to_bytes(8, "big"))
                    for _ in range(streamed >> 16):
                        conn.sendall(b"x" * 65_536)
                    conn.setblocking(False)
                else:
                    body = json.loads(item)
                    frame(body["channel"], body["events"])
            now = time.monotonic()
            if self.market_s > 0 and now >= next_tick and not self.hold_snapshots:
                next_tick = now + self.market_s
                market_tick()
            if now >= next_beat and "heartbeats" in subs:
                next_beat = now + self.heartbeat_s
                beats[0] += 1
                frame("heartbeats", [{"current_time": TIMESTAMP, "heartbeat_counter": beats[0]}])
