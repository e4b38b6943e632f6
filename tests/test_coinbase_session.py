"""The sans-I/O protocol engine of one connection, on a virtual clock (no sockets, no threads).

Level2 and ticker frames are built from the documented shapes (no attributable real capture
exists); heartbeats, acks, trades and error frames follow the recorded real ones.
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Any

from cryptoj.adapters.coinbase.session import (
    Backfill,
    FeedEvent,
    FeedSession,
    Ping,
    Reconnect,
    Send,
    SessionSettings,
)
from cryptoj.models.market import FeedStatus, Quote, Trade

S = 1_000_000_000
MS = 1_000_000
T0 = 1_728_025_480 * S
P = ("BTC-USD", "ETH-USD")


class Wire:
    """Builds server frames with a running sequence number."""

    def __init__(self) -> None:
        self.seq = 0

    def frame(self, channel: str, events: list[dict[str, Any]], seq: int | None = None) -> bytes:
        if seq is None:
            seq, self.seq = self.seq, self.seq + 1
        return json.dumps(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": "2024-10-04T07:04:40.812675707Z",
                "sequence_num": seq,
                "events": events,
            }
        ).encode()

    def ack(self, subs: dict[str, list[str]]) -> bytes:
        return self.frame("subscriptions", [{"subscriptions": subs}])

    def all_acks(
        self, products: tuple[str, ...] = P, channels: tuple[str, ...] = ("level2", "market_trades")
    ) -> bytes:
        return self.ack({"heartbeats": ["heartbeats"], **{c: list(products) for c in channels}})

    def l2(
        self, kind: str, product: str, levels: list[tuple[str, str, str]], seq: int | None = None
    ) -> bytes:
        ups = [
            {"side": s, "event_time": f"t{self.seq}", "price_level": p, "new_quantity": n}
            for s, p, n in levels
        ]
        return self.frame("l2_data", [{"type": kind, "product_id": product, "updates": ups}], seq)

    def snapshot(self, product: str, bid: str = "100", ask: str = "101") -> bytes:
        return self.l2(
            "snapshot", product, [("bid", bid, "1"), ("bid", "99", "2"), ("offer", ask, "3")]
        )

    def heartbeat(self, counter: int | str) -> bytes:
        return self.frame("heartbeats", [{"current_time": "x", "heartbeat_counter": counter}])

    def trades(self, product: str, ids: list[int]) -> bytes:
        trades = [
            {"product_id": product, "trade_id": str(i), "price": "100.5", "size": "0.1",
             "time": "2024-10-04T07:13:31.084859Z", "side": "BUY"}
            for i in sorted(ids, reverse=True)
        ]  # fmt: skip
        return self.frame("market_trades", [{"type": "update", "trades": trades}])


class Harness:
    """A session with a recording emit and a counting JWT factory."""

    def __init__(
        self, settings: SessionSettings | None = None, products: tuple[str, ...] = P
    ) -> None:
        self.events: list[FeedEvent] = []
        self.tokens = itertools.count(1)
        self.settings = settings or SessionSettings(channels=("level2", "market_trades"))
        self.s = FeedSession(
            "cb0",
            products,
            self.settings,
            self.events.append,
            jwt=lambda: f"jwt-{next(self.tokens)}",
        )
        self.w = Wire()

    def live(self, now: int = T0) -> list[Any]:
        actions = self.s.opened(now)
        self.s.frame(self.w.all_acks(self.s.products, self.settings.channels), now)
        for p in self.s.products:
            self.s.frame(self.w.snapshot(p), now)
        return actions

    def statuses(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(e.state, e.products) for e in self.events if isinstance(e, FeedStatus)]

    def quotes(self) -> list[Quote]:
        return [e for e in self.events if isinstance(e, Quote)]


def sent(actions: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(a.text) for a in actions if isinstance(a, Send)]


def test_subscribes_heartbeats_first_then_one_channel_per_message_each_with_a_fresh_jwt() -> None:
    h = Harness()
    msgs = sent(h.s.opened(T0))
    assert [(m["type"], m["channel"], m.get("product_ids")) for m in msgs] == [
        ("subscribe", "heartbeats", None),
        ("subscribe", "level2", list(P)),
        ("subscribe", "market_trades", list(P)),
    ]
    assert [m["jwt"] for m in msgs] == ["jwt-1", "jwt-2", "jwt-3"]


def test_without_keys_no_jwt_field() -> None:
    s = FeedSession("cb0", P, SessionSettings(), lambda e: None)
    assert all("jwt" not in m for m in sent(s.opened(T0)))


def test_snapshot_makes_products_healthy_and_emits_top_of_book() -> None:
    h = Harness()
    h.live()
    assert h.s.live
    assert h.statuses() == [("healthy", ("BTC-USD",)), ("healthy", ("ETH-USD",))]
    q = h.quotes()[0]
    assert (q.product, q.bid, q.bid_size, q.ask, q.ask_size) == (
        "BTC-USD",
        Decimal(100),
        Decimal(1),
        Decimal(101),
        Decimal(3),
    )
    h.s.frame(h.w.l2("update", "BTC-USD", [("bid", "99", "5")]), T0)  # below the top
    assert len(h.quotes()) == 2  # no new quote: the top did not change
    h.s.frame(h.w.l2("update", "BTC-USD", [("bid", "100", "0"), ("offer", "100.5", "1")]), T0)
    assert h.quotes()[-1].bid == Decimal(99) and h.quotes()[-1].ask == Decimal("100.5")


def test_gap_marks_stale_resubscribes_backfills_and_recovers_on_snapshot() -> None:
    h = Harness()
    h.live()
    h.s.frame(h.w.trades("BTC-USD", [1, 2]), T0)
    h.w.seq += 1  # one frame lost
    h.s.frame(h.w.l2("update", "BTC-USD", [("bid", "100", "7")]), T0 + MS)
    assert h.s.tick(T0 + 50 * MS) == []  # still inside the hold time
    actions = h.s.tick(T0 + 200 * MS)
    assert ("stale", P) in h.statuses()
    assert [(m["type"], m["channel"]) for m in sent(actions)] == [
        ("unsubscribe", "level2"), ("subscribe", "level2"),
        ("unsubscribe", "market_trades"), ("subscribe", "market_trades"),
    ]  # fmt: skip
    backfill = [a for a in actions if isinstance(a, Backfill)]
    assert backfill and backfill[0].since[0][0] == "BTC-USD"
    assert h.s.counts["gaps"] == 1 and h.s.counts["resyncs"] == 1
    n = len(h.quotes())
    h.s.frame(h.w.l2("update", "BTC-USD", [("bid", "100", "9")]), T0 + 210 * MS)
    # the update released after the gap and this one are both ignored: the book is stale
    assert len(h.quotes()) == n and h.s.counts["updates_ignored"] == 2
    h.s.frame(h.w.snapshot("BTC-USD", bid="99.5"), T0 + 300 * MS)
    h.s.frame(h.w.snapshot("ETH-USD"), T0 + 300 * MS)
    assert h.statuses()[-2:] == [("recovered", ("BTC-USD",)), ("recovered", ("ETH-USD",))]
    assert h.quotes()[-2].bid == Decimal("99.5")
    assert h.s.max_recovery_ns == 100 * MS


def test_out_of_order_frames_inside_the_window_are_reordered_not_gaps() -> None:
    h = Harness()
    h.live()
    a = h.w.l2("update", "BTC-USD", [("bid", "100", "5")])
    b = h.w.l2("update", "BTC-USD", [("bid", "100", "6")])
    h.s.frame(b, T0)
    h.s.frame(a, T0)
    assert h.s.counts["gaps"] == 0 and h.s.tracker.reordered == 1
    assert h.s.books["BTC-USD"].bids[Decimal(100)] == Decimal(6)  # applied in sequence order
    h.s.frame(b, T0)  # a duplicate
    assert h.s.tracker.dropped == 1


def test_heartbeat_silence_reconnects_without_a_close_handshake() -> None:
    h = Harness(SessionSettings(channels=("level2",), heartbeat_timeout_ns=5 * S))
    h.live()
    assert h.s.tick(T0 + 4 * S) == []  # the heartbeat clock starts when the acks are in
    h.s.frame(h.w.heartbeat(10), T0 + S)
    h.s.frame(h.w.heartbeat("11"), T0 + 2 * S)  # string counter
    h.s.frame(h.w.heartbeat(13), T0 + 3 * S)
    assert h.s.counts["heartbeats"] == 3 and h.s.counts["heartbeat_skips"] == 1
    assert h.s.tick(T0 + 7 * S) == []
    actions = h.s.tick(T0 + 8 * S + 1)
    assert actions == [Reconnect("no heartbeat for 5.0s", clean=False)]
    h.s.closed("no heartbeat", T0 + 8 * S)
    assert h.statuses()[-1] == ("stale", P)


def test_subscriptions_not_acknowledged_in_time_reconnects() -> None:
    h = Harness(SessionSettings(ack_timeout_ns=5 * S))
    h.s.opened(T0)
    assert h.s.tick(T0 + 4 * S) == []
    assert isinstance(h.s.tick(T0 + 6 * S)[0], Reconnect)


def test_resync_without_snapshot_in_time_reconnects() -> None:
    h = Harness(SessionSettings(channels=("level2",), resync_timeout_ns=2 * S))
    h.live()
    h.s.frame(h.w.frame("l2_data", [{"type": "update"}]), T0)  # malformed level2 → resync
    assert h.s.counts["malformed"] == 1 and h.statuses()[-1][0] == "stale"
    h.s.frame(h.w.heartbeat(1), T0 + 2 * S)
    actions = h.s.tick(T0 + 2 * S + 1)
    assert isinstance(actions[0], Reconnect) and "snapshot" in actions[0].reason


def test_silent_book_is_resynced() -> None:
    h = Harness(
        SessionSettings(channels=("level2",), book_stale_ns=10 * S, heartbeat_timeout_ns=60 * S)
    )
    h.live()
    h.s.frame(h.w.l2("update", "ETH-USD", [("bid", "99", "1")]), T0 + 9 * S)
    actions = h.s.tick(T0 + 11 * S)
    assert h.statuses()[-1] == ("stale", ("BTC-USD",))
    assert sent(actions)[1] == {
        "type": "subscribe",
        "product_ids": ["BTC-USD"],
        "channel": "level2",
        "jwt": sent(actions)[1]["jwt"],
    }


def test_ping_pong_round_trip_and_pong_timeout() -> None:
    h = Harness(
        SessionSettings(
            channels=("level2",),
            ping_interval_ns=S,
            ping_timeout_ns=2 * S,
            heartbeat_timeout_ns=60 * S,
        )
    )
    h.live()
    ping = h.s.tick(T0 + S)
    assert isinstance(ping[0], Ping)
    h.s.pong(ping[0].payload, T0 + S + 3 * MS)
    assert h.s.rtt.last_ns == 3 * MS
    ping2 = h.s.tick(T0 + 2 * S + 3 * MS)
    assert isinstance(ping2[0], Ping)
    assert h.s.tick(T0 + 5 * S) == [Reconnect("no pong within 2s", clean=False)]


def test_error_frame_while_subscribing_reconnects_but_not_when_live() -> None:
    h = Harness()
    h.s.opened(T0)
    assert h.s.frame(b'{"type":"error","message":"authentication failure"}', T0) == [
        Reconnect("error frame: authentication failure")
    ]
    h2 = Harness()
    h2.live()
    assert h2.s.frame(b'{"type":"error","message":"something"}', T0) == []
    assert h2.s.counts["errors"] == 1


def test_unknown_channels_are_ignored_but_keep_the_sequence() -> None:
    h = Harness()
    h.live()
    h.s.frame(h.w.frame("status", [{"type": "snapshot", "products": []}]), T0)
    h.s.frame(h.w.l2("update", "BTC-USD", [("bid", "100", "4")]), T0)
    assert h.s.counts["unknown"] == 1 and h.s.counts["gaps"] == 0
    h.s.frame(h.w.l2("surprise", "BTC-USD", []), T0)
    assert h.s.counts["unknown"] == 2


def test_trades_deduplicated_oldest_first_and_backfill_fills_holes() -> None:
    h = Harness()
    h.live()
    h.s.frame(h.w.trades("BTC-USD", [1, 2]), T0)
    h.s.frame(h.w.trades("BTC-USD", [2, 3]), T0)  # 2 again (e.g. a snapshot after resubscribe)
    trades = [e.trade_id for e in h.events if isinstance(e, Trade)]
    assert trades == ["1", "2", "3"] and h.s.counts["trades_duplicate"] == 1
    rest = [
        Trade(
            ts=T0 + i,
            product="BTC-USD",
            price=Decimal(1),
            quantity=Decimal(1),
            taker_side="SELL",
            trade_id=str(i),
        )
        for i in (5, 3, 4)
    ]
    assert h.s.backfilled(rest, T0) == 2
    assert [e.trade_id for e in h.events if isinstance(e, Trade)][-2:] == ["4", "5"]


def test_ticker_gives_quotes_when_level2_is_not_subscribed() -> None:
    h = Harness(SessionSettings(channels=("ticker",)), products=("BTC-USD",))
    h.s.opened(T0)
    h.s.frame(h.w.ack({"heartbeats": ["heartbeats"], "ticker": ["BTC-USD"]}), T0)
    tick = {"type": "ticker", "product_id": "BTC-USD", "price": "5", "best_bid": "4.9",
            "best_bid_quantity": "1", "best_ask": "5.1", "best_ask_quantity": "2"}  # fmt: skip
    h.s.frame(h.w.frame("ticker", [{"type": "snapshot", "tickers": [tick]}]), T0)
    assert h.statuses() == [("healthy", ("BTC-USD",))]
    assert h.quotes()[0].ask_size == Decimal(2)


def test_trades_only_products_become_fresh_on_their_ack() -> None:
    h = Harness(SessionSettings(channels=("market_trades",)), products=("BTC-USD",))
    h.s.opened(T0)
    h.s.frame(h.w.ack({"heartbeats": ["heartbeats"], "market_trades": ["BTC-USD"]}), T0)
    assert h.statuses() == [("healthy", ("BTC-USD",))]
