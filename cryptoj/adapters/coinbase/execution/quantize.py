"""Product rules and order quantisation before anything is sent (pure).

Coinbase refuses sizes and prices that are not multiples of the product's increments or that
fall outside its minimums and maximums (``GET /products/{id}``: ``base_increment``,
``quote_increment``, ``price_increment``, ``base_min_size``, ``base_max_size``,
``quote_min_size``, ``quote_max_size``, and the trading flags ``status``, ``trading_disabled``,
``cancel_only``, ``limit_only``, ``post_only``). :func:`quantize` rounds an :class:`OrderSpec`
to the increments and checks the bounds, so a refusal is ours, immediate and explained, and
never a round trip:

* base sizes and quote sizes are rounded **down** (never trade more than asked);
* limit prices are rounded to the passive side: a BUY **down**, a SELL **up** (never pay more,
  never sell for less than asked); so is a market BUY's ``max_price`` (down), which sends it as
  a limit IOC (``sor_limit_ioc``) at that price;
* stop prices are rounded so the stop triggers no later than asked: ``STOP_DOWN`` **up**,
  ``STOP_UP`` **down**;
* after rounding: size ≥ ``base_min_size`` and ≤ ``base_max_size``; quote size (market BUY by
  quote) within ``quote_min_size`` .. ``quote_max_size``; the notional of a limit or stop-limit
  order (size × limit price), and of a market order when a reference price is given, at least
  ``quote_min_size`` (a maximum of 0 means "no maximum");
* product flags: not ``online``, ``trading_disabled`` or ``cancel_only`` refuse every order;
  ``limit_only`` refuses market orders; ``post_only`` refuses anything but post-only limits.

Increments need not be powers of ten: rounding is ``floor(x / inc) × inc`` (or ceil) in a
60-digit decimal context. :func:`order_body` builds the ``POST /orders`` body, with decimals
written in plain notation (never an exponent).
"""

from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

from cryptoj.models.orders import Side, ceil_to, floor_to

_CTX = Context(prec=60)
_ZERO = Decimal(0)

OrderKind = Literal["market", "limit", "stop_limit"]
StopDirection = Literal["STOP_DIRECTION_STOP_UP", "STOP_DIRECTION_STOP_DOWN"]


class QuantizeError(ValueError):
    """The order cannot be sent as asked (the message says which rule and which values)."""


class ProductRules(msgspec.Struct, frozen=True, kw_only=True):
    """The trading rules of one product (from ``GET /api/v3/brokerage/products/{id}``)."""

    product_id: str
    base_increment: Decimal
    quote_increment: Decimal
    price_increment: Decimal
    base_min_size: Decimal = _ZERO
    base_max_size: Decimal = _ZERO  # 0 = no maximum
    quote_min_size: Decimal = _ZERO
    quote_max_size: Decimal = _ZERO  # 0 = no maximum
    status: str = "online"
    trading_disabled: bool = False
    cancel_only: bool = False
    limit_only: bool = False
    post_only: bool = False

    def __post_init__(self) -> None:
        for name in ("base_increment", "quote_increment", "price_increment"):
            value = getattr(self, name)
            if not value.is_finite() or value <= 0:
                raise QuantizeError(f"{self.product_id}: {name} must be positive, got {value}")


class OrderSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What to send: a market IOC (base or quote size), a limit GTC, or a stop-limit GTC."""

    client_order_id: str
    product: str
    side: Side
    kind: OrderKind
    base_size: Decimal | None = None
    quote_size: Decimal | None = None  # market BUY only
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_direction: StopDirection | None = None  # default: SELL → STOP_DOWN, BUY → STOP_UP
    post_only: bool = False
    #: market BUY by base size only: the highest price it may fill at; sent as a limit IOC at
    #: it (``sor_limit_ioc``), so a moved book cannot make it cost more than was reserved
    max_price: Decimal | None = None


def plain(x: Decimal) -> str:
    """``x`` in plain notation without trailing zeros: ``Decimal('1E+2')`` → ``'100'``."""
    text = format(x.normalize(_CTX), "f")
    return "0" if text in ("-0", "") else text


def _positive(name: str, value: Decimal | None) -> Decimal:
    if value is None:
        raise QuantizeError(f"{name} is required")
    try:
        ok = value.is_finite() and value > 0
    except (InvalidOperation, AttributeError):
        ok = False
    if not ok:
        raise QuantizeError(f"{name} must be a positive number, got {value}")
    return value


def _check_product(spec: OrderSpec, rules: ProductRules) -> None:
    if spec.product != rules.product_id:
        raise QuantizeError(f"rules of {rules.product_id} applied to an order for {spec.product}")
    if rules.status.lower() != "online":
        raise QuantizeError(f"{spec.product} is not online (status {rules.status!r})")
    if rules.trading_disabled:
        raise QuantizeError(f"{spec.product}: trading is disabled")
    if rules.cancel_only:
        raise QuantizeError(f"{spec.product} is cancel-only")
    if rules.limit_only and spec.kind == "market":
        raise QuantizeError(f"{spec.product} is limit-only: market orders are refused")
    if rules.post_only and not (spec.kind == "limit" and spec.post_only):
        raise QuantizeError(f"{spec.product} is post-only: only post-only limit orders are allowed")


def _at_most(spec: OrderSpec, what: str, value: Decimal, maximum: Decimal) -> None:
    """Refuse ``value`` above the product's ``maximum`` (0: no maximum)."""
    if maximum > 0 and value > maximum:
        raise QuantizeError(
            f"{spec.product}: {what} {plain(value)} above the maximum {plain(maximum)}"
        )


