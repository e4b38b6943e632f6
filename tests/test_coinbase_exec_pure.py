"""The pure parts of the Coinbase execution client: error classification and retry decisions,
rate limiting, quantisation, keys (ES256 and Ed25519), lenient parsing, the user-channel session."""

from __future__ import annotations

import base64
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from hypothesis import strategies as st
from urllib3.exceptions import NewConnectionError, ProtocolError

from cryptoj.adapters.coinbase.execution.errors import (
    AuthenticationFailed,
    FaultKind,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    Retry,
    RetryPolicy,
    ServerError,
    TransportError,
    classify,
    decide,
    redact,
    retry_after_s,
)
from cryptoj.adapters.coinbase.execution.keys import (
    check_key_file,
    key_algorithm,
    load_trading_credentials,
)
from cryptoj.adapters.coinbase.execution.quantize import (
    OrderSpec,
    ProductRules,
    QuantizeError,
    order_body,
    plain,
    quantize,
    rules_from_product,
)
from cryptoj.adapters.coinbase.execution.ratelimit import TokenBucket
from cryptoj.adapters.coinbase.execution.schemas import (
    CreateResponse,
    OrderEnvelope,
    convert,
    dec,
)
from cryptoj.adapters.coinbase.execution.user_channel import UserSession
from cryptoj.adapters.coinbase.execution.venue import rest_update
from cryptoj.adapters.coinbase.jwt_auth import CredentialsError
from cryptoj.config import CoinbaseConfig
from cryptoj.models.orders import Side, ceil_to, floor_to

DATA = Path(__file__).parent / "data" / "coinbase"

# -- error classification --------------------------------------------------------------------


def http_error(status: int, body: str = "", headers: dict[str, str] | None = None) -> Exception:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body.encode()
    resp.headers.update(headers or {})
    resp.reason = "Reason"
    return requests.HTTPError(f"{status} Error: Reason {body}", response=resp)


def aborted() -> Exception:
    return requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )


def refused() -> Exception:
    inner = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(inner)


@pytest.mark.parametrize(
    ("exc", "kind", "maybe_processed"),
    [
        (http_error(401, "Unauthorized"), FaultKind.AUTH, False),
        (
            http_error(403, '{"error_details":"Missing required scopes"}'),
            FaultKind.FORBIDDEN,
            False,
        ),
        (http_error(429, "<html><h1>Coinbase</h1></html>"), FaultKind.RATE_LIMITED, False),
        (http_error(503, "<html>503</html>"), FaultKind.SERVER, True),
        (http_error(500, '{"error":"INTERNAL"}'), FaultKind.SERVER, True),
        (http_error(404, '{"error":"unknown"}'), FaultKind.NOT_FOUND, False),
        (
            http_error(400, '{"error_details":"order with this orderID was not found"}'),
            FaultKind.NOT_FOUND,
            False,
        ),
        (http_error(400, '{"error":"INVALID_ARGUMENT"}'), FaultKind.BAD_REQUEST, False),
        (requests.exceptions.ConnectTimeout("connect timed out"), FaultKind.NOT_SENT, False),
        (requests.exceptions.SSLError("certificate verify failed"), FaultKind.NOT_SENT, False),
        (refused(), FaultKind.NOT_SENT, False),
        (requests.exceptions.ReadTimeout("read timed out"), FaultKind.NO_RESPONSE, True),
        (aborted(), FaultKind.NO_RESPONSE, True),
        (requests.exceptions.ChunkedEncodingError("broken"), FaultKind.NO_RESPONSE, True),
        (
            requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0),
            FaultKind.BAD_BODY,
            True,
        ),
        (
            TypeError("OrderConfiguration() argument after ** must be a mapping"),
            FaultKind.BAD_BODY,
            True,
        ),
        (Exception("Could not deserialize key data"), FaultKind.CREDENTIALS, False),
    ],
)
def test_every_fault_kind_is_classified(
    exc: Exception, kind: FaultKind, maybe_processed: bool
) -> None:
    fault = classify(exc)
    assert fault.kind is kind, fault
    assert fault.maybe_processed is maybe_processed


