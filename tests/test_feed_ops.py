"""The live Coinbase feed's health in ``/status``, ``/health``, ``/metrics`` and ``cryptoj status``.

Loopback only: the real daemon (threaded runtime, paper venue) on the real feed client against
the local fake exchange (WSS on 127.0.0.1, port 0), or, for the offline case, a daemon process
pointed at a loopback port nothing listens on. Every wait is bounded.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.cli import main
from cryptoj.config import parse_config
from cryptoj.config.ops import OpsConfig
from cryptoj.daemon import Daemon
from cryptoj.ops.metrics import parse_families
from tests.stubs import spawn_daemon
from tests.test_coinbase_failover import closed_port
from tests.test_ops import get_json, poll, request

PRODUCTS = ["BTC-USD", "ETH-USD"]


@pytest.fixture
def fake() -> Iterator[FakeCoinbase]:
    f = FakeCoinbase(step_s=0.02, heartbeat_s=0.2, subscribe_deadline_s=1.0).start()
    yield f
    f.stop()


def _live_config(tmp_path: Path, fake: FakeCoinbase) -> Any:
    return parse_config(
        {
            "feed": {
                "source": "coinbase",
                "products": PRODUCTS,
                "tick_bar_size": 4,
                "coinbase": {
                    "ws_urls": [fake.ws_url],
                    "rest_url": fake.rest_url,
                    "ca_file": fake.ca_file,
                    "auth": "never",
                    "heartbeat_timeout_s": 0.8,
                    "ping_interval_s": 0.3,
                    "backoff_min_s": 0.05,
                    "backoff_max_s": 0.2,
                    "rest_timeout_s": 1.0,
                },
            },
            "journal": {"path": str(tmp_path / "journal.sqlite")},
            "trace": {"enabled": False},
            "strategy": {"fast_period": 2, "slow_period": 3, "entry_band": 0.0005},
        }
    )


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, _, body = request(port, "/metrics")
    assert code == 200
    text = body.decode()
    types = re.findall(r"^# TYPE (\S+) ", text, flags=re.M)
    assert len(types) == len(set(types)), "a metric family is exposed twice"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parse_families(text).values()
        for s in f.samples
    }


def test_status_and_metrics_show_an_injected_gap_and_disconnect(
    tmp_path: Path, fake: FakeCoinbase, capsys: pytest.CaptureFixture[str]
) -> None:
    d = Daemon(_live_config(tmp_path, fake), ops=OpsConfig(port=0))
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", d.run()), daemon=True)
    thread.start()
    try:
        assert d.ready.wait(30), "daemon did not start"
        assert d.endpoint is not None
        port = d.endpoint.port

        def feed() -> dict[str, Any]:
            code, body = get_json(port, "/status")
            assert code == 200
            return dict(body["feed"])

        poll(lambda: feed()["state"] == "healthy" and feed()["latency"]["rtt"]["count"], "live")
        fake.inject("gap", count=2)
        poll(lambda: feed()["gaps"] >= 2 and feed()["state"] == "healthy", "gaps resynced")
        fake.inject("disconnect", mode="drop")
        f = poll(
            lambda: (f := feed())["reconnects"] >= 1 and f["state"] == "healthy" and f,
            "reconnected",
        )

        # /status: the connection-state history with state, time and reason, and the figures
        conn = [h for h in f["history"] if h["source"] == "connection"]
        assert [h["state"] for h in conn][:3] == ["connecting", "subscribing", "live"]
        lost = [h for h in conn if h["state"] == "disconnected"]
        assert lost and ("lost" in lost[0]["reason"] or "error" in lost[0]["reason"])
        assert all(h["connection"] == "cb0" and h["ts"] > 0 for h in conn)
        assert [h["wall"] for h in f["history"]] == sorted(h["wall"] for h in f["history"])
        actor_events = [h["event"] for h in f["history"] if h["source"] == "actor"]
        assert "stale" in actor_events and "recovered" in actor_events
        assert f["source"] == "coinbase" and f["connected"] is True
        assert f["gaps"] >= 2 and f["missing"] >= 2 and f["resyncs"] >= 2
        assert f["stale_products"] == []
        assert f["hosts"] == [
            {
                "connection": "cb0",
                "url": fake.ws_url,
                "live": True,
                "on_failover_host": False,
                "degraded": False,
                "state": "live",
            }
        ]
        assert f["circuits"][fake.ws_url]["state"] == "closed"
        assert f["rest_polling"] is False and f["degraded"] == {}
        assert f["heartbeat_age_s"] is not None and f["heartbeat_age_s"] >= 0
        for kind in ("rtt", "lag"):
            figures = f["latency"][kind]
            assert figures["count"] > 0 and None not in (figures["p50_s"], figures["p99_s"])
        detail = f["detail"]["connections"][0]
        assert detail["lag"]["buckets"]["+Inf"] == detail["lag"]["count"]

        # /metrics: the same figures as Prometheus families
        m = _samples(port)
        feed_lbl = (("feed", "coinbase"),)
        cb0 = (("connection", "cb0"), ("feed", "coinbase"))
        assert m[("cryptoj_feed_state", (*feed_lbl, ("state", "healthy")))] == 1
        assert m[("cryptoj_feed_gaps_total", feed_lbl)] >= 2
        assert m[("cryptoj_feed_reconnects_total", feed_lbl)] >= 1
        assert m[("cryptoj_feed_resyncs_total", feed_lbl)] >= 2
        assert m[("cryptoj_feed_missing_messages_total", feed_lbl)] >= 2
        assert m[("cryptoj_feed_stale_products", feed_lbl)] == 0
        assert m[("cryptoj_feed_rest_polling", feed_lbl)] == 0
        assert m[("cryptoj_feed_connection_state", (*cb0, ("state", "live")))] == 1
        assert m[("cryptoj_feed_connection_state", (*cb0, ("state", "backoff")))] == 0
        assert m[("cryptoj_feed_state_changes_total", (*feed_lbl, ("state", "disconnected")))] >= 1
        assert m[("cryptoj_feed_connection_host", (*cb0, ("host", fake.ws_url)))] == 1
        assert m[("cryptoj_feed_connection_attempts_total", cb0)] >= 2
        host = (*feed_lbl, ("host", fake.ws_url))
        assert m[("cryptoj_feed_circuit_state", (*host, ("state", "closed")))] == 1
        assert m[("cryptoj_feed_circuit_opened_total", host)] == 0
        assert ("cryptoj_feed_heartbeat_age_seconds", cb0) in m
        for kind in ("rtt", "lag"):
            count = m[(f"cryptoj_feed_{kind}_seconds_count", cb0)]
            assert count > 0
            assert m[(f"cryptoj_feed_{kind}_seconds_bucket", (*cb0, ("le", "+Inf")))] == count
            assert (f"cryptoj_feed_{kind}_recent_seconds", (*cb0, ("stat", "p99"))) in m
        assert m[("cryptoj_feed_latency_seconds", feed_lbl)] != 0

        # /health and `cryptoj status`
        code, health = get_json(port, "/health")
        assert code == 200 and health["feed"] == "healthy"
        assert main(["status", "--port", str(port)]) == 0
        text = capsys.readouterr().out
        assert re.search(r"feed coinbase: healthy, \d+ messages, .*reconnects [1-9]", text), text
        assert f"  connection cb0: live on {fake.ws_url}" in text
        assert f"  circuit {fake.ws_url}: closed, 0 failure(s)" in text
        assert re.search(r"resyncs \d+ · last heartbeat [\d.]+s ago · rtt p50 [\d.]+ ms", text)
    finally:
        d.request_stop("test over")
        thread.join(30)
    assert not thread.is_alive() and result.get("code") == 0


def test_offline_daemon_backs_off_opens_the_circuit_reports_degraded_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 4, item 8: the default feed settings with no exchange reachable (a loopback port
    nothing listens on stands in for "no network")."""
    port = closed_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "feed:\n  source: coinbase\n  products: [BTC-USD, ETH-USD]\n"
        f"  coinbase:\n    ws_urls: ['wss://127.0.0.1:{port}']\n"
        f"    rest_url: 'https://127.0.0.1:{port}'\n    auth: never\n"
        f"journal:\n  path: {tmp_path / 'journal.sqlite'}\ntrace:\n  enabled: false\n"
        "ops:\n  port: 0\n"
    )
    proc = spawn_daemon(cfg)
    assert proc.stdout is not None
    lines: list[str] = []
    lock = threading.Lock()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with lock:
                lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def seen(pattern: str) -> list[str]:
        with lock:
            return [ln for ln in lines if re.search(pattern, ln)]

    try:
        ops = poll(lambda: seen(r"ops endpoint on http://127\.0\.0\.1:\d+"), "ops endpoint", 30)
        ops_port = int(re.findall(r":(\d+)\s*$", ops[0])[0])
        poll(lambda: seen("coinbase feed cb0 degraded"), "degraded", 30)
        poll(lambda: seen("REST polling failed"), "a failed REST poll", 10)
        attempts = seen("connect failed")
        assert len(attempts) == 3, "".join(lines)  # circuit_failures (3) attempts, one line each
        delays = [float(x) for ln in attempts for x in re.findall(r"retrying in ([\d.]+)s", ln)]
        assert len(delays) == 3 and delays[0] < delays[1] < delays[2], attempts
        assert [int(re.findall(r"attempt (\d+)\)", ln)[0]) for ln in attempts] == [1, 2, 3]
        assert all(f"127.0.0.1:{port}" in ln for ln in attempts)
        assert len(seen(r"circuit for wss://127\.0\.0\.1:\d+ open after 3 failure")) == 1

        assert main(["status", "--port", str(ops_port), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        f = data["feed"]
        assert f["state"] == "degraded" and f["connected"] is False and f["rest_polling"]
        assert f["circuits"][f"wss://127.0.0.1:{port}"]["state"] == "open"
        states = [h["state"] for h in f["history"] if h["source"] == "connection"]
        assert states.count("failed") == 3 and "circuit_open" in states and "degraded" in states
        assert data["health"]["status"] == "degraded" and data["health"]["feed"] == "degraded"
        assert data["ready"]["ready"] is False
        assert data["ready"]["checks"]["feed"] == {"ok": False, "detail": "degraded"}
        assert main(["status", "--port", str(ops_port)]) == 0
        text = capsys.readouterr().out
        assert "feed coinbase: degraded" in text
        assert "connection cb0: degraded on REST polling (no websocket host)" in text
        m = _samples(ops_port)
        assert m[("cryptoj_feed_state", (("feed", "coinbase"), ("state", "degraded")))] == 1
        assert proc.poll() is None  # keeps running
        assert len(seen("connect failed")) == 3  # the circuit stays open for 30 s
        assert len(seen("REST polling failed")) == 1  # not once per poll
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(5)
    assert proc.returncode == 0, "".join(lines)
    assert seen("cryptoj stopped: exit code 0")
