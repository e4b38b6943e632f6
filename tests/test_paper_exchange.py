"""Tests of the paper venue: unit tests of the matching rules and Hypothesis property tests."""

from __future__ import annotations

import threading
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal, localcontext

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from cryptoj.config import PaperConfig
from cryptoj.models.base import Message
from cryptoj.models.market import Quote
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
    OrderStatus,
    OrderType,
    Side,
    SubmitOrder,
)
from cryptoj.venues.paper import PaperExchange, fill_cash_delta

D = Decimal
Q8 = D("1e-8")
TAKER = D("0.006")
MAKER = D("0.004")


def make(
    cash: str = "100000", depth_levels: int = 5, *, deplete_book: bool = False
) -> tuple[PaperExchange, list[Message]]:
    ex = PaperExchange(
        starting_cash=D(cash),
        taker_fee=TAKER,
        maker_fee=MAKER,
        depth_levels=depth_levels,
        deplete_book=deplete_book,
    )
    events: list[Message] = []
    ex.set_listener(events.append)
    return ex, events


def quote(
    bid: str,
    ask: str,
    bid_size: str = "1",
    ask_size: str = "0.5",
    ts: int = 1,
    product: str = "BTC-USD",
) -> Quote:
    return Quote(
        ts=ts, product=product, bid=D(bid), ask=D(ask), bid_size=D(bid_size), ask_size=D(ask_size)
    )


def order(
    cid: str,
    side: Side,
    qty: str,
    limit: str | None = None,
    *,
    post_only: bool = False,
    product: str = "BTC-USD",
) -> SubmitOrder:
    return SubmitOrder(
        client_order_id=cid,
        product=product,
        side=side,
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        quantity=D(qty),
        limit_price=None if limit is None else D(limit),
        post_only=post_only,
    )


def trunc8(x: Decimal) -> Decimal:
    with localcontext(prec=80):
        return x.quantize(Q8, rounding=ROUND_DOWN)


def fills_of(events: list[Message]) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def closed_of(events: list[Message]) -> list[OrderClosed]:
    return [e for e in events if isinstance(e, OrderClosed)]


# ------------------------------------------------------------------------------- unit tests


def test_market_buy_within_top_size_fills_at_ask_with_taker_fee() -> None:
    ex, events = make()
    ex.on_quote(quote("10000", "10001", ask_size="0.5"))
    res = ex.submit(order("c1", Side.BUY, "0.3"), ts=5)
    assert isinstance(res, OrderAccepted) and res.venue_order_id == "paper-O00000001"
    [fill] = fills_of(events)
    assert fill.fill_id == "paper-F00000001" and fill.ts == 5
    assert fill.price == D("10001") and fill.quantity == D("0.3")
    assert fill.fee == D("3000.3") * TAKER == D("18.0018")
    assert fill.liquidity == "TAKER"
    assert ex.balances() == {"USD": D("100000") - D("3000.3") - D("18.0018"), "BTC": D("0.3")}
    assert ex.get_order("c1").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert ex.check_invariants() == []


def test_walk_into_level_1_and_2_matches_the_documented_example() -> None:
    ex, events = make()
    ex.on_quote(quote("10000", "10001", ask_size="0.5"))
    assert [p for p, _ in ex.levels("BTC-USD", Side.BUY)] == [
        D("10001"),
        D("10006.00025"),
        D("10011.0005"),
        D("10016.00075"),
        D("10021.001"),
    ]
    ex.submit(order("c1", Side.BUY, "1.2"), ts=2)
    fills = fills_of(events)
    assert [(f.quantity, f.price, f.fee) for f in fills] == [
        (D("0.5"), D("10001"), D("30.003")),
        (D("0.5"), D("10006.00025"), D("30.01800075")),
        (D("0.2"), D("10011.0005"), D("12.0132006")),
    ]
    o = ex.get_order("c1")
    assert o is not None and o.average_price == D("10004.7501875")
    assert D("100000") - ex.balances()["USD"] == D("12077.73442635")
    assert ex.balances()["BTC"] == D("1.2")
    assert ex.check_invariants() == []


