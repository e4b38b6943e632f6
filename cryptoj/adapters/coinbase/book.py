"""A level2 order book of one product, kept from ``l2_data`` snapshots and updates (pure).

Coinbase sends **absolute** quantities per price level (``new_quantity``; ``"0"`` deletes the
level) and calls the ask side ``offer``. The book keeps one dict per side and caches the best
price: setting a level can only improve it (O(1)); deleting the best level marks it dirty and
the next :meth:`OrderBook.top` recomputes it (O(levels), rare).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Protocol

BID_SIDES = frozenset({"bid", "buy"})
ASK_SIDES = frozenset({"offer", "ask", "sell"})


class Level(Protocol):
    """What :meth:`OrderBook.apply_levels` needs of a level update (``L2Update`` has it)."""

    @property
    def side(self) -> str: ...
    @property
    def price_level(self) -> Decimal: ...
    @property
    def new_quantity(self) -> Decimal: ...
    @property
    def event_time(self) -> str: ...


class OrderBook:
    """Price → quantity on both sides, with the best bid and ask cached."""

    __slots__ = (
        "_ask_dirty",
        "_best_ask",
        "_best_bid",
        "_bid_dirty",
        "asks",
        "bids",
        "last_event_time",
        "product",
    )

    def __init__(self, product: str) -> None:
        self.product = product
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_event_time = ""  # event_time of the newest level applied
        self._best_bid: Decimal | None = None
        self._best_ask: Decimal | None = None
        self._bid_dirty = False
        self._ask_dirty = False

    def clear(self) -> None:
        """Forget every level (before a snapshot, or when the book is no longer trusted)."""
        self.bids.clear()
        self.asks.clear()
        self.last_event_time = ""
        self._best_bid = self._best_ask = None
        self._bid_dirty = self._ask_dirty = False

    def apply(self, side: str, price: Decimal, quantity: Decimal) -> bool:
        """Set the absolute ``quantity`` at ``price`` (0 deletes); False for an unknown side."""
        if side in BID_SIDES:
            if quantity:
                self.bids[price] = quantity
                if not self._bid_dirty and (self._best_bid is None or price > self._best_bid):
                    self._best_bid = price
            elif self.bids.pop(price, None) is not None and price == self._best_bid:
                self._bid_dirty = True
            return True
        if side in ASK_SIDES:
            if quantity:
                self.asks[price] = quantity
                if not self._ask_dirty and (self._best_ask is None or price < self._best_ask):
                    self._best_ask = price
            elif self.asks.pop(price, None) is not None and price == self._best_ask:
                self._ask_dirty = True
            return True
        return False

    def apply_levels(self, levels: Iterable[Level]) -> int:
        """Apply a snapshot's or update's levels in order; return how many had an unknown side.

        Same rules as :meth:`apply`, written out in one loop (the hot path of the feed).
        """
        bids, asks = self.bids, self.asks
        best_bid, best_ask = self._best_bid, self._best_ask
        bid_dirty, ask_dirty = self._bid_dirty, self._ask_dirty
        unknown = 0
        event_time = ""
        for lv in levels:
            side, price, qty = lv.side, lv.price_level, lv.new_quantity
            if side == "bid" or side in BID_SIDES:
                if qty:
                    bids[price] = qty
                    if not bid_dirty and (best_bid is None or price > best_bid):
                        best_bid = price
                elif bids.pop(price, None) is not None and price == best_bid:
                    bid_dirty = True
            elif side == "offer" or side in ASK_SIDES:
                if qty:
                    asks[price] = qty
                    if not ask_dirty and (best_ask is None or price < best_ask):
                        best_ask = price
                elif asks.pop(price, None) is not None and price == best_ask:
                    ask_dirty = True
            else:
                unknown += 1
            event_time = lv.event_time or event_time
        self._best_bid, self._best_ask = best_bid, best_ask
        self._bid_dirty, self._ask_dirty = bid_dirty, ask_dirty
        if event_time:
            self.last_event_time = event_time
        return unknown

    def best_bid(self) -> Decimal | None:
        """Highest bid price, None when the bid side is empty."""
        if self._bid_dirty:
            self._best_bid = max(self.bids) if self.bids else None
            self._bid_dirty = False
        return self._best_bid

    def best_ask(self) -> Decimal | None:
        """Lowest ask price, None when the ask side is empty."""
        if self._ask_dirty:
            self._best_ask = min(self.asks) if self.asks else None
            self._ask_dirty = False
        return self._best_ask

    def top(self) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        """``(bid, bid_size, ask, ask_size)``; None when a side is empty or the book is crossed."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None or bid >= ask:
            return None
        return bid, self.bids[bid], ask, self.asks[ask]

    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a sign of a lost update)."""
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid >= ask

    def depth(self) -> tuple[int, int]:
        """Number of bid and ask levels."""
        return len(self.bids), len(self.asks)

    def digest(self) -> str:
        """A fingerprint of every level (see :func:`book_digest`)."""
        return book_digest(self.bids, self.asks)


def _canon(levels: Iterable[tuple[Decimal, Decimal]]) -> list[str]:
    return [f"{p.normalize():f}:{q.normalize():f}" for p, q in sorted(levels)]


def book_digest(bids: Mapping[Decimal, Decimal], asks: Mapping[Decimal, Decimal]) -> str:
    """SHA-256 over the sorted, normalised levels: equal books give equal digests.

    ``1.50`` and ``1.5`` are the same level, so two sides that format numbers differently (the
    fake exchange and the client) still compare equal. Zero quantities must not be present.
    """
    h = hashlib.sha256()
    h.update(";".join(_canon(bids.items())).encode())
    h.update(b"|")
    h.update(";".join(_canon(asks.items())).encode())
    return h.hexdigest()
