"""Instructions of the replay loop, this checkout against another commit, counted by callgrind.

    python tools/bench_instructions.py --base main                   # per-timestamp tick replay
    python tools/bench_instructions.py --base main --workload 1m --json

Wall and CPU time on a shared machine move with the load; the number of machine instructions
the replay loop executes does not (to a fraction of a percent). Each side runs the same
``cryptoj replay`` as :mod:`bench_commits` (same workloads, base checked out into a temporary
git worktree, the head is this checkout unless ``--head`` is given) once under valgrind's
callgrind, which counts only while ``DeterministicRuntime.run`` is on the stack (it is called
through ``operator.call``, and ``--toggle-collect`` watches that C function). Prints both
counts, ``ratio`` (base ÷ head: above 1 means the head does less work) and whether the two
summaries are identical (timing fields apart; exit 1 if not). Needs ``valgrind``; a side takes
about 50× its native run time (the tick workload: about a minute and a half).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from bench_commits import (  # noqa: E402
    differences,
    replay_args,
    replay_in,
    side_arguments,
    side_revisions,
)
from common import checkouts  # noqa: E402

# Run in the checkout measured: the CLI's replay, its loop called through operator.call (the C
# function callgrind counts inside).
DRIVER = """
import operator, sys
import cryptoj.runtime.deterministic as d
from cryptoj.cli import main
run = d.DeterministicRuntime.run
def counted(self, *args, **kwargs):
    return operator.call(run, self, *args, **kwargs)
d.DeterministicRuntime.run = counted
raise SystemExit(main(sys.argv[1:]))
"""
_COLLECTED = re.compile(r"Collected\s*:\s*([\d,]+)")


def count_side(checkout: Path, args: list[str], workdir: Path) -> tuple[int, dict[str, Any]]:
    """The instructions of one replay loop with ``checkout``'s code (run in ``workdir``), and
    its JSON summary."""
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={workdir / 'callgrind.out'}",
        "--toggle-collect=_operator_call",
    ]
    done = replay_in(checkout, DRIVER, args, workdir, valgrind)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"replay in {checkout} failed: {done.stderr.strip()[-2000:]}")
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return int(found.group(1).replace(",", "")), summary


def main(argv: list[str] | None = None) -> int:
    """Count both sides and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    side_arguments(ap)
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("bench_instructions: valgrind is not installed (apt-get install valgrind)")
        return 2
    sides = side_revisions(args, "bench_instructions")
    if sides is None:
        return 2
    rev, head = sides
    with checkouts(rev, None if args.head is None else head) as (tmp, base_dir, head_dir):
        replay = replay_args(args.workload, tmp)
        base_n, base_summary = count_side(base_dir, replay, tmp / "run-base")
        head_n, head_summary = count_side(head_dir, replay, tmp / "run-head")
    diff = differences(base_summary, head_summary)
    out = {
        "workload": args.workload,
        "base": rev,
        "head": head,
        "events": head_summary["events"],
        "base_instructions": base_n,
        "head_instructions": head_n,
        "ratio": round(base_n / head_n, 3),
        "base_instructions_per_event": round(base_n / base_summary["events"]),
        "head_instructions_per_event": round(head_n / head_summary["events"]),
        "summaries_identical": not diff,
        "summary_differences": diff[:10],
    }
    table = "\n".join(f"{key:28} {value}" for key, value in out.items())
    print(json.dumps(out) if args.json else table)
    return 0 if not diff else 1


if __name__ == "__main__":
    raise SystemExit(main())
