"""Where the time goes on the tick → order path of ``tools/bench_latency.py``.

    python tools/latency_profile.py --seconds 15          # one run of the actor chain, 1,000/s

Runs the benchmark's actor chain (same data, config and runtime) once, instrumented from the
outside: every delivery's mailbox wait and handling time, each actor thread's CPU time, every
journal call's duration, the garbage collector's pauses. Each order is traced back through its
correlation id to the tick that caused it and split into hops:

* ``target``: tick → FeedActor → bar → StrategyActor → target → PortfolioActor → order →
  ExecutionActor → venue (four handoffs);
* ``quote``: tick → FeedActor → quote → PortfolioActor → order → ExecutionActor → venue (three
  handoffs: the portfolio sends one order per product at a time, so a new target usually waits
  for the previous order to close and the next quote sends it).

``wait`` is the time in the mailbox, ``work`` the time from the start of the handler to the
send of the next message. Prints percentiles in µs. A measuring tool, not a benchmark: the
instrumentation itself costs a few µs per message.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import bench_latency as bench  # noqa: E402

from cryptoj import journal as journal_module  # noqa: E402
from cryptoj.runtime import threaded  # noqa: E402

JOURNAL_CALLS = (
    "record_txn",
    "record_fill",
    "record_intent",
    "record_order",
    "update_order",
    "record_equity",
    "close_intent",
    "has_fill",
    "order",
)
WRITES = frozenset(JOURNAL_CALLS) - {"has_fill", "order"}
CHAIN = ["feed", "strategy", "portfolio", "execution"]


class Recorder:
    """Collects deliveries, journal call durations, GC pauses and venue submit times."""

    def __init__(self) -> None:
        # (actor, type, corr, enqueued, started, ended, client order id, msg id, cause)
        self.deliveries: list[tuple[Any, ...]] = []
        self.journal: dict[str, list[int]] = {}
        self.gc: dict[int, list[int]] = {0: [], 1: [], 2: []}
        self.submitted: dict[str, int] = {}
        self.threads: dict[str, int] = {}
        self._gc_start = 0

    def clear(self) -> None:
        self.deliveries.clear()
        self.journal.clear()
        self.submitted.clear()
        for v in self.gc.values():
            v.clear()

    def install(self) -> None:
        """Wrap the runtime's deliver, the journal's calls and the venue's submit."""
        deliver = threaded.ThreadedRuntime.deliver

        def timed_deliver(rt: Any, host: Any, env: Any) -> None:
            t0 = time.perf_counter_ns()
            deliver(rt, host, env)
            t1 = time.perf_counter_ns()
            self.threads[host.cell_name] = threading.get_ident()
            m = env.msg
            coid = getattr(m, "client_order_id", None)
            name = host.cell_name
            row = (name, type(m).__name__, env.corr, env.enq_ns, t0, t1, coid, env.msg_id)
            self.deliveries.append((*row, env.cause))

        threaded.ThreadedRuntime.deliver = timed_deliver  # type: ignore[method-assign,assignment]
        for name in JOURNAL_CALLS:
            setattr(journal_module.Journal, name, self._timed(name))
        submit = bench._TimedVenue.submit

        def timed_submit(venue: Any, order: Any, ts: int) -> Any:
            self.submitted[order.client_order_id] = time.perf_counter_ns()
            return submit(venue, order, ts)

        bench._TimedVenue.submit = timed_submit  # type: ignore[method-assign,assignment]
        gc.callbacks.append(self._gc)

    def _timed(self, name: str) -> Callable[..., Any]:
        fn = getattr(journal_module.Journal, name)
        calls = self.journal

        def timed(journal: Any, *a: Any, **k: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return fn(journal, *a, **k)
            finally:
                calls.setdefault(name, []).append(time.perf_counter_ns() - t0)

        return timed

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter_ns()
        else:
            self.gc[info["generation"]].append(time.perf_counter_ns() - self._gc_start)

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds of each actor thread so far."""
        return {
            n: time.clock_gettime(time.pthread_getcpuclockid(i)) for n, i in self.threads.items()
        }


def chains(rec: Recorder) -> dict[str, list[dict[str, int]]]:
    """Each order's hops, keyed by how it was caused (see the module docstring)."""
    by_corr: dict[str, list[tuple[Any, ...]]] = {}
    by_id = {}
    submits = {}
    for d in rec.deliveries:
        by_corr.setdefault(d[2], []).append(d)
        by_id[d[7]] = d
        if d[1] == "SubmitOrder":
            submits[d[6]] = d
    out: dict[str, list[dict[str, int]]] = {"target": [], "quote": []}
    for coid, venue_ns in rec.submitted.items():
        sub = submits.get(coid)
        if sub is None:
            continue
        group = by_corr[sub[2]]
        ticks = [by_id[d[8]] for d in group if d[8] in by_id and by_id[d[8]][0] == "feed"]
        if not ticks:
            continue
        tick = ticks[0]
        cause = by_id.get(sub[8])
        if cause is None or cause[0] != "portfolio":
            continue
        hops: dict[str, int] = {"total": venue_ns - tick[3], "feed_wait": tick[4] - tick[3]}
        if cause[1] == "TargetWeight":
            bar = by_id.get(cause[8])
            if bar is None or bar[0] != "strategy":
                continue
            hops |= {
                "feed_work": bar[3] - tick[4],
                "strategy_wait": bar[4] - bar[3],
                "strategy_work": cause[3] - bar[4],
            }
            kind = "target"
        else:
            hops["feed_work"] = cause[3] - tick[4]
            kind = "quote"
        hops |= {
            "portfolio_wait": cause[4] - cause[3],
            "portfolio_work": sub[3] - cause[4],
            "execution_wait": sub[4] - sub[3],
            "execution_work": venue_ns - sub[4],
        }
        out[kind].append(hops)
    return out


def pct(xs: list[int], p: float) -> float:
    """The ``p`` quantile in µs."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))] / 1000 if s else float("nan")


def main(argv: list[str] | None = None) -> int:
    """Run once and print the breakdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds (15)")
    ap.add_argument("--rate", type=float, default=1000.0, help="ticks per second (1000)")
    ap.add_argument(
        "--switch-interval-us",
        type=float,
        default=None,
        help="the GIL switch interval (sys.setswitchinterval; Python's default is 5000)",
    )
    args = ap.parse_args(argv)
    if args.switch_interval_us is not None:
        sys.setswitchinterval(args.switch_interval_us / 1e6)
    rec = Recorder()
    rec.install()
    with tempfile.TemporaryDirectory() as tmp:
        chain = bench.ActorChain(Path(tmp))
        try:
            bench._pace(args.rate, 2.0, chain.push)  # warm-up
            chain.rt.quiesce(CHAIN)
            rec.clear()
            chain.samples.clear()
            cpu0, p0, w0 = rec.thread_cpu(), time.process_time(), time.perf_counter()
            chain.sent += bench._pace(args.rate, args.seconds, chain.push)
            chain.rt.quiesce(CHAIN)
            cpu1, p1, w1 = rec.thread_cpu(), time.process_time(), time.perf_counter()
            conflated = getattr(chain.rt.stats, "conflated", 0)
            portfolio = chain.rt.refs["portfolio"][1]
            batches = (portfolio.batches, portfolio.batched_messages)
        finally:
            chain.close()
    ticks = int(args.rate * args.seconds)
    print(
        f"process CPU {p1 - p0:.2f} s in {w1 - w0:.2f} s ({(p1 - p0) / (w1 - w0):.0%}), "
        f"{(p1 - p0) / ticks * 1e6:.0f} µs per tick; quotes conflated {conflated}"
    )
    if batches[0]:
        print(
            f"portfolio group commit: {batches[0]} batches, "
            f"{batches[1] / batches[0]:.2f} messages per batch (whole run)"
        )
    print("actor thread CPU, ms:", {n: round((cpu1[n] - cpu0.get(n, 0)) * 1000) for n in cpu1})
    s = chain.samples
    print(f"orders {len(s)}: bench latency p50 {pct(s, 0.5):.0f} µs, p99 {pct(s, 0.99):.0f} µs")
    for kind, hops in chains(rec).items():
        print(f"\n{kind}-triggered orders: {len(hops)}   (µs: p50 / p90 / p99)")
        for key in hops[0] if hops else ():
            xs = [h[key] for h in hops]
            print(f"  {key:16} {pct(xs, 0.5):8.0f} {pct(xs, 0.9):8.0f} {pct(xs, 0.99):8.0f}")
    print("\ndeliveries (µs): wait p50/p99, handling p50/p99, total handling ms")
    per: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for d in rec.deliveries:
        per.setdefault((d[0], d[1]), []).append((d[4] - d[3], d[5] - d[4]))
    for (actor, kind), v in sorted(per.items(), key=lambda kv: -sum(x[1] for x in kv[1])):
        w, h = [x[0] for x in v], [x[1] for x in v]
        print(
            f"  {actor:10} {kind:18} n={len(v):6} wait {pct(w, 0.5):6.0f}/{pct(w, 0.99):6.0f}"
            f"  handling {pct(h, 0.5):6.0f}/{pct(h, 0.99):6.0f}  {sum(h) / 1e6:7.0f}"
        )
    print("\njournal calls (µs): n, p50/p99/max, total ms")
    for name, took in sorted(rec.journal.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"  {name:14} n={len(took):6} {pct(took, 0.5):6.0f}/{pct(took, 0.99):6.0f}/"
            f"{max(took) / 1000:7.0f}  {sum(took) / 1e6:6.0f}"
        )
    writes = [x for k, v in rec.journal.items() if k in WRITES for x in v]
    print(
        f"  writes over 1 ms: {sum(x > 1e6 for x in writes)} of {len(writes)}, "
        f"over 5 ms: {sum(x > 5e6 for x in writes)}"
    )
    print(
        "GC pauses (count, total ms, max ms):",
        {
            g: (len(v), round(sum(v) / 1e6, 1), round(max(v, default=0) / 1e6, 1))
            for g, v in rec.gc.items()
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
