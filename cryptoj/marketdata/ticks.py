"""Recorded trade ticks (CSV) as time-ordered batches of :class:`~cryptoj.models.market.Trade`.

Format (the shared library's tick conversion, e.g. ``benchmarks/data/*.csv.gz``): header
``local_ts_ns,time_ms,time_utc,trade_id,price,quantity,buyer_maker``; ``time_ms`` is the
exchange's trade time (epoch ms), ``buyer_maker=True`` means the seller was the taker. The
product is taken from the file name (``binance_BTCUSDT_trades_….csv.gz`` → ``BTC-USDT``) unless
given. Trades sharing a millisecond form one batch; every row is validated (file and line in the
error).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import re
from decimal import Decimal, InvalidOperation
from itertools import groupby
from pathlib import Path

from cryptoj.marketdata.loader import Batch, DataError, load_events
from cryptoj.models.market import Trade

TICK_COLUMNS = ("time_ms", "trade_id", "price", "quantity", "buyer_maker")
_QUOTES = ("USDT", "USDC", "BUSD", "USD", "EUR", "GBP", "BTC", "ETH")
_NAME = re.compile(r"^[a-z0-9-]+_([A-Z0-9]+)_trades")


def is_tick_file(path: Path) -> bool:
    """True when the file's header is the trade-tick format."""
    try:
        with _open(path) as f:
            header = f.readline().strip().split(",")
    except (OSError, UnicodeDecodeError, gzip.BadGzipFile):
        return False
    return all(c in header for c in TICK_COLUMNS)


def product_from_name(path: Path) -> str:
    """``binance_BTCUSDT_trades_….csv.gz`` → ``BTC-USDT``."""
    m = _NAME.match(path.name)
    if m:
        symbol = m.group(1)
        for quote in _QUOTES:
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return f"{symbol[: -len(quote)]}-{quote}"
    raise DataError(str(path), "cannot tell the product from the file name; pass product=")


def load_trade_ticks(path: str | Path, product: str | None = None) -> list[Batch]:
    """Every trade of the file, one batch per millisecond, in time order."""
    p = Path(path)
    if not p.is_file():
        raise DataError(str(p), "no such file")
    name = product or product_from_name(p)
    trades: list[Trade] = []
    with _open(p) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataError(str(p), "empty file")
        missing = [c for c in TICK_COLUMNS if c not in header]
        if missing:
            raise DataError(str(p), f"missing column(s) {', '.join(missing)}", 1)
        idx = {c: header.index(c) for c in TICK_COLUMNS}
        last_ms = -1
        for line, row in enumerate(reader, start=2):
            try:
                ms = int(row[idx["time_ms"]])
                price = Decimal(row[idx["price"]])
                qty = Decimal(row[idx["quantity"]])
                maker = row[idx["buyer_maker"]]
            except (ValueError, IndexError, InvalidOperation) as e:
                raise DataError(str(p), f"malformed row: {e}", line) from None
            if not (price.is_finite() and price > 0 and qty.is_finite() and qty > 0):
                raise DataError(str(p), f"price and quantity must be positive: {row}", line)
            if maker not in ("True", "False"):
                raise DataError(str(p), f"buyer_maker must be True or False, got {maker!r}", line)
            if ms < last_ms:
                raise DataError(str(p), f"time goes backwards ({ms} after {last_ms})", line)
            last_ms = ms
            trades.append(
                Trade(
                    ts=ms * 1_000_000,
                    product=name,
                    price=price,
                    quantity=qty,
                    taker_side="SELL" if maker == "True" else "BUY",
                    trade_id=row[idx["trade_id"]],
                )
            )
    if not trades:
        raise DataError(str(p), "no trades in the file")
    return [tuple(group) for _, group in groupby(trades, key=lambda t: t.ts)]


def _open(path: Path) -> io.TextIOWrapper:
    raw = path.open("rb")
    head = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8", newline="")


def load_market_data(
    source: str,
    *,
    products: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    catalog: str = "data",
) -> list[Batch]:
    """Bars/quotes (a bundled set or long CSV), trade ticks (a tick CSV), or a set of the local
    catalog (``catalog:BTC-USD,ETH-USD/1m``, ``recorded:YYYY-MM-DD``), as batches."""
    if source.startswith("catalog:"):
        from cryptoj.marketdata.catalog import load_catalog_events

        return load_catalog_events(source, catalog, products=products, start=start, end=end)
    if source.startswith("recorded:"):
        from cryptoj.marketdata.recording import load_recorded_events

        return load_recorded_events(source, catalog, products=products)
    path = Path(source)
    if not (path.is_file() and is_tick_file(path)):
        return load_events(source, products=products, start=start, end=end)
    batches = load_trade_ticks(path)
    if products and batches[0][0].product not in products:
        raise DataError(str(path), f"holds {batches[0][0].product}, not {', '.join(products)}")
    lo = -1 if start is None else _day_ns(start)
    hi = None if end is None else _day_ns(end + dt.timedelta(days=1))
    kept = [b for b in batches if b[0].ts >= lo and (hi is None or b[0].ts < hi)]
    if not kept:
        raise DataError(str(path), "no trades between --from and --to")
    return kept


def _day_ns(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 10**9
