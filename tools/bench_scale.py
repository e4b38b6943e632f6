"""The daemon under load: N products from the local fake Coinbase at a fixed or the maximal rate.

    python tools/bench_scale.py --json                      # 3, 30, 100 products (60 s each)
    python tools/bench_scale.py --runs 100:max --json       # one run
    python tools/bench_scale.py --runs 30:10000 --no-conflation   # unbounded mailboxes

Each run (``PRODUCTS:RATE``, RATE in websocket messages per second or ``max``) writes a data set
of PRODUCTS products (the bundled ``coinbase-1m-2018-04`` BTC-USD, ETH-USD and LTC-USD rows
copied under new names, ``P000-USD`` ...), starts ``tools/fake_coinbase.py`` on it in a
**separate process** (``--step-s 0`` for ``max``: as fast as the client reads, with at most
``--source-queue`` (4) steps queued per connection; else one step every ``3 × PRODUCTS /
RATE`` s, three frames per product and step: level2, ticker, trades; ``--send-buffer`` sets
the fake's socket send buffer, 0 = the OS's), and runs the real daemon in this process
(:class:`cryptoj.daemon.Daemon`: the Coinbase feed, the actors in the threaded runtime, the
journal, the ops endpoint) for ``--seconds`` after a ``--warmup-s`` once the feed is healthy.

Figures per run: ``msg_per_s`` (websocket messages the feed received per second),
``events_per_s`` (quotes and trades the FeedActor handled per second), ``lag_p50_ms`` /
``lag_p99_ms`` / ``lag_max_ms`` (the feed lag: the time at which the FeedActor had handled a
quote or trade minus the event's own time, which the fake stamps when it makes the step; so
it holds the source's queue and socket buffers, decoding, the connection's quote window and
the wait in the FeedActor's mailbox), ``lag_p50_ms_by_third`` / ``lag_p99_ms_by_third`` (the
trend: the first, middle and last third of the samples), ``wire_lag_p99_ms`` (the same at
receipt on the connection thread: the feed's own ``lag`` figure, worst connection),
``max_mailbox`` (the largest mailbox depth of any actor, sampled every 0.2 s, and
``max_mailbox_actor``), ``rss_start_mb`` / ``rss_end_mb`` / ``rss_growth_mb`` (this process,
after the warm-up and at the end; the start includes what earlier runs left) and
``rss_mb_by_third``, ``merged_trades`` and ``conflated_quotes`` (what the mailboxes merged and
dropped), ``feed_merged_trades`` (trades the feed's connections merged because they read them
later than ``merge_trades_lag_ms``), ``overloaded_s`` (seconds ``/ready`` reported overload,
sampled every second), ``reconnects`` and ``load_avg`` (1-minute load average at the end).
The lag samples go into an array allocated before the RSS baseline. ``--json``: one JSON
object ``{"runs": [...]}`` on the last line.
"""

from __future__ import annotations

import argparse
import array
import csv
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loguru import logger  # noqa: E402

from cryptoj.config import parse_config  # noqa: E402
from cryptoj.config.ops import OpsConfig  # noqa: E402
from cryptoj.daemon import Daemon  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_SAMPLES = 4_000_000  # lag samples per run (32 MB, allocated before the RSS baseline)
FRAMES_PER_STEP = 3  # per product: level2, ticker, market_trades


