"""MarketHistory: the market events the feed emitted, kept for the strategies' warm-up.

The FeedActor records every bar (and, when a strategy subscribed to them, every quote and
trade) here before sending it. The object lives outside the actors, like the market-data
source: a restarted StrategyActor reads it to warm its strategies up to where they were. A
replay started with ``--from`` seeds it with the data preceding that day; a live daemon with the
bars just before its start (:mod:`cryptoj.marketdata.warmup`).

Bounded: at most ``max_bars`` bars per product (and ``max_events`` quotes and trades per
product); the count of bars ever recorded is kept, so the StrategyActor's re-statement cadence
stays exact when the oldest bars are gone. Thread-safe (the feed writes, the strategy reads).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from cryptoj.models.market import Bar, MarketEvent, Quote, Trade

#: Bars kept per product (about 70 days of 1-minute bars).
MAX_HISTORY_BARS = 100_000
#: Quotes and trades kept per product.
MAX_HISTORY_EVENTS = 200_000


class MarketHistory:
    """Recorded market events in emission order, bounded per product (module docstring)."""

    def __init__(
        self,
        kinds: Iterable[str] = ("bars",),
        *,
        max_bars: int = MAX_HISTORY_BARS,
        max_events: int = MAX_HISTORY_EVENTS,
    ) -> None:
        self.kinds = frozenset(kinds)
        #: per event type: recorded or not (``record`` looks the type up instead of asking
        #: :meth:`wants` for every event)
        self._wanted: dict[type, bool] = {
            Bar: "bars" in self.kinds,
            Quote: "quotes" in self.kinds,
            Trade: "trades" in self.kinds,
        }
        self.max_bars = max_bars
        self.max_events = max_events
        self._lock = threading.Lock()
        self._seq = 0
        self._bars: dict[str, deque[tuple[int, Bar]]] = {}
        self._other: dict[str, deque[tuple[int, Quote | Trade]]] = {}
        self._bar_totals: dict[str, int] = {}

    def wants(self, event: MarketEvent) -> bool:
        """Whether events of this type are recorded."""
        if isinstance(event, Bar):
            return "bars" in self.kinds
        if isinstance(event, Quote):
            return "quotes" in self.kinds
        return "trades" in self.kinds

    def record(self, event: MarketEvent) -> None:
        """Append one event (ignored when its kind is not recorded)."""
        wanted = self._wanted.get(type(event))
        if not (self.wants(event) if wanted is None else wanted):
            return
        with self._lock:
            self._seq += 1
            product = event.product
            if isinstance(event, Bar):
                bars = self._bars.get(product)  # (no new deque per event, as setdefault makes)
                if bars is None:
                    bars = self._bars[product] = deque(maxlen=self.max_bars)
                bars.append((self._seq, event))
                self._bar_totals[product] = self._bar_totals.get(product, 0) + 1
            else:
                other = self._other.get(product)
                if other is None:
                    other = self._other[product] = deque(maxlen=self.max_events)
                other.append((self._seq, event))

    def extend(self, events: Iterable[MarketEvent]) -> None:
        """Record several events in order (the data preceding a replay)."""
        for event in events:
            self.record(event)

    def snapshot(self) -> tuple[list[MarketEvent], dict[str, int]]:
        """Every kept event in emission order, and the number of bars per product recorded
        before the oldest kept one (those that fell out of the bound)."""
        with self._lock:
            tagged: list[tuple[int, MarketEvent]] = [t for d in self._bars.values() for t in d]
            tagged += [t for d in self._other.values() for t in d]
            dropped = {p: self._bar_totals[p] - len(d) for p, d in self._bars.items()}
        tagged.sort(key=lambda t: t[0])
        return [e for _, e in tagged], dropped
