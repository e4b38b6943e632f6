"""Soak test of the Coinbase feed: the local fake exchange and the real feed client, with faults.

    python tools/feed_soak.py --seconds 60 --disconnects 10 --gaps 10 --stalls 5 --json

Starts the fake (:class:`cryptoj.adapters.coinbase.fake.FakeCoinbase`, recorded data, one
recorded minute per ``--step-s``) and a :class:`~cryptoj.adapters.coinbase.CoinbaseFeed` on
it, in one process, then injects the faults in a seeded random order, spread evenly over the
run. Disconnects alternate between a clean close (1000) and a TCP drop; a stall hangs the open
connection for ``--stall-s`` seconds (no frames, no heartbeats, no pongs); a gap drops one
level2 update and skips its sequence number. After each fault the soak waits until every
product is fresh again and compares each client book with the fake's book at the same update
(``book_mismatches``); books are also compared every half second in between (``book_checks``).

The last line of stdout is one JSON object: ``gaps_injected``, ``gaps_detected``, ``resyncs``,
``book_mismatches``, ``book_checks``, ``reconnects``, ``disconnects_injected``,
``stalls_injected``, ``max_recovery_seconds`` (per kind in ``recovery_seconds``),
``recovery_bound_seconds`` (per kind), ``recovery_within_bound``, ``messages`` (frames the
client received), ``trades``, ``trades_missing`` (trade ids the fake emitted between the first
and last one delivered that never arrived: backfill works when 0), ``trades_duplicated``,
``quotes``, ``stale_events``, ``recovered_events``, ``ok``. Exit code 0 when ``ok``: every
injected gap detected, no book mismatch, every recovery within its bound, no missing or
duplicated trade.

Recovery bounds: gap = reorder hold + 1 s; disconnect = the backoff bound
``min(max, min·2^n)·(1 + jitter)`` for the largest ``n`` seen + 1 s; stall = heartbeat timeout
+ the same backoff bound + 1 s (the 1 s covers connect, subscribe and the snapshot).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger

from cryptoj.adapters.coinbase import CoinbaseFeed, CoinbaseFeedConfig
from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.models.market import FeedStatus, Quote, Trade


class Collector:
    """The feed's event callback: counts events, checks trade ids."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.trade_ids: set[int] = set()
        self.duplicates = 0
        self.first: dict[str, int] = {}

    def __call__(self, event: Quote | Trade | FeedStatus) -> None:
        with self.lock:
            if isinstance(event, Trade):
                tid = int(event.trade_id)
                if tid in self.trade_ids:
                    self.duplicates += 1
                self.trade_ids.add(tid)
                self.first.setdefault(event.product, tid)
                self.first[event.product] = min(self.first[event.product], tid)
                self.counts["trades"] += 1
            elif isinstance(event, Quote):
                self.counts["quotes"] += 1
            else:
                self.counts[f"status_{event.state}"] += 1

    def missing(self) -> int:
        """Trade ids never delivered between the first snapshots and the last trade.

        The fake numbers trades across products, one step at a time; each product's first
        snapshot starts at a different id, so counting starts at the latest of those.
        """
        with self.lock:
            if not self.first:
                return 0
            start = max(self.first.values())
            ids = [i for i in self.trade_ids if i >= start]
            return (max(ids) - start + 1) - len(ids) if ids else 0


def soak_config(fake: FakeCoinbase, args: argparse.Namespace) -> CoinbaseFeedConfig:
    """The feed settings of the soak (short watchdogs so 25 faults fit in a minute)."""
    return CoinbaseFeedConfig(
        ws_urls=(fake.ws_url,),
        rest_url=fake.rest_url,
        ca_file=fake.ca_file,
        heartbeat_timeout_s=args.heartbeat_timeout_s,
        ping_interval_s=1.0,
        ping_timeout_s=2.0,
        backoff_min_s=0.2,
        backoff_max_s=2.0,
        backoff_reset_s=1.0,
        reorder_hold_ms=100.0,
        backfill_limit=1000,
        circuit_failures=10,
        circuit_open_s=1.0,
    )


def all_fresh(feed: CoinbaseFeed) -> bool:
    """Every product fresh and every connection live (and counted as such)."""
    return all(c.lives > 0 and c.session.live for c in feed.connections) and all(
        s == "fresh" for c in feed.connections for s in c.session.status.values()
    )


