#!/usr/bin/env python3
"""Per-bar cost of the RiskActor's correlation work, for 3, 30, 100 and 200 products.

Drives a real :class:`cryptoj.actors.risk.RiskActor` (journal in a temporary directory, a
synchronous context) with seeded, correlated one-minute random walks delivered two ways:

* ``batched``: every product's bar of a minute at the same timestamp (a replay);
* ``live``: each bar stamped at its own time within the minute and handled one by one (the
  live pattern).

Prints, per product count and pattern, the mean CPU time of this process per bar handled (µs,
the best of ``--repeat`` runs; CPU rather than wall time, since the machines are shared) and
the average pairwise correlation the actor ends with (a sanity figure: the walks share a
factor, so it should be clearly above 0 in both patterns). Numbers only; nothing is asserted.

``--baseline-rev REV``: the same measurement of an older commit beside this tree, in one run
(the baseline is checked out into a temporary git worktree; for each product count the two
trees run alternately, each in its own subprocess with its own copy of this tool); prints
µs per bar before and after and ``ratio`` = before ÷ after, per product count and pattern.

Usage (from the repository root)::

    python tools/bench_correlation.py              # table
    python tools/bench_correlation.py --json       # one JSON object
    python tools/bench_correlation.py --minutes 200 --products 2,10,30
    python tools/bench_correlation.py --baseline-rev fa575ac --minutes 60   # before/after
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import make_worktree, remove_worktree

from cryptoj.actors.risk import RiskActor
from cryptoj.config import RiskConfig
from cryptoj.journal import Journal
from cryptoj.models.base import Message
from cryptoj.models.market import Bar

ROOT = Path(__file__).resolve().parents[1]

MIN = 60 * 10**9
T0 = 1_522_800_000 * 10**9


@dataclass
class _Ctx:
    """A synchronous context: clock set by the driver, sends counted and dropped."""

    time_ns: int = T0
    sends: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    _n: int = 0

    def now(self) -> int:
        return self.time_ns

    def send(self, to: str, msg: Message, *, correlation_id: str | None = None) -> None:
        self.sends += 1

    def schedule(self, delay_ns: int, msg: Message) -> None:
        pass

    def new_id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n}"

    def stop_system(self, exit_code: int, reason: str) -> None:
        pass

    @property
    def name(self) -> str:
        return "risk"


def bars(n_products: int, minutes: int, live: bool, seed: int = 7) -> list[Bar]:
    """Correlated one-minute bars of ``n_products``; ``live``: jittered own timestamps."""
    rng, jitter_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    common = rng.normal(0, 0.002, minutes)
    out = []
    for k in range(n_products):
        r = 0.7 * common + 0.7 * rng.normal(0, 0.002, minutes)
        closes = 100.0 * (k + 1) * np.exp(np.cumsum(r))
        jitter = jitter_rng.integers(0, MIN, minutes) if live else np.zeros(minutes, dtype=int)
        for i, c in enumerate(closes):
            px = Decimal(f"{c:.6f}")
            out.append(
                Bar(
                    ts=T0 + i * MIN + int(jitter[i]),
                    product=f"P{k:02d}-USD",
                    open=px,
                    high=px,
                    low=px,
                    close=px,
                    volume=Decimal(1),
                    interval_s=60,
                )
            )
    return sorted(out, key=lambda b: b.ts)


def measure(n_products: int, minutes: int, live: bool, repeat: int = 3) -> dict[str, Any]:
    """Mean µs per bar handled by a fresh RiskActor (the best of ``repeat`` runs: the machine
    is shared), and its final average correlation."""
    runs = [_run_once(bars(n_products, minutes, live)) for _ in range(max(1, repeat))]
    best = min(runs, key=lambda r: r["us_per_bar"])
    return {"products": n_products, "pattern": "live" if live else "batched", **best}


def _run_once(data: list[Bar]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "journal.sqlite")
        j = Journal(path)
        j.set_meta("starting_cash", "100000")
        j.close()
        actor, ctx = RiskActor(RiskConfig(volatility_halflife_bars=30), path), _Ctx()
        actor.on_start(ctx)
        t0 = time.process_time_ns()
        for b in data:
            ctx.time_ns = b.ts
            actor.receive(b, ctx)
        elapsed = time.process_time_ns() - t0
        actor.on_stop(ctx)
    return {
        "bars": len(data),
        "us_per_bar": round(elapsed / len(data) / 1000, 2),
        "avg_correlation": round(actor.corr.average_pairwise(), 4),
        "publishes": ctx.sends,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=300)
    ap.add_argument("--products", default="3,30,100,200")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is shown")
    ap.add_argument("--baseline-rev", help="also measure this git revision (before/after)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.baseline_rev:
        return compare(args.baseline_rev, args.products, args.minutes, args.repeat, args.json)
    rows = [
        measure(int(n), args.minutes, live, args.repeat)
        for n in args.products.split(",")
        for live in (False, True)
    ]
    if args.json:
        print(json.dumps({"minutes": args.minutes, "rows": rows}))
        return 0
    head = ("products", "pattern", "bars", "us/bar", "avg corr", "publishes")
    print("{:>8} {:>8} {:>7} {:>8} {:>9} {:>9}".format(*head))
    for r in rows:
        print(
            f"{r['products']:>8} {r['pattern']:>8} {r['bars']:>7} {r['us_per_bar']:>8.2f} "
            f"{r['avg_correlation']:>9.4f} {r['publishes']:>9}"
        )
    return 0


def run_tree(tree: Path, products: str, minutes: int, repeat: int) -> list[dict[str, Any]]:
    """This tool's rows as measured by the copy of it in ``tree`` (its own code)."""
    cmd = [sys.executable, str(tree / "tools/bench_correlation.py"), "--json"]
    cmd += ["--products", products, "--minutes", str(minutes), "--repeat", str(repeat)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_correlation in {tree} failed: {done.stderr.strip()[-2000:]}")
    rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])["rows"]
    return rows


