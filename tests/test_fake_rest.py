"""The fake Coinbase trading REST API over real HTTPS on 127.0.0.1: JWT checks (ES256 and
Ed25519), the SDK's RESTClient, bad input, pagination, and every REST fault switch."""

from __future__ import annotations

import http.client
import json
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import jwt
import pytest
from coinbase.rest import RESTClient
from cryptography.hazmat.primitives import serialization

from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.adapters.coinbase.fake.auth import ApiKey, generate_api_key, write_key_file
from cryptoj.adapters.coinbase.fake.rest_faults import RestFaults

API = "/api/v3/brokerage"


def token(key: ApiKey, uri: str | None, signer: ApiKey | None = None, **over: Any) -> str:
    """A CDP JWT for ``key``; ``over`` replaces claims (``kid`` replaces the header's)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": key.name, "iss": "cdp", "nbf": now, "exp": now + 120}
    if uri is not None:
        claims["uri"] = uri
    kid = over.pop("kid", key.name)
    claims.update(over)
    signer = signer or key
    private = serialization.load_pem_private_key(signer.private_pem.encode(), password=None)
    return jwt.encode(
        claims,
        private,  # type: ignore[arg-type]
        algorithm=signer.algorithm,
        headers={"kid": kid, "nonce": secrets.token_hex()},
    )


class Https:
    """A plain ``http.client`` caller that trusts the fake's certificate and signs each call."""

    def __init__(self, fake: FakeCoinbase, key: ApiKey) -> None:
        self.fake, self.key = fake, key
        self.ctx = ssl.create_default_context(cafile=fake.ca_file)
        self.host = f"127.0.0.1:{fake.ports[0]}"

    def uri(self, method: str, path: str) -> str:
        return f"{method} {self.host}{API}{path}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: str = "",
        auth: str | None = "",
        timeout: float = 5.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """``auth`` "" signs the call properly, None sends no header, else is the header."""
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.fake.ports[0], context=self.ctx, timeout=timeout
        )
        headers = {"Content-Type": "application/json"}
        if auth == "":
            auth = f"Bearer {token(self.key, self.uri(method, path))}"
        if auth is not None:
            headers["Authorization"] = auth
        data = json.dumps(body if body is not None else {}).encode()
        try:
            conn.request(method, f"{API}{path}{'?' + query if query else ''}", data, headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def ok(self, method: str, path: str, body: Any = None, query: str = "") -> Any:
        status, _, data = self.call(method, path, body, query)
        assert status == 200, data
        return json.loads(data)


def create_body(coid: str, config: dict[str, Any], side: str = "BUY") -> dict[str, Any]:
    return {
        "client_order_id": coid,
        "product_id": "BTC-USD",
        "side": side,
        "order_configuration": config,
    }


RESTING = {"limit_limit_gtc": {"base_size": "0.01", "limit_price": "1000", "post_only": False}}
MARKET = {"market_market_ioc": {"quote_size": "20"}}


def new_coid() -> str:
    return f"t-{secrets.token_hex(6)}"


def orders_of(fake: FakeCoinbase, coid: str) -> int:
    return int(fake.state()["exchange"]["orders_per_client_order_id"].get(coid, 0))


def counts(fake: FakeCoinbase) -> dict[str, int]:
    return dict(fake.state()["counts"])


@pytest.fixture(scope="module")
def fakes() -> Iterator[Callable[[str], tuple[FakeCoinbase, ApiKey]]]:
    made: dict[str, tuple[FakeCoinbase, ApiKey]] = {}

    def get(kind: str) -> tuple[FakeCoinbase, ApiKey]:
        if kind not in made:
            key = generate_api_key(kind)
            fake = FakeCoinbase(
                step_s=0.05,
                heartbeat_s=0.2,
                control_port=0,
                jwt_key_name=key.name,
                jwt_public_key=key.public_pem,
                balances={"USD": "1000000", "BTC": "10"},
            ).start()
            made[kind] = (fake, key)
        return made[kind]

    yield get
    for fake, _ in made.values():
        fake.stop()


@pytest.fixture
def api(fakes: Callable[[str], tuple[FakeCoinbase, ApiKey]]) -> Https:
    fake, key = fakes("Ed25519")
    return Https(fake, key)


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ES256", "Ed25519"])
def test_jwt_is_verified_for_real(
    fakes: Callable[[str], tuple[FakeCoinbase, ApiKey]], kind: str
) -> None:
    fake, key = fakes(kind)
    h = Https(fake, key)
    uri = h.uri("GET", "/accounts")
    now = int(time.time())
    other = generate_api_key(kind, name=key.name)  # same name, different key pair
    assert h.call("GET", "/accounts")[0] == 200
    before = counts(fake).get("rest_unauthorized", 0)
    bad = {
        "missing header": None,
        "not bearer": f"Basic {token(key, uri)}",
        "garbage": "Bearer not.a.jwt",
        "wrong key": f"Bearer {token(key, uri, signer=other)}",
        "wrong kid": f"Bearer {token(key, uri, kid='organizations/x/apiKeys/y')}",
        "wrong sub": f"Bearer {token(key, uri, sub='organizations/x/apiKeys/y')}",
        "wrong iss": f"Bearer {token(key, uri, iss='someone-else')}",
        "expired": f"Bearer {token(key, uri, nbf=now - 200, exp=now - 80)}",
        "nbf in the future": f"Bearer {token(key, uri, nbf=now + 60, exp=now + 180)}",
        "wrong path": f"Bearer {token(key, h.uri('GET', '/products'))}",
        "wrong method": f"Bearer {token(key, h.uri('POST', '/accounts'))}",
        "query in uri": f"Bearer {token(key, uri + '?limit=1')}",
        "scheme in uri": f"Bearer {token(key, 'GET https://' + uri[4:])}",
        "no uri": f"Bearer {token(key, None)}",
    }
    for why, header in bad.items():
        status, headers, body = h.call("GET", "/accounts", auth=header)
        assert (status, body) == (401, b"Unauthorized"), why
        assert headers["content-type"] == "text/plain", why
    assert counts(fake)["rest_unauthorized"] == before + len(bad)
    assert len(fake.state()["rest"]["auth_failures"]) >= len(bad)
    status, _, body = h.call("GET", "/market/products/BTC-USD", auth=None)  # public: no JWT
    assert status == 200 and json.loads(body)["product_id"] == "BTC-USD"


def test_the_sdk_client_trades_against_the_fake(api: Https, tmp_path: Any) -> None:
    fake, key = api.fake, api.key
    key_file = write_key_file(key, tmp_path / "key.json")
    assert key_file.stat().st_mode & 0o777 == 0o600
    c = RESTClient(key_file=str(key_file), base_url=f"127.0.0.1:{fake.ports[0]}", timeout=5)
    c.session.trust_env = False
    c.session.verify = fake.ca_file
    usd_before = D(fake.state()["exchange"]["balances"]["USD"]["total"])
    page = c.get_accounts(limit=2)
    assert len(page.accounts) == 2 and page.has_next and page.size == 2
    rest = c.get_accounts(limit=2, cursor=page.cursor)
    currencies = [a.currency for a in page.accounts + rest.accounts]
    assert currencies == ["BTC", "ETH", "LTC", "USD"] and not rest.has_next
    coid = new_coid()
    r = c.market_order_buy(client_order_id=coid, product_id="BTC-USD", quote_size="100")
    assert r.success and r.success_response["client_order_id"] == coid
    order_id = r.success_response["order_id"]
    o = c.get_order(order_id).order
    assert o.status == "FILLED" and D(o.total_value_after_fees) == D("100")
    fills = c.get_fills(order_ids=[order_id]).fills
    assert all(f["size_in_quote"] for f in fills)  # a quote-sized order: sizes in quote
    assert (
        sum(D(f["size"]) for f in fills) == D(o.filled_value)
        and fills[0]["liquidity_indicator"] == "TAKER"
    )
    again = c.market_order_buy(client_order_id=coid, product_id="BTC-USD", quote_size="100")
    assert again.success_response["order_id"] == order_id  # idempotent
    usd_after = D(fake.state()["exchange"]["balances"]["USD"]["total"])
    assert usd_before - usd_after == D(o.total_value_after_fees)
    resting = c.limit_order_gtc_buy(new_coid(), "BTC-USD", "0.01", "1000").success_response
    listed = c.list_orders(order_ids=[resting["order_id"], order_id]).orders
    assert {x.order_id: x.status for x in listed} == {
        resting["order_id"]: "OPEN",
        order_id: "FILLED",
    }
    results = c.cancel_orders([resting["order_id"], order_id]).results
    assert [(x.success, x.failure_reason) for x in results] == [
        (True, "UNKNOWN_CANCEL_FAILURE_REASON"),
        (False, "ORDER_IS_FULLY_FILLED"),
    ]
    product = c.get_product("ETH-USD")
    assert (product.base_increment, product.quote_min_size, product.price_increment) == (
        "0.00000001",
        "1",
        "0.01",
    )
    assert c.get_public_product("LTC-USD").product_id == "LTC-USD"
    fees = c.get_transaction_summary()
    assert fees.fee_tier["taker_fee_rate"] == "0.006"


def test_bad_requests_get_clear_4xx_answers_never_500(api: Https) -> None:
    status, _, body = api.call("POST", "/orders", body="not json")  # a JSON string, not an object
    assert status == 200 and json.loads(body)["error_response"]["error"] == "INVALID_ARGUMENT"
    conn = http.client.HTTPSConnection("127.0.0.1", api.fake.ports[0], context=api.ctx, timeout=5)
    auth = f"Bearer {token(api.key, api.uri('POST', '/orders'))}"
    conn.request("POST", f"{API}/orders", b"{nope", {"Authorization": auth})
    r = conn.getresponse()
    assert r.status == 400 and json.loads(r.read())["error"] == "INVALID_ARGUMENT"
    conn.close()
    assert api.call("POST", "/orders/batch_cancel", {"order_ids": "x"})[0] == 400
    status, _, body = api.call("GET", "/orders/historical/no-such-order")
    assert (
        status == 404
        and json.loads(body)["error_details"] == "order with this orderID was not found"
    )
    assert api.call("GET", "/orders/historical/batch", query="order_status=DONE")[0] == 400
    assert api.call("GET", "/orders/historical/fills", query="limit=-1")[0] == 400
    assert api.call("GET", "/products/DOGE-USD")[0] == 404
    r2 = api.ok("POST", "/orders", create_body(new_coid(), {"limit_limit_gtc": {"base_size": "1"}}))
    assert r2["success"] is False and r2["error_response"]["new_order_failure_reason"]


def test_orders_and_fills_paginate_over_https(api: Https) -> None:
    ids = [
        api.ok("POST", "/orders", create_body(new_coid(), RESTING))["order_id"] for _ in range(5)
    ]
    q = "&".join(f"order_ids={i}" for i in ids)
    seen, cursor, pages = [], "", 0
    while True:
        page = api.ok("GET", "/orders/historical/batch", query=f"{q}&limit=2&cursor={cursor}")
        seen += [o["order_id"] for o in page["orders"]]
        pages += 1
        assert page["has_next"] == bool(page["cursor"])
        cursor = page["cursor"]
        if not page["has_next"]:
            break
    assert seen == ids[::-1] and pages == 3
    buys = [
        api.ok("POST", "/orders", create_body(new_coid(), MARKET))["order_id"] for _ in range(3)
    ]
    q = "&".join(f"order_ids={i}" for i in buys)
    fills, cursor = [], ""
    for _ in range(10):
        page = api.ok("GET", "/orders/historical/fills", query=f"{q}&limit=1&cursor={cursor}")
        assert "has_next" not in page
        fills += page["fills"]
        cursor = page["cursor"]
        if cursor == "":
            break
    assert sorted({f["order_id"] for f in fills}) == sorted(buys)
    assert len({f["trade_id"] for f in fills}) == len(fills)
    assert api.ok("POST", "/orders/batch_cancel", {"order_ids": ids})["results"][0]["success"]


# -- fault switches ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["html", "json"])
def test_rest_429_is_not_processed_and_carries_rate_limit_headers(api: Https, body: str) -> None:
    fake = api.fake
    before = counts(fake).get("rest_429_injected", 0)
    fake.inject("rest_429", body=body, retry_after=2)
    coid = new_coid()
    status, headers, data = api.call("POST", "/orders", create_body(coid, RESTING))
    assert status == 429 and headers["retry-after"] == "2"
    assert headers["x-ratelimit-limit"] == "30" and headers["x-ratelimit-remaining"] == "0"
    assert int(headers["x-ratelimit-reset"]) >= int(time.time())
    if body == "json":
        assert json.loads(data)["errors"][0]["id"] == "rate_limit_exceeded"
    else:
        assert headers["content-type"] == "text/html" and b"<html" in data.lower()
    assert orders_of(fake, coid) == 0 and counts(fake)["rest_429_injected"] == before + 1
    assert api.ok("POST", "/orders", create_body(coid, RESTING))["success"] is True


def test_rest_5xx_before_or_after_the_commit(api: Https) -> None:
    fake = api.fake
    fake.inject("rest_5xx", status=503)
    coid = new_coid()
    status, headers, _ = api.call("POST", "/orders", create_body(coid, RESTING))
    assert headers["content-type"] == "text/html"
    assert status == 503 and orders_of(fake, coid) == 0
    fake.inject("rest_5xx", status=500, commit=True)
    coid = new_coid()
    status, _, data = api.call("POST", "/orders", create_body(coid, RESTING))
    assert status == 500 and json.loads(data)["error"] == "INTERNAL"
    assert orders_of(fake, coid) == 1  # the order exists although the client saw an error
    assert counts(fake)["rest_5xx_injected"] >= 2


def test_rest_delay_outlasts_the_client_timeout_but_the_order_is_committed(api: Https) -> None:
    fake = api.fake
    fake.inject("rest_delay", seconds=1.0)
    coid = new_coid()
    with pytest.raises((TimeoutError, socket.timeout)):
        api.call("POST", "/orders", create_body(coid, RESTING), timeout=0.3)
    assert orders_of(fake, coid) == 1
    fake.inject("rest_delay", seconds=0.8, commit="after")
    late = new_coid()
    sent = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout)):
        api.call("POST", "/orders", create_body(late, RESTING), timeout=0.2)
    if time.monotonic() - sent < 0.6:  # still inside the delay: nothing committed yet
        assert orders_of(fake, late) == 0
    deadline = time.monotonic() + 5
    while orders_of(fake, late) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert orders_of(fake, late) == 1 and counts(fake)["rest_delay_injected"] >= 2