def test_429_wait_comes_from_retry_after_or_the_reset_header() -> None:
    assert classify(http_error(429, "x", {"Retry-After": "3"})).retry_after_s == 3.0
    now = 1_700_000_000.0
    f = classify(http_error(429, "x", {"x-ratelimit-reset": str(int(now) + 7)}), now_s=now)
    assert f.retry_after_s == 7.0
    assert retry_after_s({"X-RateLimit-Reset": "2"}, now) == 2.0  # small: seconds to wait
    assert retry_after_s({"x-ratelimit-reset": str(int(now * 1000) + 1500)}, now) == 1.5
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now) == 0.0
    assert retry_after_s({}, now) is None


POLICY = RetryPolicy(max_attempts=3, auth_attempts=2, backoff_min_s=0.5, backoff_max_s=4.0)


def test_401_is_retried_once_with_a_fresh_jwt_then_authentication_fails() -> None:
    fault = classify(http_error(401, "Unauthorized"))
    first = decide(fault, 1, POLICY)
    assert isinstance(first, Retry) and first.wait_s == 0.0
    second = decide(fault, 2, POLICY)
    assert isinstance(second, AuthenticationFailed)
    assert isinstance(decide(classify(http_error(403, "scopes")), 1, POLICY), AuthenticationFailed)
    assert isinstance(decide(classify(Exception("bad key")), 1, POLICY), AuthenticationFailed)


def test_429_waits_as_told_and_gives_up_after_the_bound() -> None:
    fault = classify(http_error(429, "<html>", {"Retry-After": "2"}))
    d = decide(fault, 1, POLICY)
    assert isinstance(d, Retry) and d.wait_s == 2.0
    capped = classify(http_error(429, "<html>", {"Retry-After": "600"}))
    d = decide(capped, 1, POLICY)
    assert isinstance(d, Retry) and d.wait_s == POLICY.max_wait_s
    assert isinstance(decide(fault, 3, POLICY), RateLimited)
    # a 429 never makes a create's outcome unknown: it was not processed
    assert isinstance(decide(fault, 1, POLICY, create=True), Retry)


def test_5xx_and_transport_errors_back_off_exponentially_and_are_bounded() -> None:
    for exc, final in (
        (http_error(503, "<html>"), ServerError),
        (requests.exceptions.ReadTimeout("t"), TransportError),
        (refused(), TransportError),
    ):
        fault = classify(exc)
        waits = [decide(fault, n, POLICY, unit_random=0.5) for n in (1, 2)]
        assert [w.wait_s for w in waits if isinstance(w, Retry)] == [0.5, 1.0]
        assert isinstance(decide(fault, 3, POLICY), final)


def test_after_a_create_anything_that_may_have_been_processed_is_outcome_unknown() -> None:
    for exc in (
        http_error(503, "<html>"),
        http_error(500, "{}"),
        requests.exceptions.ReadTimeout("t"),
        aborted(),
        ValueError("not JSON"),
    ):
        assert isinstance(decide(classify(exc), 1, POLICY, create=True), OutcomeUnknown)
    # never sent: retried like any call
    assert isinstance(decide(classify(refused()), 1, POLICY, create=True), Retry)
    assert isinstance(
        decide(classify(http_error(400, "bad")), 1, POLICY, create=True), RequestRejected
    )


SECRET = (
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oCM2wdgwJh4roAoGCCqGSM49\n"
    "AwEHoUQDQgAE1234567890abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO\n"
    "-----END EC PRIVATE KEY-----\n"
)


def test_redaction_removes_keys_tokens_and_pem_blocks() -> None:
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvcmdhbml6YXRpb25zIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
    text = f"failed with {SECRET} and Authorization: Bearer {jwt} and line MHcCAQEEIBkg4LVWM9nu"
    out = redact(text, [SECRET])
    for piece in (*SECRET.splitlines()[1:3], jwt, "MHcCAQEEIBkg4LVWM9nu"):
        assert piece not in out
    fault = classify(http_error(500, f"echo {SECRET}"), secrets=[SECRET])
    assert "MHcCAQEE" not in fault.message


def test_error_bodies_are_cut_and_html_is_reduced_to_text() -> None:
    html = "<!DOCTYPE html><html><body><h1>Coinbase</h1>" + "x" * 1000 + "</body></html>"
    fault = classify(http_error(429, html))
    assert fault.message.startswith("HTTP 429: Coinbase x")
    assert len(fault.message) < 260 and "<" not in fault.message