def rss_mb() -> float:
    """Resident set size of this process, MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def write_products(n: int, path: Path) -> list[str]:
    """A long-format CSV with ``n`` products copied from the bundled 1-minute set."""
    src = resources.files("cryptoj.marketdata").joinpath("bundled", "coinbase-1m-2018-04.csv.gz")
    with src.open("rb") as raw, gzip.open(raw, "rt") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    originals = sorted({r[0] for r in body})
    names = [f"P{i:03d}-USD" for i in range(n)]
    with path.open("w", newline="") as out:
        w = csv.writer(out)
        w.writerow(header)
        for i, name in enumerate(names):
            source = originals[i % len(originals)]
            for r in body:
                if r[0] == source:
                    w.writerow([name, *r[1:]])
    return names


def start_fake(
    data: Path, step_s: float, queue_steps: int, send_buffer: int
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``tools/fake_coinbase.py`` on ``data`` in its own process; it and its URLs."""
    cmd = [sys.executable, str(ROOT / "tools/fake_coinbase.py"), "--data", str(data),
           "--port", "0", "--step-s", str(step_s), "--max-queue", str(queue_steps),
           "--send-buffer", str(send_buffer)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit("fake_coinbase.py did not start")
    return proc, json.loads(line)


def daemon_config(products: list[str], fake: dict[str, str], workdir: Path, conflate: bool) -> Any:
    """The daemon's configuration: the live feed on the fake, paper trading, defaults else."""
    return parse_config(
        {
            "feed": {
                "source": "coinbase",
                "products": products,
                "conflate_mailboxes": conflate,
                "warmup_timeout_s": 0,
                "coinbase": {
                    "ws_urls": [fake["ws_url"]],
                    "rest_url": fake["rest_url"],
                    "ca_file": fake["ca_file"],
                    "auth": "never",
                },
            },
            "journal": {"path": str(workdir / "journal.sqlite")},
            "trace": {"enabled": False},
            "logging": {"level": "ERROR", "heartbeat_s": 0},
        }
    )


class _Lags:
    """Lag samples into a preallocated array (no allocation while the run is measured)."""

    def __init__(self) -> None:
        self.ns = array.array("q", bytes(8 * MAX_SAMPLES))
        self.n = 0

    def __call__(self, lag_ns: int) -> None:
        if self.n < MAX_SAMPLES:
            self.ns[self.n] = lag_ns
            self.n += 1


def _ms(s: float | None) -> float | None:
    return None if s is None else round(s * 1000, 1)


def _pct(xs: list[int], p: float) -> float | None:
    return round(xs[min(len(xs) - 1, int(p * len(xs)))] / 1e6, 1) if xs else None


def run_one(products: int, rate: float | None, seconds: float, warmup_s: float,
            conflate: bool, source_queue: int, send_buffer: int) -> dict[str, Any]:  # fmt: skip
    """One run; ``rate`` None: the fake's maximal rate (``source_queue`` steps queued at most
    per connection; a paced source allows 2,000 before it drops a slow consumer)."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        names = write_products(products, work / "data.csv")
        step_s = 0.0 if rate is None else FRAMES_PER_STEP * products / rate
        queue_steps = source_queue if rate is None else 2000
        proc, fake = start_fake(work / "data.csv", step_s, queue_steps, send_buffer)
        try:
            return _measure(names, fake, work, rate, seconds, warmup_s, conflate)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _measure(names: list[str], fake: dict[str, str], work: Path, rate: float | None,
             seconds: float, warmup_s: float, conflate: bool) -> dict[str, Any]:  # fmt: skip
    daemon = Daemon(daemon_config(names, fake, work, conflate), ops=OpsConfig(port=0))
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", daemon.run()))
    thread.start()
    try:
        if not daemon.ready.wait(60) or daemon.rt is None or daemon.ctx is None:
            raise SystemExit("the daemon did not start")
        rt, ctx = daemon.rt, daemon.ctx
        deadline = time.monotonic() + 60
        while ctx.live_feed is None or ctx.live_feed.state() != "healthy":
            if time.monotonic() > deadline:
                raise SystemExit("the feed did not become healthy within 60 s")
            time.sleep(0.2)
        feed = ctx.live_feed
        lags = _Lags()
        time.sleep(warmup_s)
        state = daemon.endpoint.state if daemon.endpoint is not None else None
        rt.feed_lag.sink = lags
        st0 = feed.status()
        rss0, msgs0, merged0, conflated0 = (
            rss_mb(), st0["messages"], rt.stats.merged_trades, rt.stats.conflated
        )  # fmt: skip
        feed_merged0 = st0["delivery"]["merged_trades"]
        t0 = time.monotonic()
        max_box, max_actor, overloaded, rss = 0, "", 0, [rss0]
        next_second = t0 + 1
        while (now := time.monotonic()) < t0 + seconds:
            depths = rt.mailbox_depths()
            actor = max(depths, key=lambda a: depths[a], default="")
            if depths.get(actor, 0) > max_box:
                max_box, max_actor = depths[actor], actor
            if now >= next_second:
                next_second += 1
                rss.append(rss_mb())
                if state is not None and state.load()["state"] == "overloaded":
                    overloaded += 1
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        rt.feed_lag.sink = None
        status = feed.status()
        rss1 = rss_mb()
        merged = rt.stats.merged_trades - merged0
        feed_merged = status["delivery"]["merged_trades"] - feed_merged0
        conflated = rt.stats.conflated - conflated0
    finally:
        daemon.request_stop("bench done")
        thread.join(60)
    n = lags.n
    samples = sorted(lags.ns[:n])
    thirds = [sorted(lags.ns[k * n // 3 : (k + 1) * n // 3]) for k in range(3)]
    return {
        "products": len(names),
        "rate": "max" if rate is None else rate,
        "seconds": round(elapsed, 1),
        "msg_per_s": round((status["messages"] - msgs0) / elapsed),
        "events_per_s": round(n / elapsed),
        "lag_p50_ms": _pct(samples, 0.50),
        "lag_p99_ms": _pct(samples, 0.99),
        "lag_max_ms": round(samples[-1] / 1e6, 1) if samples else None,
        "lag_p50_ms_by_third": [_pct(part, 0.50) for part in thirds],
        "lag_p99_ms_by_third": [_pct(part, 0.99) for part in thirds],
        "max_mailbox": max_box,
        "max_mailbox_actor": max_actor,
        "rss_start_mb": round(rss0, 1),
        "rss_end_mb": round(rss1, 1),
        "rss_growth_mb": round(rss1 - rss0, 1),
        "rss_mb_by_third": [round(rss[k * (len(rss) - 1) // 3], 1) for k in (1, 2, 3)],
        "wire_lag_p99_ms": _ms(status["latency"]["lag"]["p99_s"]),
        "merged_trades": merged,
        "feed_merged_trades": feed_merged,
        "conflated_quotes": conflated,
        "overloaded_s": overloaded,
        "reconnects": status["reconnects"],
        "samples_truncated": n >= MAX_SAMPLES,
        "conflation": conflate,
        "exit_code": result.get("code"),
        "load_avg": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Run each ``PRODUCTS:RATE`` in turn; print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument(
        "--runs",
        default="3:max,30:10000,100:max",
        help="comma-separated PRODUCTS:RATE (RATE: messages/s or max); default 3:max,30:10000,"
        "100:max",
    )
    ap.add_argument("--seconds", type=float, default=60.0, help="measured seconds per run (60)")
    ap.add_argument("--warmup-s", type=float, default=30.0, help="after the feed is healthy (30)")
    ap.add_argument(
        "--no-conflation",
        action="store_true",
        help="feed.conflate_mailboxes: false (unbounded mailboxes: the reference)",
    )
    ap.add_argument(
        "--source-queue",
        type=int,
        default=4,
        help="maximal rate: steps the fake queues per connection before it waits (4)",
    )
    ap.add_argument(
        "--send-buffer",
        type=int,
        default=0,
        help="the fake's SO_SNDBUF per connection, bytes (0 = the OS default)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    runs: list[tuple[int, float | None]] = []
    for spec in args.runs.split(","):
        n, _, r = spec.partition(":")
        try:
            runs.append((int(n), None if r in ("", "max") else float(r)))
        except ValueError:
            ap.error(f"--runs: {spec!r} is not PRODUCTS:RATE (e.g. 30:10000 or 100:max)")
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    out = []
    for n, rate in runs:
        res = run_one(
            n,
            rate,
            args.seconds,
            args.warmup_s,
            not args.no_conflation,
            args.source_queue,
            args.send_buffer,
        )
        out.append(res)
        if not args.json:
            print(" ".join(f"{k}={v}" for k, v in res.items()), flush=True)
    if args.json:
        print(json.dumps({"runs": out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