def test_order_reject_answers_success_false_and_creates_nothing(api: Https) -> None:
    fake = api.fake
    fake.inject("order_reject", count=2)
    fake.inject("order_reject", reason="INVALID_LIMIT_PRICE_POST_ONLY", message="would cross")
    coid = new_coid()
    for expected in ("INSUFFICIENT_FUND", "INSUFFICIENT_FUND", "INVALID_LIMIT_PRICE_POST_ONLY"):
        r = api.ok("POST", "/orders", create_body(coid, RESTING))
        assert r["success"] is False and r["error_response"]["new_order_failure_reason"] == expected
    assert api.call("GET", "/accounts")[0] == 200  # reads are not create calls: untouched
    assert orders_of(fake, coid) == 0
    assert api.ok("POST", "/orders", create_body(coid, RESTING))["success"] is True


def test_null_config_breaks_the_sdk_parser_after_the_order_exists(api: Https) -> None:
    fake, key = api.fake, api.key
    c = RESTClient(
        api_key=key.name,
        api_secret=key.private_pem,
        base_url=f"127.0.0.1:{fake.ports[0]}",
        timeout=5,
    )
    c.session.trust_env = False
    c.session.verify = fake.ca_file
    fake.inject("null_config")
    coid = new_coid()
    with pytest.raises(TypeError):
        c.limit_order_gtc_buy(coid, "BTC-USD", "0.01", "1000")
    assert orders_of(fake, coid) == 1
    fake.inject("null_config")
    raw = api.ok("POST", "/orders", create_body(coid, RESTING))
    assert raw["success"] is True and raw["order_configuration"] is None


