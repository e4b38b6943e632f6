"""Strategy output."""

from __future__ import annotations

from cryptoj.models.base import Message


class TargetWeight(Message, frozen=True, kw_only=True):
    """Strategy → Portfolio: hold ``weight`` (fraction of equity, 0..1) of ``product``."""

    strategy_id: str
    product: str
    weight: float
    reason: str


class OperatorTarget(Message, frozen=True, kw_only=True):
    """Operator → Strategy (``strategy.kind: manual``): hold ``weight`` of ``product``.

    The manual strategy forwards it to the portfolio as a :class:`TargetWeight`, through the
    same path (risk caps, check-and-reserve) as any strategy signal.
    """

    product: str
    weight: float
    reason: str
