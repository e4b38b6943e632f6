"""The Coinbase execution client against the local fake exchange (HTTPS + WSS on 127.0.0.1).

Each fault kind the fake can inject is driven through the real client (SDK, JWT, TLS) and the
venue; the outcome is checked at the fake too: one order per client_order_id, balances equal to
the booked fills. Backoff waits go to a recording sleeper (the injected one), so the tests
never sleep through a Retry-After; only the client timeouts of the slow-response tests take
real time (0.4 s each).
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from loguru import logger

from cryptoj.adapters.coinbase.execution.background import Runner
from cryptoj.adapters.coinbase.execution.client import CoinbaseRestClient
from cryptoj.adapters.coinbase.execution.errors import (
    AuthenticationFailed,
    RetryPolicy,
    ServerError,
)
from cryptoj.adapters.coinbase.execution.quantize import OrderSpec
from cryptoj.adapters.coinbase.execution.venue import CoinbaseVenue, VenueSettings
from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.adapters.coinbase.fake.auth import ApiKey, generate_api_key
from cryptoj.adapters.coinbase.jwt_auth import Credentials
from cryptoj.execution.records import (
    journal_cancel,
    journal_order,
    resendable_order,
    submitted_order,
)
from cryptoj.journal import Journal
from cryptoj.models.base import Message
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderStatus,
    OrderType,
    ReconcileVenue,
    Side,
    SubmitOrder,
)
from cryptoj.venues.base import TrackedOrder
from tests.stubs import start_keyed_fake

PRODUCTS = ["BTC-USD", "ETH-USD"]


class Sleeper:
    """The injected sleep: records every wait, waits for none."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Events:
    """The venue's listener."""

    def __init__(self) -> None:
        self.items: list[Message] = []

    def __call__(self, msg: Message) -> None:
        self.items.append(msg)

    def of(self, kind: type) -> list[Any]:
        return [m for m in self.items if isinstance(m, kind)]


def wait_until(cond: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, tuple[FakeCoinbase, ApiKey]]]:
    """One fake per key type for the whole module (starting one takes about a second)."""
    out: dict[str, tuple[FakeCoinbase, ApiKey]] = {}
    try:
        for kind in ("ES256", "Ed25519"):
            out[kind] = start_keyed_fake(kind)
        yield out
    finally:
        for fake, _ in out.values():
            fake.stop()


@pytest.fixture(params=["ES256", "Ed25519"])
def both(
    request: pytest.FixtureRequest, fakes: dict[str, tuple[FakeCoinbase, ApiKey]]
) -> tuple[FakeCoinbase, ApiKey]:
    """Each key type (the test runs twice)."""
    return fakes[request.param]


@pytest.fixture
def fake(fakes: dict[str, tuple[FakeCoinbase, ApiKey]]) -> FakeCoinbase:
    """The Ed25519 fake (tests that do not depend on the key type)."""
    return fakes["Ed25519"][0]


@pytest.fixture
def key(fakes: dict[str, tuple[FakeCoinbase, ApiKey]]) -> ApiKey:
    """The Ed25519 fake's key."""
    return fakes["Ed25519"][1]


def make_venue(
    fake: FakeCoinbase,
    key: ApiKey,
    *,
    user: bool = False,
    timeout_s: float = 2.0,
    sleeper: Sleeper | None = None,
    run_calls: Runner = lambda fn: fn(),  # reconciliation calls inline (VenueCallDone follows)
    **settings: Any,
) -> tuple[CoinbaseVenue, Events, Sleeper]:
    sleeper = sleeper or Sleeper()
    venue = CoinbaseVenue.connect(
        fake.rest_url,
        Credentials(key.name, key.private_pem),
        ca_file=fake.ca_file,
        user_ws_url=fake.ws_url if user else None,
        timeout_s=timeout_s,
        policy=RetryPolicy(max_attempts=3, backoff_min_s=0.05, backoff_max_s=0.2),
        settings=VenueSettings(**{"place_attempts": 3, "absent_grace_s": 0.0, **settings}),
        user_stale_s=2.0,
        sleep=sleeper,
        seed=1,
        run_calls=run_calls,
    )
    events = Events()
    venue.set_listener(events)
    return venue, events, sleeper


