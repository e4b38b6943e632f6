"""The market-data boundary without sockets: value checks, the decoder on hostile input, the
session dropping, counting and resyncing, rate-limited logging, the backoff reset and the
tick-bar aggregator's second line of defence."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from cryptoj.actors.feed import FeedActor, ReplaySource
from cryptoj.adapters.coinbase.parse import FrameDecoder, MalformedFrame, ticker_problem
from cryptoj.adapters.coinbase.policy import ReconnectPolicy
from cryptoj.adapters.coinbase.schemas import L2Update, TickerItem
from cryptoj.adapters.coinbase.session import SessionSettings
from cryptoj.adapters.coinbase.validate import (
    DROP_REASONS,
    RateLimitedLog,
    levels_problem,
    price_problem,
    size_problem,
)
from cryptoj.marketdata.aggregation import TickBarAggregator, usable_quote
from cryptoj.models.market import Quote, Trade
from cryptoj.supervision.spec import Backoff
from tests.stubs import FakeCtx
from tests.test_coinbase_session import T0, Harness, sent

S = 1_000_000_000
BAD_PRICES = {
    "NaN": "nonfinite_price",
    "sNaN": "nonfinite_price",
    "-NaN": "nonfinite_price",
    "Infinity": "nonfinite_price",
    "-Infinity": "nonfinite_price",
    "0": "nonpositive_price",
    "-100": "nonpositive_price",
    "1e13": "price_out_of_range",
    "1e-19": "price_out_of_range",
    "1E+999999": "price_out_of_range",
}
BAD_SIZES = {
    "NaN": "nonfinite_size",
    "sNaN": "nonfinite_size",
    "Infinity": "nonfinite_size",
    "-5": "negative_size",
    "-0.00000001": "negative_size",
    "1e16": "size_out_of_range",
    "1e-19": "size_out_of_range",
}


@pytest.mark.parametrize(("text", "reason"), BAD_PRICES.items())
def test_bad_prices_are_named(text: str, reason: str) -> None:
    assert price_problem(Decimal(text)) == reason
    assert reason in DROP_REASONS


@pytest.mark.parametrize(("text", "reason"), BAD_SIZES.items())
def test_bad_sizes_are_named(text: str, reason: str) -> None:
    assert size_problem(Decimal(text)) == reason


@given(st.decimals(min_value=Decimal("1e-12"), max_value=Decimal("1e12"), places=8))
def test_every_sane_price_and_size_passes(value: Decimal) -> None:
    if value > 0:
        assert price_problem(value) is None
    assert size_problem(value) is None
    assert size_problem(Decimal(0)) is None  # a zero size deletes a level


@given(st.decimals(allow_nan=True, allow_infinity=True))
def test_the_checks_never_raise(value: Decimal) -> None:
    price_problem(value)
    size_problem(value)


@pytest.mark.parametrize(
    ("price", "size", "reason"),
    [
        *((p, "1", r) for p, r in BAD_PRICES.items()),
        *(("100", q, r) for q, r in BAD_SIZES.items()),
        ("abc", "1", "malformed"),
        ("100", "", "malformed"),
        ("12345.6789012345678", "1", "price_out_of_range"),  # 18 significant digits
        ("1000000000000.0000001", "1", "price_out_of_range"),  # rounds to 1e12 as a float
        ("0.00000000123456", "1", None),  # long text, 6 digits: fine
        ("1e12", "1e15", None),  # the limits themselves
        ("1e-18", "1e-18", None),
        ("100", "-0", None),  # a zero size deletes
        ("97123.45", "0.00000000", None),
    ],
)
def test_level2_text_is_checked_as_the_decimals_are(
    price: str, size: str, reason: str | None
) -> None:
    good = L2Update(side="bid", price_level="99", new_quantity="1")
    bad = L2Update(side="offer", price_level=price, new_quantity=size)
    assert levels_problem([good, bad]) == reason


def test_the_decoder_never_raises_on_deep_or_huge_input() -> None:
    dec = FrameDecoder()
    deep_object = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    out = dec.decode(deep_object)
    assert isinstance(out, MalformedFrame) and out.reason == "undecodable"
    assert "RecursionError" in out.problem
    deep_array = b"[" * 100_000 + b"]" * 100_000
    assert isinstance(dec.decode(deep_array), MalformedFrame)
    deep_events = b'{"channel":"l2_data","sequence_num":1,"events":' + b"[" * 50_000 + b"]" * 50_000
    assert isinstance(dec.decode(deep_events + b"}"), MalformedFrame)


def test_ticker_problems() -> None:
    good = {
        "product_id": "BTC-USD",
        "best_bid": "100",
        "best_bid_quantity": "1",
        "best_ask": "101",
        "best_ask_quantity": "2",
    }
    assert ticker_problem(TickerItem(**good)) is None
    assert ticker_problem(TickerItem(product_id="BTC-USD")) is None  # old tickers: no best_*
    for field, value, reason in (
        ("best_bid", "NaN", "nonfinite_price"),
        ("best_ask", "sNaN", "nonfinite_price"),
        ("best_bid_quantity", "-5", "negative_size"),
        ("best_ask_quantity", "Infinity", "nonfinite_size"),
        ("best_bid", "abc", "malformed"),
        ("best_bid", "101", "crossed_book"),  # locked
    ):
        assert ticker_problem(TickerItem(**{**good, field: value})) == reason, field


def test_rate_limited_log_one_line_per_reason_per_interval_with_the_held_back_count() -> None:
    out: list[tuple[str, str]] = []
    log = RateLimitedLog(lambda level, text: out.append((level, text)), 10 * S)
    assert log("a", "warning", "first", T0)
    for i in range(10_000):
        log("a", "warning", f"again {i}", T0 + i)
    assert log("b", "warning", "other reason", T0 + 1)
    assert len(out) == 2 and log.suppressed == {"a": 10_000}
    assert log("a", "warning", "later", T0 + 10 * S)
    assert out[-1] == ("warning", "later (+10000 more like it suppressed)")
    assert log.suppressed == {}


def l2_update(h: Harness, product: str, price: str, size: str) -> bytes:
    return h.w.l2("update", product, [("bid", price, size)])


def test_a_bad_level2_update_is_dropped_counted_and_resynced_once_for_a_flood() -> None:
    h = Harness()
    h.live()
    quotes = len(h.quotes())
    actions = h.s.frame(l2_update(h, "BTC-USD", "NaN", "1"), T0 + 1)
    assert h.s.dropped["nonfinite_price"] == 1 and h.s.counts["resyncs"] == 1
    assert h.statuses()[-1] == ("stale", ("BTC-USD",))
    subs = sent(actions)
    assert [(m["type"], m["channel"], m["product_ids"]) for m in subs] == [
        ("unsubscribe", "level2", ["BTC-USD"]),
        ("subscribe", "level2", ["BTC-USD"]),
        ("unsubscribe", "market_trades", ["BTC-USD"]),
        ("subscribe", "market_trades", ["BTC-USD"]),
    ]
    for i in range(1000):  # a flood while the resync is under way: counted, no resubscribe
        size = ("sNaN", "-5", "1")[i % 3]
        price = "99" if size != "1" else "Infinity"
        assert sent(h.s.frame(l2_update(h, "BTC-USD", price, size), T0 + 2 + i)) == []
    assert h.s.counts["resyncs"] == 1 and h.s.counts["dropped"] == 1001
    assert h.s.dropped["nonfinite_size"] + h.s.dropped["negative_size"] == 667
    assert len(h.quotes()) == quotes  # nothing of it became a quote
    h.s.frame(h.w.snapshot("BTC-USD"), T0 + 5 * S)
    assert h.statuses()[-1] == ("recovered", ("BTC-USD",))
    assert h.s.snapshot()["dropped_by_reason"]["nonfinite_price"] == 334


def test_a_crossed_or_locked_book_is_resynced() -> None:
    h = Harness()
    h.live()
    h.s.frame(h.w.l2("update", "ETH-USD", [("bid", "101", "1")]), T0 + 1)  # locked: bid = ask
    assert h.s.dropped["crossed_book"] == 1 and h.s.counts["crossed"] == 1
    assert h.statuses()[-1] == ("stale", ("ETH-USD",))
    assert "ETH-USD" in h.s.needs_snapshot and not h.s.books["ETH-USD"].bids
    h.s.frame(h.w.snapshot("ETH-USD", bid="200", ask="150"), T0 + 2)  # a crossed snapshot
    assert h.s.dropped["crossed_book"] == 2 and h.s.counts["resyncs"] == 2
    h.s.frame(h.w.snapshot("ETH-USD"), T0 + 3)
    assert h.statuses()[-1] == ("recovered", ("ETH-USD",))
    assert all(q.bid < q.ask for q in h.quotes())


def test_bad_trades_are_dropped_and_good_ones_of_the_same_frame_kept() -> None:
    h = Harness()
    h.live()
    trades = [
        {"product_id": "BTC-USD", "trade_id": str(i), "price": price, "size": size,
         "time": "2024-10-04T07:13:31.084859Z", "side": "BUY"}
        for i, (price, size) in enumerate((("NaN", "1"), ("100", "sNaN"), ("100", "-5"),
                                           ("100.5", "0.1")))
    ]  # fmt: skip
    h.s.frame(h.w.frame("market_trades", [{"type": "update", "trades": trades}]), T0 + 1)
    emitted = [e for e in h.events if isinstance(e, Trade)]
    assert [t.trade_id for t in emitted] == ["3"]
    assert h.s.dropped["nonfinite_price"] == 1 and h.s.dropped["nonfinite_size"] == 1
    assert h.s.dropped["negative_size"] == 1 and h.s.counts["resyncs"] == 1


def test_oversize_and_undecodable_frames_resync_every_product() -> None:
    h = Harness(SessionSettings(channels=("level2", "market_trades"), max_frame_bytes=1 << 20))
    h.live()
    h.s.frame(b'{"channel":"l2_data","x":"' + b"x" * (1 << 20) + b'"}', T0 + 1)
    assert h.s.dropped["oversize"] == 1
    assert h.statuses()[-1] == ("stale", ("BTC-USD", "ETH-USD"))
    for p in h.s.products:
        h.s.frame(h.w.snapshot(p), T0 + 2)
    h.s.frame(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, T0 + 3)
    assert h.s.dropped["undecodable"] == 1 and h.s.counts["resyncs"] == 2


def test_ticker_quotes_mode_drops_bad_tickers_and_recovers_on_a_good_one() -> None:
    h = Harness(SessionSettings(channels=("ticker",)))
    h.s.opened(T0)
    h.s.frame(h.w.all_acks(h.s.products, ("ticker",)), T0)
    good = {"product_id": "BTC-USD", "best_bid": "100", "best_bid_quantity": "1",
            "best_ask": "101", "best_ask_quantity": "2"}  # fmt: skip
    h.s.frame(h.w.frame("ticker", [{"type": "update", "tickers": [good]}]), T0)
    actions = h.s.frame(
        h.w.frame(
            "ticker", [{"type": "update", "tickers": [{**good, "best_bid_quantity": "NaN"}]}]
        ),
        T0 + 1,
    )
    assert h.s.dropped["nonfinite_size"] == 1
    assert h.statuses()[-1] == ("stale", ("BTC-USD",))
    assert [(m["type"], m["channel"]) for m in sent(actions)] == [
        ("unsubscribe", "ticker"),
        ("subscribe", "ticker"),
    ]
    h.s.frame(h.w.frame("ticker", [{"type": "update", "tickers": [good]}]), T0 + 2)
    assert h.statuses()[-1] == ("recovered", ("BTC-USD",)) and not h.s.resync_deadline
    assert all(q.bid_size.is_finite() for q in h.quotes())


def test_backoff_resets_once_a_connection_delivered_data() -> None:
    policy = ReconnectPolicy(Backoff(S // 2, 30 * S, 0.0), reset_after_ns=30 * S)
    now = T0
    delays = []
    for _ in range(6):  # a link that flaps every 8 s, before the 30 s reset
        policy.attempt()
        policy.up(now)
        now += 8 * S
        delays.append(policy.down(now, 0.5))
    assert delays == [S // 2, S, 2 * S, 4 * S, 8 * S, 16 * S]  # without data: it climbs
    flapping = []
    for _ in range(6):  # the same link, but each connection delivered data
        policy.attempt()
        policy.up(now)
        policy.delivered()
        now += 8 * S
        flapping.append(policy.down(now, 0.5))
    assert flapping == [S // 2] * 6


def test_the_bar_aggregator_and_quote_check_refuse_unusable_values() -> None:
    agg = TickBarAggregator(3)

    def t(price: str, qty: str = "1") -> Trade:
        return Trade(
            ts=1,
            product="BTC-USD",
            price=Decimal(price),
            quantity=Decimal(qty),
            taker_side="BUY",
            trade_id="1",
        )

    for bad in (t("NaN"), t("sNaN"), t("Infinity"), t("-1"), t("0"), t("1", "NaN"), t("1", "-5")):
        assert agg.add(bad) is None
    assert agg.rejected == 7
    assert agg.add(t("10")) is None and agg.add(t("12")) is None
    bar = agg.add(t("11"))
    assert bar is not None and (bar.open, bar.high, bar.low, bar.close) == (10, 12, 10, 11)

    def q(**kw: str) -> Quote:
        values = {"bid": "100", "bid_size": "1", "ask": "101", "ask_size": "1", **kw}
        return Quote(ts=1, product="BTC-USD", **{k: Decimal(v) for k, v in values.items()})

    assert usable_quote(q())
    for bad in ({"bid_size": "NaN"}, {"bid_size": "-5"}, {"ask": "sNaN"}, {"bid": "101"}):
        assert not usable_quote(q(**bad)), bad


def test_a_malformed_trades_frame_resyncs_and_is_counted() -> None:
    h = Harness()
    h.live()
    h.s.frame(json.dumps({"channel": "market_trades", "sequence_num": 99,
                          "events": [{"trades": [{"price": "1"}]}]}).encode(), T0 + 1)  # fmt: skip
    assert h.s.dropped["malformed"] == 1 and h.s.counts["malformed"] == 1
    assert h.s.counts["resyncs"] >= 1


def test_the_feed_actor_drops_a_nan_or_negative_trade_or_quote_and_keeps_going() -> None:
    def trade(price: str, qty: str, tid: str) -> Trade:
        return Trade(
            ts=10,
            product="BTC-USDT",
            price=Decimal(price),
            quantity=Decimal(qty),
            taker_side="BUY",
            trade_id=tid,
        )

    feed = FeedActor(ReplaySource([(trade("1", "1", "0"),)]), tick_bar_size=1, poll=False)
    ctx = FakeCtx()
    for i, (price, qty) in enumerate((("NaN", "1"), ("sNaN", "1"), ("1", "sNaN"), ("1", "-5"))):
        feed.receive(trade(price, qty, str(i)), ctx)
    bad_quote = Quote(
        ts=10,
        product="BTC-USDT",
        bid=Decimal("100"),
        bid_size=Decimal("NaN"),
        ask=Decimal("101"),
        ask_size=Decimal("-5"),
    )
    feed.receive(bad_quote, ctx)
    assert ctx.sent == [] and feed.rejected == 5
    feed.receive(trade("60000", "0.5", "9"), ctx)
    assert [(to, type(m).__name__) for to, m in ctx.sent] == [
        ("portfolio", "Quote"),
        ("strategy", "Bar"),
        ("risk", "Bar"),
    ]


HOSTILE_VALUES = st.sampled_from(
    ["NaN", "sNaN", "-NaN", "Infinity", "-Infinity", "-5", "0", "1e40", "1e-30", "abc", "",
     "100", "100.5", "101", "99", "0.1", "1E+999999999"]
) | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.none()  # fmt: skip


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["l2_data", "market_trades", "ticker", "heartbeats", "subscriptions"]),
            st.sampled_from(["snapshot", "update", "other"]),
            st.sampled_from(["BTC-USD", "ETH-USD", "XRP-USD"]),
            st.sampled_from(["bid", "offer", "ask", "x"]),
            HOSTILE_VALUES,
            HOSTILE_VALUES,
            st.integers(-5, 2**40) | st.sampled_from(["7", None]),
        ),
        max_size=30,
    )
)
def test_no_frame_makes_the_session_raise_or_emit_a_bad_value(frames: list[Any]) -> None:
    for channels in (("level2", "market_trades"), ("ticker", "market_trades")):
        h = Harness(SessionSettings(channels=channels))
        h.live()
        for channel, kind, product, side, a, b, seq in frames:
            if channel == "l2_data":
                level = {"side": side, "price_level": a, "new_quantity": b}
                events: list[Any] = [{"type": kind, "product_id": product, "updates": [level]}]
            elif channel == "market_trades":
                t = {"product_id": product, "trade_id": str(seq), "price": a, "size": b,
                     "time": "2024-10-04T07:13:31.084859Z", "side": side}  # fmt: skip
                events = [{"type": kind, "trades": [t]}]
            elif channel == "ticker":
                tk = {"product_id": product, "best_bid": a, "best_bid_quantity": b,
                      "best_ask": b, "best_ask_quantity": a}  # fmt: skip
                events = [{"type": kind, "tickers": [tk]}]
            else:
                events = [{"heartbeat_counter": a, "subscriptions": b}]
            body = {"channel": channel, "sequence_num": seq, "timestamp": a, "events": events}
            h.s.frame(json.dumps(body).encode(), T0 + 1)
            h.s.tick(T0 + 2)
        for e in h.events:
            if isinstance(e, Quote):
                assert usable_quote(e), e
            elif isinstance(e, Trade):
                assert e.price.is_finite() and e.price > 0, e
                assert e.quantity.is_finite() and e.quantity >= 0, e
