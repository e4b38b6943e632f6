"""Coinbase wire parsing against the recorded real frames (tests/data/coinbase, see its README).

Level2 and ticker frames have no attributable real capture; where a test needs one it is built
from the documented shape (protocol notes §4.3) and says so.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from cryptoj.adapters.coinbase.book import OrderBook
from cryptoj.adapters.coinbase.parse import (
    ErrorFrame,
    FrameDecoder,
    MalformedFrame,
    UnknownFrame,
    format_rfc3339_ns,
    heartbeat_counter,
    pricebook_quote,
    rfc3339_ns,
    ticker_quote,
    trade_event,
)
from cryptoj.adapters.coinbase.schemas import (
    HeartbeatsFrame,
    L2Frame,
    MarketTradesFrame,
    RestBestBidAsk,
    RestProductBook,
    RestTrades,
    SkippedTickerFrame,
    Subscribe,
    SubscriptionsFrame,
    TickerFrame,
)

DATA = Path(__file__).parent / "data" / "coinbase"


def lines(path: str) -> list[bytes]:
    return [ln for ln in (DATA / path).read_bytes().splitlines() if ln.strip()]


def l2_frame(seq: int, kind: str, product: str, levels: list[tuple[str, str, str]]) -> bytes:
    """An l2_data frame in the documented shape (no real capture exists)."""
    return json.dumps(
        {
            "channel": "l2_data",
            "client_id": "",
            "timestamp": "2024-10-04T07:04:40.812675707Z",
            "sequence_num": seq,
            "events": [
                {
                    "type": kind,
                    "product_id": product,
                    "updates": [
                        {
                            "side": s,
                            "event_time": "2024-10-04T07:04:40.800000Z",
                            "price_level": p,
                            "new_quantity": q,
                        }
                        for s, p, q in levels
                    ],
                }
            ],
        }
    ).encode()


# -- real frames -------------------------------------------------------------------------------


def test_real_heartbeats_ack_and_beat_decode_with_sequence_numbers() -> None:
    ack, beat = (FrameDecoder().decode(x) for x in lines("ws/jkorf/heartbeats_ack_and_beat.jsonl"))
    assert isinstance(ack, SubscriptionsFrame)
    assert ack.sequence_num == 0
    assert ack.events[0].subscriptions == {"heartbeats": ["heartbeats"]}
    assert isinstance(beat, HeartbeatsFrame)
    assert beat.sequence_num == 1
    assert beat.events[0].heartbeat_counter == 66987
    assert rfc3339_ns(beat.timestamp) == 1728025480825062088


def test_real_ticker_and_user_acks_decode() -> None:
    ticker = FrameDecoder().decode(lines("ws/jkorf/subscriptions_ack_ticker.json")[0])
    user = FrameDecoder().decode(lines("ws/jkorf/subscriptions_ack_user.json")[0])
    assert isinstance(ticker, SubscriptionsFrame)
    assert ticker.events[0].subscriptions == {"ticker": ["ETH-USDT"]}
    assert isinstance(user, SubscriptionsFrame)
    assert list(user.events[0].subscriptions) == ["user"]  # lists the user uuid, not products


def test_real_market_trades_are_decimal_and_converted_oldest_first() -> None:
    frame = FrameDecoder().decode(lines("ws/jkorf/market_trades_update.json")[0])
    assert isinstance(frame, MarketTradesFrame)
    trades = frame.events[0].trades
    assert [t.trade_id for t in trades] == ["22381691", "22381690"]  # newest first on the wire
    converted = [trade_event(t, 0) for t in reversed(trades)]
    assert [t.trade_id for t in converted] == ["22381690", "22381691"]
    assert converted[0].price == Decimal("2375.56") and converted[0].quantity == Decimal("0.5")
    assert converted[0].taker_side == "BUY" and converted[0].product == "ETH-USDT"
    assert converted[0].ts == rfc3339_ns("2024-10-04T07:13:31.084859Z")


@pytest.mark.parametrize(
    "raw, message",
    [
        (0, "authentication failure"),
        (1, "too many L2 streams requested in a single session"),
    ],
)
def test_real_error_frames_without_envelope(raw: int, message: str) -> None:
    parsed = FrameDecoder().decode(lines("ws/issues/error_frames.jsonl")[raw])
    assert parsed == ErrorFrame(message)


# -- shapes from the documentation ---------------------------------------------------------------


def test_heartbeat_counter_as_string_or_number() -> None:
    text = (
        b'{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:26.122969572Z",'
        b'"sequence_num":0,"events":[{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC'
        b' m=+91717.525857105","heartbeat_counter":"3049"}]}'
    )  # the docs' example: a string counter
    frame = FrameDecoder().decode(text)
    assert isinstance(frame, HeartbeatsFrame)
    assert heartbeat_counter(frame.events[0].heartbeat_counter) == 3049
    assert heartbeat_counter(7) == 7
    assert heartbeat_counter("x") is None


def test_level2_offer_side_and_absolute_quantities() -> None:
    dec = FrameDecoder()
    book = OrderBook("BTC-USD")
    snap = dec.decode(
        l2_frame(1, "snapshot", "BTC-USD", [("bid", "100.0", "2"), ("offer", "101", "3")])
    )
    assert isinstance(snap, L2Frame)
    book.apply_levels(snap.events[0].updates)
    assert book.top() == (Decimal(100), Decimal(2), Decimal(101), Decimal(3))
    upd = dec.decode(l2_frame(2, "update", "BTC-USD", [("bid", "100", "5"), ("offer", "101", "0")]))
    assert isinstance(upd, L2Frame)
    book.apply_levels(upd.events[0].updates)
    assert book.bids == {Decimal(100): Decimal(5)}  # absolute size, not a delta
    assert book.asks == {}  # "0" deletes
    assert book.last_event_time == "2024-10-04T07:04:40.800000Z"


def test_snapshot_larger_than_one_mebibyte_decodes() -> None:
    levels = [("bid", f"{50000 - i * 0.01:.2f}", "0.00100000") for i in range(9000)]
    levels += [("offer", f"{50001 + i * 0.01:.2f}", "0.00100000") for i in range(9000)]
    raw = l2_frame(1, "snapshot", "BTC-USD", levels)
    assert len(raw) > 1024 * 1024
    frame = FrameDecoder().decode(raw)
    assert isinstance(frame, L2Frame)
    book = OrderBook("BTC-USD")
    book.apply_levels(frame.events[0].updates)
    assert book.depth() == (9000, 9000)
    assert book.best_bid() == Decimal("50000.00") and book.best_ask() == Decimal("50001.00")


def test_unknown_channel_type_and_malformed_frames_are_classified() -> None:
    dec = FrameDecoder()
    unknown = dec.decode(b'{"channel":"futures_balance_summary","sequence_num":4,"events":[]}')
    assert unknown == UnknownFrame("futures_balance_summary", 4, "")
    new_type = dec.decode(b'{"type":"welcome","sequence_num":5}')  # no channel: ignored
    assert isinstance(new_type, UnknownFrame) and new_type.kind == "welcome"
    assert isinstance(dec.decode(b"not json"), MalformedFrame)
    assert isinstance(dec.decode(b"[1, 2]"), MalformedFrame)
    bad_l2 = dec.decode(b'{"channel":"l2_data","sequence_num":6,"events":[{"type":"update"}]}')
    assert isinstance(bad_l2, MalformedFrame)
    assert bad_l2.channel == "l2_data" and bad_l2.sequence_num == 6


def test_ticker_quote_from_documented_shape_and_skipped_when_unused() -> None:
    raw = (
        b'{"channel":"ticker","client_id":"","timestamp":"2023-02-09T20:30:37.167359596Z",'
        b'"sequence_num":0,"events":[{"type":"snapshot","tickers":[{"type":"ticker",'
        b'"product_id":"BTC-USD","price":"21932.98","volume_24_h":"16038.28770938",'
        b'"best_bid":"21931.98","best_bid_quantity":"0.5","best_ask":"21932.98",'
        b'"best_ask_quantity":"0.75"}]}]}'
    )  # the documented ticker shape (with the 2024 best_* fields)
    frame = FrameDecoder().decode(raw)
    assert isinstance(frame, TickerFrame)
    q = ticker_quote(frame.events[0].tickers[0], 1)
    assert q is not None
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (
        Decimal("21931.98"),
        Decimal("0.5"),
        Decimal("21932.98"),
        Decimal("0.75"),
    )
    lean = FrameDecoder(tickers=False).decode(raw)
    assert isinstance(lean, SkippedTickerFrame) and lean.sequence_num == 0
    older = msgspec.json.decode(
        b'{"product_id":"X","price":"1"}', type=type(frame.events[0].tickers[0])
    )
    assert ticker_quote(older, 1) is None  # no best_* fields (before 2024-04): no quote


@pytest.mark.parametrize(
    "text, ns",
    [
        ("2024-10-04T07:04:40.812675707Z", 1728025480812675707),
        ("2024-10-04T07:13:31.088388Z", 1728026011088388000),
        ("2024-10-04T07:13:31Z", 1728026011000000000),
        ("2024-10-04T07:13:31.5+01:00", 1728022411500000000),
        ("2024-10-04 07:13:31.25-00:30", 1728027811250000000),
    ],
)
def test_rfc3339_with_0_to_9_fraction_digits(text: str, ns: int) -> None:
    assert rfc3339_ns(text) == ns
    assert rfc3339_ns(text) == ns  # cached second


def test_rfc3339_rejects_garbage_and_round_trips() -> None:
    for bad in ("", "yesterday", "2024-10-04T07:13:31.1234567890Z", "2024-10-04T07:13:31+0100"):
        with pytest.raises(ValueError):
            rfc3339_ns(bad)
    assert rfc3339_ns(format_rfc3339_ns(1728025480812675707)) == 1728025480812675707


def test_subscribe_message_is_one_channel_with_optional_jwt() -> None:
    plain = json.loads(msgspec.json.encode(Subscribe(type="subscribe", channel="heartbeats")))
    assert plain == {"type": "subscribe", "channel": "heartbeats"}
    keyed = json.loads(
        msgspec.json.encode(
            Subscribe(type="subscribe", product_ids=["BTC-USD"], channel="level2", jwt="t")
        )
    )
    assert keyed == {
        "type": "subscribe",
        "product_ids": ["BTC-USD"],
        "channel": "level2",
        "jwt": "t",
    }


# -- REST bodies (real) ------------------------------------------------------------------------


def test_real_rest_market_trades_decode() -> None:
    for path, n in [
        ("rest/nautilus/get_market_trades_BTC-USD.json", 3),
        ("rest/ccxt_static/get_market_trades_BTC-USDC_limit1.json", 1),
        ("rest/ccxt_comments/market_trades_BTC-USDT_one_row.json", 1),
    ]:
        body = msgspec.json.decode((DATA / path).read_bytes(), type=RestTrades)
        assert len(body.trades) == n
        t = trade_event(body.trades[0], 0)
        assert t.price > 0 and t.quantity > 0 and t.ts > 1_600_000_000 * 10**9


def test_real_rest_books_give_top_of_book_quotes() -> None:
    book = msgspec.json.decode(
        (DATA / "rest/nautilus/get_product_book_BTC-USD.json").read_bytes(), type=RestProductBook
    )
    q = pricebook_quote(book.pricebook, 0)
    assert q is not None
    assert (q.product, q.bid, q.ask) == ("BTC-USD", Decimal("68923.66"), Decimal("68923.67"))
    bba = msgspec.json.decode(
        (DATA / "rest/ccxt_comments/best_bid_ask_TRAC-EUR.json").read_bytes(), type=RestBestBidAsk
    )
    q2 = pricebook_quote(bba.pricebooks[0], 0)
    assert q2 is not None and q2.bid_size == Decimal("386.1")
    one = msgspec.json.decode(
        (DATA / "rest/ccxt_comments/product_book_BTC-USDT_one_level.json").read_bytes(),
        type=RestProductBook,
    )
    assert pricebook_quote(one.pricebook, 0) is not None
