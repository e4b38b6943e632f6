"""Clients written by others against the local fake exchange (HTTPS on 127.0.0.1).

* Coinbase's own ``coinbase-advanced-py`` ``RESTClient`` (typed responses) for every REST
  endpoint the daemon uses: create (market by base and by quote size, limit GTC post-only,
  stop-limit GTC), batch cancel, get order, list orders (``OPEN`` alone, and by product since a
  date), list fills, accounts, product(s), and the public trades and book the feed reads; and
  its ``WSClient`` for the channels the daemon reads (heartbeats, level2, ticker,
  market_trades, user).
* ccxt's ``coinbase`` class (a second, independent implementation of the JWT and the
  endpoints): markets, balances, orders and fills. Skipped when ccxt is not installed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import pytest
from coinbase.rest import RESTClient

from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.adapters.coinbase.fake.auth import ApiKey
from tests.stubs import start_keyed_fake

PRODUCTS = ["BTC-USD", "ETH-USD"]


@pytest.fixture(scope="module", params=["ES256", "Ed25519"])
def keyed_fake(request: pytest.FixtureRequest) -> Iterator[tuple[FakeCoinbase, ApiKey]]:
    fake, key = start_keyed_fake(request.param, {"USD": "100000", "ETH": "50"})
    try:
        yield fake, key
    finally:
        fake.stop()


def coid() -> str:
    return f"cli-{secrets.token_hex(6)}"


def sdk(fake: FakeCoinbase, key: ApiKey) -> RESTClient:
    c = RESTClient(
        api_key=key.name,
        api_secret=key.private_pem,
        base_url=f"127.0.0.1:{fake.ports[0]}",
        timeout=5,
        rate_limit_headers=True,
    )
    c.session.trust_env = False
    c.session.verify = fake.ca_file
    return c


def test_the_official_rest_client_uses_every_endpoint_the_daemon_uses(
    keyed_fake: tuple[FakeCoinbase, ApiKey],
) -> None:
    fake, key = keyed_fake
    c = sdk(fake, key)
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    product = c.get_product("ETH-USD")
    assert product.product_id == "ETH-USD" and D(product.base_increment) > 0
    assert {p.product_id for p in c.get_products().products} >= set(PRODUCTS)
    trades = c.get_public_market_trades("ETH-USD", limit=5)
    end = time.monotonic() + 10
    while not trades.trades and time.monotonic() < end:  # the first recorded trades
        time.sleep(0.05)
        trades = c.get_public_market_trades("ETH-USD", limit=5)
    assert trades.trades and all(D(t.price) > 0 for t in trades.trades)
    book = c.get_public_product_book("ETH-USD", limit=2).pricebook
    assert D(book.bids[0].price) < D(book.asks[0].price)
    assert c.get_product_book("ETH-USD", limit=1).pricebook.product_id == "ETH-USD"  # private
    assert c.get_best_bid_ask(["ETH-USD"]).pricebooks[0].product_id == "ETH-USD"
    assert int(c.get_unix_time().epoch_seconds) > 0
    market = c.market_order_sell(coid(), "ETH-USD", base_size="0.5")
    assert market.success
    by_quote = c.market_order_buy(coid(), "ETH-USD", quote_size="25")
    assert by_quote.success
    bid = D(book.bids[0].price)
    resting = c.limit_order_gtc_buy(
        coid(), "ETH-USD", "0.1", str((bid / 2).quantize(D("0.01"))), post_only=True
    )
    assert resting.success
    stop = c.stop_limit_order_gtc_sell(
        coid(),
        "ETH-USD",
        "0.1",
        str((bid / 3).quantize(D("0.01"))),
        str((bid / 2).quantize(D("0.01"))),
        "STOP_DIRECTION_STOP_DOWN",
    )
    assert stop.success
    ids = [r.success_response["order_id"] for r in (market, by_quote, resting, stop)]
    o = c.get_order(ids[1]).order
    assert o.status == "FILLED" and D(o.total_value_after_fees) == D("25") and o.size_in_quote
    open_now = c.list_orders(order_status=["OPEN"], product_ids=["ETH-USD"]).orders
    assert {ids[2], ids[3]} <= {x.order_id for x in open_now}
    since = c.list_orders(product_ids=["ETH-USD"], start_date=start, limit=100).orders
    assert set(ids) <= {x.order_id for x in since}
    fills = c.get_fills(order_ids=ids[:2], start_sequence_timestamp=start).fills
    assert {f["order_id"] for f in fills} == set(ids[:2])
    cancelled = c.cancel_orders(ids[2:]).results
    assert [r.success for r in cancelled] == [True, True]
    accounts = c.get_accounts(limit=250)
    usd = next(a for a in accounts.accounts if a.currency == "USD")
    assert D(usd.available_balance["value"]) > 0
    assert accounts["rate_limit_limit"] == "30"  # the x-ratelimit-* headers, read by the SDK
    assert int(accounts["rate_limit_remaining"]) >= 0 and accounts["rate_limit_reset"]


# -- ccxt ----------------------------------------------------------------------------------------


def ccxt_secret(key: ApiKey) -> str:
    """The secret as ccxt takes it: the PEM for ES256; base64 of seed + public key (the CDP
    Ed25519 key format) for Ed25519."""
    if key.algorithm == "ES256":
        return key.private_pem
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    raw = serialization.Encoding.Raw
    seed = private.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = private.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(seed + public).decode()


def test_ccxt_trades_against_the_fake(keyed_fake: tuple[FakeCoinbase, ApiKey]) -> None:
    ccxt = pytest.importorskip("ccxt")
    fake, key = keyed_fake
    ex = ccxt.coinbase({"apiKey": key.name, "secret": ccxt_secret(key), "timeout": 5000})
    ex.urls["api"]["rest"] = f"https://127.0.0.1:{fake.ports[0]}"  # ccxt signs this host:port
    ex.session.trust_env = False
    ex.validateServerSsl = fake.ca_file  # requests gets verify=<the fake's CA>
    ex.has["fetchCurrencies"] = False  # the Coinbase App (v2) currency list is not faked
    failures_before = len(fake.state()["rest"]["auth_failures"])
    markets = ex.load_markets()
    assert {"BTC/USD", "ETH/USD"} <= set(markets)
    assert markets["ETH/USD"]["id"] == "ETH-USD" and markets["ETH/USD"]["active"]
    balances = fake.state()["exchange"]["balances"]
    got = ex.fetch_balance({"v3": True})
    assert got["total"]["USD"] == pytest.approx(float(balances["USD"]["total"]), rel=1e-12)
    assert got["free"]["ETH"] == pytest.approx(float(balances["ETH"]["available"]), rel=1e-12)
    bid = ex.fetch_order_book("ETH/USD", 5)["bids"][0][0]
    resting = ex.create_order("ETH/USD", "limit", "buy", 0.1, round(bid / 2, 2))
    assert ex.fetch_order(resting["id"], "ETH/USD")["status"] == "open"
    assert resting["id"] in {o["id"] for o in ex.fetch_open_orders("ETH/USD")}
    ex.cancel_order(resting["id"], "ETH/USD")
    assert ex.fetch_order(resting["id"], "ETH/USD")["status"] == "canceled"
    sold = ex.create_order("ETH/USD", "market", "sell", 0.5)
    done = ex.fetch_order(sold["id"], "ETH/USD")
    assert done["status"] == "closed" and done["filled"] == pytest.approx(0.5)
    trades = [t for t in ex.fetch_my_trades("ETH/USD") if t["order"] == sold["id"]]
    venue = [f for f in fake.state()["exchange"]["fills"] if f["order_id"] == sold["id"]]
    assert trades and len(trades) == len(venue)
    assert sum(t["amount"] for t in trades) == pytest.approx(0.5)
    fee = sum(float(D(f["commission"])) for f in venue)
    assert sum(t["fee"]["cost"] for t in trades) == pytest.approx(fee, rel=1e-9)
    assert len(fake.state()["rest"]["auth_failures"]) == failures_before  # every JWT accepted


@pytest.mark.filterwarnings("ignore:ssl.*:DeprecationWarning")  # the SDK's own SSLContext()
def test_the_official_websocket_client_reads_every_channel_the_daemon_uses(
    keyed_fake: tuple[FakeCoinbase, ApiKey],
) -> None:
    import json
    import threading

    from coinbase.websocket import WSClient

    fake, key = keyed_fake
    frames: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_message(text: str) -> None:
        with lock:
            frames.append(json.loads(text))

    def channels() -> set[str]:
        with lock:
            return {f.get("channel", f.get("type", "")) for f in frames}

    def filled(client_order_id: str) -> bool:
        with lock:
            events = [e for f in frames if f.get("channel") == "user" for e in f["events"]]
        return any(
            o["client_order_id"] == client_order_id and o["status"] == "FILLED"
            for e in events
            for o in e.get("orders", [])
        )

    wanted = {"heartbeats", "l2_data", "ticker", "market_trades", "user", "subscriptions"}
    ws = WSClient(
        api_key=key.name,
        api_secret=key.private_pem,
        base_url=fake.ws_url,  # the SDK does not verify the certificate (protocol notes §1)
        on_message=on_message,
        retry=False,
        timeout=5,
    )
    ws.open()
    try:
        ws.subscribe(["ETH-USD"], ["heartbeats", "level2", "ticker", "market_trades", "user"])
        end = time.monotonic() + 15
        while "user" not in channels() and time.monotonic() < end:  # subscribed
            ws.sleep_with_exception_check(0.05)
        sold = coid()
        sdk(fake, key).market_order_sell(sold, "ETH-USD", base_size="0.1")  # a user update
        while not (wanted <= channels() and filled(sold)) and time.monotonic() < end:
            ws.sleep_with_exception_check(0.05)
    finally:
        ws.close()
    assert wanted <= channels() and filled(sold)
    with lock:
        assert not [f for f in frames if f.get("type") == "error"]
