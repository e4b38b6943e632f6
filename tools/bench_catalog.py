"""How long reading a year of one product's minute bars from the local catalog takes.

    python tools/bench_catalog.py --json                         # a SYNTHETIC year (labelled)
    python tools/bench_catalog.py --csv ftx-btc-1m.csv.gz --json  # recorded bars (converted)

No year of recorded 1-minute bars is available offline (the longest recorded series here is a
month), so the default input is a **synthetic** year: 525,600 bars of product ``SYN-USD``
from a seeded random walk, written through :class:`~cryptoj.marketdata.catalog.Catalog` like a
download would write them, and reported with ``"synthetic": true``. It stands in for the file
sizes and row counts only; its values are not market data. ``--csv`` instead converts a
recorded long-format CSV (one product) into a catalog and measures that, with the per-bar cost
and the year it implies (``"extrapolated"``).

Three figures, best of ``--repeat`` runs each: ``arrow_read_s`` (the Parquet files into Arrow
tables: the columnar read itself), ``events_s`` (``replay --data catalog:…``'s whole input
path: read, validate every row as the CSV loader does, build the ``Bar`` events) and
``csv_events_s`` (the same bars from a gzip long CSV through the existing loader, for
comparison).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptoj.marketdata.catalog import (
    CANDLE_COLUMNS,
    Catalog,
    candle_kind,
    day_range,
    day_start_s,
    load_catalog_events,
)
from cryptoj.marketdata.loader import load_events

SYNTHETIC = "SYN-USD"
YEAR = (dt.date(2023, 1, 1), dt.date(2023, 12, 31))


def synthetic_days(seed: int) -> dict[dt.date, dict[str, list[Any]]]:
    """A SYNTHETIC year of minute bars (seeded random walk); not market data."""
    rng = random.Random(seed)
    price = 30_000.0
    out: dict[dt.date, dict[str, list[Any]]] = {}
    for day in day_range(*YEAR):
        cols: dict[str, list[Any]] = {c: [] for c in CANDLE_COLUMNS}
        t0 = day_start_s(day)
        for minute in range(1440):
            o = price
            c = max(1.0, o * (1 + rng.gauss(0, 0.0008)))
            h = max(o, c) * (1 + abs(rng.gauss(0, 0.0003)))
            lo = min(o, c) * (1 - abs(rng.gauss(0, 0.0003)))
            cols["product"].append(SYNTHETIC)
            cols["open_time_ms"].append((t0 + minute * 60) * 1000)
            for name, v in (("open", o), ("high", h), ("low", lo), ("close", c)):
                cols[name].append(f"{v:.2f}")
            cols["volume"].append(f"{rng.expovariate(1 / 3):.8f}")
            price = c
        out[day] = cols
    return out


def recorded_days(path: Path) -> tuple[str, dict[dt.date, dict[str, list[Any]]]]:
    """The rows of a recorded long CSV (one product), split by UTC day."""
    from cryptoj.models.market import Bar

    out: dict[dt.date, dict[str, list[Any]]] = {}
    products = set()
    for batch in load_events(path):
        for e in batch:
            if not isinstance(e, Bar):
                continue
            products.add(e.product)
            open_ms = e.ts // 1_000_000 - e.interval_s * 1000
            day = dt.datetime.fromtimestamp(open_ms // 1000, dt.UTC).date()
            cols = out.setdefault(day, {c: [] for c in CANDLE_COLUMNS})
            cols["product"].append(e.product)
            cols["open_time_ms"].append(open_ms)
            for name in ("open", "high", "low", "close", "volume"):
                cols[name].append(str(getattr(e, name)))
    if len(products) != 1:
        raise SystemExit(f"{path}: expected one product, found {sorted(products)}")
    return products.pop(), out


def best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest of ``repeat`` runs (seconds) and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    """Run the benchmark; print the figures (one JSON object with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--csv", type=Path, default=None, help="a recorded long CSV (one product)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the synthetic year")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import pyarrow.parquet as pq

    if args.csv is None:
        product, days = SYNTHETIC, synthetic_days(args.seed)
    else:
        product, days = recorded_days(args.csv)
    rows = sum(len(c["product"]) for c in days.values())
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        catalog = Catalog(Path(tmp) / "catalog")
        for day, cols in sorted(days.items()):
            catalog.write_day(product, candle_kind("1m"), day, cols, [], "bench_catalog.py")
        files = sorted((catalog.root / product / candle_kind("1m")).glob("*.parquet"))
        size = sum(f.stat().st_size for f in files)
        arrow_s, _ = best(args.repeat, lambda: [pq.read_table(f) for f in files])
        name = f"catalog:{product}/1m"
        events_s, batches = best(args.repeat, lambda: load_catalog_events(name, catalog.root))
        csv_path = Path(tmp) / "same.csv.gz"
        lines = [",".join(CANDLE_COLUMNS)]
        for _, cols in sorted(days.items()):
            lines += [",".join(str(v) for v in r) for r in zip(*cols.values(), strict=True)]
        csv_path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), 6))
        csv_s, csv_batches = best(args.repeat, lambda: load_events(csv_path, interval_s=60))
        assert batches == csv_batches, "catalog and CSV give different events"
        assert all(e.close > Decimal(0) for b in batches[:10] for e in b)
    year = 525_600
    out = {
        "synthetic": args.csv is None,
        "source": "synthetic random walk (not market data)" if args.csv is None else str(args.csv),
        "product": product,
        "bars": rows,
        "days": len(days),
        "parquet_bytes": size,
        "arrow_read_s": round(arrow_s, 4),
        "events_s": round(events_s, 3),
        "csv_events_s": round(csv_s, 3),
        "events_us_per_bar": round(events_s / rows * 1e6, 2),
    }
    if rows < year:
        out["extrapolated"] = {
            "arrow_read_s_year": round(arrow_s / rows * year, 3),
            "events_s_year": round(events_s / rows * year, 2),
        }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
