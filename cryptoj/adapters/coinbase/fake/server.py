"""The local fake Coinbase exchange: listeners, recorded-data source, REST reads, faults.

See ``tools/fake_coinbase.py`` for the command line and the list of fault switches. A test and
development tool, not part of the trading path.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import ssl
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptoj.adapters.coinbase.fake.auth import make_verifier
from cryptoj.adapters.coinbase.fake.control import control_handler
from cryptoj.adapters.coinbase.fake.history import MarketHistory
from cryptoj.adapters.coinbase.fake.market_rest import MarketRest, RateWindow
from cryptoj.adapters.coinbase.fake.products import ProductSpec
from cryptoj.adapters.coinbase.fake.queries import summary
from cryptoj.adapters.coinbase.fake.rest_api import RestApi, make_exchange
from cryptoj.adapters.coinbase.fake.session import Faults, WsSession
from cryptoj.adapters.coinbase.fake.sim import TS, MarketSim
from cryptoj.adapters.coinbase.fake.user_channel import UserChannel
from cryptoj.adapters.coinbase.fake.wire import (
    WS_GUID,
    make_certificate,
    read_request,
    respond,
)
from cryptoj.adapters.coinbase.parse import format_rfc3339_ns
from cryptoj.marketdata import load_events

HISTORY = 50_000  # book versions remembered per product (for digest checks)


class FakeCoinbase:
    """The fake exchange; ``start()`` it (or use it as a context manager), then connect.

    Trading: ``jwt_key_name`` + ``jwt_public_key`` (PEM) register the API key whose JWTs the
    private REST calls and the ``user`` channel must carry (neither: authentication off);
    ``balances`` (default 100,000 USD), ``taker_fee``/``maker_fee`` (0.006 / 0.004),
    ``product_specs`` (override :mod:`.products`), ``order_fault_rate``/``fault_seed``/
    ``fault_kinds`` (random REST faults on order calls, :mod:`.rest_faults`).
    """

    def __init__(
        self,
        *,
        data: str = "coinbase-1m-2018-04",
        products: list[str] | None = None,
        port: int = 0,
        alt_port: int | None = None,
        control_port: int | None = None,
        step_s: float = 0.1,
        heartbeat_s: float = 1.0,
        ticker_batch_s: float = 5.0,
        subscribe_deadline_s: float = 5.0,
        max_l2_products: int = 16,
        depth: int = 10,
        deep_levels: int = 0,
        counter_string: bool = False,
        max_queue: int = 2000,
        send_buffer: int = 0,
        cert_dir: str | None = None,
        jwt_key_name: str | None = None,
        jwt_public_key: str | None = None,
        jwt_skew_s: float = 5.0,
        balances: Mapping[str, Decimal | str | int] | None = None,
        taker_fee: Decimal | str = "0.006",
        maker_fee: Decimal | str = "0.004",
        product_specs: Mapping[str, ProductSpec] | None = None,
        order_fault_rate: float = 0.0,
        fault_seed: int | None = None,
        fault_kinds: Sequence[str] | None = None,
    ) -> None:
        events = load_events(data, products=products)
        self.sim = MarketSim(events, depth=depth, deep_levels=deep_levels)
        self.market_history = MarketHistory(events)  # candles and trades by time range
        self.ports = [port] + ([alt_port] if alt_port is not None else [])
        self.control_port = control_port
        self.step_s = step_s
        self.heartbeat_s = heartbeat_s
        if ticker_batch_s <= 0:
            raise ValueError(f"ticker_batch_s must be > 0, not {ticker_batch_s}")
        self.ticker_batch_s = ticker_batch_s
        self._next_batch = 0.0  # monotonic time of the next ticker_batch update
        self.subscribe_deadline_s = subscribe_deadline_s
        self.max_l2_products = max_l2_products
        self.counter_string = counter_string
        self.max_queue = max_queue
        self.send_buffer = send_buffer  # SO_SNDBUF of accepted sockets, bytes (0: the OS's)
        self.jwt_key_name = jwt_key_name
        self.jwt_public_key = jwt_public_key
        self.auth = make_verifier(jwt_key_name, jwt_public_key, jwt_skew_s)  # None: auth off
        self.exchange = make_exchange(
            self.sim.products, balances, taker_fee, maker_fee, product_specs
        )
        self.api = RestApi(self)
        self.market_rest = MarketRest(self)
        self.rates = RateWindow()
        self.user = UserChannel(self)
        if order_fault_rate:
            self.api.faults.set_random(order_fault_rate, fault_seed, fault_kinds)
        self.started_ns = time.time_ns()
        self._tmp = (
            tempfile.TemporaryDirectory(prefix="fake-coinbase-") if cert_dir is None else None
        )
        self.cert_dir = Path(cert_dir or self._tmp.name)  # type: ignore[union-attr]
        self.faults = Faults()
        self.lock = threading.Lock()  # market state and subscriptions
        self.lock_waiters = 0  # sessions waiting for the lock (the max-speed source yields)
        self.stopping = threading.Event()
        self.sessions: dict[int, WsSession] = {}
        self.counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()
        self.version: dict[str, bytes] = {}
        self.history: dict[str, OrderedDict[str, int]] = {
            p: OrderedDict() for p in self.sim.products
        }
        self.recent: dict[str, deque[bytes]] = {p: deque(maxlen=1000) for p in self.sim.products}
        self.subscribes: list[dict[str, Any]] = []
        self._next_id = 0
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._control: ThreadingHTTPServer | None = None
        self.started_mono = time.monotonic()
        self.ca_file = ""

    # -- lifecycle --

    def start(self) -> FakeCoinbase:
        cert, key = make_certificate(self.cert_dir)
        self.ca_file = str(cert)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        now = format_rfc3339_ns(time.time_ns()).encode()
        for p in self.sim.products:
            self._version(p, now)
        for i, port in enumerate(self.ports):
            ls = socket.create_server(("127.0.0.1", port), backlog=64)
            self.ports[i] = ls.getsockname()[1]
            self._listeners.append(ls)
            self._spawn(self._accept, ls, i)
        self._spawn(self._market)
        if self.control_port is not None:
            self._control = ThreadingHTTPServer(
                ("127.0.0.1", self.control_port), control_handler(self)
            )
            self._control.daemon_threads = True
            self.control_port = self._control.server_address[1]
            self._spawn(self._control.serve_forever)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for ls in self._listeners:
            with contextlib.suppress(OSError):
                ls.close()
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()
        for t in self._threads:
            t.join(timeout=3)
        for s in list(self.sessions.values()):
            with contextlib.suppress(OSError):
                s.sock.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> FakeCoinbase:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True, name=f"fake-{fn.__name__}")
        t.start()
        self._threads.append(t)

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.ports[0]}"

    @property
    def alt_ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.ports[1]}"

    @property
    def rest_url(self) -> str:
        return f"https://127.0.0.1:{self.ports[0]}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    # -- bookkeeping --

    def count(self, name: str, n: int = 1) -> None:
        with self._counts_lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def record_subscribe(self, conn_id: int, msg: dict[str, Any]) -> None:
        with self._counts_lock:
            self.subscribes.append({"conn": conn_id, **msg})
            del self.subscribes[:-1000]

    def rate_headers(self, public: bool) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers of one more REST answer (:class:`RateWindow`)."""
        return self.rates.headers(public)

    def jwt_ok(self, token: Any) -> bool:
        """Without a registered key every subscribe passes; with one, the JWT must verify."""
        if self.auth is None:
            return True
        reason = self.auth.verify_ws(token)
        if reason:
            self.count("ws_auth_failures")
            self.api.auth_failures.append(f"subscribe: {reason}")
        return not reason

    def session_ended(self, s: WsSession) -> None:
        with self.lock:
            self.sessions.pop(s.conn_id, None)
        self.count("connections_closed")

    def _version(self, product: str, ts: bytes) -> None:
        self.version[product] = ts
        h = self.history[product]
        h[ts.decode()] = self.sim.cursor  # the step whose book this update leads to
        while len(h) > HISTORY:
            h.popitem(last=False)

    def digest_at(self, product: str, event_time: str) -> str | None:
        """The fake's book digest of ``product`` as of the update stamped ``event_time``."""
        with self.lock:
            history = self.history.get(product)
            step = None if history is None else history.get(event_time)
            return None if step is None else self.sim.digest(product, step)

    def state(self) -> dict[str, Any]:
        with self._counts_lock:
            counts = dict(self.counts)
        with self.lock:
            sessions = {
                i: {
                    "subs": {c: sorted(p) for c, p in s.subs.items() if p},
                    "seq": s.seq,
                    "listener": s.listener,
                }
                for i, s in self.sessions.items()
            }
            exchange = summary(self.exchange)
        return {
            "counts": counts,
            "sessions": sessions,
            "ports": self.ports,
            "step": self.sim.cursor,
            "loops": self.sim.loops,
            "exchange": exchange,
            "rest": self.api.state(),
        }

    # -- faults --

    def inject(self, kind: str, **kw: Any) -> dict[str, Any]:
        """Inject one fault (see the module docstring); returns what was done."""
        trading = self.api.inject(kind, kw)  # rest_*, order_*, user_* (rest_api.py)
        if trading is None:
            trading = self.market_history.inject(kind, kw)  # public_429, public_5xx (history.py)
        if trading is not None:
            self.count(f"{kind}_faults")
            return trading
        f = self.faults
        n = int(kw.get("count", 1))
        with f.lock:
            if kind == "gap":
                f.gaps += n
            elif kind == "duplicate":
                f.duplicates += n
            elif kind == "reorder":
                f.reorders += n
            elif kind in ("error", "stall", "disconnect"):
                pass  # applied to the open sessions below
            elif kind == "burst":
                f.burst += int(kw.get("steps", 100))
            elif kind == "subscribe_timeout":
                f.ignore_subscribes += n
            elif kind == "outage":
                f.outage_until[int(kw.get("listener", 0))] = time.monotonic() + float(
                    kw.get("seconds", 5.0)
                )
            elif kind == "rest_outage":
                f.rest_outage_until = time.monotonic() + float(kw.get("seconds", 5.0))
            else:
                raise ValueError(f"unknown fault {kind!r}")
        if kind == "error":
            body = json.dumps(
                {"type": "error", "message": str(kw.get("message", "failure to subscribe"))}
            ).encode()
            with self.lock:
                for s in self.sessions.values():
                    s.out.push(("raw", body))
        if kind == "stall":  # the connections open now hang; new ones work (a hung stream)
            until = time.monotonic() + float(kw.get("seconds", 3.0))
            with self.lock:
                targets = [s for i, s in self.sessions.items() if kw.get("conn") in (None, i)]
            for s in targets:
                s.stall_what = str(kw.get("what", "all"))
                s.stall_until = until
            n = len(targets)
        if kind == "disconnect":
            mode = str(kw.get("mode", "clean"))
            with self.lock:
                targets = [s for i, s in self.sessions.items() if kw.get("conn") in (None, i)]
            for s in targets:
                s.disconnect_mode = mode
            n = len(targets)
        self.count(f"{kind}_faults")
        return {"ok": True, "kind": kind, "count": n}

    # -- data source --

    def _market(self) -> None:
        next_t = time.monotonic()
        while not self.stopping.is_set():
            if self.step_s > 0:
                next_t += self.step_s
                delay = next_t - time.monotonic()
                if delay > 0:
                    self.stopping.wait(delay)
                else:
                    next_t = time.monotonic()
            elif self.lock_waiters or not any(
                s.subs["level2"] or s.subs["ticker"] or s.subs["market_trades"]
                for s in list(self.sessions.values())
            ):
                self.stopping.wait(
                    0.002
                )  # max speed: nobody reads, or a subscribe waits for the lock
                continue
            extra = 0
            with self.faults.lock:
                extra, self.faults.burst = self.faults.burst, 0
            for _ in range(1 + extra):
                self._step()

    def _step(self) -> None:
        if self.step_s <= 0:  # as fast as the readers go: wait for room outside the lock
            for sess in list(self.sessions.values()):
                sess.out.wait_room(self.max_queue, 1.0)
        with self.lock:
            step = self.sim.advance()
            self.api.on_step(step)
            now = time.time_ns()
            ts = format_rfc3339_ns(now).encode()
            per_product: dict[str, list[tuple[str, bytes, bytes, bool]]] = {}
            for p, s in step.items():
                items: list[tuple[str, bytes, bytes, bool]] = []
                if s.l2:
                    self._version(p, ts)
                    ev = b'{"type":"update","product_id":"%s","updates":[%s]}' % (
                        p.encode(),
                        s.l2_json.replace(TS, ts),
                    )
                    items.append(("level2", b"l2_data", ev, True))
                if s.ticker:
                    ev = b'{"type":"update","tickers":[%s]}' % s.ticker
                    items.append(("ticker", b"ticker", ev, False))
                if s.trades_json:
                    base = 1_000_000 + self.sim.loops * self.sim.trades_per_cycle
                    trades = [
                        (pre + str(base + idx).encode() + post).replace(TS, ts)
                        for idx, pre, post in s.trades_json
                    ]
                    self.recent[p].extend(trades)
                    ev = b'{"type":"update","trades":[%s]}' % b",".join(reversed(trades))
                    items.append(("market_trades", b"market_trades", ev, False))
                per_product[p] = items
            batch_due = time.monotonic() >= self._next_batch
            if batch_due:
                self._next_batch = time.monotonic() + self.ticker_batch_s
            for sess in list(self.sessions.values()):
                batch = [
                    ("l2u" if is_l2 else "data", channel, ts, events, True)
                    for p, items in per_product.items()
                    for ch, channel, events, is_l2 in items
                    if p in sess.subs[ch]
                ]
                if batch_due and sess.subs["ticker_batch"]:
                    batch.append(("data", b"ticker_batch", ts, self._ticker_batch(sess), True))
                if batch and not sess.out.offer(("batch", batch), self.max_queue):
                    sess.slow = True
                    self.count("slow_consumers")
        self.count("steps")

    def _ticker_batch(self, sess: WsSession) -> bytes:
        """The ``ticker_batch`` update of one connection: the last ticker of each of its
        products (Coinbase sends it every 5 s: ``ticker_batch_s``)."""
        tickers = b",".join(
            self.sim.last_ticker[p] for p in sorted(sess.subs["ticker_batch"])
            if self.sim.last_ticker.get(p)
        )  # fmt: skip
        return b'{"type":"update","tickers":[%s]}' % tickers

    def snapshot_into(self, sess: WsSession, channel: str, products: list[str]) -> None:
        """Queue the snapshot a new subscription gets (caller holds ``self.lock``)."""
        ts = format_rfc3339_ns(time.time_ns()).encode()
        if channel == "level2":
            for p in products:
                v = self.version[p]
                ups = b",".join(
                    b'{"side":"%s","event_time":"%s","price_level":"%s","new_quantity":"%s"}'
                    % (side.encode(), v, price.encode(), qty.encode())
                    for side, price, qty in self.sim.snapshot(p)
                )
                ev = b'{"type":"snapshot","product_id":"%s","updates":[%s]}' % (p.encode(), ups)
                sess.out.push(("snap", b"l2_data", ts, ev, False))
            self.count("snapshots", len(products))
        elif channel == "market_trades":
            trades = [t for p in products for t in list(self.recent[p])[-50:]]
            ev = b'{"type":"snapshot","trades":[%s]}' % b",".join(reversed(trades))
            sess.out.push(("snap", b"market_trades", ts, ev, False))
        elif channel in ("ticker", "ticker_batch"):
            tickers = b",".join(
                self.sim.last_ticker[p] for p in products if self.sim.last_ticker[p]
            )
            sess.out.push(
                (
                    "snap",
                    channel.encode(),
                    ts,
                    b'{"type":"snapshot","tickers":[%s]}' % tickers,
                    False,
                )
            )

    # -- connections --

    def _accept(self, ls: socket.socket, listener: int) -> None:
        ls.settimeout(0.1)  # closing a listener does not wake accept(): poll for stop
        while not self.stopping.is_set():
            try:
                sock, _ = ls.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.setblocking(True)
            if self.send_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            threading.Thread(
                target=self._handle, args=(sock, listener), daemon=True, name="fake-conn"
            ).start()

    def _handle(self, raw: socket.socket, listener: int) -> None:
        self.count("tcp_connections")
        raw.settimeout(5.0)
        try:
            sock = self.tls.wrap_socket(raw, server_side=True)
            method, target, headers, early = read_request(sock)
        except (OSError, ssl.SSLError, ValueError):
            self.count("handshake_failures")
            raw.close()
            return
        if headers.get("upgrade", "").lower() == "websocket":
            if time.monotonic() < self.faults.outage_until.get(listener, 0.0):
                self.count("refused_upgrades")
                respond(sock, 503, b"<html><body>Service Unavailable</body></html>", "text/html")
                sock.close()
                return
            accept = base64.b64encode(
                hashlib.sha1(headers.get("sec-websocket-key", "").encode() + WS_GUID).digest()
            )
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            with self.lock:
                self._next_id += 1
                sess = WsSession(self, sock, self._next_id, listener)
                self.sessions[sess.conn_id] = sess
            self.count("ws_connections")
            sess.run()
            return
        try:
            self._rest(sock, method, target, headers, early)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _rest(
        self, sock: ssl.SSLSocket, method: str, target: str, headers: dict[str, str], early: bytes
    ) -> None:
        self.count("rest_requests")
        if time.monotonic() < self.faults.rest_outage_until:
            respond(
                sock,
                503,
                b"<html><body><h1>Coinbase</h1>Service Unavailable</body></html>",
                "text/html",
            )
            return
        if self.api.handle(sock, method, target, headers, early):
            return
        self.market_rest.handle(sock, method, target, headers, early)
