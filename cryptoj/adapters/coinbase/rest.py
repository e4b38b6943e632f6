"""The public REST reads the feed needs: recent trades (backfill) and the best bid/ask (polling).

Uses ``http.client`` with an explicit SSL context (the configured CA file, if any), not
``requests``: ``REQUESTS_CA_BUNDLE`` silently overrides ``session.verify`` (protocol notes §1),
and these two unauthenticated GETs need nothing more. Every call has a timeout; error bodies
are never parsed as JSON (429 bodies can be HTML).

Endpoints (public, no JWT): ``GET /api/v3/brokerage/market/products/{id}/ticker?limit=N`` and
``GET /api/v3/brokerage/market/product_book?product_id=ID&limit=1``.
"""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.parse

import msgspec

from cryptoj.adapters.coinbase.parse import pricebook_quote, trade_event
from cryptoj.adapters.coinbase.schemas import RestProductBook, RestTrades
from cryptoj.adapters.coinbase.validate import pair_problem
from cryptoj.models.market import Quote, Trade

PREFIX = "/api/v3/brokerage"


class RestError(Exception):
    """A REST call failed (transport error, timeout, non-2xx status or unexpected body)."""


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificate-verifying context; ``ca_file`` is trusted in addition to the system CAs."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(ca_file)
    return ctx


class PublicRestClient:
    """Minimal client of the public market endpoints (one connection per call)."""

    def __init__(
        self, base_url: str, *, ca_file: str | None = None, timeout_s: float = 5.0
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError(f"rest_url: expected https://host[:port], got {base_url!r}")
        self.scheme = url.scheme
        self.host = url.hostname
        self.port = url.port
        self.timeout_s = timeout_s
        self.context = ssl_context(ca_file) if url.scheme == "https" else None
        self._trades = msgspec.json.Decoder(RestTrades)
        self._book = msgspec.json.Decoder(RestProductBook)
        self.calls = 0
        self.failures = 0
        self.rejected = 0  # trades whose price or size failed the checks of .validate

    def _get(self, path: str, params: dict[str, str]) -> bytes:
        self.calls += 1
        conn: http.client.HTTPConnection
        if self.context is not None:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout_s, context=self.context
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        target = f"{PREFIX}{path}?{urllib.parse.urlencode(params)}"
        try:
            conn.request("GET", target, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.failures += 1
            raise RestError(f"GET {path}: {type(e).__name__}: {e}") from e
        finally:
            conn.close()
        if not 200 <= resp.status < 300:
            self.failures += 1
            text = body[:120].decode("utf-8", "replace").strip()
            raise RestError(f"GET {path}: HTTP {resp.status} {text}")
        return body

    def market_trades(self, product: str, limit: int = 100) -> list[Trade]:
        """The ``limit`` most recent trades of ``product``, oldest first (trades whose price or
        size fails the checks of :mod:`.validate` are left out and counted in ``rejected``)."""
        body = self._get(f"/market/products/{product}/ticker", {"limit": str(limit)})
        try:
            trades = self._trades.decode(body).trades
        except msgspec.MsgspecError as e:
            self.failures += 1
            raise RestError(f"market trades {product}: unexpected body: {e}") from e
        now = time.time_ns()
        good = [t for t in trades if pair_problem(t.price, t.size) is None]
        self.rejected += len(trades) - len(good)
        return sorted((trade_event(t, now) for t in good), key=lambda t: t.ts)

    def best_bid_ask(self, product: str) -> Quote | None:
        """The top of ``product``'s book (None when a side is empty)."""
        body = self._get("/market/product_book", {"product_id": product, "limit": "1"})
        try:
            book = self._book.decode(body).pricebook
        except msgspec.MsgspecError as e:
            self.failures += 1
            raise RestError(f"product book {product}: unexpected body: {e}") from e
        return pricebook_quote(book, time.time_ns())