def test_drop_after_commit_resets_the_connection_and_a_retry_finds_the_order(api: Https) -> None:
    fake = api.fake
    fake.inject("drop_after_commit")
    coid = new_coid()
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, ssl.SSLError)):
        api.call("POST", "/orders", create_body(coid, RESTING))
    assert orders_of(fake, coid) == 1
    again = api.ok("POST", "/orders", create_body(coid, RESTING))
    assert again["success"] is True and orders_of(fake, coid) == 1
    fake.inject("drop_after_commit", endpoint="cancel")
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, ssl.SSLError)):
        api.call("POST", "/orders/batch_cancel", {"order_ids": [again["order_id"]]})
    order = api.ok("GET", f"/orders/historical/{again['order_id']}")["order"]
    assert order["status"] == "CANCELLED"
    assert counts(fake)["drop_after_commit_injected"] >= 2


def test_a_fault_aimed_at_one_endpoint_leaves_the_others_alone(api: Https) -> None:
    fake = api.fake
    fake.inject("rest_5xx", endpoint="cancel", status=502)
    assert api.call("GET", "/accounts")[0] == 200
    assert api.call("POST", "/orders", create_body(new_coid(), RESTING))[0] == 200
    assert api.call("POST", "/orders/batch_cancel", {"order_ids": ["x"]})[0] == 502
    assert fake.state()["rest"]["armed"] == []
    with pytest.raises(ValueError, match="create only"):
        fake.inject("null_config", endpoint="get")
    with pytest.raises(ValueError, match="endpoint"):
        fake.inject("rest_429", endpoint="everything")


