"""Tick bars: every ``size`` trades of a product become one OHLCV :class:`Bar`. Pure.

A trade whose price is not a finite positive number or whose quantity is not a finite
non-negative one is left out and counted (``rejected``): the live feed checks every value at
the boundary already, so this is a second line of defence that keeps the FeedActor up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from cryptoj.models.market import Bar, Quote, Trade

_ZERO = Decimal(0)  # compared with: cheaper than converting the int 0 on every trade


@dataclass(slots=True)
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
    rejected: int = 0  # trades left out: unusable price or quantity

    def add(self, t: Trade) -> Bar | None:
        """Add a trade; return the bar it completes, if any (None for a rejected trade)."""
        if not usable(t):
            self.rejected += 1
            return None
        return self.add_usable(t)

    def add_usable(self, t: Trade) -> Bar | None:
        """:meth:`add` for a trade the caller has checked with :func:`usable` already (the
        FeedActor does, to drop it before it is forwarded): the check is not repeated."""
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


def usable(t: Trade) -> bool:
    """A finite positive price and a finite non-negative quantity (NaN, sNaN and infinities
    are refused without being compared: comparing a signalling NaN raises)."""
    price, qty = t.price, t.quantity
    if not isinstance(price, Decimal) or not isinstance(qty, Decimal):
        return False
    return price.is_finite() and qty.is_finite() and price > _ZERO and qty >= _ZERO


def usable_quote(q: Quote) -> bool:
    """Finite positive bid and ask with bid below ask, finite non-negative sizes."""
    values = (q.bid, q.ask, q.bid_size, q.ask_size)
    if not all(isinstance(v, Decimal) and v.is_finite() for v in values):
        return False
    return q.bid > 0 and q.ask > q.bid and q.bid_size >= 0 and q.ask_size >= 0
