"""Recording the live feed into the catalog, and replaying a recorded day.

With ``feed.record: true`` the daemon hands every event its live feed delivers (quotes,
trades, feed status) and, at most once per ``record_l2_interval_s`` per product, book
snapshots to a :class:`FeedRecorder`. ``offer`` only puts the event on a bounded queue (it
never blocks and never touches a file: a full queue drops the event and counts it); one writer
thread turns the queue into Parquet part files, rotated by the events' UTC day::

    <catalog>/recorded/<YYYY-MM-DD>/quotes-000001.parquet   ts, seq, product, bid, bid_size, ask,
                                                            ask_size, derived
    <catalog>/recorded/<YYYY-MM-DD>/trades-000001.parquet   ts, seq, product, trade_id, price,
                                                            quantity, taker_side
    <catalog>/recorded/<YYYY-MM-DD>/status-000001.parquet   ts, products, state, reason
    <catalog>/recorded/<YYYY-MM-DD>/book-000001.parquet     ts, product, side, price, size

A part file is written whole (to a temporary name, then renamed) every ``flush_rows`` events or
``flush_s`` seconds, so a killed daemon loses at most the unflushed part, never a file.
Prices and sizes are stored as the decimal strings of the events (exact); ``seq`` is the order
in which the feed delivered the events (the replay keeps it within one timestamp).

``replay --data recorded:YYYY-MM-DD`` (:func:`load_recorded_events`) feeds the day's quotes and
trades, one at a time in their recorded order and with their recorded timestamps, through the
same actors.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import queue
import threading
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from loguru import logger

from cryptoj.marketdata.errors import DataError
from cryptoj.models.market import FeedStatus, MarketEvent, Quote, Trade

if TYPE_CHECKING:
    from cryptoj.marketdata.loader import Batch

RECORDED = "recorded"
STREAMS = ("quotes", "trades", "status", "book")
_STOP = object()
_ZERO = Decimal(0)


def _day(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, dt.UTC).date().isoformat()


class FeedRecorder:
    """A bounded queue and a writer thread; see the module docstring. Thread-safe ``offer``."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        queue_size: int = 100_000,
        flush_rows: int = 20_000,
        flush_s: float = 5.0,
        l2_interval_s: float = 1.0,
    ) -> None:
        self.root = Path(root) / RECORDED
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.l2_interval_ns = int(l2_interval_s * 1e9)
        self._last_book: dict[str, int] = {}
        # the seq column: next() is atomic; it starts at the wall clock's ns so a later run's
        # arrivals sort after an earlier run's in the same day's folder
        self._arrivals = itertools.count(time.time_ns())
        self.offered = 0
        self.dropped = 0
        self.written = 0
        self.files = 0
        self.errors = 0
        self._buffers: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        self._seq: dict[tuple[str, str], int] = {}
        self._thread = threading.Thread(target=self._run, name="feed-recorder", daemon=True)

    # -- the live path (any thread) --

    def offer(self, event: Any) -> None:
        """Queue an event for writing; never blocks (a full queue drops it, counted)."""
        self.offered += 1
        try:
            self.queue.put_nowait((next(self._arrivals), event))
        except queue.Full:
            self.dropped += 1

    def offer_book(
        self,
        product: str,
        ts: int,
        bids: Sequence[tuple[Decimal, Decimal]],
        asks: Sequence[tuple[Decimal, Decimal]],
    ) -> bool:
        """Queue a book snapshot unless this product had one less than the interval ago."""
        last = self._last_book.get(product)
        if last is not None and ts - last < self.l2_interval_ns:
            return False
        self._last_book[product] = ts
        self.offer(("book", product, ts, tuple(bids), tuple(asks)))
        return True

    # -- lifecycle --

    def start(self) -> FeedRecorder:
        """Start the writer thread."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued and stop the writer thread."""
        if not self._thread.is_alive():
            return
        while True:
            try:
                self.queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    return
        self._thread.join(timeout_s)

    def stats(self) -> dict[str, int]:
        """Counters: offered, dropped (queue full), written rows, files, write errors."""
        return {
            "offered": self.offered,
            "dropped": self.dropped,
            "written": self.written,
            "files": self.files,
            "errors": self.errors,
        }

    # -- the writer thread --

    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_s
        while True:
            try:
                item = self.queue.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush_all()
                return
            if item is not None:
                self._add(*item)
            if time.monotonic() >= next_flush:
                self._flush_all()
                next_flush = time.monotonic() + self.flush_s

    def _add(self, seq: int, item: Any) -> None:
        key: tuple[str, str]
        row: tuple[Any, ...]
        if isinstance(item, Quote):
            key, row = ("quotes", _day(item.ts)), (
                item.ts, seq, item.product, str(item.bid), str(item.bid_size), str(item.ask),
                str(item.ask_size), item.derived,
            )  # fmt: skip
        elif isinstance(item, Trade):
            key, row = ("trades", _day(item.ts)), (
                item.ts, seq, item.product, item.trade_id, str(item.price), str(item.quantity),
                item.taker_side,
            )  # fmt: skip
        elif isinstance(item, FeedStatus):
            key = ("status", _day(item.ts))
            row = (item.ts, ",".join(item.products), item.state, item.reason)
        elif isinstance(item, tuple) and item and item[0] == "book":
            _, product, ts, bids, asks = item
            key = ("book", _day(ts))
            buf = self._buffers.setdefault(key, [])
            buf.extend((ts, product, "bid", str(p), str(s)) for p, s in bids)
            buf.extend((ts, product, "ask", str(p), str(s)) for p, s in asks)
            self._maybe_flush(key)
            return
        else:
            return  # not a recorded kind
        days = {d for _, d in self._buffers if d != key[1]}
        if days:  # a new day began: the old day's buffers go out now (rotation)
            for k in [k for k in self._buffers if k[1] in days]:
                self._flush(k)
        self._buffers.setdefault(key, []).append(row)
        self._maybe_flush(key)

    def _maybe_flush(self, key: tuple[str, str]) -> None:
        if len(self._buffers.get(key, ())) >= self.flush_rows:
            self._flush(key)

    def _flush_all(self) -> None:
        for key in list(self._buffers):
            self._flush(key)

    def _flush(self, key: tuple[str, str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self._buffers.pop(key, [])
        if not rows:
            return
        stream, day = key
        folder = self.root / day
        try:
            folder.mkdir(parents=True, exist_ok=True)
            seq = self._seq.get(key) or _last_seq(folder, stream)
            seq += 1
            self._seq[key] = seq
            schema = _SCHEMAS[stream]()
            table = pa.Table.from_pylist(
                [dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema
            )
            target = folder / f"{stream}-{seq:06d}.parquet"
            tmp = folder / f".{target.name}.part"
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, target)
            self.written += len(rows)
            self.files += 1
        except (OSError, pa.ArrowException) as e:
            self.errors += 1
            logger.error(
                "feed recorder: cannot write {} rows of {} {}: {}", len(rows), day, stream, e
            )


def _last_seq(folder: Path, stream: str) -> int:
    seqs = [
        int(p.stem.rsplit("-", 1)[1])
        for p in folder.glob(f"{stream}-*.parquet")
        if p.stem.rsplit("-", 1)[1].isdigit()
    ]
    return max(seqs, default=0)


def _quote_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [("ts", pa.int64()), ("seq", pa.int64()), ("product", pa.string())]
        + [(c, pa.string()) for c in ("bid", "bid_size", "ask", "ask_size")]
        + [("derived", pa.bool_())]
    )


def _trade_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [("ts", pa.int64()), ("seq", pa.int64())]
        + [("product", pa.string()), ("trade_id", pa.string())]
        + [(c, pa.string()) for c in ("price", "quantity", "taker_side")]
    )


