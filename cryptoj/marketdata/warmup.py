"""The live daemon's strategy warm-up: the bars just before now, loaded before the actors start.

A replay warms its strategies up on the data before ``--from``; a live daemon (``feed.source:
coinbase``) has no such data, so at its start :func:`load_warmup` fetches, per product, the
bars its strategies declare (``history_bars`` / ``warmup_bars``; ``feed.warmup_max_bars`` for
one that warms up on its whole history), newest last, from the first source that has them:

1. **recorded trades** in the catalog (``recorded/<day>/``, written by ``feed.record``) of
   today and yesterday (UTC), aggregated into ``feed.tick_bar_size``-trade bars exactly as the
   live feed makes them, when the newest is at most :data:`STALE_AFTER_S` old;
2. **downloaded 1-minute candles** in the catalog (``data download``), same freshness rule;
3. **Coinbase's public 1-minute candles** over REST (``feed.coinbase.rest_url`` and
   ``ca_file``), the complete minutes before now.

The live feed hands the strategies tick bars (a fixed number of trades each), which have no
fixed length; candles are the venue's only history of bars, and one minute is their finest
resolution, so sources 2 and 3 are an approximation of the live bars (documented in the
README's strategy guide). Source 1 is the live feed's own bars (minus the trades missed while
the daemon was down).

I/O happens here, outside the actors, in a worker thread the daemon waits for at most
``feed.warmup_timeout_s``; a failure or a timeout leaves the strategies cold (the daemon logs
one line and counts it in ``/status``). Nothing is filled in or invented.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptoj.config import Config
from cryptoj.marketdata.aggregation import TickBarAggregator
from cryptoj.marketdata.errors import DataError
from cryptoj.marketdata.recording import RECORDED
from cryptoj.models.market import Bar, Trade
from cryptoj.strategies.loader import StrategySpec

#: Local data whose newest bar is older than this (seconds before now) is not used.
STALE_AFTER_S = 300
#: The candles' resolution (Coinbase's finest): ``ONE_MINUTE``.
CANDLE_S = 60
GRANULARITY = "ONE_MINUTE"
#: Columns of a recorded trades file used here (``recorded/<day>/trades-NNNNNN.parquet``).
TRADE_COLUMNS = ("ts", "product", "trade_id", "price", "quantity", "taker_side")
S = 1_000_000_000


@dataclass
class WarmupReport:
    """What the warm-up loaded: per product its bars and their source; the error if any."""

    needed: int = 0  # bars per product the strategies declared
    disabled: bool = False  # feed.warmup_timeout_s: 0
    bars: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # recorded | catalog | coinbase
    error: str | None = None
    took_s: float = 0.0

    @property
    def state(self) -> str:
        """``off`` (nothing to load), ``warm``, ``partial`` or ``cold``."""
        if self.needed == 0 or self.disabled:
            return "off"
        if self.error is None and self.bars and all(n > 0 for n in self.bars.values()):
            return "warm"
        return "partial" if any(self.bars.values()) else "cold"

    def status(self) -> dict[str, Any]:
        """The ``warmup`` section of ``/status``."""
        return {
            "state": self.state,
            "needed_bars": self.needed,
            "bars": dict(self.bars),
            "sources": dict(self.sources),
            "failures": 0 if self.error is None else 1,
            "error": self.error,
            "took_s": round(self.took_s, 3),
        }

    def line(self) -> str:
        """One log line saying what was loaded (or why not)."""
        if self.disabled:
            return "strategy warm-up off (feed.warmup_timeout_s: 0): the strategies start cold"
        got = ", ".join(
            f"{p} {n} from {self.sources.get(p, '-')}" for p, n in sorted(self.bars.items())
        )
        if self.error is not None:
            return (
                f"strategy warm-up failed: {self.error}; continuing "
                f"{'with ' + got if any(self.bars.values()) else 'cold'}"
            )
        wanted = f"{self.needed} bars per product wanted"
        return f"strategy warm-up: {wanted}; {got} ({self.took_s:.1f} s)"


def bars_needed(specs: Sequence[StrategySpec], max_bars: int) -> int:
    """Bars per product the strategies declare (``max_bars`` for a whole-history warm-up)."""
    needed = 0
    for spec in specs:
        cls = spec.cls
        if "bars" not in cls.subscribes:
            continue
        warm = max_bars if cls.warmup_bars is None else cls.warmup_bars
        needed = max(needed, cls.history_bars, warm)
    return needed


def warmup_products(cfg: Config, specs: Sequence[StrategySpec]) -> list[str]:
    """The feed's products some bar-subscribed strategy follows."""
    out = []
    for product in cfg.feed.products:
        for spec in specs:
            if "bars" in spec.cls.subscribes and (not spec.products or product in spec.products):
                out.append(product)
                break
    return out


