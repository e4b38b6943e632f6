"""Recorded market data as Coinbase websocket events, for the local fake exchange (pure).

The bundled data (``cryptoj.marketdata``, e.g. ``coinbase-1m-2018-04``) holds, per product and
minute, a recorded trade bar (OHLCV) and the recorded top of book (best bid/ask and sizes).
:class:`MarketSim` steps through it, one recorded minute per step, and produces what Coinbase
would send. **What is recorded and what is modelled:**

* **recorded**: every top-of-book price and size (level 0 of the book, the ticker's
  ``best_*``), every bar's open/high/low/close/volume; sizes and volumes are sent as clean
  decimal strings (rounded to 1e-8, :func:`clean`), as Coinbase sends them, never with the
  binary-float noise the recording holds;
* **modelled (level2 depth)**: below the best bid and above the best ask, ``depth - 1`` levels
  on a fixed price grid of ``grid = max(0.01, mid × spacing_bps / 10,000)`` (rounded to the
  cent, fixed per product from its first mid), the first grid price strictly beyond the touch,
  then one grid step apart; each holds the product's median recorded top-of-book size. A move
  of the touch within a grid cell changes only level 0, so update frames stay small, as on
  Coinbase. ``deep_levels`` adds that many static levels far away (below half the lowest
  recorded bid, above twice the highest ask; 0.001 each) to make snapshots large (>1 MiB);
* **modelled (trades)**: four prints per bar at open, low/high (in the order the bar's
  direction implies), high/low and close, each a quarter of the bar's volume; ``side`` is BUY
  when the print is at or above the previous one; trade ids count up and stay unique across
  loops of the data;
* **derived (ticker)**: ``price`` is the bar close, the 24 h volume/low/high/change roll over
  the last 1,440 recorded bars, 52-week low/high over the data seen so far.

Timestamps are the fake's clock at sending time (replay time), never the recording time; the
trades of one step share one time.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import msgspec

from cryptoj.adapters.coinbase.book import book_digest
from cryptoj.marketdata.loader import Batch
from cryptoj.models.market import Bar, Quote

CENT = Decimal("0.01")
Q8 = Decimal("0.00000001")
DAY_BARS = 1440
Side = dict[Decimal, Decimal]


TS = b"\x00"  # where the sending time goes in the pre-rendered JSON


@dataclass(frozen=True, slots=True)
class ProductStep:
    """What one step changes for one product (also pre-rendered as JSON for the fake)."""

    l2: tuple[tuple[str, str, str], ...]  # (side, price, new absolute quantity; "0" deletes)
    ticker: bytes  # the ticker object (JSON), b"" when there is no quote
    trades: tuple[tuple[int, str, str, str], ...]  # (index in the cycle, price, size, side)
    l2_apply: tuple[tuple[bool, Decimal, Decimal], ...] = ()  # (is bid, price, qty; 0 deletes)
    l2_json: bytes = b""  # the update objects, event_time = TS
    trades_json: tuple[tuple[int, bytes, bytes], ...] = ()  # (index, JSON before / after the id)

    @classmethod
    def build(
        cls,
        product: str,
        l2: tuple[tuple[str, str, str], ...],
        ticker: bytes,
        trades: tuple[tuple[int, str, str, str], ...],
    ) -> ProductStep:
        """A step with its pre-rendered JSON."""
        apply = tuple((side == "bid", Decimal(price), Decimal(qty)) for side, price, qty in l2)
        l2_json = b",".join(
            b'{"side":"%s","event_time":"%s","price_level":"%s","new_quantity":"%s"}'
            % (side.encode(), TS, price.encode(), qty.encode())
            for side, price, qty in l2
        )
        tj = tuple(
            (
                idx,
                b'{"product_id":"%s","trade_id":"' % product.encode(),
                b'","price":"%s","size":"%s","time":"%s","side":"%s"}'
                % (price.encode(), size.encode(), TS, side.encode()),
            )
            for idx, price, size, side in trades
        )
        return cls(l2, ticker, trades, apply, l2_json, tj)


def _fmt(d: Decimal) -> str:
    """Plain notation without trailing zeros (``"7420"``, ``"0.058"``), as Coinbase writes."""
    return f"{d.normalize():f}" if d else "0"


def clean(d: Decimal) -> Decimal:
    """A recorded size or volume as Coinbase writes it: rounded to 1e-8, no trailing zeros (the
    recorded data holds binary-float noise such as ``15.163527749999998``)."""
    q = d.quantize(Q8, ROUND_HALF_EVEN)
    return q.normalize() if q else Decimal(0)


class MarketSim:
    """Steps through recorded batches, cyclically; see the module docstring."""

    def __init__(
        self,
        batches: Sequence[Batch],
        *,
        products: Sequence[str] | None = None,
        depth: int = 10,
        spacing_bps: float = 5.0,
        deep_levels: int = 0,
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        wanted = set(products) if products else None
        quotes: list[dict[str, Quote]] = []
        bars: list[dict[str, Bar]] = []
        for batch in batches:
            q = {
                e.product: e
                for e in batch
                if isinstance(e, Quote) and (wanted is None or e.product in wanted)
            }
            b = {
                e.product: e
                for e in batch
                if isinstance(e, Bar) and (wanted is None or e.product in wanted)
            }
            if q or b:
                quotes.append(q)
                bars.append(b)
        if not quotes:
            raise ValueError("no recorded quotes or bars for the requested products")
        self.products = tuple(sorted({p for q in quotes for p in q} | {p for b in bars for p in b}))
        self.n = len(quotes)
        self.depth = depth
        self._grid = {p: self._grid_of(p, quotes, spacing_bps) for p in self.products}
        self._size = {p: self._median_size(p, quotes) for p in self.products}
        self._deep = {p: self._deep_levels(p, quotes, deep_levels) for p in self.products}
        books = self._books(quotes)  # the top region only: the deep levels never change
        self._top_books = books
        self._digests: dict[tuple[int, str], str] = {}
        tickers = self._tickers(quotes, bars)
        trades, self.trades_per_cycle = self._trades(bars)
        self.steps: list[dict[str, ProductStep]] = []
        for i in range(self.n):
            prev = books[i - 1]  # i == 0: the wrap from the last step
            self.steps.append(
                {
                    p: ProductStep.build(
                        p, _diff(prev[p], books[i][p]), tickers[i].get(p, b""), trades[i].get(p, ())
                    )
                    for p in self.products
                }
            )
        self.cursor = 0
        self.loops = 0
        self.bids: dict[str, Side] = {
            p: {**self._deep[p][0], **books[0][p][0]} for p in self.products
        }
        self.asks: dict[str, Side] = {
            p: {**self._deep[p][1], **books[0][p][1]} for p in self.products
        }
        self.last_ticker = {p: tickers[0].get(p, b"") for p in self.products}

    # -- stepping ----------------------------------------------------------------------------

    def advance(self) -> dict[str, ProductStep]:
        """Move to the next recorded step (wrapping at the end) and apply it to the books."""
        self.cursor += 1
        if self.cursor == self.n:
            self.cursor = 0
            self.loops += 1
        step = self.steps[self.cursor]
        for p, s in step.items():
            bids, asks = self.bids[p], self.asks[p]
            for is_bid, price, qty in s.l2_apply:
                book = bids if is_bid else asks
                if qty:
                    book[price] = qty
                else:
                    book.pop(price, None)
            if s.ticker:
                self.last_ticker[p] = s.ticker
        return step

    def digest(self, product: str, step: int | None = None) -> str:
        """Digest of ``product``'s book after ``step`` (default: now), as
        :meth:`OrderBook.digest` computes it; cached, computed on first use."""
        i = self.cursor if step is None else step
        key = (i, product)
        found = self._digests.get(key)
        if found is None:
            bids, asks = self._top_books[i][product]
            deep_bids, deep_asks = self._deep[product]
            found = book_digest({**deep_bids, **bids}, {**deep_asks, **asks})
            if len(self._digests) > 100_000:
                self._digests.clear()
            self._digests[key] = found
        return found

    def trade_id(self, index: int) -> str:
        """The trade id of a trade of the current step (unique across loops)."""
        return str(1_000_000 + self.loops * self.trades_per_cycle + index)

    def snapshot(self, product: str) -> list[tuple[str, str, str]]:
        """Every level of the current book: bids best first, then offers best first."""
        bids = sorted(self.bids[product].items(), reverse=True)
        asks = sorted(self.asks[product].items())
        return [("bid", _fmt(p), _fmt(q)) for p, q in bids] + [
            ("offer", _fmt(p), _fmt(q)) for p, q in asks
        ]

    def top(
        self, product: str, levels: int = 1
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The best ``levels`` bids and asks (for the REST book)."""
        bids = sorted(self.bids[product].items(), reverse=True)[:levels]
        asks = sorted(self.asks[product].items())[:levels]
        return bids, asks

    def best_at(self, product: str, step: int) -> tuple[Decimal | None, Decimal | None]:
        """Best bid and ask of ``product`` at recorded ``step`` (wrapping): tests look ahead."""
        bids, asks = self._top_books[step % self.n][product]
        return (max(bids) if bids else None), (min(asks) if asks else None)

    # -- precomputation ----------------------------------------------------------------------

    @staticmethod
    def _grid_of(p: str, quotes: list[dict[str, Quote]], bps: float) -> Decimal:
        first = next((q[p] for q in quotes if p in q), None)
        if first is None:
            return CENT
        grid = (first.mid * Decimal(repr(bps)) / 10_000).quantize(CENT, ROUND_DOWN)
        return max(CENT, grid)

    @staticmethod
    def _median_size(p: str, quotes: list[dict[str, Quote]]) -> Decimal:
        sizes = [s for q in quotes if p in q for s in (q[p].bid_size, q[p].ask_size)]
        return clean(Decimal(statistics.median(sizes))) if sizes else Decimal(1)

    @staticmethod
    def _deep_levels(p: str, quotes: list[dict[str, Quote]], n: int) -> tuple[Side, Side]:
        if n <= 0:
            return {}, {}
        bids = [q[p].bid for q in quotes if p in q]
        asks = [q[p].ask for q in quotes if p in q]
        lo = (min(bids) / 2).quantize(CENT, ROUND_FLOOR)
        hi = (max(asks) * 2).quantize(CENT, ROUND_CEILING)
        size = Decimal("0.001")
        return {lo - i * CENT: size for i in range(n) if lo - i * CENT > 0}, {
            hi + i * CENT: size for i in range(n)
        }

    def _books(self, quotes: list[dict[str, Quote]]) -> list[dict[str, tuple[Side, Side]]]:
        out: list[dict[str, tuple[Side, Side]]] = []
        last: dict[str, tuple[Side, Side]] = {p: ({}, {}) for p in self.products}
        for q in quotes:
            books = dict(last)
            for p, quote in q.items():
                books[p] = self._book(p, quote)
            out.append(books)
            last = books
        for p in self.products:  # a product quoted only later starts with its first book
            first = next((o[p] for o in out if o[p][0] or o[p][1]), None)
            if first is None:
                continue
            for books in out:
                if books[p][0] or books[p][1]:
                    break
                books[p] = first
        return out

    def _book(self, p: str, q: Quote) -> tuple[Side, Side]:
        grid, size = self._grid[p], self._size[p]
        bids: Side = {}
        asks: Side = {}
        b0 = ((q.bid - CENT) / grid).to_integral_value(ROUND_FLOOR) * grid
        a0 = ((q.ask + CENT) / grid).to_integral_value(ROUND_CEILING) * grid
        for k in range(self.depth - 1):
            if b0 - k * grid > 0:
                bids[(b0 - k * grid).quantize(CENT)] = size
            asks[(a0 + k * grid).quantize(CENT)] = size
        if clean(q.bid_size) > 0:
            bids[q.bid] = clean(q.bid_size)
        if clean(q.ask_size) > 0:
            asks[q.ask] = clean(q.ask_size)
        return bids, asks

    def _tickers(
        self, quotes: list[dict[str, Quote]], bars: list[dict[str, Bar]]
    ) -> list[dict[str, bytes]]:
        out: list[dict[str, bytes]] = []
        window: dict[str, deque[Bar]] = {p: deque() for p in self.products}
        volume = dict.fromkeys(self.products, Decimal(0))
        lows: dict[str, deque[Bar]] = {p: deque() for p in self.products}
        highs: dict[str, deque[Bar]] = {p: deque() for p in self.products}
        low52: dict[str, Decimal] = {}
        high52: dict[str, Decimal] = {}
        close: dict[str, Decimal] = {}
        for q, b in zip(quotes, bars, strict=True):
            row: dict[str, bytes] = {}
            for p, bar in b.items():
                w = window[p]
                w.append(bar)
                volume[p] += clean(bar.volume)
                while lows[p] and lows[p][-1].low >= bar.low:
                    lows[p].pop()
                lows[p].append(bar)
                while highs[p] and highs[p][-1].high <= bar.high:
                    highs[p].pop()
                highs[p].append(bar)
                if len(w) > DAY_BARS:
                    old = w.popleft()
                    volume[p] -= clean(old.volume)
                    if lows[p][0] is old:
                        lows[p].popleft()
                    if highs[p][0] is old:
                        highs[p].popleft()
                low52[p] = min(low52.get(p, bar.low), bar.low)
                high52[p] = max(high52.get(p, bar.high), bar.high)
                close[p] = bar.close
            for p, quote in q.items():
                if p not in close:
                    continue
                first = window[p][0].open
                change = ((close[p] - first) / first * 100).quantize(Q8)
                row[p] = msgspec.json.encode(
                    {
                        "type": "ticker",
                        "product_id": p,
                        "price": _fmt(close[p]),
                        "volume_24_h": _fmt(clean(volume[p])),
                        "low_24_h": _fmt(lows[p][0].low),
                        "high_24_h": _fmt(highs[p][0].high),
                        "low_52_w": _fmt(low52[p]),
                        "high_52_w": _fmt(high52[p]),
                        "price_percent_chg_24_h": _fmt(change),
                        "best_bid": _fmt(quote.bid),
                        "best_bid_quantity": _fmt(clean(quote.bid_size)),
                        "best_ask": _fmt(quote.ask),
                        "best_ask_quantity": _fmt(clean(quote.ask_size)),
                    }
                )
            out.append(row)
        return out

    def _trades(
        self, bars: list[dict[str, Bar]]
    ) -> tuple[list[dict[str, tuple[tuple[int, str, str, str], ...]]], int]:
        out: list[dict[str, tuple[tuple[int, str, str, str], ...]]] = []
        index = 0
        last: dict[str, Decimal] = {}
        for b in bars:
            row: dict[str, tuple[tuple[int, str, str, str], ...]] = {}
            for p, bar in b.items():
                volume = clean(bar.volume)
                if volume <= 0:
                    continue
                path = (
                    (bar.open, bar.low, bar.high, bar.close)
                    if bar.close >= bar.open
                    else (bar.open, bar.high, bar.low, bar.close)
                )
                quarter = (volume / 4).quantize(Q8, ROUND_DOWN)
                sizes = [quarter, quarter, quarter, volume - 3 * quarter]
                prints = []
                for price, size in zip(path, sizes, strict=True):
                    if size <= 0:
                        continue
                    side = "BUY" if price >= last.get(p, price) else "SELL"
                    last[p] = price
                    prints.append((index, _fmt(price), _fmt(size), side))
                    index += 1
                row[p] = tuple(prints)
            out.append(row)
        return out, index


def _diff(old: tuple[Side, Side], new: tuple[Side, Side]) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    for side, a, b in (("bid", old[0], new[0]), ("offer", old[1], new[1])):
        for price in a.keys() - b.keys():
            out.append((side, _fmt(price), "0"))
        for price, qty in b.items():
            if a.get(price) != qty:
                out.append((side, _fmt(price), _fmt(qty)))
    return tuple(out)
