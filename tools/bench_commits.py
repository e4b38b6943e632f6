"""Replay speed of this checkout against another commit, in one run, with identical summaries.

    python tools/bench_commits.py --base main                      # per-timestamp tick replay
    python tools/bench_commits.py --base main --workload 4h        # the whole bundled 4h range
    python tools/bench_commits.py --base main --workload 1m --json
    python tools/bench_commits.py --base main --head HEAD         # a commit against a commit

The base commit (and ``--head`` when given; by default the head side is this checkout as it
is, uncommitted changes included) is checked out once into a temporary ``git worktree``
(removed at the end); each round runs ``python -m cryptoj replay --json --trace ''`` in a
fresh interpreter for the base, then for the head (rounds alternate, so load on the shared
machine hits both alike).
Each side's figure is the replay loop's ``wall_seconds`` (loading and set-up excluded); the
printed ``speedup`` is base seconds ÷ head seconds (medians). ``speedup_cpu`` is the same on the
CPU time of the replay loop (``DeterministicRuntime.run``, measured with
``time.process_time``): steadier than wall time when the shared machine is loaded. Workloads:

* ``ticks``: ``tools/bench_replay.py``'s Binance trades and config with ``feed.window_ms: 0``
  (one step per timestamp, every tick through the matching model);
* ``4h``: ``--data coinbase-4h-2016-2025``; ``1m``: the default ``coinbase-1m-2018-04``;
* ``bars``: ``tools/bench_replay.py --bars``'s one-minute BTC-USD bars and config
  (``BARS_CONFIG``, the file written by ``write_bars``), the bar benchmark against nautilus.

Both sides must produce the same summary apart from its timing fields (``wall_seconds``,
``events_per_second``): ``summaries_identical`` says whether they did (exit 1 if not), and the
first differing fields are printed. A ``--base`` or ``--head`` that names no commit is one line
on stderr naming it, exit 2, before anything is checked out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from bench_replay import (  # noqa: E402
    BARS_CONFIG,
    BARS_PRODUCT,
    BARS_SOURCE,
    BENCH_CONFIG,
    DATA,
    write_bars,
)
from common import UnknownRevision, checkouts, has_uncommitted_changes, short_hash  # noqa: E402

TIMING = {"wall_seconds", "events_per_second", "cpu_seconds"}
# Run in the checkout measured: the CLI's replay, with the CPU time of the runtime's loop
# added up and printed after the summary.
DRIVER = """
import json, sys, time
import cryptoj.runtime.deterministic as d
from cryptoj.cli import main
cpu = 0.0
run = d.DeterministicRuntime.run
def timed(self, *args, **kwargs):
    global cpu
    t0 = time.process_time()
    try:
        return run(self, *args, **kwargs)
    finally:
        cpu += time.process_time() - t0
