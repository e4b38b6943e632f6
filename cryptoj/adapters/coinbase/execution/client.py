"""The Coinbase Advanced Trade REST client for execution, on ``coinbase-advanced-py``'s RESTClient.

The SDK builds the URL (``https://{host:port}{path}``), signs a **fresh JWT per request** and
sends; everything else is done here:

* **Transport**: ``session.trust_env = False`` (``REQUESTS_CA_BUNDLE`` would silently override
  ``session.verify``, protocol notes §1), ``session.verify`` = the configured CA file (or the
  system store), and a timeout on every call (the SDK's default is none).
* **Rate limit**: every attempt first takes a token from a :class:`TokenBucket` (default 25/s,
  under Coinbase's 30/s); ``x-ratelimit-remaining: 0`` pauses the bucket until the reset.
* **Retries** (:mod:`.errors`): 401 once more with a fresh JWT then
  :class:`AuthenticationFailed`; 429 waits as the headers say; 5xx and transport errors retry
  with backoff, bounded by ``RetryPolicy.max_attempts``. A create is never retried here after it
  may have been processed: that raises :class:`OutcomeUnknown` and the venue looks it up.
  Waits go through the injected ``sleep``; nothing in here reads the clock but the injected ones.
* **Parsing**: the SDK's generic ``get``/``post`` return the decoded JSON; it is converted
  leniently with msgspec (:mod:`.schemas`), so a ``success:true`` body with
  ``"order_configuration": null`` (which breaks the SDK's typed ``create_order``) is an
  ordinary accepted order here. Error bodies are only read as text, cut and redacted.
* **Secrets**: messages are redacted (:func:`.errors.redact`); exceptions are raised ``from
  None`` so no SDK exception (whose text could hold more than we want) is chained. The SDK's own
  logger, which prints whole error bodies, is silenced.

Calls are serialised by a lock (one ``requests.Session``), so the venue can be used from the
ExecutionActor's thread and the ShutdownActor's at the same time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec

from cryptoj.adapters.coinbase.execution.errors import (
    CoinbaseError,
    FaultKind,
    OutcomeUnknown,
    RequestRejected,
    Retry,
    RetryPolicy,
    classify,
    decide,
)
from cryptoj.adapters.coinbase.execution.quantize import (
    OrderSpec,
    ProductRules,
    QuantizeError,
    order_body,
    rules_from_product,
)
from cryptoj.adapters.coinbase.execution.ratelimit import TokenBucket
from cryptoj.adapters.coinbase.execution.schemas import (
    AccountPage,
    CancelResponse,
    CancelResult,
    CreateResponse,
    FillPage,
    OrderEnvelope,
    OrderPage,
    RestAccount,
    RestFill,
    RestOrder,
    convert,
)
from cryptoj.adapters.coinbase.jwt_auth import Credentials

PREFIX = "/api/v3/brokerage"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
MAX_PAGES = 100
_Page = TypeVar("_Page", OrderPage, FillPage, AccountPage)


def rest_host(rest_url: str) -> str:
    """``https://host[:port]`` → ``host[:port]`` (what ``RESTClient(base_url=...)`` wants)."""
    url = urllib.parse.urlsplit(rest_url)
    if url.scheme != "https" or not url.hostname or url.path not in ("", "/"):
        raise ValueError(f"rest_url: expected https://host[:port], got {rest_url!r}")
    return url.netloc


def rfc3339_seconds(ns: int) -> str:
    """ns since the epoch → ``YYYY-MM-DDTHH:MM:SSZ`` (query parameters)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(0, ns) // 1_000_000_000))


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """The create was accepted: Coinbase's order id."""

    order_id: str
    client_order_id: str


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """The create was refused (``success: false`` or HTTP 4xx): Coinbase's reason."""

    reason: str


