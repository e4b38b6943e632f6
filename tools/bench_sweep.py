"""Sweep throughput: trials per minute on 1 and N workers, process pool and Ray.

    python tools/bench_sweep.py [--trials 8] [--jobs N] [--no-ray]
        [--data coinbase-4h-2016-2025 --from 2020-01-01 --to 2020-06-30]

Every trial is a real replay of the window with different strategy periods (the same set of
trials on every backend). Worker start-up is measured apart: each backend first runs one trial
per worker (its start, the data shipped once), then the timed trials. Prints trials per minute,
the speed-up of N workers over one and its efficiency (speed-up ÷ N), and Ray's overhead per
trial against the pool. On a machine shared with other work the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptoj.research.backends import Backend, PoolBackend, RayBackend, default_jobs
from cryptoj.research.trial import Payload, Task, load_payload_data


def _tasks(n: int, start: dt.date, end: dt.date, offset: int = 0) -> list[Task]:
    return [
        Task(
            0,
            offset + i,
            "train",
            {"strategy.fast_period": 4 + 2 * ((offset + i) % 8), "strategy.slow_period": 60},
            start,
            end,
        )
        for i in range(n)
    ]


def _warm(backend: Backend, start: dt.date, end: dt.date) -> None:
    """One trial per worker: the workers start and get the data."""
    warm = backend.run(_tasks(backend.workers, start, end, offset=1000))
    assert all(r.ok for r in warm), [r.error for r in warm if not r.ok]


def _measure(backend: Backend, n: int, start: dt.date, end: dt.date) -> tuple[float, float]:
    """(seconds for n trials, trials per minute) on started workers."""
    t0 = time.perf_counter()
    results = backend.run(_tasks(n, start, end))
    elapsed = time.perf_counter() - t0
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return elapsed, n / elapsed * 60


def main() -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", default="coinbase-4h-2016-2025")
    ap.add_argument("--from", dest="start", default="2020-01-01")
    ap.add_argument("--to", dest="end", default="2020-06-30")
    ap.add_argument("--trials", type=int, default=8, help="timed trials per run")
    ap.add_argument("--jobs", type=int, default=default_jobs(), help="N (default: all cores)")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    args = ap.parse_args()
    start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    before, batches = load_payload_data(args.data, None, start, end)
    payload = Payload(args.data, batches, before, {}, 7, 86400.0)
    print(f"{args.trials} trials of {args.data} {start}..{end}; load average {os.getloadavg()}")
    rates: dict[tuple[str, int], tuple[float, float]] = {}
    backends = [("pool", 1), ("pool", args.jobs)]
    if not args.no_ray:
        backends += [("ray", 1), ("ray", args.jobs)]
    for kind, jobs in dict.fromkeys(backends):
        t0 = time.perf_counter()
        backend: Backend = (
            PoolBackend(payload, jobs)
            if kind == "pool"
            else RayBackend(payload, "local", jobs, num_cpus=args.jobs)
        )
        try:
            _warm(backend, start, end)
            setup = time.perf_counter() - t0
            elapsed, rate = _measure(backend, args.trials, start, end)
        finally:
            backend.close()
        rates[(kind, jobs)] = (elapsed, rate)
        print(
            f"{kind:4} {jobs} worker(s): {rate:7.1f} trials/min ({elapsed:.2f} s for "
            f"{args.trials}; start-up and one warm-up trial per worker {setup:.2f} s)"
        )
    for kind in ("pool", "ray"):
        if (kind, 1) in rates and (kind, args.jobs) in rates and args.jobs > 1:
            speedup = rates[(kind, args.jobs)][1] / rates[(kind, 1)][1]
            print(
                f"{kind}: {args.jobs} workers = {speedup:.2f}× one worker "
                f"(efficiency {speedup / args.jobs:.0%})"
            )
    if ("ray", args.jobs) in rates:
        extra = (rates[("ray", args.jobs)][0] - rates[("pool", args.jobs)][0]) / args.trials
        print(
            f"ray overhead per trial against the pool ({args.jobs} workers): {extra * 1000:+.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