d.DeterministicRuntime.run = timed
code = main(sys.argv[1:])
print(json.dumps({"cpu_seconds": round(cpu, 3)}))
raise SystemExit(code)
"""
WORKLOADS = ("ticks", "4h", "1m", "bars")


def replay_args(workload: str, tmp: Path) -> list[str]:
    """The ``cryptoj replay`` arguments of ``workload`` (a config file is written to ``tmp``)."""
    if workload == "ticks":
        config = tmp / "ticks.json"  # JSON is YAML
        feed = BENCH_CONFIG["feed"]
        assert isinstance(feed, dict)
        cfg = {**BENCH_CONFIG, "feed": {**feed, "window_ms": 0}}
        config.write_text(json.dumps(cfg), encoding="utf-8")
        return ["--data", str(DATA), "--config", str(config)]
    if workload == "4h":
        return ["--data", "coinbase-4h-2016-2025"]
    if workload == "1m":
        return []
    if workload == "bars":
        config, data = tmp / "bars.json", tmp / "bars.csv"
        config.write_text(json.dumps(BARS_CONFIG), encoding="utf-8")
        write_bars(BARS_SOURCE, BARS_PRODUCT, data)
        return ["--data", str(data), "--config", str(config)]
    raise SystemExit(f"--workload: expected one of {', '.join(WORKLOADS)}, got {workload!r}")


def run_side(checkout: Path, args: list[str], workdir: Path) -> dict[str, Any]:
    """One replay with ``checkout``'s code (run in ``workdir``); its JSON summary, with the
    CPU seconds of its replay loop added as ``cpu_seconds``."""
    done = replay_in(checkout, DRIVER, args, workdir)
    if done.returncode != 0:
        raise SystemExit(f"replay in {checkout} failed: {done.stderr.strip()[-2000:]}")
    *_, last, cpu = done.stdout.strip().splitlines()
    summary: dict[str, Any] = json.loads(last)
    summary.update(json.loads(cpu))
    return summary


def replay_in(
    checkout: Path, driver: str, args: list[str], workdir: Path, wrapper: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``cryptoj replay --json`` with ``args`` (trace off, journal in ``workdir``) run by
    ``driver`` (a ``python -c`` program calling the CLI) with ``checkout``'s code, under
    ``wrapper`` (a command prefix) if given."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(checkout)
    workdir.mkdir(exist_ok=True)
    command = [*wrapper, sys.executable, "-c", driver, "replay", "--json", "--trace", ""]
    return subprocess.run(
        [*command, *args, "--journal", "journal.sqlite"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
    )


def side_arguments(ap: argparse.ArgumentParser) -> None:
    """The options naming the two sides and the workload (shared with bench_instructions)."""
    ap.add_argument("--base", default="main", help="the commit to compare with (default main)")
    ap.add_argument(
        "--head", default=None, help="a commit for the head side (default: this checkout)"
    )
    ap.add_argument("--workload", default="ticks", choices=WORKLOADS)
    ap.add_argument("--json", action="store_true", help="print one JSON object")


def side_revisions(args: argparse.Namespace, tool: str) -> tuple[str, str] | None:
    """The short hashes of ``--base`` and of ``--head`` (HEAD by default, marked when this
    checkout has uncommitted changes); None after printing ``tool``'s error for a revision
    that names no commit."""
    try:
        rev = short_hash(args.base, "--base")
        head = short_hash(args.head or "HEAD", "--head")
    except UnknownRevision as e:
        print(f"{tool}: {e}", file=sys.stderr)
        return None
    if args.head is None and has_uncommitted_changes():
        head += " (+ uncommitted changes)"
    return rev, head


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The summary fields (timing excluded) whose values differ."""
    keys = sorted((set(a) | set(b)) - TIMING)
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def main(argv: list[str] | None = None) -> int:
    """Run both sides alternately and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    side_arguments(ap)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    args = ap.parse_args(argv)
    sides = side_revisions(args, "bench_commits")
    if sides is None:
        return 2
    rev, head = sides
    with checkouts(rev, None if args.head is None else head) as (tmp, base_dir, head_dir):
        replay = replay_args(args.workload, tmp)
        base_runs: list[dict[str, Any]] = []
        head_runs: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            base_runs.append(run_side(base_dir, replay, tmp / "run-base"))
            head_runs.append(run_side(head_dir, replay, tmp / "run-head"))
    base_s = statistics.median(r["wall_seconds"] for r in base_runs)
    head_s = statistics.median(r["wall_seconds"] for r in head_runs)
    base_cpu = statistics.median(r["cpu_seconds"] for r in base_runs)
    head_cpu = statistics.median(r["cpu_seconds"] for r in head_runs)
    diff = differences(base_runs[0], head_runs[0])
    out = {
        "workload": args.workload,
        "base": rev,
        "head": head,
        "events": head_runs[0]["events"],
        "base_seconds": base_s,
        "head_seconds": head_s,
        "base_events_per_second": round(head_runs[0]["events"] / base_s, 1),
        "head_events_per_second": round(head_runs[0]["events"] / head_s, 1),
        "speedup": round(base_s / head_s, 3),
        "speedup_cpu": round(base_cpu / head_cpu, 3),
        "summaries_identical": not diff,
        "summary_differences": diff[:10],
        "base_runs": [r["wall_seconds"] for r in base_runs],
        "head_runs": [r["wall_seconds"] for r in head_runs],
        "base_cpu_runs": [r["cpu_seconds"] for r in base_runs],
        "head_cpu_runs": [r["cpu_seconds"] for r in head_runs],
    }
    table = "\n".join(f"{key:24} {value}" for key, value in out.items())
    print(json.dumps(out) if args.json else table)
    return 0 if not diff else 1


if __name__ == "__main__":
    raise SystemExit(main())
