"""Failover, degradation and the less common paths of the Coinbase feed, against the local fake
(WSS on 127.0.0.1, port 0) or a closed local port; every wait is bounded."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from loguru import logger

from cryptoj.adapters.coinbase import CoinbaseFeed, CoinbaseFeedConfig, build_feed
from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.adapters.coinbase.jwt_auth import (
    Credentials,
    CredentialsError,
    load_credentials,
    ws_jwt_factory,
)
from cryptoj.adapters.coinbase.replay import replay_buffer
from cryptoj.config import CoinbaseConfig
from cryptoj.models.market import FeedStatus, Quote, Trade
from tests.test_coinbase_fake import PRODUCTS, Recorder, books_match, fast_config, fresh, wait_until


@pytest.fixture
def feeds() -> Iterator[list[CoinbaseFeed]]:
    started: list[CoinbaseFeed] = []
    yield started
    for f in started:
        f.stop()
        assert not any(c.is_alive() for c in f.connections)


def start(feeds: list[CoinbaseFeed], feed: CoinbaseFeed) -> CoinbaseFeed:
    feeds.append(feed)
    feed.start()
    return feed


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def test_offline_one_line_per_attempt_circuit_opens_degraded_and_stops(
    feeds: list[CoinbaseFeed],
) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    port = closed_port()
    rec = Recorder()
    cfg = CoinbaseFeedConfig(
        ws_urls=(f"wss://127.0.0.1:{port}",),
        rest_url=f"https://127.0.0.1:{port}",
        backoff_min_s=0.05,
        backoff_max_s=0.2,
        circuit_failures=3,
        circuit_open_s=30.0,
        rest_poll_interval_s=0.2,
        rest_timeout_s=0.5,
    )
    try:
        feed = start(feeds, CoinbaseFeed(cfg, PRODUCTS, rec, seed=1))
        assert wait_until(lambda: feed.state() == "degraded", 5.0)
        time.sleep(0.5)
        attempts = [ln for ln in lines if "connect failed" in ln]
        assert len(attempts) == 3  # then the circuit is open: no more attempts for 30 s
        assert all("attempt" in ln and ("retrying in" in ln) for ln in attempts)
        assert any("circuit for" in ln and "open after 3" in ln for ln in lines)
        assert any("degraded" in ln for ln in lines)
        assert sum(1 for ln in lines if "REST polling failed" in ln) == 1  # not once per poll
        assert [e.state for e in rec.of(FeedStatus)] == ["degraded"]
        st = feed.status()
        assert st["circuits"][cfg.ws_urls[0]]["state"] == "open" and not st["connected"]
        t0 = time.monotonic()
        feed.stop(timeout_s=3.0)
        assert time.monotonic() - t0 < 1.5
        assert feed.state() == "stopped"
    finally:
        logger.remove(sink)


def test_failover_to_the_alternate_host_and_back(feeds: list[CoinbaseFeed]) -> None:
    with FakeCoinbase(step_s=0.02, heartbeat_s=0.2, alt_port=0) as fake:
        cfg = fast_config(
            fake,
            ws_urls=(fake.ws_url, fake.alt_ws_url),
            circuit_failures=1,
            circuit_open_s=0.6,
            failback_s=0.8,
        )
        rec = Recorder()
        feed = start(feeds, CoinbaseFeed(cfg, PRODUCTS, rec, seed=1))
        assert wait_until(lambda: fresh(feed))
        fake.inject("outage", seconds=1.0, listener=0)
        fake.inject("disconnect", mode="drop")
        assert wait_until(lambda: feed.connections[0].live_url == fake.alt_ws_url and fresh(feed))
        assert feed.status()["circuits"][fake.ws_url]["times_opened"] == 1
        assert wait_until(lambda: feed.connections[0].live_url == fake.ws_url and fresh(feed), 6.0)
        lives = [h["reason"] for h in feed.status()["history"] if h["state"] == "live"]
        assert lives[-3:] == [fake.ws_url, fake.alt_ws_url, fake.ws_url]
        assert "degraded" not in [e.state for e in rec.of(FeedStatus)]
        assert wait_until(lambda: books_match(feed, fake))


def test_rest_polling_while_every_host_is_down_then_back_to_websocket(
    feeds: list[CoinbaseFeed],
) -> None:
    with FakeCoinbase(step_s=0.02, heartbeat_s=0.2) as fake:
        cfg = fast_config(fake, circuit_failures=2, circuit_open_s=0.5)
        rec = Recorder()
        feed = start(feeds, CoinbaseFeed(cfg, PRODUCTS, rec, seed=1))
        assert wait_until(lambda: fresh(feed))
        fake.inject("outage", seconds=2.0, listener=0)
        fake.inject("disconnect", mode="clean")
        assert wait_until(lambda: feed.state() == "degraded", 5.0)
        n = feed.counts["rest_polls"]
        assert wait_until(lambda: feed.counts["rest_polls"] > n + 3, 3.0)
        assert wait_until(lambda: fresh(feed) and feed.state() == "healthy", 8.0)
        states = [e.state for e in rec.of(FeedStatus)]
        assert states.index("degraded") < len(states) - 1 and states[-1] == "recovered"
        assert feed.status()["circuits"][fake.ws_url]["state"] == "closed"


def test_snapshot_over_one_mebibyte(feeds: list[CoinbaseFeed]) -> None:
    with FakeCoinbase(
        step_s=0.05, heartbeat_s=0.2, deep_levels=12_000, products=["BTC-USD"]
    ) as fake:
        cfg = fast_config(fake, heartbeat_timeout_s=3.0)
        feed = start(feeds, CoinbaseFeed(cfg, ["BTC-USD"], Recorder(), seed=1))
        assert wait_until(lambda: fresh(feed), 10.0)
        book = feed.connections[0].session.books["BTC-USD"]
        assert min(book.depth()) > 12_000
        assert feed.status()["connections"][0]["bytes"] > 1024 * 1024
        read = feed.book_digest("BTC-USD")
        assert read is not None and fake.digest_at("BTC-USD", read[0]) == read[1]


def test_too_many_level2_products_error_and_sharding_fixes_it(feeds: list[CoinbaseFeed]) -> None:
    with FakeCoinbase(step_s=0.02, heartbeat_s=0.2, max_l2_products=2) as fake:
        one = start(
            feeds,
            CoinbaseFeed(fast_config(fake, max_products_per_connection=3), PRODUCTS, Recorder()),
        )
        assert wait_until(lambda: one.status()["totals"]["errors"] >= 2)
        assert not one.connections[0].session.live
        one.stop()
        two = start(
            feeds,
            CoinbaseFeed(fast_config(fake, max_products_per_connection=2), PRODUCTS, Recorder()),
        )
        assert len(two.connections) == 2
        assert wait_until(lambda: fresh(two))
        assert wait_until(lambda: books_match(two, fake))


def test_fresh_jwt_per_subscribe_verified_by_the_fake(
    tmp_path: Path, feeds: list[CoinbaseFeed]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    name = "organizations/org/apiKeys/key"
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps({"name": name, "privateKey": pem}))
    with FakeCoinbase(
        step_s=0.02, heartbeat_s=0.2, jwt_key_name=name, jwt_public_key=public
    ) as fake:
        creds = CoinbaseConfig(key_file=str(key_file))
        feed = build_feed(fast_config(fake), creds, PRODUCTS, Recorder())
        start(feeds, feed)
        assert wait_until(lambda: fresh(feed))
        tokens = [
            m["jwt"]
            for m in fake.subscribes
            if m.get("conn") == min(s["conn"] for s in fake.subscribes)
        ]
        assert len(tokens) == 4 and len(set(tokens)) == 4  # heartbeats + 3 channels, each new
        claims = pyjwt.decode(tokens[0], public, algorithms=["ES256"], issuer="cdp")
        assert (
            claims["sub"] == name and claims["exp"] - claims["nbf"] == 120 and "uri" not in claims
        )
        header = pyjwt.get_unverified_header(tokens[0])
        assert header["kid"] == name and len(header["nonce"]) == 64
        # public channels need no JWT on Coinbase, nor on the fake: an anonymous feed goes live
        anonymous = start(feeds, CoinbaseFeed(fast_config(fake), PRODUCTS, Recorder()))
        assert wait_until(lambda: fresh(anonymous))
        assert anonymous.status()["totals"]["errors"] == 0


def test_credentials_from_env_and_errors(tmp_path: Path) -> None:
    assert load_credentials(environ={}) is None
    c = load_credentials(environ={"COINBASE_API_KEY": "k", "COINBASE_API_SECRET": "a\\nb"})
    assert c == Credentials("k", "a\nb") and "a\nb" not in repr(c)
    with pytest.raises(CredentialsError, match="COINBASE_API_SECRET"):
        load_credentials(environ={"COINBASE_API_KEY": "k"})
    with pytest.raises(CredentialsError, match="not valid JSON"):
        (tmp_path / "bad.json").write_text("{")
        load_credentials(key_file=str(tmp_path / "bad.json"))
    assert ws_jwt_factory(None)() is None
    with pytest.raises(CredentialsError, match="cannot sign"):
        ws_jwt_factory(Credentials("k", "not a key"))


def test_string_heartbeat_counters(feeds: list[CoinbaseFeed]) -> None:
    with FakeCoinbase(step_s=0.02, heartbeat_s=0.1, counter_string=True) as fake:
        feed = start(feeds, CoinbaseFeed(fast_config(fake), PRODUCTS, Recorder()))
        assert wait_until(lambda: feed.status()["totals"]["heartbeats"] >= 5)
        assert feed.status()["totals"]["malformed"] == 0


def test_raw_frames_buffered_and_replayed_offline(
    tmp_path: Path, feeds: list[CoinbaseFeed]
) -> None:
    with FakeCoinbase(step_s=0.02, heartbeat_s=0.2) as fake:
        rec = Recorder()
        # no REST backfill: its trades are not websocket frames, and where they land among the
        # live ones depends on timing (the replay of the frames cannot contain them)
        config = fast_config(fake, buffer_dir=str(tmp_path), backfill_trades=False)
        feed = start(feeds, CoinbaseFeed(config, PRODUCTS, rec))
        assert wait_until(lambda: fresh(feed) and len(rec.of(Trade)) > 100)
        fake.inject("gap")
        assert wait_until(lambda: feed.status()["gaps"] == 1 and fresh(feed))
        feed.stop()
    replayed = Recorder()
    stats = replay_buffer(tmp_path, PRODUCTS, replayed)
    assert stats["cb0"]["gaps"] == 1 and stats["cb0"]["frames"] == feed.status()["messages"]
    live_trades = [t.trade_id for t in rec.of(Trade)]
    replay_trades = [t.trade_id for t in replayed.of(Trade)]
    assert len(replay_trades) > 100
    assert replay_trades == live_trades[: len(replay_trades)]  # the frames delivered at stop
    assert len(replayed.of(Quote)) > 10


def test_event_callback_errors_are_counted_not_fatal(feeds: list[CoinbaseFeed]) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("consumer bug")

    lines: list[str] = []
    sink = logger.add(lines.append, level="ERROR", format="{message}")
    try:
        with FakeCoinbase(step_s=0.02, heartbeat_s=0.2) as fake:
            feed = start(feeds, CoinbaseFeed(fast_config(fake), PRODUCTS, broken))
            assert wait_until(lambda: feed.delivery.counts["callback_errors"] > 50)
            assert wait_until(lambda: fresh(feed))
    finally:
        logger.remove(sink)
    assert sum("callback failed" in ln for ln in lines) in (2, 3)  # the 1st, 10th (100th)


def test_max_retries_gives_up_and_leaves_the_products_degraded(feeds: list[CoinbaseFeed]) -> None:
    port = closed_port()
    cfg = CoinbaseFeedConfig(
        ws_urls=(f"wss://127.0.0.1:{port}",),
        rest_url=f"https://127.0.0.1:{port}",
        backoff_min_s=0.02,
        backoff_max_s=0.05,
        max_retries=2,
        circuit_failures=10,
        rest_poll=False,
    )
    rec = Recorder()
    feed = start(feeds, CoinbaseFeed(cfg, PRODUCTS, rec))
    assert wait_until(lambda: not feed.connections[0].is_alive(), 5.0)
    assert feed.connections[0].policy.attempts == 3  # the first try and two retries
    assert [h["state"] for h in feed.status()["history"]][-2:] == ["gave_up", "degraded"]
    assert feed.state() == "degraded" and [e.state for e in rec.of(FeedStatus)] == ["degraded"]
