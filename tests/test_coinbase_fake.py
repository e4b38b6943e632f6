"""The real feed client against the local fake exchange (WSS on 127.0.0.1, port 0): each fault.

Every wait is bounded; the fake steps one recorded minute every 20 ms and beats every 200 ms,
the client's watchdogs are scaled down to match.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from cryptoj.adapters.coinbase import CoinbaseFeed, CoinbaseFeedConfig
from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.models.market import FeedStatus, Quote, Trade

PRODUCTS = ["BTC-USD", "ETH-USD", "LTC-USD"]


def fast_config(fake: FakeCoinbase, **kw: Any) -> CoinbaseFeedConfig:
    """Feed settings scaled to the fast fake."""
    base: dict[str, Any] = {
        "ws_urls": (fake.ws_url,),
        "rest_url": fake.rest_url,
        "ca_file": fake.ca_file,
        "heartbeat_timeout_s": 0.8,
        "subscribe_ack_timeout_s": 2.0,
        "resync_timeout_s": 2.0,
        "backoff_min_s": 0.05,
        "backoff_max_s": 0.2,
        "backoff_reset_s": 0.3,
        "circuit_open_s": 0.5,
        "ping_interval_s": 0.3,
        "ping_timeout_s": 1.0,
        "rest_timeout_s": 1.0,
        "rest_poll_interval_s": 0.2,
        "backfill_limit": 1000,
        "conflate_ms": 0.0,
    }
    base.update(kw)
    return CoinbaseFeedConfig(**base)


class Recorder:
    """Thread-safe event sink."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.events: list[Quote | Trade | FeedStatus] = []
        self.delay_s = delay_s

    def __call__(self, event: Quote | Trade | FeedStatus) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]

    def states(self) -> list[str]:
        return [e.state for e in self.of(FeedStatus)]


def wait_until(cond: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def fresh(feed: CoinbaseFeed) -> bool:
    """Every connection live (and counted) and every product fresh."""
    return all(
        c.lives > 0 and c.session.live and all(s == "fresh" for s in c.session.status.values())
        for c in feed.connections
    )


def books_match(feed: CoinbaseFeed, fake: FakeCoinbase) -> bool:
    for p in PRODUCTS:
        read = feed.book_digest(p)
        assert read is not None
        event_time, digest, is_fresh = read
        if not is_fresh or fake.digest_at(p, event_time) != digest:
            return False
    return True


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCoinbase]:
    f = FakeCoinbase(step_s=0.02, heartbeat_s=0.2, subscribe_deadline_s=1.0).start()
    yield f
    f.stop()


@pytest.fixture
def run_feed(fake: FakeCoinbase) -> Iterator[Callable[..., tuple[CoinbaseFeed, Recorder]]]:
    feeds: list[CoinbaseFeed] = []

    def start(recorder: Recorder | None = None, **kw: Any) -> tuple[CoinbaseFeed, Recorder]:
        rec = recorder or Recorder()
        feed = CoinbaseFeed(fast_config(fake, **kw), PRODUCTS, rec, seed=1)
        feeds.append(feed)
        feed.start()
        assert wait_until(lambda: fresh(feed)), feed.status()
        return feed, rec

    yield start
    for f in feeds:
        f.stop()
        assert not any(c.is_alive() for c in f.connections)


def trades_complete(rec: Recorder) -> bool:
    """No trade twice, none missing since the first snapshots (ids count up across products)."""
    trades = rec.of(Trade)
    ids = [int(t.trade_id) for t in trades]
    if len(ids) != len(set(ids)):
        return False
    start = max(min(int(t.trade_id) for t in trades if t.product == p) for p in PRODUCTS)
    later = sorted(i for i in ids if i >= start)
    return later[-1] - later[0] + 1 == len(later)


def lives(feed: CoinbaseFeed) -> int:
    return sum(c.lives for c in feed.connections)


def test_stream_gives_quotes_trades_and_books_equal_to_the_fakes(
    run_feed: Any, fake: FakeCoinbase
) -> None:
    feed, rec = run_feed()
    assert wait_until(lambda: len(rec.of(Trade)) > 50 and len(rec.of(Quote)) > 10)
    assert rec.states()[:3] == ["healthy"] * 3
    assert wait_until(lambda: books_match(feed, fake))
    assert wait_until(lambda: feed.status()["connections"][0]["rtt"]["count"] > 0)  # ping/pong
    st = feed.status()
    assert st["state"] == "healthy" and st["gaps"] == 0
    assert st["connections"][0]["lag"]["count"] > 0
    assert [h["state"] for h in st["history"]][:3] == ["connecting", "subscribing", "live"]


