"""Load recorded bars and quotes (bundled sets or a user CSV) as time-ordered event batches.

The *long CSV format* (documented in ``bundled/PROVENANCE.md``) has one row per product and
bar, with the header::

    product,open_time_ms,open,high,low,close,volume,bid,bid_size,ask,ask_size

``open_time_ms`` is the bar's **open** time in UTC epoch milliseconds. A row yields a
:class:`~cryptoj.models.market.Bar` when its OHLCV cells are filled and a
:class:`~cryptoj.models.market.Quote` when its bid/ask cells are filled; both are stamped with the
bar's **close** time (``open_time_ms + interval``) in nanoseconds, the moment the bar is known.
Values become ``Decimal`` straight from the CSV text, so they are exact.

Every row is validated, also the ones a filter leaves out: a malformed file raises
:class:`DataError` naming the file, the line and the problem, and is never partly loaded.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import gzip
import io
import os
import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from importlib import resources
from itertools import groupby, pairwise
from pathlib import Path
from typing import IO

import msgspec

from cryptoj.marketdata.errors import DataError as DataError  # re-exported: its old home
from cryptoj.models.market import Bar, MarketEvent, Quote

LONG_CSV_COLUMNS = (
    "product", "open_time_ms", "open", "high", "low", "close", "volume",
    "bid", "bid_size", "ask", "ask_size",
)  # fmt: skip
"""Columns of the long CSV format, in the order the bundled files use."""

_BAR_COLUMNS = ("open", "high", "low", "close", "volume")
_QUOTE_COLUMNS = ("bid", "bid_size", "ask", "ask_size")
_PRICES = frozenset({"open", "high", "low", "close", "bid", "ask"})
_MIN_OPEN_TIME_MS = 100_000_000_000  # 1973-03-03: anything smaller is seconds, not milliseconds
_DAY_MS = 86_400_000
_ZERO = Decimal(0)

Batch = tuple[MarketEvent, ...]


class DatasetInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Metadata of one bundled data set (an entry of ``bundled/datasets.json``).

    ``start`` / ``end`` are the first and last bar **open** times, ISO-8601 UTC
    (``2018-04-04T00:00:00Z``); ``rows`` counts CSV rows (one per product and bar).
    """

    name: str
    file: str
    instruments: tuple[str, ...]
    resolution: str
    interval_s: int
    start: str
    end: str
    rows: int
    licence: str
    source: str
    description: str


class _Catalogue(msgspec.Struct, frozen=True):
    datasets: tuple[DatasetInfo, ...]


@functools.cache
def _catalogue() -> dict[str, DatasetInfo]:
    raw = resources.files(__package__).joinpath("bundled", "datasets.json").read_bytes()
    return {info.name: info for info in msgspec.json.decode(raw, type=_Catalogue).datasets}


def list_datasets() -> list[DatasetInfo]:
    """Return the bundled data sets, in the order of ``datasets.json``."""
    return list(_catalogue().values())


def get_dataset(name: str) -> DatasetInfo:
    """Return the bundled set called ``name``; raise :class:`DataError` listing the known names."""
    try:
        return _catalogue()[name]
    except KeyError:
        known = ", ".join(sorted(_catalogue()))
        raise DataError(
            name, f"unknown data set {name!r}; bundled sets are: {known} (or pass a CSV path)"
        ) from None