# -- rate limiter ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t


def test_token_bucket_allows_the_burst_then_paces_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, 3, clock)
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    waits = [bucket.reserve() for _ in range(3)]
    assert waits == pytest.approx([100_000_000, 200_000_000, 300_000_000], abs=2)
    clock.t += 2_000_000_000  # two seconds refill up to the burst again
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.throttled == 3


def test_token_bucket_pauses_when_the_headers_say_nothing_is_left() -> None:
    clock = Clock()
    bucket = TokenBucket(100.0, 10, clock)
    now = 1_700_000_000.0
    assert not bucket.observe_headers({"x-ratelimit-remaining": "5"}, now)
    assert bucket.observe_headers(
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000003"}, now
    )
    assert bucket.reserve() == 3_000_000_000
    clock.t += 3_000_000_000
    assert bucket.reserve() == 0


@given(st.lists(st.integers(min_value=0, max_value=500_000_000), min_size=1, max_size=60))
def test_token_bucket_never_exceeds_rate_plus_burst(gaps: list[int]) -> None:
    """Whatever the arrival times, sends (arrival + wait) never exceed burst + rate × span."""
    clock = Clock()
    bucket = TokenBucket(20.0, 5, clock)
    sends = []
    for gap in gaps:
        clock.t += gap
        sends.append(clock.t + bucket.reserve())
    span_s = (max(sends) - min(sends)) / 1e9
    assert len(sends) <= 5 + 20.0 * span_s + 1


# -- quantisation ----------------------------------------------------------------------------

BTC = ProductRules(
    product_id="BTC-USD",
    base_increment=Decimal("0.00000001"),
    quote_increment=Decimal("0.01"),
    price_increment=Decimal("0.01"),
    base_min_size=Decimal("0.0001"),
    base_max_size=Decimal("3400"),
    quote_min_size=Decimal("1"),
    quote_max_size=Decimal("150000000"),
)


def spec(**kw: object) -> OrderSpec:
    base: dict[str, object] = {
        "client_order_id": "cj-1",
        "product": "BTC-USD",
        "side": Side.BUY,
        "kind": "limit",
        "base_size": Decimal("0.123456789"),
        "limit_price": Decimal("20000.019"),
    }
    base.update(kw)
    return OrderSpec(**base)  # type: ignore[arg-type]


def test_sizes_round_down_and_limit_prices_round_to_the_passive_side() -> None:
    buy = quantize(spec(), BTC)
    assert (buy.base_size, buy.limit_price) == (Decimal("0.12345678"), Decimal("20000.01"))
    sell = quantize(spec(side=Side.SELL), BTC)
    assert sell.limit_price == Decimal("20000.02")
    stop = quantize(spec(kind="stop_limit", side=Side.SELL, stop_price=Decimal("19999.991")), BTC)
    assert stop.stop_direction == "STOP_DIRECTION_STOP_DOWN"
    assert stop.stop_price == Decimal("20000.00")  # rounded up: triggers no later
    quote = quantize(
        spec(kind="market", base_size=None, limit_price=None, quote_size=Decimal("10.129")), BTC
    )
    assert quote.quote_size == Decimal("10.12")


def test_the_order_body_has_one_configuration_in_plain_decimals() -> None:
    body = order_body(quantize(spec(post_only=True), BTC))
    assert body == {
        "client_order_id": "cj-1",
        "product_id": "BTC-USD",
        "side": "BUY",
        "order_configuration": {
            "limit_limit_gtc": {
                "base_size": "0.12345678",
                "limit_price": "20000.01",
                "post_only": True,
            }
        },
    }
    market = order_body(
        quantize(spec(kind="market", limit_price=None, base_size=Decimal("1E+1")), BTC)
    )
    assert market["order_configuration"] == {"market_market_ioc": {"base_size": "10"}}
    stop = order_body(quantize(spec(kind="stop_limit", stop_price=Decimal("20100")), BTC))
    assert stop["order_configuration"]["stop_limit_stop_limit_gtc"] == {
        "base_size": "0.12345678",
        "limit_price": "20000.01",
        "stop_price": "20100",
        "stop_direction": "STOP_DIRECTION_STOP_UP",
    }


