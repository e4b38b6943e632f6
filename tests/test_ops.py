"""Operations: /health, /ready, /metrics, /status, the token, control, flags and ``status``.

Everything runs on loopback with ephemeral ports. Most tests run a real daemon (threaded
runtime, paper venue, bundled data) in a thread of the test process; one starts it as a
subprocess and reads its metrics the way an operator would (curl, ``cryptoj status``).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from cryptoj.cli import main
from cryptoj.config import parse_config
from cryptoj.config.ops import (
    FlagError,
    OpsConfig,
    is_loopback,
    ops_problems,
    parse_flags,
    resolve_token,
)
from cryptoj.contract import Actor, Context
from cryptoj.daemon import Daemon
from cryptoj.models.orders import Fill, OrderClosed, OrderStatus, OrderType, Side, SubmitOrder
from cryptoj.ops.flags import FlagsChanged, FlagStore
from cryptoj.ops.metrics import parse_families
from cryptoj.ops.probe import ActorStatus, StatusRequest
from cryptoj.ops.runtime import OpsRuntime, Tap
from cryptoj.runtime.common import Envelope, Registered
from cryptoj.runtime.threaded import ScaledClock
from tests.stubs import quote, spawn_daemon

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token-for-tests-0123456789"
FLAGS = {"order_splitting": False, "strategy.breakout.allocation": 0.0}

#: Families the issue asks for (counter names without ``_total``, as the parser gives them).
FAMILIES = (
    "cryptoj_actor_messages",
    "cryptoj_actor_mailbox_depth",
    "cryptoj_actor_handling_seconds",
    "cryptoj_actor_restarts",
    "cryptoj_dead_letters",
    "cryptoj_feed_state",
    "cryptoj_feed_reconnects",
    "cryptoj_feed_gaps",
    "cryptoj_feed_latency_seconds",
    "cryptoj_orders",
    "cryptoj_fills",
    "cryptoj_slippage_bps",
    "cryptoj_equity",
    "cryptoj_exposure",
    "cryptoj_risk_level",
    "cryptoj_daily_loss_ratio",
    "cryptoj_volatility",
    "cryptoj_correlation",
    "cryptoj_feature_flag",
)


# -- helpers --------------------------------------------------------------------------------------


def request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to 127.0.0.1:port; JSON bodies get the JSON content type."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(port: int, path: str, **kw: Any) -> tuple[int, Any]:
    code, _, body = request(port, path, **kw)
    return code, json.loads(body)


def poll(fn: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Call ``fn`` until it returns something truthy (tiny sleeps, bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@dataclass
class Running:
    daemon: Daemon
    thread: threading.Thread
    result: dict[str, int] = field(default_factory=dict)

    @property
    def port(self) -> int:
        assert self.daemon.endpoint is not None
        return self.daemon.endpoint.port

    def wait_exit(self, timeout: float = 20.0) -> int | None:
        self.thread.join(timeout)
        return self.result.get("code")


def _config(tmp_path: Path, speed: float, sections: dict[str, Any] | None = None) -> Any:
    return parse_config(
        {
            "feed": {"speed": speed, "products": ["BTC-USD", "ETH-USD"]},
            "journal": {"path": str(tmp_path / "journal.sqlite")},
            "trace": {"enabled": False},
            # entry_band as small as the flip band: the daemon trades within minutes
            "strategy": {"fast_period": 3, "slow_period": 8, "entry_band": 0.0005},
            **(sections or {}),
        }
    )


@contextmanager
def running(
    tmp_path: Path,
    *,
    ops: OpsConfig | None = None,
    flags: dict[str, Any] | None = None,
    speed: float = 300.0,
    sections: dict[str, Any] | None = None,
) -> Iterator[Running]:
    """A daemon in a thread of this process, stopped (and joined) at the end.

    ``sections`` replace whole config sections (e.g. ``{"strategy": {"kind": "manual"}}``).
    """
    cfg = _config(tmp_path, speed, sections)
    d = Daemon(cfg, ops=ops or OpsConfig(port=0), flags=flags)
    r = Running(d, threading.Thread(target=lambda: None))
    r.thread = threading.Thread(target=lambda: r.result.setdefault("code", d.run()), daemon=True)
    r.thread.start()
    try:
        assert d.ready.wait(30), "daemon did not start"
        yield r
    finally:
        d.request_stop("test over")
        r.thread.join(30)
        assert not r.thread.is_alive(), "daemon did not stop"


# -- configuration ----------------------------------------------------------------------------


def test_ops_config_requires_a_token_for_a_non_loopback_bind(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("::ffff:127.0.0.1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("::ffff:10.0.0.1") and not is_loopback("evil.example")
    wide = OpsConfig(host="0.0.0.0")
    assert ops_problems(wide, None) == [
        "ops.host: '0.0.0.0' is not a loopback address, so a token is required "
        "(set $CRYPTOJ_OPS_TOKEN or ops.token_file)"
    ]
    assert ops_problems(wide, TOKEN) == []
    assert ops_problems(OpsConfig(), None) == []
    assert ops_problems(OpsConfig(), "short") == ["ops token: expected at least 16 characters"]
    assert resolve_token(OpsConfig(token_env="X_TOKEN"), {"X_TOKEN": f" {TOKEN}\n"}) == TOKEN
    assert resolve_token(OpsConfig(token_env="X_TOKEN"), {}) is None
    secret = tmp_path / "token"
    secret.write_text(TOKEN)
    secret.chmod(0o644)
    with pytest.raises(ValueError, match="readable only by its owner"):
        resolve_token(OpsConfig(token_file=str(secret)), {})
    secret.chmod(0o600)
    assert resolve_token(OpsConfig(token_file=str(secret)), {}) == TOKEN


def test_flag_definitions_are_validated() -> None:
    assert parse_flags({"a.b_c": True, "n": 1}) == {"a.b_c": True, "n": 1.0}
    with pytest.raises(FlagError) as e:
        parse_flags({"Bad-Name": True, "ok": "yes", "inf": float("inf")})
    assert "flags.Bad-Name: not a valid flag name" in str(e.value)
    assert "flags.ok: expected a finite number or true/false, got 'yes'" in str(e.value)
    assert "flags.inf:" in str(e.value)


# -- the endpoints of a running daemon -----------------------------------------------------------


def test_health_ready_metrics_and_status_of_a_running_daemon(tmp_path: Path) -> None:
    with running(tmp_path, flags=FLAGS) as r:
        code, health = get_json(r.port, "/health")
        assert code == 200, health
        assert health["status"] == "ok"
        assert set(health["actors"]) == {
            "shutdown",
            "root",
            "trading",
            "portfolio",
            "risk",
            "strategy",
            "execution",
            "feeds",
            "feed",
        }
        assert set(health["actors"].values()) == {"up"}

        code, ready = get_json(r.port, "/ready")
        assert code == 200, ready
        assert ready["ready"] is True
        assert set(ready["checks"]) == {
            "actors", "feed", "venue", "journal", "risk", "threads", "load"
        }  # fmt: skip
        assert ready["checks"]["feed"]["detail"] == "healthy"

        def metrics() -> dict[str, Any] | None:
            code, headers, body = request(r.port, "/metrics")
            assert code == 200
            assert headers["content-type"].startswith("text/plain; version=0.0.4")
            text = body.decode()
            types = re.findall(r"^# TYPE (\S+) ", text, flags=re.M)
            assert len(types) == len(set(types)), "a metric family is exposed twice"
            fams = parse_families(text)
            return fams if "cryptoj_daily_loss_ratio" in fams else None

        fams = poll(metrics, "risk figures in /metrics")
        missing = [f for f in FAMILIES if f not in fams]
        assert not missing, f"families missing from /metrics: {missing}"
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in fams.values()
            for s in f.samples
        }
        assert samples[("cryptoj_feed_state", (("feed", "replay"), ("state", "healthy")))] == 1
        assert samples[("cryptoj_feed_reconnects_total", (("feed", "replay"),))] == 0
        assert samples[("cryptoj_actor_up", (("actor", "portfolio"),))] == 1
        assert samples[("cryptoj_risk_level", ())] == 0
        assert samples[("cryptoj_feature_flag", (("flag", "order_splitting"),))] == 0
        assert samples[("cryptoj_equity", ())] > 0
        assert samples[("cryptoj_actor_messages_total", (("actor", "portfolio"),))] > 0

        code, status = get_json(r.port, "/status")
        assert code == 200
        names = [a["name"] for a in status["actors"]]
        assert names[:3] == ["shutdown", "root", "trading"]
        assert status["feed"]["state"] == "healthy"
        assert status["feed"]["history"][0]["event"] == "connected"
        assert status["risk"]["level"] == "NORMAL"
        assert status["portfolio"]["equity"]
        assert status["flags"]["order_splitting"]["source"] == "config"

        assert request(r.port, "/nope")[0] == 404
        assert request(r.port, "/control/flags")[0] == 405
        assert request(r.port, "/metrics", method="POST", body={})[0] == 405


def test_ready_flips_to_503_when_the_venue_is_unreachable_and_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(tmp_path) as r:
        assert get_json(r.port, "/ready")[0] == 200
        assert r.daemon.system is not None
        venue = r.daemon.system.venue

        def unreachable() -> dict[str, Decimal]:
            raise ConnectionError("connection refused")

        monkeypatch.setattr(venue, "balances", unreachable)
        code, ready = get_json(r.port, "/ready")
        assert code == 503
        assert ready["ready"] is False
        assert ready["checks"]["venue"] == {
            "ok": False,
            "detail": "unreachable: ConnectionError: connection refused",
        }
        assert get_json(r.port, "/health")[0] == 200  # liveness is not readiness
        monkeypatch.undo()
        code, ready = get_json(r.port, "/ready")
        assert code == 200, ready
        assert ready["checks"]["venue"]["detail"] == "reachable"


def test_ready_is_503_when_the_journal_has_no_room(tmp_path: Path) -> None:
    with running(tmp_path) as r:
        assert r.daemon.ctx is not None
        r.daemon.ctx.ops = msgspec.structs.replace(r.daemon.ctx.ops, min_free_mb=1e15)
        code, ready = get_json(r.port, "/ready")
        assert code == 503
        assert not ready["checks"]["journal"]["ok"]
        assert "MB free" in ready["checks"]["journal"]["detail"]


def test_the_token_is_checked_on_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTOJ_TEST_TOKEN", TOKEN)
    ops = OpsConfig(port=0, token_env="CRYPTOJ_TEST_TOKEN")
    with running(tmp_path, ops=ops, flags=FLAGS) as r:
        good = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/health", "/ready", "/metrics", "/status", "/flags"):
            code, headers, _ = request(r.port, path)
            assert code == 401, path
            assert headers["www-authenticate"] == "Bearer"
            assert request(r.port, path, headers={"Authorization": "Bearer wrong"})[0] == 401
            assert request(r.port, path, headers={"Authorization": TOKEN})[0] == 401  # no scheme
            assert request(r.port, path, headers=good)[0] in (200, 503), path
        change = {"flags": {"order_splitting": True}}
        assert request(r.port, "/control/flags", method="POST", body=change)[0] == 401
        assert request(r.port, "/control/shutdown", method="POST", body={})[0] == 401
        assert r.daemon.rt is not None and not r.daemon.rt.exit_event.is_set()
        assert request(r.port, "/control/flags", method="POST", body=change, headers=good)[0] == 200


def test_control_is_refused_to_browsers_foreign_hosts_and_remote_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(tmp_path, flags=FLAGS) as r:
        body = {"flags": {"order_splitting": True}}
        # DNS rebinding: a loopback bind only answers requests naming a loopback host
        assert request(r.port, "/status", headers={"Host": "evil.example:80"})[0] == 403
        assert request(r.port, "/status", headers={"Host": f"localhost:{r.port}"})[0] == 200
        # a page in a browser: Origin header, or a form post (not JSON)
        origin = {"Origin": "http://evil.example"}
        assert request(r.port, "/control/flags", method="POST", body=body, headers=origin)[0] == 403
        form = {"Content-Type": "text/plain"}
        assert request(r.port, "/control/flags", method="POST", body=b"{}", headers=form)[0] == 415
        # a non-loopback client (simulated): refused unless ops.control_remote
        monkeypatch.setattr("cryptoj.ops.server.client_is_local", lambda address: False)
        code, err = get_json(r.port, "/control/flags", method="POST", body=body)
        assert code == 403 and "loopback" in err["error"]
        assert r.daemon.endpoint is not None
        r.daemon.endpoint.control_remote = True
        assert request(r.port, "/control/flags", method="POST", body=body)[0] == 200
        assert r.daemon.ctx is not None and r.daemon.ctx.flags.values()["order_splitting"] is True


def test_flag_changes_on_a_running_daemon_are_journalled_and_visible(tmp_path: Path) -> None:
    with running(tmp_path, flags=FLAGS) as r:
        change = {
            "flags": {"order_splitting": True, "strategy.breakout.allocation": 0.05},
            "reason": "canary 5%",
        }
        code, out = get_json(r.port, "/control/flags", method="POST", body=change)
        assert code == 200, out
        assert out["changed"] == [
            {"flag": "order_splitting", "old": False, "new": True},
            {"flag": "strategy.breakout.allocation", "old": 0.0, "new": 0.05},
        ]
        _, flags = get_json(r.port, "/flags")
        assert flags["order_splitting"]["value"] is True
        assert flags["order_splitting"]["source"] == "control"
        assert flags["order_splitting"]["reason"] == "canary 5%"
        assert flags["order_splitting"]["config"] is False
        # refused changes leave everything as it was (all or nothing)
        for bad, why in (
            ({"flags": {"order_splitting": False, "nope": True}}, "flags.nope: unknown flag"),
            ({"flags": {"order_splitting": 1}}, "expected true or false"),
            ({"flags": {"strategy.breakout.allocation": True}}, "expected a number"),
            ({"flags": "x"}, "expected"),
        ):
            code, err = get_json(r.port, "/control/flags", method="POST", body=bad)
            assert code == 400 and why in err["error"], err
        assert get_json(r.port, "/flags")[1]["order_splitting"]["value"] is True
        text = request(r.port, "/metrics")[2].decode()
        assert 'cryptoj_feature_flag{flag="order_splitting"} 1.0' in text
        assert 'cryptoj_feature_flag{flag="strategy.breakout.allocation"} 0.05' in text
        assert "cryptoj_feature_flag_changes_total 2.0" in text
        status = get_json(r.port, "/status")[1]
        assert status["flags"]["strategy.breakout.allocation"]["value"] == 0.05
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        rows = db.execute("SELECT actor, kind, detail FROM events WHERE actor = 'ops' ORDER BY seq")
        events = [(k, json.loads(d)) for _, k, d in rows]
    assert events[0] == ("flags_loaded", FLAGS)
    changed = [d for k, d in events if k == "flag_changed"]
    assert [(d["flag"], d["old"], d["new"], d["reason"]) for d in changed] == [
        ("order_splitting", False, True, "canary 5%"),
        ("strategy.breakout.allocation", 0.0, 0.05, "canary 5%"),
    ]
    assert changed[0]["by"] == "http 127.0.0.1"


def test_control_shutdown_stops_the_daemon_in_order_with_exit_0(tmp_path: Path) -> None:
    with running(tmp_path) as r:
        code, body = get_json(
            r.port, "/control/shutdown", method="POST", body={"reason": "upgrade"}
        )
        assert code == 202 and body == {"accepted": True, "reason": "upgrade"}
        assert r.wait_exit() == 0
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        kinds = db.execute("SELECT detail FROM events WHERE kind = 'shutdown_requested'")
        assert [d for (d,) in kinds] == ["control: upgrade"]


def test_a_port_in_use_ends_the_start_with_exit_2(tmp_path: Path) -> None:
    with running(tmp_path) as r:
        second = Daemon(_config(tmp_path / "b", 300), ops=OpsConfig(port=r.port))
        assert second.run() == 2


# -- the status command ---------------------------------------------------------------------------


def test_status_command_prints_the_tree_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.yaml here: defaults
    with running(tmp_path, flags=FLAGS, speed=1500) as r:
        poll(lambda: get_json(r.port, "/status")[1]["portfolio"]["positions"], "a position", 30)
        assert main(["status", "--port", str(r.port)]) == 0
        text = capsys.readouterr().out
        assert main(["status", "--port", str(r.port), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
    lines = text.splitlines()
    assert re.match(r"cryptoj pid \d+ · paper · up \S+ · market time 2018-04-04 ", lines[0])
    assert lines[1] == "health ok · ready yes"
    tree = "\n".join(lines[lines.index("actors") : lines.index("actors") + 11])
    for row in (
        "shutdown",
        "└─ root",
        "   ├─ trading",
        "   │  ├─ portfolio",
        "   │  └─ execution",
        "   └─ feeds",
        "      └─ feed",
    ):
        assert f"  {row} " in tree, tree
    assert re.search(r"\n  shutdown +up +1 +0 +\d+ +\d+", tree)
    assert "feed replay: healthy" in text
    assert "connected    generation 1" in text
    assert "risk level NORMAL · daily loss" in text
    assert re.search(r"\n  (BTC|ETH)-USD +\d+\.\d{8} ", text), text
    assert "open orders" in text
    assert "  order_splitting = off  (config)" in text
    assert "  strategy.breakout.allocation = 0  (config)" in text
    assert "last errors and warnings: none" in text
    assert data["health"]["status"] == "ok" and data["ready"]["ready"] is True
    assert [a["name"] for a in data["actors"]][-1] == "feed"
    assert data["portfolio"]["positions"]


def test_status_without_a_daemon_says_so_with_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with running(tmp_path) as r:
        port = r.port
    assert main(["status", "--port", str(port), "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert f"no cryptoj daemon answering at http://127.0.0.1:{port}" in err


# -- the runtime pieces -----------------------------------------------------------------------


class Flagged(Actor):
    """Records every FlagsChanged; answers status requests, or fails at them."""

    kind = "flagged"

    def __init__(self, seen: list[FlagsChanged], arrived: threading.Event, fail: bool) -> None:
        self.seen = seen
        self.arrived = arrived
        self.fail = fail

    def _handle_flags_changed(self, msg: FlagsChanged, ctx: Context) -> None:
        self.seen.append(msg)
        self.arrived.set()

    def _handle_status_request(self, msg: StatusRequest, ctx: Context) -> ActorStatus:
        if self.fail:
            raise RuntimeError("status handler bug")
        return ActorStatus(ts=ctx.now(), kind="flagged", figures=(("seen", str(len(self.seen))),))


class Plain(Actor):
    """No flag handler, no status handler."""

    kind = "plain"


def _runtime(seen: list[FlagsChanged], arrived: threading.Event, fail: bool = False) -> OpsRuntime:
    registry = {
        "flagged": Registered("flagged", "main", lambda: Flagged(seen, arrived, fail)),
        "plain": Registered("plain", "main", Plain),
    }
    return OpsRuntime(seed=1, clock=ScaledClock(time.time_ns(), 1.0), registry=registry)


def test_flag_changes_reach_the_actors_that_handle_them_also_after_a_restart() -> None:
    seen: list[FlagsChanged] = []
    arrived = threading.Event()
    rt = _runtime(seen, arrived)
    store = FlagStore({"x": False}, journal_path=None, clock=rt.clock.now, on_change=rt.broadcast)
    rt.on_started = lambda name: store.message() if store.version else None
    try:
        rt.start("flagged")
        rt.start("plain")
        store.set({"x": True}, by="test", reason="try")
        assert arrived.wait(5)
        assert seen[-1].flags == (("x", True),) and seen[-1].changed == ("x",)
        assert seen[-1].version == 1 and seen[-1].get("x", False) is True
        assert rt.stats.dead_letters == 0  # 'plain' has no handler and was not sent anything
        arrived.clear()
        rt.stop("flagged", report=False)
        assert rt.start("flagged") == 2  # a new instance: it gets the flags in force
        assert arrived.wait(5)
        assert seen[-1].flags == (("x", True),)
        assert store.set({"x": True}, by="test", reason="same") == []  # no change, no message
    finally:
        rt.shutdown()


def test_a_status_probe_is_answered_in_the_actor_and_never_crashes_it() -> None:
    rt = _runtime([], threading.Event(), fail=True)
    try:
        rt.start("flagged")
        rt.start("plain")
        assert rt.probe("flagged", 2.0) is None  # its handler raised: no reply ...
        assert rt.is_alive("flagged") and rt.stats.crashes == 0  # ... and no crash
        reply = rt.probe("plain", 2.0)
        assert reply == ActorStatus(ts=reply.ts, kind="plain") if reply else False
        assert rt.probe("missing", 0.5) is None
        assert rt.stats.delivered == 0  # probes are not counted (nor traced)
    finally:
        rt.shutdown()
    rt = _runtime([], threading.Event())
    try:
        rt.start("flagged")
        reply = rt.probe("flagged", 2.0)
        assert isinstance(reply, ActorStatus) and reply.figures == (("seen", "0"),)
    finally:
        rt.shutdown()


def test_the_tap_measures_slippage_against_the_arrival_mid() -> None:
    registry = CollectorRegistry()
    tap = Tap(registry)
    Tap(CollectorRegistry())  # one registry per daemon: a second one does not clash

    def deliver(actor: str, msg: Any, sender: str = "x") -> None:
        tap.observe(actor, Envelope(msg, sender, "m1", "m1", ""), 1000)

    deliver("portfolio", quote("BTC-USD", bid="99.9", ask="100.1"))  # mid 100
    order = SubmitOrder(
        client_order_id="c1",
        product="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(1),
    )
    deliver("execution", order)
    fill = Fill(
        fill_id="f1",
        client_order_id="c1",
        product="BTC-USD",
        side=Side.BUY,
        quantity=Decimal(1),
        price=Decimal("100.5"),
        fee=Decimal(0),
        liquidity="TAKER",
    )
    deliver("execution", fill, sender="venue")
    deliver("portfolio", fill, sender="execution")  # the forwarded copy is not counted twice
    assert registry.get_sample_value("cryptoj_slippage_bps_count", {"product": "BTC-USD"}) == 1
    assert registry.get_sample_value("cryptoj_slippage_bps_sum", {"product": "BTC-USD"}) == 50
    assert tap.view()["messages"] == {"portfolio": 2, "execution": 2}
    # a split order: its children's fills count against the parent's arrival mid
    child_fill = msgspec.structs.replace(
        fill, fill_id="f2", client_order_id="c1-c3", price=Decimal("99.8")
    )
    deliver("execution", child_fill, sender="venue")
    assert registry.get_sample_value("cryptoj_slippage_bps_count", {"product": "BTC-USD"}) == 2
    assert registry.get_sample_value("cryptoj_slippage_bps_sum", {"product": "BTC-USD"}) == 30
    closed = OrderClosed(
        client_order_id="c1",
        product="BTC-USD",
        status=OrderStatus.FILLED,
        filled_quantity=Decimal(2),
    )
    deliver("portfolio", closed, sender="execution")  # the parent's close ends its arrival
    deliver("execution", msgspec.structs.replace(child_fill, fill_id="f3"), sender="venue")
    assert registry.get_sample_value("cryptoj_slippage_bps_count", {"product": "BTC-USD"}) == 2


# -- as an operator sees it -----------------------------------------------------------------------


def test_a_daemon_process_serves_metrics_to_curl_and_status(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"feed:\n  speed: 300\n  products: [BTC-USD, ETH-USD]\n"
        f"journal:\n  path: {tmp_path / 'journal.sqlite'}\ntrace:\n  enabled: false\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = spawn_daemon(cfg, "run", "--ops-port", "0")
    assert proc.stdout is not None
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"ops endpoint on http://127\.0\.0\.1:(\d+)", line)
            port = int(m.group(1)) if m else None
        assert port, "the daemon did not log its ops endpoint"
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
        url = f"http://127.0.0.1:{port}/metrics"
        if shutil.which("curl"):
            text = subprocess.run(
                ["curl", "-sf", "--max-time", "10", url], capture_output=True, text=True, check=True
            ).stdout
        else:
            text = request(port, "/metrics")[2].decode()
        fams = parse_families(text)
        assert "cryptoj_actor_messages" in fams and "cryptoj_feed_state" in fams
        status = subprocess.run(
            [sys.executable, "-m", "cryptoj", "status", "--config", str(cfg), "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert status.returncode == 0, status.stderr
        assert "└─ root" in status.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_log_file_is_rotated_by_size_and_old_files_are_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loguru import logger

    from cryptoj import daemon

    assert (daemon.LOG_MAX_BYTES, daemon.LOG_MAX_FILES) == (10_000_000, 5)  # the documented ones
    monkeypatch.setattr(daemon, "LOG_MAX_BYTES", 2_000)
    monkeypatch.setattr(daemon, "LOG_MAX_FILES", 2)
    log = tmp_path / "cryptoj.log"
    daemon.setup_logging(parse_config({"logging": {"file": str(log)}}), log_json=False)
    try:
        for i in range(100):
            logger.info("line {} {}", i, "x" * 100)
    finally:
        logger.remove()
        logger.add(sys.stderr)
    rotated = sorted(p.name for p in tmp_path.glob("cryptoj.*.log"))
    assert log.is_file() and len(rotated) == 2, rotated  # current file + the 2 newest kept
    assert "line 99 " in log.read_text()
    assert all(p.stat().st_size < 2_500 for p in tmp_path.glob("cryptoj*.log"))
