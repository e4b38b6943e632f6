"""A live daemon's strategies warm up before live events: local catalog, else Coinbase candles.

Loopback only: the real daemon (threaded runtime, paper venue) on the real feed client against
the local fake exchange, whose public candles come from the bundled **recorded** 1-minute
Coinbase bars **shifted in time** (whole minutes) so that they end around now: the prices are
real, the dates are not. Every wait is bounded.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from loguru import logger

import cryptoj.marketdata
from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.config import Config, parse_config
from cryptoj.config.ops import OpsConfig
from cryptoj.daemon import Daemon
from cryptoj.marketdata.catalog import Catalog
from cryptoj.marketdata.loader import get_dataset
from cryptoj.marketdata.warmup import _recorded_bars, bars_needed, load_warmup
from cryptoj.models.market import Bar
from cryptoj.strategies.host import StrategyHost
from cryptoj.strategies.loader import load_strategies
from tests.test_ops import get_json, poll

PRODUCTS = ["BTC-USD", "ETH-USD"]
BUNDLED = Path(cryptoj.marketdata.__file__).parent / "bundled"
WINDOW = 20  # the test strategy's history_bars and warmup_bars
AHEAD_MIN = 5  # shifted data reaches this many minutes past the test's start

STRATEGY = f'''
from cryptoj.strategies.api import Strategy, Target


class AboveMean(Strategy):
    """Long while the close is above the mean close of the last {WINDOW} bars."""

    history_bars = {WINDOW}
    warmup_bars = {WINDOW}

    def on_bar(self, bar):
        closes = [b.close for b in self.ctx.bars(bar.product)]
        mean = sum(closes) / len(closes)
        weight = 0.05 if bar.close > mean else 0.0
        return Target(bar.product, weight, f"{{len(closes)}} bars, mean {{mean:.6f}}")
'''


def _shifted_rows(minutes: int, now_s: float) -> tuple[str, list[list[str]]]:
    """The bundled set's last ``minutes`` minutes of BTC-USD and ETH-USD, shifted by whole
    minutes so the last one opens ``AHEAD_MIN`` minutes after ``now_s``."""
    path = BUNDLED / get_dataset("coinbase-1m-2018-04").file
    with gzip.open(path, "rt") as f:
        header = f.readline().strip()
        rows = [line.strip().split(",") for line in f if line.split(",", 1)[0] in PRODUCTS]
    opens = sorted({int(r[1]) for r in rows})[-minutes:]
    keep = set(opens)
    shift = (int(now_s) // 60 + AHEAD_MIN) * 60_000 - opens[-1]
    out = [[r[0], str(int(r[1]) + shift), *r[2:]] for r in rows if int(r[1]) in keep]
    return header, out


@pytest.fixture
def shifted(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    header, rows = _shifted_rows(120, time.time())
    csv = tmp_path / "shifted-1m.csv"
    csv.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return csv, rows


@pytest.fixture
def fake(shifted: tuple[Path, list[list[str]]]) -> Iterator[FakeCoinbase]:
    f = FakeCoinbase(data=str(shifted[0]), products=PRODUCTS, step_s=0.05, heartbeat_s=0.2).start()
    yield f
    f.stop()


@pytest.fixture
def strategy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "userstrat"
    folder.mkdir()
    (folder / "warm_mod.py").write_text(STRATEGY)
    monkeypatch.syspath_prepend(str(folder))
    yield "warm_mod:AboveMean"
    sys.modules.pop("warm_mod", None)


def _config(tmp_path: Path, fake: FakeCoinbase, kind: str, **feed: Any) -> Config:
    return parse_config(
        {
            "feed": {
                "source": "coinbase",
                "products": PRODUCTS,
                "tick_bar_size": 50,
                "catalog": str(tmp_path / "catalog"),
                "coinbase": {
                    "ws_urls": [fake.ws_url],
                    "rest_url": fake.rest_url,
                    "ca_file": fake.ca_file,
                    "auth": "never",
                    "rest_timeout_s": 1.0,
                },
                **feed,
            },
            "journal": {"path": str(tmp_path / "journal.sqlite")},
            "trace": {"path": str(tmp_path / "trace.jsonl")},
            "strategy": {"kind": kind},
        }
    )


def _run(
    cfg: Config, until: Callable[[], bool] | None = None
) -> tuple[Daemon, dict[str, Any], list[str]]:
    """Start the daemon, read ``/status`` once it serves (and ``until`` holds), stop it; its
    warnings too."""
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING", format="{message}")
    d = Daemon(cfg, ops=OpsConfig(port=0))
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", d.run()), daemon=True)
    thread.start()
    try:
        assert d.ready.wait(20), "daemon did not start"
        assert d.endpoint is not None
        if until is not None:
            poll(until, "the daemon's live bars")
        code, status = get_json(d.endpoint.port, "/status")
        assert code == 200
    finally:
        d.request_stop("test over")
        thread.join(20)
        logger.remove(sink)
    assert result.get("code") == 0
    return d, status, warnings


def _targets(trace: Path) -> list[dict[str, Any]]:
    """The TargetWeight messages the strategy actor sent, in order (one trace record each)."""
    out, seen = [], set()
    for line in trace.read_text().splitlines():
        rec = json.loads(line)
        if (
            rec.get("type") == "TargetWeight"
            and rec.get("src") == "strategy"
            and (rec.get("id") not in seen)
        ):
            seen.add(rec.get("id"))
            out.append(rec["msg"])
    return out


def _bars(rows: list[list[str]], product: str, until_ns: int, n: int) -> list[Bar]:
    bars = [
        Bar(
            ts=int(r[1]) * 1_000_000 + 60 * 10**9,
            product=r[0],
            open=Decimal(r[2]),
            high=Decimal(r[3]),
            low=Decimal(r[4]),
            close=Decimal(r[5]),
            volume=Decimal(r[6]),
            interval_s=60,
        )
        for r in rows
        if r[0] == product
    ]
    return [b for b in bars if b.ts <= until_ns][-n:]


def test_a_live_daemon_starts_warm_from_the_venues_candles(
    tmp_path: Path,
    fake: FakeCoinbase,
    shifted: tuple[Path, list[list[str]]],
    strategy_module: str,
) -> None:
    cfg = _config(tmp_path, fake, strategy_module)
    started = time.time_ns()
    d, status, warnings = _run(cfg)
    assert d.warmup is not None
    assert status["warmup"]["state"] == "warm", status["warmup"]
    assert status["warmup"]["bars"] == dict.fromkeys(PRODUCTS, WINDOW)
    assert status["warmup"]["sources"] == dict.fromkeys(PRODUCTS, "coinbase")
    assert status["warmup"]["failures"] == 0
    assert not [w for w in warnings if "warm-up" in w]

    first = _targets(tmp_path / "trace.jsonl")[: len(PRODUCTS)]
    assert {t["product"] for t in first} == set(PRODUCTS)
    until = first[0]["ts"]  # stated at the last warm-up bar's close, before any live bar
    assert until <= started
    # the same bars, fed to the same strategy in a pure host (no threads, no network)
    events = sorted(
        (b for p in PRODUCTS for b in _bars(shifted[1], p, until, WINDOW)),
        key=lambda b: (b.ts, b.product),
    )
    host = StrategyHost(spec.make(cfg.seed) for spec in load_strategies(cfg))
    host.warm_up(events, {})
    expected = host.current(until)
    assert [(t["product"], t["weight"], t["reason"], t["ts"]) for t in first] == [
        (e.product, e.weight, e.reason, e.ts) for e in expected
    ]
    # the pure host saw a full window of each product (the decision rests on all of it)
    assert all(len(host.slots[0].ctx.bars(p)) == WINDOW for p in PRODUCTS)


def test_a_failing_candles_endpoint_logs_one_line_and_the_daemon_starts_cold(
    tmp_path: Path, fake: FakeCoinbase, strategy_module: str
) -> None:
    fake.market_history.inject("public_5xx", {"count": 50, "status": 503})
    started = time.time_ns()
    _, status, warnings = _run(_config(tmp_path, fake, strategy_module))
    w = status["warmup"]
    assert w["state"] == "cold" and w["failures"] == 1, w
    assert "HTTP 503" in w["error"]
    lines = [m for m in warnings if "warm-up" in m]
    assert len(lines) == 1 and "continuing cold" in lines[0], warnings
    # cold: nothing stated at start; any target comes from a live bar (after the start)
    assert all(t["ts"] >= started for t in _targets(tmp_path / "trace.jsonl"))


def test_rate_limited_candles_leave_the_strategies_cold_within_the_timeout(
    tmp_path: Path, fake: FakeCoinbase, strategy_module: str
) -> None:
    fake.market_history.inject("public_429", {"count": 50, "retry_after": 30})
    cfg = _config(tmp_path, fake, strategy_module, warmup_timeout_s=1.5)
    bars, report = load_warmup(cfg, load_strategies(cfg))
    assert bars == [] and report.state == "cold"
    # the worker still waits out the 30 s Retry-After: the start went on without it
    assert report.error is not None and "timed out after 1.5 s" in report.error


def test_downloaded_candles_in_the_catalog_come_before_the_venue(
    tmp_path: Path, fake: FakeCoinbase, shifted: tuple[Path, list[list[str]]], strategy_module: str
) -> None:
    # store the shifted bars in the catalog as a download would (per UTC day)
    catalog = Catalog(tmp_path / "catalog")
    rows = shifted[1]
    for product in PRODUCTS:
        mine = [r for r in rows if r[0] == product]
        days = sorted({dt.datetime.fromtimestamp(int(r[1]) // 1000, dt.UTC).date() for r in mine})
        for day in days:
            part = [
                r
                for r in mine
                if dt.datetime.fromtimestamp(int(r[1]) // 1000, dt.UTC).date() == day
            ]
            columns = {
                "product": [r[0] for r in part],
                "open_time_ms": [int(r[1]) for r in part],
                **{
                    c: [r[i] for r in part]
                    for i, c in enumerate(("open", "high", "low", "close", "volume"), 2)
                },
            }
            catalog.write_day(product, "candles-1m", day, columns, [], "test: shifted bundled bars")
    fake.market_history.inject("public_5xx", {"count": 50, "status": 503})  # never asked
    cfg = _config(tmp_path, fake, strategy_module)
    now = time.time()
    bars, report = load_warmup(cfg, load_strategies(cfg), now_s=now)
    assert report.error is None and report.state == "warm"
    assert report.sources == dict.fromkeys(PRODUCTS, "catalog")
    for product in PRODUCTS:
        got = [b for b in bars if b.product == product]
        assert got == _bars(rows, product, int(now * 10**9), WINDOW)


def test_bars_needed_follows_the_declarations(tmp_path: Path, fake: FakeCoinbase) -> None:
    cfg = _config(tmp_path, fake, "vol_target", warmup_max_bars=50)
    assert bars_needed(load_strategies(cfg), 50) == 1001  # its history_bars
    cfg = _config(tmp_path, fake, "ema_trend", warmup_max_bars=50)
    assert bars_needed(load_strategies(cfg), 50) == 50  # whole history: the cap
    cfg = _config(tmp_path, fake, "manual")
    bars, report = load_warmup(cfg, load_strategies(cfg))
    assert bars == [] and report.state == "off"


def test_a_restarted_daemon_warms_up_on_the_bars_its_recorded_feed_made(
    tmp_path: Path, fake: FakeCoinbase, strategy_module: str
) -> None:
    """``feed.record``: the next start rebuilds, from the recorded trades, the very tick bars
    the live feed handed the strategies (the trades are the fake's, recorded off the wire)."""
    # every trade one by one: a FeedActor that fell behind would merge trades (a merged run is
    # one tick), and its bars would differ from the ones rebuilt from the recording
    cfg = _config(
        tmp_path, fake, strategy_module, record=True, warmup_timeout_s=0, conflate_mailboxes=False
    )
    cfg = msgspec.structs.replace(cfg, feed=msgspec.structs.replace(cfg.feed, tick_bar_size=4))
    trace = tmp_path / "trace.jsonl"

    def live_bars() -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for line in trace.read_text().splitlines() if trace.exists() else []:
            rec = json.loads(line)
            if rec.get("type") == "Bar" and rec.get("dst") == "strategy":
                out.setdefault(rec["msg"]["product"], []).append(rec["msg"])
        return out

    def enough() -> bool:
        got = live_bars()
        return all(len(got.get(p, [])) >= WINDOW + 5 for p in PRODUCTS)  # some are skipped

    _run(cfg, until=enough)
    emitted = live_bars()
    bars, report = load_warmup(cfg, load_strategies(cfg), timeout_s=10)
    assert report.error is None and report.sources == dict.fromkeys(PRODUCTS, "recorded")
    rebuilt = _recorded_bars(cfg, PRODUCTS, time.time())
    for product in PRODUCTS:
        mine = [(b.ts, str(b.open), str(b.close), str(b.volume)) for b in rebuilt[product]]
        seen = [(m["ts"], m["open"], m["close"], m["volume"]) for m in emitted[product]]
        assert mine[: len(seen)] == seen  # the recorder may hold trades the feed had no time for
        assert [b for b in bars if b.product == product] == rebuilt[product][-WINDOW:]
