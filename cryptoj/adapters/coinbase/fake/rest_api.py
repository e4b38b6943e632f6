"""The fake exchange's trading REST API (prefix ``/api/v3/brokerage``): routing, JWT checks,
fault switches (:mod:`.rest_faults`), and the answers of :mod:`.exchange` / :mod:`.queries`.

Private (JWT): ``POST /orders``, ``POST /orders/batch_cancel``, ``GET /orders/historical/{id}``,
``GET /orders/historical/batch``, ``GET /orders/historical/fills``, ``GET /accounts``,
``GET /accounts/{uuid}``, ``GET /products``, ``GET /products/{id}``, ``GET /transaction_summary``.
Public: ``GET /market/products``, ``GET /market/products/{id}``. Other paths fall through to the
market-data reads of :mod:`.server`.

Without a registered API key the private endpoints accept every call (authentication off).
A bad body or query answers 400 with a JSON ``INVALID_ARGUMENT`` error; an unknown order 404
with the recorded not-found body; a bad JWT 401 with the plain-text body ``Unauthorized``.
Every answer carries ``x-ratelimit-limit`` / ``-remaining`` / ``-reset`` headers
(``FakeCoinbase.rate_headers``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cryptoj.adapters.coinbase.fake import queries
from cryptoj.adapters.coinbase.fake.exchange import Exchange
from cryptoj.adapters.coinbase.fake.order_input import reject
from cryptoj.adapters.coinbase.fake.products import ProductSpec, default_specs, product_json
from cryptoj.adapters.coinbase.fake.rest_faults import REQUEST_KINDS, Fault, RestFaults
from cryptoj.adapters.coinbase.fake.wire import read_body, respond

if TYPE_CHECKING:
    from cryptoj.adapters.coinbase.fake.server import FakeCoinbase
    from cryptoj.adapters.coinbase.fake.sim import ProductStep

PREFIX = "/api/v3/brokerage"
JSON = "application/json"
NOT_FOUND = {
    "error": "unknown",
    "error_details": "order with this orderID was not found",
    "message": "order with this orderID was not found",
}
RATE_HTML = (
    b"<!DOCTYPE html><html><head><title>429 Too Many Requests</title></head>"
    b"<body><h1>Coinbase</h1><p>Too Many Requests</p></body></html>"
)
RATE_JSON = b'{"errors":[{"id":"rate_limit_exceeded","message":"Too many requests"}]}'
DEEP = 100_000  # levels handed to the matching engine (the whole modelled book)


class Answer(Exception):
    """Stop handling and answer ``status`` with ``body`` (a dict → JSON, bytes as they are)."""

    def __init__(self, status: int, body: dict[str, Any] | bytes, ctype: str = JSON) -> None:
        super().__init__(status)
        self.status, self.body, self.ctype = status, body, ctype


def bad_request(message: str) -> Answer:
    """A 400 ``INVALID_ARGUMENT`` answer (gRPC-gateway shape)."""
    return Answer(
        400,
        {"error": "INVALID_ARGUMENT", "code": 3, "message": message, "error_details": message},
    )


def make_exchange(
    products: Sequence[str],
    balances: Mapping[str, Decimal | str | int] | None,
    taker_fee: Decimal | str,
    maker_fee: Decimal | str,
    product_specs: Mapping[str, ProductSpec] | None,
) -> Exchange:
    """The fake's exchange: the sim's products (specs overridable), starting balances (default
    100,000 USD), fee rates; the wall clock and uuid4 order ids."""
    return Exchange(
        default_specs(products) | dict(product_specs or {}),
        {"USD": Decimal(100_000)} if balances is None else balances,
        clock=time.time_ns,
        ids=lambda: str(uuid.uuid4()),
        taker_fee=Decimal(taker_fee),
        maker_fee=Decimal(maker_fee),
    )


class RestApi:
    """Routes private REST calls into the exchange; see the module docstring."""

    def __init__(self, fake: FakeCoinbase) -> None:
        self.fake = fake
        self.faults = RestFaults()
        self.last_trade: dict[str, Decimal] = {}
        self.auth_failures: deque[str] = deque(maxlen=50)

    # -- routing -----------------------------------------------------------------------------

    @staticmethod
    def route(method: str, path: str) -> tuple[str, str] | None:
        """``(endpoint, argument)`` for a path under the prefix, None when not ours."""
        parts = path.removeprefix(PREFIX).strip("/").split("/")
        if method == "POST":
            if parts == ["orders"]:
                return "create", ""
            if parts == ["orders", "batch_cancel"]:
                return "cancel", ""
            return None
        if method != "GET":
            return None
        if parts[:2] == ["orders", "historical"] and len(parts) == 3:
            return {"batch": ("list", ""), "fills": ("fills", "")}.get(parts[2], ("get", parts[2]))
        if parts[0] in ("accounts", "products") and len(parts) <= 2:
            name = parts[0] if len(parts) == 1 else parts[0].removesuffix("s")
            return name, parts[1] if len(parts) == 2 else ""
        if parts == ["transaction_summary"]:
            return "fees", ""
        if parts[:2] == ["market", "products"] and len(parts) <= 3:
            return ("public_products", "") if len(parts) == 2 else ("public_product", parts[2])
        return None

    def handle(
        self,
        sock: ssl.SSLSocket,
        method: str,
        target: str,
        headers: dict[str, str],
        early: bytes,
    ) -> bool:
        """Answer the call if it is ours (True), else leave it to the caller (False)."""
        url = urllib.parse.urlsplit(target)
        if not url.path.startswith(PREFIX):
            return False
        found = self.route(method, url.path)
        if found is None:
            return False
        endpoint, arg = found
        fake = self.fake
        fake.count(f"rest_{endpoint}")
        rate = fake.rate_headers(public=endpoint.startswith("public_"))
        try:
            body = read_body(sock, headers, early)
        except (OSError, ValueError) as e:
            respond(
                sock,
                400,
                json.dumps({"error": "INVALID_ARGUMENT", "message": str(e)}).encode(),
                JSON,
                rate,
            )
            return True
        if not endpoint.startswith("public_") and fake.auth is not None:
            host = headers.get("host") or f"127.0.0.1:{fake.ports[0]}"
            reason = fake.auth.verify_rest(headers.get("authorization"), method, host, url.path)
            if reason:
                fake.count("rest_unauthorized")
                self.auth_failures.append(f"{method} {url.path}: {reason}")
                respond(sock, 401, b"Unauthorized", "text/plain", rate)
                return True
        fault, drawn = (
            (None, False) if endpoint.startswith("public_") else self.faults.take(endpoint)
        )
        if fault is not None:
            fake.count(f"{fault.kind}_injected")
            if drawn:
                fake.count("random_faults_injected")
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self._serve(sock, endpoint, arg, query, body, fault, rate)
        return True

    # -- one call ----------------------------------------------------------------------------

    def _serve(
        self,
        sock: ssl.SSLSocket,
        endpoint: str,
        arg: str,
        query: queries.Query,
        raw: bytes,
        fault: Fault | None,
        rate: dict[str, str],
    ) -> None:
        kind = fault.kind if fault else ""
        if fault and kind == "rest_429":
            self._rate_limited(sock, fault)
            return
        if fault and kind == "rest_5xx" and not _truthy(fault.get("commit", False)):
            self._server_error(sock, fault)
            return
        delay = float(fault.get("seconds", 2.0)) if fault and kind == "rest_delay" else 0.0
        late = fault is not None and fault.get("commit", "before") == "after"
        if delay and late and self.fake.stopping.wait(delay):
            return
        try:
            status, answer = 200, self._process(endpoint, arg, query, raw, fault)
        except Answer as a:
            status, answer = a.status, a.body
        if fault and kind == "rest_5xx":
            self._server_error(sock, fault)
            return
        if fault and kind == "drop_after_commit":
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            return
        if delay and not late and self.fake.stopping.wait(delay):
            return
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        respond(sock, status, data, JSON, rate)

    def _process(
        self, endpoint: str, arg: str, query: queries.Query, raw: bytes, fault: Fault | None
    ) -> dict[str, Any] | bytes:
        fake = self.fake
        body: Any = None
        if endpoint in ("create", "cancel"):
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise bad_request("the request body is not valid JSON") from None
        if fault and fault.kind == "order_reject":
            reason = str(fault.get("reason", "INSUFFICIENT_FUND"))
            message = str(fault.get("message", "Insufficient balance in source account"))
            return reject(reason, message, f"PREVIEW_{reason}").body(body)
        fake.lock_waiters += 1
        with fake.lock:
            fake.lock_waiters -= 1
            try:
                answer = self._locked(endpoint, arg, query, body)
            finally:
                fake.user.publish(fake.exchange.take_new_events())
        if fault and fault.kind == "null_config" and answer.get("success") is True:
            answer["order_configuration"] = None
        return answer

    def _locked(self, endpoint: str, arg: str, query: queries.Query, body: Any) -> dict[str, Any]:
        ex = self.fake.exchange
        try:
            if endpoint == "create":
                return ex.create(body, lambda p: self.fake.sim.top(p, DEEP), self._price)
            if endpoint == "cancel":
                ids = body.get("order_ids") if isinstance(body, dict) else None
                if not isinstance(ids, list) or not ids or len(ids) > 100:
                    raise bad_request("order_ids must be a list of 1 to 100 order ids")
                if not all(isinstance(i, str) for i in ids):
                    raise bad_request("order_ids must be strings")
                return {"results": ex.cancel(ids)}
            if endpoint == "get":
                o = ex.orders.get(arg)
                if o is None:
                    raise Answer(404, NOT_FOUND)
                return {"order": o.to_json(queries.USER_ID, queries.PORTFOLIO_ID)}
            if endpoint == "list":
                return queries.list_orders(ex, query)
            if endpoint == "fills":
                return queries.list_fills(ex, query)
            if endpoint == "accounts":
                return queries.accounts(ex, query, self.fake.started_ns)
            if endpoint == "account":
                cur = queries.find_account(ex, arg)
                if cur is None:
                    raise Answer(404, {"error": "NOT_FOUND", "message": f"account {arg} not found"})
                return {"account": queries.account_json(ex, cur, self.fake.started_ns)}
            if endpoint == "fees":
                return queries.transaction_summary(ex)
            if endpoint in ("products", "public_products"):
                items = [product_json(s, self._price(p)) for p, s in ex.specs.items()]
                return {"products": items, "num_products": len(items), "pagination": None}
            spec = ex.specs.get(arg)  # product / public_product
            if spec is None:
                raise Answer(404, {"error": "NOT_FOUND", "message": f"product {arg} not found"})
            return product_json(spec, self._price(arg))
        except queries.BadRequest as e:
            raise bad_request(str(e)) from None

    def _price(self, product: str) -> Decimal | None:
        if product in self.last_trade:
            return self.last_trade[product]
        if product not in self.fake.sim.products:
            return None
        bids, _ = self.fake.sim.top(product, 1)
        return bids[0][0] if bids else None

    # -- fault answers -----------------------------------------------------------------------

    def _rate_limited(self, sock: ssl.SSLSocket, fault: Fault) -> None:
        retry = int(fault.get("retry_after", 1))
        headers = {
            "x-ratelimit-limit": "30",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(time.time()) + retry),
            "Retry-After": str(retry),
        }
        if fault.get("body", "html") == "json":
            respond(sock, 429, RATE_JSON, JSON, headers)
        else:
            respond(sock, 429, RATE_HTML, "text/html", headers)

    @staticmethod
    def _server_error(sock: ssl.SSLSocket, fault: Fault) -> None:
        status = int(fault.get("status", 503))
        if status == 500:
            body = {"error": "INTERNAL", "code": 13, "message": "internal error", "details": []}
            respond(sock, 500, json.dumps(body).encode(), JSON)
        else:
            page = f"<html><body><h1>Coinbase</h1><p>{status} error</p></body></html>"
            respond(sock, status, page.encode(), "text/html")

    # -- the market moves --------------------------------------------------------------------

    def on_step(self, step: dict[str, ProductStep]) -> None:
        """A recorded step (caller holds the fake's lock): stops, resting fills, user events."""
        ex = self.fake.exchange
        for p, s in step.items():
            if s.trades:
                self.last_trade[p] = Decimal(s.trades[-1][1])
            if ex.has_open(p):
                prices = [Decimal(t[1]) for t in s.trades]
                ex.on_market(p, self.fake.sim.top(p, DEEP), prices)
        events = ex.take_new_events()
        if events:
            self.fake.user.publish(events)

    def inject(self, kind: str, kw: dict[str, Any]) -> dict[str, Any] | None:
        """Arm one of the trading faults (None: not one of ours); ValueError on bad input."""
        n = int(kw.get("count", 1))
        if kind in REQUEST_KINDS:
            self.faults.arm(kind, n, {k: v for k, v in kw.items() if k != "count"})
        elif kind == "order_fault_rate":
            self.faults.set_random(
                float(kw.get("rate", 0.0)),
                None if kw.get("seed") is None else int(kw["seed"]),
                kw.get("kinds"),
                kw.get("endpoints"),
                kw.get("delay_s"),
            )
        elif kind == "user_disconnect":
            mode = str(kw.get("mode", "drop"))
            if mode not in ("drop", "clean"):
                raise ValueError(f"user_disconnect mode must be drop or clean, not {mode!r}")
            n = self.fake.user.disconnect(mode)
            self.fake.count("user_disconnect_injected", n)
        elif kind == "user_replay":
            recent = int(kw.get("orders", 20))
            if n < 1 or recent < 0:
                raise ValueError("user_replay needs count >= 1 and orders >= 0")
            with self.fake.lock:
                self.fake.user.replays_armed += n
                self.fake.user.replay_recent = recent
        else:
            return None
        return {"ok": True, "kind": kind, "count": n}

    def state(self) -> dict[str, Any]:
        """Pending faults, random mode, the last authentication failures."""
        return {**self.faults.state(), "auth_failures": list(self.auth_failures)}


def _truthy(v: Any) -> bool:
    return v is True or str(v).lower() in ("1", "true", "yes", "after")
