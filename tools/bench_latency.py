"""Live-path latency in the threaded runtime, next to the raw thread-handoff floor.

    python tools/bench_latency.py --json                  # 1,000 ticks/s for 60 s each
    python tools/bench_latency.py --seconds 10 --json     # a quicker look
    python tools/bench_latency.py --burst --json          # 1,000/s, 5x for 10 s, 1,000/s again

What is measured: a trade tick pushed into the FeedActor's mailbox until the order intent it
causes leaves the ExecutionActor for the venue (``PaperExchange.submit`` is entered): Feed →
Strategy → Portfolio → Execution, four pykka thread handoffs plus each actor's work, with the
real actors, journal and supervision. The FeedActor opens a correlation id per market update
(``mkt-<n>``) that every message the update causes carries; the bench's FeedActor maps each
one to the ``perf_counter_ns`` at which the tick it handles was pushed, and at the submit the
bench reads the correlation id of the message being handled
(``ThreadedRuntime.current_correlation``) and takes the time since that push. Orders caused by
something else (a replan after a close, a split parent's timer) are not counted.
Ticks are the recorded Binance BTCUSDT trades (``benchmarks/data/``), re-stamped with the
current time and pushed at ``--rate`` per second; the strategy (EMA 2/3 on one-trade bars)
flips often, so many ticks lead to an order (ticks that lead to none are not counted).

The actor system runs as the daemon runs it: ``ThreadedRuntime.start_tree`` (heap frozen for
the garbage collector, the journal's WAL checkpointed on a thread of its own) and quote-
conflating mailboxes, the PortfolioActor's journal writes committed once per mailbox batch
(``journal.group_commit``); ``--without conflation,checkpointer,freeze,group-commit`` switches
those off to measure what each brings. Two diagnostics, not configurations (nothing they
skip is durable; recovery would be impossible): ``--without journal`` makes every journal
write a no-op,
``--without path-journal`` only the two on the measured path (the portfolio's record of the
transaction and its intent, the execution's record of the order).

``--record`` also hands every pushed tick to a :class:`~cryptoj.marketdata.recording.FeedRecorder`
right after the push, as the daemon's feed callback does with ``feed.record: true`` (its writer
thread writes Parquet into the temporary directory); the output's ``record`` holds its counters.

The floor: the same number of handoffs through plain ``queue.Queue`` threads that do no work
(``--floor simplequeue``: ``queue.SimpleQueue``, on which the actors' mailboxes are built),
paced the same way, in the same process, alternating with the actor system in slices so both
see the same machine load. Prints p50/p99/max in µs for both and ``ratio_p99`` (actors /
floor); with ``--json`` one JSON object: ``p50_us``, ``p99_us``, ``max_us``, ``floor_p50_us``,
``floor_p99_us``, ``floor_max_us``, ``ratio_p99``, ``samples``, ``floor_samples``, and
``cpu_us_per_tick`` (process CPU time while the actors ran, per tick pushed: less sensitive to
other load on the machine than the percentiles), ``conflated`` (quotes dropped for a newer
one), ``load_avg`` (the 1-minute load average at the end).

Two configurations in one run: ``--compare-without MEASURE[,...]`` (a second chain with those
measures also off) or ``--compare-switch-interval-us N`` (a second chain, and its floor slices,
under that GIL switch interval) builds a second actor chain whose slices alternate with the
first's (A, floor, B, floor, ...), so both see the same load; the second side's figures are
under ``compare`` and ``compare_ratio_of_ratios`` is its ``ratio_p99`` over the first's.
The GIL switch interval is Python's default (5 ms, as in the daemon) for the whole run, the
actors and the floor alike; ``--switch-interval-us N`` sets another for both.

``--burst``: the actor system alone (no alternation), ``--rate`` ticks/s for
``--phase-seconds`` (10), then ``--burst-x`` (5) times that for ``--burst-seconds`` (10), then
``--rate`` again for ``--phase-seconds``; samples belong to the phase in which their tick was
pushed. Prints p50/p99 per phase (``pre``, ``burst``, ``post``), ``burst_p99_ratio`` (burst p99
/ pre-burst p99), ``recovery_s`` (from the end of the burst until the median of every later
0.5 s window of pushes is at or below the pre-burst p99; 0 when the first one already is),
``max_mailbox`` (the largest mailbox of any actor, sampled every 20 ms, and per phase),
``dropped_non_quote`` (dead letters and FeedActor rejections: messages nobody handled),
``conflated`` (quotes dropped for a newer one), ``merged_trades`` (trades merged in a mailbox
into a newer trade of their product: an order is then traced to the newest tick of the run),
``trade_volume_pushed`` / ``trade_volume_handled`` (the summed quantities of the trades pushed
and of those the FeedActor handled: equal when merging lost no volume). The ratio to the floor
is the default mode's (alternating slices): a floor measured before or after the phases would
not see the same load.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptoj.actors.feed import FeedActor  # noqa: E402
from cryptoj.config import parse_config  # noqa: E402
from cryptoj.contract import Context  # noqa: E402
from cryptoj.marketdata.recording import FeedRecorder  # noqa: E402
from cryptoj.marketdata.ticks import load_trade_ticks  # noqa: E402
from cryptoj.models.base import Message  # noqa: E402
from cryptoj.models.market import Trade  # noqa: E402
from cryptoj.models.orders import OrderAccepted, OrderRejected, SubmitOrder  # noqa: E402
from cryptoj.runtime.assemble import GROUP_COMMIT, assemble  # noqa: E402
from cryptoj.runtime.common import Registered  # noqa: E402
from cryptoj.runtime.threaded import ScaledClock, ThreadedRuntime  # noqa: E402
from cryptoj.venues.paper import PaperExchange  # noqa: E402

DATA = ROOT / "benchmarks/data/binance_BTCUSDT_trades_20240808T2354_20240809T0005.csv.gz"
HOPS = 4  # injector → feed → strategy → portfolio → execution
#: The journal's write calls on the measured path, and all of them (``--without``).
PATH_WRITES = ("record_txn", "record_order")
JOURNAL_WRITES = (*PATH_WRITES, "record_fill", "update_order", "record_equity", "record_event")
MEASURES = frozenset(
    {"conflation", "checkpointer", "freeze", "group-commit", "journal", "path-journal"}
)
#: Orders of 1 % of equity without fees: the strategy keeps trading for the whole run. (With 5 %
#: targets and a 0.1 % fee the round trips drew the equity down 2 % within about 5 s, the risk
#: level went to REDUCING and no order followed: every sample came from the first slice.)
CONFIG = {
    "paper": {"quote_currency": "USDT", "starting_cash": 1_000_000, "taker_fee": 0.0},
    "feed": {"tick_bar_size": 1},
    "strategy": {
        "fast_period": 2,
        "slow_period": 3,
        "band": 0.0,
        "entry_band": 0.0,
        "target_weight": 0.01,
    },
    # the machinery's latency is measured: no cost band, no turnover budget (as before them)
    "risk": {"min_position_size": 0.005, "max_daily_turnover": 100},
    "portfolio": {"cost_band_multiple": 0},
    "trace": {"enabled": False},
}


def _pace(rate: float, seconds: float, emit: Callable[[int], None]) -> int:
    """Call ``emit(i)`` ``rate`` times a second for ``seconds``; return how many were sent."""
    period = 1.0 / rate
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        emit(i)
    return n


class _TimedVenue:
    """Wraps the paper venue: records submit time minus the causing tick's push time."""

    def __init__(self, venue: PaperExchange, pushed: dict[str, int], samples: list[int]) -> None:
        self._venue = venue
        self.pushed = pushed  # correlation id of a tick → perf_counter_ns when pushed
        self.samples = samples
        self.pushed_at: list[int] | None = None  # --burst: the push time of each sample
        self.rt: ThreadedRuntime | None = None

    def submit(self, order: SubmitOrder, ts: int) -> OrderAccepted | OrderRejected:
        now = time.perf_counter_ns()
        corr = self.rt.current_correlation() if self.rt is not None else None
        pushed = self.pushed.get(corr) if corr is not None else None
        if pushed is not None:
            self.samples.append(now - pushed)
            if self.pushed_at is not None:
                self.pushed_at.append(pushed)
        return self._venue.submit(order, ts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)


