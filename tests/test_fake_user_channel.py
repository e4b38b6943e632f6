"""The fake Coinbase ``user`` websocket channel over WSS on 127.0.0.1 (websocket-client), with
orders placed through the SDK's RESTClient: JWT checks, snapshot, cumulative updates, resting
fills on later market steps, product filter, user_disconnect and user_replay."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal as D
from typing import Any

import pytest
import websocket
from coinbase.jwt_generator import build_rest_jwt, build_ws_jwt
from coinbase.rest import RESTClient

from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.adapters.coinbase.fake.auth import ApiKey, generate_api_key
from cryptoj.adapters.coinbase.fake.exchange import USER_ID

AUTH_FAILURE = {"type": "error", "message": "authentication failure"}


@pytest.fixture(scope="module")
def key() -> ApiKey:
    return generate_api_key("ES256")


@pytest.fixture(scope="module")
def fake(key: ApiKey) -> Iterator[FakeCoinbase]:
    f = FakeCoinbase(
        step_s=0.02,
        heartbeat_s=0.2,
        jwt_key_name=key.name,
        jwt_public_key=key.public_pem,
        balances={"USD": "1000000", "BTC": "10", "ETH": "100"},
    ).start()
    yield f
    f.stop()


@pytest.fixture
def rest(fake: FakeCoinbase, key: ApiKey) -> RESTClient:
    c = RESTClient(
        api_key=key.name,
        api_secret=key.private_pem,
        base_url=f"127.0.0.1:{fake.ports[0]}",
        timeout=5,
    )
    c.session.trust_env = False
    c.session.verify = fake.ca_file
    return c


class Conn:
    """One websocket connection that keeps every message it read."""

    def __init__(self, fake: FakeCoinbase) -> None:
        self.ws = websocket.create_connection(
            fake.ws_url, sslopt={"ca_certs": fake.ca_file}, timeout=5
        )
        self.got: list[dict[str, Any]] = []

    def send(self, msg: dict[str, Any]) -> None:
        self.ws.send(json.dumps(msg))

    def until(self, cond: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 8.0) -> bool:
        end = time.monotonic() + timeout_s
        while not cond(self.got):
            if time.monotonic() > end:
                return False
            self.ws.settimeout(max(0.05, end - time.monotonic()))
            try:
                self.got.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                return cond(self.got)
        return True

    def user_orders(self, kind: str = "update") -> list[dict[str, Any]]:
        return [
            o
            for m in self.got
            if m.get("channel") == "user"
            for e in m["events"]
            if e["type"] == kind
            for o in e["orders"]
        ]

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def conns(fake: FakeCoinbase) -> Iterator[Callable[[], Conn]]:
    made: list[Conn] = []

    def make() -> Conn:
        c = Conn(fake)
        made.append(c)
        return c

    yield make
    for c in made:
        with contextlib.suppress(OSError):
            c.close()


def subscribe(c: Conn, key: ApiKey, **extra: Any) -> None:
    c.send(
        {
            "type": "subscribe",
            "channel": "user",
            "jwt": build_ws_jwt(key.name, key.private_pem),
            **extra,
        }
    )


def has_snapshot(msgs: list[dict[str, Any]]) -> bool:
    return any(m.get("channel") == "user" and m["events"][0]["type"] == "snapshot" for m in msgs)


def updates_of(c: Conn, order_id: str) -> list[dict[str, Any]]:
    return [o for o in c.user_orders() if o["order_id"] == order_id]


def finished(c: Conn, order_id: str) -> bool:
    return any(o["status"] in ("FILLED", "CANCELLED", "EXPIRED") for o in updates_of(c, order_id))


def test_a_bad_jwt_gets_authentication_failure(fake: FakeCoinbase, key: ApiKey, conns: Any) -> None:
    other = generate_api_key("ES256", name=key.name)
    rest_jwt = build_rest_jwt(f"GET 127.0.0.1:{fake.ports[0]}/x", key.name, key.private_pem)
    for jwt_ in (None, "x.y.z", build_ws_jwt(key.name, other.private_pem), rest_jwt):
        c = conns()
        c.send({"type": "subscribe", "channel": "user", **({"jwt": jwt_} if jwt_ else {})})
        assert c.until(lambda m: bool(m))
        assert c.got[0] == AUTH_FAILURE
    assert fake.state()["counts"]["ws_auth_failures"] >= 4


def test_snapshot_then_cumulative_updates_with_consecutive_sequence_numbers(
    fake: FakeCoinbase, key: ApiKey, rest: RESTClient, conns: Any
) -> None:
    resting = [
        rest.limit_order_gtc_buy(f"snap-{i}", "BTC-USD", "0.01", "1000").success_response[
            "order_id"
        ]
        for i in range(2)
    ]
    c = conns()
    subscribe(c, key)
    assert c.until(has_snapshot)
    ack = c.got[0]
    assert ack["channel"] == "subscriptions"
    assert ack["events"][0]["subscriptions"] == {"user": [USER_ID]}
    snap = c.user_orders("snapshot")
    assert {o["order_id"] for o in snap} >= set(resting)
    assert all(o["status"] == "OPEN" and o["post_only"] == "false" for o in snap)
    r = rest.market_order_buy(client_order_id="cum-1", product_id="BTC-USD", base_size="0.5")
    order_id = r.success_response["order_id"]
    assert c.until(lambda _m: finished(c, order_id))
    ups = updates_of(c, order_id)
    assert [u["status"] for u in ups[:2]] == ["PENDING", "OPEN"] and ups[-1]["status"] == "FILLED"
    cum = [D(u["cumulative_quantity"]) for u in ups]
    assert cum == sorted(cum) and cum[-1] == D("0.5")
    assert int(ups[-1]["number_of_fills"]) == len(ups) - 3  # PENDING, OPEN, then one per fill
    assert all(u["client_order_id"] == "cum-1" and u["order_side"] == "BUY" for u in ups)
    order = rest.get_order(order_id).order
    assert (ups[-1]["filled_value"], ups[-1]["total_fees"]) == (
        order.filled_value,
        order.total_fees,
    )
    rest.cancel_orders([resting[0]])
    assert c.until(lambda _m: finished(c, resting[0]))
    assert updates_of(c, resting[0])[-1]["cancel_reason"] == "User requested cancel"
    seqs = [m["sequence_num"] for m in c.got if "sequence_num" in m]
    assert seqs == list(range(len(seqs)))


def test_a_resting_limit_fills_as_maker_when_a_later_step_crosses_it(
    fake: FakeCoinbase, key: ApiKey, rest: RESTClient, conns: Any
) -> None:
    c = conns()
    subscribe(c, key, product_ids=["BTC-USD"])
    assert c.until(has_snapshot)
    with fake.lock:  # a price the recorded asks reach in 30 to 150 steps, and not before
        now = fake.sim.cursor
        soon = [fake.sim.best_at("BTC-USD", now + k)[1] for k in range(30)]
        later = [fake.sim.best_at("BTC-USD", now + k)[1] for k in range(30, 150)]
    target = min(a for a in later if a is not None)
    if min(a for a in soon if a is not None) <= target:
        pytest.skip("the recorded asks do not fall in the next 150 steps")
    order_id = rest.limit_order_gtc_buy(
        "maker-1", "BTC-USD", "0.001", f"{target:f}"
    ).success_response["order_id"]
    assert c.until(lambda _m: any(D(o["cumulative_quantity"]) > 0 for o in updates_of(c, order_id)))
    fills = rest.get_fills(order_ids=[order_id]).fills
    assert fills and fills[0]["liquidity_indicator"] == "MAKER" and D(fills[0]["price"]) == target
    assert D(fills[0]["commission"]) == (
        D(fills[0]["price"]) * D(fills[0]["size"]) * D("0.004")
    ).quantize(D("0.00000001"), rounding="ROUND_DOWN")


def test_the_product_filter_and_unsubscribe(
    fake: FakeCoinbase, key: ApiKey, rest: RESTClient, conns: Any
) -> None:
    c = conns()
    subscribe(c, key, product_ids=["ETH-USD"])
    assert c.until(has_snapshot)
    assert all(o["product_id"] == "ETH-USD" for o in c.user_orders("snapshot"))
    btc = rest.market_order_buy(client_order_id="f-btc", product_id="BTC-USD", base_size="0.01")
    eth = rest.market_order_buy(client_order_id="f-eth", product_id="ETH-USD", base_size="0.1")
    assert c.until(lambda _m: finished(c, eth.success_response["order_id"]))
    assert not updates_of(c, btc.success_response["order_id"])
    c.send(
        {"type": "unsubscribe", "channel": "user", "jwt": build_ws_jwt(key.name, key.private_pem)}
    )
    assert c.until(lambda m: m[-1].get("channel") == "subscriptions")
    assert c.got[-1]["events"][0]["subscriptions"] == {}
    late = rest.market_order_buy(client_order_id="f-late", product_id="ETH-USD", base_size="0.1")
    assert not c.until(lambda _m: bool(updates_of(c, late.success_response["order_id"])), 0.5)


def test_user_disconnect_then_replay_after_the_reconnect(
    fake: FakeCoinbase, key: ApiKey, rest: RESTClient, conns: Any
) -> None:
    first = conns()
    subscribe(first, key)
    assert first.until(has_snapshot)
    done = rest.market_order_buy(client_order_id="rp-done", product_id="BTC-USD", base_size="0.2")
    done_id = done.success_response["order_id"]
    open_id = rest.limit_order_gtc_buy("rp-open", "BTC-USD", "0.01", "1000").success_response[
        "order_id"
    ]
    assert first.until(lambda _m: finished(first, done_id) and len(updates_of(first, open_id)) >= 2)
    live = updates_of(first, done_id) + updates_of(first, open_id)
    before = dict(fake.state()["counts"])
    fake.inject("user_replay", orders=5)
    assert fake.inject("user_disconnect")["count"] >= 1
    with pytest.raises((websocket.WebSocketException, ConnectionError, OSError)):
        first.ws.settimeout(5)
        while True:
            first.ws.recv()
    second = conns()
    subscribe(second, key)
    assert second.until(
        lambda _m: len(updates_of(second, done_id)) >= len(updates_of(first, done_id))
    )
    assert second.until(lambda _m: len(updates_of(second, open_id)) >= 2)
    replayed = updates_of(second, done_id) + updates_of(second, open_id)
    assert replayed == live  # the same cumulative values, in the same order
    assert open_id in {o["order_id"] for o in second.user_orders("snapshot")}
    after = fake.state()["counts"]
    assert after["user_replay_injected"] == before.get("user_replay_injected", 0) + 1
    assert after["user_disconnect_injected"] >= before.get("user_disconnect_injected", 0) + 1
    third = conns()  # armed once: the next reconnect gets the snapshot only
    subscribe(third, key)
    assert third.until(has_snapshot)
    assert not third.until(lambda _m: bool(third.user_orders()), 0.5)


def test_heartbeats_share_the_connection_and_its_sequence(
    fake: FakeCoinbase, key: ApiKey, conns: Any
) -> None:
    c = conns()
    jwt_ = build_ws_jwt(key.name, key.private_pem)
    c.send({"type": "subscribe", "channel": "heartbeats", "jwt": jwt_})
    subscribe(c, key)
    assert c.until(
        lambda m: has_snapshot(m) and sum(x.get("channel") == "heartbeats" for x in m) >= 2
    )
    seqs = [m["sequence_num"] for m in c.got]
    assert seqs == list(range(len(seqs)))
    assert c.got[-1]["channel"] in ("heartbeats", "user")
