"""Wire shapes of the Coinbase execution API (REST bodies, user-channel frames), parsed leniently.

Every struct ignores unknown fields and gives every field a default, strings may be ``null``
and numbers may be strings, JSON numbers or ``""`` (Coinbase sends decimal strings; empty
strings appear for unset prices). :func:`dec` turns such a value into a ``Decimal`` or None.
Parsing never raises anything but :class:`msgspec.ValidationError` / ``DecodeError``, which the
client turns into a ``bad_body`` fault.

Field lists: protocol notes §3 (REST) and §4.3 (``UserOrder``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

Num = str | int | float | None


def reason_text(*candidates: str | None) -> str:
    """The first meaningful reason (Coinbase fills unset ones with ``*_UNSPECIFIED`` etc.)."""
    for c in candidates:
        if c and not c.endswith("_UNSPECIFIED") and not c.startswith("UNKNOWN_"):
            return c
    return ""


def dec(value: object) -> Decimal | None:
    """A finite Decimal from a decimal string / JSON number, or None (missing, ``""``, invalid)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


class _Lenient(msgspec.Struct, kw_only=True):
    """Base: unknown fields are ignored."""


class RestOrder(_Lenient, kw_only=True):
    """An order as ``GET /orders/historical/...`` returns it (cumulative quantities)."""

    order_id: str | None = None
    client_order_id: str | None = None
    product_id: str | None = None
    side: str | None = None
    status: str | None = None
    order_type: str | None = None
    filled_size: Num = None
    filled_value: Num = None
    total_fees: Num = None
    average_filled_price: Num = None
    number_of_fills: Num = None
    created_time: str | None = None
    last_fill_time: str | None = None
    reject_reason: str | None = None
    reject_message: str | None = None
    cancel_message: str | None = None


class OrderEnvelope(_Lenient, kw_only=True):
    """``GET /orders/historical/{order_id}``."""

    order: RestOrder | None = None


class OrderPage(_Lenient, kw_only=True):
    """``GET /orders/historical/batch``."""

    orders: list[RestOrder] = msgspec.field(default_factory=list)
    has_next: bool = False
    cursor: str | None = None


class RestFill(_Lenient, kw_only=True):
    """One execution from ``GET /orders/historical/fills``."""

    entry_id: str | None = None
    trade_id: str | None = None
    order_id: str | None = None
    product_id: str | None = None
    price: Num = None
    size: Num = None
    commission: Num = None
    liquidity_indicator: str | None = None
    side: str | None = None
    trade_time: str | None = None
    sequence_timestamp: str | None = None


class FillPage(_Lenient, kw_only=True):
    """``GET /orders/historical/fills`` (``cursor`` is ``""`` on the last page; no has_next)."""

    fills: list[RestFill] = msgspec.field(default_factory=list)
    cursor: str | None = None


class Amount(_Lenient, kw_only=True):
    """``{"value": "1.5", "currency": "BTC"}``."""

    value: Num = None
    currency: str | None = None


class RestAccount(_Lenient, kw_only=True):
    """One account (one currency) from ``GET /accounts``."""

    uuid: str | None = None
    currency: str | None = None
    available_balance: Amount | None = None
    hold: Amount | None = None
    active: bool | None = None


class AccountPage(_Lenient, kw_only=True):
    """``GET /accounts``."""

    accounts: list[RestAccount] = msgspec.field(default_factory=list)
    has_next: bool = False
    cursor: str | None = None


class SuccessResponse(_Lenient, kw_only=True):
    """``success_response`` of a create."""

    order_id: str | None = None
    product_id: str | None = None
    side: str | None = None
    client_order_id: str | None = None


class ErrorResponse(_Lenient, kw_only=True):
    """``error_response`` of a refused create."""

    error: str | None = None
    message: str | None = None
    error_details: str | None = None
    new_order_failure_reason: str | None = None
    preview_failure_reason: str | None = None


class CreateResponse(_Lenient, kw_only=True):
    """``POST /orders``: HTTP 200 either way; ``success`` decides."""

    success: bool = False
    success_response: SuccessResponse | None = None
    error_response: ErrorResponse | None = None
    failure_reason: str | None = None
    order_id: str | None = None

    def rejection_reason(self) -> str:
        """Coinbase's reason for a refused create, most specific first."""
        e = self.error_response or ErrorResponse()
        parts = [
            p
            for p in (
                e.new_order_failure_reason
                if e.new_order_failure_reason not in (None, "", "UNKNOWN_FAILURE_REASON")
                else None,
                e.preview_failure_reason
                if e.preview_failure_reason not in (None, "", "UNKNOWN_PREVIEW_FAILURE_REASON")
                else None,
                e.error,
                e.message,
                e.error_details,
                self.failure_reason,
            )
            if p
        ]
        unique = list(dict.fromkeys(parts))
        return ": ".join(unique) if unique else "refused by Coinbase (no reason given)"


class CancelResult(_Lenient, kw_only=True):
    """One entry of ``POST /orders/batch_cancel``'s ``results``."""

    success: bool = False
    failure_reason: str | None = None
    order_id: str | None = None


class CancelResponse(_Lenient, kw_only=True):
    """``POST /orders/batch_cancel``."""

    results: list[CancelResult] = msgspec.field(default_factory=list)


class UserOrder(_Lenient, kw_only=True):
    """One order of a ``user`` channel event (cumulative quantities)."""

    order_id: str | None = None
    client_order_id: str | None = None
    status: str | None = None
    product_id: str | None = None
    order_side: str | None = None
    order_type: str | None = None
    cumulative_quantity: Num = None
    leaves_quantity: Num = None
    avg_price: Num = None
    total_fees: Num = None
    filled_value: Num = None
    number_of_fills: Num = None
    creation_time: str | None = None
    reject_reason: str | None = None
    cancel_reason: str | None = None


class UserEvent(_Lenient, kw_only=True):
    """``{"type": "snapshot"|"update", "orders": [...]}``."""

    type: str | None = None
    orders: list[UserOrder] = msgspec.field(default_factory=list)


class Frame(_Lenient, kw_only=True):
    """Any websocket frame: a data envelope, or an error frame (``type: error``)."""

    type: str | None = None
    message: str | None = None
    channel: str | None = None
    sequence_num: int | None = None
    timestamp: str | None = None
    events: list[Any] = msgspec.field(default_factory=list)


def convert(data: Any, type_: type[msgspec.Struct]) -> Any:
    """``data`` (decoded JSON) as ``type_``; raises ``msgspec.ValidationError`` on a bad shape."""
    return msgspec.convert(data, type_, strict=False)


__all__ = [
    "AccountPage",
    "Amount",
    "CancelResponse",
    "CancelResult",
    "CreateResponse",
    "ErrorResponse",
    "FillPage",
    "Frame",
    "Num",
    "OrderEnvelope",
    "OrderPage",
    "RestAccount",
    "RestFill",
    "RestOrder",
    "SuccessResponse",
    "UserEvent",
    "UserOrder",
    "convert",
    "dec",
    "reason_text",
]
