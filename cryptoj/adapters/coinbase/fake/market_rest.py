"""The fake exchange's market-data REST reads and the rate-limit headers of every answer.

Public (no JWT): ``GET /market/products/{id}/ticker``, ``GET /market/product_book``, ``GET /time``,
and the history calls of :mod:`.history` (``/market/products/{id}/candles``, ``ticker`` with a
time range).
Private (a JWT when the fake has a key, as on Coinbase): ``GET /product_book``,
``GET /best_bid_ask``. The whole request is read before answering (closing a socket with unread
bytes would reset the connection); an unknown path answers a clean 404, a ``limit`` that is not
a positive integer 400 ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from cryptoj.adapters.coinbase.fake.history import HistoryError
from cryptoj.adapters.coinbase.fake.products import fmt
from cryptoj.adapters.coinbase.fake.rest_api import RATE_HTML, RATE_JSON
from cryptoj.adapters.coinbase.fake.wire import read_body, respond
from cryptoj.adapters.coinbase.parse import format_rfc3339_ns

if TYPE_CHECKING:
    from cryptoj.adapters.coinbase.fake.server import FakeCoinbase

PRIVATE_READS = frozenset({"/product_book", "/best_bid_ask"})  # JWT, unlike /market/...
JSON = "application/json"


class BadLimit(ValueError):
    """A ``limit`` query parameter that is not a positive integer (answered 400)."""


def int_limit(q: dict[str, list[str]], default: int) -> int:
    """The ``limit`` parameter (``default`` when absent); :class:`BadLimit` when unusable."""
    raw = q.get("limit", [""])[-1]
    if raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        raise BadLimit(f"limit {raw!r} is not an integer") from None
    if n < 1:
        raise BadLimit(f"limit {n} must be >= 1")
    return n


class RateWindow:
    """``x-ratelimit-*`` headers: Coinbase's documented limits (30 requests per second per key
    on private endpoints, 10 per IP on public ones), the requests left in the current second,
    and the second it resets at (Unix time). Reported, not enforced (the ``rest_429`` fault
    answers 429)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows = {True: [0, 0], False: [0, 0]}  # public? → [unix second, requests]

    def headers(self, public: bool) -> dict[str, str]:
        """The headers of one more answer."""
        second = int(time.time())
        limit = 10 if public else 30
        with self._lock:
            window = self._windows[public]
            if window[0] != second:
                window[0], window[1] = second, 0
            window[1] += 1
            used = window[1]
        return {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(0, limit - used)),
            "x-ratelimit-reset": str(second + 1),
        }


