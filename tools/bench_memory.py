"""Memory and mailbox bounds of the threaded runtime over a real-time replay, then a burst.

    python tools/bench_memory.py --json                    # 10 minutes at real-time pace
    python tools/bench_memory.py --minutes 2 --json        # a quicker look

Replays the bundled Binance BTCUSDT trades (``benchmarks/data/``, ~30 trades/s recorded) through
the whole actor system in the threaded runtime at their recorded pace (``feed.speed``-style
``ScaledClock``, speed 1; the PortfolioActor's group commit as in the daemon) for ``--minutes``
(looping the 11-minute recording if needed), sampling the process RSS (``/proc/self/statm``)
every second and every actor's mailbox depth every 50 ms; then replays ``--burst-seconds`` of
data at 10× pace. Prints RSS after warm-up and at the end, its growth (the target: under 20 MB
after warm-up), and the largest mailbox seen in each phase.
``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptoj.config import parse_config  # noqa: E402
from cryptoj.marketdata.ticks import load_trade_ticks  # noqa: E402
from cryptoj.models.market import MarketEvent, Trade  # noqa: E402
from cryptoj.runtime.assemble import GROUP_COMMIT, assemble  # noqa: E402
from cryptoj.runtime.threaded import ScaledClock, ThreadedRuntime  # noqa: E402
from cryptoj.supervision.tree import WORKERS  # noqa: E402

DATA = ROOT / "benchmarks/data/binance_BTCUSDT_trades_20240808T2354_20240809T0005.csv.gz"
CONFIG = {
    "paper": {"quote_currency": "USDT", "starting_cash": 100_000, "taker_fee": 0.001},
    "feed": {"tick_bar_size": 100},
    "strategy": {"fast_period": 10, "slow_period": 20, "band": 0.0, "entry_band": 0.0},
    # the machinery is measured: no cost band, no turnover budget (as before them)
    "risk": {"max_daily_turnover": 100},
    "portfolio": {"cost_band_multiple": 0},
    "trace": {"enabled": False},
}
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """Resident set size of this process, MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def _batches(minutes: float) -> list[tuple[MarketEvent, ...]]:
    """The recording, looped and re-timed to last ``minutes`` of market time."""
    ticks = [t for b in load_trade_ticks(DATA) for t in b if isinstance(t, Trade)]
    span = ticks[-1].ts - ticks[0].ts + 1_000_000_000
    out: list[tuple[MarketEvent, ...]] = []
    loop = 0
    end = ticks[0].ts + int(minutes * 60e9)
    while True:
        for t in ticks:
            ts = t.ts + loop * span
            if ts >= end:
                return out
            out.append(
                (
                    Trade(
                        ts=ts,
                        product=t.product,
                        price=t.price,
                        quantity=t.quantity,
                        taker_side=t.taker_side,
                        trade_id=f"{t.trade_id}-{loop}",
                    ),
                )
            )
        loop += 1


class Sampler(threading.Thread):
    """Samples RSS and mailbox depths in the background."""

    def __init__(self, rt: ThreadedRuntime) -> None:
        super().__init__(daemon=True)
        self.rt = rt
        self.stop = threading.Event()
        self.rss: list[tuple[float, float]] = []
        self.max_mailbox = 0
        self.t0 = time.monotonic()

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(0.05):
            depth = max(self.rt.mailbox_depths().values(), default=0)
            self.max_mailbox = max(self.max_mailbox, depth)
            tick += 1
            if tick % 20 == 0:
                self.rss.append((time.monotonic() - self.t0, rss_mb()))


def run_phase(minutes: float, speed: float, workdir: Path) -> dict[str, Any]:
    """One threaded replay at ``speed``× the recorded pace."""
    cfg = parse_config(CONFIG)
    system = assemble(cfg, _batches(minutes), str(workdir / "journal.sqlite"), fresh_journal=True)
    rt = ThreadedRuntime(
        seed=1,
        clock=ScaledClock(system.start_ns, speed),
        registry=system.registry,
        journal_path=system.journal_path,
        group_commit=GROUP_COMMIT,  # as the daemon runs it (journal.group_commit: true)
    )
    system.venue.set_listener(lambda e: rt.tell("execution", e, sender="venue"))
    sampler = Sampler(rt)
    sampler.start()
    rt.start_tree()  # as the daemon starts it (run_until_stopped)
    rt.exit_event.wait(minutes * 60 / speed + 120)
    rt.quiesce(list(WORKERS))
    rt.shutdown()
    sampler.stop.set()
    sampler.join()
    return {
        "rss": sampler.rss,
        "max_mailbox": sampler.max_mailbox,
        "events": system.source.emitted,
        "delivered": rt.stats.delivered,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the real-time phase and the burst phase; print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=10.0, help="real-time phase (10)")
    ap.add_argument("--warmup-seconds", type=float, default=60.0, help="excluded from growth")
    ap.add_argument("--burst-seconds", type=float, default=60.0, help="10x phase, wall s (60)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        steady = run_phase(args.minutes, 1.0, Path(tmp))
        burst = run_phase(args.burst_seconds * 10 / 60, 10.0, Path(tmp))
    samples = steady["rss"]
    after = [mb for t, mb in samples if t >= args.warmup_seconds] or [mb for _, mb in samples]
    out = {
        "minutes": args.minutes,
        "events": steady["events"],
        "rss_after_warmup_mb": round(after[0], 1),
        "rss_end_mb": round(after[-1], 1),
        "rss_max_mb": round(max(after), 1),
        "rss_growth_mb": round(after[-1] - after[0], 1),
        "max_mailbox_realtime": steady["max_mailbox"],
        "burst_events": burst["events"],
        "max_mailbox_burst_10x": burst["max_mailbox"],
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:24} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