class CoinbaseRestClient:
    """Execution calls against ``rest_url`` with ``credentials`` (see the module docstring)."""

    def __init__(
        self,
        rest_url: str,
        credentials: Credentials,
        *,
        ca_file: str | None = None,
        timeout_s: float = 10.0,
        policy: RetryPolicy | None = None,
        limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        from coinbase.rest import RESTClient

        if timeout_s <= 0:
            raise ValueError(f"timeout_s: expected > 0, got {timeout_s}")
        self.host = rest_host(rest_url)
        self.rest_url = rest_url
        self.timeout_s = timeout_s
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or TokenBucket(25.0, 10, time.monotonic_ns)
        self.sleep = sleep
        self.wall = wall
        self.rng = rng or random.Random()
        self._secrets = (credentials.secret,)
        sdk_logger = logging.getLogger("coinbase.RESTClient")
        sdk_logger.setLevel(logging.CRITICAL)
        sdk_logger.propagate = False
        try:
            self.sdk = RESTClient(
                api_key=credentials.key_name,
                api_secret=credentials.secret,
                base_url=self.host,
                timeout=timeout_s,  # requests takes a float
                rate_limit_headers=True,
            )
        except Exception as e:  # the SDK raises bare Exceptions about the key
            raise CoinbaseError(f"cannot set up the REST client: {type(e).__name__}") from None
        self.sdk.session.trust_env = False
        self.sdk.session.verify = ca_file or True
        self._lock = threading.RLock()
        self.stats: Counter[str] = Counter()
        self.last_ok_wall: float | None = None
        self.last_error: str = ""

    # -- the call loop -------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        create: bool = False,
    ) -> dict[str, Any]:
        """One private call with the rate limit and the retry rules; the decoded JSON object."""
        attempt = 0
        while True:
            attempt += 1
            wait_ns = self.limiter.reserve()
            if wait_ns > 0:
                self.sleep(wait_ns / 1e9)
            self.stats["requests"] += 1
            try:
                with self._lock:
                    if method == "GET":
                        data = self.sdk.get(PREFIX + path, params=dict(params or {}))
                    else:
                        data = self.sdk.post(PREFIX + path, params=params, data=dict(body or {}))
                if not isinstance(data, dict):
                    raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            except Exception as e:
                fault = classify(e, secrets=self._secrets, now_s=self.wall())
                response = getattr(e, "response", None)
                if response is not None:
                    self.limiter.observe_headers(getattr(response, "headers", None), self.wall())
                self.stats[f"fault_{fault.kind}"] += 1
                self.last_error = f"{method} {path}: {fault.message}"
                decision = decide(
                    fault, attempt, self.policy, create=create, unit_random=self.rng.random()
                )
                if isinstance(decision, Retry):
                    self.stats["retries"] += 1
                    if decision.wait_s > 0:
                        self.stats["backoff_ms"] += int(decision.wait_s * 1000)
                        self.sleep(decision.wait_s)
                    continue
                if fault.kind is not FaultKind.NOT_FOUND:  # a 404 is an answer, not an error
                    self.stats["errors"] += 1
                raise decision from None
            headers = {k: data.pop(k) for k in RATE_HEADERS if k in data}
            self.limiter.observe_headers(headers, self.wall())
            self.last_ok_wall = self.wall()
            return data

    # -- orders ------------------------------------------------------------------------------

    def create_order(self, spec: OrderSpec) -> Accepted | Refused:
        """``POST /orders`` for a quantised spec.

        Raises :class:`OutcomeUnknown` when the request may have been processed but no usable
        answer came back (5xx, timeout or broken connection after sending, an unreadable
        body, ``success`` without an order id).
        """
        self.stats["creates"] += 1
        try:
            data = self.call("POST", "/orders", body=order_body(spec), create=True)
        except RequestRejected as e:
            return Refused(reason=str(e))
        try:
            resp = convert(data, CreateResponse)
        except msgspec.ValidationError as e:
            raise OutcomeUnknown(f"create order: unreadable success body ({e})") from None
        if not resp.success:
            return Refused(reason=resp.rejection_reason())
        sr = resp.success_response
        order_id = (sr.order_id if sr is not None else None) or resp.order_id
        if not order_id:
            raise OutcomeUnknown("create order: success without an order id")
        echoed = sr.client_order_id if sr is not None else None
        if echoed and echoed != spec.client_order_id:
            raise OutcomeUnknown(
                f"create order: answer names client order id {echoed}, sent {spec.client_order_id}"
            )
        return Accepted(order_id=order_id, client_order_id=spec.client_order_id)

    def cancel_orders(self, order_ids: Iterable[str]) -> list[CancelResult]:
        """``POST /orders/batch_cancel``; one result per id (``success`` per order)."""
        ids = [i for i in order_ids if i]
        if not ids:
            return []
        data = self.call("POST", "/orders/batch_cancel", body={"order_ids": ids})
        try:
            return list(convert(data, CancelResponse).results)
        except msgspec.ValidationError as e:
            raise CoinbaseError(f"batch cancel: unexpected body ({e})") from None

    def get_order(self, order_id: str) -> RestOrder | None:
        """``GET /orders/historical/{order_id}``; None when Coinbase does not know the id."""
        try:
            data = self.call("GET", f"/orders/historical/{urllib.parse.quote(order_id)}")
        except RequestRejected as e:
            if e.fault is not None and e.fault.kind is FaultKind.NOT_FOUND:
                return None
            raise
        try:
            envelope: OrderEnvelope = convert(data, OrderEnvelope)
            return envelope.order
        except msgspec.ValidationError as e:
            raise CoinbaseError(f"get order {order_id}: unexpected body ({e})") from None

    def list_orders(
        self,
        *,
        product_ids: Iterable[str] = (),
        statuses: Iterable[str] = (),
        order_ids: Iterable[str] = (),
        start_ns: int | None = None,
        limit: int = 100,
        max_pages: int = MAX_PAGES,
    ) -> list[RestOrder]:
        """``GET /orders/historical/batch``, every page (``has_next`` / ``cursor``).

        ``OPEN`` must be the only status when given (Coinbase refuses the combination with a
        400), and ``start_ns`` is not applied by Coinbase to open orders.
        """
        statuses = list(statuses)
        if "OPEN" in statuses and len(statuses) > 1:
            raise ValueError(f"order_status OPEN cannot be combined with others: {statuses}")
        params: dict[str, Any] = {"limit": limit}
        if product_ids:
            params["product_ids"] = list(product_ids)
        if statuses:
            params["order_status"] = list(statuses)
        if order_ids:
            params["order_ids"] = list(order_ids)
        if start_ns is not None:
            params["start_date"] = rfc3339_seconds(start_ns)
        pages = self._pages("/orders/historical/batch", params, OrderPage, "list orders", max_pages)
        return [o for page in pages for o in page.orders]

    def find_order(self, client_order_id: str, product: str, since_ns: int) -> RestOrder | None:
        """The order with ``client_order_id`` created since ``since_ns``, or None.

        Coinbase's rules for ``order_status`` (list orders): ``OPEN`` cannot be combined with
        any other status, and ``start_date`` does not apply to open orders. So the lookup is
        up to three separate listings of the product, stopping at the first hit: every status
        since ``since_ns`` (no status filter), then ``OPEN`` alone (no ``start_date``), then
        ``PENDING`` alone (in case the first listing leaves working orders out).
        """
        self.stats["lookups"] += 1
        queries: tuple[tuple[tuple[str, ...], int | None], ...] = (
            ((), since_ns),
            (("OPEN",), None),
            (("PENDING",), since_ns),
        )
        for statuses, start_ns in queries:
            for o in self.list_orders(product_ids=[product], statuses=statuses, start_ns=start_ns):
                if o.client_order_id == client_order_id:
                    return o
        return None

    def list_fills(
        self,
        *,
        order_ids: Iterable[str] = (),
        product_ids: Iterable[str] = (),
        since: str | None = None,
        limit: int = 100,
        max_pages: int = MAX_PAGES,
    ) -> list[RestFill]:
        """``GET /orders/historical/fills`` from ``since`` (a ``sequence_timestamp``), all pages."""
        params: dict[str, Any] = {"limit": limit}
        if order_ids:
            params["order_ids"] = list(order_ids)
        if product_ids:
            params["product_ids"] = list(product_ids)
        if since:
            params["start_sequence_timestamp"] = since
        pages = self._pages("/orders/historical/fills", params, FillPage, "list fills", max_pages)
        return [f for page in pages for f in page.fills]

    # -- account and products ------------------------------------------------------------------

    def accounts(self, *, limit: int = 250, max_pages: int = MAX_PAGES) -> list[RestAccount]:
        """``GET /accounts``, every page."""
        params: dict[str, Any] = {"limit": limit}
        pages = self._pages("/accounts", params, AccountPage, "accounts", max_pages)
        return [a for page in pages for a in page.accounts]

    def _pages(
        self,
        path: str,
        params: dict[str, Any],
        page_type: type[_Page],
        what: str,
        max_pages: int,
    ) -> list[_Page]:
        """Every page of a cursor-paginated ``GET``: until ``has_next`` is false (orders,
        accounts) or the cursor is empty (fills have no ``has_next``)."""
        out: list[_Page] = []
        for _ in range(max_pages):
            data = self.call("GET", path, params=params)
            try:
                page = convert(data, page_type)
            except msgspec.ValidationError as e:
                raise CoinbaseError(f"{what}: unexpected body ({e})") from None
            out.append(page)
            if not getattr(page, "has_next", True) or not page.cursor:
                return out
            params = {**params, "cursor": page.cursor}
        raise CoinbaseError(f"{what}: more than {max_pages} pages")

    def product(self, product_id: str) -> ProductRules:
        """``GET /products/{id}`` as :class:`ProductRules`."""
        data = self.call("GET", f"/products/{urllib.parse.quote(product_id)}")
        try:
            return rules_from_product(data)
        except QuantizeError as e:
            raise CoinbaseError(f"product {product_id}: {e}") from None

    def products(self) -> dict[str, ProductRules]:
        """``GET /products``: the rules of every product that has usable rules."""
        data = self.call("GET", "/products")
        out: dict[str, ProductRules] = {}
        items = data.get("products")
        for item in items if isinstance(items, list) else []:
            try:
                rules = rules_from_product(item)
            except QuantizeError:
                continue
            out[rules.product_id] = rules
        return out


__all__ = [
    "Accepted",
    "CoinbaseRestClient",
    "Refused",
    "rest_host",
    "rfc3339_seconds",
]
