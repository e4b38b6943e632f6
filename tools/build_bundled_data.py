#!/usr/bin/env python3
"""Rebuild the recorded market data bundled with cryptoj (``cryptoj/marketdata/bundled/``).

Writes two gzip-compressed CSV files in the long format read by
:func:`cryptoj.marketdata.load_events`, plus ``datasets.json`` (one entry per set). The
hand-written ``PROVENANCE.md`` next to them documents what this script does; keep them in step.

=========================  ===================================================================
set                        upstream originals (from the shared offline library, ``src/``)
=========================  ===================================================================
``coinbase-1m-2018-04``    QuantConnect/Lean (Apache-2.0): Coinbase 1-minute trade bars and
                           quote bars for BTC-USD, ETH-USD, LTC-USD on 2018-04-04 and 04-05
``coinbase-4h-2016-2025``  ta4j/ta4j (MIT): Coinbase 4-hour candles for BTC-USD and ETH-USD,
                           2016-05-18 → 2025-10-28 (full history)
=========================  ===================================================================

Values are copied as the exact strings of the upstream files (never re-formatted through
floats). Before reading, every upstream file is checked against ``MANIFEST.csv`` (git blob id
and sha256 of the original) and its licence must be MIT or Apache-2.0. After building, each set
is compared with the library's own CSV conversion (``csv/candles/``) and the differences are
printed: for the Lean quote bars those conversions rounded away float noise in the sizes
(e.g. ``33.35399601000002`` → ``33.35399601``); the bundle keeps the upstream strings.

Output is deterministic (gzip ``mtime`` 0, sorted rows), so rebuilding an unchanged library
gives byte-identical files.

Usage (from the repository root)::

    python tools/build_bundled_data.py                 # library at ../shared/data/market
    python tools/build_bundled_data.py --shared /path/to/shared/data/market
    python tools/build_bundled_data.py --out /tmp/bundled
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data" / "market"
DEFAULT_OUT = REPO_ROOT / "cryptoj" / "marketdata" / "bundled"

COLUMNS = (
    "product", "open_time_ms", "open", "high", "low", "close", "volume",
    "bid", "bid_size", "ask", "ask_size",
)  # fmt: skip
PERMISSIVE = {"MIT", "Apache-2.0"}

Row = tuple[str, int, tuple[str, ...], tuple[str, ...]]  # product, open_ms, ohlcv, quote


@dataclass(frozen=True)
class SetSpec:
    """One bundled set: its metadata and the function producing its rows."""

    name: str
    file: str
    resolution: str
    interval_s: int
    licence: str
    source: str
    description: str
    build: Callable[[Path, dict[str, dict[str, str]]], list[Row]]
    shared_csvs: tuple[str, ...]  # the library's conversions, for the cross-check


# --- upstream readers -------------------------------------------------------------------------

LEAN_SYMBOLS = {"BTC-USD": "btcusd", "ETH-USD": "ethusd", "LTC-USD": "ltcusd"}
LEAN_DAYS = ("20180404", "20180405")
TA4J_FILES = {
    "BTC-USD": "src/ta4j/Coinbase-BTC-USD-PT4H-20160518_20251028.json.gz",
    "ETH-USD": "src/ta4j/Coinbase-ETH-USD-PT4H-20160518_20251028.json.gz",
}


def read_original(shared: Path, stored: str, manifest: dict[str, dict[str, str]]) -> bytes:
    """Return the upstream bytes of ``stored`` after checking them against MANIFEST.csv."""
    entry = manifest.get(stored)
    if entry is None:
        sys.exit(f"{stored}: not listed in MANIFEST.csv")
    if entry["licence"] not in PERMISSIVE:
        sys.exit(f"{stored}: licence {entry['licence']!r} is not MIT or Apache-2.0")
    data = (shared / stored).read_bytes()
    if entry["stored_as"] == "gzip of original":
        data = gzip.decompress(data)
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id
    if hashlib.sha256(data).hexdigest() != entry["original_sha256"] or blob != entry["git_blob_id"]:
        sys.exit(f"{stored}: content does not match MANIFEST.csv (sha256 / git blob id)")
    return data


def lean_csv(shared: Path, stored: str, manifest: dict[str, dict[str, str]]) -> list[list[str]]:
    """Rows of the single headerless CSV inside a Lean ``.zip``."""
    with zipfile.ZipFile(io.BytesIO(read_original(shared, stored, manifest))) as archive:
        (name,) = archive.namelist()
        return list(csv.reader(io.StringIO(archive.read(name).decode("ascii"))))


def build_lean_1m(shared: Path, manifest: dict[str, dict[str, str]]) -> list[Row]:
    """Merge Lean minute trade bars and quote bars (bid/ask close + last sizes) per minute."""
    rows: list[Row] = []
    for product, symbol in LEAN_SYMBOLS.items():
        trades: dict[int, tuple[str, ...]] = {}
        quotes: dict[int, tuple[str, ...]] = {}
        for day in LEAN_DAYS:
            midnight = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)
            base_ms = int(midnight.timestamp()) * 1000
            prefix = f"src/lean/crypto/coinbase/minute/{symbol}/{day}"
            for kind, target, width in (("trade", trades, 6), ("quote", quotes, 11)):
                for fields in lean_csv(shared, f"{prefix}_{kind}.zip", manifest):
                    ms = int(fields[0])
                    if len(fields) != width or ms % 60_000 or not 0 <= ms < 86_400_000:
                        sys.exit(f"{prefix}_{kind}.zip: unexpected row {fields}")
                    if base_ms + ms in target:
                        sys.exit(f"{prefix}_{kind}.zip: duplicate minute {ms}")
                    if kind == "trade":  # ms, open, high, low, close, volume
                        target[base_ms + ms] = tuple(fields[1:6])
                    else:  # ms, bid O/H/L/C, last bid size, ask O/H/L/C, last ask size
                        target[base_ms + ms] = (fields[4], fields[5], fields[9], fields[10])
        for open_ms in sorted(trades.keys() | quotes.keys()):
            rows.append((product, open_ms, trades.get(open_ms, ()), quotes.get(open_ms, ())))
    return rows


def build_ta4j_4h(shared: Path, manifest: dict[str, dict[str, str]]) -> list[Row]:
    """Coinbase REST candles from ta4j: ``start`` (s, bar open) and OHLCV strings."""
    rows: list[Row] = []
    for product, stored in TA4J_FILES.items():
        candles = json.loads(read_original(shared, stored, manifest))["candles"]
        seen: set[int] = set()
        for candle in candles:
            open_ms = int(candle["start"]) * 1000
            if open_ms in seen or open_ms % 14_400_000:
                sys.exit(f"{stored}: duplicate or misaligned candle {candle}")
            seen.add(open_ms)
            ohlcv = tuple(candle[k] for k in ("open", "high", "low", "close", "volume"))
            if not all(isinstance(v, str) for v in ohlcv):
                sys.exit(f"{stored}: expected string values, got {candle}")
            rows.append((product, open_ms, ohlcv, ()))
    return rows


SETS = (
    SetSpec(
        name="coinbase-1m-2018-04",
        file="coinbase-1m-2018-04.csv.gz",
        resolution="1m",
        interval_s=60,
        licence="Apache-2.0",
        source="QuantConnect/Lean@24863901deffa9ec7985e21ef8fbdb0258efb9e4 "
        "Data/crypto/coinbase/minute/{btcusd,ethusd,ltcusd}/{20180404,20180405}_{trade,quote}.zip",
        description="Coinbase 1-minute trade bars (OHLCV) and top-of-book quotes (bid/ask and "
        "sizes at the minute's close) for BTC-USD, ETH-USD, LTC-USD, 2018-04-04 and 2018-04-05 "
        "UTC. Minutes without trades have no bar; minutes without a quote bar have no quote.",
        build=build_lean_1m,
        shared_csvs=(
            "csv/candles/coinbase_BTC-USD_1m_trade_20161007_20180406.csv",
            "csv/candles/coinbase_BTC-USD_1m_quote_20170903_20180405.csv",
            "csv/candles/coinbase_ETH-USD_1m_trade_20170903_20180405.csv",
            "csv/candles/coinbase_ETH-USD_1m_quote_20170903_20180405.csv",
            "csv/candles/coinbase_LTC-USD_1m_trade_20180404_20180406.csv",
            "csv/candles/coinbase_LTC-USD_1m_quote_20180404_20180406.csv",
        ),
    ),
    SetSpec(
        name="coinbase-4h-2016-2025",
        file="coinbase-4h-2016-2025.csv.gz",
        resolution="4h",
        interval_s=14_400,
        licence="MIT",
        source="ta4j/ta4j@42e1a941ebdf4f8b122b12ab65bfd012c6bee7f3 ta4j-examples/src/main/"
        "resources/Coinbase-{BTC,ETH}-USD-PT4H-20160518_20251028.json",
        description="Coinbase 4-hour candles (OHLCV, no quotes) for BTC-USD and ETH-USD over "
        "their full history 2016-05-18 → 2025-10-28 UTC, covering every stress period since "
        "(Dec-2017 top, Jan-2018 and Nov-2018 crashes, March-2020 COVID crash, May-2021, "
        "LUNA, FTX, Aug-2024). A few upstream bars are missing and not filled.",
        build=build_ta4j_4h,
        shared_csvs=tuple(
            f"csv/candles/coinbase_{p}_4h_20160518_20251028.csv.gz" for p in ("BTC-USD", "ETH-USD")
        ),
    ),
)


# --- output -----------------------------------------------------------------------------------


def render_csv(rows: Iterable[Row]) -> bytes:
    """The long-format CSV text (header + rows sorted by open time, then product)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for product, open_ms, ohlcv, quote in sorted(rows, key=lambda r: (r[1], r[0])):
        writer.writerow([product, open_ms, *(ohlcv or ("",) * 5), *(quote or ("",) * 4)])
    return out.getvalue().encode("ascii")