class _Stamping:
    """A FeedActor's context that maps each market-update correlation id the feed opens to the
    push time of the tick being handled (``ActorChain.pushed``)."""

    def __init__(self, ctx: Context, chain: ActorChain) -> None:
        self._ctx = ctx
        self._chain = chain

    def new_id(self, prefix: str) -> str:
        new = self._ctx.new_id(prefix)
        corr = self._chain.rt.current_correlation()
        pushed = self._chain.pushed.get(corr) if corr is not None else None
        if prefix == "mkt" and pushed is not None:
            self._chain.pushed[new] = pushed
        return new

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


class _StampedFeed(FeedActor):
    """The FeedActor, handling every message through :class:`_Stamping`."""

    def __init__(self, chain: ActorChain, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._chain = chain

    def receive(self, msg: Message, ctx: Context) -> None:
        if type(msg) is Trade:
            self._chain.handled_volume += msg.quantity
        super().receive(msg, _Stamping(ctx, self._chain))


class ActorChain:
    """The real actor system in the threaded runtime, fed by pushed ticks."""

    def __init__(
        self, workdir: Path, without: frozenset[str] = frozenset(), record: bool = False
    ) -> None:
        cfg = parse_config(CONFIG)
        # --record: every pushed tick also goes to a feed recorder, as with feed.record: true
        self.recorder = FeedRecorder(workdir / "catalog").start() if record else None
        self.ticks = [t for b in load_trade_ticks(DATA) for t in b if isinstance(t, Trade)]
        system = assemble(
            cfg,
            [tuple(self.ticks[:1])],
            str(workdir / "journal.sqlite"),
            fresh_journal=True,
            stop_on_feed_end=False,
        )
        self.samples: list[int] = []
        self.pushed: dict[str, int] = {}
        self.pushed_volume = Decimal(0)
        self.handled_volume = Decimal(0)  # added up in the FeedActor's thread
        assert isinstance(system.venue, PaperExchange), "the bench trades on the paper venue"
        timed = _TimedVenue(system.venue, self.pushed, self.samples)
        registry = dict(system.registry)
        execution = registry["execution"]
        from cryptoj.actors.execution import ExecutionActor

        registry["execution"] = Registered(
            "execution",
            execution.parent,
            lambda: ExecutionActor(timed, system.journal_path),
        )
        feed = registry["feed"]
        registry["feed"] = Registered(
            "feed",
            feed.parent,
            lambda: _StampedFeed(
                self, system.source, quote_sink=system.venue.on_quote, tick_bar_size=1, poll=False
            ),
        )
        self.rt = ThreadedRuntime(
            seed=1,
            clock=ScaledClock(time.time_ns(), 1.0),
            registry=registry,
            conflate_quotes="conflation" not in without,
            journal_path=None if "checkpointer" in without else system.journal_path,
            group_commit=() if "group-commit" in without else GROUP_COMMIT,
        )
        timed.rt = self.rt
        self.timed = timed
        system.venue.set_listener(lambda e: self.rt.tell("execution", e, sender="venue"))
        self.rt.start_tree()
        if "freeze" in without:
            gc.unfreeze()
        self.sent = 0

    def push(self, i: int) -> None:
        n = self.sent + i
        t = self.ticks[n % len(self.ticks)]
        msg: Message = Trade(
            ts=time.time_ns(),
            product=t.product,
            price=t.price,
            quantity=t.quantity,
            taker_side=t.taker_side,
            trade_id=t.trade_id,
        )
        corr = f"tick-{n}"
        self.pushed[corr] = time.perf_counter_ns()
        self.pushed_volume += t.quantity
        self.rt.send("connection", "feed", msg, corr)
        if self.recorder is not None:
            self.recorder.offer(msg)

    def close(self) -> None:
        self.rt.quiesce(["feed", "strategy", "portfolio", "execution"])
        self.rt.shutdown()
        if self.recorder is not None:
            self.recorder.stop()


class QueueChain:
    """HOPS plain threads passing each item on through ``queue.Queue`` (``simple``:
    ``queue.SimpleQueue``, the kind the actors' mailboxes are built on): the floor."""

    def __init__(self, simple: bool = False) -> None:
        self.samples: list[int] = []
        kind = queue.SimpleQueue if simple else queue.Queue
        self.queues: list[queue.Queue[int | None] | queue.SimpleQueue[int | None]] = [
            kind() for _ in range(HOPS)
        ]
        self.threads = [
            threading.Thread(target=self._relay, args=(k,), daemon=True) for k in range(HOPS)
        ]
        for t in self.threads:
            t.start()

    def _relay(self, k: int) -> None:
        q_in = self.queues[k]
        q_out = self.queues[k + 1] if k + 1 < HOPS else None
        while True:
            item = q_in.get()
            if item is None:
                if q_out is not None:
                    q_out.put(None)
                return
            if q_out is None:
                self.samples.append(time.perf_counter_ns() - item)
            else:
                q_out.put(item)

    def push(self, i: int) -> None:
        self.queues[0].put(time.perf_counter_ns())

    def close(self) -> None:
        self.queues[0].put(None)
        for t in self.threads:
            t.join(timeout=5)


def _stub_journal_writes(names: tuple[str, ...]) -> None:
    """Make these journal writes no-ops in this process (a diagnostic, see the docstring)."""
    from cryptoj.journal import Journal

    for name in names:
        setattr(Journal, name, lambda self, *args, **kwargs: True)


def _pct(xs: list[int], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))] / 1000 if s else float("nan")


