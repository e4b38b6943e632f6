"""Replay throughput: cryptoj's full actor system against NautilusTrader on the same ticks.

    python tools/bench_replay.py --json                # both, if the nautilus venv exists
    bash tools/setup_nautilus_venv.sh                  # once: the nautilus venv (.venv-nautilus)

Both sides replay the bundled Binance BTCUSDT trades (19,904 ticks, ``benchmarks/data/``) with
an EMA(10)/EMA(20) cross on 100-tick bars:

* cryptoj: the deterministic runtime (the replay default) with every actor — FeedActor (tick
  bars, one modelled quote per 1-second window) → StrategyActor → RiskActor / PortfolioActor
  (check-and-reserve, journal in SQLite) → ExecutionActor → paper venue → fills back — trace off.
  Spot and long-only: it holds 0.06 of equity (≈ 0.01 BTC on 10,000 USDT) while fast > slow,
  nothing otherwise; fees 0.1 %.
* nautilus: ``tools/nautilus_baseline.py`` in its own virtualenv (never a project dependency):
  nautilus's bundled ``EMACross`` example with its risk engine on (see that file's docstring).

``cryptoj_events_per_second`` is the tick-replay configuration (``feed.window_ms: 1000``: the
feed handles one second of ticks per step and conflates the quote it hands on);
``cryptoj_per_timestamp_events_per_second`` is the same with one feed step per millisecond
timestamp (``window_ms: 0``), closer to nautilus's one-event-at-a-time loop.

Each side reports ticks per second of its replay loop only (data loading and set-up excluded);
runs alternate between the two sides so load on the shared machine hits both alike. Prints a
table, or with ``--json`` one JSON object: ``cryptoj_events_per_second``,
``nautilus_events_per_second`` (null without the venv), ``ratio`` (cryptoj / nautilus), the
same on CPU time, and every run.

``--bars``: the bar benchmark instead. Both sides replay the same one-minute bars: the BTC-USD
trade bars of the bundled ``coinbase-1m-2018-04`` set (Apache-2.0, see
``cryptoj/marketdata/bundled/PROVENANCE.md``), written once per run as a candles-only long
CSV in a temporary directory (no quotes: each side models its book from the bars), with an
EMA(10)/EMA(20) cross on every bar and each side's risk engine on:

* cryptoj: the same actor system as above (:data:`BARS_CONFIG`: feed → ema_trend strategy →
  risk → portfolio → execution → paper venue, journal in SQLite, trace off); the feed models
  a quote from each bar's close (``feed.bar_spread_bps``).
* nautilus: ``tools/nautilus_baseline.py --bars`` (its docstring): the bars through
  ``BarDataWrangler`` into a ``BacktestEngine`` with the bundled ``EMACross`` on them.

Prints bars per second of each side's replay loop (wall time), ``ratio`` (cryptoj ÷ nautilus),
the same per CPU second of each loop (``ratio_cpu``: steadier than wall time when the shared
machine is loaded; cryptoj's is the CPU time of ``DeterministicRuntime.run``, nautilus's of
``engine.run``), the orders each side sent, the load average before and after, and every
run. The
differences that remain are listed in BENCHMARKS.md (*Bar replay against NautilusTrader*).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptoj.config import parse_config  # noqa: E402
from cryptoj.replay import ReplayOptions, run_replay  # noqa: E402
from cryptoj.runtime.deterministic import DeterministicRuntime  # noqa: E402

DATA = ROOT / "benchmarks/data/binance_BTCUSDT_trades_20240808T2354_20240809T0005.csv.gz"
NAUTILUS_PY = ROOT / ".venv-nautilus/bin/python"
BENCH_CONFIG: dict[str, Any] = {
    "paper": {
        "quote_currency": "USDT",
        "starting_cash": 10_000,
        "taker_fee": 0.001,
        "maker_fee": 0.001,
    },
    "feed": {"tick_bar_size": 100, "window_ms": 1000},
    "strategy": {
        "fast_period": 10,
        "slow_period": 20,
        "band": 0.0,
        "entry_band": 0.0,
        "target_weight": 0.06,
    },
    # the machinery is measured: no cost band, no turnover budget (as before them)
    "risk": {"max_daily_turnover": 100},
    "portfolio": {"cost_band_multiple": 0},
    "trace": {"enabled": False},
}


#: The bar benchmark's cryptoj configuration: the tick benchmark's strategy (EMA 10/20, no
#: bands: a cross flips the signal, as in nautilus's EMACross) on one-minute BTC-USD bars;
#: 0.06 of 1,250 USD while fast > slow (≈ 0.01 BTC at April 2018 prices, nautilus's trade
#: size), flat otherwise.
BARS_CONFIG: dict[str, Any] = {
    **BENCH_CONFIG,
    "paper": {"quote_currency": "USD", "starting_cash": 1_250, "taker_fee": 0.001},
    "feed": {"products": ["BTC-USD"]},
}
BARS_SOURCE = ROOT / "cryptoj/marketdata/bundled/coinbase-1m-2018-04.csv.gz"
BARS_PRODUCT = "BTC-USD"


def write_bars(source: Path, product: str, out: Path) -> int:
    """``product``'s trade bars of the long CSV ``source`` as a candles-only long CSV at
    ``out`` (quotes and quote-only rows left out); the number of bars."""
    n = 0
    with gzip.open(source, "rt", newline="") as f, out.open("w", newline="") as g:
        writer = csv.writer(g)
        writer.writerow(["product", "open_time_ms", "open", "high", "low", "close", "volume"])
        for row in csv.DictReader(f):
            if row["product"] == product and row["close"]:
                cols = ("open_time_ms", "open", "high", "low", "close", "volume")
                writer.writerow([product, *(row[c] for c in cols)])
                n += 1
    return n


@contextlib.contextmanager
def loop_cpu() -> Iterator[list[float]]:
    """While inside: the CPU seconds spent in the deterministic runtime's loop
    (``DeterministicRuntime.run``), added up in the one-element list yielded."""
    spent = [0.0]
    run: Callable[..., None] = DeterministicRuntime.run

    def timed(self: DeterministicRuntime, *args: Any, **kwargs: Any) -> None:
        c0 = time.process_time()
        try:
            run(self, *args, **kwargs)
        finally:
            spent[0] += time.process_time() - c0

    setattr(DeterministicRuntime, "run", timed)  # noqa: B010 (a method replaced for the run)
    try:
        yield spent
    finally:
        setattr(DeterministicRuntime, "run", run)  # noqa: B010


def run_cryptoj_bars(workdir: Path, data: Path) -> dict[str, Any]:
    """One cryptoj replay of the bar file; its rate per bar (wall and loop CPU) and counts."""
    cfg = parse_config(BARS_CONFIG)
    opts = ReplayOptions(data=str(data), journal=str(workdir / "journal.sqlite"), trace=None)
    with loop_cpu() as cpu:
        summary, code = run_replay(cfg, opts)
    if code != 0 or not summary["invariants_ok"]:
        raise SystemExit(f"cryptoj replay failed: exit {code}, {summary['invariant_problems']}")
    return {
        "bars": summary["events"],
        "run_seconds": summary["wall_seconds"],
        "bars_per_second": summary["events_per_second"],
        "bars_per_cpu_second": round(summary["events"] / max(cpu[0], 1e-9), 1),
        "orders": summary["orders"],
        "fills": summary["fills"],
        "messages": summary["messages"],
    }


def run_nautilus_bars(python: Path, data: Path) -> dict[str, Any]:
    """One nautilus bar run in its own interpreter; its JSON."""
    cmd = [str(python), str(ROOT / "tools/nautilus_baseline.py"), "--bars", str(data)]
    cmd += ["--product", BARS_PRODUCT, "--json", "--repeat", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"nautilus baseline failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main_bars(rounds: int, python: Path, as_json: bool) -> int:
    """The bar benchmark (module docstring, ``--bars``)."""
    if not python.exists():
        raise SystemExit(f"no nautilus venv at {python}: run `bash tools/setup_nautilus_venv.sh`")
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "btc-usd-1m-bars.csv"
        bars = write_bars(BARS_SOURCE, BARS_PRODUCT, data)
        run_cryptoj_bars(Path(tmp), data)  # warm-up: imports, caches
        for _ in range(rounds):
            ours.append(run_cryptoj_bars(Path(tmp), data))
            theirs.append(run_nautilus_bars(python, data))
    load.append(os.getloadavg()[0])
    if ours[0]["bars"] != bars or theirs[0]["bars"] != bars:
        raise SystemExit(f"bar counts differ: file {bars}, {ours[0]['bars']}, {theirs[0]['bars']}")
    c_rate = statistics.median(r["bars_per_second"] for r in ours)
    n_rate = statistics.median(r["bars_per_second_median"] for r in theirs)
    n_cpu = statistics.median(r["bars_per_cpu_second_median"] for r in theirs)
    c_cpu = statistics.median(r["bars_per_cpu_second"] for r in ours)
    out = {
        "bars": bars,
        "cryptoj_bars_per_second": round(c_rate, 1),
        "nautilus_bars_per_second": round(n_rate, 1),
        "ratio": round(c_rate / n_rate, 3),
        "cryptoj_bars_per_cpu_second": round(c_cpu, 1),
        "nautilus_bars_per_cpu_second": round(n_cpu, 1),
        "ratio_cpu": round(c_cpu / n_cpu, 3),
        "nautilus": theirs[0]["nautilus_version"],
        "cryptoj_orders": ours[0]["orders"],
        "cryptoj_fills": ours[0]["fills"],
        "cryptoj_messages": ours[0]["messages"],
        "nautilus_orders": theirs[0]["orders"],
        "nautilus_fills": theirs[0]["fills"],
        "load_average": [round(x, 2) for x in load],
        "cryptoj_runs": [r["bars_per_second"] for r in ours],
        "nautilus_runs": [r["bars_per_second_median"] for r in theirs],
    }
    if as_json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:32} {value}")
    return 0


def run_cryptoj(workdir: Path, window_ms: int = 1000) -> dict[str, Any]:
    """One replay of the ticks; returns its rate and counts."""
    cfg = parse_config({**BENCH_CONFIG, "feed": {**BENCH_CONFIG["feed"], "window_ms": window_ms}})
    opts = ReplayOptions(data=str(DATA), journal=str(workdir / "journal.sqlite"), trace=None)
    cpu0 = time.process_time()
    summary, code = run_replay(cfg, opts)
    cpu = time.process_time() - cpu0
    if code != 0 or not summary["invariants_ok"]:
        raise SystemExit(f"cryptoj replay failed: exit {code}, {summary['invariant_problems']}")
    return {
        "ticks": summary["events"],
        "run_seconds": summary["wall_seconds"],
        "ticks_per_second": summary["events_per_second"],
        "cpu_seconds_incl_setup": round(cpu, 3),
        "orders": summary["orders"],
        "fills": summary["fills"],
        "messages": summary["messages"],
    }


def run_nautilus(python: Path) -> dict[str, Any]:
    """One nautilus run in its own interpreter; returns its JSON."""
    done = subprocess.run(
        [
            str(python),
            str(ROOT / "tools/nautilus_baseline.py"),
            "--data",
            str(DATA),
            "--json",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"nautilus baseline failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    ap.add_argument(
        "--nautilus-python",
        type=Path,
        default=NAUTILUS_PY,
        help=f"python of the nautilus venv (default {NAUTILUS_PY})",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--bars", action="store_true", help="the bar benchmark (module docstring)")
    args = ap.parse_args(argv)
    if args.bars:
        return main_bars(args.rounds, args.nautilus_python, args.json)
    have_nautilus = args.nautilus_python.exists()
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        run_cryptoj(Path(tmp))  # warm-up: imports, caches
        per_ts: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            ours.append(run_cryptoj(Path(tmp)))
            per_ts.append(run_cryptoj(Path(tmp), window_ms=0))
            if have_nautilus:
                theirs.append(run_nautilus(args.nautilus_python))
    c_rate = statistics.median(r["ticks_per_second"] for r in ours)
    n_rate = statistics.median(r["ticks_per_second_median"] for r in theirs) if theirs else None
    n_cpu = statistics.median(r["ticks_per_cpu_second_median"] for r in theirs) if theirs else None
    out = {
        "ticks": ours[0]["ticks"],
        "cryptoj_events_per_second": round(c_rate, 1),
        "nautilus_events_per_second": None if n_rate is None else round(n_rate, 1),
        "ratio": None if n_rate is None else round(c_rate / n_rate, 3),
        "nautilus_events_per_cpu_second": None if n_cpu is None else round(n_cpu, 1),
        "nautilus": "not installed: run `bash tools/setup_nautilus_venv.sh`"
        if not theirs
        else theirs[0].get("nautilus_version"),
        "cryptoj_orders": ours[0]["orders"],
        "cryptoj_fills": ours[0]["fills"],
        "nautilus_orders": theirs[0]["orders"] if theirs else None,
        "nautilus_fills": theirs[0]["fills"] if theirs else None,
        "cryptoj_per_timestamp_events_per_second": round(
            statistics.median(r["ticks_per_second"] for r in per_ts), 1
        ),
        "ratio_per_timestamp": None
        if n_rate is None
        else round(statistics.median(r["ticks_per_second"] for r in per_ts) / n_rate, 3),
        "cryptoj_runs": [r["ticks_per_second"] for r in ours],
        "nautilus_runs": [r["ticks_per_second_median"] for r in theirs],
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
