"""The daemon process: starts from config, stops on SIGTERM with exit 0, recovers its journal."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.stubs import spawn_daemon


def _start(tmp_path: Path, speed: float, heartbeat_s: float = 60) -> subprocess.Popen[str]:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"feed:\n  speed: {speed}\njournal:\n  path: {tmp_path / 'journal.sqlite'}\n"
        f"trace:\n  path: {tmp_path / 'trace.jsonl'}\n"
        "strategy:\n  fast_period: 3\n  slow_period: 8\n  entry_band: 0.0005\n"
        f"logging:\n  heartbeat_s: {heartbeat_s}\n"
        "ops:\n  port: 0\n"
    )
    return spawn_daemon(cfg)


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 30) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    pytest.fail(f"{text!r} not seen in daemon output: {''.join(lines)}")


def _stop(proc: subprocess.Popen[str]) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    return proc.returncode, time.monotonic() - t0, out


def test_sigterm_stops_the_daemon_with_exit_0_well_within_5_seconds(tmp_path: Path) -> None:
    proc = _start(tmp_path, speed=600)
    _wait_for(proc, "cryptoj running")
    code, took, out = _stop(proc)
    assert code == 0, out
    assert took < 5, f"took {took:.1f}s to stop"
    assert "cryptoj stopped: exit code 0" in out


def test_a_restarted_daemon_continues_from_its_journal(tmp_path: Path) -> None:
    proc = _start(tmp_path, speed=0)  # as fast as possible: the data ends within seconds
    _wait_for(proc, "cryptoj running")
    db = tmp_path / "journal.sqlite"
    deadline = time.monotonic() + 60
    fills = 0
    while time.monotonic() < deadline and fills == 0:
        with sqlite3.connect(db) as c:
            fills = c.execute("SELECT count(*) FROM fills").fetchone()[0]
        time.sleep(0.1)  # polling interval of this test only
    code, _, out = _stop(proc)
    assert code == 0, out
    assert fills > 0
    proc = _start(tmp_path, speed=600)
    _wait_for(proc, "cryptoj running")
    code, _, out = _stop(proc)
    assert code == 0, out
    with sqlite3.connect(db) as c:
        ids = [r[0] for r in c.execute("SELECT fill_id FROM fills")]
    assert len(ids) == len(set(ids)) >= fills


def test_the_daemon_trades_on_the_fake_coinbase_feed_and_stops_on_sigterm(tmp_path: Path) -> None:
    from cryptoj.adapters.coinbase.fake import FakeCoinbase

    fake = FakeCoinbase(step_s=0.02, heartbeat_s=0.2).start()
    try:
        cfg = tmp_path / "live.yaml"
        cfg.write_text(
            "feed:\n  source: coinbase\n  products: [BTC-USD, ETH-USD]\n  tick_bar_size: 4\n"
            f"  coinbase:\n    ws_urls: ['{fake.ws_url}']\n    rest_url: '{fake.rest_url}'\n"
            f"    ca_file: '{fake.ca_file}'\n    auth: never\n"
            f"journal:\n  path: {tmp_path / 'journal.sqlite'}\n"
            f"trace:\n  path: {tmp_path / 'trace.jsonl'}\n"
            "strategy:\n  fast_period: 2\n  slow_period: 3\n  entry_band: 0.0005\nops:\n  port: 0\n"
        )
        proc = spawn_daemon(cfg)
        _wait_for(proc, "subscribed")
        trace = tmp_path / "trace.jsonl"
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline and '"dst":"strategy","type":"Bar"' not in seen:
            time.sleep(0.2)  # polling interval of this test only
            seen = trace.read_text() if trace.exists() else ""
        code, took, out = _stop(proc)
    finally:
        fake.stop()
    assert code == 0, out
    assert took < 5
    assert '"type":"FeedStatus"' in seen and '"state":"healthy"' in seen
    assert '"dst":"portfolio","type":"Quote"' in seen
    assert '"dst":"strategy","type":"Bar"' in seen  # tick bars built from the fake's trades


def test_a_paced_paper_run_logs_its_orders_fills_heartbeat_and_the_end_of_data(
    tmp_path: Path,
) -> None:
    """The bundled two days at 20,000x take about 9 s of wall time."""
    proc = _start(tmp_path, speed=20000, heartbeat_s=1)
    lines = _wait_for(proc, "end of data", timeout=60)
    code, _, out = _stop(proc)
    assert code == 0, out
    log = "".join(lines)
    assert "at 20000x takes about 9 s" in log  # the pace estimate, at start
    assert "order sent cj-" in log and "BUY MARKET" in log
    assert "filled cj-" in log
    assert "order closed cj-" in log and "avg price" in log
    assert "heartbeat: equity " in log and "risk NORMAL" in log and "feed replaying" in log
    assert "end of data: the replay source is exhausted" in log
    with sqlite3.connect(tmp_path / "journal.sqlite") as c:
        decided = c.execute("SELECT count(*) FROM intents").fetchone()[0]
    assert 1 <= log.count("order sent cj-") <= decided  # bursts beyond 10 per 10 s: cut


def test_a_restart_resumes_the_market_clock_and_does_not_trade_bars_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "journal.sqlite"
    proc = _start(tmp_path, speed=0)  # as fast as possible: says when the data ran out
    _wait_for(proc, "end of data", timeout=60)
    code, _, out = _stop(proc)
    assert code == 0, out
    with sqlite3.connect(db) as c:
        last = c.execute("SELECT max(ts) FROM equity").fetchone()[0]
        fills = c.execute("SELECT count(*) FROM fills").fetchone()[0]
        orders = c.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert fills > 0 and last is not None
    proc = _start(tmp_path, speed=0)
    lines = _wait_for(proc, "end of data", timeout=60)
    code, _, out = _stop(proc)
    assert code == 0, out
    assert any("resuming after the journal's last market time" in line for line in lines)
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM fills").fetchone()[0] == fills
        assert c.execute("SELECT count(*) FROM orders").fetchone()[0] == orders
        replayed = c.execute("SELECT min(ts) FROM equity WHERE ts > ?", (last,)).fetchone()[0]
    assert replayed is None or replayed > last  # nothing journalled twice
