"""NautilusTrader side of the replay-throughput benchmark (runs inside ``.venv-nautilus``).

    bash tools/setup_nautilus_venv.sh            # once: creates .venv-nautilus
    .venv-nautilus/bin/python tools/nautilus_baseline.py \\
        --data benchmarks/data/binance_BTCUSDT_trades_20240808T2354_20240809T0005.csv.gz \\
        --repeat 5 --json

Replays recorded Binance BTCUSDT trades through a NautilusTrader ``BacktestEngine`` running
nautilus's own bundled example strategy and reports trade ticks per second. This file never
imports cryptoj (and cryptoj never imports nautilus): ``tools/bench_replay.py`` runs it in a
subprocess with the nautilus venv's interpreter and reads the JSON line it prints last.

Configuration (mirror this on the cryptoj side):

- Data: one ``TradeTick`` per CSV row (columns
  ``local_ts_ns,time_ms,time_utc,trade_id,price,quantity,buyer_maker``): price at precision 2,
  size at precision 6, ``ts_event = ts_init = time_ms * 1_000_000`` (the exchange trade time;
  ``local_ts_ns`` is ignored), ``trade_id`` as the ``TradeId``, aggressor ``SELLER`` when
  ``buyer_maker`` is ``True`` else ``BUYER``.
- Instrument: ``TestInstrumentProvider.btcusdt_binance()``, the Binance spot ``CurrencyPair``
  ``BTCUSDT.BINANCE`` (tick 0.01, lot 0.000001, min notional 10 USDT, maker/taker fee 0.1 %).
- Venue ``BINANCE``: ``OmsType.NETTING``, ``AccountType.CASH``, no base currency
  (multi-currency), starting balances 1,000,000 USDT and 10 BTC, L1_MBP book (the default),
  default fill model (no random slippage), ``MakerTakerFeeModel`` (taker 0.1 % charged in the
  quote currency), ``trade_execution=False`` (the default), ``use_message_queue=True`` (the
  default), no latency model.
- Engine: ``BacktestEngineConfig`` defaults (risk engine on, ``bypass=False``; data engine,
  exec engine, cache in memory) except logging at ``ERROR`` and ``run_analysis=False`` (the
  post-run portfolio statistics are not replay; ``--run-analysis`` turns them back on).
- Strategy: ``nautilus_trader.examples.strategies.ema_cross.EMACross`` with
  ``EMACrossConfig(instrument_id=BTCUSDT.BINANCE,
  bar_type=BarType.from_str("BTCUSDT.BINANCE-100-TICK-LAST-INTERNAL"),
  trade_size=Decimal("0.01"), fast_ema_period=10, slow_ema_period=20)``; everything else at the
  example's defaults, notably ``subscribe_trade_ticks=True`` (the strategy receives every tick
  as well as the bars, and its ``on_trade_tick`` formats a log line for each that the logger
  then drops), ``request_bars=True`` (no historical source here, so no bars arrive from it), and
  ``close_positions_on_stop=True``.
- Bars: 100-tick bars built by nautilus's data engine from the trade ticks (a bar closes on
  every 100th trade; OHLC of those 100 trade prices, volume their summed size; the trailing
  ``ticks % 100`` trades never form a bar: 19,904 ticks give 199 bars). Both EMAs are nautilus's
  ``ExponentialMovingAverage``: float, alpha = 2 / (period + 1), seeded with the first bar's
  close, updated with each bar's close before ``on_bar`` runs; the strategy does nothing until
  both have seen ``period`` bars, so the first decision is on bar 20.
- Decision on each bar once warm: skip a bar whose open = high = low = close; if fast >= slow:
  buy 0.01 BTC at market when flat, or, when net short, close the short (reduce-only market
  order) and then buy 0.01; if fast < slow: sell 0.01 when flat, or, when net long, close the
  long and then sell 0.01. Otherwise (already long and fast >= slow, already short and
  fast < slow) nothing. So the position goes 0 -> +/-0.01 and then flips between +0.01 and
  -0.01 BTC (a net short is fine: the cash account holds 10 BTC), every flip being two market
  orders. On stop the open position is closed with a reduce-only market order at the last
  tick's price. On the bundled data this is 14 orders (1 entry, 6 flips, 1 close on stop).
- Fills: a market order submitted while the bar-closing tick is processed passes the risk
  engine and is matched right after that tick (the venue's message queue is flushed after every
  data item). On the L1 book a trade tick sets bid = ask = its price with its size, so the order
  fills at the price of the bar's closing trade (= bar close) for up to that trade's size and
  the rest one tick (0.01 USDT) worse: buys higher, sells lower. Each order sees the full size
  of that trade (the close and the new entry of a flip are not netted against each other), so
  an order gives one or two fill events (22 fills for 14 orders on the bundled data). Fee 0.1 %
  of notional in USDT per fill.

Bars (``--bars FILE``, the bar benchmark of ``tools/bench_replay.py --bars``): instead of
ticks, one product's one-minute bars (``--product``, default ``BTC-USD``) from a file in
cryptoj's long CSV format (``product,open_time_ms,open,high,low,close,volume,...``; plain or
``.gz``; the bundled ``coinbase-1m-2018-04`` set by default), turned into nautilus ``Bar``
objects by nautilus's own ``BarDataWrangler`` (price precision 2, size precision 6 of the
instrument) with ``ts_event = ts_init`` = the bar's **close** time (open time + 60 s, as
cryptoj stamps it), bar type ``BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL`` (external: the data
engine aggregates nothing, each bar goes straight to the strategy). The same instrument,
venue, engine (risk engine on) and ``EMACross`` (EMA 10/20, 0.01 BTC, the example's defaults)
as above, with ``bar_type`` set to those bars. The venue's ``bar_execution`` (the default)
moves its L1 book with each bar's open, high, low and close, so a market order fills at the
book as the closing price left it. The figures are then per bar: ``bars_per_second`` and
``bars_per_cpu_second``.

Timing: ``ticks_per_second = ticks / wall seconds of engine.run()`` (``time.perf_counter``),
which covers kernel start, the whole replay and stop (closing the position) but not reading the
CSV, building ``TradeTick`` objects (``load_seconds``), nor building the engine, adding venue,
instrument, data and strategy (``setup_seconds`` per run). ``ticks_per_cpu_second`` divides by
the process CPU time of ``engine.run()`` instead (steadier on a busy machine). Each of
``--repeat`` runs uses a fresh engine over the same tick objects; the first run in a process
pays one-off warm-up costs, so prefer the median of several.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import LoggingConfig, RiskEngineConfig
from nautilus_trader.examples.strategies.ema_cross import EMACross, EMACrossConfig
from nautilus_trader.model.currencies import BTC, USDT
from nautilus_trader.model.data import Bar, BarType, TradeTick
from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType
from nautilus_trader.model.events import OrderDenied, OrderFilled, OrderRejected
from nautilus_trader.model.identifiers import InstrumentId, TradeId, Venue
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.test_kit.providers import TestInstrumentProvider

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1]
    / "benchmarks"
    / "data"
    / "binance_BTCUSDT_trades_20240808T2354_20240809T0005.csv.gz"
)
BAR_TYPE = "BTCUSDT.BINANCE-100-TICK-LAST-INTERNAL"
MINUTE_BAR_TYPE = "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
DEFAULT_BARS = (
    Path(__file__).resolve().parents[1] / "cryptoj/marketdata/bundled/coinbase-1m-2018-04.csv.gz"
)
TRADE_SIZE = Decimal("0.01")
FAST_EMA = 10
SLOW_EMA = 20
STARTING_USDT = 1_000_000
STARTING_BTC = 10


def load_ticks(path: Path, instrument: CurrencyPair) -> list[TradeTick]:
    """Read the trades CSV (plain or ``.gz``) into ``TradeTick`` objects for ``instrument``."""
    instrument_id: InstrumentId = instrument.id
    price_prec: int = instrument.price_precision
    size_prec: int = instrument.size_precision
    opener = gzip.open if path.suffix == ".gz" else open
    ticks: list[TradeTick] = []
    with opener(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            ts = int(row["time_ms"]) * 1_000_000
            maker = row["buyer_maker"]
            if maker not in ("True", "False"):
                raise ValueError(f"buyer_maker must be True or False, got {maker!r}")
            ticks.append(
                TradeTick(
                    instrument_id,
                    Price(float(row["price"]), price_prec),
                    Quantity(float(row["quantity"]), size_prec),
                    AggressorSide.SELLER if maker == "True" else AggressorSide.BUYER,
                    TradeId(row["trade_id"]),
                    ts,
                    ts,
                )
            )
    return ticks


def load_bars(path: Path, product: str, instrument: CurrencyPair) -> list[Bar]:
    """One product's one-minute bars of a long-format CSV (plain or ``.gz``), stamped at their
    close, as nautilus ``Bar`` objects built by ``BarDataWrangler``."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[tuple[int, float, float, float, float, float]] = []
    with opener(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["product"] != product or not row.get("close"):
                continue
            close_ms = int(row["open_time_ms"]) + 60_000
            o, h, lo, c, v = (float(row[k]) for k in ("open", "high", "low", "close", "volume"))
            rows.append((close_ms, o, h, lo, c, v))
    if not rows:
        raise ValueError(f"{path}: no bars of {product}")
    rows.sort()
    frame = pd.DataFrame(
        [r[1:] for r in rows],
        columns=["open", "high", "low", "close", "volume"],
        index=pd.to_datetime([r[0] for r in rows], unit="ms", utc=True),
    )
    frame.index.name = "timestamp"
    wrangler = BarDataWrangler(BarType.from_str(MINUTE_BAR_TYPE), instrument)
    bars: list[Bar] = wrangler.process(frame)
    return bars


def build_engine(
    instrument: CurrencyPair,
    ticks: Sequence[TradeTick | Bar],
    *,
    run_analysis: bool = False,
    log_level: str = "ERROR",
    subscribe_trade_ticks: bool = True,
    bar_type: str = BAR_TYPE,
) -> BacktestEngine:
    """A fresh engine with the Binance-like venue, the instrument, the data (ticks, or bars of
    ``bar_type``) and ``EMACross``."""
    config = BacktestEngineConfig(
        trader_id="BACKTESTER-001",
        logging=LoggingConfig(log_level=log_level),
        risk_engine=RiskEngineConfig(bypass=False),
        run_analysis=run_analysis,
    )
    engine = BacktestEngine(config=config)
    engine.add_venue(
        venue=Venue("BINANCE"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=None,
        starting_balances=[Money(STARTING_USDT, USDT), Money(STARTING_BTC, BTC)],
    )
    engine.add_instrument(instrument)
    engine.add_data(list(ticks))
    strategy = EMACross(
        config=EMACrossConfig(
            instrument_id=instrument.id,
            bar_type=BarType.from_str(bar_type),
            trade_size=TRADE_SIZE,
            fast_ema_period=FAST_EMA,
            slow_ema_period=SLOW_EMA,
            subscribe_trade_ticks=subscribe_trade_ticks,
        )
    )
    engine.add_strategy(strategy)
    return engine


def run_once(
    instrument: CurrencyPair, ticks: Sequence[TradeTick | Bar], **options: Any
) -> dict[str, Any]:
    """Build, run and dispose one engine; return its timings and order/fill counts.

    ``options`` are passed to :func:`build_engine`.
    """
    t0 = time.perf_counter()
    engine = build_engine(instrument, ticks, **options)
    t1 = time.perf_counter()
    c1 = time.process_time()
    engine.run()
    c2 = time.process_time()
    t2 = time.perf_counter()
    orders = engine.cache.orders()
    events = [e for o in orders for e in o.events]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    account = engine.cache.account_for_venue(Venue("BINANCE"))
    balances = {str(c): str(account.balance_total(c)) for c in (USDT, BTC)} if account else {}
    result = {
        "setup_seconds": round(t1 - t0, 6),
        "run_seconds": round(t2 - t1, 6),
        "ticks_per_second": round(len(ticks) / (t2 - t1), 1),
        "cpu_seconds": round(c2 - c1, 6),
        "ticks_per_cpu_second": round(len(ticks) / max(c2 - c1, 1e-9), 1),
        "orders": len(orders),
        "orders_filled": sum(1 for o in orders if o.is_closed and o.filled_qty > 0),
        "orders_denied": sum(1 for e in events if isinstance(e, OrderDenied)),
        "orders_rejected": sum(1 for e in events if isinstance(e, OrderRejected)),
        "fills": len(fills),
        "positions": len(engine.cache.positions()),
        "bars": engine.cache.bar_count(BarType.from_str(options.get("bar_type", BAR_TYPE))),
        "final_balances": balances,
    }
    engine.dispose()
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="trades CSV(.gz)")
    p.add_argument("--repeat", type=int, default=1, help="fresh engines to run (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.add_argument(
        "--run-analysis", action="store_true", help="keep nautilus's post-run analysis on"
    )
    p.add_argument("--log-level", default="ERROR", help="nautilus stdout log level")
    p.add_argument(
        "--bars",
        type=Path,
        nargs="?",
        const=DEFAULT_BARS,
        help=f"replay one-minute bars of this long CSV instead of ticks (default {DEFAULT_BARS})",
    )
    p.add_argument("--product", default="BTC-USD", help="product of --bars (default BTC-USD)")
    p.add_argument(
        "--no-trade-tick-subscription",
        action="store_true",
        help="EMACrossConfig(subscribe_trade_ticks=False): the strategy gets bars only "
        "(not the example's default; for comparison)",
    )
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    return args


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`build_engine` options the command line sets."""
    return {
        "run_analysis": args.run_analysis,
        "log_level": args.log_level,
        "subscribe_trade_ticks": not args.no_trade_tick_subscription,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Load the ticks once, run ``--repeat`` engines, print per-run rates and the median."""
    args = parse_args(argv)
    instrument = TestInstrumentProvider.btcusdt_binance()
    if args.bars is not None:
        return main_bars(args, instrument)
    t0 = time.perf_counter()
    ticks = load_ticks(args.data, instrument)
    load_seconds = time.perf_counter() - t0
    options = engine_options(args)
    runs = [run_once(instrument, ticks, **options) for _ in range(args.repeat)]
    last = runs[-1]
    summary = {
        "ticks": len(ticks),
        "load_seconds": round(load_seconds, 6),
        "runs": runs,
        "ticks_per_second_median": round(statistics.median(r["ticks_per_second"] for r in runs), 1),
        "ticks_per_cpu_second_median": round(
            statistics.median(r["ticks_per_cpu_second"] for r in runs), 1
        ),
        "orders": last["orders"],
        "fills": last["fills"],
        "nautilus_version": version("nautilus_trader"),
        "python": sys.version.split()[0],
        "config": {
            "instrument": str(instrument.id),
            "bar_type": BAR_TYPE,
            "fast_ema_period": FAST_EMA,
            "slow_ema_period": SLOW_EMA,
            "trade_size": str(TRADE_SIZE),
            "account": "CASH",
            "oms": "NETTING",
            "starting_balances": [f"{STARTING_USDT} USDT", f"{STARTING_BTC} BTC"],
            "risk_engine_bypass": False,
            "run_analysis": args.run_analysis,
            "log_level": args.log_level,
            "subscribe_trade_ticks": options["subscribe_trade_ticks"],
        },
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"nautilus_trader {summary['nautilus_version']}: {len(ticks)} ticks")
        print(f"load: {load_seconds:.3f} s")
        for i, r in enumerate(runs, 1):
            print(
                f"run {i}: {r['ticks_per_second']:>10,.0f} ticks/s"
                f" ({r['ticks_per_cpu_second']:,.0f} per CPU s)  run {r['run_seconds']:.3f} s"
                f"  setup {r['setup_seconds']:.3f} s  orders {r['orders']}  fills {r['fills']}"
            )
        print(
            f"median: {summary['ticks_per_second_median']:,.0f} ticks/s"
            f" ({summary['ticks_per_cpu_second_median']:,.0f} per CPU s)"
        )
    return 0


def main_bars(args: argparse.Namespace, instrument: CurrencyPair) -> int:
    """The bar replay (module docstring, *Bars*): per-run rates per bar and their median."""
    t0 = time.perf_counter()
    bars = load_bars(args.bars, args.product, instrument)
    load_seconds = time.perf_counter() - t0
    options = {**engine_options(args), "bar_type": MINUTE_BAR_TYPE}
    runs = []
    for _ in range(args.repeat):
        r = run_once(instrument, bars, **options)
        r["bars_per_second"] = round(len(bars) / r["run_seconds"], 1)
        r["bars_per_cpu_second"] = round(len(bars) / max(r["cpu_seconds"], 1e-9), 1)
        runs.append(r)
    summary = {
        "bars": len(bars),
        "load_seconds": round(load_seconds, 6),
        "runs": runs,
        "bars_per_second_median": round(statistics.median(r["bars_per_second"] for r in runs), 1),
        "bars_per_cpu_second_median": round(
            statistics.median(r["bars_per_cpu_second"] for r in runs), 1
        ),
        "orders": runs[-1]["orders"],
        "fills": runs[-1]["fills"],
        "nautilus_version": version("nautilus_trader"),
        "config": {
            "data": str(args.bars),
            "product": args.product,
            "bar_type": MINUTE_BAR_TYPE,
            "fast_ema_period": FAST_EMA,
            "slow_ema_period": SLOW_EMA,
            "trade_size": str(TRADE_SIZE),
            "risk_engine_bypass": False,
            "bar_execution": True,
        },
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"nautilus_trader {summary['nautilus_version']}: {len(bars)} bars")
        for i, r in enumerate(runs, 1):
            print(f"run {i}: {r['bars_per_second']:>10,.0f} bars/s  orders {r['orders']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