def test_without_depletion_every_order_on_one_quote_gets_the_full_top() -> None:
    ex, events = make()
    ex.on_quote(quote("10000", "10001", ask_size="0.5"))
    ex.submit(order("c1", Side.BUY, "0.3"), ts=2)
    ex.submit(order("c2", Side.BUY, "0.5"), ts=3)
    assert [(f.quantity, f.price) for f in fills_of(events)] == [
        (D("0.3"), D("10001")),
        (D("0.5"), D("10001")),
    ]


def test_with_depletion_the_next_order_walks_on_where_the_last_stopped() -> None:
    ex, events = make(deplete_book=True)
    ex.on_quote(quote("10000", "10001", ask_size="0.5"))
    ex.submit(order("c1", Side.BUY, "0.3"), ts=2)
    assert ex.levels("BTC-USD", Side.BUY)[:2] == [
        (D("10001"), D("0.2")),
        (D("10006.00025"), D("0.5")),
    ]
    assert ex.levels("BTC-USD", Side.SELL)[0] == (D("10000"), D("1"))  # the other side is whole
    ex.submit(order("c2", Side.BUY, "0.9"), ts=3)
    # the two orders together filled exactly what one order of 1.2 fills (the documented walk)
    assert [(f.quantity, f.price) for f in fills_of(events)] == [
        (D("0.3"), D("10001")),
        (D("0.2"), D("10001")),
        (D("0.5"), D("10006.00025")),
        (D("0.2"), D("10011.0005")),
    ]
    ex.submit(order("c3", Side.BUY, "2"), ts=4)  # 1.3 left on the 5 levels, the rest expires
    assert ex.get_order("c3").filled_quantity == D("1.3")  # type: ignore[union-attr]
    assert ex.levels("BTC-USD", Side.BUY) == []
    ex.on_quote(quote("10000", "10001", ask_size="0.5", ts=5))  # the next quote restores the book
    assert ex.levels("BTC-USD", Side.BUY)[0] == (D("10001"), D("0.5"))
    assert ex.check_invariants() == []


def test_with_depletion_a_resting_order_filled_by_a_quote_uses_up_its_size() -> None:
    ex, events = make(deplete_book=True)
    ex.on_quote(quote("10000", "10010", ask_size="0.5"))
    ex.submit(order("lim", Side.BUY, "0.4", limit="10005"), ts=2)  # rests below the ask
    ex.on_quote(quote("9990", "10004", ask_size="0.5", ts=3))  # crosses it: maker fill of 0.4
    ex.submit(order("mkt", Side.BUY, "0.3"), ts=4)
    assert [(f.client_order_id, f.quantity, f.price) for f in fills_of(events)] == [
        ("lim", D("0.4"), D("10005")),
        ("mkt", D("0.1"), D("10004")),
        ("mkt", D("0.2"), D("10018")),  # level 1: the spread (14) sets the step
    ]
    assert ex.check_invariants() == []


def test_spread_sets_the_step_on_a_wide_book_and_sell_walks_down() -> None:
    ex, _ = make()
    ex.on_quote(quote("100", "102"))
    assert [p for p, _ in ex.levels("BTC-USD", Side.BUY)][:3] == [D(102), D(104), D(106)]
    assert [p for p, _ in ex.levels("BTC-USD", Side.SELL)][:3] == [D(100), D(98), D(96)]


def test_sell_levels_never_reach_zero() -> None:
    ex, _ = make(depth_levels=10)
    ex.on_quote(quote("1", "3"))  # step 2: 1, then -1 does not exist
    assert ex.levels("BTC-USD", Side.SELL) == [(D(1), D(1))]


def test_ioc_remainder_expires() -> None:
    ex, events = make()
    ex.on_quote(quote("10000", "10001", ask_size="0.5"))
    ex.submit(order("c1", Side.BUY, "3"), ts=2)
    [closed] = closed_of(events)
    assert closed.status is OrderStatus.EXPIRED and closed.filled_quantity == D("2.5")
    assert len(fills_of(events)) == 5 and ex.balances()["BTC"] == D("2.5")
    assert ex.open_orders() == []
    assert ex.check_invariants() == []


def test_market_order_on_an_empty_side_expires_unfilled() -> None:
    ex, events = make()
    ex.on_quote(quote("10000", "10001", ask_size="0"))
    assert isinstance(ex.submit(order("c1", Side.BUY, "1"), ts=2), OrderAccepted)
    assert closed_of(events) == [
        OrderClosed(
            ts=2,
            client_order_id="c1",
            product="BTC-USD",
            status=OrderStatus.EXPIRED,
            filled_quantity=D(0),
        )
    ]


