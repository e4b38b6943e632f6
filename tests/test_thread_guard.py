"""No daemon thread dies silently (issue 16, item 2).

The guard on its own (states, backoff, ``dead``, the excepthook), then the watchdog test: the
real daemon trading the local fake exchange live, each of its guarded threads made to raise in
turn inside its real loop (a test double replaces one call the loop makes, raising until the
test releases it). Each time ``/health`` and ``/ready`` must report the thread unhealthy, and
after the release the thread must run again, with the crash in ``/metrics`` and ``/status``.
Every wait is on a condition with a generous deadline; the figures are printed (``-s``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from cryptoj.adapters.coinbase.execution.user_channel import UserChannel
from cryptoj.adapters.coinbase.execution.venue import CoinbaseVenue
from cryptoj.adapters.coinbase.fake.auth import write_key_file
from cryptoj.adapters.coinbase.jwt_auth import Credentials, ws_jwt_factory
from cryptoj.config.ops import OpsConfig
from cryptoj.daemon import Daemon
from cryptoj.ops.metrics import parse_families
from cryptoj.supervision.guard import ThreadBoard, ThreadGuard, excepthook
from tests.test_coinbase_exec_actor import fake_key, live_config  # noqa: F401 - a fixture
from tests.test_ops import get_json, request

#: Coinbase sends a heartbeat every second (adapters/coinbase/config.py): the interval within
#: which a dead thread must show in /health and be restarted.
HEARTBEAT_INTERVAL_S = 1.0


def wait_for(cond: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    """``cond()`` until truthy (bounded); its value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


class Fault:
    """Stands in for one call a thread's loop makes: raises while on, else calls the original."""

    def __init__(self, original: Callable[..., Any], what: str) -> None:
        self.original = original
        self.what = what
        self.on = True
        self.raised = 0

    def __call__(self, *args: Any, **kw: Any) -> Any:
        if self.on:
            self.raised += 1
            raise RuntimeError(f"injected fault in {self.what}")
        return self.original(*args, **kw)


@pytest.fixture
def errors() -> Iterator[list[Any]]:
    """The loguru records at ERROR and above."""
    records: list[Any] = []
    sink = logger.add(lambda m: records.append(m.record), level="ERROR", format="{message}")
    yield records
    logger.remove(sink)


# -- the guard on its own -------------------------------------------------------------------------


def test_a_guarded_loop_that_raises_is_logged_counted_marked_and_restarted(
    errors: list[Any],
) -> None:
    board = ThreadBoard()
    guard = ThreadGuard("t-unit", "unit", board=board, min_delay_s=0.01, max_delay_s=0.05)
    stop, broken, calls = threading.Event(), threading.Event(), []
    broken.set()

    def loop() -> None:
        calls.append(1)
        while not stop.wait(0.005):
            if broken.is_set():
                raise ValueError("boom")
            guard.beat()

    t = threading.Thread(target=guard.run, args=(loop, stop), name="t-unit", daemon=True)
    t.start()
    wait_for(lambda: guard.state == "restarting" and board.unhealthy(), "restarting")
    assert board.unhealthy()[0]["name"] == "t-unit"
    broken.clear()
    wait_for(lambda: guard.state == "running", "running again")
    assert guard.crashes >= 1 and guard.restarts >= 1 and len(calls) == guard.restarts + 1
    assert board.crashes() == {"t-unit": guard.crashes}
    assert board.unhealthy() == []
    crash = next(r for r in errors if "t-unit" in r["message"])
    assert crash["exception"] is not None and "boom" in crash["message"]
    stop.set()
    t.join(5)
    assert not t.is_alive() and guard.state == "stopped" and board.threads() == []


def test_the_backoff_starts_within_a_heartbeat_and_grows_to_its_bound() -> None:
    guard = ThreadGuard("t", "c", board=ThreadBoard())
    worst_first = guard.delay_s(0, 0.999_999)
    assert worst_first < HEARTBEAT_INTERVAL_S  # the first restart comes within the interval
    assert guard.delay_s(1, 0.5) == pytest.approx(2 * guard.delay_s(0, 0.5))
    assert guard.delay_s(60, 0.5) == pytest.approx(guard.max_delay_s)
    with pytest.raises(ValueError, match="min_delay_s"):
        ThreadGuard("t", "c", min_delay_s=0)


def test_a_loop_ended_by_system_exit_is_dead_and_stays_on_the_board(errors: list[Any]) -> None:
    board = ThreadBoard()
    guard = ThreadGuard("t-dead", "unit", board=board)

    def loop() -> None:
        raise SystemExit(3)

    t = threading.Thread(target=guard.run, args=(loop, threading.Event()), daemon=True)
    t.start()
    t.join(5)
    assert [x["state"] for x in board.unhealthy()] == ["dead"]
    assert board.crashes() == {"t-dead": 1}
    assert any("t-dead" in r["message"] and r["exception"] is not None for r in errors)


