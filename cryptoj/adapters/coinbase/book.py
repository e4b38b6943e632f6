"""A level2 order book of one product, kept from ``l2_data`` snapshots and updates (pure).

Coinbase sends **absolute** quantities per price level (``new_quantity``; ``"0"`` deletes the
level) and calls the ask side ``offer``. The book keeps one dict per side, keyed by the price
as a float (exact for the at most 15 significant digits :func:`.validate.levels_problem` lets
through) and holding the level's price and quantity **as the wire wrote them**: applying a
level costs two ``float()`` calls and a dict update, and ``Decimal`` values are made only for
what is handed on (:meth:`OrderBook.top`, :attr:`OrderBook.bids`, the digest). The best price
is cached: setting a level can only improve it (O(1)); deleting the best level marks it dirty
and the next read recomputes it (O(levels), rare).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Protocol

BID_SIDES = frozenset({"bid", "buy"})
ASK_SIDES = frozenset({"offer", "ask", "sell"})
TopText = tuple[str, str, str, str]  # bid, bid size, ask, ask size as the wire wrote them


class Level(Protocol):
    """What :meth:`OrderBook.apply_levels` needs of a level update (``L2Update`` has it)."""

    @property
    def side(self) -> str: ...
    @property
    def price_level(self) -> str: ...
    @property
    def new_quantity(self) -> str: ...
    @property
    def event_time(self) -> str: ...


class OrderBook:
    """Price → quantity on both sides, with the best bid and ask cached."""

    __slots__ = (
        "_ask_dirty",
        "_asks",
        "_best_ask",
        "_best_bid",
        "_bid_dirty",
        "_bids",
        "last_event_time",
        "product",
    )

    def __init__(self, product: str) -> None:
        self.product = product
        self._bids: dict[float, tuple[str, str]] = {}  # price → (price text, quantity text)
        self._asks: dict[float, tuple[str, str]] = {}
        self.last_event_time = ""  # event_time of the newest level applied
        self._best_bid: float | None = None
        self._best_ask: float | None = None
        self._bid_dirty = False
        self._ask_dirty = False

    def clear(self) -> None:
        """Forget every level (before a snapshot, or when the book is no longer trusted)."""
        self._bids.clear()
        self._asks.clear()
        self.last_event_time = ""
        self._best_bid = self._best_ask = None
        self._bid_dirty = self._ask_dirty = False

    def apply(self, side: str, price: str | Decimal, quantity: str | Decimal) -> bool:
        """Set the absolute ``quantity`` at ``price`` (0 deletes); False for an unknown side."""
        if side not in BID_SIDES and side not in ASK_SIDES:
            return False
        self.apply_levels([_Level(side, str(price), str(quantity))])
        return True

    def apply_levels(self, levels: Iterable[Level]) -> int:
        """Apply a snapshot's or update's levels in order; return how many had an unknown side.

        The values must have passed :func:`.validate.levels_problem` (finite decimal text).
        """
        bids, asks = self._bids, self._asks
        best_bid, best_ask = self._best_bid, self._best_ask
        bid_dirty, ask_dirty = self._bid_dirty, self._ask_dirty
        unknown = 0
        event_time = ""
        for lv in levels:
            side, text = lv.side, lv.price_level
            price = float(text)
            if side == "bid" or side in BID_SIDES:
                if float(qty := lv.new_quantity):
                    bids[price] = (text, qty)
                    if not bid_dirty and (best_bid is None or price > best_bid):
                        best_bid = price
                elif bids.pop(price, None) is not None and price == best_bid:
                    bid_dirty = True
            elif side == "offer" or side in ASK_SIDES:
                if float(qty := lv.new_quantity):
                    asks[price] = (text, qty)
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

    def _bid_key(self) -> float | None:
        if self._bid_dirty:
            self._best_bid = max(self._bids) if self._bids else None
            self._bid_dirty = False
        return self._best_bid

    def _ask_key(self) -> float | None:
        if self._ask_dirty:
            self._best_ask = min(self._asks) if self._asks else None
            self._ask_dirty = False
        return self._best_ask

    def best_bid(self) -> Decimal | None:
        """Highest bid price, None when the bid side is empty."""
        key = self._bid_key()
        return None if key is None else Decimal(self._bids[key][0])

    def best_ask(self) -> Decimal | None:
        """Lowest ask price, None when the ask side is empty."""
        key = self._ask_key()
        return None if key is None else Decimal(self._asks[key][0])

    def top_text(self) -> TopText | None:
        """``(bid, bid_size, ask, ask_size)`` as the wire wrote them; None when a side is empty
        or the book is crossed (the cheap form: no ``Decimal`` is made)."""
        bid, ask = self._bid_key(), self._ask_key()
        if bid is None or ask is None or bid >= ask:
            return None
        (bid_text, bid_size), (ask_text, ask_size) = self._bids[bid], self._asks[ask]
        return bid_text, bid_size, ask_text, ask_size

    def top(self) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        """``(bid, bid_size, ask, ask_size)``; None when a side is empty or the book is crossed."""
        top = self.top_text()
        return None if top is None else (Decimal(top[0]), Decimal(top[1]), Decimal(top[2]),
                                         Decimal(top[3]))  # fmt: skip

    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask (a sign of a lost update)."""
        bid, ask = self._bid_key(), self._ask_key()
        return bid is not None and ask is not None and bid >= ask

    @property
    def bids(self) -> dict[Decimal, Decimal]:
        """Every bid level as ``Decimal`` price → quantity (made on each read)."""
        return {Decimal(p): Decimal(q) for p, q in self._bids.values()}

    @property
    def asks(self) -> dict[Decimal, Decimal]:
        """Every ask level as ``Decimal`` price → quantity (made on each read)."""
        return {Decimal(p): Decimal(q) for p, q in self._asks.values()}

    def levels(
        self, depth: int
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The best ``depth`` levels of each side, best first: ``(bids, asks)`` of
        ``(price, quantity)``."""
        bids = [self._bids[k] for k in heapq.nlargest(depth, self._bids)]
        asks = [self._asks[k] for k in heapq.nsmallest(depth, self._asks)]
        return [(Decimal(p), Decimal(q)) for p, q in bids], [
            (Decimal(p), Decimal(q)) for p, q in asks
        ]

    def depth(self) -> tuple[int, int]:
        """Number of bid and ask levels."""
        return len(self._bids), len(self._asks)

    def digest(self) -> str:
        """A fingerprint of every level (see :func:`book_digest`)."""
        return book_digest(self.bids, self.asks)


class _Level:
    """One level given to :meth:`OrderBook.apply`."""

    __slots__ = ("event_time", "new_quantity", "price_level", "side")

    def __init__(self, side: str, price: str, quantity: str) -> None:
        self.side, self.price_level, self.new_quantity, self.event_time = side, price, quantity, ""


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