def write_gzip(path: Path, data: bytes) -> None:
    """Write ``data`` gzip-compressed with no timestamp or name in the header (reproducible)."""
    with path.open("wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as gz:
        gz.write(data)


def iso(open_ms: int) -> str:
    """Epoch milliseconds → ``2018-04-04T00:00:00Z``."""
    return datetime.fromtimestamp(open_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def library_values(path: Path) -> Iterable[tuple[tuple[str, int, str], list[str]]]:
    """Yield ``((product, open_ms, kind), values)`` from one of the library's CSV conversions."""
    product, kind = path.name.split("_")[1], "quote" if "_quote_" in path.name else "trade"
    columns = (
        ("bid_close", "bid_size_last", "ask_close", "ask_size_last")
        if kind == "quote"
        else ("open", "high", "low", "close", "volume")
    )
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    for rec in csv.DictReader(io.StringIO(data.decode("ascii"))):
        yield (product, int(rec["open_time_ms"]), kind), [rec[c] for c in columns]


def cross_check(shared: Path, spec: SetSpec, rows: list[Row]) -> None:
    """Print how the bundle differs from the library's CSV conversions of the same data."""
    ours = {(p, ms, k): v for p, ms, ohlcv, q in rows for k, v in (("trade", ohlcv), ("quote", q))}
    same = noise = 0
    for name in spec.shared_csvs:
        for key, theirs in library_values(shared / name):
            if key not in ours:
                continue  # a day outside the bundled range
            for a, b in zip(ours.pop(key), theirs, strict=True):
                if a == b:
                    same += 1
                elif abs(Decimal(a) - Decimal(b)) <= abs(Decimal(b)) * Decimal("1e-12"):
                    noise += 1
                else:
                    sys.exit(f"{name}: {key} differs: bundle {a!r}, library CSV {b!r}")
    missing = [k for k, v in ours.items() if v]
    if missing:
        sys.exit(f"{spec.name}: {len(missing)} bars not in the library CSVs, e.g. {missing[:3]}")
    print(
        f"  cross-check vs csv/candles: {same} values identical, {noise} differ only by "
        "float noise (< 1e-12 relative; the bundle keeps the upstream string)"
    )


def main(argv: list[str] | None = None) -> int:
    """Build every set into ``--out`` and write ``datasets.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=DEFAULT_SHARED,
        help="the shared market-data library (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    shared: Path = args.shared
    with (shared / "MANIFEST.csv").open(newline="") as stream:
        manifest = {r["stored_file"]: r for r in csv.DictReader(stream)}
    args.out.mkdir(parents=True, exist_ok=True)
    catalogue = []
    for spec in SETS:
        rows = spec.build(shared, manifest)
        data = render_csv(rows)
        write_gzip(args.out / spec.file, data)
        times = [ms for _, ms, _, _ in rows]
        catalogue.append(
            {
                "name": spec.name,
                "file": spec.file,
                "instruments": sorted({p for p, _, _, _ in rows}),
                "resolution": spec.resolution,
                "interval_s": spec.interval_s,
                "start": iso(min(times)),
                "end": iso(max(times)),
                "rows": len(rows),
                "licence": spec.licence,
                "source": spec.source,
                "description": spec.description,
                "csv_sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        size = (args.out / spec.file).stat().st_size
        bars = sum(1 for r in rows if r[2])
        quotes = sum(1 for r in rows if r[3])
        print(
            f"{spec.file}: {len(rows)} rows ({bars} bars, {quotes} quotes), "
            f"{len(data)} bytes CSV, {size} bytes gz"
        )
        cross_check(shared, spec, rows)
    text = json.dumps({"datasets": catalogue}, indent=2, ensure_ascii=False) + "\n"
    (args.out / "datasets.json").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