def _size(
    spec: OrderSpec,
    what: str,
    raw: Decimal,
    increment: Decimal,
    minimum: Decimal,
    maximum: Decimal,
) -> Decimal:
    """``raw`` floored to ``increment``; refused below ``minimum`` (or 0) or above ``maximum``."""
    size = floor_to(raw, increment)
    if size <= 0 or size < minimum:
        raise QuantizeError(
            f"{spec.product}: {what} {plain(raw)} rounds to {plain(size)}, below the minimum "
            f"{plain(minimum)} (increment {plain(increment)})"
        )
    _at_most(spec, what, size, maximum)
    return size


def _base(spec: OrderSpec, rules: ProductRules) -> Decimal:
    raw = _positive("base size", spec.base_size)
    return _size(spec, "size", raw, rules.base_increment, rules.base_min_size, rules.base_max_size)


def _notional(spec: OrderSpec, rules: ProductRules, size: Decimal, price: Decimal) -> None:
    value = _CTX.multiply(size, price)
    if value < rules.quote_min_size:
        raise QuantizeError(
            f"{spec.product}: notional {plain(value)} ({plain(size)} × {plain(price)}) below "
            f"the minimum {plain(rules.quote_min_size)}"
        )
    _at_most(spec, "notional", value, rules.quote_max_size)


def quantize(
    spec: OrderSpec, rules: ProductRules, *, reference_price: Decimal | None = None
) -> OrderSpec:
    """``spec`` rounded to the product's increments; :class:`QuantizeError` if it cannot be sent.

    ``reference_price`` (e.g. the last mid) lets a market order by base size be checked against
    ``quote_min_size`` too.
    """
    if not spec.client_order_id:
        raise QuantizeError("client_order_id is empty (it would switch idempotency off)")
    if len(spec.client_order_id) > 128:
        raise QuantizeError("client_order_id is longer than 128 characters")
    _check_product(spec, rules)
    if spec.post_only and spec.kind != "limit":
        raise QuantizeError("post_only applies to limit orders only")
    if spec.kind == "market":
        if spec.limit_price is not None or spec.stop_price is not None:
            raise QuantizeError("a market order has no limit or stop price")
        if (spec.base_size is None) == (spec.quote_size is None):
            raise QuantizeError("a market order needs exactly one of base size and quote size")
        if spec.quote_size is not None:
            if spec.side is not Side.BUY:
                raise QuantizeError("a market order by quote size must be a BUY")
            raw = _positive("quote size", spec.quote_size)
            quote = _size(
                spec,
                "quote size",
                raw,
                rules.quote_increment,
                rules.quote_min_size,
                rules.quote_max_size,
            )
            return msgspec.structs.replace(spec, quote_size=quote)
        size = _base(spec, rules)
        if reference_price is not None and reference_price > 0:
            _notional(spec, rules, size, reference_price)
        if spec.max_price is None:
            return msgspec.structs.replace(spec, base_size=size)
        if spec.side is not Side.BUY:
            raise QuantizeError("a market order's max price applies to a BUY only")
        cap = floor_to(_positive("max price", spec.max_price), rules.price_increment)
        if cap <= 0:
            raise QuantizeError(f"{spec.product}: max price {plain(spec.max_price)} rounds to 0")
        return msgspec.structs.replace(spec, base_size=size, max_price=cap)
    if spec.max_price is not None:
        raise QuantizeError("only market BUY orders take a max price (a limit has its own)")
    if spec.quote_size is not None:
        raise QuantizeError("only market BUY orders can be sized in quote currency")
    size = _base(spec, rules)
    raw_limit = _positive("limit price", spec.limit_price)
    if spec.side is Side.BUY:
        limit = floor_to(raw_limit, rules.price_increment)
    else:
        limit = ceil_to(raw_limit, rules.price_increment)
    if limit <= 0:
        raise QuantizeError(f"{spec.product}: limit price {plain(raw_limit)} rounds to 0")
    _notional(spec, rules, size, limit)
    if spec.kind == "limit":
        if spec.stop_price is not None:
            raise QuantizeError("a limit order has no stop price (use stop_limit)")
        return msgspec.structs.replace(spec, base_size=size, limit_price=limit)
    raw_stop = _positive("stop price", spec.stop_price)
    direction = spec.stop_direction or (
        "STOP_DIRECTION_STOP_DOWN" if spec.side is Side.SELL else "STOP_DIRECTION_STOP_UP"
    )
    if direction == "STOP_DIRECTION_STOP_DOWN":
        stop = ceil_to(raw_stop, rules.price_increment)
    else:
        stop = floor_to(raw_stop, rules.price_increment)
    if stop <= 0:
        raise QuantizeError(f"{spec.product}: stop price {plain(raw_stop)} rounds to 0")
    return msgspec.structs.replace(
        spec, base_size=size, limit_price=limit, stop_price=stop, stop_direction=direction
    )