@pytest.mark.parametrize("mode", ["clean", "drop"])
def test_disconnect_reconnects_and_resyncs(run_feed: Any, fake: FakeCoinbase, mode: str) -> None:
    feed, rec = run_feed()
    before = lives(feed)
    fake.inject("disconnect", mode=mode)
    assert wait_until(lambda: lives(feed) > before and fresh(feed))
    assert "stale" in rec.states() and "recovered" in rec.states()
    assert wait_until(lambda: books_match(feed, fake))
    reasons = [
        h["reason"] for h in feed.status()["history"] if h["state"] in ("disconnected", "failed")
    ]
    assert reasons and (
        "closed by server (1000" in reasons[0]
        if mode == "clean"
        else "lost" in reasons[0] or "error" in reasons[0]
    )


def test_gap_is_detected_resynced_and_missed_trades_backfilled(
    run_feed: Any, fake: FakeCoinbase
) -> None:
    feed, rec = run_feed()
    injected = fake.state()["counts"].get("gaps_injected", 0)
    fake.inject("gap", count=2)
    assert wait_until(lambda: feed.status()["gaps"] >= 2 and fresh(feed))
    assert fake.state()["counts"]["gaps_injected"] == injected + 2
    assert wait_until(lambda: books_match(feed, fake))
    time.sleep(0.3)
    assert trades_complete(rec)  # the backfill filled the holes; nothing twice


def test_stall_is_caught_by_the_heartbeat_watchdog(run_feed: Any, fake: FakeCoinbase) -> None:
    feed, _rec = run_feed()
    before = lives(feed)
    fake.inject("stall", seconds=2.0)
    assert wait_until(lambda: lives(feed) > before and fresh(feed), 6.0)
    assert feed.status()["totals"]["heartbeat_timeouts"] >= 1
    assert any("no heartbeat" in h["reason"] for h in feed.status()["history"])


def test_heartbeat_only_stall_also_reconnects(run_feed: Any, fake: FakeCoinbase) -> None:
    feed, _rec = run_feed()
    before = lives(feed)
    fake.inject("stall", seconds=1.5, what="heartbeats")
    assert wait_until(lambda: lives(feed) > before and fresh(feed), 6.0)


def test_duplicated_frames_are_dropped_and_counted(run_feed: Any, fake: FakeCoinbase) -> None:
    feed, _rec = run_feed()
    fake.inject("duplicate", count=3)
    assert wait_until(lambda: feed.status()["totals"]["dropped_old"] >= 3)
    assert feed.status()["gaps"] == 0 and books_match(feed, fake)


def test_out_of_order_frames_are_reordered(run_feed: Any, fake: FakeCoinbase) -> None:
    feed, _rec = run_feed()
    fake.inject("reorder", count=3)
    assert wait_until(lambda: feed.status()["totals"]["reordered"] >= 3)
    assert feed.status()["gaps"] == 0
    assert wait_until(lambda: books_match(feed, fake))


def test_error_frame_on_a_live_connection_is_counted(run_feed: Any, fake: FakeCoinbase) -> None:
    feed, _rec = run_feed()
    before = lives(feed)
    fake.inject("error", message="failure to subscribe")
    assert wait_until(lambda: feed.status()["totals"]["errors"] == 1)
    time.sleep(0.2)
    assert lives(feed) == before and fresh(feed)


def test_subscribe_timeout_then_the_next_attempt_works(run_feed: Any, fake: FakeCoinbase) -> None:
    fake.inject("subscribe_timeout", count=1)
    before = fake.state()["counts"].get("subscribe_timeouts", 0)
    feed, _rec = run_feed()  # the first connection is ignored and closed after 1 s
    assert fake.state()["counts"]["subscribe_timeouts"] == before + 1
    assert feed.connections[0].policy.attempts >= 2


def test_burst_with_a_slow_consumer_conflates_quotes_but_keeps_every_trade(
    run_feed: Any, fake: FakeCoinbase
) -> None:
    rec = Recorder(delay_s=0.001)
    feed, _ = run_feed(rec, delivery="thread")
    fake.inject("burst", steps=300)
    assert wait_until(lambda: feed.status()["delivery"]["conflated"] > 0, 8.0)
    time.sleep(0.5)
    assert trades_complete(rec)


def test_the_fake_drops_a_consumer_that_does_not_read(fake: FakeCoinbase) -> None:
    ws = websocket.create_connection(fake.ws_url, sslopt={"ca_certs": fake.ca_file}, timeout=5)
    ws.send(json.dumps({"type": "subscribe", "product_ids": PRODUCTS, "channel": "level2"}))
    before = fake.state()["counts"].get("slow_consumers", 0)
    fake.inject("burst", steps=20000)
    try:
        assert wait_until(lambda: fake.state()["counts"].get("slow_consumers", 0) > before, 10.0)
    finally:
        ws.shutdown()


def test_unknown_channel_gets_authentication_failure(fake: FakeCoinbase) -> None:
    ws = websocket.create_connection(fake.ws_url, sslopt={"ca_certs": fake.ca_file}, timeout=5)
    try:
        ws.send(json.dumps({"type": "subscribe", "channel": "heartbeat"}))  # singular: wrong
        assert json.loads(ws.recv()) == {"type": "error", "message": "authentication failure"}
    finally:
        ws.close()
