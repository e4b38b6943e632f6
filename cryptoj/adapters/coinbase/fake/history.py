"""The fake exchange's public market-data history: candles and market trades by time range.

``GET /market/products/{id}/candles?start=&end=&granularity=[&limit=]`` answers from the
recorded bars the fake was started with (by default the bundled ``coinbase-1m-2018-04`` set:
real 1-minute Coinbase bars), with Coinbase's shape and limits:

* ``start`` / ``end`` are Unix seconds (strings), both required; a candle is returned when its
  open time ``t`` has ``start <= t < end``; ``granularity`` is one of :data:`GRANULARITIES`;
* at most :data:`MAX_CANDLES` candles per call: a range holding more buckets answers 400
  ``INVALID_ARGUMENT`` (as Coinbase does), and ``limit`` (default and maximum 350) cuts the
  answer to the newest ``limit`` candles;
* **newest first**; a bucket without a recorded bar has no candle (nothing is filled in);
* coarser granularities are **aggregated** from the recorded bars (first open, max high, min
  low, last close, summed volume over the bars that fall into the UTC-aligned bucket);
  granularities finer than the recording answer no candles.

``GET /market/products/{id}/ticker?start=&end=&limit=`` (with ``start`` or ``end``; without,
the live recent-trades answer of :mod:`.market_rest`) returns the newest ``limit`` (default
100, at most 1,000) trades with ``start <= time < end``, newest first. These trades are
**modelled**, not recorded: :mod:`.sim`'s four prints per bar (open, low/high, high/low,
close, a quarter of the volume each), stamped at the bar's open plus 0, ¼, ½ and ¾ of its
interval, ids ``<open second × 4 + k>``.

Faults (``inject``): ``public_429`` (``count``, ``retry_after``, ``body=html|json``) and
``public_5xx`` (``count``, ``status``) answer the next ``count`` history calls with that
error instead of the data.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptoj.adapters.coinbase.fake.sim import clean
from cryptoj.adapters.coinbase.parse import format_rfc3339_ns
from cryptoj.marketdata.loader import Batch
from cryptoj.models.market import Bar

GRANULARITIES: dict[str, int] = {
    "ONE_MINUTE": 60,
    "FIVE_MINUTE": 300,
    "FIFTEEN_MINUTE": 900,
    "THIRTY_MINUTE": 1800,
    "ONE_HOUR": 3600,
    "TWO_HOUR": 7200,
    "SIX_HOUR": 21600,
    "ONE_DAY": 86400,
}
"""Coinbase's candle granularities (names as the API takes them) and their length in seconds."""

MAX_CANDLES = 350
MAX_TRADES = 1000


