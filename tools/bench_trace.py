"""Cost of tracing: replay the bundled data with tracing off and on, alternately, in one process.

    python tools/bench_trace.py [--pairs 3] [--data coinbase-1m-2018-04] [--seed 7] [--cpu] [--json]

Runs ``off, on, off, on, …`` (``--pairs`` of each) on the deterministic runtime after one
untimed warm-up run, prints events/s of every run and the median ratio on/off (the ratio of
each adjacent off/on pair, so slow drifts of the machine cancel out). ``--json`` prints one
object with ``events_per_second_off``, ``events_per_second_on`` (medians) and ``ratio``.
``--cpu`` times the runs with process CPU time instead of wall time (steadier on a busy box).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cryptoj.replay
from cryptoj.config import Config
from cryptoj.replay import ReplayOptions, run_replay


@contextlib.contextmanager
def cpu_clock() -> Iterator[None]:
    """Make ``run_replay`` time itself (its ``wall_seconds``) with process CPU time."""
    saved = cryptoj.replay.time
    cryptoj.replay.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[assignment]
    try:
        yield
    finally:
        cryptoj.replay.time = saved


def one_run(cfg: Config, data: str, seed: int, workdir: Path, traced: bool) -> dict[str, Any]:
    """One deterministic replay; returns its summary (``events``, ``wall_seconds``, …)."""
    opts = ReplayOptions(
        data=data,
        journal=str(workdir / "journal.sqlite"),
        trace=str(workdir / "trace.jsonl") if traced else None,
        runtime="deterministic",
        seed=seed,
    )
    summary, _ = run_replay(cfg, opts)
    return summary


def bench(
    data: str, seed: int, pairs: int, warmup: bool = True, cpu: bool = False
) -> dict[str, Any]:
    """Run the alternating benchmark; returns the JSON-ready result."""
    cfg = Config()
    runs: list[dict[str, Any]] = []
    clock = cpu_clock() if cpu else contextlib.nullcontext()
    with clock, tempfile.TemporaryDirectory(prefix="bench_trace-") as tmp:
        workdir = Path(tmp)
        if warmup:
            one_run(cfg, data, seed, workdir, traced=False)
        for _ in range(pairs):
            for traced in (False, True):
                s = one_run(cfg, data, seed, workdir, traced)
                eps = s["events"] / s["wall_seconds"] if s["wall_seconds"] else float("nan")
                runs.append(
                    {
                        "traced": traced,
                        "events": s["events"],
                        "wall_seconds": s["wall_seconds"],
                        "events_per_second": round(eps, 1),
                        "trace_records": s["trace_records"],
                    }
                )
    off = [r["events_per_second"] for r in runs if not r["traced"]]
    on = [r["events_per_second"] for r in runs if r["traced"]]
    ratios = [b / a for a, b in zip(off, on, strict=True) if a]
    return {
        "data": data,
        "seed": seed,
        "pairs": pairs,
        "clock": "cpu" if cpu else "wall",
        "events_per_second_off": round(statistics.median(off), 1),
        "events_per_second_on": round(statistics.median(on), 1),
        "ratio": round(statistics.median(ratios), 3),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--pairs", type=int, default=3, help="off/on pairs to run (default 3)")
    p.add_argument("--data", default="coinbase-1m-2018-04", help="bundled data set or CSV")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed first run")
    p.add_argument("--cpu", action="store_true", help="time with process CPU time, not wall")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    result = bench(
        args.data, args.seed, max(1, args.pairs), warmup=not args.no_warmup, cpu=args.cpu
    )
    if args.json:
        print(json.dumps(result))
        return 0
    for i, r in enumerate(result["runs"], 1):
        extra = f", {r['trace_records']} trace records" if r["traced"] else ""
        print(
            f"run {i:>2} tracing {'on ' if r['traced'] else 'off'}: {r['events']} events in "
            f"{r['wall_seconds']:.3f}s = {r['events_per_second']:,.0f} events/s{extra}"
        )
    print(
        f"{result['clock']} clock; median events/s: off {result['events_per_second_off']:,.0f}, "
        f"on {result['events_per_second_on']:,.0f}; median ratio on/off {result['ratio']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