def test_limit_order_rests_then_fills_as_maker_on_a_crossing_quote() -> None:
    ex, events = make()
    ex.on_quote(quote("100", "101"))
    res = ex.submit(order("b1", Side.BUY, "2", "99.5"), ts=2)
    assert isinstance(res, OrderAccepted) and events == []
    hold = D(2) * D("99.5") * (1 + MAKER)
    assert ex.held("USD") == hold and ex.available("USD") == D(100000) - hold
    [o] = ex.open_orders()
    assert o.status is OrderStatus.OPEN and o.held == hold

    ex.on_quote(quote("99", "99.8", ask_size="5", ts=3))  # not crossed yet
    assert events == []
    ex.on_quote(quote("99", "99.4", ask_size="0.5", ts=4))  # crossed: 0.5 fills at the limit
    [f1] = fills_of(events)
    assert (f1.quantity, f1.price, f1.liquidity, f1.ts) == (D("0.5"), D("99.5"), "MAKER", 4)
    assert f1.fee == trunc8(D("0.5") * D("99.5") * MAKER)
    assert ex.held("USD") == D("1.5") * D("99.5") * (1 + MAKER)
    ex.on_quote(quote("99", "99.5", ask_size="9", ts=5))  # ask == limit crosses too
    assert [type(e) for e in events] == [Fill, Fill, OrderClosed]
    assert closed_of(events)[0].status is OrderStatus.FILLED
    assert ex.held("USD") == 0 and ex.open_orders() == []
    assert ex.balances()["BTC"] == D(2)
    o2 = ex.get_order("b1")
    assert o2 is not None and o2.average_price == D("99.5") and len(o2.fills) == 2
    assert ex.check_invariants() == []


def test_resting_sell_fills_as_maker_and_priority_is_price_then_time() -> None:
    ex, events = make()
    ex.on_quote(quote("100", "101", ask_size="10"))
    ex.submit(order("buy", Side.BUY, "3"), ts=1)
    ex.submit(order("s1", Side.SELL, "1", "103"), ts=2)
    ex.submit(order("s2", Side.SELL, "1", "102"), ts=3)
    ex.submit(order("s3", Side.SELL, "1", "102"), ts=4)
    assert ex.held("BTC") == D(3) and ex.available("BTC") == 0
    assert isinstance(ex.submit(order("s4", Side.SELL, "0.1"), ts=5), OrderRejected)
    events.clear()
    ex.on_quote(quote("103", "104", bid_size="1.5", ts=6))
    assert [(f.client_order_id, f.quantity, f.price) for f in fills_of(events)] == [
        ("s2", D(1), D(102)),
        ("s3", D("0.5"), D(102)),
    ]
    assert ex.held("BTC") == D("1.5") and ex.check_invariants() == []


def test_crossing_limit_without_post_only_takes_then_rests() -> None:
    ex, events = make()
    ex.on_quote(quote("100", "101", ask_size="1"))
    # Levels 101, 102, 103, ...: a limit at 102 takes 2 (levels 0 and 1), rests 1.
    ex.submit(order("b1", Side.BUY, "3", "102"), ts=2)
    assert [(f.price, f.liquidity) for f in fills_of(events)] == [
        (D(101), "TAKER"),
        (D(102), "TAKER"),
    ]
    [o] = ex.open_orders()
    assert o.filled_quantity == D(2) and o.held == D(102) * (1 + MAKER)
    assert ex.check_invariants() == []


def test_post_only_cross_is_rejected() -> None:
    ex, events = make()
    ex.on_quote(quote("100", "101"))
    res = ex.submit(order("b1", Side.BUY, "1", "101", post_only=True), ts=2)
    assert isinstance(res, OrderRejected) and res.reason == "post-only order would cross"
    res = ex.submit(order("s1", Side.SELL, "1", "100", post_only=True), ts=2)
    assert isinstance(res, OrderRejected) and res.reason == "post-only order would cross"
    assert isinstance(
        ex.submit(order("b2", Side.BUY, "1", "100.5", post_only=True), ts=3), OrderAccepted
    )
    assert events == [] and ex.get_order("b1") is None