def load_events(
    source: str | os.PathLike[str],
    *,
    products: Sequence[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    interval_s: int | None = None,
) -> list[Batch]:
    """Load bars and quotes as batches of events sharing one timestamp, in time order.

    Args:
        source: a bundled set name (see :func:`list_datasets`) or the path of a CSV file in the
            long format, plain or gzip-compressed (detected from its content).
        products: keep only these products (e.g. ``["BTC-USD"]``); each must occur in the file.
        start: keep bars that open on or after this UTC date.
        end: keep bars that open on or before this UTC date (the whole day is included).
        interval_s: bar length in seconds. Bundled sets know theirs; for a CSV it is inferred
            as the smallest positive gap between two open times of one product.

    Returns:
        One tuple per timestamp, ascending. Inside a batch events are sorted by product, and a
        product's ``Bar`` comes before its ``Quote``. Every event's ``ts`` is the bar close time
        in ns.

    Raises:
        DataError: unknown set, missing or malformed file (with file and line), or filters that
            leave nothing.
        ValueError, TypeError: contradictory or wrongly typed arguments.
    """
    wanted = _check_arguments(products, start, end, interval_s)
    if isinstance(source, str) and source in _catalogue():
        info = _catalogue()[source]
        if interval_s is not None and interval_s != info.interval_s:
            raise ValueError(f"{source} has interval_s={info.interval_s}, not {interval_s}")
        resource = resources.files(__package__).joinpath("bundled", info.file)
        label = f"{info.name} ({info.file})"
        with resource.open("rb") as raw:
            return _load(raw, label, wanted, start, end, info.interval_s)
    path = Path(source)
    if not path.is_file():
        if isinstance(source, str) and not _looks_like_path(source):
            get_dataset(source)  # raises with the list of known set names
        raise DataError(str(path), "not a regular file" if path.exists() else "no such file")
    with path.open("rb") as raw:
        return _load(raw, str(path), wanted, start, end, interval_s)


def load_field_rows(
    files: Iterable[tuple[str, Sequence[str], Iterable[Sequence[str]]]],
    label: str,
    *,
    products: Sequence[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    interval_s: int,
) -> list[Batch]:
    """Like :func:`load_events`, for rows that come as text fields from another store (the
    local catalog's Parquet files): each file is ``(file label, header, rows)`` with the long
    CSV's column names; every row gets the same validation as a CSV line (its number is the
    row's position + 1, as if the header were line 1), and the same bar-close stamping.
    ``label`` names the whole set in errors that are not about one row."""
    wanted = _check_arguments(products, start, end, interval_s)
    rows: list[_Row] = []
    seen: dict[tuple[str, int], str] = {}
    for file_label, header, fields in files:
        names = [name.strip() for name in header]
        index = _column_index(names, file_label)
        for number, row_fields in enumerate(fields, start=2):
            row = _parse_row(list(row_fields), len(names), index, file_label, number)
            first = seen.setdefault((row.product, row.open_ms), f"{file_label}:{number}")
            if first != f"{file_label}:{number}":
                problem = f"duplicate row for {row.product} at open_time_ms={row.open_ms}"
                raise DataError(file_label, f"{problem} (first at {first})", number)
            rows.append(row)
    _check_no_overlap(rows, interval_s, label)
    selected = _select(rows, label, wanted, start, end)
    return _batches(selected, interval_s)


def _check_arguments(
    products: Sequence[str] | None,
    start: dt.date | None,
    end: dt.date | None,
    interval_s: int | None,
) -> frozenset[str] | None:
    if isinstance(products, str):
        raise TypeError(f"products must be a sequence of product ids, e.g. [{products!r}]")
    if products is not None and not products:
        raise ValueError("products is empty: pass None to keep every product")
    for name, day in (("start", start), ("end", end)):
        if isinstance(day, dt.datetime) or (day is not None and not isinstance(day, dt.date)):
            raise TypeError(f"{name} must be a datetime.date (a UTC day), was {day!r}")
    if start is not None and end is not None and start > end:
        raise ValueError(f"start {start} is after end {end}")
    if interval_s is not None and interval_s <= 0:
        raise ValueError(f"interval_s must be a positive number of seconds, was {interval_s}")
    return None if products is None else frozenset(products)


def _looks_like_path(source: str) -> bool:
    return "/" in source or os.sep in source or source.endswith((".csv", ".gz", ".txt"))


def _load(
    raw: IO[bytes],
    label: str,
    products: frozenset[str] | None,
    start: dt.date | None,
    end: dt.date | None,
    interval_s: int | None,
) -> list[Batch]:
    data = raw.read()
    if label.endswith(".gz") and data[:2] != b"\x1f\x8b":
        raise DataError(label, "named .gz but not a gzip file (no gzip header)")
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(label, f"not UTF-8 text: byte {data[e.start]:#04x}", line) from e
    except (OSError, EOFError, zlib.error) as e:  # corrupt or truncated gzip
        raise DataError(label, f"cannot decompress the gzip file: {e}") from e
    rows = _read_rows(io.StringIO(text, newline=""), label)
    interval = interval_s if interval_s is not None else _infer_interval(rows, label)
    _check_no_overlap(rows, interval, label)
    selected = _select(rows, label, products, start, end)
    return _batches(selected, interval)


class _Row(msgspec.Struct, frozen=True):
    line: int
    product: str
    open_ms: int
    bar: tuple[Decimal, ...]  # open, high, low, close, volume; () when the row has no bar
    quote: tuple[Decimal, ...]  # bid, bid_size, ask, ask_size; () when the row has no quote


def _read_rows(text: IO[str], label: str) -> list[_Row]:
    reader = csv.reader(text)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise DataError(label, "the file is empty; expected a header line", 1) from None
    index = _column_index(header, label)
    seen: dict[tuple[str, int], int] = {}
    rows: list[_Row] = []
    try:
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue  # a blank line is not a row
            row = _parse_row(fields, len(header), index, label, line)
            first = seen.setdefault((row.product, row.open_ms), line)
            if first != line:
                problem = f"duplicate row for {row.product} at open_time_ms={row.open_ms}"
                raise DataError(label, f"{problem} (first on line {first})", line)
            rows.append(row)
    except csv.Error as e:
        raise DataError(label, f"malformed CSV: {e}", reader.line_num) from e
    return rows


def _column_index(header: list[str], label: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        if name in index:
            raise DataError(label, f"column {name!r} appears twice in the header", 1)
        index[name] = position
    for required in ("product", "open_time_ms"):
        if required not in index:
            raise DataError(label, f"missing required column {required!r}", 1)
    for group, kind in ((_BAR_COLUMNS, "trade bar"), (_QUOTE_COLUMNS, "quote")):
        absent = [c for c in group if c not in index]
        if 0 < len(absent) < len(group):
            needs = ",".join(group)
            raise DataError(label, f"missing required column {absent[0]!r} ({kind}: {needs})", 1)
    if not any(c in index for c in (*_BAR_COLUMNS, *_QUOTE_COLUMNS)):
        expected = ",".join(LONG_CSV_COLUMNS)
        raise DataError(label, f"missing required columns: expected a header like {expected}", 1)
    return index


def _parse_row(fields: list[str], width: int, index: dict[str, int], label: str, line: int) -> _Row:
    if len(fields) != width:
        raise DataError(label, f"expected {width} fields like the header, was {len(fields)}", line)
    product = fields[index["product"]].strip()
    if not product:
        raise DataError(label, "product is empty", line)
    text = fields[index["open_time_ms"]].strip()
    if not (text.isascii() and text.isdigit()):
        raise DataError(label, f"open_time_ms: expected epoch milliseconds, was {text!r}", line)
    open_ms = int(text)
    if open_ms < _MIN_OPEN_TIME_MS:
        raise DataError(label, f"open_time_ms {open_ms} looks like seconds: expected ms", line)
    bar = _group(fields, index, _BAR_COLUMNS, label, line)
    quote = _group(fields, index, _QUOTE_COLUMNS, label, line)
    if not bar and not quote:
        raise DataError(label, "row has neither a trade bar (OHLCV) nor a quote (bid/ask)", line)
    if bar and not bar[2] <= min(bar[0], bar[3]) <= max(bar[0], bar[3]) <= bar[1]:
        values = ", ".join(f"{c}={v}" for c, v in zip(_BAR_COLUMNS[:4], bar, strict=False))
        problem = f"inconsistent bar: expected low <= open, close <= high, was {values}"
        raise DataError(label, problem, line)
    if quote and quote[0] > quote[2]:
        raise DataError(label, f"crossed quote: bid {quote[0]} > ask {quote[2]}", line)
    return _Row(line, product, open_ms, bar, quote)


def _group(
    fields: list[str], index: dict[str, int], columns: tuple[str, ...], label: str, line: int
) -> tuple[Decimal, ...]:
    """Parse one column group: all cells empty → ``()``; all filled → the values; else an error."""
    if columns[0] not in index:
        return ()
    cells = [fields[index[c]].strip() for c in columns]
    if not any(cells):
        return ()
    if not all(cells):
        empty = ", ".join(c for c, v in zip(columns, cells, strict=True) if not v)
        kind = "a trade bar" if columns == _BAR_COLUMNS else "a quote"
        problem = f"{empty} empty: {kind} needs all of {','.join(columns)} (or none)"
        raise DataError(label, problem, line)
    return tuple(_number(c, v, label, line) for c, v in zip(columns, cells, strict=True))


def _number(column: str, text: str, label: str, line: int) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or "_" in text:
        raise DataError(label, f"{column}: cannot parse {text!r} as a number", line)
    if not value.is_finite():
        raise DataError(label, f"{column}: expected a finite number, was {text!r}", line)
    if column in _PRICES and value <= _ZERO:
        raise DataError(label, f"{column}: expected a price > 0, was {text!r}", line)
    if value < _ZERO:
        raise DataError(label, f"{column}: expected a quantity >= 0, was {text!r}", line)
    return value


def _infer_interval(rows: list[_Row], label: str) -> int:
    times: dict[str, list[int]] = {}
    for row in rows:
        times.setdefault(row.product, []).append(row.open_ms)
    gaps = [b - a for ts in times.values() for a, b in pairwise(sorted(ts))]
    if not gaps:
        raise DataError(
            label, "cannot infer the bar interval (no product has two rows): pass interval_s"
        )
    smallest = min(gaps)
    if smallest % 1000:
        raise DataError(label, f"bar interval {smallest} ms is not whole seconds: pass interval_s")
    return smallest // 1000


def _check_no_overlap(rows: list[_Row], interval_s: int, label: str) -> None:
    last: dict[str, _Row] = {}
    for row in sorted(rows, key=lambda r: (r.product, r.open_ms)):
        before = last.get(row.product)
        if before is not None and row.open_ms - before.open_ms < interval_s * 1000:
            gap = (row.open_ms - before.open_ms) / 1000
            problem = f"{row.product} bars overlap: opens {gap:g} s after line {before.line}"
            raise DataError(label, f"{problem}, but interval_s is {interval_s}", row.line)
        last[row.product] = row


def _select(
    rows: list[_Row],
    label: str,
    products: frozenset[str] | None,
    start: dt.date | None,
    end: dt.date | None,
) -> list[_Row]:
    if not rows:
        raise DataError(label, "the file has no data rows")
    present = {row.product for row in rows}
    if products is not None:
        unknown = sorted(products - present)
        if unknown:
            problem = f"products filter: {', '.join(unknown)} not in the file"
            raise DataError(label, f"{problem} (it has {', '.join(sorted(present))})")
        rows = [row for row in rows if row.product in products]
    lo = _day_ms(start) if start is not None else None
    hi = _day_ms(end) + _DAY_MS if end is not None else None
    kept = [
        row
        for row in rows
        if (lo is None or row.open_ms >= lo) and (hi is None or row.open_ms < hi)
    ]
    if not kept:
        first, last = (_iso_day(f(r.open_ms for r in rows)) for f in (min, max))
        which = "the selected products' data" if products else "the data"
        problem = f"date filter start={start} end={end} leaves no rows"
        raise DataError(label, f"{problem} ({which} spans {first} → {last})")
    return kept


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1000


def _iso_day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC).date().isoformat()


def _batches(rows: list[_Row], interval_s: int) -> list[Batch]:
    close_ms = interval_s * 1000
    batches: list[Batch] = []
    for open_ms, group in groupby(sorted(rows, key=_time_product), key=lambda r: r.open_ms):
        ts = (open_ms + close_ms) * 1_000_000
        batch: list[MarketEvent] = []
        for row in group:
            product = row.product
            if row.bar:
                o, h, lo, c, v = row.bar
                batch.append(
                    Bar(
                        ts=ts,
                        product=product,
                        open=o,
                        high=h,
                        low=lo,
                        close=c,
                        volume=v,
                        interval_s=interval_s,
                    )
                )
            if row.quote:
                bid, bid_size, ask, ask_size = row.quote
                batch.append(
                    Quote(
                        ts=ts,
                        product=product,
                        bid=bid,
                        bid_size=bid_size,
                        ask=ask,
                        ask_size=ask_size,
                    )
                )
        batches.append(tuple(batch))
    return batches


def _time_product(row: _Row) -> tuple[int, str]:
    return row.open_ms, row.product