def load_warmup(
    cfg: Config,
    specs: Sequence[StrategySpec],
    *,
    now_s: float | None = None,
    timeout_s: float | None = None,
) -> tuple[list[Bar], WarmupReport]:
    """The warm-up bars (time order, every product) and the report; never raises.

    Runs the loading in a worker thread and waits at most ``timeout_s`` (default
    ``feed.warmup_timeout_s``; 0: nothing is loaded)."""
    report = WarmupReport(needed=bars_needed(specs, cfg.feed.warmup_max_bars))
    products = warmup_products(cfg, specs)
    timeout = cfg.feed.warmup_timeout_s if timeout_s is None else timeout_s
    if report.needed == 0 or not products:
        report.needed = 0
        return [], report
    if timeout <= 0:
        report.disabled = True
        return [], report
    now = time.time() if now_s is None else now_s
    t0 = time.monotonic()
    result: dict[str, Any] = {}
    worker = threading.Thread(
        target=_collect_safely,
        args=(cfg, products, report.needed, now, timeout, result),
        name="strategy-warmup",
        daemon=True,  # abandoned after the timeout; it only fills its own dict
    )
    worker.start()
    worker.join(timeout)
    report.took_s = time.monotonic() - t0
    if worker.is_alive():
        report.error = f"timed out after {timeout:g} s (feed.warmup_timeout_s)"
        report.bars = dict.fromkeys(products, 0)
        return [], report
    per_product: dict[str, tuple[str, list[Bar]]] = result.get("bars", {})
    report.error = result.get("error")
    for product in products:
        source, bars = per_product.get(product, ("-", []))
        report.bars[product] = len(bars)
        report.sources[product] = source
    events = [b for _, bars in per_product.values() for b in bars]
    events.sort(key=lambda b: (b.ts, b.product))
    return events, report


def _collect_safely(
    cfg: Config,
    products: list[str],
    needed: int,
    now: float,
    timeout: float,
    out: dict[str, Any],
) -> None:
    """:func:`_collect`; anything unexpected it raises becomes the report's error."""
    try:
        _collect(cfg, products, needed, now, timeout, out)
    except Exception as e:  # a warm-up problem must never stop the start
        out["error"] = f"{type(e).__name__}: {e}"


def _collect(
    cfg: Config,
    products: list[str],
    needed: int,
    now: float,
    timeout: float,
    out: dict[str, Any],
) -> None:
    """The worker: local sources first, then REST for the products still missing."""
    # the REST client and the catalog reader are imported here, not at the top: a live start
    # whose strategies need no warm-up never loads them (issue 16, time to the first order)
    from cryptoj.marketdata.download import DownloadError, PublicClient, UnknownProduct

    bars: dict[str, tuple[str, list[Bar]]] = {}
    out["bars"] = bars
    fresh_ns = int((now - STALE_AFTER_S) * S)
    errors: list[str] = []
    try:
        local = _recorded_bars(cfg, products, now, needed)
        for product, got in local.items():
            if len(got) >= needed and got[-1].ts >= fresh_ns:
                bars[product] = ("recorded", got[-needed:])
        for product in products:
            if product in bars:
                continue
            got = _catalog_bars(cfg.feed.catalog, product, needed, now)
            if len(got) >= needed and got[-1].ts >= fresh_ns:
                bars[product] = ("catalog", got[-needed:])
    except (DataError, OSError, ValueError, ArithmeticError) as e:  # bad local file: REST
        errors.append(f"local catalog {cfg.feed.catalog}: {e}")
    feed = cfg.feed.coinbase
    client = PublicClient(
        feed.rest_url, ca_file=feed.ca_file, retries=1, timeout=max(0.5, min(5.0, timeout))
    )
    for product in products:
        if product in bars:
            continue
        try:
            bars[product] = ("coinbase", rest_candles(client.get, product, needed, now))
        except UnknownProduct as e:  # this product only: the others may still load
            errors.append(f"{product}: {e}")
        except (DownloadError, OSError, ValueError) as e:  # the venue is failing: stop asking
            errors.append(f"{product}: {e}")
            break
    if errors:
        out["error"] = "; ".join(errors)


