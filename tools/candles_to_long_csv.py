"""Convert a candle CSV of the shared data library into cryptoj's long CSV format.

    python tools/candles_to_long_csv.py SRC.csv.gz OUT.csv.gz --product BTC-USD [--volume-in-quote]

The library's candle files have ``open_time_ms,open_time_utc,open,high,low,close,volume`` (bar
*open* times, UTC). The long format (``cryptoj/marketdata/loader.py``) wants
``product,open_time_ms,open,high,low,close,volume,bid,bid_size,ask,ask_size`` with the quote
cells empty (the replay then models a quote from each bar). Prices are copied as the exact
strings of the source. ``--volume-in-quote`` is for files whose ``volume`` is in the quote
currency (the FTX BTC-PERP minute file): it is divided by the bar's typical price
``(high + low + close) / 3`` and rounded to 1e-8 to give base units.

Used for the FTX figures in the README::

    python tools/candles_to_long_csv.py \\
        ../shared/data/market/csv/candles/ftx_BTC-PERP_1m_20211231_20220201.csv.gz \\
        /tmp/ftx-btc-1m.csv.gz --product BTC-USD --volume-in-quote
    python -m cryptoj replay --data /tmp/ftx-btc-1m.csv.gz --json
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Literal

COLUMNS = ("product", "open_time_ms", "open", "high", "low", "close", "volume",
           "bid", "bid_size", "ask", "ask_size")  # fmt: skip
Q8 = Decimal("0.00000001")


def _open(path: Path, mode: Literal["r", "w"]) -> IO[str]:
    if path.suffix == ".gz":
        if mode == "r":
            return gzip.open(path, "rt", encoding="utf-8", newline="")
        return gzip.open(path, "wt", encoding="utf-8", newline="")
    return path.open(mode, encoding="utf-8", newline="")


def convert(src: Path, out: Path, product: str, volume_in_quote: bool) -> int:
    """Write ``out`` from ``src``; the number of rows. ValueError names a bad line."""
    rows = 0
    with _open(src, "r") as f, _open(out, "w") as g:
        reader = csv.DictReader(f)
        missing = {"open_time_ms", "open", "high", "low", "close", "volume"} - set(
            reader.fieldnames or ()
        )
        if missing:
            raise ValueError(f"{src}: missing column(s) {', '.join(sorted(missing))}")
        writer = csv.writer(g, lineterminator="\n")
        writer.writerow(COLUMNS)
        for line, row in enumerate(reader, start=2):
            try:
                high, low, close = (Decimal(row[k]) for k in ("high", "low", "close"))
                volume = Decimal(row["volume"])
            except InvalidOperation:
                raise ValueError(f"{src}:{line}: not a number in {row}") from None
            if volume_in_quote:
                volume = (volume / ((high + low + close) / 3)).quantize(Q8)
            writer.writerow(
                [product, row["open_time_ms"], row["open"], row["high"], row["low"],
                 row["close"], volume, "", "", "", ""]
            )  # fmt: skip
            rows += 1
    return rows


def main(argv: list[str] | None = None) -> int:
    """Convert; exit 2 with one line on bad input."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--product", required=True, help="product id to write, e.g. BTC-USD")
    ap.add_argument("--volume-in-quote", action="store_true", help="volume is in quote units")
    args = ap.parse_args(argv)
    try:
        n = convert(args.src, args.out, args.product, args.volume_in_quote)
    except (OSError, ValueError) as e:
        print(f"candles_to_long_csv: {e}", file=sys.stderr)
        return 2
    print(f"{n} rows written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
