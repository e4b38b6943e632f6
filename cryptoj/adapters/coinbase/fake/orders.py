"""Orders and fills of the fake exchange, and their wire shapes (REST Order, Fill, UserOrder).

Money (the execution contract): a fill's notional is ``price × size`` truncated to 1e-8, its
fee is ``notional × rate`` truncated to 1e-8 -- except for quote-sized market buys, which follow
the recorded Coinbase order (``list_orders_market_buy_quote_size_filled_BTC-USDT.json``): each
fill's spend is split into ``value = spend / (1 + rate)`` truncated to 16 decimals and
``fee = spend - value``, the base size is ``value / price`` truncated to 16 decimals, so
``total_value_after_fees`` is exactly the quote size; their fills report ``size`` in the quote
currency with ``size_in_quote: true`` (as the recorded fill does). An order's ``filled_value``
and ``total_fees`` are the sums over its fills, ``average_filled_price = filled_value /
filled_size``. A BUY costs ``notional + fee`` of the quote currency, a SELL yields
``notional - fee``.

Shapes follow the recorded REST bodies (``shared/data/coinbase/rest/``) and the protocol notes
§4.3 for the user channel. Choices where nothing was recorded [INF]: the user channel's
``order_type`` is capitalised (``Market``, ``Limit``, ``StopLimit``; real logs show ``Limit``);
a stop-limit order is ``OPEN`` with ``trigger_status`` ``STOP_PENDING`` until the
last trade price reaches its stop, then ``STOP_TRIGGERED``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from cryptoj.adapters.coinbase.fake.products import fmt
from cryptoj.adapters.coinbase.parse import format_rfc3339_ns

Q8 = Decimal("0.00000001")
ZERO = Decimal(0)
OPEN_STATUSES = frozenset({"OPEN"})
STATUSES = frozenset(
    {"PENDING", "OPEN", "FILLED", "CANCELLED", "EXPIRED", "FAILED", "UNKNOWN_ORDER_STATUS"}
)
ORDER_TYPES = {"market": "MARKET", "limit": "LIMIT", "stop_limit": "STOP_LIMIT"}
USER_ORDER_TYPES = {"market": "Market", "limit": "Limit", "stop_limit": "StopLimit"}
TIME_IN_FORCE = {
    "GTC": "GOOD_UNTIL_CANCELLED",
    "GTD": "GOOD_UNTIL_DATE_TIME",
    "IOC": "IMMEDIATE_OR_CANCEL",
    "FOK": "FILL_OR_KILL",
}


def trunc8(d: Decimal) -> Decimal:
    """Truncate (toward zero) to 1e-8."""
    return d.quantize(Q8, ROUND_DOWN)


def floor_to(d: Decimal, increment: Decimal) -> Decimal:
    """The largest multiple of ``increment`` not above ``d`` (``d >= 0``)."""
    return (d / increment).to_integral_value(ROUND_DOWN) * increment


def rfc3339(ns: int) -> str:
    """ns since the epoch → RFC 3339 UTC with nanoseconds."""
    return format_rfc3339_ns(ns)


def parse_rfc3339(s: str) -> int:
    """RFC 3339 → ns since the epoch (0-9 fractional digits; ``Z`` or an offset)."""
    text = s.strip().replace("z", "Z")
    frac_ns = 0
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac_ns = int((digits + "000000000")[:9]) if digits else 0
        text = head + rest
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1_000_000_000 + frac_ns


@dataclass(slots=True)
class Fill:
    """One execution of one order."""

    seq: int
    trade_id: str
    order_id: str
    product_id: str
    side: str
    price: Decimal
    size: Decimal
    notional: Decimal
    commission: Decimal
    liquidity: str  # MAKER | TAKER
    time_ns: int
    size_in_quote: bool = False  # a quote-sized order's fill: ``size`` on the wire is the value

    def to_json(self, user_id: str) -> dict[str, Any]:
        """The REST Fill object (``GET /orders/historical/fills``)."""
        t = rfc3339(self.time_ns)
        return {
            "entry_id": f"{self.seq:016x}",
            "trade_id": self.trade_id,
            "order_id": self.order_id,
            "trade_time": t,
            "trade_type": "FILL",
            "price": fmt(self.price),
            "size": fmt(self.notional if self.size_in_quote else self.size),
            "commission": fmt(self.commission),
            "product_id": self.product_id,
            "sequence_timestamp": t,
            "liquidity_indicator": self.liquidity,
            "size_in_quote": self.size_in_quote,
            "user_id": user_id,
            "side": self.side,
            "retail_portfolio_id": "",
        }


@dataclass(slots=True)
class Order:
    """An accepted order and its cumulative state."""

    seq: int
    order_id: str
    client_order_id: str
    product_id: str
    side: str  # BUY | SELL
    kind: str  # market | limit | stop_limit
    config: dict[str, Any]  # the order_configuration as received (normalised strings)
    created_ns: int
    base_size: Decimal | None = None
    quote_size: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_direction: str = ""
    post_only: bool = False
    config_key: str = ""  # the order_configuration key (default: the kind's GTC / IOC one)
    time_in_force: str = ""  # GTC | GTD | IOC | FOK (default: the kind's)
    end_ns: int | None = None  # GTD: expires then
    status: str = "PENDING"
    triggered: bool = False
    filled_size: Decimal = ZERO
    filled_value: Decimal = ZERO
    total_fees: Decimal = ZERO
    number_of_fills: int = 0
    hold: Decimal = ZERO  # still held for this order (quote for a BUY, base for a SELL)
    last_fill_ns: int = 0
    cancel_reason: str = ""
    fills: list[Fill] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.config_key = self.config_key or _config_key(self.kind)
        self.time_in_force = self.time_in_force or ("IOC" if self.kind == "market" else "GTC")

    @property
    def is_open(self) -> bool:
        """Still working (resting, or a stop waiting for its trigger)."""
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        """Base size still to fill (base-sized orders)."""
        return (self.base_size or ZERO) - self.filled_size

    def average_price(self) -> Decimal:
        """``filled_value / filled_size`` (0 before the first fill)."""
        return self.filled_value / self.filled_size if self.filled_size else ZERO

    def value_after_fees(self) -> Decimal:
        """What the order cost (BUY) or yielded (SELL) in the quote currency."""
        if self.side == "BUY":
            return self.filled_value + self.total_fees
        return self.filled_value - self.total_fees

    def completion(self) -> Decimal:
        """Percent complete (by base size; by quote value for quote-sized orders, whose
        sub-increment dust still counts as complete once FILLED)."""
        if self.status == "FILLED":
            return Decimal(100)
        if self.quote_size:
            done = self.value_after_fees() / self.quote_size * 100
        elif self.base_size:
            done = self.filled_size / self.base_size * 100
        else:
            done = ZERO
        return min(Decimal(100), done.quantize(Decimal("0.01"), ROUND_DOWN))

    def success_response(self) -> dict[str, str]:
        """The create answer's ``success_response`` (the same for every repeat)."""
        return {
            "order_id": self.order_id,
            "product_id": self.product_id,
            "side": self.side,
            "client_order_id": self.client_order_id,
        }

    def trigger_status(self) -> str:
        """``INVALID_ORDER_TYPE`` unless a stop order."""
        if self.kind != "stop_limit":
            return "INVALID_ORDER_TYPE"
        return "STOP_TRIGGERED" if self.triggered else "STOP_PENDING"

    def to_json(self, user_id: str, portfolio_id: str) -> dict[str, Any]:
        """The REST Order object (``GET /orders/historical/{id}``, list orders)."""
        return {
            "order_id": self.order_id,
            "product_id": self.product_id,
            "user_id": user_id,
            "order_configuration": {self.config_key: dict(self.config)},
            "side": self.side,
            "client_order_id": self.client_order_id,
            "status": self.status,
            "time_in_force": TIME_IN_FORCE[self.time_in_force],
            "created_time": rfc3339(self.created_ns),
            "completion_percentage": fmt(self.completion()),
            "filled_size": fmt(self.filled_size),
            "average_filled_price": fmt(self.average_price()),
            "fee": "",
            "number_of_fills": str(self.number_of_fills),
            "filled_value": fmt(self.filled_value),
            "pending_cancel": False,
            "size_in_quote": self.quote_size is not None,
            "total_fees": fmt(self.total_fees),
            "size_inclusive_of_fees": self.quote_size is not None,
            "total_value_after_fees": fmt(self.value_after_fees()),
            "trigger_status": self.trigger_status(),
            "order_type": ORDER_TYPES[self.kind],
            "reject_reason": "REJECT_REASON_UNSPECIFIED",
            "settled": not self.is_open,
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": self.cancel_reason,
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": fmt(self.hold),
            "is_liquidation": False,
            "last_fill_time": rfc3339(self.last_fill_ns) if self.last_fill_ns else None,
            "edit_history": [],
            "leverage": "",
            "margin_type": "UNKNOWN_MARGIN_TYPE",
            "retail_portfolio_id": portfolio_id,
            "originating_order_id": "",
            "attached_order_id": "",
        }

    def to_user(self, status: str | None = None) -> dict[str, Any]:
        """The user channel's UserOrder (cumulative quantities), with ``status`` overridden
        for the transient ``PENDING``."""
        working = (status or self.status) in ("OPEN", "PENDING")
        if not working:
            leaves = ZERO
        elif self.quote_size is not None:  # quote-sized: what is left of the quote amount
            leaves = self.quote_size - self.value_after_fees()
        else:
            leaves = self.remaining
        return {
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "status": status or self.status,
            "product_id": self.product_id,
            "product_type": "SPOT",
            "order_side": self.side,
            "order_type": USER_ORDER_TYPES[self.kind],
            "time_in_force": TIME_IN_FORCE[self.time_in_force],
            "creation_time": rfc3339(self.created_ns),
            "avg_price": fmt(self.average_price()),
            "cumulative_quantity": fmt(self.filled_size),
            "leaves_quantity": fmt(leaves),
            "limit_price": fmt(self.limit_price) if self.limit_price is not None else "0",
            "stop_price": fmt(self.stop_price) if self.stop_price is not None else "0",
            "post_only": "true" if self.post_only else "false",
            "total_fees": fmt(self.total_fees),
            "filled_value": fmt(self.filled_value),
            "number_of_fills": str(self.number_of_fills),
            "completion_percentage": fmt(self.completion()),
            "outstanding_hold_amount": fmt(self.hold),
            "total_value_after_fees": fmt(self.value_after_fees()),
            "trigger_status": self.trigger_status(),
            "cancel_reason": self.cancel_reason,
            "reject_reason": "",
            "contract_expiry_type": "UNKNOWN_CONTRACT_EXPIRY_TYPE",
            "risk_managed_by": "UNKNOWN_RISK_MANAGEMENT_TYPE",
            "retail_portfolio_id": "",
        }


def _config_key(kind: str) -> str:
    return {
        "market": "market_market_ioc",
        "limit": "limit_limit_gtc",
        "stop_limit": "stop_limit_stop_limit_gtc",
    }[kind]
