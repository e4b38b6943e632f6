"""Strategy output."""

from __future__ import annotations

from cryptoj.models.base import Message


class TargetWeight(Message, frozen=True, kw_only=True):
    """Strategy → Portfolio: hold ``weight`` (fraction of equity, 0..1) of ``product``."""

    strategy_id: str
    product: str
    weight: float
    reason: str