def compare_books(feed: CoinbaseFeed, fake: FakeCoinbase, products: list[str]) -> tuple[int, int]:
    """(checked, mismatched) over the fresh books."""
    checked = mismatched = 0
    for p in products:
        read = feed.book_digest(p)
        if read is None:
            continue
        event_time, digest, fresh = read
        if not fresh:
            continue
        expected = fake.digest_at(p, event_time)
        if expected is None:
            continue  # older than the fake's history: cannot be verified
        checked += 1
        if expected != digest:
            mismatched += 1
            logger.error("book mismatch {} at {}", p, event_time)
    return checked, mismatched


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak; return the result object."""
    rng = random.Random(args.seed)
    faults = ["disconnect"] * args.disconnects + ["gap"] * args.gaps + ["stall"] * args.stalls
    rng.shuffle(faults)
    fake = FakeCoinbase(step_s=args.step_s).start()
    products = list(fake.sim.products)
    collector = Collector()
    cfg = soak_config(fake, args)
    feed = CoinbaseFeed(cfg, products, collector, seed=args.seed)
    started = time.monotonic()
    feed.start()
    recovery: dict[str, list[float]] = {"gap": [], "disconnect": [], "stall": []}
    checks = mismatches = 0
    unrecovered = 0
    try:
        _wait(lambda: all_fresh(feed), 10.0)
        spacing = args.seconds / (len(faults) + 1)
        for i, kind in enumerate(faults):
            due = started + (i + 1) * spacing
            while time.monotonic() < due:
                c, m = compare_books(feed, fake, products)
                checks, mismatches = checks + c, mismatches + m
                time.sleep(min(0.5, max(0.0, due - time.monotonic())))
            lives = sum(c.lives for c in feed.connections)
            gaps = feed.status()["gaps"]
            t0 = time.monotonic()
            if kind == "disconnect":
                fake.inject("disconnect", mode="clean" if i % 2 else "drop")
            elif kind == "stall":
                fake.inject("stall", seconds=args.stall_s)
            else:
                fake.inject("gap")
            done = functools.partial(_recovered, feed, kind, lives, gaps)
            if _wait(done, max(10.0, spacing)):
                recovery[kind].append(time.monotonic() - t0)
            else:
                unrecovered += 1
                logger.error("fault {} ({}) did not recover", i, kind)
            c, m = compare_books(feed, fake, products)
            checks, mismatches = checks + c, mismatches + m
        while time.monotonic() < started + args.seconds:
            time.sleep(0.2)
        time.sleep(0.3)  # let the last trades and backfills arrive
        c, m = compare_books(feed, fake, products)
        checks, mismatches = checks + c, mismatches + m
        status = feed.status()
    finally:
        feed.stop()
        fake.stop()
    fc = fake.state()["counts"]
    backoff = feed.connections[0].policy
    worst_failures = max((c.policy.failures for c in feed.connections), default=0)
    backoff_bound = backoff.bound_ns(max(worst_failures, 1)) / 1e9
    bounds = {
        "gap": cfg.reorder_hold_ms / 1000 + 1.0,
        "disconnect": backoff_bound + 1.0,
        "stall": cfg.heartbeat_timeout_s + backoff_bound + 1.0,
    }
    within = unrecovered == 0 and all(t <= bounds[k] for k, ts in recovery.items() for t in ts)
    result = {
        "seconds": round(time.monotonic() - started, 2),
        "gaps_injected": fc.get("gaps_injected", 0),
        "gaps_detected": status["gaps"],
        "resyncs": status["resyncs"],
        "book_mismatches": mismatches,
        "book_checks": checks,
        "reconnects": status["reconnects"],
        "disconnects_injected": fc.get("disconnect_faults", 0),
        "stalls_injected": fc.get("stall_faults", 0),
        "max_recovery_seconds": round(
            max((t for ts in recovery.values() for t in ts), default=0.0), 3
        ),
        "recovery_seconds": {k: round(max(ts), 3) if ts else None for k, ts in recovery.items()},
        "recovery_bound_seconds": {k: round(v, 3) for k, v in bounds.items()},
        "recovery_within_bound": within,
        "unrecovered": unrecovered,
        "messages": status["messages"],
        "trades": collector.counts["trades"],
        "trades_missing": collector.missing(),
        "trades_duplicated": collector.duplicates,
        "trades_backfilled": status["totals"].get("backfilled", 0),
        "quotes": collector.counts["quotes"],
        "stale_events": collector.counts["status_stale"],
        "recovered_events": collector.counts["status_recovered"],
        "dropped_old": status["totals"].get("dropped_old", 0),
        "heartbeat_timeouts": status["totals"].get("heartbeat_timeouts", 0),
    }
    result["ok"] = bool(
        result["gaps_detected"] >= result["gaps_injected"] == args.gaps
        and mismatches == 0
        and within
        and result["trades_missing"] == 0
        and result["trades_duplicated"] == 0
    )
    return result


def _recovered(feed: CoinbaseFeed, kind: str, lives: int, gaps: int) -> bool:
    """After a fault: reconnected (or, for a gap, the gap seen) and every product fresh."""
    if kind == "gap":
        return bool(feed.status()["gaps"] > gaps and all_fresh(feed))
    return sum(c.lives for c in feed.connections) > lives and all_fresh(feed)


def _wait(cond: Any, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--disconnects", type=int, default=10)
    ap.add_argument("--gaps", type=int, default=10)
    ap.add_argument("--stalls", type=int, default=5)
    ap.add_argument(
        "--stall-s", type=float, default=3.0, help="how long a stalled connection hangs"
    )
    ap.add_argument("--heartbeat-timeout-s", type=float, default=2.0, help="client watchdog")
    ap.add_argument("--step-s", type=float, default=0.1, help="fake: seconds per recorded minute")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="only the JSON result line")
    ap.add_argument("--verbose", action="store_true", help="show the feed's log lines")
    args = ap.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="INFO" if args.verbose else "ERROR")
    result = run(args)
    if not args.json:
        for k, v in result.items():
            print(f"{k:24} {v}")
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