@pytest.mark.parametrize(
    ("change", "rules_change", "message"),
    [
        ({"base_size": Decimal("0.00009")}, {}, "below the minimum 0.0001"),
        ({"base_size": Decimal("5000")}, {}, "above the maximum 3400"),
        ({"base_size": Decimal("0.0001"), "limit_price": Decimal("100")}, {}, "notional 0.01"),
        ({"limit_price": Decimal("0.001")}, {}, "rounds to 0"),
        ({"kind": "market", "limit_price": None}, {"limit_only": True}, "limit-only"),
        ({}, {"post_only": True}, "post-only"),
        ({}, {"cancel_only": True}, "cancel-only"),
        ({}, {"trading_disabled": True}, "trading is disabled"),
        ({}, {"status": "delisted"}, "not online"),
        ({"kind": "market", "limit_price": None, "quote_size": Decimal(5)}, {}, "exactly one"),
        (
            {
                "kind": "market",
                "limit_price": None,
                "base_size": None,
                "quote_size": Decimal(5),
                "side": Side.SELL,
            },
            {},
            "must be a BUY",
        ),
        ({"kind": "market", "limit_price": None, "post_only": True}, {}, "post_only applies"),
        ({"client_order_id": ""}, {}, "client_order_id is empty"),
        ({"product": "ETH-USD"}, {}, "rules of BTC-USD"),
        ({"base_size": Decimal("-1")}, {}, "must be a positive number"),
    ],
)
def test_orders_that_cannot_be_sent_are_refused_with_the_reason(
    change: dict[str, object], rules_change: dict[str, object], message: str
) -> None:
    rules = ProductRules(**{**{f: getattr(BTC, f) for f in BTC.__struct_fields__}, **rules_change})  # type: ignore[arg-type]
    with pytest.raises(QuantizeError, match=message):
        quantize(spec(**change), rules)


def test_a_market_order_is_checked_against_the_quote_minimum_with_a_reference_price() -> None:
    small = spec(kind="market", limit_price=None, base_size=Decimal("0.0001"))
    assert quantize(small, BTC).base_size == Decimal("0.0001")
    with pytest.raises(QuantizeError, match="below the minimum 1"):
        quantize(small, BTC, reference_price=Decimal("5000"))


def test_a_capped_market_buy_goes_as_a_limit_ioc_at_its_max_price_rounded_down() -> None:
    capped = spec(kind="market", limit_price=None, max_price=Decimal("7140.987654"))
    q = quantize(capped, BTC)
    assert q.max_price == Decimal("7140.98")  # never pay more than asked
    assert order_body(q)["order_configuration"] == {
        "sor_limit_ioc": {"base_size": "0.12345678", "limit_price": "7140.98"}
    }
    plain_market = quantize(spec(kind="market", limit_price=None), BTC)
    assert order_body(plain_market)["order_configuration"] == {
        "market_market_ioc": {"base_size": "0.12345678"}
    }
    with pytest.raises(QuantizeError, match="applies to a BUY only"):
        quantize(spec(kind="market", limit_price=None, side=Side.SELL, max_price=Decimal(1)), BTC)
    with pytest.raises(QuantizeError, match="only market BUY orders take a max price"):
        quantize(spec(max_price=Decimal(7000)), BTC)


@given(
    x=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1e6"), places=10),
    inc=st.sampled_from([Decimal("0.00000001"), Decimal("0.01"), Decimal("0.5"), Decimal("25")]),
)
def test_rounding_lands_on_the_grid_and_never_crosses_the_value(x: Decimal, inc: Decimal) -> None:
    down, up = floor_to(x, inc), ceil_to(x, inc)
    assert down <= x <= up and up - down in (0, inc)
    assert (down / inc) == (down / inc).to_integral_value()
    assert (up / inc) == (up / inc).to_integral_value()
    assert "E" not in plain(down) and Decimal(plain(down)) == down