def test_insufficient_funds_rejected() -> None:
    ex, _ = make(cash="1000")
    ex.on_quote(quote("100", "101", ask_size="100"))
    # 10 @ 101 = 1010 > 1000.
    res = ex.submit(order("b1", Side.BUY, "10"), ts=2)
    assert isinstance(res, OrderRejected) and res.reason.startswith("insufficient funds")
    # The fee counts: 9.9 @ 101 = 999.9, + 0.6 % = 1005.9994 > 1000.
    assert isinstance(ex.submit(order("b2", Side.BUY, "9.9"), ts=2), OrderRejected)
    # A resting buy's hold counts against later orders.
    assert isinstance(ex.submit(order("b3", Side.BUY, "9", "100"), ts=3), OrderAccepted)
    assert isinstance(ex.submit(order("b4", Side.BUY, "1", "99"), ts=3), OrderRejected)
    assert ex.balances() == {"USD": D(1000)} and ex.check_invariants() == []


def test_sell_more_than_held_rejected() -> None:
    ex, _ = make()
    ex.on_quote(quote("100", "101", ask_size="10"))
    res = ex.submit(order("s0", Side.SELL, "0.1"), ts=1)
    assert isinstance(res, OrderRejected) and "insufficient funds" in res.reason
    ex.submit(order("b1", Side.BUY, "1"), ts=2)
    assert isinstance(ex.submit(order("s1", Side.SELL, "1.00000001"), ts=3), OrderRejected)
    assert isinstance(ex.submit(order("s2", Side.SELL, "1"), ts=4), OrderAccepted)
    assert ex.balances()["BTC"] == 0 and ex.check_invariants() == []


@pytest.mark.parametrize(
    ("submit", "reason"),
    [
        (order("x", Side.BUY, "1", product="ETH-USD"), "unknown product or no quote yet: ETH-USD"),
        (order("x", Side.BUY, "1", product="ETH-EUR"), "unsupported product"),
        (order("x", Side.BUY, "0"), "quantity must be positive"),
        (order("x", Side.BUY, "-1"), "quantity must be positive"),
        (order("x", Side.BUY, "NaN"), "quantity is not a finite number"),
        (order("x", Side.BUY, "Infinity"), "quantity is not a finite number"),
        (order("x", Side.BUY, "0.000000001"), "below the increment"),
        (order("x", Side.BUY, "1", "0"), "LIMIT order needs a positive limit price"),
        (order("x", Side.BUY, "1", "-5"), "LIMIT order needs a positive limit price"),
        (order("x", Side.BUY, "1", "NaN"), "LIMIT order needs a positive limit price"),
        (
            SubmitOrder(
                client_order_id="x",
                product="BTC-USD",
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                quantity=D(1),
            ),
            "LIMIT order needs a positive limit price",
        ),
        (order("x", Side.BUY, "1", post_only=True), "post-only requires a LIMIT order"),
        (order("", Side.BUY, "1"), "client_order_id is empty"),
    ],
)
def test_bad_orders_are_rejected_with_a_reason(submit: SubmitOrder, reason: str) -> None:
    ex, events = make()
    ex.on_quote(quote("100", "101"))
    res = ex.submit(submit, ts=9)
    assert isinstance(res, OrderRejected), res
    assert reason in res.reason and res.ts == 9 and res.product == submit.product
    assert events == [] and ex.balances() == {"USD": D(100000)}


def test_quantity_is_truncated_to_1e_8() -> None:
    ex, _ = make()
    ex.on_quote(quote("100", "101"))
    ex.submit(order("b", Side.BUY, "0.123456789"), ts=1)
    o = ex.get_order("b")
    assert o is not None and o.quantity == D("0.12345678") == o.filled_quantity