_IDS = itertools.count(1)


def new_id(prefix: str) -> str:
    """A client order id never used before on the shared fakes."""
    return f"cj-{prefix}-{next(_IDS)}"


def resting_buy(coid: str, price: str = "1000") -> SubmitOrder:
    """A post-only limit BUY of 0.01 BTC far below the fake's market: it rests."""
    return SubmitOrder(
        client_order_id=coid,
        product="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.01"),
        limit_price=Decimal(price),
        post_only=True,
    )


def market(
    coid: str, qty: str = "0.05", side: Side = Side.BUY, product: str = "BTC-USD"
) -> SubmitOrder:
    return SubmitOrder(
        client_order_id=coid,
        product=product,
        side=side,
        order_type=OrderType.MARKET,
        quantity=Decimal(qty),
    )


def summary(fake: FakeCoinbase) -> dict[str, Any]:
    exchange: dict[str, Any] = fake.state()["exchange"]
    return exchange


class Books:
    """Balances before a test: afterwards they must have moved by exactly the venue's fills."""

    def __init__(self, fake: FakeCoinbase, venue: CoinbaseVenue) -> None:
        self.fake, self.venue = fake, venue
        self.before = venue.balances()

    def check(self) -> None:
        fills = self.venue.all_fills()
        assert len({f.fill_id for f in fills}) == len(fills)
        after = self.venue.balances()
        zero = Decimal(0)
        usd = sum((f.cash_delta for f in fills), zero)
        assert after["USD"] - self.before["USD"] == usd
        for base in ("BTC", "ETH"):
            moved = sum(
                (f.quantity if f.side is Side.BUY else -f.quantity)
                for f in fills
                if f.product.startswith(base + "-")
            )
            assert after.get(base, zero) - self.before.get(base, zero) == moved
        assert summary(self.fake)["duplicate_client_order_ids"] == []


# -- the happy paths -----------------------------------------------------------------------------


def test_market_order_fills_and_the_books_match_the_venue(
    both: tuple[FakeCoinbase, ApiKey],
) -> None:
    fake, key = both
    c_m1 = new_id("m1")
    venue, events, _ = make_venue(fake, key)
    books = Books(fake, venue)
    result = venue.submit(market(c_m1), 1)
    assert isinstance(result, OrderAccepted) and result.venue_order_id
    view = venue.get_order(c_m1)
    assert view is not None and view.status is OrderStatus.FILLED
    assert view.filled_quantity == Decimal("0.05")
    assert [type(e).__name__ for e in events.items] == ["OrderAccepted", "Fill", "OrderClosed"]
    books.check()
    assert venue.submit(market(c_m1), 2) == result  # idempotent: nothing is sent again
    assert summary(fake)["create_requests_per_client_order_id"][c_m1] == 1