def test_product_rules_are_read_from_the_recorded_product() -> None:
    raw = json.loads((DATA / "rest/nautilus/get_product_BTC-USD.json").read_text())
    rules = rules_from_product(raw)
    assert rules.product_id == "BTC-USD"
    assert rules.base_increment == Decimal("0.00000001") and rules.price_increment == Decimal(
        "0.01"
    )
    assert rules.quote_min_size > 0 and rules.status == "online"
    with pytest.raises(QuantizeError, match="base_increment is missing"):
        rules_from_product({"product_id": "X-USD", "quote_increment": "0.01"})


# -- lenient parsing -------------------------------------------------------------------------


def test_a_success_with_a_null_configuration_parses_and_a_failure_gives_the_reason() -> None:
    ok = json.loads((DATA / "rest/ccxt_comments/create_order_success.json").read_text())
    resp = convert({**ok, "order_configuration": None}, CreateResponse)
    assert resp.success and resp.success_response is not None and resp.success_response.order_id
    bad = json.loads(
        (
            DATA / "rest/ccxt_comments/create_order_failure_unsupported_order_configuration.json"
        ).read_text()
    )
    refused = convert(bad, CreateResponse)
    assert not refused.success
    assert "UNSUPPORTED_ORDER_CONFIGURATION" in refused.rejection_reason()
    assert dec("") is None and dec("1.50") == Decimal("1.50") and dec(0.1) == Decimal("0.1")


def test_a_recorded_open_order_becomes_a_cumulative_update_without_a_fake_reason() -> None:
    raw = json.loads(
        (DATA / "rest/ccxt_comments/get_order_limit_gtc_open_LTC-BTC.json").read_text()
    )
    order = convert(raw, OrderEnvelope).order
    u = rest_update(order, "rest")
    assert (u.venue_order_id, u.client_order_id, u.status) == (
        "9bc1eb3b-5b46-4b71-9628-ae2ed0cca75b",
        "e5fe8482-05bb-428f-ad4d-dbc8ce39239c",
        "OPEN",
    )
    assert (u.filled_size, u.filled_value, u.total_fees) == (0, 0, 0)
    assert u.reason == ""  # REJECT_REASON_UNSPECIFIED is no reason


# -- keys ------------------------------------------------------------------------------------


def es256_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def ed25519_pem() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_both_key_types_are_recognised() -> None:
    assert key_algorithm(es256_pem()) == "ES256"
    assert key_algorithm(ed25519_pem()) == "EdDSA"
    seed = base64.b64encode(os.urandom(32)).decode()
    assert key_algorithm(seed) == "EdDSA"
    assert key_algorithm(base64.b64encode(os.urandom(64)).decode()) == "EdDSA"


def test_unusable_keys_are_refused_without_showing_them() -> None:
    p384 = (
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    broken = es256_pem().replace("M", "Q", 5)
    for secret, message in (
        (p384, "secp384r1"),
        (broken, "cannot be read"),
        ("not-a-key!", "neither a PEM block nor base64"),
        (base64.b64encode(b"x" * 16).decode(), "16 bytes"),
    ):
        with pytest.raises(CredentialsError, match=message) as e:
            key_algorithm(secret)
        assert secret.strip() not in str(e.value)
        for line in secret.splitlines()[1:-1]:
            assert line not in str(e.value)


def key_file(
    tmp_path: Path, secret: str, mode: int = 0o600, name: str = "organizations/o/apiKeys/k"
) -> Path:
    p = tmp_path / "cdp_api_key.json"
    p.write_text(json.dumps({"name": name, "privateKey": secret}))
    p.chmod(mode)
    return p


@pytest.mark.parametrize("make", [es256_pem, ed25519_pem])
def test_keys_load_from_a_private_key_file_or_the_environment(tmp_path: Path, make: object) -> None:
    secret = make()  # type: ignore[operator]
    path = key_file(tmp_path, secret)
    creds, alg = load_trading_credentials(CoinbaseConfig(key_file=str(path)), environ={})
    assert creds.secret == secret and alg in ("ES256", "EdDSA")
    assert secret not in repr(creds)
    env = {"K": "organizations/o/apiKeys/k", "S": secret.replace("\n", "\\n")}
    creds, _ = load_trading_credentials(CoinbaseConfig(api_key_env="K", api_secret_env="S"), env)
    assert creds.secret == secret


def test_a_key_file_readable_by_others_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = key_file(tmp_path, es256_pem(), mode=0o644)
    with pytest.raises(
        CredentialsError,
        match=r"cdp_api_key.json is accessible by its group or others \(mode 0644\)",
    ):
        load_trading_credentials(CoinbaseConfig(key_file=str(path)), environ={})
    path.chmod(0o640)
    with pytest.raises(CredentialsError, match="chmod 600"):
        check_key_file(str(path))
    with pytest.raises(CredentialsError, match=r"missing\.json"):
        check_key_file(str(tmp_path / "missing.json"))


def test_missing_or_malformed_keys_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="live trading needs a Coinbase API key"):
        load_trading_credentials(CoinbaseConfig(), environ={})
    with pytest.raises(CredentialsError, match="COINBASE_API_SECRET is not set"):
        load_trading_credentials(CoinbaseConfig(), environ={"COINBASE_API_KEY": "k"})
    secret = (
        "-----BEGIN EC PRIVATE KEY-----\nnot really a key at all\n-----END EC PRIVATE KEY-----\n"
    )
    path = key_file(tmp_path, secret)
    with pytest.raises(CredentialsError) as e:
        load_trading_credentials(CoinbaseConfig(key_file=str(path)), environ={})
    assert str(path) in str(e.value) and "not really a key" not in str(e.value)
    path.write_text("{not json")
    with pytest.raises(CredentialsError, match="not valid JSON"):
        load_trading_credentials(CoinbaseConfig(key_file=str(path)), environ={})


