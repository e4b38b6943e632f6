"""Order splitting (TWAP with a depth limit): the planner, the parent state machine, the
splitter's routing and the rebuild from the journal.

No actors and no threads: :mod:`cryptoj.execution` is driven directly. The properties run a
small scripted venue against :class:`OrderSplitter` with a real (in-memory) journal, written the
way the ExecutionActor writes it, and rebuild the parent from it after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.config import ExecutionConfig
from cryptoj.execution.parent import Actions, ParentOrder, ParentStatus
from cryptoj.execution.plan import ChildRecord, SplitPlan, child_id, child_index
from cryptoj.execution.records import (
    journal_cancel,
    journal_order,
    journal_plan,
    restore_parents,
    split_plans,
)
from cryptoj.execution.splitter import OrderSplitter
from cryptoj.execution.splitting import (
    BookView,
    ProductRules,
    SplitPolicy,
    Step,
    book_view,
    book_view_from_levels,
    depth_cap,
    min_child_quantity,
    next_child,
    should_split,
    simulate,
    visible_depth,
)
from cryptoj.journal import Journal
from cryptoj.models.market import Quote
from cryptoj.models.orders import (
    Fill,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    SubmitOrder,
    ceil_to,
    floor_to,
)

D = Decimal
S = 1_000_000_000
T0 = 1_700_000_000 * S
#: 4 slots of 30 s (the README's worked example), minimum child 10 USD.
POLICY = SplitPolicy(child_interval_ns=30 * S, max_duration_ns=120 * S)
RULES = ProductRules()


def order(
    quantity: str = "3",
    *,
    side: Side = Side.BUY,
    limit: str | None = None,
    coid: str = "cj-s-000001",
) -> SubmitOrder:
    return SubmitOrder(
        ts=T0,
        client_order_id=coid,
        product="BTC-USD",
        side=side,
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        quantity=D(quantity),
        limit_price=None if limit is None else D(limit),
        reason="target 0.1",
    )


def book(depth: str, price: str = "10001") -> BookView:
    return BookView(D(price), D(depth))


def closed(coid: str, status: OrderStatus, filled: str, ts: int = T0) -> OrderClosed:
    return OrderClosed(
        ts=ts, client_order_id=coid, product="BTC-USD", status=status, filled_quantity=D(filled)
    )


def fill(coid: str, fid: str, qty: str, price: str = "10001") -> Fill:
    return Fill(
        ts=T0,
        fill_id=fid,
        client_order_id=coid,
        product="BTC-USD",
        side=Side.BUY,
        quantity=D(qty),
        price=D(price),
        fee=D("0.1"),
        liquidity="TAKER",
    )


def rejected(coid: str, reason: str = "INSUFFICIENT_FUND") -> OrderRejected:
    return OrderRejected(ts=T0, client_order_id=coid, product="BTC-USD", reason=reason)


# -- the planner --------------------------------------------------------------------------------


def test_the_readme_worked_example() -> None:
    books = [book("2"), book("2"), book("6"), book("6")]
    assert simulate(D(3), books, POLICY, RULES) == [D("0.5"), D("0.5"), D(1), D(1)]
    # the same book all along: the cap binds every slot and 1 BTC is left at the deadline
    assert simulate(D(3), [book("2")], POLICY, RULES) == [D("0.5")] * 4


def test_an_order_is_split_only_when_larger_than_the_share_of_known_depth() -> None:
    assert should_split(D(3), book("2"), POLICY, RULES).split
    assert not should_split(D("0.5"), book("2"), POLICY, RULES).split  # = the cap
    unknown = should_split(D(3), None, POLICY, RULES)
    assert not unknown.split and "unknown" in unknown.why
    off = SplitPolicy(enabled=False, child_interval_ns=S, max_duration_ns=S)
    assert should_split(D(3), book("2"), off, RULES).why == "splitting disabled"
    # 15 USD cannot make two children of 10 USD
    small = should_split(D("0.0015"), book("0.001"), POLICY, RULES)
    assert not small.split and "two minimum children" in small.why
    # a limit order's minimum is priced at its limit: 0.0015 at 20,000 = 30 USD
    assert should_split(D("0.0015"), book("0.001"), POLICY, RULES, D(20_000)).split


def test_the_minimum_child_rounds_up_and_takes_the_largest_of_the_venue_rules() -> None:
    assert min_child_quantity(D(10_001), POLICY, RULES) == D("0.00099991")  # 10 USD, ceil
    rules = ProductRules(base_min_size=D("0.01"), quote_min_size=D(1))
    assert min_child_quantity(D(10_001), POLICY, rules) == D("0.01")
    rules = ProductRules(base_increment=D("0.001"), quote_min_size=D(50))
    assert min_child_quantity(D(10_000), POLICY, rules) == D("0.005")
    free = SplitPolicy(min_child_notional=D(0), child_interval_ns=S, max_duration_ns=S)
    assert min_child_quantity(D(10_000), free, RULES) == RULES.base_increment  # never zero
    with pytest.raises(ValueError, match="price: expected > 0"):
        min_child_quantity(D(0), POLICY, RULES)


def test_the_next_child_never_strands_a_remainder_below_the_minimum() -> None:
    m = min_child_quantity(D(10_001), POLICY, RULES)
    # the last slot takes everything it may
    plan = next_child(D(1), 1, book("6"), POLICY, RULES)
    assert (plan.step, plan.quantity) == (Step.SEND, D(1))
    # an even share that would leave less than m: the child absorbs the remainder
    plan = next_child(m + m / 2, 2, book("6"), POLICY, RULES)
    assert (plan.step, plan.quantity) == (Step.SEND, floor_to(m + m / 2, RULES.base_increment))
    # a share below the minimum is raised to it (merged with the next slots' shares)
    plan = next_child(3 * m, 10, book("6"), POLICY, RULES)
    assert (plan.step, plan.quantity, plan.why) == (Step.SEND, m, "raised to the minimum")
    # capped by depth, and leaving at least m behind
    plan = next_child(D(3), 2, book("2"), POLICY, RULES)
    assert (plan.step, plan.quantity) == (Step.SEND, D("0.5"))


def test_the_planner_waits_or_stops_when_no_valid_child_exists() -> None:
    m = min_child_quantity(D(10_001), POLICY, RULES)
    assert next_child(D(0), 3, book("1"), POLICY, RULES).step is Step.DONE
    assert next_child(D(1), 3, None, POLICY, RULES).step is Step.WAIT
    assert next_child(m / 2, 3, book("1"), POLICY, RULES).step is Step.STRANDED
    thin = book(str(m * 2))  # cap = m / 2 < m
    assert next_child(D(1), 3, thin, POLICY, RULES).step is Step.WAIT
    # m ≤ cap < R < 2m: any child within the cap strands a remainder below m
    tight = BookView(D(10_001), 4 * (m + 2 * RULES.base_increment))
    assert next_child(m + 5 * RULES.base_increment, 3, tight, POLICY, RULES).step is Step.WAIT


def test_book_views_read_the_side_the_order_takes_from() -> None:
    q = Quote(ts=T0, product="BTC-USD", bid=D(100), bid_size=D(3), ask=D(101), ask_size=D(2))
    assert book_view(q, Side.BUY) == BookView(D(101), D(2))
    assert book_view(q, Side.SELL) == BookView(D(100), D(3))
    assert book_view(None, Side.BUY) is None
    empty = Quote(ts=T0, product="BTC-USD", bid=D(100), bid_size=D(0), ask=D(101), ask_size=D(2))
    assert book_view(empty, Side.SELL) is None
    levels = [(D(101), D(2)), (D(102), D(2)), (D(103), D(2))]
    assert visible_depth(levels, 2) == D(4)
    assert book_view_from_levels(levels, 2) == BookView(D(101), D(4))
    assert book_view_from_levels([]) is None
    assert depth_cap(BookView(D(101), D("0.33333333")), POLICY, RULES) == D("0.08333333")
    assert floor_to(D("0.129"), D("0.05")) == D("0.10")
    assert ceil_to(D("0.101"), D("0.05")) == D("0.15")


def test_bad_parameters_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="base_increment: expected a value > 0"):
        ProductRules(base_increment=D(0))
    with pytest.raises(ValueError, match="quote_min_size: expected a value >= 0"):
        ProductRules(quote_min_size=D(-1))
    with pytest.raises(ValueError, match="max_depth_share: expected at most 1"):
        SplitPolicy(max_depth_share=D("1.5"))
    with pytest.raises(ValueError, match="max_duration_ns: expected at least child_interval_ns"):
        SplitPolicy(child_interval_ns=60 * S, max_duration_ns=30 * S)
    with pytest.raises(ValueError, match="max_consecutive_rejections"):
        SplitPolicy(max_consecutive_rejections=0)


def test_the_policy_of_the_default_config() -> None:
    p = SplitPolicy.from_config(ExecutionConfig())
    assert p == SplitPolicy()
    assert (p.max_depth_share, p.slots, p.min_child_notional) == (D("0.25"), 20, D(10))


# -- the parent ---------------------------------------------------------------------------------


def start(
    o: SubmitOrder, b: BookView | None, policy: SplitPolicy = POLICY
) -> tuple[ParentOrder, Actions]:
    parent = ParentOrder(SplitPlan(order=o, policy=policy, rules=RULES, start_ns=T0))
    return parent, parent.on_tick(T0, b)


def test_a_parent_runs_the_worked_example_and_reports_once() -> None:
    parent, a = start(order(), book("2"))
    assert [(c.client_order_id, c.quantity) for c in a.submit] == [("cj-s-000001-c1", D("0.5"))]
    assert a.submit[0].order_type is OrderType.MARKET and a.submit[0].side is Side.BUY
    out = parent.on_child_fill(fill("cj-s-000001-c1", "F1", "0.5", "10001"))
    assert out.fills[0].client_order_id == "cj-s-000001" and out.fills[0].fill_id == "F1"
    a = parent.on_child_closed(closed("cj-s-000001-c1", OrderStatus.FILLED, "0.5"), T0, book("2"))
    assert a.submit == () and a.wake_at_ns == T0 + 30 * S  # one child per slot
    sizes = []
    for k, depth in ((1, "2"), (2, "6"), (3, "6")):
        now = T0 + k * 30 * S
        (child,) = parent.on_tick(now, book(depth)).submit
        assert child.client_order_id == child_id("cj-s-000001", k + 1)
        sizes.append(child.quantity)
        parent.on_child_fill(fill(child.client_order_id, f"F{k + 1}", str(child.quantity), "10003"))
        a = parent.on_child_closed(
            closed(child.client_order_id, OrderStatus.FILLED, str(child.quantity)), now, None
        )
    assert sizes == [D("0.5"), D(1), D(1)]
    (report,) = a.reports
    assert report == closed("cj-s-000001", OrderStatus.FILLED, "3", T0 + 90 * S)
    assert parent.status is ParentStatus.FILLED
    assert parent.average_price == (D("0.5") * 10001 + D("2.5") * 10003) / 3
    assert parent.on_tick(T0 + 200 * S, book("6")) == Actions()  # finished: nothing more


def test_the_deadline_expires_a_parent_on_a_thin_book_with_the_filled_part() -> None:
    parent, a = start(order(), book("2"))
    for k in range(4):
        now = T0 + k * 30 * S
        if k:
            a = parent.on_tick(now, book("2"))
        (child,) = a.submit
        parent.on_child_closed(closed(child.client_order_id, OrderStatus.FILLED, "0.5"), now, None)
    a = parent.on_tick(T0 + 120 * S, book("2"))
    assert a.reports == (closed("cj-s-000001", OrderStatus.EXPIRED, "2.0", T0 + 120 * S),)


def test_cancelling_the_parent_cancels_the_open_child_and_sends_no_more() -> None:
    parent, a = start(order(limit="10000"), book("2"))
    (child,) = a.submit
    parent.on_child_accepted(child.client_order_id)
    a = parent.cancel(T0 + S)
    assert a.cancel == (child.client_order_id,) and a.reports == ()
    assert parent.cancel(T0 + 2 * S).cancel == ()  # asked once
    assert parent.on_tick(T0 + 30 * S, book("6")).submit == ()  # no new child
    parent.on_child_fill(fill(child.client_order_id, "F1", "0.2", "10000"))
    a = parent.on_child_closed(
        closed(child.client_order_id, OrderStatus.CANCELLED, "0.2"), T0 + 31 * S, book("6")
    )
    assert a.submit == ()
    assert a.reports == (closed("cj-s-000001", OrderStatus.CANCELLED, "0.2", T0 + 31 * S),)


def test_a_stale_limit_child_is_replaced_in_the_next_slot_without_stopping_the_parent() -> None:
    parent, a = start(order(limit="10000"), book("2"))
    (c1,) = a.submit
    parent.on_child_accepted(c1.client_order_id)
    a = parent.on_tick(T0 + 30 * S, book("2"))
    assert a.cancel == (c1.client_order_id,) and a.submit == ()
    parent.on_child_fill(fill(c1.client_order_id, "F1", "0.1", "10000"))
    a = parent.on_child_closed(
        closed(c1.client_order_id, OrderStatus.CANCELLED, "0.1"), T0 + 31 * S, book("2")
    )
    (c2,) = a.submit  # the slot is due: the replacement goes at once
    assert c2.client_order_id == "cj-s-000001-c2" and c2.limit_price == D(10_000)
    assert parent.status is ParentStatus.WORKING and parent.remaining == D("2.4")


def test_a_child_cancelled_by_someone_else_stops_the_parent() -> None:
    parent, a = start(order(limit="10000"), book("2"))
    (c1,) = a.submit
    a = parent.on_child_closed(
        closed(c1.client_order_id, OrderStatus.CANCELLED, "0"), T0 + S, book("2")
    )
    assert a.reports == (closed("cj-s-000001", OrderStatus.CANCELLED, "0", T0 + S),)


def test_consecutive_rejections_stop_the_parent_and_a_fill_turns_it_into_a_close() -> None:
    parent, a = start(order(), book("2"))
    for k in range(3):
        now = T0 + k * 30 * S
        if k:
            a = parent.on_tick(now, book("2"))
        (child,) = a.submit
        a = parent.on_child_rejected(rejected(child.client_order_id), now, book("2"))
        assert a.submit == ()  # retried in the next slot, not at once
    (report,) = a.reports
    assert isinstance(report, OrderRejected)
    assert report.reason == "3 children rejected in a row; last: INSUFFICIENT_FUND"

    parent, a = start(order(), book("2"))
    (c1,) = a.submit
    parent.on_child_closed(closed(c1.client_order_id, OrderStatus.FILLED, "0.5"), T0, None)
    statuses = []
    for k in range(1, 4):
        (child,) = parent.on_tick(T0 + k * 30 * S, book("2")).submit
        a = parent.on_child_rejected(rejected(child.client_order_id), T0 + k * 30 * S, None)
        statuses.append(parent.status)
    assert statuses == [ParentStatus.WORKING, ParentStatus.WORKING, ParentStatus.REJECTED]
    assert a.reports == (closed("cj-s-000001", OrderStatus.REJECTED, "0.5", T0 + 90 * S),)


def test_an_accepted_child_breaks_a_run_of_rejections() -> None:
    policy = SplitPolicy(
        child_interval_ns=30 * S, max_duration_ns=300 * S, max_consecutive_rejections=2
    )
    parent, a = start(order(), book("2"), policy)
    (c1,) = a.submit
    parent.on_child_rejected(rejected(c1.client_order_id), T0, None)
    (c2,) = parent.on_tick(T0 + 30 * S, book("2")).submit
    parent.on_child_closed(closed(c2.client_order_id, OrderStatus.EXPIRED, "0"), T0 + 30 * S, None)
    (c3,) = parent.on_tick(T0 + 60 * S, book("2")).submit
    a = parent.on_child_rejected(rejected(c3.client_order_id), T0 + 60 * S, None)
    assert a.reports == () and parent.status is ParentStatus.WORKING


def test_a_remainder_below_the_minimum_expires_the_parent() -> None:
    thin = book("0.02", "10000")  # cap 0.005, minimum child 10 USD = 0.001
    parent, a = start(order("0.003"), thin)
    sent = []
    for k, filled in ((0, "0.001"), (1, "0.0005"), (2, "0.0011")):
        now = T0 + k * 30 * S
        if k:
            a = parent.on_tick(now, thin)
        (c,) = a.submit
        sent.append(c.quantity)
        status = OrderStatus.FILLED if D(filled) == c.quantity else OrderStatus.EXPIRED
        a = parent.on_child_closed(closed(c.client_order_id, status, filled), now, thin)
    # raised to the minimum, kept a valid remainder, then absorbed the remainder
    assert sent == [D("0.001"), D("0.001"), D("0.0015")]
    assert parent.remaining == D("0.0004")  # below the minimum: it can never be sent
    a = parent.on_tick(T0 + 90 * S, thin)
    assert a.reports == (closed("cj-s-000001", OrderStatus.EXPIRED, "0.0026", T0 + 90 * S),)


def test_no_child_while_the_depth_is_unknown_and_its_share_moves_later() -> None:
    parent, a = start(order(), None)
    assert a.submit == () and a.wake_at_ns == T0 + 30 * S
    (c1,) = parent.on_tick(T0 + 30 * S, book("20")).submit
    assert c1.quantity == D(1)  # 3 over the 3 slots left


def test_reconciled_children_count_as_closes_or_rejections() -> None:
    parent, a = start(order(), book("2"))
    (c1,) = a.submit
    report = OrderStatusReport(
        ts=T0,
        client_order_id=c1.client_order_id,
        known=True,
        status=OrderStatus.OPEN,
        filled_quantity=D("0.1"),
    )
    assert parent.on_child_report(report, T0, book("2")).submit == ()
    assert parent.view().children[0].status is OrderStatus.OPEN
    done = OrderStatusReport(
        ts=T0,
        client_order_id=c1.client_order_id,
        known=True,
        status=OrderStatus.FILLED,
        filled_quantity=D("0.5"),
    )
    parent.on_child_report(done, T0, book("2"))
    (c2,) = parent.on_tick(T0 + 30 * S, book("2")).submit
    lost = OrderStatusReport(ts=T0, client_order_id=c2.client_order_id, known=False)
    parent.on_child_report(lost, T0 + 30 * S, book("2"))
    assert parent.view().children[1].status is OrderStatus.REJECTED
    assert parent.status_report(T0).filled_quantity == D("0.5")
    with pytest.raises(ValueError, match="not a child of"):
        parent.on_child_fill(fill("cj-s-000002-c1", "F9", "0.1"))


def test_child_ids_are_derived_from_the_parent_id() -> None:
    assert child_id("cj-s-000001", 12) == "cj-s-000001-c12"
    assert child_index("cj-s-000001", "cj-s-000001-c12") == 12
    assert child_index("cj-s-000001", "cj-s-000001-c0") is None
    assert child_index("cj-s-000001", "cj-s-000001-c01") is None
    assert child_index("cj-s-000001", "cj-s-000002-c1") is None
    assert child_index("cj-s-000001", "cj-s-000001-cx") is None


# -- the splitter and the journal -----------------------------------------------------------------


def test_the_splitter_routes_only_children_and_cancels_every_parent() -> None:
    splitter = OrderSplitter(POLICY)
    books = {("BTC-USD", Side.BUY): book("2"), ("BTC-USD", Side.SELL): book("2")}

    def source(product: str, side: Side) -> BookView | None:
        return books.get((product, side))

    assert splitter.decide(order(), book("2")).split
    odd = msgspec.structs.replace(order(), order_type="STOP_LIMIT")  # not split, whatever it is
    assert splitter.decide(odd, book("2")).why == "STOP_LIMIT orders are not split"
    assert not Actions() and Actions(wake_at_ns=T0)
    splitter.start(order(coid="p1"), book("2"), T0)
    splitter.start(order(coid="p2", side=Side.SELL, limit="10000"), book("2"), T0)
    with pytest.raises(ValueError, match="already a split parent"):
        splitter.start(order(coid="p1"), book("2"), T0)
    assert splitter.on_fill(fill("other", "F0", "1")) is None
    assert splitter.on_closed(closed("other", OrderStatus.FILLED, "1"), T0, source) is None
    assert splitter.on_rejected(rejected("p1"), T0, source) is None  # the parent is not a child
    assert not splitter.on_accepted(OrderAccepted(ts=T0, client_order_id="x", venue_order_id="v"))
    assert splitter.on_accepted(OrderAccepted(ts=T0, client_order_id="p2-c1", venue_order_id="v"))
    out = splitter.on_fill(fill("p1-c1", "F1", "0.5"))
    assert out is not None and out.fills[0].client_order_id == "p1"
    splitter.on_closed(closed("p1-c1", OrderStatus.FILLED, "0.5"), T0, source)
    a = splitter.on_tick(T0 + 30 * S, source)
    assert [c.client_order_id for c in a.submit] == ["p1-c2"] and a.cancel == ("p2-c1",)
    a = splitter.cancel_all(T0 + 31 * S)
    assert set(a.cancel) == {"p1-c2"}  # p2-c1's cancel was already asked for
    assert splitter.cancel("nope", T0) is None
    splitter.on_closed(closed("p1-c2", OrderStatus.CANCELLED, "0"), T0 + 32 * S, source)
    a = splitter.on_closed(closed("p2-c1", OrderStatus.CANCELLED, "0"), T0 + 32 * S, source)
    assert a is not None and a.reports[0].client_order_id == "p2"
    assert splitter.working() == []
    p1 = splitter.parent("p1")
    assert p1 is not None and p1.status is ParentStatus.CANCELLED
    assert splitter.owner("p1-c2") is p1


def test_the_journal_rebuilds_a_working_parent_and_skips_finished_ones(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    splitter = OrderSplitter(POLICY)
    for coid in ("p1", "p2"):
        o = order(coid=coid, limit="10000")
        journal_order(j, o)
        plan, a = splitter.start(o, book("2"), T0)
        journal_plan(j, plan, T0)
        for c in a.submit:
            journal_order(j, c)
    j.update_order("p1-c1", T0, status=OrderStatus.OPEN, filled_quantity=D("0.2"))
    journal_cancel(j, "p1", T0 + S)
    a = splitter.cancel("p1", T0 + S)
    assert a == Actions(cancel=("p1-c1",))
    journal_cancel(j, "p1-c1", T0 + S)  # each cancel the parent asks for is journalled
    j.update_order("p2", T0, status=OrderStatus.CANCELLED)  # p2 finished and reported
    assert set(split_plans(j)) == {"p1", "p2"}
    (rebuilt,) = restore_parents(j)
    live = splitter.parent("p1")
    assert live is not None and rebuilt.client_order_id == "p1"
    live.on_child_accepted("p1-c1")
    live.on_child_report(
        OrderStatusReport(
            ts=T0,
            client_order_id="p1-c1",
            known=True,
            status=OrderStatus.OPEN,
            filled_quantity=D("0.2"),
        ),
        T0 + S,
        None,
    )
    assert rebuilt.view() == live.view()
    assert rebuilt.view().cancel_requested and rebuilt.on_tick(T0 + 2 * S, book("2")).submit == ()
    j.close()


def test_a_restored_parent_is_left_alone_by_the_timer_until_released(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    first = OrderSplitter(POLICY)
    o = order(coid="p1", limit="10000")
    journal_order(j, o)
    plan, a = first.start(o, book("2"), T0)
    journal_plan(j, plan, T0)
    (child,) = a.submit
    journal_order(j, child)
    cid = child.client_order_id
    j.update_order(cid, T0, status=OrderStatus.FILLED, filled_quantity=child.quantity)
    splitter = OrderSplitter(POLICY)
    splitter.restore(restore_parents(j))
    later = T0 + POLICY.child_interval_ns  # the next slot
    assert splitter.on_tick(later, lambda p, s: book("2")) == Actions()  # held
    splitter.release(["p1"])
    (nxt,) = splitter.on_tick(later, lambda p, s: book("2")).submit
    assert nxt.client_order_id == "p1-c2" and nxt.quantity + child.quantity <= o.quantity
    j.close()


def test_a_plan_survives_its_json_form_and_bad_detail_is_named() -> None:
    plan = SplitPlan(order=order(limit="10000.5"), policy=POLICY, rules=RULES, start_ns=T0)
    assert SplitPlan.from_json(plan.to_json()) == plan
    with pytest.raises(ValueError, match="not a split plan"):
        SplitPlan.from_json('{"order": 1}')
    with pytest.raises(ValueError, match=r"not numbered 1\.\.n"):
        rec = ChildRecord(
            client_order_id="cj-s-000001-c2",
            quantity=D(1),
            status=OrderStatus.OPEN,
            filled_quantity=D(0),
            created_ts=T0,
        )
        ParentOrder.restore(plan, [rec])


# -- properties ---------------------------------------------------------------------------------

_sizes = st.decimals(D("0.001"), D(50), places=3)
depths = st.tuples(st.integers(1, 6), _sizes).map(lambda t: None if t[0] == 6 else t[1])
policies = st.builds(
    lambda share, interval, slots, notional, rejections: SplitPolicy(
        max_depth_share=share,
        child_interval_ns=interval * S,
        max_duration_ns=interval * slots * S,
        min_child_notional=notional,
        max_consecutive_rejections=rejections,
    ),
    st.decimals(D("0.05"), D(1), places=2),
    st.integers(1, 60),
    st.integers(1, 12),
    st.decimals(D(0), D(200), places=0),
    st.integers(1, 3),
)
rules_st = st.sampled_from(
    [
        ProductRules(),
        ProductRules(base_increment=D("0.0001"), base_min_size=D("0.001")),
        ProductRules(base_increment=D("0.01"), quote_min_size=D(1)),
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    quantity=st.decimals(D("0.001"), D(100), places=6),
    depth_path=st.lists(depths, min_size=1, max_size=12),
    policy=policies,
    rules=rules_st,
    price=st.decimals(D(1), D(50_000), places=2),
)
def test_children_respect_the_cap_and_the_minimum_and_never_exceed_the_parent(
    quantity: Decimal,
    depth_path: list[Decimal | None],
    policy: SplitPolicy,
    rules: ProductRules,
    price: Decimal,
) -> None:
    books = [None if d is None else BookView(price, d) for d in depth_path]
    children = simulate(quantity, books, policy, rules)
    target = floor_to(quantity, rules.base_increment)
    m = min_child_quantity(price, policy, rules)
    assert sum(children, D(0)) <= target
    left = target
    for q in children:
        assert q >= m and q % rules.base_increment == 0
        assert left - q == 0 or left - q >= m  # never strands a remainder
        left -= q
    # slot by slot: only known books send, and each child fits its slot's cap
    left, sent = target, iter(children)
    for k in range(policy.slots):
        b = books[min(k, len(books) - 1)]
        plan = next_child(left, policy.slots - k, b, policy, rules)
        if plan.step is Step.SEND:
            assert b is not None and plan.quantity <= depth_cap(b, policy, rules)
            assert plan.quantity == next(sent)
            left -= plan.quantity
        elif plan.step in (Step.DONE, Step.STRANDED):
            break
    assert next(sent, None) is None
    # a book that can take the whole order at once: the children sum exactly to it
    deep = BookView(price, target / policy.max_depth_share + 1)
    if target >= m:
        assert sum(simulate(quantity, [deep], policy, rules), D(0)) == target


@dataclass
class Venue:
    """A scripted venue and the ExecutionActor's journalling, around one OrderSplitter."""

    journal: Journal
    splitter: OrderSplitter
    outcomes: list[tuple[str, Decimal]]
    book_now: BookView | None = None
    now: int = T0
    caps: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # child → (cap, m)
    fills: list[Fill] = field(default_factory=list)  # as the venue produced them
    upstream: list[Fill] = field(default_factory=list)
    reports: list[OrderClosed | OrderRejected] = field(default_factory=list)
    resting: dict[str, Decimal] = field(default_factory=dict)  # open child → filled
    seq: int = 0

    def books(self, product: str, side: Side) -> BookView | None:
        return self.book_now

    def apply(self, a: Actions | None) -> None:
        """Carry out actions, then the venue events they cause, until quiet."""
        queue: list[OrderClosed | OrderRejected] = []
        while a is not None:
            for c in a.submit:
                queue.extend(self._submit(c))
            for cid in a.cancel:
                journal_cancel(self.journal, cid, self.now)
                if cid in self.resting:
                    filled = self.resting.pop(cid)
                    self.journal.update_order(cid, self.now, status=OrderStatus.CANCELLED)
                    queue.append(closed(cid, OrderStatus.CANCELLED, str(filled), self.now))
            self.upstream.extend(a.fills)
            for r in a.reports:
                status = OrderStatus.REJECTED if isinstance(r, OrderRejected) else r.status
                self.journal.update_order(r.client_order_id, self.now, status=status)
                self.reports.append(r)
            a = None
            if queue:
                msg = queue.pop(0)
                if isinstance(msg, OrderRejected):
                    a = self.splitter.on_rejected(msg, self.now, self.books)
                else:
                    a = self.splitter.on_closed(msg, self.now, self.books)
                assert a is not None

    def fill_resting(self, step: int) -> None:
        """Every fifth tick a later quote crosses the resting children: they fill in full."""
        if step % 5 != 4:
            return
        for cid, filled in list(self.resting.items()):
            row = self.journal.order(cid)
            assert row is not None
            total = D(row["quantity"])
            self._fill(cid, total - filled, total)
            del self.resting[cid]
            self.journal.update_order(cid, self.now, status=OrderStatus.FILLED)
            self.apply(
                self.splitter.on_closed(
                    closed(cid, OrderStatus.FILLED, str(total), self.now), self.now, self.books
                )
            )

    def _fill(self, cid: str, qty: Decimal, cumulative: Decimal) -> None:
        self.seq += 1
        f = fill(cid, f"F{self.seq}", str(qty))
        self.fills.append(f)
        self.journal.update_order(cid, self.now, filled_quantity=cumulative)
        out = self.splitter.on_fill(f)
        assert out is not None and out.fills == (as_parent(f, "p"),)
        self.upstream.extend(out.fills)

    def _submit(self, c: SubmitOrder) -> list[OrderClosed | OrderRejected]:
        assert self.book_now is not None
        policy, rules = self.splitter.policy, RULES
        price = c.limit_price if c.limit_price is not None else self.book_now.price
        self.caps[c.client_order_id] = (
            depth_cap(self.book_now, policy, rules),
            min_child_quantity(price, policy, rules),
        )
        assert journal_order(self.journal, c)  # journal first, a new id every time
        kind, share = self.outcomes.pop(0) if self.outcomes else ("fill", D(1))
        cid = c.client_order_id
        if kind == "reject":
            self.journal.update_order(cid, self.now, status=OrderStatus.REJECTED, reason="NOPE")
            return [rejected(cid, "NOPE")]
        self.journal.update_order(cid, self.now, status=OrderStatus.OPEN, venue_order_id="v")
        self.splitter.on_accepted(
            OrderAccepted(ts=self.now, client_order_id=cid, venue_order_id="v")
        )
        qty = floor_to(c.quantity * share, RULES.base_increment)
        if qty > 0:
            self._fill(cid, qty, qty)
        if kind == "rest" and c.order_type is OrderType.LIMIT and qty < c.quantity:
            self.resting[cid] = qty
            return []
        status = OrderStatus.FILLED if qty == c.quantity else OrderStatus.EXPIRED
        self.journal.update_order(cid, self.now, status=status)
        return [closed(cid, status, str(qty), self.now)]