def test_a_capped_market_buy_fills_no_higher_than_its_max_price(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    """``SubmitOrder.max_price`` goes to Coinbase as a limit IOC: far above the ask it fills
    like a market order, below the ask it takes nothing and closes."""
    venue, _, _ = make_venue(fake, key)
    high, low = new_id("cap-hi"), new_id("cap-lo")
    accepted = venue.submit(msgspec.structs.replace(market(high), max_price=Decimal(10**7)), 1)
    assert isinstance(accepted, OrderAccepted)
    assert wait_until(lambda: (v := venue.get_order(high)) is not None and v.status.terminal)
    view = venue.get_order(high)
    assert view is not None and view.status is OrderStatus.FILLED
    assert view.filled_quantity == Decimal("0.05")
    venue.submit(msgspec.structs.replace(market(low), max_price=Decimal("100")), 2)
    assert wait_until(lambda: (v := venue.get_order(low)) is not None and v.status.terminal)
    view = venue.get_order(low)
    assert view is not None and view.filled_quantity == 0 and venue.fills_for(low) == ()
    orders = {o["client_order_id"]: o for o in summary(fake)["orders"]}
    assert view.status is OrderStatus.EXPIRED  # the IOC's untaken rest
    config = orders[low]["order_configuration"]
    assert config == {"sor_limit_ioc": {"base_size": "0.05", "limit_price": "100"}}


def test_limit_order_rests_and_is_cancelled_and_stop_limit_and_quote_buy_are_accepted(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    c_l1 = new_id("l1")
    c_q1 = new_id("q1")
    c_s1 = new_id("s1")
    venue, events, _ = make_venue(fake, key)
    books = Books(fake, venue)
    low = resting_buy(c_l1, "1000.009")
    assert isinstance(venue.submit(low, 1), OrderAccepted)
    order = summary(fake)["orders"]
    placed = next(o for o in order if o["client_order_id"] == c_l1)
    assert placed["order_configuration"]["limit_limit_gtc"]["limit_price"] == "1000"  # quantised
    assert [o.client_order_id for o in venue.open_orders()] == [c_l1]
    assert venue.cancel(c_l1, 2)
    view = venue.get_order(c_l1)
    assert view is not None and view.status is OrderStatus.CANCELLED
    assert events.of(OrderClosed)[-1].status is OrderStatus.CANCELLED
    stop = SubmitOrder(
        client_order_id=c_s1,
        product="ETH-USD",
        side=Side.SELL,
        order_type=OrderType.STOP_LIMIT,
        quantity=Decimal("1"),
        limit_price=Decimal("10"),
        stop_price=Decimal("11"),
    )
    assert isinstance(venue.submit(stop, 3), OrderAccepted)
    quote_buy = OrderSpec(
        client_order_id=c_q1,
        product="BTC-USD",
        side=Side.BUY,
        kind="market",
        quote_size=Decimal("100.005"),
    )
    assert isinstance(venue.submit_spec(quote_buy, 4), OrderAccepted)
    q = venue.get_order(c_q1)
    assert q is not None and q.status is OrderStatus.FILLED
    assert Decimal("99.99") < q.filled_value + q.fees <= Decimal("100.00")  # fee inside the quote
    assert venue.cancel_all(5) == [c_s1]
    assert venue.open_orders() == []
    books.check()


# -- refusals ------------------------------------------------------------------------------------


def test_a_business_rejection_carries_coinbase_reason_and_a_local_one_sends_nothing(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    c_r1 = new_id("r1")
    c_r2 = new_id("r2")
    venue, _, _ = make_venue(fake, key)
    books = Books(fake, venue)
    fake.inject("order_reject", count=1, reason="INSUFFICIENT_FUND")
    r = venue.submit(market(c_r1), 1)
    assert isinstance(r, OrderRejected) and "INSUFFICIENT_FUND" in r.reason
    tiny = venue.submit(market(c_r2, qty="0.000000001"), 2)
    assert isinstance(tiny, OrderRejected) and tiny.reason.startswith("not sent:")
    assert c_r2 not in summary(fake)["create_requests_per_client_order_id"]
    assert (
        venue.get_order(c_r1) is not None and venue.get_order(c_r1).status is OrderStatus.REJECTED
    )  # type: ignore[union-attr]
    assert venue.counters()["rejected"] == 1 and venue.counters()["local_rejects"] == 1
    books.check()


# -- rate limits and server errors ---------------------------------------------------------------


@pytest.mark.parametrize("body", ["html", "json"])
def test_429_is_waited_out_as_the_headers_say_and_nothing_is_duplicated(
    fake: FakeCoinbase, key: ApiKey, body: str
) -> None:
    c_429 = new_id("429")
    venue, _, sleeper = make_venue(fake, key)
    books = Books(fake, venue)
    venue.balances()  # warm up the product rules path separately from the create
    fake.inject("rest_429", count=2, endpoint="create", body=body, retry_after=2)
    assert isinstance(venue.submit(market(c_429), 1), OrderAccepted)
    assert sleeper.waits.count(2.0) >= 2  # Retry-After honoured (capped waits recorded)
    assert summary(fake)["orders_per_client_order_id"][c_429] == 1
    c = venue.counters()
    assert c["rest_fault_rate_limited"] == 2 and c["outcome_unknown"] == 0
    books.check()


def test_reads_retry_5xx_with_backoff_and_give_up_after_the_bound(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    venue, _, sleeper = make_venue(fake, key)
    fake.inject("rest_5xx", count=2, endpoint="accounts", status=503)
    assert venue.balances()["USD"] > 0
    assert len(sleeper.waits) == 2 and sleeper.waits[1] > sleeper.waits[0]
    fake.inject("rest_5xx", count=3, endpoint="accounts", status=500)
    with pytest.raises(ServerError, match="gave up after 3 tries"):
        venue.balances()


@pytest.mark.parametrize(
    ("kind", "params", "sent"),
    [
        ("rest_5xx", {"status": 503}, 2),  # not processed: absent, sent again under the same id
        ("rest_5xx", {"status": 500, "commit": True}, 1),  # processed: found by the lookup
        ("drop_after_commit", {}, 1),  # processed, connection reset: found
        ("rest_delay", {"seconds": 1.0}, 1),  # processed, answer too late: found
    ],
)
def test_an_unknown_create_outcome_is_settled_by_client_order_id(
    fake: FakeCoinbase, key: ApiKey, kind: str, params: dict[str, Any], sent: int
) -> None:
    c_u1 = new_id("u1")
    venue, events, _ = make_venue(fake, key, timeout_s=0.4)
    books = Books(fake, venue)
    venue.balances()
    fake.inject(kind, count=1, endpoint="create", **params)
    result = venue.submit(market(c_u1), 1)
    assert isinstance(result, OrderAccepted), result
    s = summary(fake)
    assert s["orders_per_client_order_id"][c_u1] == 1  # never two orders
    assert s["create_requests_per_client_order_id"][c_u1] == 1  # processed once
    c = venue.counters()
    assert c["rest_creates"] == sent  # a resend always carries the same client_order_id
    assert c["outcome_unknown"] == 1 and c["unknown_outcomes"] == 1
    assert c["unknown_outcomes_resolved"] == 1 and c["unknown_outcomes_pending"] == 0
    assert c["resends"] == sent - 1
    assert len(events.of(OrderAccepted)) == 1
    books.check()


def test_a_success_with_a_null_configuration_is_an_ordinary_acceptance(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    c_n1 = new_id("n1")
    venue, _, _ = make_venue(fake, key)
    books = Books(fake, venue)
    fake.inject("null_config", count=1)
    assert isinstance(venue.submit(market(c_n1), 1), OrderAccepted)
    assert venue.counters()["outcome_unknown"] == 0
    assert summary(fake)["orders_per_client_order_id"][c_n1] == 1
    books.check()


def test_an_outcome_that_stays_unknown_is_returned_and_resolved_later(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    c_x1 = new_id("x1")
    venue, _, _ = make_venue(fake, key, place_attempts=2)
    books = Books(fake, venue)
    venue.balances()
    # every create is processed but its answer lost; every lookup fails (2 lists x 3 tries x 2)
    fake.inject("drop_after_commit", count=2)
    fake.inject("rest_5xx", count=6, endpoint="list", status=503)
    result = venue.submit(market(c_x1), 1)
    assert isinstance(result, OrderOutcomeUnknown) and "lookup failed" in result.reason
    assert venue.get_order(c_x1) is None and venue.unknown_outcomes() == [c_x1]
    state, _ = venue.resolve(c_x1, 2)
    assert state.value == "found"
    view = venue.get_order(c_x1)
    assert view is not None and view.status is OrderStatus.FILLED
    assert summary(fake)["orders_per_client_order_id"][c_x1] == 1
    assert venue.counters()["unknown_outcomes_resolved"] == 1
    books.check()


# -- authentication and secrets ------------------------------------------------------------------


def test_a_rejected_key_is_retried_once_then_fails_without_leaking_it(
    both: tuple[FakeCoinbase, ApiKey], caplog: pytest.LogCaptureFixture
) -> None:
    fake, key = both
    c_a1 = new_id("a1")
    other = generate_api_key("ES256", name=key.name)  # right name, wrong key: 401 from the fake
    venue, _, _ = make_venue(fake, other)
    before = fake.counts.get("rest_unauthorized", 0)
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(str(m)), level="DEBUG")
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationFailed) as e:
            venue.submit(market(c_a1), 1)
    finally:
        logger.remove(sink)
    assert any("authentication failed" in line for line in logged)
    assert fake.counts.get("rest_unauthorized", 0) - before == 2  # the first try and one retry
    assert "Unauthorized" in str(e.value)
    texts = [str(e.value), repr(e.value), caplog.text, *logged, str(venue.counters())]
    for text in texts:
        for line in other.private_pem.splitlines()[1:-1]:
            assert line not in text
    with pytest.raises(RuntimeError, match="authentication failed"):
        venue.ping()


# -- the user channel and reconciliation ---------------------------------------------------------


def test_the_user_channel_delivers_fills_and_replays_after_a_reconnect_count_once(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    c_w1 = new_id("w1")
    venue, events, _ = make_venue(fake, key, user=True, refresh_after_market=False)
    books = Books(fake, venue)
    venue.start()
    try:
        assert wait_until(lambda: len(events.of(ReconcileVenue)) == 1)
        assert isinstance(venue.submit(market(c_w1, qty="0.02"), 1), OrderAccepted)
        assert wait_until(lambda: bool(events.of(OrderClosed)))
        fills_before = [f.fill_id for f in events.of(Fill)]
        assert fills_before
        fake.inject("user_replay", count=1, orders=20)
        fake.inject("user_disconnect", mode="drop")
        assert wait_until(lambda: len(events.of(ReconcileVenue)) == 2)
        assert wait_until(lambda: venue.counters().get("user_ignored", 0) >= 2)
        assert [f.fill_id for f in events.of(Fill)] == fills_before  # replays booked nothing
        assert len(events.of(OrderClosed)) == 1
        assert "reconnected" in events.of(ReconcileVenue)[-1].reason
        books.check()
    finally:
        venue.stop()


def test_reconciliation_applies_what_changed_at_the_venue_and_reports_strangers(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    c_hand_1 = new_id("hand1")
    c_c1 = new_id("c1")
    venue, events, _ = make_venue(fake, key)
    resting = SubmitOrder(
        client_order_id=c_c1,
        product="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.01"),
        limit_price=Decimal("1000"),
    )
    venue.submit(resting, 1)
    other = CoinbaseRestClient(
        fake.rest_url, Credentials(key.name, key.private_pem), ca_file=fake.ca_file
    )
    vid = venue.get_order(c_c1).venue_order_id  # type: ignore[union-attr]
    assert other.cancel_orders([vid])[0].success  # cancelled behind the venue's back
    stranger = OrderSpec(
        client_order_id=c_hand_1,
        product="BTC-USD",
        side=Side.BUY,
        kind="limit",
        base_size=Decimal("0.01"),
        limit_price=Decimal("900"),
    )
    other.create_order(stranger)
    report = venue.reconcile(2, since_ns=time.time_ns() - 60_000_000_000)
    kinds = {(d.kind, d.client_order_id) for d in report.diffs}
    assert ("status", c_c1) in kinds and ("untracked", c_hand_1) in kinds
    assert report.error == ""
    assert events.of(OrderClosed)[-1].status is OrderStatus.CANCELLED
    again = venue.reconcile(3)
    assert again.diffs == ()  # nothing new, and a stranger is reported once


@pytest.mark.parametrize("grace_s", [60.0, 0.0])
def test_an_order_absent_after_unknown_outcomes_is_resent_only_while_its_intent_is_young(
    fake: FakeCoinbase, key: ApiKey, grace_s: float
) -> None:
    coid = new_id("young")
    venue, _, _ = make_venue(fake, key, place_attempts=2, absent_grace_s=grace_s)
    venue.balances()
    fake.inject("rest_5xx", count=2, endpoint="create", status=503)  # never processed
    result = venue.submit(market(coid), time.time_ns())
    assert isinstance(result, OrderOutcomeUnknown)
    c = venue.counters()
    assert (c["outcome_unknown"], c["lookups"], c["resends"]) == (2, 2, 1)
    state, detail = venue.resolve(coid, time.time_ns())
    if grace_s:
        assert state.value == "found" and "sent again under the same id" in detail
        view = venue.get_order(coid)
        assert view is not None and view.status is OrderStatus.FILLED
        assert summary(fake)["orders_per_client_order_id"][coid] == 1
    else:  # too old to send now: certainly absent, and reported so (the actor rejects it)
        assert state.value == "absent" and venue.get_order(coid) is None
        assert coid not in summary(fake)["orders_per_client_order_id"]
        assert venue.counters()["absent"] == 1
    assert venue.counters()["unknown_outcomes_resolved"] == 1


def test_an_order_is_not_declared_absent_while_a_request_may_still_commit(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    """Issue 16, "twice its target": a create that Coinbase commits after the client gave up
    on it. The intent is older than ``absent_grace_s``, so the old rule (absence final
    ``absent_grace_s`` after the intent) declared the order absent right after the timeout,
    the actor rejected it, the portfolio planned the same trade again, and the late commit
    then filled: the position at twice its target. Absence is final only ``absent_grace_s``
    after the last request left; until then the lookup says UNKNOWN, and the late commit is
    found and booked as this order."""
    coid = new_id("late")
    venue, events, _ = make_venue(fake, key, timeout_s=0.3, place_attempts=1, absent_grace_s=2.0)
    venue.balances()
    fake.inject("rest_delay", count=1, endpoint="create", seconds=1.0, commit="after")
    intent_ts = time.time_ns() - 30 * 1_000_000_000  # decided long ago (e.g. a slow retry)
    result = venue.submit(market(coid), intent_ts)
    assert isinstance(result, OrderOutcomeUnknown)  # timed out, nothing found yet
    state, detail = venue.resolve(coid, time.time_ns())
    assert state.value == "unknown" and "may be in flight" in detail  # not absent
    assert coid not in summary(fake)["orders_per_client_order_id"]  # not committed yet
    for _ in range(60):  # bounded: the fake commits 1 s after the request
        state, detail = venue.resolve(coid, time.time_ns())
        if state.value != "unknown":
            break
        time.sleep(0.05)
    assert state.value == "found", detail
    assert summary(fake)["orders_per_client_order_id"][coid] == 1
    assert sum(f.quantity for f in events.of(Fill) if f.client_order_id == coid) == Decimal("0.05")
    assert venue.counters()["absent"] == 0


def track_journalled(
    venue: CoinbaseVenue, order: SubmitOrder, *, whole: bool = True, cancelled: bool = False
) -> None:
    """What the ExecutionActor does at a start with a PENDING row an earlier (killed) process
    journalled before sending it: the row, and with ``whole`` the order it was journalled with
    (``orders.submitted``; a journal written before that column holds no order), unless
    ``cancelled``: its cancel was requested (a split cancel journalled for it)."""
    journal = Journal(":memory:")
    journal_order(journal, order)
    if cancelled:
        journal_cancel(journal, order.client_order_id, order.ts)
    row = journal.order(order.client_order_id)
    assert row is not None
    if not whole:
        row["submitted"] = None
    resend = resendable_order(journal, row, ())
    journal.close()
    venue.track(
        TrackedOrder(  # PENDING, nothing booked
            **{k: getattr(order, k) for k in ("client_order_id", "product", "side", "order_type")},
            created_ts=int(row["created_ts"]),
            order=resend,
        )
    )


def test_an_earlier_process_order_never_sent_is_sent_again_at_once_under_its_id(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    """A process killed between journalling an order and sending it: the next process finds
    it absent and, its intent being younger than ``absent_grace_s``, sends the journalled order
    itself under the same id at once (it used to wait ``absent_grace_s`` with the product
    held). An order journalled without its whole content, or whose cancel was requested, is
    waited for as before."""
    coid, old, cancelled = new_id("killed"), new_id("killed-old"), new_id("killed-cancelled")
    venue, events, _ = make_venue(fake, key, absent_grace_s=30.0)
    venue.balances()
    now = time.time_ns()
    buy = msgspec.structs.replace(market(coid, "0.02"), ts=now, max_price=Decimal("1000000"))
    track_journalled(venue, buy)
    track_journalled(venue, msgspec.structs.replace(market(old, "0.02"), ts=now), whole=False)
    state, detail = venue.resolve(coid, time.time_ns())
    assert state.value == "found" and "sent again under the same id" in detail, detail
    view = venue.get_order(coid)
    assert view is not None and view.status is OrderStatus.FILLED
    s = summary(fake)
    assert s["orders_per_client_order_id"][coid] == 1
    venue_order = next(o for o in s["orders"] if o["client_order_id"] == coid)
    assert "sor_limit_ioc" in venue_order["order_configuration"]  # its max_price went too
    assert sum(f.quantity for f in events.of(Fill) if f.client_order_id == coid) == Decimal("0.02")
    track_journalled(venue, msgspec.structs.replace(market(cancelled), ts=now), cancelled=True)
    for unsent in (old, cancelled):
        state, detail = venue.resolve(unsent, time.time_ns())
        assert state.value == "unknown" and "not at Coinbase yet" in detail
        assert unsent not in summary(fake)["create_requests_per_client_order_id"]
    assert venue.counters()["resent_after_restart"] == 1


def test_an_order_of_unknown_outcome_whose_cancel_was_asked_is_not_sent_again(
    fake: FakeCoinbase, key: ApiKey
) -> None:
    """A cancel cannot reach an order whose create outcome is unknown (no venue order id):
    the order is then no longer sent again under its id, only found or waited for."""
    coid = new_id("cancel-unknown")
    venue, _, _ = make_venue(fake, key, place_attempts=1, absent_grace_s=60.0)
    venue.balances()
    fake.inject("rest_5xx", count=1, endpoint="create", status=503)  # never processed
    assert isinstance(venue.submit(market(coid), time.time_ns()), OrderOutcomeUnknown)
    assert not venue.cancel(coid, time.time_ns())
    state, detail = venue.resolve(coid, time.time_ns())
    assert state.value == "unknown" and "not at Coinbase yet" in detail, detail
    assert coid not in summary(fake)["create_requests_per_client_order_id"]  # never processed


@pytest.mark.parametrize("refused", [False, True])
def test_a_killed_process_request_committing_late_and_the_resend_make_one_order(
    fake: FakeCoinbase, key: ApiKey, refused: bool
) -> None:
    """The killed process's create was still on its way (the fake commits it 1 s after it
    arrived) when the next process found the order absent and sent it again under the same id.
    Coinbase answers a repeated id with the original order: whichever request commits first is
    the order, the other creates nothing. One order, one set of fills, booked once. With
    ``refused``, the re-send is refused (``success:false``): that is not the order's outcome
    while the earlier request may still commit, so it stays unknown until it is found."""
    coid = new_id("late-resend")
    killed, _, _ = make_venue(fake, key, timeout_s=0.3, place_attempts=1, absent_grace_s=30.0)
    killed.balances()
    fake.inject("rest_delay", count=1, endpoint="create", seconds=1.0, commit="after")
    order = msgspec.structs.replace(market(coid, "0.03"), ts=time.time_ns())
    assert isinstance(killed.submit(order, order.ts), OrderOutcomeUnknown)  # then SIGKILL
    venue, events, _ = make_venue(fake, key, place_attempts=1, absent_grace_s=30.0)
    venue.balances()
    track_journalled(venue, order)
    if refused:
        fake.inject("order_reject", count=1, reason="INSUFFICIENT_FUND")
    state, detail = venue.resolve(coid, time.time_ns())
    if refused:
        assert state.value == "unknown" and "refused" in detail, detail
        for _ in range(60):  # bounded: the killed request commits 1 s after it arrived
            state, detail = venue.resolve(coid, time.time_ns())
            if state.value != "unknown":
                break
            time.sleep(0.05)
    assert state.value == "found", detail
    assert refused or "sent again under the same id" in detail, detail
    assert wait_until(lambda: summary(fake)["create_requests_per_client_order_id"][coid] >= 2)
    time.sleep(0.2)  # the killed request's answer (the original order) is out
    s = summary(fake)
    assert s["orders_per_client_order_id"][coid] == 1
    (venue_order,) = [o for o in s["orders"] if o["client_order_id"] == coid]
    venue_fills = [f for f in s["fills"] if f["order_id"] == venue_order["order_id"]]
    assert sum(Decimal(f["size"]) for f in venue_fills) == Decimal("0.03")
    booked = [f for f in events.of(Fill) if f.client_order_id == coid]
    assert sum(f.quantity for f in booked) == Decimal("0.03")
    assert len({f.fill_id for f in booked}) == len(booked)
    assert not any(isinstance(m, OrderRejected) for m in events.items)
    assert venue.counters()["absent"] == 0


def test_the_journal_holds_each_order_whole_and_older_journals_get_the_column(
    tmp_path: Path,
) -> None:
    """``orders.submitted``: the order as journalled before it was sent, read back equal; a
    journal written before the column existed gets it when opened (NULL: no order to send)."""
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    db.execute(
        "CREATE TABLE orders (client_order_id TEXT PRIMARY KEY, product TEXT NOT NULL,"
        " side TEXT NOT NULL, order_type TEXT NOT NULL, quantity TEXT NOT NULL, limit_price TEXT,"
        " status TEXT NOT NULL, filled_quantity TEXT NOT NULL, venue_order_id TEXT,"
        " reason TEXT NOT NULL, created_ts INTEGER NOT NULL, updated_ts INTEGER NOT NULL)"
    )
    db.execute(
        "INSERT INTO orders VALUES ('o', 'BTC-USD', 'BUY', 'MARKET', '1', NULL, 'PENDING', '0',"
        " NULL, '', 1, 1)"
    )
    db.commit()
    db.close()
    journal = Journal(old)
    order = msgspec.structs.replace(  # a stop-limit, not to be split: read back whole
        market("n", "0.5", Side.SELL, "ETH-USD"),
        ts=7,
        order_type=OrderType.STOP_LIMIT,
        limit_price=Decimal("1900.5"),
        stop_price=Decimal("1901"),
        reason="stop",
        split=False,
    )
    assert journal_order(journal, order)
    rows = {r["client_order_id"]: r for r in journal.orders()}
    assert submitted_order(rows["n"]) == order
    assert submitted_order(rows["o"]) is None
    journal.close()