# -- user-channel session ---------------------------------------------------------------------


def frame(channel: str, seq: int, events: list[object]) -> str:
    return json.dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": "2026-01-01T00:00:00Z",
            "sequence_num": seq,
            "events": events,
        }
    )


def test_the_user_session_subscribes_with_fresh_jwts_and_goes_live_on_the_ack() -> None:
    tokens = iter(["jwt-1", "jwt-2"])
    s = UserSession(lambda: next(tokens), stale_after_ns=10, ack_timeout_ns=100)
    sent = [json.loads(m) for m in s.opened(0)]
    assert [(m["channel"], m["jwt"]) for m in sent] == [("heartbeats", "jwt-1"), ("user", "jwt-2")]
    r = s.frame(
        frame(
            "subscriptions", 0, [{"subscriptions": {"user": ["u"], "heartbeats": ["heartbeats"]}}]
        ),
        1,
    )
    assert r.went_live and s.live


def test_the_user_session_turns_orders_into_cumulative_updates_and_sees_gaps() -> None:
    s = UserSession(lambda: None)
    s.opened(0)
    order = {
        "order_id": "v1",
        "client_order_id": "cj-1",
        "status": "OPEN",
        "cumulative_quantity": "0.5",
        "filled_value": "5000",
        "total_fees": "30",
        "avg_price": "10000",
        "leaves_quantity": "0.5",
        "post_only": "false",
        "stop_price": "",
    }
    r = s.frame(frame("user", 0, [{"type": "snapshot", "orders": [order]}]), 1)
    (u,) = r.updates
    assert (u.venue_order_id, u.client_order_id, u.status) == ("v1", "cj-1", "OPEN")
    assert (u.filled_size, u.filled_value, u.total_fees) == (
        Decimal("0.5"),
        Decimal(5000),
        Decimal(30),
    )
    assert not r.gap
    assert s.frame(frame("heartbeats", 3, [{"heartbeat_counter": 3}]), 2).gap
    err = s.frame(json.dumps({"type": "error", "message": "authentication failure"}), 3)
    assert err.error == "error frame: authentication failure"
    assert s.frame(b"{not json", 4).error.startswith("unreadable frame")


def test_the_user_session_reconnects_when_silent_or_never_acknowledged() -> None:
    s = UserSession(lambda: None, stale_after_ns=10, ack_timeout_ns=5)
    s.opened(0)
    assert s.tick(3) == ""
    assert "not acknowledged" in s.tick(6)
    s.frame(frame("subscriptions", 0, [{"subscriptions": {"user": ["u"]}}]), 6)
    assert s.tick(15) == ""
    assert s.tick(17).startswith("no frame for")