def compare(rev: str, products: str, minutes: int, repeat: int, as_json: bool) -> int:
    """Before (``rev``) and after (this tree), alternating per product count."""
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = make_worktree(rev, Path(tmp) / "baseline")
        try:
            for k, n in enumerate(products.split(",")):
                sides = [base, ROOT] if k % 2 == 0 else [ROOT, base]
                got = {tree: run_tree(tree, n, minutes, repeat) for tree in sides}
                for before, after in zip(got[base], got[ROOT], strict=True):
                    out.append(
                        {
                            "products": after["products"],
                            "pattern": after["pattern"],
                            "bars": after["bars"],
                            "us_per_bar_before": before["us_per_bar"],
                            "us_per_bar_after": after["us_per_bar"],
                            "ratio": round(before["us_per_bar"] / after["us_per_bar"], 2),
                            "same_avg_correlation": before["avg_correlation"]
                            == after["avg_correlation"],
                            "publishes": [before["publishes"], after["publishes"]],
                        }
                    )
        finally:
            remove_worktree(base)
    if as_json:
        print(json.dumps({"baseline_rev": rev, "minutes": minutes, "rows": out}))
        return 0
    print(f"baseline {rev}; µs per bar (CPU), best of {repeat}; load {os.getloadavg()[0]:.2f}")
    head = ("products", "pattern", "bars", "before", "after", "ratio", "same corr")
    print("{:>8} {:>8} {:>7} {:>9} {:>9} {:>6} {:>9}".format(*head))
    for r in out:
        print(
            f"{r['products']:>8} {r['pattern']:>8} {r['bars']:>7} {r['us_per_bar_before']:>9.2f} "
            f"{r['us_per_bar_after']:>9.2f} {r['ratio']:>6.2f} {r['same_avg_correlation']!s:>9}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
