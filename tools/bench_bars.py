#!/usr/bin/env python3
"""Bar replay speed: this tree against an older commit, on the same data, in one run.

    python tools/bench_bars.py --baseline-rev fa575ac            # table
    python tools/bench_bars.py --baseline-rev fa575ac --json     # one JSON object
    python tools/bench_bars.py --baseline-rev main --data coinbase-1m-2018-04 --rounds 3

The baseline is checked out into a temporary ``git worktree`` (removed at the end). Each round
runs ``python -m cryptoj replay --data DATA --trace '' --json`` once with ``PYTHONPATH`` set to
the baseline tree and once with it set to this tree, alternating (which goes first swaps every
round), each in its own subprocess with its own journal, so load on the shared machine hits
both alike. The figure compared is the summary's ``wall_seconds``: the replay loop only (data
loading, set-up and the summary excluded). Also printed: ``cpu_ratio``, the same ratio on the
CPU time of the whole subprocess (imports, loading and summary included, so it understates the
loop's ratio, but it is steadier than wall time when other jobs load the machine).

The two summaries of every round are compared field by field, except the timing fields
(:data:`TIMING_FIELDS`) and the journal path; any other difference is printed and makes the
exit code 1. Prints per side the median loop seconds and events per second, ``ratio`` =
baseline seconds ÷ current seconds (above 1: this tree is faster), the one-minute load average
before and after, and every run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Summary fields that measure time, not behaviour (never compared).
TIMING_FIELDS = frozenset({"wall_seconds", "events_per_second", "process_cpu_seconds"})
#: Fields that name a path of this run (never compared).
RUN_FIELDS = frozenset({"journal"})


def run_replay(tree: Path, data: str, journal: Path) -> dict[str, Any]:
    """One replay with ``tree`` on PYTHONPATH; its summary, with the subprocess's CPU seconds
    added as ``process_cpu_seconds``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "cryptoj", "replay", "--data", data, "--trace", ""]
    cmd += ["--journal", str(journal), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"replay in {tree} printed nothing: {done.stderr.strip()[-2000:]}")
    summary: dict[str, Any] = json.loads(lines[-1])
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    summary["process_cpu_seconds"] = round(cpu, 3)
    journal.unlink(missing_ok=True)
    return summary


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Fields (timing and run paths excepted) whose values differ between two summaries."""
    skip = TIMING_FIELDS | RUN_FIELDS
    keys = sorted((a.keys() | b.keys()) - skip)
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def make_worktree(rev: str, where: Path) -> Path:
    """A detached git worktree of ``rev`` under ``where``."""
    tree = where / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev],
        check=True,
    )
    return tree


def remove_worktree(tree: Path) -> None:
    """Remove a worktree made by :func:`make_worktree`."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
    )


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the figures; 1 when a summary differs."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--baseline-rev", required=True, help="git revision to compare against")
    ap.add_argument("--data", default="coinbase-4h-2016-2025", help="replay data set")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    load_before = os.getloadavg()[0]
    base_runs: list[dict[str, Any]] = []
    ours: list[dict[str, Any]] = []
    diffs: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = make_worktree(args.baseline_rev, Path(tmp))
        try:
            for i in range(args.rounds):
                sides = [(base, base_runs), (ROOT, ours)]
                for tree, runs in sides if i % 2 == 0 else sides[::-1]:
                    runs.append(run_replay(tree, args.data, Path(tmp) / "journal.sqlite"))
                diffs += [f"round {i + 1}: {d}" for d in differences(base_runs[-1], ours[-1])]
        finally:
            remove_worktree(base)
    b_s = statistics.median(r["wall_seconds"] for r in base_runs)
    o_s = statistics.median(r["wall_seconds"] for r in ours)
    b_cpu = statistics.median(r["process_cpu_seconds"] for r in base_runs)
    o_cpu = statistics.median(r["process_cpu_seconds"] for r in ours)
    events = ours[0]["events"]
    out = {
        "data": args.data,
        "baseline_rev": args.baseline_rev,
        "events": events,
        "messages": ours[0]["messages"],
        "baseline_loop_seconds": b_s,
        "current_loop_seconds": o_s,
        "baseline_events_per_second": round(events / b_s, 1),
        "current_events_per_second": round(events / o_s, 1),
        "ratio": round(b_s / o_s, 3),
        "baseline_process_cpu_seconds": b_cpu,
        "current_process_cpu_seconds": o_cpu,
        "cpu_ratio": round(b_cpu / o_cpu, 3),
        "identical_summary": not diffs,
        "differences": diffs,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "baseline_runs": [r["wall_seconds"] for r in base_runs],
        "current_runs": [r["wall_seconds"] for r in ours],
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:28} {value}")
    return 0 if not diffs else 1


if __name__ == "__main__":
    raise SystemExit(main())