class MarketRest:
    """Answers the REST calls :class:`~.rest_api.RestApi` does not route."""

    def __init__(self, fake: FakeCoinbase) -> None:
        self.fake = fake

    def handle(
        self,
        sock: ssl.SSLSocket,
        method: str,
        target: str,
        headers: dict[str, str],
        early: bytes,
    ) -> None:
        """Answer one request (every path: unknown ones get 404)."""
        fake = self.fake
        url = urllib.parse.urlsplit(target)
        q = urllib.parse.parse_qs(url.query)
        path = url.path.removeprefix("/api/v3/brokerage")
        rate = fake.rate_headers(public=path not in PRIVATE_READS)
        try:  # read the whole request first: closing with unread bytes resets the connection
            read_body(sock, headers, early)
        except (OSError, ValueError) as e:
            message = json.dumps({"error": "INVALID_ARGUMENT", "message": str(e)}).encode()
            respond(sock, 400, message, JSON, rate)
            return
        if path in PRIVATE_READS and fake.auth is not None:
            host = headers.get("host") or f"127.0.0.1:{fake.ports[0]}"
            reason = fake.auth.verify_rest(headers.get("authorization"), method, host, url.path)
            if reason:
                fake.count("rest_unauthorized")
                fake.api.auth_failures.append(f"{method} {url.path}: {reason}")
                respond(sock, 401, b"Unauthorized", "text/plain", rate)
                return
        if self._history(sock, method, path, q, rate):
            return
        try:
            body = self._read(method, path, q)
        except BadLimit as e:
            error = {
                "error": "INVALID_ARGUMENT",
                "code": 3,
                "message": str(e),
                "error_details": str(e),
            }
            respond(sock, 400, json.dumps(error).encode(), JSON, rate)
            return
        if body is None:
            respond(sock, 404, b'{"error":"NOT_FOUND","code":5,"message":"not found"}', JSON, rate)
        else:
            respond(sock, 200, json.dumps(body).encode(), JSON, rate)

    def _history(
        self,
        sock: ssl.SSLSocket,
        method: str,
        path: str,
        q: dict[str, list[str]],
        rate: dict[str, str],
    ) -> bool:
        """Answer a candles call or a ticker call with a time range (:mod:`.history`); False
        when the call is not one of those."""
        parts = path.strip("/").split("/")
        if method != "GET" or len(parts) != 4 or parts[:2] != ["market", "products"]:
            return False
        timed = "start" in q or "end" in q
        if parts[3] != "candles" and not (parts[3] == "ticker" and timed):
            return False
        fake = self.fake
        fake.count(f"public_{parts[3]}")
        fault = fake.market_history.take_fault()
        if fault is not None:
            kind, params = fault
            fake.count(f"{kind}_injected")
            if kind == "public_429":
                retry = int(params.get("retry_after", 1))
                headers = {**rate, "x-ratelimit-remaining": "0", "Retry-After": str(retry)}
                if params.get("body", "json") == "html":
                    respond(sock, 429, RATE_HTML, "text/html", headers)
                else:
                    respond(sock, 429, RATE_JSON, JSON, headers)
            else:
                status = int(params.get("status", 503))
                page = f"<html><body><h1>Coinbase</h1><p>{status} error</p></body></html>"
                respond(sock, status, page.encode(), "text/html", rate)
            return True
        try:
            history = fake.market_history
            if parts[3] == "candles":
                body = history.candles(parts[2], q)
            else:
                body = history.trades(parts[2], q)
        except HistoryError as e:
            code = {400: ("INVALID_ARGUMENT", 3), 404: ("NOT_FOUND", 5)}[e.status]
            error = {"error": code[0], "code": code[1], "message": str(e), "error_details": str(e)}
            respond(sock, e.status, json.dumps(error).encode(), JSON, rate)
            return True
        respond(sock, 200, json.dumps(body).encode(), JSON, rate)
        return True

    def _read(self, method: str, path: str, q: dict[str, list[str]]) -> dict[str, Any] | None:
        fake = self.fake
        parts = path.strip("/").split("/")
        if method != "GET":
            return None
        with fake.lock:
            if len(parts) == 4 and parts[:2] == ["market", "products"] and parts[3] == "ticker":
                p = parts[2]
                if p not in fake.recent:
                    return None
                limit = int_limit(q, 100)
                trades = [json.loads(t) for t in list(fake.recent[p])[-limit:]][::-1]
                bids, asks = fake.sim.top(p)
                return {
                    "trades": trades,
                    "best_bid": fmt(bids[0][0]) if bids else "",
                    "best_ask": fmt(asks[0][0]) if asks else "",
                }
            if path in ("/market/product_book", "/product_book"):
                p = q.get("product_id", [""])[0]
                return (
                    {"pricebook": self._pricebook(p, int_limit(q, 1))} if p in fake.recent else None
                )
            if path == "/best_bid_ask":
                ps = q.get("product_ids", list(fake.sim.products))
                return {"pricebooks": [self._pricebook(p, 1) for p in ps if p in fake.recent]}
        if path == "/time":
            now = time.time()
            return {
                "iso": format_rfc3339_ns(int(now * 1e9)),
                "epochSeconds": str(int(now)),
                "epochMillis": str(int(now * 1000)),
            }
        return None

    def _pricebook(self, p: str, levels: int) -> dict[str, Any]:
        bids, asks = self.fake.sim.top(p, levels)
        return {
            "product_id": p,
            "bids": [{"price": fmt(pr), "size": fmt(sz)} for pr, sz in bids],
            "asks": [{"price": fmt(pr), "size": fmt(sz)} for pr, sz in asks],
            "time": format_rfc3339_ns(time.time_ns()),
        }