def test_random_faults_follow_their_seed_and_are_counted(api: Https) -> None:
    fake = api.fake
    kinds = ["rest_429", "rest_5xx", "order_reject", "null_config", "drop_after_commit"]
    before = counts(fake).get("random_faults_injected", 0)
    fake.inject("order_fault_rate", rate=0.5, seed=11, kinds=kinds)
    twin = RestFaults()
    twin.set_random(0.5, 11, kinds)
    seen = []
    try:
        for i in range(16):
            endpoint = ("create", "list")[i % 2]
            expected, _ = twin.take(endpoint)
            try:
                if endpoint == "create":
                    status, _, data = api.call("POST", "/orders", create_body(new_coid(), RESTING))
                else:
                    status, _, data = api.call("GET", "/orders/historical/batch", query="limit=1")
            except (ConnectionError, http.client.RemoteDisconnected, ssl.SSLError):
                status, data = -1, b""
            got = {429: "rest_429", 500: "rest_5xx", 503: "rest_5xx", -1: "drop_after_commit"}.get(
                status
            )
            if status == 200:
                body = json.loads(data)
                got = (
                    "order_reject"
                    if body.get("success") is False
                    else "null_config"
                    if "success" in body and body["order_configuration"] is None
                    else None
                )
            seen.append(got)
            assert got == (expected.kind if expected else None), (i, endpoint)
    finally:
        fake.inject("order_fault_rate", rate=0.0)
    drawn = sum(1 for s in seen if s)
    assert drawn >= 3 and counts(fake)["random_faults_injected"] == before + drawn
    assert api.call("POST", "/orders", create_body(new_coid(), RESTING))[0] == 200


