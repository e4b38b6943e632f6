"""``cryptoj data download``: Coinbase's public candles and market trades into the catalog.

Public endpoints (no API key): ``GET /api/v3/brokerage/market/products/{id}/candles`` and
``GET …/market/products/{id}/ticker`` (trades). How a range is fetched:

* **by UTC day**: a day is stored (and indexed) only once all of it is fetched, so an
  interrupted download loses at most the day it was on, and a rerun fetches only the days the
  index does not have;
* **candles** are paged by time, :data:`CANDLES_PER_REQUEST` (300) buckets per request
  (Coinbase allows about 350 and answers newest first); days with fewer buckets are fetched
  several to a request;
* **trades** are paged backwards from the day's end, 1,000 per request, each next request
  ending at the oldest trade seen (trade ids de-duplicate the overlap);
* at most ``rate`` requests per second (Coinbase allows 10 per second per IP on public
  endpoints; the default is 8); a **429** waits ``Retry-After`` (or an exponential backoff,
  1 s doubling to 30 s) and retries, as do 5xx answers and network errors, up to ``retries``
  times; then the download stops with an error naming the request;
* every row is validated (finite positive prices, non-negative volume, low ≤ open, close ≤
  high, bucket start aligned and inside the requested window, no duplicate); a malformed
  answer is a :class:`DownloadError` naming the request, never a silent gap;
* nothing is filled in: missing buckets are recorded as gaps in the index.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptoj.marketdata.catalog import (
    DAY_S,
    GRANULARITY_RESOLUTION,
    RESOLUTIONS,
    Catalog,
    candle_kind,
    day_range,
    day_start_s,
)

PUBLIC_URL = "https://api.coinbase.com"
PREFIX = "/api/v3/brokerage/market/products"
CANDLES_PER_REQUEST = 300
"""Buckets asked for per candles request. Coinbase answers at most about 350 (a range holding
more is refused); 300 stays inside that whether the range's end counts or not (clients report
both a 300 and a 350 limit over time)."""
MAX_TRADES = 1000
GRANULARITY_SECONDS = {g: RESOLUTIONS[r] for g, r in GRANULARITY_RESOLUTION.items()}
_ZERO = Decimal(0)


class DownloadError(Exception):
    """A request failed for good or answered something unusable; the message names it."""


class UnknownProduct(DownloadError):
    """The exchange does not know the product (HTTP 400/404 on its first request)."""


@dataclass
class DownloadStats:
    """What a download did."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    days_fetched: int = 0
    days_skipped: int = 0
    rows: int = 0
    gaps: int = 0
    waits: list[float] = field(default_factory=list)


