"""The local market-data catalog: Parquet files partitioned by product, kind and UTC day.

Layout (``data/`` by default)::

    <catalog>/index.json                          one entry per stored (product, kind, day)
    <catalog>/<product>/<kind>/<YYYY-MM-DD>.parquet

``kind`` is ``candles-<res>`` (``res`` one of :data:`RESOLUTIONS`: 1m 5m 15m 30m 1h 2h 6h 1d)
or ``trades``. A candle file has the long CSV's columns ``product, open_time_ms, open, high,
low, close, volume`` (prices and volumes as the exchange's decimal strings, so exact); a trade
file ``product, trade_id, time_ns, price, size, side``. A day is in the index only once all of
it was fetched: a download that is interrupted leaves no entry for the day it was on, and the
next run fetches that day again (and nothing that is indexed). Nothing is filled in: each entry
lists its **gaps** (``[first missing open, last missing open]`` in Unix seconds, for candles)
and a day with no data at all has ``rows: 0`` and no file.

Reading (``catalog:BTC-USD,ETH-USD/1m``) gives what :func:`~.loader.load_field_rows` gives for
the same rows (the long CSV format's validation and bar-close stamping): a columnar check of
whole files (:mod:`.catalog_fast`) builds the events directly when every row is certainly
valid, and otherwise the loader reads the files row by row and names the first bad one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptoj.marketdata.catalog_fast import fast_candle_events
from cryptoj.marketdata.loader import Batch, DataError, load_field_rows

RESOLUTIONS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "6h": 21600,
    "1d": 86400,
}
"""Candle resolutions of the catalog and their length in seconds."""

GRANULARITY_RESOLUTION: dict[str, str] = {
    "ONE_MINUTE": "1m",
    "FIVE_MINUTE": "5m",
    "FIFTEEN_MINUTE": "15m",
    "THIRTY_MINUTE": "30m",
    "ONE_HOUR": "1h",
    "TWO_HOUR": "2h",
    "SIX_HOUR": "6h",
    "ONE_DAY": "1d",
}
"""Coinbase's candle granularity names → the catalog's resolution names."""

CANDLE_COLUMNS = ("product", "open_time_ms", "open", "high", "low", "close", "volume")
TRADE_COLUMNS = ("product", "trade_id", "time_ns", "price", "size", "side")
INDEX = "index.json"
DAY_S = 86_400


def candle_kind(resolution: str) -> str:
    """``1m`` → ``candles-1m``."""
    return f"candles-{resolution}"


@dataclass(frozen=True)
class DayEntry:
    """One stored (product, kind, day) of the index."""

    product: str
    kind: str
    day: str  # YYYY-MM-DD
    file: str | None  # relative to the catalog; None when the day has no rows
    rows: int
    gaps: tuple[tuple[int, int], ...]  # candles: (first, last) missing open times, Unix s
    source: str

    @property
    def key(self) -> str:
        """``product/kind/day``."""
        return f"{self.product}/{self.kind}/{self.day}"

    def missing(self, interval_s: int) -> int:
        """How many candle buckets of this day are gaps."""
        return sum((b - a) // interval_s + 1 for a, b in self.gaps)


class Catalog:
    """A catalog directory (created on first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._index: dict[str, DayEntry] | None = None  # read once, then kept with each write

    # -- index --

    def entries(self) -> dict[str, DayEntry]:
        """Every indexed day, by ``product/kind/day``; DataError when the index is unusable.

        The index is read once per :class:`Catalog` object (one writer at a time)."""
        if self._index is None:
            self._index = self._read_index()
        return dict(self._index)

    def _read_index(self) -> dict[str, DayEntry]:
        path = self.root / INDEX
        if not path.is_file():
            return {}
        try:
            raw = json.loads(path.read_text())
            return {
                k: DayEntry(
                    product=v["product"],
                    kind=v["kind"],
                    day=v["day"],
                    file=v["file"],
                    rows=int(v["rows"]),
                    gaps=tuple((int(a), int(b)) for a, b in v["gaps"]),
                    source=str(v.get("source", "")),
                )
                for k, v in raw["days"].items()
            }
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(str(path), f"catalog index is corrupt: {e!r}") from e

    def has(self, product: str, kind: str, day: dt.date) -> bool:
        """True when the day is stored completely."""
        return f"{product}/{kind}/{day.isoformat()}" in self.entries()

    def _write_index(self, entries: dict[str, DayEntry]) -> None:
        days = {
            k: {
                "product": e.product,
                "kind": e.kind,
                "day": e.day,
                "file": e.file,
                "rows": e.rows,
                "gaps": [list(g) for g in e.gaps],
                "source": e.source,
            }
            for k, e in sorted(entries.items())
        }
        _atomic_write(self.root / INDEX, json.dumps({"version": 1, "days": days}, indent=1))

    # -- writing --

    def write_day(
        self,
        product: str,
        kind: str,
        day: dt.date,
        columns: dict[str, list[Any]],
        gaps: Sequence[tuple[int, int]],
        source: str,
    ) -> DayEntry:
        """Store one complete day (``columns`` in the kind's column order) and index it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = len(next(iter(columns.values()))) if columns else 0
        rel: str | None = None
        if rows:
            rel = f"{product}/{kind}/{day.isoformat()}.parquet"
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            table = pa.table(columns, schema=_schema(kind))
            tmp = target.with_suffix(".parquet.part")
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, target)
        entry = DayEntry(product, kind, day.isoformat(), rel, rows, tuple(gaps), source)
        self.root.mkdir(parents=True, exist_ok=True)
        entries = self.entries()
        entries[entry.key] = entry
        self._write_index(entries)
        self._index = entries
        return entry

    # -- reading --

    def candle_days(
        self,
        products: Sequence[str],
        resolution: str,
        start: dt.date | None,
        end: dt.date | None,
    ) -> list[DayEntry]:
        """The indexed candle days of ``products`` at ``resolution`` within the range."""
        kind = candle_kind(resolution)
        lo = start.isoformat() if start else ""
        hi = end.isoformat() if end else "9999"
        return sorted(
            (
                e
                for e in self.entries().values()
                if e.kind == kind and e.product in products and lo <= e.day <= hi
            ),
            key=lambda e: (e.day, e.product),
        )

    def read_table(self, entry: DayEntry) -> Any:
        """A stored candle day as an Arrow table; DataError for a missing or bad file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.root / str(entry.file)
        try:
            table = pq.read_table(path, columns=list(CANDLE_COLUMNS))
        except (OSError, pa.ArrowException) as e:
            raise DataError(str(path), f"cannot read the Parquet file: {e}") from e
        if table.num_rows != entry.rows:
            raise DataError(str(path), f"has {table.num_rows} rows, the index says {entry.rows}")
        return table

    def read_columns(self, entry: DayEntry, names: Sequence[str]) -> dict[str, list[Any]]:
        """The named columns of a stored day as Python lists; DataError for a bad file."""
        if entry.file is None:
            return {n: [] for n in names}
        table = self.read_table(entry)
        return {n: table.column(n).to_pylist() for n in names}


def _schema(kind: str) -> Any:
    import pyarrow as pa

    if kind == "trades":
        return pa.schema(
            [
                ("product", pa.string()),
                ("trade_id", pa.string()),
                ("time_ns", pa.int64()),
                ("price", pa.string()),
                ("size", pa.string()),
                ("side", pa.string()),
            ]
        )
    return pa.schema(
        [("product", pa.string()), ("open_time_ms", pa.int64())]
        + [(c, pa.string()) for c in CANDLE_COLUMNS[2:]]
    )


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# -- replay source names -------------------------------------------------------------------


def parse_catalog_name(name: str) -> tuple[list[str], str]:
    """``catalog:BTC-USD,ETH-USD/1m`` → (products, resolution); DataError when malformed."""
    body = name.removeprefix("catalog:")
    products_text, _, resolution = body.partition("/")
    products = [p.strip() for p in products_text.split(",") if p.strip()]
    if not products or resolution not in RESOLUTIONS:
        raise DataError(
            name,
            "expected catalog:PRODUCT[,PRODUCT...]/RES with RES one of " + ", ".join(RESOLUTIONS),
        )
    return products, resolution


def load_catalog_events(
    name: str,
    root: str | os.PathLike[str],
    *,
    products: Sequence[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[Batch]:
    """Bars of a ``catalog:…`` set as event batches (bar-close stamps, as the long CSV)."""
    wanted, resolution = parse_catalog_name(name)
    if products is not None:
        wanted = [p for p in wanted if p in products] or wanted
    catalog = Catalog(root)
    label = f"{name} (catalog {catalog.root})"
    days = catalog.candle_days(wanted, resolution, start, end)
    have = {e.product for e in days if e.rows}
    if missing := [p for p in wanted if p not in have]:
        span = f"{start or 'the start'} → {end or 'the end'}"
        raise DataError(
            label,
            f"no {resolution} candles stored for {', '.join(missing)} in {span} "
            f"(download them with: cryptoj data download --catalog {catalog.root})",
        )
    interval_s = RESOLUTIONS[resolution]
    tables = [(e.product, e.day, catalog.read_table(e)) for e in days if e.rows]
    fast = fast_candle_events(tables, interval_s, start, end)
    if fast is not None:
        return fast
    return load_field_rows(
        _candle_files(catalog, days),
        label,
        start=start,
        end=end,
        interval_s=interval_s,
    )


def _candle_files(
    catalog: Catalog, days: Iterable[DayEntry]
) -> Iterator[tuple[str, Sequence[str], Iterable[Sequence[str]]]]:
    for e in days:
        if not e.rows:
            continue
        cols = catalog.read_columns(e, CANDLE_COLUMNS)
        text = [
            cols["product"],
            [str(t) for t in cols["open_time_ms"]],
            *(cols[c] for c in CANDLE_COLUMNS[2:]),
        ]
        yield str(catalog.root / str(e.file)), CANDLE_COLUMNS, zip(*text, strict=True)


@dataclass(frozen=True)
class CatalogSet:
    """One listable set of the catalog (for ``replay --list-data``)."""

    name: str
    products: tuple[str, ...]
    resolution: str
    first_day: str
    last_day: str
    days: int
    rows: int
    gaps: int  # missing candle buckets (or, for trades, days without trades)


def list_sets(root: str | os.PathLike[str]) -> list[CatalogSet]:
    """The catalog's candle sets (one per resolution) and trade set, with range and gaps."""
    groups: dict[str, list[DayEntry]] = {}
    for e in Catalog(root).entries().values():
        groups.setdefault(e.kind, []).append(e)
    out: list[CatalogSet] = []
    for kind, entries in sorted(groups.items()):
        products = tuple(sorted({e.product for e in entries}))
        resolution = kind.removeprefix("candles-") if kind != "trades" else "trades"
        interval = RESOLUTIONS.get(resolution)
        gaps = (
            sum(e.missing(interval) for e in entries)
            if interval
            else sum(1 for e in entries if not e.rows)
        )
        name = (
            f"catalog:{','.join(products)}/{resolution}" if interval else f"catalog-trades:{kind}"
        )
        out.append(
            CatalogSet(
                name=name,
                products=products,
                resolution=resolution,
                first_day=min(e.day for e in entries),
                last_day=max(e.day for e in entries),
                days=len({e.day for e in entries}),
                rows=sum(e.rows for e in entries),
                gaps=gaps,
            )
        )
    return out


def day_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every UTC day from ``start`` to ``end`` inclusive."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def day_start_s(day: dt.date) -> int:
    """Unix seconds of the day's 00:00 UTC."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
