"""The interface every execution venue offers the actors (paper today, Coinbase next)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from cryptoj.models.base import Message
from cryptoj.models.orders import Fill, OrderAccepted, OrderRejected, SubmitOrder


class ExecutionVenue(Protocol):
    """A venue client. Venue events (fills, closes) arrive through the listener."""

    def set_listener(self, fn: Callable[[Message], None] | None) -> None:
        """Where the venue pushes Fill / OrderClosed events (its user channel)."""
        ...

    def submit(self, order: SubmitOrder, ts: int) -> OrderAccepted | OrderRejected:
        """Place an order; idempotent on ``client_order_id``."""
        ...

    def cancel(self, client_order_id: str, ts: int) -> bool:
        """Cancel one order; True if it was open."""
        ...

    def cancel_all(self, ts: int) -> list[str]:
        """Cancel every open order; return their client order ids."""
        ...

    def get_order(self, client_order_id: str) -> Any:
        """The venue's view of one order (status, filled_quantity, fills), or None."""
        ...

    def open_orders(self) -> list[Any]:
        """Orders still open at the venue."""
        ...

    def fills_for(self, client_order_id: str) -> tuple[Fill, ...]:
        """Every fill of one order."""
        ...

    def balances(self) -> dict[str, Decimal]:
        """Total balance per currency."""
        ...