def _status_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [("ts", pa.int64())] + [(c, pa.string()) for c in ("products", "state", "reason")]
    )


def _book_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [("ts", pa.int64())] + [(c, pa.string()) for c in ("product", "side", "price", "size")]
    )


_SCHEMAS = {
    "quotes": _quote_schema,
    "trades": _trade_schema,
    "status": _status_schema,
    "book": _book_schema,
}


# -- reading ---------------------------------------------------------------------------------


def list_recorded(root: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """Recorded days of the catalog and their quote + trade rows (from Parquet metadata)."""
    import pyarrow.parquet as pq

    base = Path(root) / RECORDED
    if not base.is_dir():
        return []
    out: list[tuple[str, int]] = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        rows = 0
        for f in sorted(folder.glob("*.parquet")):
            if f.name.startswith(("quotes-", "trades-")):
                try:
                    rows += pq.ParquetFile(f).metadata.num_rows
                except (OSError, ValueError):
                    continue
        out.append((folder.name, rows))
    return out


def _read(folder: Path, stream: str) -> list[tuple[str, dict[str, list[Any]]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = []
    for f in sorted(folder.glob(f"{stream}-*.parquet")):
        try:
            table = pq.read_table(f)
        except (OSError, pa.ArrowException) as e:
            raise DataError(str(f), f"cannot read the Parquet file: {e}") from e
        out.append((str(f), table.to_pydict()))
    return out


def _dec(label: str, row: int, column: str, text: str, price: bool) -> Decimal:
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise DataError(label, f"{column}: cannot parse {text!r} as a number", row) from None
    if not value.is_finite() or (value <= _ZERO if price else value < _ZERO):
        need = "a price > 0" if price else "a quantity >= 0"
        raise DataError(label, f"{column}: expected {need}, was {text!r}", row)
    return value


def load_recorded_events(
    name: str, root: str | os.PathLike[str], *, products: Sequence[str] | None = None
) -> list[Batch]:
    """The quotes and trades of ``recorded:YYYY-MM-DD``, one event per batch, in the order the
    feed delivered them (an event stamped before the one delivered ahead of it gets that one's
    time, so the replay clock never goes back)."""
    day = name.removeprefix("recorded:")
    folder = Path(root) / RECORDED / day
    if not folder.is_dir():
        known = ", ".join(d for d, _ in list_recorded(root)) or "none"
        raise DataError(name, f"no recorded day {day!r} in {Path(root)} (recorded days: {known})")
    wanted = set(products) if products else None
    events: list[tuple[int, int, MarketEvent]] = []  # (ts, arrival number, event)
    for label, cols in _read(folder, "quotes"):
        for i, (ts, seq, product, bid, bsz, ask, asz, derived) in enumerate(
            zip(*(cols[c] for c in _quote_schema().names), strict=True), start=1
        ):
            if wanted is not None and product not in wanted:
                continue
            q = Quote(
                ts=ts,
                product=product,
                bid=_dec(label, i, "bid", bid, True),
                bid_size=_dec(label, i, "bid_size", bsz, False),
                ask=_dec(label, i, "ask", ask, True),
                ask_size=_dec(label, i, "ask_size", asz, False),
                derived=bool(derived),
            )
            if q.bid > q.ask:
                raise DataError(label, f"crossed quote: bid {bid} > ask {ask}", i)
            events.append((ts, seq, q))
    for label, cols in _read(folder, "trades"):
        for i, (ts, seq, product, trade_id, price, qty, side) in enumerate(
            zip(*(cols[c] for c in _trade_schema().names), strict=True), start=1
        ):
            if wanted is not None and product not in wanted:
                continue
            events.append(
                (
                    ts,
                    seq,
                    Trade(
                        ts=ts,
                        product=product,
                        price=_dec(label, i, "price", price, True),
                        quantity=_dec(label, i, "quantity", qty, False),
                        taker_side=side,
                        trade_id=trade_id,
                    ),
                )
            )
    if not events:
        raise DataError(name, f"no quotes or trades recorded in {folder}")
    # the order the feed delivered them, each its own step (as the live push path hands them
    # to the FeedActor one at a time); time never goes back
    events.sort(key=lambda x: x[1])
    batches: list[Batch] = []
    last = 0
    for ts, _, event in events:
        if ts < last:  # another connection's event stamped earlier: keep time monotonic
            event = msgspec.structs.replace(event, ts=last)
        last = event.ts
        batches.append((event,))
    return batches
