"""The fake exchange's read side: list orders, list fills, accounts, fee summary, soak summary.

Query parameters arrive as ``urllib.parse.parse_qs`` output (lists: ``product_ids`` repeats;
the singular ``product_id`` filters too). A bad parameter raises :class:`BadRequest` (the REST
layer answers 400 ``INVALID_ARGUMENT``).

Filters as Coinbase documents them: ``order_status`` ``OPEN`` combined with any other status is
refused (400 ``INVALID_ARGUMENT``, the generic error shape of protocol notes §3.3; the exact
error text was not recorded [INF]); ``start_date`` / ``end_date`` do not apply to a listing of
``OPEN`` orders.

Pagination [INF where not recorded]:

* orders: newest first; ``limit`` (default 100, at most 1000); the answer's ``cursor`` names the
  last order returned, the next page starts after it, so orders created meanwhile never shift a
  page; ``has_next`` says whether more match; ``cursor`` is ``""`` on the last page;
* fills: the same, newest first, but the answer has no ``has_next`` (``cursor`` ``""`` when done);
* accounts: by currency; ``limit`` (default 49, at most 250), ``cursor`` an offset;
  ``has_next``, ``cursor``, ``size`` (accounts in this page).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from cryptoj.adapters.coinbase.fake.exchange import PORTFOLIO_ID, USER_ID, Exchange
from cryptoj.adapters.coinbase.fake.orders import (
    ORDER_TYPES,
    STATUSES,
    ZERO,
    Fill,
    Order,
    parse_rfc3339,
    rfc3339,
)
from cryptoj.adapters.coinbase.fake.products import fmt

Query = dict[str, list[str]]
T = TypeVar("T")


OPEN_ALONE = "order_status OPEN cannot be combined with other statuses"


class BadRequest(ValueError):
    """A query parameter the fake cannot use (answered with HTTP 400)."""


def _one(q: Query, name: str) -> str | None:
    values = q.get(name)
    return values[-1] if values else None


def _limit(q: Query, default: int, most: int) -> int:
    raw = _one(q, "limit")
    if raw is None or raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        raise BadRequest(f"limit {raw!r} is not an integer") from None
    if n < 1:
        raise BadRequest(f"limit {n} must be >= 1")
    return min(n, most)


def _cursor(q: Query) -> int | None:
    raw = _one(q, "cursor")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"cursor {raw!r} is not one this server gave") from None


def _time(q: Query, name: str) -> int | None:
    raw = _one(q, name)
    if not raw:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise BadRequest(f"{name} {raw!r} is not an RFC 3339 time") from None


def _products(q: Query) -> set[str]:
    """The product filter: ``product_ids`` (repeated) and the singular ``product_id``."""
    return {p for p in q.get("product_ids", []) + q.get("product_id", []) if p}


def _page(
    items: Iterable[T],
    keep: Callable[[T], bool],
    seq: Callable[[T], int],
    limit: int,
    after: int | None,
) -> tuple[list[T], bool]:
    """Newest-first items older than the cursor ``after``, up to ``limit``; and has_next."""
    out: list[T] = []
    for it in items:
        if after is not None and seq(it) >= after:
            continue
        if keep(it):
            if len(out) == limit:
                return out, True
            out.append(it)
    return out, False


def _newest_first(xs: list[T]) -> Iterator[T]:
    return reversed(xs)


def list_orders(ex: Exchange, q: Query) -> dict[str, Any]:
    """``GET /orders/historical/batch``."""
    ids = set(q.get("order_ids", []))
    products = _products(q)
    statuses = set(q.get("order_status", []))
    if bad := statuses - STATUSES:
        raise BadRequest(f"order_status {sorted(bad)} not in {sorted(STATUSES)}")
    if "OPEN" in statuses and len(statuses) > 1:  # Coinbase's documented rule
        raise BadRequest(OPEN_ALONE)
    types = set(q.get("order_types", []))
    if bad := types - set(ORDER_TYPES.values()):
        raise BadRequest(f"order_types {sorted(bad)} not in {sorted(ORDER_TYPES.values())}")
    side = _one(q, "order_side")
    if side not in (None, "", "BUY", "SELL"):
        raise BadRequest(f"order_side {side!r} is not BUY or SELL")
    start, end = _time(q, "start_date"), _time(q, "end_date")
    if statuses == {"OPEN"}:  # the date range does not apply to open orders
        start = end = None

    def keep(o: Order) -> bool:
        return (
            (not ids or o.order_id in ids)
            and (not products or o.product_id in products)
            and (not statuses or o.status in statuses)
            and (not types or ORDER_TYPES[o.kind] in types)
            and (not side or o.side == side)
            and (start is None or o.created_ns >= start)
            and (end is None or o.created_ns <= end)
        )

    page, more = _page(
        _newest_first(ex.order_list), keep, lambda o: o.seq, _limit(q, 100, 1000), _cursor(q)
    )
    return {
        "orders": [o.to_json(USER_ID, PORTFOLIO_ID) for o in page],
        "sequence": "0",
        "has_next": more,
        "cursor": str(page[-1].seq) if more else "",
    }


def list_fills(ex: Exchange, q: Query) -> dict[str, Any]:
    """``GET /orders/historical/fills`` (no ``has_next``; ``cursor`` ``""`` when done)."""
    ids = set(q.get("order_ids", []))
    trades = set(q.get("trade_ids", []))
    products = _products(q)
    start = _time(q, "start_sequence_timestamp")
    end = _time(q, "end_sequence_timestamp")

    def keep(f: Fill) -> bool:
        return (
            (not ids or f.order_id in ids)
            and (not trades or f.trade_id in trades)
            and (not products or f.product_id in products)
            and (start is None or f.time_ns >= start)
            and (end is None or f.time_ns <= end)
        )

    page, more = _page(
        _newest_first(ex.fills), keep, lambda f: f.seq, _limit(q, 100, 1000), _cursor(q)
    )
    return {
        "fills": [f.to_json(USER_ID) for f in page],
        "cursor": str(page[-1].seq) if more else "",
    }


def account_uuid(currency: str) -> str:
    """A stable account id per currency."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cryptoj-fake-coinbase/account/{currency}"))


