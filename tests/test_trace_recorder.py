"""The trace recorder: whole lines under concurrency, rotation with bounded disk use."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from cryptoj.models.orders import Fill, Side
from cryptoj.trace.recorder import FLUSH_S, TraceLine, TraceWriter, encode_message


def _fill(i: int) -> Fill:
    return Fill(
        ts=i,
        fill_id=f"F{i}",
        client_order_id=f"cj-{i}",
        product="BTC-USD",
        side=Side.BUY,
        quantity=Decimal("0.5"),
        price=Decimal("7000.25"),
        fee=Decimal("1.5"),
        liquidity="TAKER",
    )


def test_lines_from_many_threads_never_interleave_or_tear(tmp_path: Path) -> None:
    w = TraceWriter(tmp_path / "t.jsonl", max_bytes=10**9)
    per_thread, threads = 2000, 8

    def writer(k: int) -> None:
        for i in range(per_thread):
            w.record(
                "deliver",
                i,
                f"a{k}",
                "portfolio",
                _fill(i),
                f"m{k}-{i}",
                "c",
                "",
                1000,
                10,
                'a "quoted"\nnote',
            )

    pool = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    w.close()
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == per_thread * threads
    assert sorted(r["seq"] for r in records) == list(range(1, per_thread * threads + 1))
    assert {r["note"] for r in records} == {'a "quoted"\nnote'}
    assert all(r["msg"]["type"] == "Fill" and r["msg"]["price"] == "7000.25" for r in records)


def test_a_line_equals_the_documented_struct_encoding(tmp_path: Path) -> None:
    w = TraceWriter(tmp_path / "t.jsonl")
    w.record("deliver", 5, "execution", "portfolio", _fill(1), "m1", "c1", "m0")
    w.close()
    import msgspec

    expected = msgspec.json.encode(
        TraceLine(
            seq=1,
            ts=5,
            kind="deliver",
            src="execution",
            dst="portfolio",
            type="Fill",
            id="m1",
            corr="c1",
            cause="m0",
            msg=msgspec.Raw(encode_message(_fill(1))),
        )
    )
    assert (tmp_path / "t.jsonl").read_bytes() == expected + b"\n"


def test_rotation_keeps_at_most_max_files_and_loses_no_line_in_between(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, max_bytes=20_000, max_files=3)
    for i in range(2000):
        w.record("deliver", i, "feed", "risk", _fill(i))
    w.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["t.jsonl", "t.jsonl.1", "t.jsonl.2", "t.jsonl.3"]
    assert all(f.stat().st_size < 20_000 + 1_000 for f in files)
    seqs = [json.loads(line)["seq"] for f in reversed(files[1:]) for line in f.open()]
    seqs += [json.loads(line)["seq"] for line in path.open()]
    assert seqs == list(range(seqs[0], 2001))  # contiguous up to the last record


def test_a_fresh_writer_removes_old_rotations_but_not_other_files(tmp_path: Path) -> None:
    for name in ("t.jsonl", "t.jsonl.1", "t.jsonl.2", "t.jsonl.sqlite"):
        (tmp_path / name).write_text("old\n")
    TraceWriter(tmp_path / "t.jsonl", fresh=True).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl", "t.jsonl.sqlite"]
    assert (tmp_path / "t.jsonl").read_text() == ""


def test_a_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    """A child process records 50 lines, then idles (no record triggers a write) until it is
    killed with SIGKILL: the flusher has written every line to the OS by then."""
    path = tmp_path / "t.jsonl"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from tests.test_trace_recorder import _fill\n"
            "from cryptoj.trace.recorder import TraceWriter\n"
            f"w = TraceWriter({str(path)!r})\n"
            "for i in range(50):\n"
            "    w.record('deliver', i, 'feed', 'portfolio', _fill(i))\n"
            "print('recorded', flush=True)\n"
            "time.sleep(120)\n",
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"recorded\n"
        deadline = time.monotonic() + 10 * FLUSH_S  # bounded: the flusher runs every FLUSH_S/2
        while path.read_bytes().count(b"\n") < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 51))
