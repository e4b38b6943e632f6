"""Trade ticks: the tick CSV loader, tick bars, and the feed's modelled quotes for ticks."""

from __future__ import annotations

import gzip
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from cryptoj.actors.feed import FeedActor, ReplaySource
from cryptoj.marketdata.aggregation import TickBarAggregator
from cryptoj.marketdata.loader import DataError
from cryptoj.marketdata.ticks import is_tick_file, load_market_data, load_trade_ticks
from cryptoj.models.market import Bar, Quote, Trade
from cryptoj.models.system import Tick
from tests.stubs import FakeCtx

ROOT = Path(__file__).resolve().parents[1]
TICKS = ROOT / "benchmarks/data/binance_BTCUSDT_trades_20240808T2354_20240809T0005.csv.gz"
HEADER = "local_ts_ns,time_ms,time_utc,trade_id,price,quantity,buyer_maker\n"


def test_the_bundled_benchmark_ticks_load_completely_and_in_order() -> None:
    batches = load_trade_ticks(TICKS)
    trades = [t for b in batches for t in b]
    assert len(trades) == 19904
    first = trades[0]
    assert isinstance(first, Trade) and first.product == "BTC-USDT"
    assert (first.price, first.quantity, first.taker_side) == (
        Decimal("61837.63"),
        Decimal("0.02"),
        "SELL",
    )
    assert first.ts == 1723161255342 * 1_000_000
    assert all(a[0].ts < b[0].ts for a, b in pairwise(batches))
    assert is_tick_file(TICKS)


def _csv(tmp_path: Path, rows: str, name: str = "x_ETHUSDT_trades_1.csv.gz") -> Path:
    p = tmp_path / name
    with gzip.open(p, "wt") as f:
        f.write(HEADER + rows)
    return p


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("1,5,t,1,abc,1,True\n", ":2: malformed row"),
        ("1,5,t,1,-1,1,True\n", ":2: price and quantity must be positive"),
        ("1,5,t,1,1,1,maybe\n", ":2: buyer_maker must be True or False"),
        ("1,5,t,1,1,1,True\n1,4,t,2,1,1,True\n", ":3: time goes backwards"),
    ],
)
def test_malformed_tick_rows_name_the_file_and_line(
    tmp_path: Path, rows: str, problem: str
) -> None:
    with pytest.raises(DataError, match=problem):
        load_trade_ticks(_csv(tmp_path, rows))


def test_the_product_comes_from_the_file_name_or_is_refused(tmp_path: Path) -> None:
    assert load_trade_ticks(_csv(tmp_path, "1,5,t,1,2,1,False\n"))[0][0].product == "ETH-USDT"
    with pytest.raises(DataError, match="cannot tell the product"):
        load_trade_ticks(_csv(tmp_path, "1,5,t,1,2,1,False\n", name="ticks.csv.gz"))


def test_load_market_data_dispatches_ticks_and_bars() -> None:
    assert isinstance(load_market_data(str(TICKS))[0][0], Trade)
    assert isinstance(load_market_data("coinbase-1m-2018-04")[0][0], (Bar, Quote))


def test_tick_bars_hold_exactly_size_trades_with_ohlcv() -> None:
    agg = TickBarAggregator(3)
    prices = ["10", "12", "9", "11"]
    out = [
        agg.add(
            Trade(
                ts=i * 10**9,
                product="P-USD",
                price=Decimal(p),
                quantity=Decimal(1),
                taker_side="BUY",
                trade_id=str(i),
            )
        )
        for i, p in enumerate(prices)
    ]
    assert out[:2] == [None, None] and out[3] is None
    bar = out[2]
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == tuple(
        Decimal(x) for x in ("10", "12", "9", "9", "3")
    )
    assert bar.ts == 2 * 10**9


def test_the_feed_turns_a_window_of_trades_into_bars_and_one_modelled_quote() -> None:
    trades = [
        (
            Trade(
                ts=(1000 + i) * 10**6,
                product="BTC-USDT",
                price=Decimal(100 + i),
                quantity=Decimal("0.5"),
                taker_side="BUY",
                trade_id=str(i),
            ),
        )
        for i in range(5)
    ]
    src = ReplaySource(trades, bar_spread_bps=20, window_ns=10**9)
    assert len(src.batches) == 1
    book: list[Quote] = []
    feed = FeedActor(src, quote_sink=book.append, tick_bar_size=2)
    ctx = FakeCtx(time_ns=1004 * 10**6)
    feed.receive(Tick(kind="poll"), ctx)
    assert [b.close for b in ctx.to("strategy")] == [Decimal(101), Decimal(103)]  # type: ignore[union-attr]
    (quote,) = ctx.to("portfolio")
    assert quote == book[0]
    assert isinstance(quote, Quote) and quote.derived
    assert (quote.bid, quote.ask, quote.bid_size) == (
        Decimal("103.896"),
        Decimal("104.104"),
        Decimal("2.5"),
    )


def test_each_timestamp_gets_the_quote_of_its_own_last_trade_and_volume() -> None:
    """One feed step per timestamp: a repeated price keeps its bid and ask, a new one moves
    them, and each quote's size is that timestamp's traded volume."""
    prices = ("100", "100", "101.5", "100", "100")
    trades = [
        (
            Trade(
                ts=(1000 + i) * 10**6,
                product="BTC-USDT",
                price=Decimal(p),
                quantity=Decimal(i + 1),
                taker_side="SELL",
                trade_id=str(i),
            ),
        )
        for i, p in enumerate(prices)
    ]
    src = ReplaySource(trades, bar_spread_bps=20)
    feed = FeedActor(src, tick_bar_size=100)
    ctx = FakeCtx(time_ns=999 * 10**6)
    for _ in prices:
        feed.receive(Tick(kind="poll"), ctx)
    quotes = ctx.to("portfolio")
    assert [(q.ts, q.bid, q.ask, q.bid_size) for q in quotes] == [  # type: ignore[union-attr]
        ((1000 + i) * 10**6, Decimal(p) * Decimal("0.999"), Decimal(p) * Decimal("1.001"), i + 1)
        for i, p in enumerate(prices)
    ]
