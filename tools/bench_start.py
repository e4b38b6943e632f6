"""Live start time of this checkout against another commit, in one run (issue 16's liveness).

    python tools/bench_start.py --base h-cancel
    python tools/bench_start.py --base h-cancel --rounds 8 --json

Each side gets a local fake Coinbase of its own (no faults) and ``tools/exec_soak.py``'s live
config (``strategy.kind: manual``, its own journal, kept from round to round so that each start
restores what the previous ones journalled). One round per side: spawn ``python -m cryptoj run
--live`` in that side's checkout, poll ``/health`` until the execution actor is up, then change
one target weight through ``POST /control/target`` and wait for the order at the fake; then
SIGTERM and wait for the exit. Rounds alternate base, head (load on the shared machine hits both
alike). With ``--cached-bytecode`` each side's cryptoj is compiled once and its daemon runs
from that bytecode (``common.cached_bytecode_env``, as ``tools/exec_soak.py
--cached-bytecode`` does), after one start not counted; without it the environment decides
(``PYTHONDONTWRITEBYTECODE=1`` makes every start compile every cryptoj module from source).
The base commit is checked out into a temporary ``git worktree`` (``common.checkouts``, as
``tools/bench_commits.py`` does); the head is this checkout as it is.

Printed per side: medians of seconds from the spawn to ``/health`` (execution up) and from the
spawn to the first order the fake received (its ``created_time``); ``ratio_*`` is base ÷ head
(above 1: the head starts faster). ``cpu_at_health`` is the daemon's CPU time (user + system,
all threads, from ``/proc``) when ``/health`` first answered: steadier than wall time when the
shared machine is loaded. The load average before and after is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from common import UnknownRevision, cached_bytecode_env, checkouts, short_hash  # noqa: E402
from exec_soak import DaemonProcess, soak_config  # noqa: E402

from cryptoj.adapters.coinbase.fake.auth import generate_api_key, write_key_file  # noqa: E402
from cryptoj.adapters.coinbase.fake.server import FakeCoinbase  # noqa: E402
from cryptoj.adapters.coinbase.parse import rfc3339_ns  # noqa: E402

PRODUCTS = ("BTC-USD", "ETH-USD", "LTC-USD")
ORDER_S = 30.0  # and put the order at the fake within this after the target change


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far, all its threads (``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Side:
    """One checkout's daemon, its fake exchange and its journal (kept across rounds)."""

    def __init__(self, name: str, checkout: Path, tmp: Path, *, cached: bool) -> None:
        self.name = name
        self.env = {**os.environ, "PYTHONPATH": str(checkout)}
        self.cached = cached
        if cached:  # bytecode compiled once, as an installed package has it
            self.env = cached_bytecode_env(checkout, self.env)
        self.checkout = checkout
        self.tmp = tmp
        tmp.mkdir(parents=True)
        key = generate_api_key("Ed25519")
        self.key_file = write_key_file(key, tmp / "key.json")
        self.fake = FakeCoinbase(
            products=list(PRODUCTS),
            jwt_key_name=key.name,
            jwt_public_key=key.public_pem,
            balances={"USD": "100000"},
        )
        self.config = tmp / "start.yaml"
        self.weight = 0.0
        self.health_s: list[float] = []
        self.cpu_s: list[float] = []  # the daemon's CPU time (all threads) when /health answered
        self.order_s: list[float] = []

    def __enter__(self) -> Side:
        self.fake.start()
        self.config.write_text(yaml.safe_dump(soak_config(self.tmp, self.fake, self.key_file)))
        if self.cached:  # one start not counted, as before every counted one
            self.round()
            self.health_s, self.cpu_s, self.order_s = [], [], []
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.stop()

    def round(self) -> None:
        """Spawn, wait for /health, change a target, wait for the order; SIGTERM."""
        orders_before = len(self.fake.state()["exchange"]["orders"])
        daemon = DaemonProcess(
            self.config, self.tmp / "daemon.out", env=self.env, cwd=self.checkout, poll_s=0.02
        )
        try:
            daemon.start()
            assert daemon.proc is not None
            self.cpu_s.append(cpu_seconds(daemon.proc.pid))
            spawn_ns = daemon.starts_ns[-1]
            self.health_s.append((daemon.ready_ns[-1] - spawn_ns) / 1e9)
            self.weight = 0.05 if self.weight == 0.0 else 0.0
            body = {"product": "BTC-USD", "weight": self.weight, "reason": "bench"}
            code, answer = daemon.call("POST", "/control/target", body)
            if code != 202:
                raise RuntimeError(f"{self.name}: /control/target answered {code}: {answer}")
            end = time.monotonic() + ORDER_S
            while time.monotonic() < end:
                orders = self.fake.state()["exchange"]["orders"]
                if len(orders) > orders_before:
                    first = min(rfc3339_ns(o["created_time"]) for o in orders[orders_before:])
                    self.order_s.append((first - spawn_ns) / 1e9)
                    break
                time.sleep(0.02)
            else:
                log = (self.tmp / "daemon.log").read_text()[-3000:]
                raise RuntimeError(
                    f"{self.name}: no order within {ORDER_S:g}s; its log ends:\n{log}"
                )
            daemon.stop()
        finally:
            daemon.kill_if_running()

    def figures(self) -> dict[str, Any]:
        """Medians and every round's figures."""
        return {
            "health_median_s": round(statistics.median(self.health_s), 3),
            "first_order_median_s": round(statistics.median(self.order_s), 3),
            "cpu_at_health_median_s": round(statistics.median(self.cpu_s), 3),
            "health_s": [round(x, 2) for x in self.health_s],
            "first_order_s": [round(x, 2) for x in self.order_s],
        }


def main(argv: list[str] | None = None) -> int:
    """Alternate base and head starts; print the medians and their ratios."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the commit to compare against")
    ap.add_argument("--rounds", type=int, default=6, help="starts per side (default 6)")
    ap.add_argument(
        "--cached-bytecode",
        action="store_true",
        help="compile each side's cryptoj once instead of inheriting PYTHONDONTWRITEBYTECODE, "
        "under which every start compiles every module from source",
    )
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    try:
        base = short_hash(args.base, "--base")
    except UnknownRevision as e:
        print(e, file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    with checkouts(base, None) as (tmp, base_tree, head_tree):
        cached = args.cached_bytecode
        sides = [
            Side("base", base_tree, tmp / "base-run", cached=cached),
            Side("head", head_tree, tmp / "head", cached=cached),
        ]
        with sides[0], sides[1]:
            for i in range(args.rounds):
                for side in sides:
                    side.round()
                    if not args.json:
                        print(
                            f"round {i + 1} {side.name}: /health {side.health_s[-1]:.2f}s "
                            f"(CPU {side.cpu_s[-1]:.2f}s), "
                            f"first order {side.order_s[-1]:.2f}s",
                            flush=True,
                        )
    b, h = sides[0].figures(), sides[1].figures()
    result = {
        "base": base,
        "rounds": args.rounds,
        "cached_bytecode": args.cached_bytecode,
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "base_side": b,
        "head_side": h,
        "ratio_health": round(b["health_median_s"] / h["health_median_s"], 2),
        "ratio_cpu_at_health": round(b["cpu_at_health_median_s"] / h["cpu_at_health_median_s"], 2),
        "ratio_first_order": round(b["first_order_median_s"] / h["first_order_median_s"], 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