def test_cancel_releases_held_funds() -> None:
    ex, events = make()
    ex.on_quote(quote("100", "101", ask_size="10"))
    ex.submit(order("b0", Side.BUY, "2"), ts=1)
    ex.submit(order("b1", Side.BUY, "1", "90"), ts=2)
    ex.submit(order("s1", Side.SELL, "2", "110"), ts=3)
    assert ex.held("USD") > 0 and ex.held("BTC") == 2 and ex.available("BTC") == 0
    events.clear()
    assert ex.cancel("b1", ts=4) is True
    assert ex.held("USD") == 0
    assert ex.cancel("b1", ts=5) is False
    assert ex.cancel("nope", ts=5) is False
    assert ex.cancel_all(ts=6) == ["s1"]
    assert ex.held("BTC") == 0 and ex.available("BTC") == 2
    assert [(c.client_order_id, c.status, c.ts) for c in closed_of(events)] == [
        ("b1", OrderStatus.CANCELLED, 4),
        ("s1", OrderStatus.CANCELLED, 6),
    ]
    assert ex.cancel_all(ts=7) == [] and ex.check_invariants() == []


def test_duplicate_client_order_id_is_idempotent() -> None:
    ex, events = make()
    ex.on_quote(quote("100", "101", ask_size="10"))
    first = ex.submit(order("c1", Side.BUY, "1"), ts=1)
    balances, n_events = ex.balances(), len(events)
    again = ex.submit(order("c1", Side.BUY, "5"), ts=2)  # different body, same id
    assert again == first and ex.balances() == balances and len(events) == n_events
    rejected = ex.submit(order("c2", Side.SELL, "50"), ts=3)
    assert isinstance(rejected, OrderRejected)
    ex.submit(order("c3", Side.BUY, "60"), ts=4)  # now c2 would be affordable
    assert ex.submit(order("c2", Side.SELL, "50"), ts=5) == rejected
    assert ex.get_order("c2") is None


def test_listener_receives_fill_then_order_closed_after_state_update() -> None:
    ex = PaperExchange(starting_cash=D(1000), taker_fee=TAKER, maker_fee=MAKER)
    seen: list[tuple[Message, dict[str, Decimal], OrderStatus | None]] = []

    def listener(m: Message) -> None:
        # Re-entrant reads from the listener see the state already updated.
        o = ex.get_order("c1")
        seen.append((m, ex.balances(), o.status if o else None))

    ex.set_listener(listener)
    ex.on_quote(quote("100", "101"))
    ex.submit(order("c1", Side.BUY, "0.5"), ts=3)
    assert [type(m) for m, _, _ in seen] == [Fill, OrderClosed]
    assert seen[0][1]["BTC"] == D("0.5")
    assert seen[1][2] is OrderStatus.FILLED
    ex.set_listener(None)
    ex.submit(order("c2", Side.BUY, "0.5"), ts=4)
    assert len(seen) == 2


def test_listener_errors_are_counted_and_do_not_stop_delivery() -> None:
    ex = PaperExchange(starting_cash=D(1000), taker_fee=TAKER, maker_fee=MAKER)
    got: list[Message] = []

    def bad(m: Message) -> None:
        got.append(m)
        raise RuntimeError("consumer bug")

    ex.set_listener(bad)
    ex.on_quote(quote("100", "101"))
    assert isinstance(ex.submit(order("c1", Side.BUY, "0.5"), ts=3), OrderAccepted)
    assert len(got) == 2 and ex.listener_failures == 2
    assert isinstance(ex.last_listener_error, RuntimeError)
    assert ex.check_invariants() == []


def test_listener_may_submit_from_the_callback_and_order_is_preserved() -> None:
    ex, events = make()
    ex.on_quote(quote("100", "101", ask_size="10"))

    def chain(m: Message) -> None:
        events.append(m)
        if isinstance(m, OrderClosed) and m.client_order_id == "a":
            ex.submit(order("b", Side.SELL, "1"), ts=m.ts + 1)

    ex.set_listener(chain)
    ex.submit(order("a", Side.BUY, "1"), ts=1)
    assert [(type(e).__name__, getattr(e, "client_order_id", "")) for e in events] == [
        ("Fill", "a"),
        ("OrderClosed", "a"),
        ("Fill", "b"),
        ("OrderClosed", "b"),
    ]


def test_invalid_stale_and_unsupported_quotes_are_ignored() -> None:
    ex, _ = make()
    ex.on_quote(quote("100", "101", ts=10))
    for q in [
        quote("102", "101", ts=11),  # crossed
        quote("0", "101", ts=11),
        quote("100", "101", bid_size="-1", ts=11),
        quote("NaN", "101", ts=11),
        quote("99", "100", ts=9),  # stale
        quote("99", "100", ts=11, product="BTC-EUR"),
    ]:
        ex.on_quote(q)
    assert ex.ignored_quotes == 6
    assert ex.last_quote("BTC-USD") == quote("100", "101", ts=10)


