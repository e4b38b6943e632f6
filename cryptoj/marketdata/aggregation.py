"""Tick bars: every ``size`` trades of a product become one OHLCV :class:`Bar`. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from cryptoj.models.market import Bar, Trade


@dataclass
class _Building:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    count: int
    first_ts: int


@dataclass
class TickBarAggregator:
    """Builds ``size``-trade bars per product; the bar's ``ts`` is its last trade's time."""

    size: int
    _open: dict[str, _Building] = field(default_factory=dict)

    def add(self, t: Trade) -> Bar | None:
        """Add a trade; return the bar it completes, if any."""
        b = self._open.get(t.product)
        if b is None:
            b = self._open[t.product] = _Building(
                t.price, t.price, t.price, t.price, t.quantity, 1, t.ts
            )
        else:
            if t.price > b.high:
                b.high = t.price
            elif t.price < b.low:
                b.low = t.price
            b.close = t.price
            b.volume += t.quantity
            b.count += 1
        if b.count < self.size:
            return None
        del self._open[t.product]
        return Bar(
            ts=t.ts,
            product=t.product,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
            volume=b.volume,
            interval_s=max(1, (t.ts - b.first_ts) // 1_000_000_000),
        )
