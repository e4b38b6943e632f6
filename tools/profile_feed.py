"""The feed's receive path per message, without sockets: recorded frames through the real code.

    python tools/profile_feed.py [--products 15] [--capture-s 3] [--rounds 5] [--profile] [--json]

Records ``--capture-s`` seconds of frames from the local fake Coinbase (``tools/fake_coinbase.py
--step-s 0`` in its own process; ``--products`` products copied from the bundled 1-minute set
as :mod:`tools.bench_scale` does; one connection: level2, ticker, market_trades, heartbeats),
then feeds them ``--rounds`` times through what a connection thread does with each text frame
after ``recv_data_frame``: :meth:`FeedSession.frame` (msgspec decode, sequence tracking,
validation, level2 books, quotes and trades) and the quote window (50 ms) of
:class:`~cryptoj.adapters.coinbase.conflate.QuoteWindow`, a fresh session each round. It also
times websocket-client's own frame parsing over the same frames (``ws_parse``: the bytes of
every frame re-framed as a server would send them, read back with ``recv_data_frame`` from an
in-memory socket), the other half of the receive path.

Prints µs per frame of each part (median of the rounds), frames/s, and with ``--profile`` the
top of a cProfile of the session part. ``--json``: one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import websocket  # noqa: E402
from bench_scale import start_fake, write_products  # noqa: E402

from cryptoj.adapters.coinbase.conflate import FeedEvent, QuoteWindow  # noqa: E402
from cryptoj.adapters.coinbase.fake.wire import OP_TEXT, encode_frame  # noqa: E402
from cryptoj.adapters.coinbase.session import FeedSession, SessionSettings  # noqa: E402

CHANNELS = ("level2", "ticker", "market_trades")


def capture(products: list[str], info: dict[str, str], seconds: float) -> list[bytes]:
    """Every text frame one connection receives in ``seconds`` (acks and snapshots first)."""
    ws = websocket.create_connection(
        info["ws_url"], sslopt={"ca_certs": info["ca_file"]}, skip_utf8_validation=True, timeout=5
    )
    ws.send(json.dumps({"type": "subscribe", "channel": "heartbeats"}))
    for ch in CHANNELS:
        ws.send(json.dumps({"type": "subscribe", "product_ids": products, "channel": ch}))
    frames: list[bytes] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            frames.append(frame.data)
    ws.close()
    return frames


def session_round(products: list[str], frames: list[bytes]) -> tuple[float, int]:
    """Seconds to pass ``frames`` through a fresh session and quote window; events out."""
    events: list[FeedEvent] = []
    session = FeedSession("p", tuple(products), SessionSettings(channels=CHANNELS), events.append)
    window = QuoteWindow(50_000_000)
    clock = time.time_ns
    session.opened(clock())
    out = 0
    t0 = time.perf_counter()
    for data in frames:
        session.frame(data, clock())
        if events:
            out += len(window.push(events, clock()))
            events.clear()
    return time.perf_counter() - t0, out


class _MemSocket:
    """Just enough of a socket for websocket-client to read from a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def recv(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n].tobytes()
        self.pos += len(chunk)
        return chunk

    def gettimeout(self) -> None:
        return None


def ws_round(frames: list[bytes]) -> float:
    """Seconds websocket-client takes to parse ``frames`` (server framing) from memory."""
    stream = b"".join(encode_frame(OP_TEXT, f) for f in frames)
    ws = websocket.WebSocket(skip_utf8_validation=True)
    sock = _MemSocket(stream)
    ws.sock = sock  # type: ignore[assignment]
    ws.connected = True
    ws.frame_buffer.recv = sock.recv  # type: ignore[method-assign]
    t0 = time.perf_counter()
    for _ in frames:
        ws.recv_data_frame(True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Capture, replay, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--products", type=int, default=15)
    ap.add_argument("--capture-s", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="profile-feed-") as tmp:
        names = write_products(args.products, Path(tmp) / "data.csv")
        proc, info = start_fake(Path(tmp) / "data.csv", 0.0, 32, 0)
        try:
            frames = capture(names, info, args.capture_s)
        finally:
            proc.terminate()
            proc.wait(10)
    sess, wsp = [], []
    events = 0
    for _ in range(args.rounds):
        s, events = session_round(names, frames)
        sess.append(s)
        wsp.append(ws_round(frames))
    n = len(frames)
    result: dict[str, Any] = {
        "frames": n,
        "mean_frame_bytes": round(sum(map(len, frames)) / n),
        "events_out": events,
        "session_us_per_frame": round(statistics.median(sess) / n * 1e6, 2),
        "ws_parse_us_per_frame": round(statistics.median(wsp) / n * 1e6, 2),
        "frames_per_s": round(n / (statistics.median(sess) + statistics.median(wsp))),
    }
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        session_round(names, frames)
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(18)
    if args.json:
        print(json.dumps(result))
    else:
        print(" ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