def test_explicit_decimal_context_ignores_the_callers_context() -> None:
    ex1, ev1 = make()
    ex2, ev2 = make()
    for ex in (ex1, ex2):
        ex.on_quote(quote("10000.123", "10001.456", ask_size="0.7"))
    ex1.submit(order("c", Side.BUY, "1.23456789"), ts=1)
    with localcontext(prec=3, rounding=ROUND_CEILING):
        ex2.submit(order("c", Side.BUY, "1.23456789"), ts=1)
        assert ex2.balances() == ex1.balances()
    assert ev1 == ev2


def test_from_config_and_constructor_validation() -> None:
    ex = PaperExchange.from_config(PaperConfig(), id_prefix="p1")
    assert ex.balances() == {"USD": D(100000)}
    assert (ex.taker_fee, ex.maker_fee) == (D("0.006"), D("0.004"))
    ex.on_quote(quote("100", "101"))
    assert ex.submit(order("c", Side.BUY, "0.1"), ts=1) == OrderAccepted(
        ts=1, client_order_id="c", venue_order_id="p1-O00000001"
    )
    assert ex.fills_for("c")[0].fill_id == "p1-F00000001"
    with pytest.raises(ValueError):
        PaperExchange(starting_cash=D(-1), taker_fee=TAKER, maker_fee=MAKER)
    with pytest.raises(ValueError):
        PaperExchange(starting_cash=D(1), taker_fee=D(1), maker_fee=MAKER)
    with pytest.raises(ValueError):
        PaperExchange(starting_cash=D(1), taker_fee=TAKER, maker_fee=MAKER, depth_levels=0)


def test_concurrent_submitters_keep_the_invariants() -> None:
    ex, events = make(cash="50000")
    ex.on_quote(quote("100", "101", bid_size="3", ask_size="3"))
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(150):
                side = Side.BUY if (i + w) % 2 == 0 else Side.SELL
                limit = None if i % 3 else str(95 + (i % 10))
                ex.submit(order(f"w{w}-{i}", side, str(D(i % 7 + 1) / 4), limit), ts=i)
                if i % 5 == 0:
                    ex.on_quote(quote(str(95 + i % 9), str(96 + i % 9), "2", "2", ts=1 + i))
                if i % 11 == 0:
                    ex.cancel(f"w{w}-{i - 11}", ts=i)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ex.check_invariants() == []
    # Every Fill and OrderClosed reached the listener exactly once, closes after fills.
    assert [f.fill_id for f in fills_of(events)] == [f.fill_id for f in ex.all_fills()]
    closed = {c.client_order_id for c in closed_of(events)}
    assert len(closed) == len(closed_of(events))
    seen_closed: set[str] = set()
    for e in events:
        if isinstance(e, OrderClosed):
            seen_closed.add(e.client_order_id)
        elif isinstance(e, Fill):
            assert e.client_order_id not in seen_closed


# --------------------------------------------------------------------------- properties

money = st.decimals(min_value=D("0.01"), max_value=D(1000), places=2)


@given(
    remaining=st.integers(min_value=1, max_value=10**10),
    fill=st.integers(min_value=1, max_value=10**10),
    limit=st.decimals(min_value=D("0.00000001"), max_value=D(100000), places=8),
    maker=st.decimals(min_value=D(0), max_value=D("0.05"), places=5),
)
@settings(max_examples=300, deadline=None)
def test_a_resting_buys_hold_always_covers_its_maker_fill(
    remaining: int, fill: int, limit: Decimal, maker: Decimal
) -> None:
    """ceil(r_old·c) − ceil(r_new·c) >= truncated notional + truncated fee, c = L·(1 + m)."""
    fill = min(fill, remaining)
    r_old, f = D(remaining) * Q8, D(fill) * Q8
    with localcontext(prec=80):
        c = limit * (1 + maker)
        release = (r_old * c).quantize(Q8, rounding=ROUND_CEILING) - ((r_old - f) * c).quantize(
            Q8, rounding=ROUND_CEILING
        )
        n = trunc8(f * limit)
        assert release >= n + trunc8(n * maker)