def account_json(ex: Exchange, currency: str, created_ns: int) -> dict[str, Any]:
    """The REST Account object (shape from the SDK and ccxt; no real capture exists)."""
    t = rfc3339(created_ns)
    return {
        "uuid": account_uuid(currency),
        "name": f"{currency} Wallet",
        "currency": currency,
        "available_balance": {"value": fmt(ex.available(currency)), "currency": currency},
        "default": True,
        "active": True,
        "created_at": t,
        "updated_at": t,
        "deleted_at": None,
        "type": "ACCOUNT_TYPE_FIAT" if currency in ("USD", "EUR", "GBP") else "ACCOUNT_TYPE_CRYPTO",
        "ready": True,
        "hold": {"value": fmt(ex.held.get(currency, ZERO)), "currency": currency},
        "retail_portfolio_id": PORTFOLIO_ID,
        "platform": "ACCOUNT_PLATFORM_CONSUMER",
    }


def accounts(ex: Exchange, q: Query, created_ns: int) -> dict[str, Any]:
    """``GET /accounts``."""
    limit = _limit(q, 49, 250)
    start = _cursor(q) or 0
    currencies = list(ex.totals)
    page = currencies[start : start + limit]
    more = start + limit < len(currencies)
    return {
        "accounts": [account_json(ex, c, created_ns) for c in page],
        "has_next": more,
        "cursor": str(start + limit) if more else "",
        "size": len(page),
    }


def find_account(ex: Exchange, account_id: str) -> str | None:
    """The currency of the account ``account_id``, if it exists."""
    return next((c for c in ex.totals if account_uuid(c) == account_id), None)


def transaction_summary(ex: Exchange) -> dict[str, Any]:
    """``GET /transaction_summary``: the configured fee rates and what was traded."""
    return {
        "total_volume": fmt(ex.volume),
        "total_fees": fmt(ex.fees),
        "fee_tier": {
            "pricing_tier": "fake",
            "usd_from": "0",
            "usd_to": "",
            "taker_fee_rate": fmt(ex.taker_fee),
            "maker_fee_rate": fmt(ex.maker_fee),
            "aop_from": "",
            "aop_to": "",
        },
        "margin_rate": None,
        "goods_and_services_tax": None,
        "advanced_trade_only_volume": fmt(ex.volume),
        "advanced_trade_only_fees": fmt(ex.fees),
        "coinbase_pro_volume": "0",
        "coinbase_pro_fees": "0",
        "total_balance": "",
        "has_promo_fee": False,
    }


def summary(ex: Exchange) -> dict[str, Any]:
    """What a soak test checks: orders per client_order_id, every order and fill, balances."""
    per_client = Counter(o.client_order_id for o in ex.order_list)
    return {
        "orders_per_client_order_id": dict(per_client),
        "duplicate_client_order_ids": sorted(c for c, n in per_client.items() if n > 1),
        "create_requests_per_client_order_id": dict(ex.create_requests),
        "orders": [o.to_json(USER_ID, PORTFOLIO_ID) for o in ex.order_list],
        "fills": [f.to_json(USER_ID) for f in ex.fills],
        "balances": {
            c: {"total": fmt(t), "available": fmt(ex.available(c)), "hold": fmt(ex.held[c])}
            for c, t in ex.totals.items()
        },
        "open_orders": sum(len(d) for d in ex.open.values()),
        "volume": fmt(ex.volume),
        "fees": fmt(ex.fees),
        "invariant_violations": ex.invariant_violations(),
    }