def as_parent(f: Fill, parent: str) -> Fill:
    return Fill(
        ts=f.ts,
        fill_id=f.fill_id,
        client_order_id=parent,
        product=f.product,
        side=f.side,
        quantity=f.quantity,
        price=f.price,
        fee=f.fee,
        liquidity=f.liquidity,
    )


outcomes_st = st.lists(
    st.tuples(
        st.sampled_from(["fill", "reject", "rest", "rest"]),
        st.sampled_from([D(0), D("0.3"), D("0.5"), D(1), D(1)]),
    ),
    max_size=20,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    quantity=st.decimals(D("0.01"), D(20), places=4),
    limit=st.booleans(),
    depth_path=st.lists(depths, min_size=1, max_size=30),
    outcomes=outcomes_st,
    cancel_at=st.one_of(st.none(), st.integers(0, 29)),
)
def test_a_parent_keeps_its_invariants_and_rebuilds_identically_from_the_journal(
    quantity: Decimal,
    limit: bool,
    depth_path: list[Decimal | None],
    outcomes: list[tuple[str, Decimal]],
    cancel_at: int | None,
) -> None:
    policy = SplitPolicy(
        child_interval_ns=20 * S, max_duration_ns=200 * S, min_child_notional=D(10)
    )
    j = Journal(":memory:")
    venue = Venue(j, OrderSplitter(policy), list(outcomes))
    o = order(str(quantity), limit="10001" if limit else None, coid="p")
    journal_order(j, o)
    venue.book_now = None if depth_path[0] is None else book(str(depth_path[0]))
    plan, first = venue.splitter.start(o, venue.book_now, T0)
    journal_plan(j, plan, T0)
    venue.apply(first)
    parent = venue.splitter.parent("p")
    assert parent is not None
    cancelled_after = None
    for step in range(30):  # ticks every 10 s: 300 s, past the 200 s deadline
        venue.now = T0 + step * 10 * S
        d = depth_path[min(step, len(depth_path) - 1)]
        venue.book_now = None if d is None else book(str(d))
        venue.fill_resting(step)
        if step == cancel_at:
            to_cancel = {
                c.client_order_id
                for c in parent.view().children
                if c.status in (OrderStatus.PENDING, OrderStatus.OPEN) and not c.cancel_requested
            }
            journal_cancel(j, "p", venue.now)
            a = venue.splitter.cancel("p", venue.now)
            assert a is not None and set(a.cancel) == to_cancel and a.submit == ()
            cancelled_after = len(parent.child_ids())
            venue.apply(a)
        venue.apply(venue.splitter.on_tick(venue.now, venue.books))
        _check_rebuild(j, parent, venue)  # a restart could happen after any step
    if cancelled_after is not None:
        assert len(parent.child_ids()) == cancelled_after  # no child after the cancel
    # finished, reported exactly once, and the books add up
    assert parent.status.terminal and not parent.open_child_ids()
    (report,) = venue.reports
    view = parent.view()
    filled = sum((f.quantity for f in venue.fills), D(0))
    assert view.filled_quantity == filled == sum((c.filled_quantity for c in view.children), D(0))
    if isinstance(report, OrderClosed):
        assert report.filled_quantity == filled and report.status is view.status.order_status
    else:
        assert filled == 0 and view.status is ParentStatus.REJECTED
    assert filled <= plan.quantity
    assert (view.status is ParentStatus.FILLED) == (filled == plan.quantity)
    if view.status is ParentStatus.FILLED and all(
        c.status is OrderStatus.FILLED for c in view.children
    ):
        assert sum((c.quantity for c in view.children), D(0)) == plan.quantity
    # children: derived ids, within the cap and above the minimum at the time they were sent
    assert parent.child_ids() == tuple(f"p-c{n}" for n in range(1, len(view.children) + 1))
    for c in view.children:
        cap, m = venue.caps[c.client_order_id]
        assert m <= c.quantity <= cap
    # the portfolio sees every fill once, under the parent's id, with the venue's fill id
    assert [f.fill_id for f in venue.upstream] == [f.fill_id for f in venue.fills]
    assert {f.client_order_id for f in venue.upstream} <= {"p"}
    assert restore_parents(j) == []  # the parent's row is terminal: nothing to rebuild
    j.close()


def _check_rebuild(j: Journal, parent: ParentOrder, venue: Venue) -> None:
    """A restart now: the journal and the venue's fills give the same parent."""
    restored = restore_parents(j)
    if parent.status.terminal:
        assert restored == []
        return
    (rebuilt,) = restored
    for f in venue.fills:
        rebuilt.on_child_fill(f)
    assert rebuilt.view() == parent.view()
    # and it goes on exactly as the original would
    probe = venue.now + 10 * S
    assert rebuilt.on_tick(probe, venue.book_now) == _copy(parent).on_tick(probe, venue.book_now)


def _copy(parent: ParentOrder) -> ParentOrder:
    import copy

    return copy.deepcopy(parent)