def test_the_excepthook_sends_an_uncaught_exception_to_loguru_and_the_counter(
    errors: list[Any],
) -> None:
    board = ThreadBoard()

    def hook(args: threading.ExceptHookArgs) -> None:
        excepthook(args, board)

    def fail() -> None:
        raise KeyError("lost")

    previous = threading.excepthook
    threading.excepthook = hook
    try:
        t = threading.Thread(target=fail, name="raw-thread")
        t.start()
        t.join(5)
    finally:
        threading.excepthook = previous
    assert board.crashes() == {"raw-thread": 1}
    assert any("raw-thread" in r["message"] and r["exception"] is not None for r in errors)


def test_the_user_channel_logs_its_life_without_any_token(fake_key: Any) -> None:  # noqa: F811
    fake, key = fake_key
    lines: list[str] = []
    sink = logger.add(  # with the tracebacks, as the daemon's sinks (setup_logging) write them
        lambda m: lines.append(str(m)),
        level="INFO",
        format="{level} {message}\n{exception}",
        diagnose=False,
    )
    make = ws_jwt_factory(Credentials(key.name, key.private_pem))
    tokens: list[str] = []

    def jwt() -> str | None:
        token = make()
        if token:
            tokens.append(token)
        return token

    lives: list[int] = []
    board = ThreadBoard()
    uc = UserChannel(
        fake.ws_url,
        jwt,
        on_updates=lambda updates: None,
        on_live=lives.append,
        on_gap=lambda: None,
        ca_file=fake.ca_file,
        stale_after_s=2.0,
        guard=ThreadGuard("coinbase-user", "venue", board=board, min_delay_s=0.02),
    )
    uc.start()
    try:
        wait_for(lambda: lives, "the channel live")
        fault = Fault(uc.session.tick, "the user channel")
        uc.session.tick = fault  # type: ignore[method-assign]
        wait_for(lambda: uc.guard.state == "restarting", "the crash")
        fault.on = False
        wait_for(lambda: uc.guard.state == "running" and len(lives) >= 2, "live again")
    finally:
        uc.stop()
        logger.remove(sink)
    text = "\n".join(lines)
    assert "coinbase user channel: connected to" in text
    assert "coinbase user channel: subscribed, live" in text
    assert "resubscribed after a reconnect" in text
    assert "thread coinbase-user (venue) crashed" in text
    assert "injected fault in the user channel" in text and "Traceback" in text
    assert "coinbase user channel: stopped" in text
    assert tokens and not any(token in text for token in tokens)
    assert key.name not in text and "PRIVATE KEY" not in text


def test_a_flood_of_gaps_or_bad_frames_leaves_one_line_per_interval_and_no_token() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    uc = UserChannel(
        "wss://someone:secret@127.0.0.1:1/ws",
        lambda: None,
        on_updates=lambda updates: None,
        on_live=lambda n: None,
        on_gap=lambda: None,
        guard=ThreadGuard("coinbase-user", "venue", board=ThreadBoard()),
    )
    uc._gap_log.every_s = uc._bad_log.every_s = float("inf")  # the whole flood in one interval
    try:
        for i in range(10_000):
            uc._gap(i, i + 2)
            uc._bad_frame("error frame: eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln")
    finally:
        logger.remove(sink)
    assert len([x for x in lines if "sequence gap" in x]) == 1
    assert len([x for x in lines if "unreadable frame" in x]) == 1
    assert "eyJ" not in "".join(lines) and "<token>" in "".join(lines)
    assert uc._where == "wss://127.0.0.1:1/ws"  # no user information in what is logged


# -- the watchdog: every guarded thread of the real daemon ---------------------------------------


@dataclass
class Target:
    """One guarded thread and the call of its loop the test double replaces."""

    thread: str
    component: str
    holder: Callable[[Any], Any]  # the daemon → the object whose method is replaced
    attr: str
    over_http: bool = True  # False for the ops server itself: it cannot answer while down


TARGETS = (
    Target("cryptoj-timers", "runtime", lambda d: d.rt.timers, "_wait_s"),
    Target("cryptoj-wal-checkpoint", "journal", lambda d: d.rt.checkpointer, "_checkpoint"),
    Target("trace-flush", "trace", lambda d: d.rt.trace, "_flush_due"),
    Target("coinbase-user", "venue", lambda d: d.system.venue.user_channel.session, "tick"),
    Target("coinbase-rest", "feed", lambda d: d.ctx.live_feed.rest_worker, "revive"),
    Target("coinbase-delivery", "feed", lambda d: d.ctx.live_feed.delivery, "_next_batch"),
    Target("cryptoj-ops", "ops", lambda d: d.endpoint.httpd, "handle_request", over_http=False),
)


def unhealthy_over_http(port: int, name: str, state: str = "restarting") -> bool:
    code, health = get_json(port, "/health")
    bad = {t["name"]: t for t in health["threads"]["unhealthy"]}
    if name not in bad or bad[name]["state"] != state or code != 200 or health["status"] == "ok":
        return False
    code, ready = get_json(port, "/ready")
    check = ready["checks"]["threads"]
    return code == 503 and not check["ok"] and name in check["detail"]