def _recorded_bars(
    cfg: Config, products: list[str], now: float, needed: int | None = None
) -> dict[str, list[Bar]]:
    """Tick bars of the trades recorded yesterday and today, as the live feed made them: each
    trade at its own time, in arrival order (files in their numbering, rows in file order),
    cut into ``tick_bar_size`` trades from each product's first. With ``needed``, only the
    trades of the last ``needed`` complete bars are decoded (a recorded day can hold millions);
    the cut stays aligned unless a recorded trade had an unusable value (the feed drops those)."""
    import pyarrow.parquet as pq

    root = Path(cfg.feed.catalog) / RECORDED
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    wanted = set(products)
    size = cfg.feed.tick_bar_size
    columns: list[dict[str, list[Any]]] = []
    counts: dict[str, int] = {}
    for day in (today - dt.timedelta(days=1), today):
        for path in sorted((root / day.isoformat()).glob("trades-*.parquet")):
            cols = pq.read_table(path, columns=list(TRADE_COLUMNS)).to_pydict()
            columns.append(cols)
            for product, ts in zip(cols["product"], cols["ts"], strict=True):
                if product in wanted and ts <= now * S:
                    counts[product] = counts.get(product, 0) + 1
    skip = {
        p: 0 if needed is None else max(0, n // size - needed) * size for p, n in counts.items()
    }
    seen: dict[str, int] = {}
    agg = TickBarAggregator(size)
    out: dict[str, list[Bar]] = {}
    for cols in columns:
        for ts, product, trade_id, price, quantity, side in zip(
            *(cols[c] for c in TRADE_COLUMNS), strict=True
        ):
            if product not in wanted or ts > now * S:
                continue
            i = seen[product] = seen.get(product, 0) + 1
            if i <= skip[product]:
                continue
            trade = Trade(
                ts=ts,
                product=product,
                price=Decimal(price),
                quantity=Decimal(quantity),
                taker_side=side,
                trade_id=trade_id,
            )
            bar = agg.add(trade)  # an unusable value is left out, as the feed does
            if bar is not None:
                out.setdefault(product, []).append(bar)
    return out


def _catalog_bars(root: str, product: str, needed: int, now: float) -> list[Bar]:
    """Downloaded 1-minute candles of the days covering the ``needed`` minutes before now."""
    from cryptoj.marketdata.catalog import Catalog, load_catalog_events

    if not Path(root).is_dir():
        return []
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    first = today - dt.timedelta(days=math.ceil(needed * CANDLE_S / 86_400))
    if not Catalog(root).candle_days([product], "1m", first, today):
        return []
    try:
        batches = load_catalog_events(
            f"catalog:{product}/1m", root, products=[product], start=first, end=today
        )
    except DataError as e:
        if "no 1m candles stored" in str(e):
            return []
        raise
    return [e for b in batches for e in b if isinstance(e, Bar) and e.ts <= now * S]


def rest_candles(
    get: Callable[[str, dict[str, str]], dict[str, Any]], product: str, needed: int, now: float
) -> list[Bar]:
    """The ``needed`` complete 1-minute candles before ``now`` (oldest first; buckets the venue
    has no candle for are missing, as on Coinbase) as bars stamped at their close."""
    from cryptoj.marketdata.download import CANDLES_PER_REQUEST, PREFIX, parse_candles

    end = int(now) // CANDLE_S * CANDLE_S
    start = end - needed * CANDLE_S
    path = f"{PREFIX}/{urllib.parse.quote(product)}/candles"
    got: dict[int, tuple[str, str, str, str, str]] = {}
    for lo in range(start, end, CANDLES_PER_REQUEST * CANDLE_S):
        hi = min(end, lo + CANDLES_PER_REQUEST * CANDLE_S)
        params = {"start": str(lo), "end": str(hi), "granularity": GRANULARITY}
        what = f"GET {path}?{urllib.parse.urlencode(params)}"
        got.update(parse_candles(what, get(path, params), lo, hi, CANDLE_S))
    return [
        Bar(
            ts=(t + CANDLE_S) * S,
            product=product,
            open=Decimal(o),
            high=Decimal(h),
            low=Decimal(lo_),
            close=Decimal(c),
            volume=Decimal(v),
            interval_s=CANDLE_S,
        )
        for t, (o, h, lo_, c, v) in sorted(got.items())
    ]
