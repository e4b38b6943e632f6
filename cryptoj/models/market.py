"""Market data events (normalised, venue-neutral)."""

from __future__ import annotations

from decimal import Decimal

from cryptoj.models.base import Message


class Quote(Message, frozen=True, kw_only=True):
    """Top of book for one product at ``ts``: best bid/ask and the sizes resting there."""

    product: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    derived: bool = False  # True: modelled from a bar (bar-only data), not a recorded quote

    @property
    def mid(self) -> Decimal:
        """Mid price."""
        return (self.bid + self.ask) / 2


class Bar(Message, frozen=True, kw_only=True):
    """OHLCV bar of one product; ``ts`` is the bar close time, ``interval_s`` its length."""

    product: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    interval_s: int


class Trade(Message, frozen=True, kw_only=True):
    """One recorded trade (a tick). ``taker_side`` is the aggressor: "BUY" or "SELL"."""

    product: str
    price: Decimal
    quantity: Decimal
    taker_side: str
    trade_id: str


def merge_trades(older: Trade, newer: Trade) -> Trade:
    """One trade for two of a product (a backlog that aggregates trades): ``newer``'s time,
    price, side and id, both quantities, so no traded volume is lost."""
    return Trade(
        ts=newer.ts,
        product=newer.product,
        price=newer.price,
        quantity=older.quantity + newer.quantity,
        taker_side=newer.taker_side,
        trade_id=newer.trade_id,
    )


MarketEvent = Quote | Bar | Trade


class QuoteBatch(Message, frozen=True, kw_only=True):
    """Every quote of one market timestamp (a replay batch), delivered as one message so the
    receiver values every product at the same instant before it evaluates anything. ``ts`` is
    the last quote's time. A batch of one quote is sent as the :class:`Quote` itself."""

    quotes: tuple[Quote, ...]


class FeedStatus(Message, frozen=True, kw_only=True):
    """Feed health for the listed products: ``healthy``, ``stale`` or ``recovered``."""

    products: tuple[str, ...]
    state: str
    reason: str = ""


class FeedFinished(Message, frozen=True, kw_only=True):
    """The replay source is exhausted; ``events`` market events were emitted in total."""

    events: int