def test_every_guarded_daemon_thread_is_reported_and_restarted_when_it_dies(
    tmp_path: Path,
    fake_key: Any,  # noqa: F811
    errors: list[Any],
) -> None:
    fake, key = fake_key
    cfg = live_config(
        tmp_path,
        fake,
        write_key_file(key, tmp_path / "key.json"),
        trace={"enabled": True, "path": str(tmp_path / "trace.jsonl")},
    )
    d = Daemon(cfg, ops=OpsConfig(port=0), live=True)
    result: dict[str, int] = {}
    runner = threading.Thread(target=lambda: result.setdefault("code", d.run()), daemon=True)
    runner.start()
    figures: list[str] = []
    try:
        assert d.ready.wait(30), "daemon did not start"
        assert d.endpoint is not None and d.ctx is not None
        port, board = d.endpoint.port, d.ctx.threads
        names = {t.thread for t in TARGETS}

        def listed() -> dict[str, dict[str, Any]]:
            return {t["name"]: t for t in board.threads() if t["name"] in names}

        wait_for(lambda: set(listed()) == names, "every guarded thread listed")
        health = get_json(port, "/health")[1]
        assert health["threads"] == {"ok": True, "unhealthy": []}, health
        for target in TARGETS:
            holder = target.holder(d)
            fault = Fault(getattr(holder, target.attr), target.thread)
            t0 = time.monotonic()
            setattr(holder, target.attr, fault)
            try:
                wait_for(
                    lambda tg=target: listed()[tg.thread]["state"] == "restarting",
                    f"{target.thread} restarting",
                )
                t_board = time.monotonic() - t0
                if target.over_http:
                    wait_for(
                        lambda tg=target: unhealthy_over_http(port, tg.thread),
                        f"{target.thread} unhealthy in /health and /ready",
                    )
                t_http = time.monotonic() - t0
            finally:
                fault.on = False
                t1 = time.monotonic()
            wait_for(
                lambda tg=target: listed()[tg.thread]["state"] == "running",
                f"{target.thread} running again",
            )
            t_back = time.monotonic() - t1
            info = listed()[target.thread]
            assert info["component"] == target.component
            assert info["crashes"] >= 1 and info["restarts"] >= 1, info
            assert "injected fault" in info["last_error"]
            figures.append(
                f"{target.thread}: {fault.raised} crash(es); restarting on the board after "
                f"{t_board:.3f}s, in /health+/ready after {t_http:.3f}s; running "
                f"{t_back:.3f}s after the fault was lifted"
            )
            wait_for(lambda: get_json(port, "/health")[1]["threads"]["ok"], "healthy again")
        # every crash is in /metrics and /status; the excepthook catches a raw thread too
        raw = threading.Thread(target=lambda: 1 / 0, name="watchdog-raw")
        raw.start()
        raw.join(5)
        families = parse_families(request(port, "/metrics")[2].decode())
        crashes = {
            s.labels["thread"]: s.value
            for s in families["cryptoj_thread_crashes"].samples
            if s.name.endswith("_total")
        }
        for target in TARGETS:
            assert crashes[target.thread] >= 1, crashes
        assert crashes["watchdog-raw"] == 1
        up = {s.labels["thread"]: s.value for s in families["cryptoj_thread_up"].samples}
        assert all(up[n] == 1 for n in names), up
        status = get_json(port, "/status")[1]
        states = {t["name"]: t for t in status["threads"]}
        assert all(states[n]["state"] == "running" and states[n]["restarts"] >= 1 for n in names)
        assert status["thread_crashes"]["watchdog-raw"] == 1
        # a thread that blocks (no crash) reads as stalled once it has not beaten for its
        # stall_after_s (30 s in the daemon; 0.3 s here), and as running at its next beat
        assert d.rt is not None and d.rt.checkpointer is not None
        checkpointer = d.rt.checkpointer
        checkpointer.guard.stall_after_s = 0.3
        release = threading.Event()
        real = checkpointer._checkpoint

        def blocked(db: Any) -> None:
            release.wait(20)
            real(db)

        checkpointer._checkpoint = blocked  # type: ignore[method-assign]
        t0 = time.monotonic()
        try:
            wait_for(
                lambda: unhealthy_over_http(port, "cryptoj-wal-checkpoint", "stalled"),
                "the blocked checkpointer stalled in /health and /ready",
            )
            t_stalled = time.monotonic() - t0
        finally:
            checkpointer._checkpoint = real  # type: ignore[method-assign]
            release.set()
        wait_for(lambda: listed()["cryptoj-wal-checkpoint"]["state"] == "running", "unblocked")
        figures.append(f"cryptoj-wal-checkpoint blocked: stalled in /health after {t_stalled:.3f}s")
        # the daemon kept trading: the user channel is live again and the feed delivers
        assert d.system is not None and isinstance(d.system.venue, CoinbaseVenue)
        uc = d.system.venue.user_channel
        assert uc is not None
        wait_for(lambda: uc.is_live, "the user channel live again")
        assert any("watchdog-raw" in r["message"] and r["exception"] for r in errors)
    finally:
        d.request_stop("test")
        runner.join(30)
        print("\n" + "\n".join(figures))
    assert result.get("code") == 0
    # stopped threads leave the board; nothing is dead
    assert not [t for t in board.threads() if t["name"] in names]