class PublicClient:
    """GETs against the public market-data endpoints with throttling, backoff and retries.

    ``sleep`` and ``monotonic`` are injectable (tests record the waits instead of sleeping).
    """

    def __init__(
        self,
        base_url: str = PUBLIC_URL,
        *,
        ca_file: str | None = None,
        rate: float = 8.0,
        retries: int = 6,
        timeout: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        stats: DownloadStats | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 requests per second, not {rate}")
        self.base_url = base_url.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.min_gap = 1.0 / rate
        self.retries = retries
        self.timeout = timeout
        self.sleep = sleep
        self.monotonic = monotonic
        self.stats = stats or DownloadStats()
        self._last = -math.inf

    def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """The decoded JSON object of a GET; DownloadError (naming the request) when it fails."""
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        what = f"GET {path}?{urllib.parse.urlencode(params)}"
        backoff = 1.0
        for attempt in range(self.retries + 1):
            self._throttle()
            self.stats.requests += 1
            wait = backoff
            try:
                req = urllib.request.Request(url, headers={"Accept": "application/json"})
                with urllib.request.urlopen(req, timeout=self.timeout, context=self.ctx) as resp:
                    body = resp.read()
                break
            except urllib.error.HTTPError as e:
                detail = e.read()[:200].decode(errors="replace").strip()
                if e.code == 429:
                    self.stats.rate_limited += 1
                    wait = max(backoff, _retry_after(e.headers.get("Retry-After")))
                elif e.code < 500:
                    error = UnknownProduct if e.code in (400, 404) else DownloadError
                    raise error(f"{what}: HTTP {e.code}: {detail}") from None
                problem = f"HTTP {e.code}: {detail}"
            except (urllib.error.URLError, OSError) as e:
                problem = f"{getattr(e, 'reason', e)}"
                if isinstance(getattr(e, "reason", e), ssl.SSLCertVerificationError):
                    raise DownloadError(f"{what}: TLS: {problem} (see --ca-file)") from None
            if attempt == self.retries:
                raise DownloadError(f"{what}: gave up after {attempt + 1} attempts: {problem}")
            self.stats.retries += 1
            self.stats.waits.append(wait)
            self.sleep(wait)
            backoff = min(backoff * 2, 30.0)
        try:
            decoded = json.loads(body)
        except ValueError as e:
            raise DownloadError(f"{what}: the answer is not JSON: {e}") from None
        if not isinstance(decoded, dict):
            raise DownloadError(f"{what}: expected a JSON object, got {type(decoded).__name__}")
        return decoded

    def _throttle(self) -> None:
        due = self._last + self.min_gap
        now = self.monotonic()
        if now < due:
            self.sleep(due - now)
            now = due
        self._last = now


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


# -- validation ------------------------------------------------------------------------------


def _decimal(what: str, row: dict[str, Any], key: str, positive: bool) -> str:
    raw = row.get(key)
    if not isinstance(raw, str):
        raise DownloadError(f"{what}: {key} must be a decimal string, was {raw!r}")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise DownloadError(f"{what}: {key} {raw!r} is not a number") from None
    if not value.is_finite() or (value <= _ZERO if positive else value < _ZERO):
        need = "a finite price > 0" if positive else "a finite quantity >= 0"
        raise DownloadError(f"{what}: {key} must be {need}, was {raw!r}")
    return raw


def parse_candles(
    what: str, body: dict[str, Any], start: int, end: int, interval: int
) -> dict[int, tuple[str, str, str, str, str]]:
    """Validated candles of one answer: open second → (open, high, low, close, volume).
    Candles at ``end`` (an inclusive end) are dropped; any other out-of-window candle, a
    misaligned or duplicate start, or a bad value is a DownloadError naming the request."""
    rows = body.get("candles")
    if not isinstance(rows, list):
        raise DownloadError(f"{what}: the answer has no 'candles' list")
    out: dict[int, tuple[str, str, str, str, str]] = {}
    for i, row in enumerate(rows):
        where = f"{what}: candle {i}"
        if not isinstance(row, dict):
            raise DownloadError(f"{where}: expected an object, was {row!r}")
        t_raw = row.get("start")
        if not (isinstance(t_raw, str) and t_raw.isascii() and t_raw.isdigit()):
            raise DownloadError(f"{where}: start must be Unix seconds, was {t_raw!r}")
        t = int(t_raw)
        if t == end:
            continue
        if not start <= t < end or t % interval:
            raise DownloadError(f"{where}: start {t} is outside [{start}, {end}) or misaligned")
        if t in out:
            raise DownloadError(f"{where}: duplicate candle at {t}")
        o, h, lo, c = (_decimal(where, row, k, True) for k in ("open", "high", "low", "close"))
        v = _decimal(where, row, "volume", False)
        do, dh, dl, dc = Decimal(o), Decimal(h), Decimal(lo), Decimal(c)
        if not dl <= min(do, dc) <= max(do, dc) <= dh:
            raise DownloadError(
                f"{where}: inconsistent candle (low {lo}, open {o}, close {c}, high {h})"
            )
        out[t] = (o, h, lo, c, v)
    return out


def parse_trades(
    what: str, body: dict[str, Any], product: str
) -> list[tuple[str, int, str, str, str]]:
    """Validated trades of one answer: (trade_id, time_ns, price, size, side)."""
    from cryptoj.adapters.coinbase.parse import rfc3339_ns

    rows = body.get("trades")
    if not isinstance(rows, list):
        raise DownloadError(f"{what}: the answer has no 'trades' list")
    out: list[tuple[str, int, str, str, str]] = []
    for i, row in enumerate(rows):
        where = f"{what}: trade {i}"
        if not isinstance(row, dict):
            raise DownloadError(f"{where}: expected an object, was {row!r}")
        trade_id = row.get("trade_id")
        if not isinstance(trade_id, str) or not trade_id:
            raise DownloadError(f"{where}: trade_id missing")
        if row.get("product_id", product) != product:
            raise DownloadError(f"{where}: product_id {row.get('product_id')!r} != {product}")
        try:
            ts = rfc3339_ns(str(row.get("time")))
        except ValueError:
            raise DownloadError(f"{where}: time {row.get('time')!r} is not RFC 3339") from None
        price = _decimal(where, row, "price", True)
        size = _decimal(where, row, "size", False)
        side = row.get("side")
        if side not in ("BUY", "SELL", "UNKNOWN_ORDER_SIDE"):
            raise DownloadError(f"{where}: side {side!r} is not BUY or SELL")
        out.append((trade_id, ts, price, size, str(side)))
    return out


def gaps_of(present: Sequence[int], first: int, last: int, interval: int) -> list[tuple[int, int]]:
    """Missing bucket runs ``(first missing, last missing)`` between ``first`` and ``last``."""
    have = set(present)
    runs: list[tuple[int, int]] = []
    run_start: int | None = None
    for t in range(first, last + 1, interval):
        if t in have:
            if run_start is not None:
                runs.append((run_start, t - interval))
                run_start = None
        elif run_start is None:
            run_start = t
    if run_start is not None:
        runs.append((run_start, last))
    return runs


# -- the download ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to download."""

    products: tuple[str, ...]
    granularities: tuple[str, ...]
    trades: bool
    start: dt.date
    end: dt.date


class Progress:
    """A tqdm bar over requests (off when not on a terminal)."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="req", disable=not enabled, dynamic_ncols=True)

    def step(self, label: str, n: int = 1) -> None:
        """Advance by ``n`` planned requests."""
        self.bar.set_description(label, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()


def download(
    plan: Plan,
    catalog: Catalog,
    client: PublicClient,
    *,
    progress: bool = False,
    today: dt.date | None = None,
) -> DownloadStats:
    """Fetch every day of the plan the catalog does not hold (see the module docstring).

    Days from ``today`` on (default: the current UTC day) are not stored: they are not over.
    """
    stats = client.stats
    last_day = min(plan.end, (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=1))
    days = day_range(plan.start, last_day) if last_day >= plan.start else []
    jobs: list[tuple[str, str, list[dt.date]]] = []  # (product, granularity|"trades", missing)
    for product in plan.products:
        kinds = [*plan.granularities, *(["trades"] if plan.trades else [])]
        for g in kinds:
            kind = "trades" if g == "trades" else candle_kind(GRANULARITY_RESOLUTION[g])
            stored = {d for d in days if catalog.has(product, kind, d)}
            stats.days_skipped += len(stored)
            jobs.append((product, g, [d for d in days if d not in stored]))
    total = sum(_planned_requests(g, missing) for _, g, missing in jobs)
    bar = Progress(total, progress)
    try:
        for product, g, missing in jobs:
            if g == "trades":
                for day in missing:
                    _trades_day(product, day, catalog, client, stats, bar)
            else:
                _candles(product, g, missing, catalog, client, stats, bar)
    finally:
        bar.close()
    return stats


def _planned_requests(g: str, missing: list[dt.date]) -> int:
    if g == "trades":
        return len(missing)
    per_day = DAY_S // GRANULARITY_SECONDS[g]
    if per_day > CANDLES_PER_REQUEST:
        return len(missing) * math.ceil(per_day / CANDLES_PER_REQUEST)
    return math.ceil(len(missing) / (CANDLES_PER_REQUEST // per_day)) if missing else 0


def _chunks(days: list[dt.date], size: int) -> list[list[dt.date]]:
    """Runs of consecutive days, cut to at most ``size`` days each."""
    out: list[list[dt.date]] = []
    for d in days:
        if out and len(out[-1]) < size and (d - out[-1][-1]).days == 1:
            out[-1].append(d)
        else:
            out.append([d])
    return out


def _candles(
    product: str,
    g: str,
    missing: list[dt.date],
    catalog: Catalog,
    client: PublicClient,
    stats: DownloadStats,
    bar: Progress,
) -> None:
    interval = GRANULARITY_SECONDS[g]
    kind = candle_kind(GRANULARITY_RESOLUTION[g])
    per_day = DAY_S // interval
    days_per_request = max(1, CANDLES_PER_REQUEST // per_day)
    path = f"{PREFIX}/{urllib.parse.quote(product)}/candles"
    for chunk in _chunks(missing, days_per_request):
        lo, hi = day_start_s(chunk[0]), day_start_s(chunk[-1]) + DAY_S
        got: dict[int, tuple[str, str, str, str, str]] = {}
        for page_start in range(lo, hi, CANDLES_PER_REQUEST * interval):
            page_end = min(hi, page_start + CANDLES_PER_REQUEST * interval)
            params = {"start": str(page_start), "end": str(page_end), "granularity": g}
            what = f"GET {path}?{urllib.parse.urlencode(params)}"
            got.update(
                parse_candles(what, client.get(path, params), page_start, page_end, interval)
            )
            bar.step(f"{product} {g}")
        for day in chunk:
            first = day_start_s(day)
            times = sorted(t for t in got if first <= t < first + DAY_S)
            gaps = gaps_of(times, first, first + DAY_S - interval, interval)
            columns: dict[str, list[Any]] = {
                "product": [product] * len(times),
                "open_time_ms": [t * 1000 for t in times],
                **{
                    name: [got[t][i] for t in times]
                    for i, name in enumerate(("open", "high", "low", "close", "volume"))
                },
            }
            catalog.write_day(product, kind, day, columns, gaps, client.base_url)
            stats.days_fetched += 1
            stats.rows += len(times)
            stats.gaps += sum((b - a) // interval + 1 for a, b in gaps)


def _trades_day(
    product: str,
    day: dt.date,
    catalog: Catalog,
    client: PublicClient,
    stats: DownloadStats,
    bar: Progress,
) -> None:
    path = f"{PREFIX}/{urllib.parse.quote(product)}/ticker"
    lo = day_start_s(day)
    end = lo + DAY_S
    seen: dict[str, tuple[str, int, str, str, str]] = {}
    while True:
        params = {"start": str(lo), "end": str(end), "limit": str(MAX_TRADES)}
        what = f"GET {path}?{urllib.parse.urlencode(params)}"
        page = parse_trades(what, client.get(path, params), product)
        fresh = [t for t in page if t[0] not in seen]
        for t in page:
            if (lo + DAY_S) * 10**9 <= t[1] < (lo + DAY_S + 1) * 10**9:
                continue  # in the end second (an inclusive end): the next day's
            if not lo * 10**9 <= t[1] < (lo + DAY_S) * 10**9:
                raise DownloadError(f"{what}: trade {t[0]} at {t[1]} ns is outside the day")
            seen[t[0]] = t
        if len(page) < MAX_TRADES:
            break
        oldest_s = min(t[1] for t in page) // 10**9
        if not fresh or oldest_s + 1 >= end:
            raise DownloadError(
                f"{what}: more than {MAX_TRADES} trades in one second; cannot page further"
            )
        end = oldest_s + 1  # the oldest second again: ids drop what was already seen
    bar.step(f"{product} trades")
    rows = sorted(seen.values(), key=lambda t: (t[1], t[0]))
    columns: dict[str, list[Any]] = {
        "product": [product] * len(rows),
        "trade_id": [t[0] for t in rows],
        "time_ns": [t[1] for t in rows],
        "price": [t[2] for t in rows],
        "size": [t[3] for t in rows],
        "side": [t[4] for t in rows],
    }
    catalog.write_day(product, "trades", day, columns, [], client.base_url)
    stats.days_fetched += 1
    stats.rows += len(rows)