def order_configuration(spec: OrderSpec) -> dict[str, Any]:
    """The ``order_configuration`` object of a (quantised) spec: exactly one key."""
    if spec.kind == "market":
        if spec.quote_size is not None:
            return {"market_market_ioc": {"quote_size": plain(spec.quote_size)}}
        assert spec.base_size is not None
        if spec.max_price is not None:  # a market buy that fills no higher: limit IOC
            return {
                "sor_limit_ioc": {
                    "base_size": plain(spec.base_size),
                    "limit_price": plain(spec.max_price),
                }
            }
        return {"market_market_ioc": {"base_size": plain(spec.base_size)}}
    assert spec.base_size is not None and spec.limit_price is not None
    if spec.kind == "limit":
        return {
            "limit_limit_gtc": {
                "base_size": plain(spec.base_size),
                "limit_price": plain(spec.limit_price),
                "post_only": spec.post_only,
            }
        }
    assert spec.stop_price is not None and spec.stop_direction is not None
    return {
        "stop_limit_stop_limit_gtc": {
            "base_size": plain(spec.base_size),
            "limit_price": plain(spec.limit_price),
            "stop_price": plain(spec.stop_price),
            "stop_direction": spec.stop_direction,
        }
    }


def order_body(spec: OrderSpec) -> dict[str, Any]:
    """The JSON body of ``POST /api/v3/brokerage/orders`` for a quantised spec."""
    return {
        "client_order_id": spec.client_order_id,
        "product_id": spec.product,
        "side": str(spec.side),
        "order_configuration": order_configuration(spec),
    }


def rules_from_product(data: Any) -> ProductRules:
    """:class:`ProductRules` from a decoded product object; :class:`QuantizeError` if unusable.

    Booleans may arrive as JSON booleans or as strings; missing minimums and maximums are 0.
    """
    if not isinstance(data, dict):
        raise QuantizeError(f"product: expected an object, got {type(data).__name__}")
    pid = data.get("product_id")
    if not isinstance(pid, str) or not pid:
        raise QuantizeError("product: no product_id")

    def dec(name: str, required: bool) -> Decimal:
        raw = data.get(name)
        if raw in (None, ""):
            if required:
                raise QuantizeError(f"product {pid}: {name} is missing")
            return _ZERO
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise QuantizeError(f"product {pid}: {name} is not a number: {raw!r}") from None
        if not value.is_finite() or value < 0:
            raise QuantizeError(f"product {pid}: {name} must be >= 0, got {raw!r}")
        return value

    def flag(name: str) -> bool:
        raw = data.get(name)
        return raw is True or (isinstance(raw, str) and raw.lower() == "true")

    return ProductRules(
        product_id=pid,
        base_increment=dec("base_increment", True),
        quote_increment=dec("quote_increment", True),
        price_increment=dec("price_increment", False) or dec("quote_increment", True),
        base_min_size=dec("base_min_size", False),
        base_max_size=dec("base_max_size", False),
        quote_min_size=dec("quote_min_size", False),
        quote_max_size=dec("quote_max_size", False),
        status=str(data.get("status") or "online"),
        trading_disabled=flag("trading_disabled") or flag("is_disabled"),
        cancel_only=flag("cancel_only"),
        limit_only=flag("limit_only"),
        post_only=flag("post_only"),
    )


__all__ = [
    "OrderKind",
    "OrderSpec",
    "ProductRules",
    "QuantizeError",
    "StopDirection",
    "order_body",
    "order_configuration",
    "plain",
    "quantize",
    "rules_from_product",
]