def test_control_endpoint_injects_and_summarises(api: Https) -> None:
    fake = api.fake

    def post(body: dict[str, Any]) -> tuple[int, Any]:
        req = urllib.request.Request(
            f"{fake.control_url}/inject", json.dumps(body).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    assert post({"kind": "rest_429", "body": "json"}) == (
        200,
        {"ok": True, "kind": "rest_429", "count": 1},
    )
    assert api.call("GET", "/accounts")[0] == 429
    status, err = post({"kind": "rest_5xx", "status": 418})
    assert status == 400 and "418" in err["error"]
    assert post({"kind": "no_such_fault"})[0] == 400
    with urllib.request.urlopen(f"{fake.control_url}/orders-summary", timeout=5) as r:
        summary = json.loads(r.read())
    assert summary["duplicate_client_order_ids"] == [] and summary["invariant_violations"] == []
    assert len(summary["orders"]) == sum(summary["orders_per_client_order_id"].values())
    assert all(
        set(f) >= {"trade_id", "order_id", "commission", "liquidity_indicator"}
        for f in summary["fills"]
    )
    usd = summary["balances"]["USD"]
    assert D(usd["available"]) + D(usd["hold"]) == D(usd["total"])
    assert fake.state()["counts"]["rest_429_faults"] >= 1


def test_the_command_line_writes_a_key_file_the_sdk_can_use(tmp_path: Any) -> None:
    key_file = tmp_path / "key.json"
    tool = Path(__file__).resolve().parents[1] / "tools" / "fake_coinbase.py"
    cmd = [sys.executable, str(tool), "--port", "0", "--control-port", "0", "--seconds", "30",
           "--generate-key", "ES256", "--key-out", str(key_file), "--balance", "USD=500",
           "--cert-dir", str(tmp_path / "cert")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["key_file"] == str(key_file) and key_file.stat().st_mode & 0o777 == 0o600
        c = RESTClient(key_file=str(key_file), base_url=info["rest_url"][8:], timeout=5)
        c.session.trust_env = False
        c.session.verify = info["ca_file"]
        usd = next(a for a in c.get_accounts().accounts if a.currency == "USD")
        assert usd.available_balance["value"] == "500"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and json.loads(out.strip().splitlines()[-1])["rest_accounts"] == 1
