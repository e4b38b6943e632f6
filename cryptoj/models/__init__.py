"""Immutable message types. Prices and quantities on orders are ``Decimal``."""

from cryptoj.models.base import Message
from cryptoj.models.market import Bar, FeedFinished, FeedStatus, MarketEvent, Quote, Trade
from cryptoj.models.orders import (
    CancelAllOrders,
    CancelOrder,
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
    OrderStatus,
    OrderStatusReport,
    OrderStatusRequest,
    OrderType,
    Side,
    SubmitOrder,
)
from cryptoj.models.portfolio import PortfolioSnapshot, Position
from cryptoj.models.risk import (
    RiskLevel,
    RiskLevelChanged,
    RiskOverride,
    RiskParameters,
    StopLossTriggered,
)
from cryptoj.models.signals import TargetWeight
from cryptoj.models.system import (
    ChildExited,
    ChildStarted,
    EscalatedFailure,
    Halt,
    Ping,
    ReconcileNow,
    ShutdownRequested,
    StartChild,
    Tick,
)

__all__ = [
    "Bar",
    "CancelAllOrders",
    "CancelOrder",
    "ChildExited",
    "ChildStarted",
    "EscalatedFailure",
    "FeedFinished",
    "FeedStatus",
    "Fill",
    "Halt",
    "MarketEvent",
    "Message",
    "OrderAccepted",
    "OrderClosed",
    "OrderRejected",
    "OrderStatus",
    "OrderStatusReport",
    "OrderStatusRequest",
    "OrderType",
    "Ping",
    "PortfolioSnapshot",
    "Position",
    "Quote",
    "ReconcileNow",
    "RiskLevel",
    "RiskLevelChanged",
    "RiskOverride",
    "RiskParameters",
    "ShutdownRequested",
    "Side",
    "StartChild",
    "StopLossTriggered",
    "SubmitOrder",
    "TargetWeight",
    "Tick",
    "Trade",
]