class PaperExchangeMachine(RuleBasedStateMachine):
    """Random quotes, orders and cancels; the venue's books must always balance."""

    PRODUCTS = ("BTC-USD", "ETH-USD")
    START = D(20000)

    accepted = Bundle("accepted")

    DEPLETE = False

    def __init__(self) -> None:
        super().__init__()
        self.ex = PaperExchange(
            starting_cash=self.START,
            taker_fee=TAKER,
            maker_fee=MAKER,
            depth_levels=3,
            level_spacing_bps=D(5),
            id_prefix="pt",
            deplete_book=self.DEPLETE,
        )
        self.events: list[Message] = []
        self.ex.set_listener(self.events.append)
        self.ts = 0
        self.n = 0
        self.submitted: dict[str, SubmitOrder] = {}

    def next_ts(self) -> int:
        self.ts += 1
        return self.ts

    @initialize()
    def first_quotes(self) -> None:
        for p in self.PRODUCTS:
            self.ex.on_quote(quote("100", "100.5", "2", "2", ts=self.next_ts(), product=p))

    @rule(
        product=st.sampled_from(PRODUCTS),
        bid=money,
        spread=st.decimals(min_value=D(0), max_value=D(20), places=2),
        bid_size=st.decimals(min_value=D(0), max_value=D(5), places=4),
        ask_size=st.decimals(min_value=D(0), max_value=D(5), places=4),
    )
    def new_quote(
        self, product: str, bid: Decimal, spread: Decimal, bid_size: Decimal, ask_size: Decimal
    ) -> None:
        q = Quote(
            ts=self.next_ts(),
            product=product,
            bid=bid,
            ask=bid + spread,
            bid_size=bid_size,
            ask_size=ask_size,
        )
        self.ex.on_quote(q)

    @rule(
        target=accepted,
        product=st.sampled_from(PRODUCTS),
        side=st.sampled_from(Side),
        qty=st.decimals(min_value=D("0.0001"), max_value=D(8), places=4),
        limit_offset=st.none() | st.decimals(min_value=D("-0.05"), max_value=D("0.05"), places=3),
        post_only=st.booleans(),
        repeat=st.booleans(),
    )
    def submit(
        self,
        product: str,
        side: Side,
        qty: Decimal,
        limit_offset: Decimal | None,
        post_only: bool,
        repeat: bool,
    ) -> str:
        if repeat and self.submitted:
            cid = sorted(self.submitted)[self.n % len(self.submitted)]
            before = (self.ex.balances(), len(self.events), self.ex.get_order(cid))
            self.ex.submit(self.submitted[cid], ts=self.next_ts())
            assert before == (self.ex.balances(), len(self.events), self.ex.get_order(cid))
        self.n += 1
        cid = f"c{self.n}"
        top = self.ex.last_quote(product)
        assert top is not None
        limit = None
        if limit_offset is not None:
            limit = (top.mid * (1 + limit_offset)).quantize(D("0.01"))
        so = SubmitOrder(
            client_order_id=cid,
            product=product,
            side=side,
            order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
            quantity=qty,
            limit_price=limit,
            post_only=post_only and limit is not None,
        )
        self.submitted[cid] = so
        res = self.ex.submit(so, ts=self.next_ts())
        if isinstance(res, OrderRejected):
            assert self.ex.get_order(cid) is None
            if limit is not None and limit <= 0:
                assert "limit price" in res.reason
        return cid

    @precondition(lambda self: bool(self.ex.open_orders()))
    @rule(pick=st.integers(min_value=0, max_value=10**6))
    def cancel_random_open(self, pick: int) -> None:
        open_ = self.ex.open_orders()
        victim = open_[pick % len(open_)]
        held_before = self.ex.held(self.hold_ccy(victim.product, victim.side))
        assert self.ex.cancel(victim.client_order_id, ts=self.next_ts()) is True
        assert self.ex.held(self.hold_ccy(victim.product, victim.side)) == (
            held_before - victim.held
        )
        last = self.events[-1]
        assert isinstance(last, OrderClosed) and last.status is OrderStatus.CANCELLED

    @rule(cid=accepted)
    def cancel_any(self, cid: str) -> None:
        was_open = any(o.client_order_id == cid for o in self.ex.open_orders())
        assert self.ex.cancel(cid, ts=self.next_ts()) is was_open

    @staticmethod
    def hold_ccy(product: str, side: Side) -> str:
        return "USD" if side is Side.BUY else product.split("-")[0]

    # ---------------------------------------------------------------- invariants

    @invariant()
    def venue_self_check(self) -> None:
        assert self.ex.check_invariants() == []

    @invariant()
    def independent_recomputation_from_the_listener(self) -> None:
        cash = self.START
        base: dict[str, Decimal] = {}
        filled: dict[str, Decimal] = {}
        closed: dict[str, OrderClosed] = {}
        fill_ids: set[str] = set()
        for e in self.events:
            if isinstance(e, Fill):
                assert e.client_order_id not in closed, "fill after close"
                assert e.fill_id not in fill_ids
                fill_ids.add(e.fill_id)
                notional = trunc8(e.quantity * e.price)
                assert e.fee == trunc8(notional * (TAKER if e.liquidity == "TAKER" else MAKER))
                so = self.submitted[e.client_order_id]
                if e.liquidity == "MAKER" or so.order_type is OrderType.LIMIT:
                    assert so.limit_price is not None
                    if e.side is Side.BUY:
                        assert e.price <= so.limit_price
                    else:
                        assert e.price >= so.limit_price
                ccy = e.product.split("-")[0]
                if e.side is Side.BUY:
                    cash -= notional + e.fee
                    base[ccy] = base.get(ccy, D(0)) + e.quantity
                else:
                    cash += notional - e.fee
                    base[ccy] = base.get(ccy, D(0)) - e.quantity
                assert fill_cash_delta(e) == (
                    -(notional + e.fee) if e.side is Side.BUY else notional - e.fee
                )
                filled[e.client_order_id] = filled.get(e.client_order_id, D(0)) + e.quantity
            elif isinstance(e, OrderClosed):
                assert e.client_order_id not in closed
                closed[e.client_order_id] = e
                assert e.filled_quantity == filled.get(e.client_order_id, D(0))
        balances = self.ex.balances()
        assert balances["USD"] == cash
        for ccy, qty in base.items():
            assert balances[ccy] == qty
        for ccy, total in balances.items():
            assert total >= 0
            assert self.ex.available(ccy) >= 0

        # Filled never exceeds the (truncated) quantity.
        for cid, qty in filled.items():
            assert qty <= trunc8(self.submitted[cid].quantity)

        # Held funds recomputed from our own view of the open orders.
        held: dict[str, Decimal] = {}
        open_ids = set()
        for cid, so in self.submitted.items():
            o = self.ex.get_order(cid)
            if o is None or cid in closed:
                continue
            open_ids.add(cid)
            assert so.limit_price is not None and so.order_type is OrderType.LIMIT
            remaining = trunc8(so.quantity) - filled.get(cid, D(0))
            assert remaining > 0
            ccy = self.hold_ccy(so.product, so.side)
            if so.side is Side.BUY:
                need = (remaining * so.limit_price * (1 + MAKER)).quantize(
                    Q8, rounding=ROUND_CEILING
                )
            else:
                need = remaining
            held[ccy] = held.get(ccy, D(0)) + need
        assert open_ids == {o.client_order_id for o in self.ex.open_orders()}
        for ccy in set(held) | set(balances):
            assert self.ex.held(ccy) == held.get(ccy, D(0))
            assert balances.get(ccy, D(0)) - self.ex.available(ccy) == held.get(ccy, D(0))

        # Every accepted order that is not open was closed exactly once, in a terminal state.
        for cid in self.submitted:
            o = self.ex.get_order(cid)
            if o is not None and cid not in open_ids:
                assert cid in closed and closed[cid].status.terminal
                assert closed[cid].status is o.status
                if o.status is OrderStatus.FILLED:
                    assert o.filled_quantity == o.quantity


PaperExchangeMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPaperExchangeMachine = PaperExchangeMachine.TestCase


class DepletingPaperExchangeMachine(PaperExchangeMachine):
    """The same rules and invariants with ``deplete_book`` on."""

    DEPLETE = True


DepletingPaperExchangeMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDepletingPaperExchangeMachine = DepletingPaperExchangeMachine.TestCase
