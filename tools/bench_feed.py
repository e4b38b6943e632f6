"""Feed ingest benchmark: messages per second decoded and delivered, against a raw receive loop.

    python tools/bench_feed.py [--seconds 5] [--rounds 3] [--json]

Starts the local fake exchange in a **separate process** (``tools/fake_coinbase.py --step-s 0``:
recorded data as fast as the reader takes it, over WSS on loopback), then alternates two
readers of the same stream (heartbeats, level2, ticker and market_trades for BTC-USD, ETH-USD
and LTC-USD), each for ``--seconds``, ``--rounds`` times:

* ``raw``: a bare websocket-client loop: ``recv_data_frame`` and count, nothing else;
* ``feed``: the real :class:`~cryptoj.adapters.coinbase.CoinbaseFeed`: decode (msgspec),
  sequence tracking, level2 books, quotes and trades, conflation and delivery to a callback
  that counts the events.

Both use the same websocket-client options (TLS, ``skip_utf8_validation=True``). It prints the
median messages per second of each, their ratio (feed / raw), the events delivered per second,
the average frame size, and each reader's CPU share (process CPU time / wall time: below 1 the
reader waited for the fake or for a busy machine) with ``ratio_per_cpu_second``, the ratio of
messages per CPU second (steadier on a loaded box). ``--json``: one JSON object on the last
line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websocket
from loguru import logger

from cryptoj.adapters.coinbase import CoinbaseFeed, CoinbaseFeedConfig
from cryptoj.config.coinbase import Channel

PRODUCTS = ["BTC-USD", "ETH-USD", "LTC-USD"]
CHANNELS: tuple[Channel, ...] = ("level2", "ticker", "market_trades")


def start_fake(args: argparse.Namespace) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Run the fake in its own process; return it and its URLs."""
    cmd = [sys.executable, str(Path(__file__).with_name("fake_coinbase.py")), "--port", "0",
           "--control-port", "0", "--step-s", "0", "--max-queue", "32"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the fake exchange did not start")
    return proc, json.loads(line)


def raw_round(info: dict[str, str], seconds: float) -> tuple[float, float, float]:
    """Messages per second, mean frame size and CPU share of a bare receive loop."""
    ws = websocket.create_connection(
        info["ws_url"], sslopt={"ca_certs": info["ca_file"]}, skip_utf8_validation=True, timeout=5
    )
    ws.send(json.dumps({"type": "subscribe", "channel": "heartbeats"}))
    for ch in CHANNELS:
        ws.send(json.dumps({"type": "subscribe", "product_ids": PRODUCTS, "channel": ch}))
    for _ in range(200):  # warm up past the snapshots
        ws.recv_data_frame(True)
    n = size = 0
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    cpu0 = time.process_time()
    while True:
        _, frame = ws.recv_data_frame(True)
        n += 1
        size += len(frame.data)
        if not n % 256 and time.perf_counter() >= end:
            break
    elapsed = time.perf_counter() - start
    cpu = (time.process_time() - cpu0) / elapsed
    ws.close()
    return n / elapsed, size / max(1, n), cpu


def feed_round(info: dict[str, str], seconds: float) -> tuple[float, float, float, dict[str, Any]]:
    """Messages per second received and events per second delivered by the real feed."""
    delivered = [0]
    lock = threading.Lock()

    def sink(event: object) -> None:
        with lock:
            delivered[0] += 1

    cfg = CoinbaseFeedConfig(
        ws_urls=(info["ws_url"],),
        rest_url=info["rest_url"],
        ca_file=info["ca_file"],
        channels=CHANNELS,
        backfill_trades=False,
        rest_poll=False,
        heartbeat_timeout_s=30,
        book_stale_s=0,
    )
    feed = CoinbaseFeed(cfg, PRODUCTS, sink)
    feed.start()
    session = feed.connections[0].session
    deadline = time.monotonic() + 10
    while session.counts["frames"] < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    f0, d0, t0 = session.counts["frames"], delivered[0], time.perf_counter()
    cpu0 = time.process_time()
    time.sleep(seconds)
    f1, d1, t1 = session.counts["frames"], delivered[0], time.perf_counter()
    cpu = (time.process_time() - cpu0) / (t1 - t0)
    status = feed.status()
    feed.stop()
    return (f1 - f0) / (t1 - t0), (d1 - d0) / (t1 - t0), cpu, status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    proc, info = start_fake(args)
    raw: list[float] = []
    feed: list[float] = []
    events: list[float] = []
    sizes: list[float] = []
    raw_cpu: list[float] = []
    feed_cpu: list[float] = []
    status: dict[str, Any] = {}
    try:
        for _ in range(args.rounds):
            r, size, rcpu = raw_round(info, args.seconds)
            raw.append(r)
            sizes.append(size)
            raw_cpu.append(rcpu)
            f, e, fcpu, status = feed_round(info, args.seconds)
            feed.append(f)
            events.append(e)
            feed_cpu.append(fcpu)
            if not args.json:
                print(
                    f"raw {r:,.0f} msg/s (cpu {rcpu:.2f})   feed {f:,.0f} msg/s "
                    f"(cpu {fcpu:.2f}, {e:,.0f} events/s delivered)"
                )
    finally:
        proc.terminate()
        proc.wait(10)
    result = {
        "raw_messages_per_second": round(statistics.median(raw)),
        "feed_messages_per_second": round(statistics.median(feed)),
        "ratio": round(statistics.median(feed) / statistics.median(raw), 3),
        "feed_events_delivered_per_second": round(statistics.median(events)),
        "mean_frame_bytes": round(statistics.mean(sizes)),
        "ratio_per_cpu_second": round(
            (statistics.median(feed) / statistics.median(feed_cpu))
            / (statistics.median(raw) / statistics.median(raw_cpu)),
            3,
        ),
        "raw_cpu_share": round(statistics.median(raw_cpu), 2),
        "feed_cpu_share": round(statistics.median(feed_cpu), 2),
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "conflated": status.get("delivery", {}).get("conflated"),
        "gaps": status.get("gaps"),
    }
    if not args.json:
        for k, v in result.items():
            print(f"{k:34} {v}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
