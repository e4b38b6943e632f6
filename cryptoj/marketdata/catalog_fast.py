"""A columnar fast path for reading catalog candles, with the loader as the arbiter.

:func:`fast_candle_events` checks whole Arrow columns at once against everything the row-by-row
loader (:func:`~.loader.load_field_rows`) would check, and more strictly: exact decimal
parsing (``decimal128(38, 18)``: no NaN or infinity, no whitespace, at most 18 fractional
digits), prices > 0, volume ≥ 0, low ≤ open, close ≤ high, the file's product, open times
aligned to the interval, strictly increasing and inside the file's day (so no duplicate and no
overlap, within or across files). When every file passes it builds the same events the loader
builds (``Decimal`` from the stored text, bar-close stamps, batches by timestamp sorted by
product). When anything does not pass, or the filters leave nothing, it returns ``None`` and
the caller runs the row-by-row loader, which accepts or refuses with its own error (file,
row, problem): the fast path never accepts what the loader would refuse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from itertools import groupby
from typing import Any

import numpy as np

from cryptoj.marketdata.loader import Batch
from cryptoj.models.market import Bar

_MIN_OPEN_TIME_MS = 100_000_000_000  # as the loader: smaller looks like seconds
_DAY_MS = 86_400_000


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1000


def _valid(table: Any, product: str, day: str, interval_ms: int) -> bool:
    """True when every row of one day's table is certainly valid (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0 or any(table.column(c).null_count for c in table.column_names):
        return False
    if not pc.all(pc.equal(table.column("product"), product)).as_py():
        return False
    opens = table.column("open_time_ms").to_numpy()
    lo = _day_ms(dt.date.fromisoformat(day))
    if opens.min() < max(lo, _MIN_OPEN_TIME_MS) or opens.max() >= lo + _DAY_MS:
        return False  # outside its day (or seconds, not milliseconds)
    if (opens % interval_ms).any() or (len(opens) > 1 and not (np.diff(opens) > 0).all()):
        return False  # misaligned, or not strictly increasing (a duplicate, disorder)
    try:
        dec = {
            c: pc.cast(table.column(c), pa.decimal128(38, 18))
            for c in ("open", "high", "low", "close", "volume")
        }
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    zero = pa.scalar(Decimal(0), pa.decimal128(38, 18))
    o, h, lo_, c, v = (dec[k] for k in ("open", "high", "low", "close", "volume"))
    checks = (
        pc.greater(lo_, zero),  # every price > 0 follows from low > 0 and the ordering below
        pc.greater_equal(v, zero),
        pc.less_equal(lo_, pc.min_element_wise(o, c)),
        pc.less_equal(pc.max_element_wise(o, c), h),
    )
    return all(pc.all(check).as_py() for check in checks)


def fast_candle_events(
    tables: Sequence[tuple[str, str, Any]],
    interval_s: int,
    start: dt.date | None,
    end: dt.date | None,
) -> list[Batch] | None:
    """Events of ``(product, day, table)`` candle files, or ``None`` (use the loader)."""
    interval_ms = interval_s * 1000
    if not all(_valid(t, product, day, interval_ms) for product, day, t in tables):
        return None
    lo = _day_ms(start) if start is not None else None
    hi = _day_ms(end) + _DAY_MS if end is not None else None
    rows: list[tuple[int, str, Bar]] = []
    for product, _, t in tables:
        cols = [
            t.column(n).to_pylist()
            for n in ("open_time_ms", "open", "high", "low", "close", "volume")
        ]
        for open_ms, o, h, low, c, v in zip(*cols, strict=True):
            if (lo is not None and open_ms < lo) or (hi is not None and open_ms >= hi):
                continue
            rows.append(
                (
                    open_ms,
                    product,
                    Bar(
                        ts=(open_ms + interval_ms) * 1_000_000,
                        product=product,
                        open=Decimal(o),
                        high=Decimal(h),
                        low=Decimal(low),
                        close=Decimal(c),
                        volume=Decimal(v),
                        interval_s=interval_s,
                    ),
                )
            )
    if not rows:
        return None  # the loader explains what the filters left
    rows.sort(key=lambda r: (r[0], r[1]))
    return [tuple(r[2] for r in group) for _, group in groupby(rows, key=lambda r: r[0])]
