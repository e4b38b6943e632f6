"""Portfolio snapshots published by the PortfolioActor (its state's single writer)."""

from __future__ import annotations

from decimal import Decimal

from cryptoj.models.base import Message


class Position(Message, frozen=True, kw_only=True):
    """Holding of one product."""

    product: str
    quantity: Decimal
    average_price: Decimal
    mark_price: Decimal


class PortfolioSnapshot(Message, frozen=True, kw_only=True):
    """A read-only view: cash, reserved cash, positions and equity marked at the latest mid."""

    cash: Decimal
    reserved_cash: Decimal
    equity: Decimal
    positions: tuple[Position, ...]
    open_orders: int
