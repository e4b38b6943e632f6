"""Coinbase fidelity (issue 16, item 7): the client follows Coinbase's rules, and the fake
refuses what Coinbase refuses and answers as Coinbase answers.

Pure parts (the order tracker, the journal) run without sockets; the rest drives the real
client (SDK, JWT, TLS) against the local fake on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from cryptoj.adapters.coinbase.execution.errors import RetryPolicy
from cryptoj.adapters.coinbase.execution.orders import OrderTracker, OrderUpdate
from cryptoj.adapters.coinbase.execution.quantize import OrderSpec
from cryptoj.adapters.coinbase.execution.venue import CoinbaseVenue, VenueSettings
from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.adapters.coinbase.fake.auth import ApiKey, generate_api_key
from cryptoj.adapters.coinbase.jwt_auth import Credentials
from cryptoj.journal import Journal
from cryptoj.models.orders import Fill, OrderAccepted, OrderType, Side
from cryptoj.portfolio.ledger import Ledger
from cryptoj.venues.base import Resolution, TrackedOrder
from tests.stubs import start_keyed_fake

PRODUCTS = ["BTC-USD", "ETH-USD"]

# The recorded Coinbase quote-sized market buy
# (shared/data/coinbase/rest/ccxt_comments/list_orders_market_buy_quote_size_filled_BTC-USDT.json)
REC_SIZE = D("0.000297920684505")
REC_VALUE = D("6.3220675944333996")
REC_FEES = D("0.0379324055666004")
REC_AFTER_FEES = D("6.36")


# -- b. quote-sized buys at Coinbase's exact values (pure) ---------------------------------------


def quote_tracker() -> OrderTracker:
    return OrderTracker(
        client_order_id="q1",
        product="BTC-USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        created_ts=1,
        venue_order_id="813a53c5",
    )


def test_the_recorded_quote_buy_is_booked_at_coinbase_digits() -> None:
    t = quote_tracker()
    events = t.apply(
        OrderUpdate(
            venue_order_id="813a53c5",
            client_order_id="q1",
            status="FILLED",
            filled_size=REC_SIZE,
            filled_value=REC_VALUE,
            total_fees=REC_FEES,
            average_price=D("21220.6399999973697697"),
        ),
        2,
    )
    (fill,) = [e for e in events if isinstance(e, Fill)]
    assert fill.quantity == REC_SIZE and fill.fee == REC_FEES
    assert fill.notional == REC_VALUE  # not 6.32206759 (truncated to 1e-8)
    assert fill.cash_delta == -REC_AFTER_FEES  # not -6.3599999955666004
    ledger = Ledger(cash=D("100"))
    ledger.apply_fill(fill)
    assert ledger.cash == D("100") - REC_AFTER_FEES


def test_partial_reports_of_a_quote_buy_sum_to_total_value_after_fees() -> None:
    t = quote_tracker()
    reports = [  # cumulative, as the user channel sends them (two fills)
        (D("0.000000220684505"), D("0.0046830664333996"), D("0.0000280983986004")),
        (REC_SIZE, REC_VALUE, REC_FEES),
    ]
    fills = []
    for i, (size, value, fees) in enumerate(reports):
        u = OrderUpdate(
            venue_order_id="813a53c5",
            client_order_id="q1",
            status="OPEN" if i == 0 else "FILLED",
            filled_size=size,
            filled_value=value,
            total_fees=fees,
        )
        fills += [e for e in t.apply(u, 2 + i) if isinstance(e, Fill)]
        t.apply(u, 10)  # a repeated report changes nothing
    assert len(fills) == 2
    assert sum((f.notional for f in fills), D(0)) == REC_VALUE
    assert sum((f.cash_delta for f in fills), D(0)) == -REC_AFTER_FEES
    assert len({f.fill_id for f in fills}) == 2


def test_a_base_sized_fill_keeps_no_separate_value() -> None:
    t = quote_tracker()
    (fill,) = [
        e
        for e in t.apply(
            OrderUpdate(
                venue_order_id="813a53c5",
                client_order_id="q1",
                status="FILLED",
                filled_size=D("0.05"),
                filled_value=D("1234.56789012"),
                total_fees=D("7.40740734"),
            ),
            2,
        )
        if isinstance(e, Fill)
    ]
    assert fill.value is None and fill.notional == D("1234.56789012")


def test_the_journal_keeps_the_exact_value_and_opens_older_journals(tmp_path: Path) -> None:
    fill = Fill(
        ts=1,
        fill_id="813a53c5:0.000297920684505",
        client_order_id="q1",
        product="BTC-USDT",
        side=Side.BUY,
        quantity=REC_SIZE,
        price=D("21220.63999999736976967389013834069424"),
        fee=REC_FEES,
        liquidity="TAKER",
        value=REC_VALUE,
    )
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    assert j.record_fill(fill, REC_SIZE, D("21220.64"), D("100") - REC_AFTER_FEES)
    (back,) = j.fills()
    assert back == fill and back.cash_delta == -REC_AFTER_FEES
    assert j.fill_totals("q1") == (REC_SIZE, REC_VALUE, REC_FEES)
    j.close()
    old = tmp_path / "old.sqlite"  # a journal written before fills.value existed
    import sqlite3

    db = sqlite3.connect(old)
    db.execute(
        "CREATE TABLE fills (fill_id TEXT PRIMARY KEY, client_order_id TEXT NOT NULL,"
        " product TEXT NOT NULL, side TEXT NOT NULL, quantity TEXT NOT NULL, price TEXT NOT NULL,"
        " fee TEXT NOT NULL, liquidity TEXT NOT NULL, ts INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO fills VALUES ('f', 'c', 'BTC-USD', 'BUY', '1', '10.5', '0.1', 'T', 1)")
    db.commit()
    db.close()
    j2 = Journal(old)
    (legacy,) = j2.fills()
    assert legacy.value is None and legacy.notional == D("10.5")
    j2.close()


# -- on the fake ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_and_key() -> Iterator[tuple[FakeCoinbase, ApiKey]]:
    fake, key = start_keyed_fake("Ed25519")
    try:
        yield fake, key
    finally:
        fake.stop()


class Sleeper:
    """The injected sleep: waits for nothing."""

    def __call__(self, seconds: float) -> None:
        pass


def make_venue(fake: FakeCoinbase, key: ApiKey, **settings: Any) -> CoinbaseVenue:
    venue = CoinbaseVenue.connect(
        fake.rest_url,
        Credentials(key.name, key.private_pem),
        ca_file=fake.ca_file,
        timeout_s=2.0,
        policy=RetryPolicy(max_attempts=3, backoff_min_s=0.05, backoff_max_s=0.2),
        settings=VenueSettings(**{"place_attempts": 2, "absent_grace_s": 0.0, **settings}),
        sleep=Sleeper(),
        seed=1,
    )
    venue.set_listener(lambda _m: None)
    return venue


_IDS = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"fid-{prefix}-{next(_IDS)}-{time.time_ns() % 1_000_000}"


def test_find_order_follows_coinbase_status_rules_and_resolve_reaches_absent(
    fake_and_key: tuple[FakeCoinbase, ApiKey],
) -> None:
    fake, key = fake_and_key
    venue = make_venue(fake, key)
    client = venue.client
    with pytest.raises(Exception) as refused:  # the fake refuses what Coinbase refuses
        client.call(
            "GET",
            "/orders/historical/batch",
            params={"order_status": ["OPEN", "PENDING"], "product_ids": ["BTC-USD"]},
        )
    assert "400" in str(refused.value) and "OPEN cannot be combined" in str(refused.value)
    with pytest.raises(ValueError, match="OPEN cannot be combined"):
        client.list_orders(statuses=["OPEN", "FILLED"])
    coid = new_id("absent")
    venue.track(
        TrackedOrder(
            client_order_id=coid,
            product="BTC-USD",
            side=Side.BUY,
            order_type=OrderType.MARKET,
            created_ts=time.time_ns() - 120 * 1_000_000_000,
        )
    )
    before = fake.state()["counts"].get("rest_list", 0)
    state, detail = venue.resolve(coid, time.time_ns())
    assert (state, detail) == (Resolution.ABSENT, "not at Coinbase")
    assert fake.state()["counts"]["rest_list"] - before == 3  # all since, OPEN, PENDING
    resting = new_id("open")  # an OPEN order older than start_date is still found
    spec = OrderSpec(
        client_order_id=resting,
        product="BTC-USD",
        side=Side.BUY,
        kind="limit",
        base_size=D("0.01"),
        limit_price=D("1000"),
    )
    assert isinstance(venue.submit_spec(spec, time.time_ns()), OrderAccepted)
    found = client.find_order(resting, "BTC-USD", time.time_ns() + 3600 * 1_000_000_000)
    assert found is not None and found.status == "OPEN"
    assert venue.cancel(resting, time.time_ns())


def test_a_quote_sized_buy_on_the_fake_books_total_value_after_fees_exactly(
    fake_and_key: tuple[FakeCoinbase, ApiKey],
) -> None:
    fake, key = fake_and_key
    venue = make_venue(fake, key)
    usd_before = venue.balances()["USD"]
    coid = new_id("quote")
    spec = OrderSpec(
        client_order_id=coid, product="BTC-USD", side=Side.BUY, kind="market", quote_size=D("6.36")
    )
    assert isinstance(venue.submit_spec(spec, time.time_ns()), OrderAccepted)
    fills = venue.fills_for(coid)
    assert fills
    orders = fake.state()["exchange"]["orders"]
    venue_order = next(o for o in orders if o["client_order_id"] == coid)
    assert venue_order["total_value_after_fees"] == "6.36"
    assert len(D(venue_order["filled_value"]).as_tuple().digits) > 10  # not rounded to 1e-8
    assert sum((f.cash_delta for f in fills), D(0)) == -D("6.36")
    assert sum((f.notional for f in fills), D(0)) == D(venue_order["filled_value"])
    assert venue.balances()["USD"] == usd_before - D("6.36")
    venue_fills = [
        f for f in fake.state()["exchange"]["fills"] if f["order_id"] == venue_order["order_id"]
    ]
    assert venue_fills and all(f["size_in_quote"] is True for f in venue_fills)
    assert sum(D(f["size"]) + D(f["commission"]) for f in venue_fills) == D("6.36")


# -- c. a stop already crossed -------------------------------------------------------------------


def test_the_fake_refuses_a_stop_the_last_trade_has_crossed_with_coinbase_body() -> None:
    from cryptoj.adapters.coinbase.fake.exchange import Exchange
    from cryptoj.adapters.coinbase.fake.products import default_specs

    ids = itertools.count()
    ex = Exchange(
        default_specs(["BTC-USD"]),
        {"USD": D("100000"), "BTC": D("10")},
        clock=lambda: 1,
        ids=lambda: f"id-{next(ids)}",
    )
    book = ([(D("100"), D("1"))], [(D("101"), D("1"))])

    def stop(coid: str, side: str, stop_price: str, direction: str) -> dict[str, Any]:
        config = {
            "base_size": "0.5",
            "limit_price": "50" if side == "SELL" else "150",
            "stop_price": stop_price,
            "stop_direction": f"STOP_DIRECTION_STOP_{direction}",
        }
        return {
            "client_order_id": coid,
            "product_id": "BTC-USD",
            "side": side,
            "order_configuration": {"stop_limit_stop_limit_gtc": config},
        }

    for coid, side, price, direction, reason in (
        ("s1", "SELL", "105", "DOWN", "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE"),
        ("s2", "SELL", "100.5", "DOWN", "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE"),  # = last
        ("b1", "BUY", "95", "UP", "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE"),
    ):
        body = stop(coid, side, price, direction)
        r = ex.create(body, lambda _p: book, lambda _p: D("100.5"))
        assert r["success"] is False and r["order_id"] == ""
        e = r["error_response"]
        assert (e["error"], e["preview_failure_reason"]) == (reason, reason)
        assert e["new_order_failure_reason"] == "UNKNOWN_FAILURE_REASON"
        assert r["order_configuration"] == body["order_configuration"]
    assert ex.order_list == []
    ok = ex.create(stop("s3", "SELL", "90", "DOWN"), lambda _p: book, lambda _p: D("100.5"))
    assert ok["success"] is True and ex.orders[ok["order_id"]].status == "OPEN"


@pytest.mark.parametrize(("side", "direction"), [(Side.SELL, "DOWN"), (Side.BUY, "UP")])
def test_a_stop_refused_as_already_crossed_goes_out_at_market(
    fake_and_key: tuple[FakeCoinbase, ApiKey], side: Side, direction: str
) -> None:
    from cryptoj.models.orders import SubmitOrder

    fake, key = fake_and_key
    venue = make_venue(fake, key)
    usd_before = venue.balances()["USD"]
    last = fake.api._price("ETH-USD")
    assert last is not None
    # a sell stop-loss far above the last trade / a buy stop far below it: both already crossed
    factor = D(2) if side is Side.SELL else D("0.5")
    stop_price = (last * factor).quantize(D("0.01"))
    limit_price = (stop_price * (D("0.9") if side is Side.SELL else D("1.1"))).quantize(D("0.01"))
    coid = new_id(f"stop-{direction}")
    order = SubmitOrder(
        client_order_id=coid,
        product="ETH-USD",
        side=side,
        order_type=OrderType.STOP_LIMIT,
        quantity=D("0.5"),
        limit_price=limit_price,
        stop_price=stop_price,
    )
    result = venue.submit(order, time.time_ns())
    assert isinstance(result, OrderAccepted)
    at_venue = [o for o in fake.state()["exchange"]["orders"] if o["client_order_id"] == coid]
    assert len(at_venue) == 1  # the refused stop created nothing; the market order did
    assert at_venue[0]["order_configuration"] == {"market_market_ioc": {"base_size": "0.5"}}
    assert at_venue[0]["status"] == "FILLED"
    view = venue.get_order(coid)
    assert view is not None and view.filled_quantity == D("0.5")
    fills = venue.fills_for(coid)
    assert sum((f.quantity for f in fills), D(0)) == D("0.5") and fills[0].side is side
    assert venue.balances()["USD"] - usd_before == sum((f.cash_delta for f in fills), D(0))
    assert venue.counters()["stops_at_market"] == 1
    notes = venue.take_notes()
    assert [(k, c) for k, c, _ in notes] == [("stop_sent_at_market", coid)]
    assert "LAST_TRADE_PRICE" in notes[0][2]


# -- d. every JWT form Coinbase accepts ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["ES256", "Ed25519"])
def test_the_fake_accepts_every_jwt_form_coinbase_accepts_and_still_checks_them(kind: str) -> None:
    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization

    from cryptoj.adapters.coinbase.fake.auth import JwtVerifier

    key = generate_api_key(kind)
    other = generate_api_key(kind, name=key.name)
    now = 1_800_000_000
    v = JwtVerifier(key.name, key.public_pem, clock=lambda: float(now))
    uri = "GET 127.0.0.1:8443/api/v3/brokerage/accounts"

    def token(signer: ApiKey = key, **claims: Any) -> str:
        body = {"sub": key.name, "iss": "cdp", "nbf": now, "exp": now + 120, **claims}
        private = serialization.load_pem_private_key(signer.private_pem.encode(), password=None)
        return pyjwt.encode(
            body,
            private,  # type: ignore[arg-type]
            algorithm=key.algorithm,
            headers={"kid": key.name, "nonce": "ab" * 32},
        )

    def rest(t: str) -> str:
        return v.verify_rest(f"Bearer {t}", "GET", "127.0.0.1:8443", "/api/v3/brokerage/accounts")

    accepted = {
        "today's SDK": token(uri=uri),
        "earlier SDK / ccxt": token(uri=uri, iss="coinbase-cloud", aud=["retail_rest_api_proxy"]),
        "aud as a string": token(uri=uri, aud="retail_rest_api_proxy"),
        "uris list": token(uris=["GET 127.0.0.1:8443/api/v3/brokerage/orders", uri]),
    }
    for why, t in accepted.items():
        assert rest(t) == "", why
    refused = {
        "bad signature": token(signer=other, uri=uri, aud=["retail_rest_api_proxy"]),
        "expired": token(uri=uri, iss="coinbase-cloud", nbf=now - 200, exp=now - 80),
        "uris without this request": token(uris=["GET 127.0.0.1:8443/api/v3/brokerage/orders"]),
        "unknown issuer": token(uri=uri, iss="someone-else"),
    }
    for why, t in refused.items():
        assert rest(t) != "", why
    assert v.verify_ws(token(aud=["public_websocket_api"], iss="coinbase-cloud")) == ""
    assert v.verify_ws(token(signer=other)) != ""


# -- e. the fake's other differences -------------------------------------------------------------


def pure_exchange() -> Any:
    from cryptoj.adapters.coinbase.fake.exchange import Exchange
    from cryptoj.adapters.coinbase.fake.products import default_specs

    ids = itertools.count()
    clock = itertools.count(1_700_000_000_000_000_000, 1_000_000_000)  # one second per read
    return Exchange(
        default_specs(["BTC-USD"]),
        {"USD": D("100000"), "BTC": D("10")},
        clock=lambda: next(clock),
        ids=lambda: f"id-{next(ids)}",
    )


BOOK = ([(D("100"), D("1")), (D("99"), D("2"))], [(D("101"), D("1")), (D("102"), D("2.5"))])


def create(ex: Any, coid: str, side: str, key: str, fields: dict[str, Any]) -> Any:
    body = {
        "client_order_id": coid,
        "product_id": "BTC-USD",
        "side": side,
        "order_configuration": {key: fields},
    }
    r = ex.create(body, lambda _p: BOOK)
    return ex.orders.get(r["order_id"]) if r["success"] else r


def test_the_fake_accepts_limit_ioc_fok_and_gtd_as_coinbase_does() -> None:
    ex = pure_exchange()
    ioc = create(ex, "ioc", "BUY", "sor_limit_ioc", {"base_size": "1.5", "limit_price": "101"})
    assert (ioc.status, ioc.filled_size) == ("CANCELLED", D("1"))  # took 1 at 101, rest cancelled
    assert ioc.to_json("u", "p")["time_in_force"] == "IMMEDIATE_OR_CANCEL"
    assert ioc.to_json("u", "p")["order_configuration"] == {
        "sor_limit_ioc": {"base_size": "1.5", "limit_price": "101"}
    }
    none = create(ex, "ioc0", "BUY", "sor_limit_ioc", {"base_size": "1", "limit_price": "50"})
    assert (none.status, none.filled_size) == ("EXPIRED", 0)
    kill = create(ex, "fok0", "BUY", "limit_limit_fok", {"base_size": "2", "limit_price": "101"})
    assert (kill.status, kill.filled_size, kill.fills) == ("EXPIRED", 0, [])
    fill = create(ex, "fok1", "BUY", "limit_limit_fok", {"base_size": "2", "limit_price": "102"})
    assert (fill.status, fill.filled_size) == ("FILLED", D("2"))
    assert fill.to_json("u", "p")["time_in_force"] == "FILL_OR_KILL"
    end = "2023-11-14T22:13:40Z"  # 20 s after the clock's start
    gtd = create(
        ex,
        "gtd",
        "BUY",
        "limit_limit_gtd",
        {"base_size": "0.5", "limit_price": "90", "end_time": end, "post_only": True},
    )
    assert gtd.status == "OPEN" and gtd.to_json("u", "p")["time_in_force"] == "GOOD_UNTIL_DATE_TIME"
    assert gtd.config["end_time"] == end and gtd.hold > 0
    stop_gtd = create(
        ex,
        "sgtd",
        "SELL",
        "stop_limit_stop_limit_gtd",
        {
            "base_size": "0.5",
            "limit_price": "80",
            "stop_price": "85",
            "stop_direction": "STOP_DIRECTION_STOP_DOWN",
            "end_time": end,
        },
    )
    assert stop_gtd.status == "OPEN"
    for _ in range(30):  # the clock passes end_time
        ex.on_market("BTC-USD", BOOK, [D("100")])
    assert (gtd.status, stop_gtd.status) == ("EXPIRED", "EXPIRED") and gtd.hold == 0
    late = create(
        ex,
        "late",
        "BUY",
        "limit_limit_gtd",
        {"base_size": "1", "limit_price": "90", "end_time": end},
    )
    assert late["success"] is False and "end_time" in late["error_response"]["message"]
    bad = create(ex, "bad", "BUY", "limit_limit_gtd", {"base_size": "1", "limit_price": "90"})
    assert bad["error_response"]["error"] == "UNSUPPORTED_ORDER_CONFIGURATION"
    assert ex.invariant_violations() == []


def test_the_fake_honours_a_singular_product_id_filter() -> None:
    from cryptoj.adapters.coinbase.fake import queries
    from cryptoj.adapters.coinbase.fake.exchange import Exchange
    from cryptoj.adapters.coinbase.fake.products import default_specs

    ids = itertools.count()
    ex = Exchange(
        default_specs(["BTC-USD", "ETH-USD"]),
        {"USD": D("100000")},
        clock=lambda: 1,
        ids=lambda: f"id-{next(ids)}",
    )
    for coid, product in (("a", "BTC-USD"), ("b", "ETH-USD")):
        body = {
            "client_order_id": coid,
            "product_id": product,
            "side": "BUY",
            "order_configuration": {"market_market_ioc": {"quote_size": "10"}},
        }
        assert ex.create(body, lambda _p: BOOK)["success"]
    listed = queries.list_orders(ex, {"product_id": ["ETH-USD"]})["orders"]
    assert [o["client_order_id"] for o in listed] == ["b"]
    fills = queries.list_fills(ex, {"product_id": ["BTC-USD"]})["fills"]
    assert fills and {f["product_id"] for f in fills} == {"BTC-USD"}


@pytest.fixture(scope="module")
def quick_fake() -> Iterator[tuple[FakeCoinbase, ApiKey]]:
    """A keyed fake whose ticker_batch comes every 0.5 s (Coinbase: 5 s)."""
    key = generate_api_key("ES256")
    fake = FakeCoinbase(
        products=PRODUCTS,
        step_s=0.05,
        heartbeat_s=0.2,
        ticker_batch_s=0.5,
        jwt_key_name=key.name,
        jwt_public_key=key.public_pem,
    ).start()
    try:
        yield fake, key
    finally:
        fake.stop()


def _numbers(obj: Any) -> Iterator[str]:
    import re

    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, str) and re.fullmatch(r"-?\d+(\.\d+)?", obj):
        yield obj


def test_public_channels_need_no_jwt_and_send_clean_decimals_and_ticker_batches(
    quick_fake: tuple[FakeCoinbase, ApiKey],
) -> None:
    import json

    import websocket

    fake, _ = quick_fake
    ws = websocket.create_connection(fake.ws_url, sslopt={"ca_certs": fake.ca_file}, timeout=5)
    try:
        for channel in ("heartbeats", "level2", "ticker", "ticker_batch", "market_trades"):
            ws.send(json.dumps({"type": "subscribe", "channel": channel, "product_ids": PRODUCTS}))
        seen: dict[str, int] = {}
        order: list[str] = []
        numbers: list[str] = []
        for _ in range(2000):  # bounded: about 4 ticker_batch periods of frames
            msg = json.loads(ws.recv())
            assert msg.get("type") != "error", msg
            channel = msg["channel"]
            seen[channel] = seen.get(channel, 0) + 1
            order.append(channel)
            if channel in ("l2_data", "ticker", "ticker_batch", "market_trades"):
                numbers += list(_numbers(msg["events"]))
            if seen.get("ticker_batch", 0) >= 4:
                break
    finally:
        ws.close()
    assert seen["ticker_batch"] >= 4 and seen["l2_data"] > 0 and seen["heartbeats"] > 0
    batches = [i for i, c in enumerate(order) if c == "ticker_batch"]
    between = [order[a:b].count("ticker") for a, b in itertools.pairwise(batches[1:])]
    assert between and min(between) >= 3  # a batch every few steps, not one per ticker
    assert numbers
    noisy = [n for n in numbers if "." in n and (len(n.split(".")[1]) > 8 or n.endswith("0"))]
    assert noisy == []
    bad = websocket.create_connection(fake.ws_url, sslopt={"ca_certs": fake.ca_file}, timeout=5)
    try:  # a JWT that is sent is still checked
        bad.send(json.dumps({"type": "subscribe", "channel": "ticker", "product_ids": PRODUCTS,
                             "jwt": "not.a.jwt"}))  # fmt: skip
        assert json.loads(bad.recv()) == {"type": "error", "message": "authentication failure"}
    finally:
        bad.close()


def test_rest_edges_answer_cleanly_with_rate_limit_headers(
    quick_fake: tuple[FakeCoinbase, ApiKey],
) -> None:
    import http.client
    import json
    import ssl

    from coinbase import jwt_generator

    fake, key = quick_fake
    ctx = ssl.create_default_context(cafile=fake.ca_file)
    host = f"127.0.0.1:{fake.ports[0]}"

    def call(
        method: str, path: str, body: bytes = b"", signed: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", fake.ports[0], context=ctx, timeout=5)
        headers = {"Content-Type": "application/json"}
        if signed:
            uri = f"{method} {host}{path.split('?')[0]}"  # as the SDK builds it
            headers["Authorization"] = (
                f"Bearer {jwt_generator.build_rest_jwt(uri, key.name, key.private_pem)}"
            )
        try:
            conn.request(method, path, body, headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    api = "/api/v3/brokerage"
    big = json.dumps({"x": "y" * 200_000}).encode()
    unrouted = [
        ("POST", f"{api}/no/such/thing"),
        ("POST", "/elsewhere"),
        ("GET", f"{api}/orders/historical/a/b"),
        ("DELETE", f"{api}/orders"),
    ]
    for method, path in unrouted:
        status, _, body = call(method, path, big)
        assert status == 404 and json.loads(body)["error"] == "NOT_FOUND", (method, path)
    status, headers, body = call("GET", f"{api}/market/products/BTC-USD/ticker?limit=ten")
    assert status == 400 and json.loads(body)["error"] == "INVALID_ARGUMENT"
    assert call("GET", f"{api}/market/product_book?product_id=BTC-USD&limit=x")[0] == 400
    for private in (
        "/product_book?product_id=BTC-USD&limit=2",
        "/best_bid_ask?product_ids=BTC-USD",
    ):
        assert call("GET", api + private)[:3:2] == (401, b"Unauthorized")
        status, _, body = call("GET", api + private, signed=True)
        assert status == 200 and json.loads(body), private
    status, headers, _ = call("GET", f"{api}/market/product_book?product_id=BTC-USD&limit=2")
    assert status == 200 and headers["x-ratelimit-limit"] == "10"
    assert int(headers["x-ratelimit-reset"]) > time.time() - 5
    status, headers, _ = call("GET", f"{api}/accounts", signed=True)
    assert status == 200 and headers["x-ratelimit-limit"] == "30"
    assert 0 <= int(headers["x-ratelimit-remaining"]) < 30


def test_the_command_line_picks_a_free_control_port_and_prints_it(tmp_path: Path) -> None:
    import json
    import signal
    import subprocess
    import sys
    import urllib.request

    tool = Path(__file__).resolve().parents[1] / "tools" / "fake_coinbase.py"
    cmd = [sys.executable, str(tool), "--port", "0", "--seconds", "30",
           "--cert-dir", str(tmp_path / "cert")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["control_port"] != 8445 and info["control_port"] > 0
        assert info["control_url"] == f"http://127.0.0.1:{info['control_port']}"
        with urllib.request.urlopen(f"{info['control_url']}/state", timeout=5) as r:
            assert "counts" in json.loads(r.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_the_execution_actor_sends_a_crossed_stop_loss_at_market_and_journals_why(
    tmp_path: Path, fake_and_key: tuple[FakeCoinbase, ApiKey]
) -> None:
    from cryptoj.actors.execution import ExecutionActor
    from cryptoj.models.orders import OrderStatus, SubmitOrder
    from tests.stubs import FakeCtx
    from tests.test_coinbase_exec_fake import make_venue as make_listening_venue

    fake, key = fake_and_key
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", "1000000")
    venue, events, _ = make_listening_venue(fake, key)
    actor, ctx = ExecutionActor(venue, path), FakeCtx()
    actor.on_start(ctx)
    last = fake.api._price("ETH-USD")
    assert last is not None
    coid = new_id("stop-loss")
    stop_price = (last * 2).quantize(D("0.01"))  # a sell stop-loss the price fell through
    actor.receive(
        SubmitOrder(
            client_order_id=coid,
            product="ETH-USD",
            side=Side.SELL,
            order_type=OrderType.STOP_LIMIT,
            quantity=D("0.2"),
            limit_price=(stop_price * D("0.95")).quantize(D("0.01")),
            stop_price=stop_price,
        ),
        ctx,
    )
    while events.items:  # deliver what the venue pushed, as the runtime would
        actor.receive(events.items.pop(0), ctx)
    row = j.order(coid)
    assert row is not None and row["status"] == OrderStatus.FILLED and row["venue_order_id"]
    notes = [e["detail"] for e in j.events("stop_sent_at_market")]
    assert len(notes) == 1 and notes[0].startswith(coid) and "LAST_TRADE_PRICE" in notes[0]
    fills = [m for m in ctx.to("portfolio") if isinstance(m, Fill)]
    assert fills and sum({f.fill_id: f.quantity for f in fills}.values()) == D("0.2")
    j.close()