class _MailboxWatch(threading.Thread):
    """Samples the largest mailbox of any actor every 20 ms, per phase (``phase`` is set by
    the caller)."""

    def __init__(self, rt: ThreadedRuntime) -> None:
        super().__init__(daemon=True)
        self.rt = rt
        self.phase = "pre"
        self.largest: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            depth = max(self.rt.mailbox_depths().values(), default=0)
            if depth > self.largest.get(self.phase, 0):
                self.largest[self.phase] = depth


def _recovery_s(samples: list[tuple[int, int]], burst_end: int, bound_ns: float) -> float | None:
    """Seconds from ``burst_end`` until the median of every later 0.5 s window of pushes is at
    or below ``bound_ns`` (``samples``: push time, latency; None when it never is)."""
    windows: dict[int, list[int]] = {}
    for pushed, lat in samples:
        if pushed >= burst_end:
            windows.setdefault((pushed - burst_end) // 500_000_000, []).append(lat)
    if not windows:
        return None
    over = [k for k, lats in windows.items() if statistics.median(lats) > bound_ns]
    if not over:
        return 0.0
    last = max(over)
    return None if last == max(windows) else (last + 1) * 0.5


def run_burst(args: argparse.Namespace, without: frozenset[str]) -> dict[str, Any]:
    """``--burst``: steady, 5x for 10 s, steady again; latency per phase and the recovery."""
    with tempfile.TemporaryDirectory() as tmp:
        actors = ActorChain(Path(tmp), without, record=args.record)
        actors.sent += _pace(args.rate, 2.0, actors.push)  # warm-up, discarded
        actors.rt.quiesce(["feed", "strategy", "portfolio", "execution"])
        actors.samples.clear()
        pushed_at: list[int] = []
        actors.timed.pushed_at = pushed_at
        stats = actors.rt.stats
        base = (stats.conflated, stats.merged_trades, stats.dead_letters, actors.pushed_volume)
        rejected0 = _feed_rejected(actors)
        handled0 = actors.handled_volume
        watch = _MailboxWatch(actors.rt)
        watch.start()
        bounds = {}
        for phase, rate, seconds in (
            ("pre", args.rate, args.phase_seconds),
            ("burst", args.rate * args.burst_x, args.burst_seconds),
            ("post", args.rate, args.phase_seconds),
        ):
            watch.phase = phase
            start = time.perf_counter_ns()
            actors.sent += _pace(rate, seconds, actors.push)
            bounds[phase] = (start, time.perf_counter_ns())
        actors.rt.quiesce(["feed", "strategy", "portfolio", "execution"])
        watch.stop.set()
        watch.join()
        out_volume = actors.handled_volume - handled0
        rejected = _feed_rejected(actors) - rejected0
        actors.close()
    samples = list(zip(pushed_at, actors.samples, strict=True))
    by_phase = {
        phase: [lat for t, lat in samples if lo <= t < hi] for phase, (lo, hi) in bounds.items()
    }
    pre_p99 = _pct(by_phase["pre"], 0.99)
    burst_p99 = _pct(by_phase["burst"], 0.99)
    out: dict[str, Any] = {"rate": args.rate, "burst_rate": args.rate * args.burst_x}
    for phase, lats in by_phase.items():
        out[f"{phase}_samples"] = len(lats)
        out[f"{phase}_p50_us"] = round(_pct(lats, 0.50), 1)
        out[f"{phase}_p99_us"] = round(_pct(lats, 0.99), 1)
    out.update(
        {
            "burst_p99_ratio": round(burst_p99 / pre_p99, 2),
            "recovery_s": _recovery_s(samples, bounds["burst"][1], pre_p99 * 1000),
            "max_mailbox": max(watch.largest.values(), default=0),
            "max_mailbox_by_phase": watch.largest,
            "dropped_non_quote": stats.dead_letters - base[2] + rejected,
            "conflated": stats.conflated - base[0],
            "merged_trades": stats.merged_trades - base[1],
            "trade_volume_pushed": str(actors.pushed_volume - base[3]),
            "trade_volume_handled": str(out_volume),
            "without": sorted(without),
            "switch_interval_us": round(sys.getswitchinterval() * 1e6),
            "load_avg": round(os.getloadavg()[0], 2),
        }
    )
    return out


def _feed_rejected(actors: ActorChain) -> int:
    feed = actors.rt.behaviour("feed")
    return int(getattr(feed, "rejected", 0))


def main(argv: list[str] | None = None) -> int:
    """Run both chains in alternating slices and print the percentiles."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rate", type=float, default=1000.0, help="ticks per second (1000)")
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds per side (60)")
    ap.add_argument("--slices", type=int, default=6, help="alternations (6)")
    ap.add_argument(
        "--without",
        default="",
        help="comma-separated measures to switch off: conflation, checkpointer, freeze, "
        "group-commit; "
        "diagnostics: journal (every journal write a no-op), path-journal (the two on the path)",
    )
    ap.add_argument(
        "--record",
        action="store_true",
        help="record every pushed tick with the feed recorder (as feed.record: true does)",
    )
    ap.add_argument("--burst", action="store_true", help="steady, a burst, steady again")
    ap.add_argument("--burst-x", type=float, default=5.0, help="--burst: rate multiple (5)")
    ap.add_argument("--burst-seconds", type=float, default=10.0, help="--burst: its length (10)")
    ap.add_argument(
        "--phase-seconds", type=float, default=10.0, help="--burst: before and after it (10)"
    )
    ap.add_argument(
        "--switch-interval-us",
        type=float,
        default=sys.getswitchinterval() * 1e6,
        help="the interpreter's GIL switch interval for the whole process, actors and floor "
        "alike (sys.setswitchinterval; default: Python's, %(default)s)",
    )
    ap.add_argument(
        "--floor",
        choices=("queue", "simplequeue"),
        default="queue",
        help="the floor's handoffs: queue.Queue (the default, as the issue measured it) or "
        "queue.SimpleQueue (what the actors' mailboxes are built on)",
    )
    ap.add_argument(
        "--compare-without",
        default="",
        help="a second actor chain with these measures also switched off, its slices "
        "alternating with the first's in the same run (each with its own floor slices)",
    )
    ap.add_argument(
        "--compare-switch-interval-us",
        type=float,
        default=None,
        help="a second actor chain run (with its floor) under this GIL switch interval",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    without = frozenset(w for w in args.without.split(",") if w)
    unknown = without - MEASURES
    if unknown:
        ap.error(f"--without: unknown {', '.join(sorted(unknown))}")
    if "journal" in without:
        _stub_journal_writes(JOURNAL_WRITES)
    elif "path-journal" in without:
        _stub_journal_writes(PATH_WRITES)
    sys.setswitchinterval(args.switch_interval_us / 1e6)
    if args.burst:
        _print(run_burst(args, without), args.json)
        return 0
    sides = [_Side(without, args.switch_interval_us)]
    if args.compare_without or args.compare_switch_interval_us is not None:
        other = frozenset(w for w in args.compare_without.split(",") if w)
        if other - MEASURES or other & {"journal", "path-journal"}:
            ap.error(f"--compare-without: not a measure of its own: {args.compare_without}")
        si = args.compare_switch_interval_us
        sides.append(_Side(without | other, args.switch_interval_us if si is None else si))
    out = run_steady(args, sides)
    _print(out, args.json)
    return 0


class _Side:
    """One configuration of the steady run: its actor chain, its floor, what it measured."""

    def __init__(self, without: frozenset[str], switch_interval_us: float) -> None:
        self.without = without
        self.switch_interval_s = switch_interval_us / 1e6
        self.cpu = 0.0
        self.pushed = 0
        self.conflated = 0

    def summary(self, actors: ActorChain, floor: QueueChain) -> dict[str, Any]:
        """The printed figures of this side."""
        a, f = actors.samples, floor.samples
        return {
            "samples": len(a),
            "floor_samples": len(f),
            "p50_us": round(_pct(a, 0.50), 1),
            "p99_us": round(_pct(a, 0.99), 1),
            "max_us": round(max(a) / 1000, 1) if a else None,
            "mean_us": round(statistics.fmean(a) / 1000, 1) if a else None,
            "floor_p50_us": round(_pct(f, 0.50), 1),
            "floor_p99_us": round(_pct(f, 0.99), 1),
            "floor_max_us": round(max(f) / 1000, 1) if f else None,
            "ratio_p99": round(_pct(a, 0.99) / _pct(f, 0.99), 2) if a and f else None,
            "cpu_us_per_tick": round(self.cpu / self.pushed * 1e6, 1) if self.pushed else None,
            "conflated": self.conflated,
            "without": sorted(self.without),
            "record": actors.recorder.stats() if actors.recorder is not None else None,
            "switch_interval_us": round(self.switch_interval_s * 1e6),
        }


def run_steady(args: argparse.Namespace, sides: list[_Side]) -> dict[str, Any]:
    """Each side's actor chain and its floor in alternating slices (with ``--compare-*`` two
    sides, their slices alternating too: A, floor A, B, floor B, ...)."""
    floors = [QueueChain(simple=args.floor == "simplequeue") for _ in sides]
    per_slice = args.seconds / args.slices
    with tempfile.TemporaryDirectory() as tmp:
        chains = []
        for k, side in enumerate(sides):
            sys.setswitchinterval(side.switch_interval_s)
            actors = ActorChain(Path(tmp) / str(k), side.without, record=args.record)
            actors.sent += _pace(args.rate, min(2.0, per_slice), actors.push)  # warm-up
            actors.rt.quiesce(["feed", "strategy", "portfolio", "execution"])
            actors.samples.clear()
            side.conflated = -actors.rt.stats.conflated
            chains.append(actors)
        for _ in range(args.slices):
            for side, actors, floor in zip(sides, chains, floors, strict=True):
                sys.setswitchinterval(side.switch_interval_s)  # for its floor too
                c0 = time.process_time()
                n = _pace(args.rate, per_slice, actors.push)
                actors.rt.quiesce(["feed", "strategy", "portfolio", "execution"])
                side.cpu += time.process_time() - c0
                actors.sent += n
                side.pushed += n
                _pace(args.rate, per_slice, floor.push)
        for side, actors in zip(sides, chains, strict=True):
            side.conflated += actors.rt.stats.conflated
            actors.close()
    for floor in floors:
        floor.close()
    out: dict[str, Any] = {"rate": args.rate, "seconds_per_side": args.seconds}
    out |= sides[0].summary(chains[0], floors[0])
    if len(sides) > 1:
        b = sides[1].summary(chains[1], floors[1])
        out["compare"] = b
        if out["ratio_p99"] and b["ratio_p99"]:
            out["compare_ratio_of_ratios"] = round(b["ratio_p99"] / out["ratio_p99"], 2)
    out["floor"] = args.floor
    out["load_avg"] = round(os.getloadavg()[0], 2)
    return out


def _print(out: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:22} {value}")


if __name__ == "__main__":
    raise SystemExit(main())
