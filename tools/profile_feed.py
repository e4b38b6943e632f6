"""The feed's receive path per message, without sockets: recorded frames through the real code.

    python tools/profile_feed.py [--products 15] [--capture-s 3] [--rounds 5] [--profile] [--json]
    python tools/profile_feed.py --base main --json      # this checkout against a commit

Records ``--capture-s`` seconds of frames from the local fake Coinbase (``tools/fake_coinbase.py
--step-s 0`` in its own process; ``--products`` products copied from the bundled 1-minute set
as ``tools/bench_scale.py`` does; one connection: level2, ticker, market_trades, heartbeats),
then feeds them ``--rounds`` times through what a connection thread does with each text frame:
:meth:`FeedSession.frame` (msgspec decode, sequence tracking, validation, level2 books, quotes
and trades) and the 50 ms :class:`~cryptoj.adapters.coinbase.conflate.QuoteWindow`, a fresh
session each round (``session``). It also times the framing on the same bytes: websocket-client's
``recv_data_frame`` reading them from an in-memory socket (``ws_parse``: what the feed used
before) and :class:`~cryptoj.adapters.coinbase.frames.FrameReader` on 16 KB chunks (``reader``).

Prints µs per frame of each part (median of the rounds) and frames/s (session + reader);
``--profile`` adds the top of a cProfile of the session part. ``--base REV``: the session part
also runs on commit REV (checked out into a temporary ``git worktree``, removed at the end),
each side in a fresh interpreter on the same recorded frames, rounds alternating; it prints
``session_ratio`` (base µs ÷ this checkout's µs per frame), ``reader_ratio`` (the same for
the frame reader, when REV has it) and ``path_ratio`` (base session +
``ws_parse`` ÷ this checkout's session + ``reader``: a frame's whole receive path before and
after). ``--json``: one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pickle
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CODE = os.environ.get("PROFILE_FEED_CODE", str(ROOT))  # the checkout whose session is timed
sys.path.insert(0, CODE)
sys.path.insert(1, str(ROOT / "tools"))

import websocket  # noqa: E402

from cryptoj.adapters.coinbase.conflate import FeedEvent, QuoteWindow  # noqa: E402
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


def _stream(frames: list[bytes]) -> bytes:
    from cryptoj.adapters.coinbase.fake.wire import OP_TEXT, encode_frame

    return b"".join(encode_frame(OP_TEXT, f) for f in frames)


def ws_round(frames: list[bytes]) -> float:
    """Seconds websocket-client takes to parse ``frames`` (server framing) from memory."""
    ws = websocket.WebSocket(skip_utf8_validation=True)
    sock = _MemSocket(_stream(frames))
    ws.connected = True
    ws.frame_buffer.recv = sock.recv
    t0 = time.perf_counter()
    for _ in frames:
        ws.recv_data_frame(True)
    return time.perf_counter() - t0


def reader_round(frames: list[bytes]) -> float:
    """Seconds :class:`FrameReader` takes to cut ``frames`` (server framing) from 16 KB chunks."""
    from cryptoj.adapters.coinbase.frames import FrameReader

    stream = _stream(frames)
    chunks = [stream[i : i + 16_384] for i in range(0, len(stream), 16_384)]
    try:
        reader = FrameReader(SessionSettings().max_frame_bytes)
    except TypeError:  # a commit before the reader took its size limit
        reader = FrameReader()  # type: ignore[call-arg]
    t0 = time.perf_counter()
    n = 0
    for chunk in chunks:
        n += len(reader.feed(chunk))
    elapsed = time.perf_counter() - t0
    assert n == len(frames)
    return elapsed


def run_code(code: str, recording: Path) -> tuple[float, float]:
    """Seconds of one session round and one reader round of ``code``'s checkout, in a fresh
    interpreter."""
    env = {**os.environ, "PROFILE_FEED_CODE": code, "PYTHONPATH": code}
    out = subprocess.run(
        [sys.executable, __file__, "--replay", str(recording)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    session_s, reader_s = out.stdout.strip().splitlines()[-1].split()
    return float(session_s), float(reader_s)


def record(n: int, seconds: float, tmp: Path) -> tuple[list[str], list[bytes]]:
    """``n`` products' frames for ``seconds`` from a fake in its own process."""
    from bench_scale import start_fake, write_products

    names = write_products(n, tmp / "data.csv")
    proc, info = start_fake(tmp / "data.csv", 0.0, 32, 0)
    try:
        return names, capture(names, info, seconds)
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    """Capture, replay, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--products", type=int, default=15)
    ap.add_argument("--capture-s", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--base", help="also time the session part of this commit")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--replay", help=argparse.SUPPRESS)  # internal: one round of a recording
    args = ap.parse_args(argv)
    if args.replay:
        with open(args.replay, "rb") as src:
            names, frames = pickle.load(src)
        print(session_round(names, frames)[0], reader_round(frames))
        return 0
    with tempfile.TemporaryDirectory(prefix="profile-feed-") as tmp_name:
        tmp = Path(tmp_name)
        names, frames = record(args.products, args.capture_s, tmp)
        recording = tmp / "frames.pickle"
        with recording.open("wb") as f:
            pickle.dump((names, frames), f)
        tree = None
        if args.base:
            from common import make_worktree, remove_worktree

            tree = make_worktree(args.base, tmp / "base")
        try:
            sess: list[float] = []
            base: list[float] = []
            wsp: list[float] = []
            rdr: list[float] = []
            base_rdr: list[float] = []
            for _ in range(args.rounds):
                if tree is not None:
                    for out, out_rdr, code in ((base, base_rdr, tree), (sess, rdr, ROOT)):
                        session_s, reader_s = run_code(str(code), recording)
                        out.append(session_s)
                        out_rdr.append(reader_s)
                else:
                    sess.append(session_round(names, frames)[0])
                    rdr.append(reader_round(frames))
                wsp.append(ws_round(frames))
        finally:
            if tree is not None:
                remove_worktree(tree)
    n = len(frames)

    def us(xs: list[float]) -> float:
        return round(statistics.median(xs) / n * 1e6, 2)

    result: dict[str, Any] = {
        "frames": n,
        "mean_frame_bytes": round(sum(map(len, frames)) / n),
        "events_out": session_round(names, frames)[1],
        "session_us_per_frame": us(sess),
        "ws_parse_us_per_frame": us(wsp),
        "reader_us_per_frame": us(rdr),
        "frames_per_s": round(n / (statistics.median(sess) + statistics.median(rdr))),
    }
    if base:
        result["base"] = args.base
        result["base_session_us_per_frame"] = us(base)
        result["session_ratio"] = round(us(base) / us(sess), 2)
        result["base_reader_us_per_frame"] = us(base_rdr)
        result["reader_ratio"] = round(us(base_rdr) / us(rdr), 2)
        result["path_ratio"] = round((us(base) + us(wsp)) / (us(sess) + us(rdr)), 2)
    result["load_avg"] = round(os.getloadavg()[0], 2)
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