class HistoryError(ValueError):
    """A history request the fake answers with an error: ``status`` and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Bar:
    open_s: int
    o: Decimal
    h: Decimal
    lo: Decimal
    c: Decimal
    v: Decimal


def _fmt(d: Decimal) -> str:
    return f"{d.normalize():f}" if d else "0"


class MarketHistory:
    """Recorded bars by product, answering candle and trade range queries (thread-safe)."""

    def __init__(self, batches: Sequence[Batch]) -> None:
        bars: dict[str, list[_Bar]] = {}
        interval = 0
        for batch in batches:
            for e in batch:
                if isinstance(e, Bar):
                    open_s = e.ts // 1_000_000_000 - e.interval_s
                    interval = e.interval_s
                    bars.setdefault(e.product, []).append(
                        _Bar(open_s, e.open, e.high, e.low, e.close, clean(e.volume))
                    )
        self.interval_s = interval
        self.bars = {p: sorted(b, key=lambda x: x.open_s) for p, b in bars.items()}
        self._opens = {p: [b.open_s for b in bs] for p, bs in self.bars.items()}
        self._lock = threading.Lock()
        self._armed: list[tuple[str, int, dict[str, Any]]] = []  # kind, left, params

    # -- faults --

    def inject(self, kind: str, kw: dict[str, Any]) -> dict[str, Any] | None:
        """Arm ``public_429`` / ``public_5xx`` (None: not one of ours)."""
        if kind not in ("public_429", "public_5xx"):
            return None
        n = int(kw.get("count", 1))
        if n < 1:
            raise ValueError(f"count must be >= 1, not {n}")
        params = {k: v for k, v in kw.items() if k != "count"}
        if kind == "public_5xx" and int(params.get("status", 503)) not in (500, 502, 503, 504):
            raise ValueError(f"public_5xx status must be 500, 502, 503 or 504, not {params}")
        with self._lock:
            self._armed.append((kind, n, params))
        return {"ok": True, "kind": kind, "count": n}

    def take_fault(self) -> tuple[str, dict[str, Any]] | None:
        """The armed fault for this history call, if any."""
        with self._lock:
            if not self._armed:
                return None
            kind, left, params = self._armed[0]
            if left <= 1:
                self._armed.pop(0)
            else:
                self._armed[0] = (kind, left - 1, params)
            return kind, params

    # -- queries --

    def _range(self, product: str, start: int, end: int) -> list[_Bar]:
        if product not in self.bars:
            raise HistoryError(404, f"product {product} not found")
        opens = self._opens[product]
        return self.bars[product][bisect.bisect_left(opens, start) : bisect.bisect_left(opens, end)]

    def candles(self, product: str, q: dict[str, list[str]]) -> dict[str, Any]:
        """The answer to a candles call (see the module docstring)."""
        start, end = _seconds(q, "start", True), _seconds(q, "end", True)
        name = q.get("granularity", [""])[-1]
        if name not in GRANULARITIES:
            raise HistoryError(400, f"granularity {name!r} is not one of {sorted(GRANULARITIES)}")
        g = GRANULARITIES[name]
        assert start is not None and end is not None
        if end <= start:
            raise HistoryError(400, f"end {end} must be after start {start}")
        buckets = -(-(end - start) // g)
        if buckets > MAX_CANDLES:
            raise HistoryError(
                400, f"number of candles requested should be less than {MAX_CANDLES + 1}"
            )
        limit = _limit(q, MAX_CANDLES, MAX_CANDLES)
        rows: list[dict[str, str]] = []
        if self.interval_s and g % self.interval_s == 0:
            first = start - start % g
            grouped: dict[int, list[_Bar]] = {}
            for b in self._range(product, first, end):
                grouped.setdefault(b.open_s - b.open_s % g, []).append(b)
            for t in sorted(grouped, reverse=True):
                if not start <= t < end:
                    continue
                group = grouped[t]
                rows.append(
                    {
                        "start": str(t),
                        "low": _fmt(min(b.lo for b in group)),
                        "high": _fmt(max(b.h for b in group)),
                        "open": _fmt(group[0].o),
                        "close": _fmt(group[-1].c),
                        "volume": _fmt(sum((b.v for b in group), Decimal(0))),
                    }
                )
        elif product not in self.bars:
            raise HistoryError(404, f"product {product} not found")
        return {"candles": rows[:limit]}

    def trades(self, product: str, q: dict[str, list[str]]) -> dict[str, Any]:
        """The answer to a ticker call with a time range (modelled trades, newest first)."""
        start = _seconds(q, "start", False)
        end = _seconds(q, "end", False)
        limit = _limit(q, 100, MAX_TRADES)
        lo = start if start is not None else 0
        hi = end if end is not None else 2**62
        step = self.interval_s // 4 or 1
        out: list[dict[str, str]] = []
        # bars that may hold a print in [lo, hi), newest first, until ``limit`` prints
        for b in reversed(self._range(product, lo - self.interval_s, hi)):
            prints = _prints(b)
            for k in range(len(prints) - 1, -1, -1):
                t = b.open_s + k * step
                if not lo <= t < hi:
                    continue
                price, size, side = prints[k]
                out.append(
                    {
                        "trade_id": str(b.open_s * 4 + k),
                        "product_id": product,
                        "price": _fmt(price),
                        "size": _fmt(size),
                        "time": format_rfc3339_ns(t * 1_000_000_000),
                        "side": side,
                        "bid": "",
                        "ask": "",
                    }
                )
                if len(out) >= limit:
                    return {"trades": out, "best_bid": "", "best_ask": ""}
        return {"trades": out, "best_bid": "", "best_ask": ""}


def _prints(b: _Bar) -> list[tuple[Decimal, Decimal, str]]:
    """The four modelled prints of a bar (none when it has no volume)."""
    if not b.v:
        return []
    down = b.c < b.o
    path = [b.o, b.h if down else b.lo, b.lo if down else b.h, b.c]
    size = clean(b.v / 4)
    out: list[tuple[Decimal, Decimal, str]] = []
    prev = path[0]
    for price in path:
        out.append((price, size, "BUY" if price >= prev else "SELL"))
        prev = price
    return out


def _seconds(q: dict[str, list[str]], name: str, required: bool) -> int | None:
    raw = q.get(name, [""])[-1]
    if raw == "":
        if required:
            raise HistoryError(400, f"{name} is required (Unix seconds)")
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise HistoryError(400, f"{name} {raw!r} is not Unix seconds")
    return int(raw)


def _limit(q: dict[str, list[str]], default: int, most: int) -> int:
    raw = q.get("limit", [""])[-1]
    if raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise HistoryError(400, f"limit {raw!r} is not a positive integer")
    return min(int(raw), most)
