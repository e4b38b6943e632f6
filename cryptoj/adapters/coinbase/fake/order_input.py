"""Parse and check a ``POST /orders`` body against the product rules (pure, no state).

A bad request is a :class:`Rejection` (HTTP 200, ``success:false``), never an exception. The
codes, where no real body was recorded, are our best reading of Coinbase's enums [INF]:

* no / empty ``client_order_id``: ``INVALID_ARGUMENT`` (*);
* unknown product: ``INVALID_PRODUCT_ID``; trading disabled or cancel only:
  ``ORDER_ENTRY_DISABLED``; side not BUY / SELL: ``INVALID_SIDE``;
* configuration missing, unknown, malformed, ``quote_size`` on a SELL, or a GTD without an
  RFC 3339 ``end_time``: ``UNSUPPORTED_ORDER_CONFIGURATION``. Accepted configurations:
  ``market_market_ioc``, ``limit_limit_gtc``, ``limit_limit_gtd``, ``sor_limit_ioc`` (what the
  SDK calls limit IOC), ``limit_limit_fok``, ``stop_limit_stop_limit_gtc`` and
  ``stop_limit_stop_limit_gtd`` (``post_only`` only on the GTC / GTD limits);
* size not a positive decimal string or off its increment: ``INVALID_SIZE_PRECISION``
  (preview ``PREVIEW_INVALID_SIZE_PRECISION``);
* price not a positive decimal string: ``INVALID_LIMIT_PRICE``; off the price increment:
  ``INVALID_PRICE_PRECISION`` (previews ``PREVIEW_`` + the same);
* size or order value out of the product's bounds:
  ``PREVIEW_INVALID_{BASE,QUOTE}_SIZE_TOO_{SMALL,LARGE}`` (*);
* (in :mod:`.exchange`) not enough available balance: ``INSUFFICIENT_FUND``
  (``PREVIEW_INSUFFICIENT_FUND``, message ``Insufficient balance in source account``); a
  crossing post-only limit: ``INVALID_LIMIT_PRICE_POST_ONLY``.

``error`` equals ``new_order_failure_reason`` except for (*), where ``new_order_failure_reason``
is ``UNKNOWN_FAILURE_REASON`` and the cause is in ``error`` and ``preview_failure_reason`` (as
real traces of too-small orders suggest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptoj.adapters.coinbase.fake.orders import parse_rfc3339
from cryptoj.adapters.coinbase.fake.products import ProductSpec, fmt

CONFIG_KINDS = {  # order_configuration key → (kind, time in force)
    "market_market_ioc": ("market", "IOC"),
    "limit_limit_gtc": ("limit", "GTC"),
    "limit_limit_gtd": ("limit", "GTD"),
    "sor_limit_ioc": ("limit", "IOC"),
    "limit_limit_fok": ("limit", "FOK"),
    "stop_limit_stop_limit_gtc": ("stop_limit", "GTC"),
    "stop_limit_stop_limit_gtd": ("stop_limit", "GTD"),
}
STOP_DIRECTIONS = frozenset({"STOP_DIRECTION_STOP_UP", "STOP_DIRECTION_STOP_DOWN"})
UNKNOWN = "UNKNOWN_FAILURE_REASON"
UNKNOWN_PREVIEW = "UNKNOWN_PREVIEW_FAILURE_REASON"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a create was refused; ``body()`` is the ``success:false`` answer."""

    error: str
    message: str
    new_order_failure_reason: str = ""
    preview_failure_reason: str = UNKNOWN_PREVIEW

    def body(self, request: Any) -> dict[str, Any]:
        """The HTTP 200 ``success:false`` body (echoing the request's configuration)."""
        out: dict[str, Any] = {
            "success": False,
            "failure_reason": UNKNOWN,
            "order_id": "",
            "error_response": {
                "error": self.error,
                "message": self.message,
                "error_details": self.message,
                "preview_failure_reason": self.preview_failure_reason,
                "new_order_failure_reason": self.new_order_failure_reason or self.error,
            },
        }
        config = request.get("order_configuration") if isinstance(request, dict) else None
        if isinstance(config, dict):
            out["order_configuration"] = config
        return out


def reject(error: str, message: str, preview: str = UNKNOWN_PREVIEW) -> Rejection:
    """A rejection whose ``new_order_failure_reason`` is ``error``."""
    return Rejection(error, message, error, preview)


