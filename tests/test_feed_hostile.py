"""Hostile market data at the boundary: the real feed client against the test's own small
websocket server on 127.0.0.1 (``tests/hostile_ws.py``).

For each hostile input (NaN, sNaN and infinite prices and sizes in level2, ticker and trades;
negative sizes; a crossed book; a 100,000-deep object; a 10 MB frame; a flood of bad frames)
the feed stays up, the bad frame is dropped and counted by reason, the product goes stale, no
bad value reaches the callback, and the product recovers by resync. Every wait is bounded
(conditions with a generous deadline, nothing timed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from cryptoj.adapters.coinbase import CoinbaseFeed, CoinbaseFeedConfig
from cryptoj.cli import main
from cryptoj.config import parse_config
from cryptoj.config.ops import OpsConfig
from cryptoj.daemon import Daemon
from cryptoj.models.market import FeedStatus, Quote, Trade
from tests.hostile_ws import TIMESTAMP, HostileServer, feed_settings, good_ticker
from tests.test_coinbase_fake import Recorder, wait_until
from tests.test_feed_ops import _samples
from tests.test_ops import get_json, poll

PRODUCTS = ["BTC-USD", "ETH-USD"]
DEADLINE_S = 20.0


def feed_config(server: HostileServer, **kw: Any) -> CoinbaseFeedConfig:
    """The feed of ``server`` (:func:`~tests.hostile_ws.feed_settings`), unconflated."""
    settings = feed_settings(server, conflate_ms=0.0, drop_log_interval_s=600.0, **kw)
    return CoinbaseFeedConfig(**{**settings, "ws_urls": tuple(settings["ws_urls"])})


@pytest.fixture
def server() -> Iterator[HostileServer]:
    s = HostileServer().start()
    yield s
    s.stop()


@pytest.fixture
def lines() -> Iterator[list[str]]:
    out: list[str] = []
    sink = logger.add(lambda m: out.append(str(m)), level="INFO", format="{level} {message}")
    yield out
    logger.remove(sink)


@pytest.fixture
def run(
    server: HostileServer,
) -> Iterator[Callable[..., tuple[CoinbaseFeed, Recorder]]]:
    feeds: list[CoinbaseFeed] = []

    def start(**kw: Any) -> tuple[CoinbaseFeed, Recorder]:
        rec = Recorder()
        feed = CoinbaseFeed(feed_config(server, **kw), PRODUCTS, rec, seed=1)
        feeds.append(feed)
        feed.start()
        assert wait_until(
            lambda: feed.state() == "healthy" and all(c.lives for c in feed.connections),
            DEADLINE_S,
        ), feed.status()
        return feed, rec

    yield start
    for f in feeds:
        f.stop()
        assert not any(c.is_alive() for c in f.connections)


def l2_update(product: str, side: str, price: str, size: str) -> list[dict[str, Any]]:
    level = {"side": side, "event_time": TIMESTAMP, "price_level": price, "new_quantity": size}
    return [{"type": "update", "product_id": product, "updates": [level]}]


def trade(product: str, price: str, size: str, trade_id: str) -> list[dict[str, Any]]:
    t = {"product_id": product, "trade_id": trade_id, "price": price, "size": size,
         "time": TIMESTAMP, "side": "BUY"}  # fmt: skip
    return [{"type": "update", "trades": [t]}]


def clean(events: list[Any]) -> bool:
    """No quote or trade carries a non-finite, non-positive price or a negative size."""
    for e in events:
        if isinstance(e, Quote):
            values = (e.bid, e.ask, e.bid_size, e.ask_size)
            if not all(v.is_finite() for v in values):
                return False
            if e.bid <= 0 or e.bid_size < 0 or e.ask_size < 0 or e.bid >= e.ask:
                return False
            if e.bid >= Decimal(1000):  # the crossed bid of 1,000,000 never became a quote
                return False
        elif isinstance(e, Trade):
            if not (e.price.is_finite() and e.quantity.is_finite()):
                return False
            if e.price <= 0 or e.quantity < 0:
                return False
    return True


def recovered_after(rec: Recorder, mark: int, products: list[str]) -> bool:
    with rec.lock:
        later = rec.events[mark:]
    back = {p for e in later if isinstance(e, FeedStatus) and e.state == "recovered"
            for p in e.products}  # fmt: skip
    return set(products) <= back


def hostile_round(
    feed: CoinbaseFeed,
    server: HostileServer,
    rec: Recorder,
    send: Callable[[], None],
    reason: str,
    stale: list[str],
    count: int = 1,
) -> dict[str, Any]:
    """Send a hostile input with snapshots held: dropped and counted, products stale, feed up;
    then release: the products recover by resync. Returns what was observed."""
    before = feed.status()
    dropped0 = before["dropped"][reason]
    resyncs0 = before["resyncs"]
    mark = len(rec.events)
    server.hold_snapshots = True
    send()

    def dropped_and_stale() -> bool:
        st = feed.status()
        return st["dropped"][reason] >= dropped0 + count and set(stale) <= set(st["stale_products"])

    assert wait_until(dropped_and_stale, DEADLINE_S), feed.status()
    during = feed.status()
    assert during["state"] == "stale" and during["connected"]
    assert during["dropped"][reason] == dropped0 + count
    assert during["thread_crashes"] == 0 and all(c.is_alive() for c in feed.connections)
    with rec.lock:
        stale_events = [
            e for e in rec.events[mark:] if isinstance(e, FeedStatus) and e.state == "stale"
        ]
    assert {p for e in stale_events for p in e.products} >= set(stale)
    server.release()
    assert wait_until(
        lambda: feed.state() == "healthy" and recovered_after(rec, mark, stale), DEADLINE_S
    ), feed.status()
    with rec.lock:
        assert clean(rec.events)
    after = feed.status()
    return {
        "reason": reason,
        "dropped": after["dropped"][reason] - dropped0,
        "resyncs": after["resyncs"] - resyncs0,
        "stale": sorted(during["stale_products"]),
        "state_during": during["state"],
        "state_after": after["state"],
    }


def raise_once_in_tick(session: Any, error: BaseException) -> None:
    """Make the next ``session.tick`` (run on the connection's own thread) raise ``error``;
    later ticks run as before."""
    real_tick = session.tick
    armed = [True]

    def tick(now: int) -> Any:
        if armed[0]:
            armed[0] = False
            raise error
        return real_tick(now)

    session.tick = tick


def test_level2_and_trade_values_are_checked_dropped_counted_and_resynced(
    run: Callable[..., tuple[CoinbaseFeed, Recorder]],
    server: HostileServer,
    lines: list[str],
) -> None:
    feed, rec = run(channels=("level2", "ticker", "market_trades"))
    btc = ["BTC-USD"]
    cases: list[tuple[Callable[[], None], str, list[str]]] = [
        (lambda: server.send_frame("l2_data", l2_update("BTC-USD", "bid", "NaN", "1")),
         "nonfinite_price", btc),
        (lambda: server.send_frame("l2_data", l2_update("BTC-USD", "bid", "sNaN", "1")),
         "nonfinite_price", btc),
        (lambda: server.send_frame("l2_data", l2_update("BTC-USD", "offer", "Infinity", "1")),
         "nonfinite_price", btc),
        (lambda: server.send_frame("l2_data", l2_update("BTC-USD", "bid", "99.5", "NaN")),
         "nonfinite_size", btc),
        (lambda: server.send_frame("l2_data", l2_update("BTC-USD", "bid", "99.5", "sNaN")),
         "nonfinite_size", btc),
        (lambda: server.send_frame("l2_data", l2_update("BTC-USD", "bid", "99.5", "-5")),
         "negative_size", btc),
        (lambda: server.send_frame("l2_data", l2_update("BTC-USD", "bid", "-100", "1")),
         "nonpositive_price", btc),
        (lambda: server.send_frame("l2_data", l2_update("BTC-USD", "bid", "1e40", "1")),
         "price_out_of_range", btc),
        (lambda: server.send_frame("l2_data", l2_update("BTC-USD", "bid", "1000000", "1")),
         "crossed_book", btc),
        (lambda: server.send_frame("market_trades", trade("BTC-USD", "NaN", "0.1", "t1")),
         "nonfinite_price", btc),
        (lambda: server.send_frame("market_trades", trade("BTC-USD", "sNaN", "0.1", "t2")),
         "nonfinite_price", btc),
        (lambda: server.send_frame("market_trades", trade("BTC-USD", "100", "sNaN", "t3")),
         "nonfinite_size", btc),
        (lambda: server.send_frame("market_trades", trade("BTC-USD", "100", "-5", "t4")),
         "negative_size", btc),
        (lambda: server.send_raw(b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
         "undecodable", PRODUCTS),
        (lambda: server.send_raw(b'{"channel":"l2_data","pad":"' + b"x" * (10 << 20) + b'"}'),
         "oversize", PRODUCTS),
        (lambda: server.send_raw(b"not json at all"), "malformed", []),
    ]  # fmt: skip
    observed = []
    for send, reason, stale in cases:
        if not stale:  # a frame of no known channel: counted and dropped, nothing to resync
            before = feed.status()["dropped"][reason]
            send()
            assert wait_until(
                lambda r=reason, b=before: feed.status()["dropped"][r] == b + 1, DEADLINE_S
            )
            assert feed.state() == "healthy"
            continue
        observed.append(hostile_round(feed, server, rec, send, reason, stale))
    for o in observed:
        print("hostile input:", o)
        assert o["dropped"] == 1 and o["resyncs"] == 1 and o["state_after"] == "healthy", o

    # a flood: 2,000 bad frames cost one resync and one log line, every one is counted
    flood = 2000
    marked = len(lines)

    def send_flood() -> None:
        for i in range(flood):
            server.send_frame("l2_data", l2_update("ETH-USD", "bid", "NaN", str(i)))

    o = hostile_round(feed, server, rec, send_flood, "nonfinite_price", ["ETH-USD"], flood)
    print("flood:", o)
    assert o["dropped"] == flood and o["resyncs"] == 1, o
    drop_lines = [ln for ln in lines[marked:] if "(nonfinite_price)" in ln and "dropped" in ln]
    assert len(drop_lines) <= 1, drop_lines
    st = feed.status()
    assert st["connections"][0]["log_lines_suppressed"] >= flood - 1
    assert st["thread_crashes"] == 0 and st["reconnects"] == 0


def test_a_frame_declared_huge_is_skipped_as_it_streams_then_the_feed_reconnects(
    run: Callable[..., tuple[CoinbaseFeed, Recorder]], server: HostileServer
) -> None:
    """A server declares a 2^40-byte frame and streams 64 MiB of it: the connection counts
    one oversize frame as its header arrives (the products go stale) and skips the bytes
    without holding them; the frame never ends, so heartbeats fall silent, the connection is
    re-opened (a closing handshake bounded in time) and the products recover."""
    feed, rec = run(heartbeat_timeout_s=1.0)
    conn = feed.connections[0]
    mark = len(rec.events)
    server.send_huge(1 << 40, 64 << 20)
    assert wait_until(
        lambda: (
            feed.status()["dropped"]["oversize"] == 1
            and set(feed.status()["stale_products"]) == set(PRODUCTS)
        ),
        DEADLINE_S,
    ), feed.status()
    assert wait_until(
        lambda: (
            conn.lives == 2 and feed.state() == "healthy" and recovered_after(rec, mark, PRODUCTS)
        ),
        DEADLINE_S,
    ), feed.status()
    st = feed.status()
    assert st["dropped"]["oversize"] == 1 and st["thread_crashes"] == 0, st
    assert st["reconnects"] == 1 and conn.is_alive()
    with rec.lock:
        assert clean(rec.events)


def test_ticker_values_are_checked_when_tickers_give_the_quotes(
    run: Callable[..., tuple[CoinbaseFeed, Recorder]], server: HostileServer
) -> None:
    feed, rec = run(channels=("ticker", "market_trades"))
    assert wait_until(lambda: len(rec.of(Quote)) >= 2, DEADLINE_S)

    def ticker(**bad: str) -> Callable[[], None]:
        item = {**good_ticker("BTC-USD"), **bad}
        return lambda: server.send_frame("ticker", [{"type": "update", "tickers": [item]}])

    for bad, reason in (
        ({"best_bid": "NaN"}, "nonfinite_price"),
        ({"best_ask": "sNaN"}, "nonfinite_price"),
        ({"best_bid_quantity": "sNaN"}, "nonfinite_size"),
        ({"best_ask_quantity": "-5"}, "negative_size"),
        ({"best_bid": "1000000"}, "crossed_book"),
    ):
        o = hostile_round(feed, server, rec, ticker(**bad), reason, ["BTC-USD"])
        print("ticker:", bad, o)
        assert o["dropped"] == 1 and o["resyncs"] == 1 and o["state_after"] == "healthy", o
    with rec.lock:
        assert clean(rec.events)
    assert feed.status()["thread_crashes"] == 0


def test_a_crashing_connection_thread_is_logged_counted_stale_and_restarted(
    run: Callable[..., tuple[CoinbaseFeed, Recorder]],
    server: HostileServer,
    lines: list[str],
) -> None:
    feed, rec = run()
    conn = feed.connections[0]
    session = conn.session
    server.hold_snapshots = server.hold_acks = True  # restarting, then stale, until released
    mark = len(rec.events)
    raise_once_in_tick(session, RuntimeError("injected fault in the connection thread"))
    assert wait_until(lambda: conn.crashes == 1, DEADLINE_S)
    st = feed.status()
    assert st["thread_crashes"] == 1 and conn.is_alive()
    assert st["state"] == "restarting" and st["restarting"] == ["cb0"], st["state"]
    assert set(st["stale_products"]) == set(PRODUCTS)
    assert any(h["state"] == "crashed" for h in st["history"])
    with rec.lock:
        assert any(isinstance(e, FeedStatus) and e.state == "stale" for e in rec.events[mark:])
    crash_lines = [ln for ln in lines if "connection thread crashed" in ln]
    assert crash_lines and crash_lines[0].startswith("ERROR")
    assert "RuntimeError: injected fault" in "\n".join(lines)  # the traceback is in the log
    server.release()
    assert wait_until(
        lambda: feed.state() == "healthy" and recovered_after(rec, mark, PRODUCTS), DEADLINE_S
    ), feed.status()
    assert wait_until(lambda: conn.lives == 2 and not conn.restarting, DEADLINE_S)


def test_daemon_ready_health_status_and_metrics_report_a_hostile_frame_and_a_crash(
    tmp_path: Path, server: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = parse_config(
        {
            "feed": {
                "source": "coinbase",
                "products": PRODUCTS,
                "tick_bar_size": 4,
                "coinbase": feed_settings(server, auth="never"),
            },
            "journal": {"path": str(tmp_path / "journal.sqlite")},
            "trace": {"enabled": False},
            "strategy": {"fast_period": 2, "slow_period": 3},
        }
    )
    d = Daemon(cfg, ops=OpsConfig(port=0))
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", d.run()), daemon=True)
    thread.start()
    try:
        assert d.ready.wait(30), "daemon did not start"
        assert d.endpoint is not None and d.ctx is not None
        port = d.endpoint.port

        def ready() -> tuple[int, dict[str, Any]]:
            code, body = get_json(port, "/ready")
            return code, body["checks"]["feed"]

        def feed() -> dict[str, Any]:
            return dict(get_json(port, "/status")[1]["feed"])

        poll(lambda: ready()[1]["ok"], "feed ready")

        # a NaN level2 price: dropped, counted, BTC stale → /ready 503 until the resync
        server.hold_snapshots = True
        server.send_frame("l2_data", l2_update("BTC-USD", "bid", "NaN", "1"))
        code, check = poll(lambda: (r := ready())[0] == 503 and r, "not ready while stale")
        assert check == {"ok": False, "detail": "stale"}
        f = feed()
        assert f["dropped"]["nonfinite_price"] == 1 and f["stale_products"] == ["BTC-USD"]
        poll(lambda: "stale" in [h["event"] for h in feed()["history"] if h["source"] == "actor"],
             "the FeedActor saw the stale status (it forwards it to the portfolio)")  # fmt: skip
        m = _samples(port)
        lbl = (("feed", "coinbase"), ("reason", "nonfinite_price"))
        assert m[("cryptoj_feed_frames_dropped_total", lbl)] == 1
        assert main(["status", "--port", str(port)]) == 0
        text = capsys.readouterr().out
        assert "dropped at the boundary: nonfinite_price 1" in text, text
        assert "stale products: BTC-USD" in text
        server.release()
        poll(lambda: ready()[1]["ok"], "ready again after the resync")

        # a connection thread that raises: /health degraded, /ready 503, restarted
        live_feed = d.ctx.live_feed
        assert isinstance(live_feed, CoinbaseFeed)
        conn = live_feed.connections[0]
        server.hold_snapshots = server.hold_acks = True
        raise_once_in_tick(conn.session, RuntimeError("injected fault"))
        poll(lambda: conn.crashes == 1, "the connection thread crashed")
        code, check = ready()
        assert code == 503 and check == {"ok": False, "detail": "restarting"}
        code, health = get_json(port, "/health")
        assert code == 200 and health["status"] == "degraded" and health["feed"] == "restarting"
        assert feed()["thread_crashes"] == 1
        server.release()
        poll(lambda: ready()[1]["ok"], "ready again after the restart")
        code, health = get_json(port, "/health")
        assert code == 200 and health["feed"] == "healthy"
        m = _samples(port)
        assert m[("cryptoj_feed_thread_crashes_total", (("feed", "coinbase"),))] == 1
        actors = get_json(port, "/status")[1]["actors"]
        feed_actor = [a for a in actors if a["name"] == "feed"]
        assert feed_actor and feed_actor[0]["restarts"] == 0
    finally:
        d.request_stop("test over")
        thread.join(30)
    assert not thread.is_alive() and result.get("code") == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # intended
def test_a_connection_thread_that_ends_on_its_own_is_replaced(
    run: Callable[..., tuple[CoinbaseFeed, Recorder]], server: HostileServer
) -> None:
    feed, rec = run()
    old = feed.connections[0]
    mark = len(rec.events)
    raise_once_in_tick(old.session, SystemExit("not an Exception: the guard lets it through"))
    assert wait_until(lambda: feed.connections[0] is not old, DEADLINE_S)
    old.join(5)
    assert not old.is_alive()
    assert wait_until(
        lambda: feed.state() == "healthy" and recovered_after(rec, mark, PRODUCTS), DEADLINE_S
    ), feed.status()
    st = feed.status()
    assert st["thread_crashes"] == 1 and st["dead_threads"] == []
    assert any(h["state"] == "crashed" and h["reason"] == "thread ended" for h in st["history"])


def test_backoff_starts_small_again_once_a_connection_delivered_data(
    run: Callable[..., tuple[CoinbaseFeed, Recorder]], server: HostileServer
) -> None:
    feed, _ = run(backoff_min_s=0.05, backoff_max_s=5.0, backoff_reset_s=600.0)
    conn = feed.connections[0]
    for i in range(1, 6):  # a flapping link: lost five times, each time after data flowed
        server.disconnect()
        assert wait_until(
            lambda n=i: conn.lives == n + 1 and feed.state() == "healthy", DEADLINE_S
        ), feed.status()
    delays = [
        float(h["reason"].split("s after")[0])
        for h in feed.status()["history"]
        if h["state"] == "backoff"
    ]
    print("backoff delays (s):", delays)
    # without the reset on data they would double: 0.05, 0.1, 0.2, 0.4, 0.8 (± 20 %)
    assert len(delays) == 5 and max(delays) <= 0.05 * 1.2 + 0.005, delays
    assert conn.policy.failures == 0  # reset again by the data after the last reconnect
