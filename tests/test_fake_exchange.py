"""The fake Coinbase exchange's engine (pure): money, matching, holds, idempotency, queries.

No sockets: a fixed clock, counting ids and hand-made books. Hypothesis drives random
sequences of creates, cancels and market steps and checks the bookkeeping invariants.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptoj.adapters.coinbase.fake import queries
from cryptoj.adapters.coinbase.fake.exchange import Book, Exchange
from cryptoj.adapters.coinbase.fake.orders import trunc8
from cryptoj.adapters.coinbase.fake.products import ProductSpec, default_specs

T0 = 1_700_000_000_000_000_000
BOOK: Book = (
    [(D("100"), D("1")), (D("99"), D("2"))],
    [(D("101"), D("1")), (D("102"), D("2.5"))],
)


def make(
    balances: dict[str, Any] | None = None, specs: dict[str, ProductSpec] | None = None
) -> Exchange:
    ids = itertools.count()
    clock = itertools.count(T0, 1_000_000)
    return Exchange(
        specs or default_specs(["BTC-USD", "ETH-USD"]),
        balances if balances is not None else {"USD": D("100000"), "BTC": D("10")},
        clock=lambda: next(clock),
        ids=lambda: f"id-{next(ids):04d}",
    )


def order(coid: str, side: str, config: dict[str, Any], product: str = "BTC-USD") -> dict[str, Any]:
    return {
        "client_order_id": coid,
        "product_id": product,
        "side": side,
        "order_configuration": config,
    }


def market(base: str | None = None, quote: str | None = None) -> dict[str, Any]:
    fields = {"base_size": base} if base is not None else {"quote_size": quote}
    return {"market_market_ioc": fields}


def limit(size: str, price: str, post_only: bool = False) -> dict[str, Any]:
    return {"limit_limit_gtc": {"base_size": size, "limit_price": price, "post_only": post_only}}


def stop(size: str, price: str, stop_price: str, direction: str) -> dict[str, Any]:
    return {
        "stop_limit_stop_limit_gtc": {
            "base_size": size,
            "limit_price": price,
            "stop_price": stop_price,
            "stop_direction": f"STOP_DIRECTION_STOP_{direction}",
        }
    }


def books(book: Book = BOOK) -> Callable[[str], Book]:
    return lambda _p: book


def statuses(ex: Exchange, order_id: str) -> list[str]:
    return [json.loads(e.payload)["status"] for e in ex.events if e.order_id == order_id]


# -- market orders ---------------------------------------------------------------------------


def test_market_buy_by_base_walks_the_asks_and_pays_notional_plus_fee() -> None:
    ex = make()
    r = ex.create(order("a", "BUY", market(base="2")), books())
    assert r["success"] is True and r["success_response"]["client_order_id"] == "a"
    o = ex.orders[r["order_id"]]
    assert [(f.price, f.size, f.liquidity) for f in o.fills] == [
        (D("101"), D("1"), "TAKER"),
        (D("102"), D("1"), "TAKER"),
    ]
    assert o.status == "FILLED" and o.filled_value == D("203")
    assert o.total_fees == D("0.606") + D("0.612")
    assert ex.totals["USD"] == D("100000") - D("203") - D("1.218")
    assert ex.totals["BTC"] == D("12")
    assert o.to_json("u", "p")["average_filled_price"] == "101.5"
    assert statuses(ex, o.order_id) == ["PENDING", "OPEN", "OPEN", "OPEN", "FILLED"]


def test_quote_sized_buy_keeps_the_fee_inside_the_quote_amount() -> None:
    ex = make()
    r = ex.create(order("q", "BUY", market(quote="50")), books())
    o = ex.orders[r["order_id"]]
    assert o.status == "FILLED" and len(o.fills) == 1
    f = o.fills[0]
    # Coinbase's split (recorded order): value = 50 / 1.006 truncated to 16 decimals, fee the
    # rest; the base size value / 101 truncated to 16 decimals, not to the base increment
    assert f.notional == D("49.7017892644135188") and f.commission == D("0.2982107355864812")
    assert f.size == D("0.4920969234100348")
    assert o.value_after_fees() == D("50")  # exactly the quote size
    assert ex.totals["USD"] == D("100000") - D("50")
    assert ex.totals["BTC"] == D("10") + f.size
    body = o.to_json("u", "p")
    assert body["size_in_quote"] is True and body["size_inclusive_of_fees"] is True
    assert body["completion_percentage"] == "100"
    assert (body["filled_value"], body["total_fees"], body["total_value_after_fees"]) == (
        "49.7017892644135188",
        "0.2982107355864812",
        "50",
    )
    wire = f.to_json("u")  # a quote-sized order's fill reports its size in the quote currency
    assert wire["size_in_quote"] is True and wire["size"] == "49.7017892644135188"


def test_quote_sized_buy_reproduces_the_recorded_coinbase_split() -> None:
    # list_orders_market_buy_quote_size_filled_BTC-USDT.json: quote_size 6.36 at a 0.6 % taker
    # fee → filled_value 6.3220675944333996, total_fees 0.0379324055666004; and the recorded
    # fill of that order (list_fills_quote_size_buy_BTC-USDT.json): size (quote)
    # 0.0046830664333996 + commission 0.0000280983986004 = a spend of 0.004711164832
    from cryptoj.adapters.coinbase.fake.exchange import split_spend

    assert split_spend(D("6.36"), D("0.006")) == (D("6.3220675944333996"), D("0.0379324055666004"))
    assert split_spend(D("0.004711164832"), D("0.006")) == (
        D("0.0046830664333996"),
        D("0.0000280983986004"),
    )


def test_quote_sized_buy_across_levels_spends_exactly_the_quote_size() -> None:
    ex = make()
    o = ex.orders[ex.create(order("q2", "BUY", market(quote="200")), books())["order_id"]]
    assert o.status == "FILLED" and [(f.price, f.liquidity) for f in o.fills] == [
        (D("101"), "TAKER"),
        (D("102"), "TAKER"),
    ]
    first = o.fills[0]
    assert (first.size, first.notional, first.commission) == (D("1"), D("101"), D("0.606"))
    assert o.value_after_fees() == D("200") and ex.totals["USD"] == D("100000") - D("200")


def test_ioc_remainder_ends_cancelled_or_expired() -> None:
    ex = make()
    short = ex.orders[ex.create(order("s", "BUY", market(base="5")), books())["order_id"]]
    assert short.status == "CANCELLED" and short.filled_size == D("3.5")
    empty: Book = ([(D("100"), D("1"))], [])
    none = ex.orders[ex.create(order("n", "BUY", market(base="1")), books(empty))["order_id"]]
    assert none.status == "EXPIRED" and none.filled_size == 0 and not none.fills
    quote = ex.orders[ex.create(order("qq", "BUY", market(quote="1000")), books())["order_id"]]
    assert quote.status == "CANCELLED" and quote.filled_size == D("3.5")


def test_market_sell_yields_notional_minus_fee() -> None:
    ex = make()
    o = ex.orders[ex.create(order("s", "SELL", market(base="1.5")), books())["order_id"]]
    assert [(f.price, f.size) for f in o.fills] == [(D("100"), D("1")), (D("99"), D("0.5"))]
    assert ex.totals["USD"] == D("100000") + D("149.5") - D("0.897")
    assert ex.totals["BTC"] == D("8.5")
    assert o.value_after_fees() == D("149.5") - D("0.897")


# -- limit and stop-limit orders ---------------------------------------------------------------


def test_limit_takes_crossing_levels_then_rests_and_fills_as_maker_later() -> None:
    ex = make()
    o = ex.orders[ex.create(order("l", "BUY", limit("3", "101.50")), books())["order_id"]]
    assert o.status == "OPEN" and o.filled_size == D("1")  # the 101 level, as taker
    assert o.fills[0].liquidity == "TAKER"
    assert o.hold == D("203") + trunc8(D("203") * D("0.006"))  # 2 left at 101.50
    assert ex.available("USD") == ex.totals["USD"] - o.hold
    ex.on_market("BTC-USD", ([(D("100"), D("1"))], [(D("101.4"), D("0.5"))]), [])
    assert o.filled_size == D("1.5") and o.fills[-1].liquidity == "MAKER"
    assert o.fills[-1].price == D("101.50")
    assert o.fills[-1].commission == trunc8(D("50.75") * D("0.004"))
    ex.on_market("BTC-USD", ([(D("100"), D("1"))], [(D("101"), D("9"))]), [])
    assert o.status == "FILLED" and o.hold == 0 and ex.held["USD"] == 0
    assert ex.invariant_violations() == []


def test_post_only_that_would_cross_is_refused_and_one_that_rests_is_not() -> None:
    ex = make()
    r = ex.create(order("p", "BUY", limit("1", "101", post_only=True)), books())
    assert r["success"] is False
    assert r["error_response"]["new_order_failure_reason"] == "INVALID_LIMIT_PRICE_POST_ONLY"
    assert not ex.orders
    r = ex.create(order("p2", "SELL", limit("1", "101", post_only=True)), books())
    assert r["success"] is True and ex.orders[r["order_id"]].status == "OPEN"
    assert ex.held["BTC"] == D("1") and ex.available("BTC") == D("9")


def test_stop_limit_triggers_on_the_last_trade_price() -> None:
    ex = make()
    o = ex.orders[
        ex.create(order("st", "SELL", stop("1", "95", "98", "DOWN")), books())["order_id"]
    ]
    assert o.status == "OPEN" and o.to_json("u", "p")["trigger_status"] == "STOP_PENDING"
    ex.on_market("BTC-USD", BOOK, [D("99"), D("98.5")])
    assert not o.triggered
    ex.on_market("BTC-USD", BOOK, [D("99"), D("97.99")])
    assert o.triggered and o.status == "FILLED"  # the bids at 100 and 99 are above 95
    assert [f.price for f in o.fills] == [D("100")] and o.fills[0].liquidity == "TAKER"
    up = ex.orders[ex.create(order("su", "BUY", stop("1", "99", "105", "UP")), books())["order_id"]]
    ex.on_market("BTC-USD", BOOK, [D("105")])
    assert (
        up.triggered and up.status == "OPEN" and up.to_user()["trigger_status"] == "STOP_TRIGGERED"
    )


# -- idempotency, cancel, validation -----------------------------------------------------------


def test_a_repeated_client_order_id_returns_the_original_and_creates_nothing() -> None:
    ex = make()
    first = ex.create(order("same", "BUY", limit("1", "90")), books())
    again = ex.create(order("same", "SELL", market(base="3"), "ETH-USD"), books())
    assert again == first and len(ex.orders) == 1
    assert ex.create_requests["same"] == 2
    assert queries.summary(ex)["orders_per_client_order_id"] == {"same": 1}


def test_a_rejected_create_reserves_nothing_so_a_retry_can_succeed() -> None:
    ex = make({"USD": D("50")})
    assert ex.create(order("r", "BUY", limit("1", "90")), books())["success"] is False
    ex.totals["USD"] = D("500")
    assert ex.create(order("r", "BUY", limit("1", "90")), books())["success"] is True


def test_cancel_results_per_order() -> None:
    ex = make()
    resting = ex.create(order("a", "BUY", limit("1", "90")), books())["order_id"]
    filled = ex.create(order("b", "BUY", market(base="0.5")), books())["order_id"]
    out = ex.cancel([resting, filled, "nope", resting])
    assert out == [
        {"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": resting},
        {"success": False, "failure_reason": "ORDER_IS_FULLY_FILLED", "order_id": filled},
        {"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": "nope"},
        {"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": resting},
    ]
    assert ex.orders[resting].status == "CANCELLED" and ex.held["USD"] == 0
    assert statuses(ex, resting) == ["PENDING", "OPEN", "CANCELLED"]


TIGHT = {"BTC-USD": ProductSpec("BTC-USD", base_min_size=D("0.001"), base_max_size=D("10"))}
CFG, UNK = "UNSUPPORTED_ORDER_CONFIGURATION", "UNKNOWN_FAILURE_REASON"
SMALL_B, SMALL_Q = "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"


def x(side: str, config: dict[str, Any], product: str = "BTC-USD") -> dict[str, Any]:
    return order("x", side, config, product)


@pytest.mark.parametrize(
    ("body", "error", "new_order_reason"),
    [
        ("not a dict", "INVALID_ARGUMENT", UNK),
        (order("", "BUY", market(base="1")), "INVALID_ARGUMENT", UNK),
        (x("BUY", market(base="1"), "DOGE-USD"), "INVALID_PRODUCT_ID", None),
        (x("HOLD", market(base="1")), "INVALID_SIDE", None),
        (x("BUY", {}), CFG, None),
        (x("BUY", {"twap": {}}), CFG, None),
        (x("BUY", {**market(base="1"), **limit("1", "1")}), CFG, None),
        (x("SELL", market(quote="10")), CFG, None),
        (x("BUY", stop("1", "90", "91", "SIDEWAYS")), CFG, None),
        (x("BUY", market(base="0.0005")), SMALL_B, UNK),
        (x("BUY", market(base="11")), "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE", UNK),
        (x("BUY", market(base="0.000000001")), "INVALID_SIZE_PRECISION", None),
        (x("BUY", market(base="-1")), "INVALID_SIZE_PRECISION", None),
        (x("BUY", market(base="NaN")), "INVALID_SIZE_PRECISION", None),
        (x("BUY", {"market_market_ioc": {"base_size": 1}}), "INVALID_SIZE_PRECISION", None),
        (x("BUY", market(quote="10.001")), "INVALID_SIZE_PRECISION", None),
        (x("BUY", market(quote="0.5")), SMALL_Q, UNK),
        (x("BUY", limit("1", "90.001")), "INVALID_PRICE_PRECISION", None),
        (x("BUY", limit("1", "0")), "INVALID_LIMIT_PRICE", None),
        (x("BUY", limit("0.001", "90")), SMALL_Q, UNK),
        (x("SELL", limit("5", "90")), None, None),  # exactly the balance: accepted
        (x("BUY", limit("5", "200000")), "INSUFFICIENT_FUND", None),
        (x("SELL", limit("5.1", "90")), "INSUFFICIENT_FUND", None),
        (x("SELL", market(base="6")), "INSUFFICIENT_FUND", None),
        (x("BUY", market(quote="100000.01")), "INSUFFICIENT_FUND", None),
    ],
)
def test_bad_input_is_a_clear_success_false(
    body: Any, error: str | None, new_order_reason: str | None
) -> None:
    ex = make({"USD": D("100000"), "BTC": D("5")}, TIGHT)
    r = ex.create(body, books())
    if error is None:
        assert r["success"] is True
        return
    assert r["success"] is False and r["order_id"] == ""
    e = r["error_response"]
    assert e["error"] == error and e["message"]
    assert e["new_order_failure_reason"] == (new_order_reason or error)
    assert not ex.orders and ex.invariant_violations() == []


# -- user events and queries -----------------------------------------------------------------


def test_user_events_are_cumulative_and_replay_covers_open_and_recent_orders() -> None:
    ex = make()
    a = ex.create(order("a", "BUY", market(base="2")), books())["order_id"]
    b = ex.create(order("b", "BUY", limit("1", "50")), books())["order_id"]
    c = ex.create(order("c", "BUY", market(base="0.1")), books())["order_id"]
    cumulative = [
        D(json.loads(e.payload)["cumulative_quantity"]) for e in ex.events if e.order_id == a
    ]
    assert cumulative == sorted(cumulative) and cumulative[-1] == D("2")
    first = json.loads(ex.events[0].payload)
    assert first["status"] == "PENDING" and first["leaves_quantity"] == "2"
    assert first["post_only"] == "false" and first["order_type"] == "Market"
    assert [e.no for e in ex.take_new_events()] == [e.no for e in ex.events]
    assert ex.take_new_events() == []
    assert {e.order_id for e in ex.replay_events(recent=1)} == {b, c}
    assert {e.order_id for e in ex.replay_events(recent=0)} == {b}


def test_list_orders_pages_are_stable_when_orders_arrive_between_pages() -> None:
    ex = make()
    ids = [
        ex.create(order(f"o{i}", "BUY", limit("1", "50")), books())["order_id"] for i in range(7)
    ]
    page1 = queries.list_orders(ex, {"limit": ["3"]})
    assert [o["order_id"] for o in page1["orders"]] == ids[6:3:-1] and page1["has_next"] is True
    ex.create(order("late", "BUY", limit("1", "50")), books())
    page2 = queries.list_orders(ex, {"limit": ["3"], "cursor": [page1["cursor"]]})
    page3 = queries.list_orders(ex, {"limit": ["3"], "cursor": [page2["cursor"]]})
    assert [o["order_id"] for o in page2["orders"] + page3["orders"]] == ids[3::-1]
    assert page3["has_next"] is False and page3["cursor"] == ""
    ex.cancel(ids[:2])
    open_ = queries.list_orders(ex, {"order_status": ["OPEN"], "product_ids": ["BTC-USD"]})
    assert len(open_["orders"]) == 6
    picked = queries.list_orders(ex, {"order_ids": [ids[0], ids[5]], "order_side": ["BUY"]})
    assert {o["order_id"] for o in picked["orders"]} == {ids[0], ids[5]}
    for bad in (
        {"order_status": ["DONE"]},
        {"limit": ["x"]},
        {"cursor": ["zz"]},
        {"start_date": ["yesterday"]},
    ):
        with pytest.raises(queries.BadRequest):
            queries.list_orders(ex, bad)


def test_list_fills_and_accounts_paginate_to_the_end() -> None:
    ex = make()
    for i in range(3):
        ex.create(order(f"m{i}", "BUY", market(base="2")), books())  # 2 fills each
    seen, cursor = [], ""
    for _ in range(10):
        page = queries.list_fills(ex, {"limit": ["4"], "cursor": [cursor]})
        assert "has_next" not in page
        seen += [f["trade_id"] for f in page["fills"]]
        cursor = page["cursor"]
        if not cursor:
            break
    assert seen == [f.trade_id for f in reversed(ex.fills)] and len(seen) == 6
    one = queries.list_fills(ex, {"order_ids": [ex.fills[0].order_id]})
    assert len(one["fills"]) == 2 and one["cursor"] == ""
    p1 = queries.accounts(ex, {"limit": ["2"]}, T0)
    p2 = queries.accounts(ex, {"limit": ["2"], "cursor": [p1["cursor"]]}, T0)
    assert (p1["size"], p1["has_next"], p2["size"], p2["has_next"], p2["cursor"]) == (
        2,
        True,
        1,
        False,
        "",
    )
    assert [a["currency"] for a in p1["accounts"] + p2["accounts"]] == ["BTC", "ETH", "USD"]


# -- properties --------------------------------------------------------------------------------

prices = st.integers(9000, 11000).map(lambda c: D(c) / 100)
sizes = st.integers(1, 400).map(lambda n: D(n) / 100)


@st.composite
def books_st(draw: st.DrawFn) -> Book:
    mid = draw(st.integers(9500, 10500))
    spread = draw(st.integers(1, 50))
    bids = [(D(mid - i * 7) / 100, draw(sizes)) for i in range(draw(st.integers(0, 4)))]
    asks = [(D(mid + spread + i * 7) / 100, draw(sizes)) for i in range(draw(st.integers(0, 4)))]
    return bids, asks


@st.composite
def create_st(draw: st.DrawFn) -> dict[str, Any]:
    side = draw(st.sampled_from(["BUY", "SELL"]))
    kind = draw(st.sampled_from(["market", "quote", "limit", "stop"]))
    size = str(draw(sizes))
    if kind == "market":
        config = market(base=size)
    elif kind == "quote":
        config = (
            market(quote=str(draw(st.integers(1, 500)))) if side == "BUY" else market(base=size)
        )
    elif kind == "limit":
        config = limit(size, str(draw(prices)), draw(st.booleans()))
    else:
        config = stop(
            size, str(draw(prices)), str(draw(prices)), draw(st.sampled_from(["UP", "DOWN"]))
        )
    return order(f"c{draw(st.integers(0, 30))}", side, config)


ops = st.one_of(
    st.tuples(st.just("create"), create_st(), books_st()),
    st.tuples(st.just("create"), create_st(), books_st()),
    st.tuples(st.just("cancel"), st.integers(0, 40), st.none()),
    st.tuples(st.just("step"), st.lists(prices, max_size=3), books_st()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(ops, min_size=10, max_size=40),
    st.sampled_from([0, 40, 1000, 100000]),
    st.sampled_from([0, 1, 30]),
)
def test_balances_never_go_negative_holds_add_up_and_money_is_conserved(
    script: list[tuple[str, Any, Any]], usd: int, btc: int
) -> None:
    start = {"USD": D(usd), "BTC": D(btc)}
    ex = make(dict(start))
    answers: dict[str, dict[str, Any]] = {}
    for op, a, b in script:
        if op == "create":
            before = len(ex.orders)
            r = ex.create(a, books(b))
            coid = a["client_order_id"]
            if coid in answers and answers[coid]["success"]:
                assert r == answers[coid] and len(ex.orders) == before  # idempotent
            if r["success"]:
                answers.setdefault(coid, r)
        elif op == "cancel" and ex.order_list:
            ex.cancel([ex.order_list[a % len(ex.order_list)].order_id])
        elif op == "step":
            ex.on_market("BTC-USD", b, a)
        assert ex.invariant_violations() == []
    usd_flow = sum(
        (
            -(f.notional + f.commission) if f.side == "BUY" else f.notional - f.commission
            for f in ex.fills
        ),
        D(0),
    )
    btc_flow = sum((f.size if f.side == "BUY" else -f.size for f in ex.fills), D(0))
    assert ex.totals["USD"] == start["USD"] + usd_flow
    assert ex.totals["BTC"] == start["BTC"] + btc_flow
    for o in ex.order_list:
        assert o.filled_value == sum((f.notional for f in o.fills), D(0))
        assert o.total_fees == sum((f.commission for f in o.fills), D(0))
        if o.base_size is not None:
            assert o.filled_size <= o.base_size
        if o.quote_size is not None:
            assert o.value_after_fees() <= o.quote_size
        assert (o.status == "OPEN") == (o.order_id in ex.open["BTC-USD"])
    assert len({o.client_order_id for o in ex.order_list}) == len(ex.order_list)