def reject_preview(reason: str, message: str) -> Rejection:
    """A rejection told only by its preview reason (``new_order_failure_reason`` unknown)."""
    return Rejection(reason, message, UNKNOWN, reason)


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A well-formed order request (static checks passed; funds not yet checked)."""

    client_order_id: str
    product_id: str
    side: str
    kind: str  # market | limit | stop_limit
    config: dict[str, Any]
    base_size: Decimal | None
    quote_size: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_direction: str
    post_only: bool
    config_key: str = "market_market_ioc"
    time_in_force: str = "GTC"  # GTC | GTD | IOC | FOK
    end_ns: int | None = None  # GTD only


def parse_order(body: Any, specs: Mapping[str, ProductSpec]) -> NewOrder | Rejection:
    """Check ``body`` (the decoded JSON) against the product rules."""
    if not isinstance(body, dict):
        return Rejection("INVALID_ARGUMENT", "the body must be a JSON object", UNKNOWN)
    coid = body.get("client_order_id")
    if not isinstance(coid, str) or not coid.strip():
        return Rejection("INVALID_ARGUMENT", "client_order_id is required", UNKNOWN)
    product = body.get("product_id")
    spec = specs.get(product) if isinstance(product, str) else None
    if spec is None:
        return reject("INVALID_PRODUCT_ID", f"unknown product_id {product!r}")
    if spec.trading_disabled or spec.cancel_only:
        return reject("ORDER_ENTRY_DISABLED", f"{spec.product_id} does not take new orders")
    side = body.get("side")
    if side not in ("BUY", "SELL"):
        return reject("INVALID_SIDE", f"side must be BUY or SELL, not {side!r}")
    config = body.get("order_configuration")
    if not isinstance(config, dict) or len(config) != 1:
        return reject(
            "UNSUPPORTED_ORDER_CONFIGURATION", "order_configuration must hold exactly one kind"
        )
    ((key, fields),) = config.items()
    found = CONFIG_KINDS.get(key)
    if found is None or not isinstance(fields, dict):
        return reject(
            "UNSUPPORTED_ORDER_CONFIGURATION",
            f"order_configuration {key!r} is not supported (use one of {sorted(CONFIG_KINDS)})",
        )
    kind, tif = found
    end_ns: int | None = None
    if tif == "GTD":
        end = fields.get("end_time")
        try:
            end_ns = parse_rfc3339(end) if isinstance(end, str) else None
        except ValueError:
            end_ns = None
        if end_ns is None:
            return reject(
                "UNSUPPORTED_ORDER_CONFIGURATION", f"{key} needs an RFC 3339 end_time, not {end!r}"
            )
    parsed = _fields(
        coid, spec, side, kind, fields, post_only_allowed=key.startswith("limit_limit_g")
    )
    if isinstance(parsed, Rejection):
        return parsed
    config = dict(parsed.config)
    if end_ns is not None:
        config["end_time"] = fields["end_time"]
    return replace(parsed, config_key=key, time_in_force=tif, end_ns=end_ns, config=config)


def _fields(
    coid: str,
    spec: ProductSpec,
    side: str,
    kind: str,
    fields: dict[str, Any],
    *,
    post_only_allowed: bool,
) -> NewOrder | Rejection:
    quote: Decimal | None = None
    base: Decimal | None = None
    if kind == "market":
        if spec.limit_only or spec.post_only:
            return reject("UNSUPPORTED_ORDER_CONFIGURATION", f"{spec.product_id} is limit only")
        has_q, has_b = "quote_size" in fields, "base_size" in fields
        if has_q == has_b:
            return reject(
                "UNSUPPORTED_ORDER_CONFIGURATION",
                "market_market_ioc needs exactly one of base_size or quote_size",
            )
        if has_q and side == "SELL":
            return reject(
                "UNSUPPORTED_ORDER_CONFIGURATION", "quote_size is for BUY market orders only"
            )
    elif "base_size" not in fields:
        return reject("UNSUPPORTED_ORDER_CONFIGURATION", f"{kind} orders need base_size")
    if "quote_size" in fields:
        q = _decimal(fields["quote_size"])
        if q is None or q <= 0 or q % spec.quote_increment:
            return reject(
                "INVALID_SIZE_PRECISION",
                f"quote_size {fields['quote_size']!r} is not a positive multiple of "
                f"{fmt(spec.quote_increment)}",
                "PREVIEW_INVALID_SIZE_PRECISION",
            )
        if q < spec.quote_min_size:
            return reject_preview(
                "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
                f"quote_size {fmt(q)} is below quote_min_size {fmt(spec.quote_min_size)}",
            )
        if q > spec.quote_max_size:
            return reject_preview(
                "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE",
                f"quote_size {fmt(q)} is above quote_max_size {fmt(spec.quote_max_size)}",
            )
        quote = q
    else:
        b = _decimal(fields.get("base_size"))
        if b is None or b <= 0 or b % spec.base_increment:
            return reject(
                "INVALID_SIZE_PRECISION",
                f"base_size {fields.get('base_size')!r} is not a positive multiple of "
                f"{fmt(spec.base_increment)}",
                "PREVIEW_INVALID_SIZE_PRECISION",
            )
        if b < spec.base_min_size:
            return reject_preview(
                "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL",
                f"base_size {fmt(b)} is below base_min_size {fmt(spec.base_min_size)}",
            )
        if b > spec.base_max_size:
            return reject_preview(
                "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE",
                f"base_size {fmt(b)} is above base_max_size {fmt(spec.base_max_size)}",
            )
        base = b
    limit = stop = None
    direction = ""
    post_only = False
    if kind in ("limit", "stop_limit"):
        limit_or_reason = _price(fields, "limit_price", spec)
        if isinstance(limit_or_reason, Rejection):
            return limit_or_reason
        limit = limit_or_reason
        assert base is not None
        if limit * base < spec.quote_min_size:
            return reject_preview(
                "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
                f"order value {fmt(limit * base)} is below quote_min_size "
                f"{fmt(spec.quote_min_size)}",
            )
    if kind == "limit" and post_only_allowed:
        po = fields.get("post_only", False)
        if po in ("true", "false"):
            po = po == "true"
        if not isinstance(po, bool):
            return reject("UNSUPPORTED_ORDER_CONFIGURATION", f"post_only {po!r} is not a bool")
        if spec.post_only and not po:
            return reject("UNSUPPORTED_ORDER_CONFIGURATION", f"{spec.product_id} is post only")
        post_only = po
    if kind == "stop_limit":
        stop_or_reason = _price(fields, "stop_price", spec)
        if isinstance(stop_or_reason, Rejection):
            return stop_or_reason
        stop = stop_or_reason
        direction = fields.get("stop_direction", "")
        if direction not in STOP_DIRECTIONS:
            return reject(
                "UNSUPPORTED_ORDER_CONFIGURATION",
                f"stop_direction {direction!r} is not one of {sorted(STOP_DIRECTIONS)}",
            )
    normal = _normalised(kind, base, quote, limit, stop, direction, post_only, post_only_allowed)
    return NewOrder(
        coid, spec.product_id, side, kind, normal, base, quote, limit, stop, direction, post_only
    )


def _price(fields: dict[str, Any], name: str, spec: ProductSpec) -> Decimal | Rejection:
    p = _decimal(fields.get(name))
    if p is None or p <= 0:
        return reject(
            "INVALID_LIMIT_PRICE",
            f"{name} {fields.get(name)!r} is not a positive decimal string",
            "PREVIEW_INVALID_LIMIT_PRICE",
        )
    if p % spec.price_increment:
        return reject(
            "INVALID_PRICE_PRECISION",
            f"{name} {fmt(p)} is not a multiple of price_increment {fmt(spec.price_increment)}",
            "PREVIEW_INVALID_PRICE_PRECISION",
        )
    return p


def _decimal(v: Any) -> Decimal | None:
    if not isinstance(v, str):
        return None
    try:
        d = Decimal(v.strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _normalised(
    kind: str,
    base: Decimal | None,
    quote: Decimal | None,
    limit: Decimal | None,
    stop: Decimal | None,
    direction: str,
    post_only: bool,
    post_only_allowed: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if quote is not None:
        out["quote_size"] = fmt(quote)
    if base is not None:
        out["base_size"] = fmt(base)
    if limit is not None:
        out["limit_price"] = fmt(limit)
    if stop is not None:
        out["stop_price"] = fmt(stop)
    if kind == "stop_limit":
        out["stop_direction"] = direction
    if kind == "limit" and post_only_allowed:
        out["post_only"] = post_only
    return out
