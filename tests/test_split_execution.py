"""Order splitting wired into the ExecutionActor, on the paper venue under the deterministic
runtime (virtual time): one parent upstream, children over time within the depth cap, cancel,
a crash and restart in the middle of a split, and orders that must go whole."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec

from cryptoj.actors.execution import ExecutionActor
from cryptoj.contract import Actor, Context
from cryptoj.execution.driver import SPLIT_TIMER as SPLIT
from cryptoj.execution.plan import SplitPlan, child_id
from cryptoj.execution.records import (
    CANCEL_EVENT,
    PLAN_EVENT,
    child_fill_ids,
    journal_child_fill,
    journal_order,
    journal_plan,
    parent_of,
    split_children,
)
from cryptoj.execution.splitting import ProductRules, SplitPolicy
from cryptoj.journal import Journal
from cryptoj.models.base import Message
from cryptoj.models.market import FeedStatus, Quote
from cryptoj.models.orders import (
    CancelOrder,
    Fill,
    OrderClosed,
    OrderStatus,
    OrderStatusReport,
    OrderStatusRequest,
    OrderType,
    Side,
    SubmitOrder,
)
from cryptoj.models.system import Tick
from cryptoj.runtime.common import ChaosPlan, Registered, flatten_tree
from cryptoj.runtime.deterministic import DeterministicRuntime
from cryptoj.summary import books_summary
from cryptoj.supervision.spec import ChildSpec, Strategy, SupervisorSpec
from cryptoj.venues.paper import PaperExchange
from tests.stubs import FakeCtx

T0 = 1_600_000_000_000_000_000
S = 1_000_000_000
D = Decimal
P = "cj-big"
#: The README's worked example: 4 slots of 30 s, a quarter of the visible size per child.
POLICY = SplitPolicy(max_depth_share=D("0.25"), child_interval_ns=30 * S, max_duration_ns=120 * S)


def book(ask_size: str, ts: int = T0) -> Quote:
    return Quote(
        ts=ts,
        product="BTC-USD",
        bid=D(10_000),
        bid_size=D(ask_size),
        ask=D(10_001),
        ask_size=D(ask_size),
    )


def paper(ask_size: str = "2") -> PaperExchange:
    v = PaperExchange(starting_cash=D(1_000_000), taker_fee=D("0.006"), maker_fee=D("0.004"))
    v.on_quote(book(ask_size))
    return v


def order(qty: str = "3", **kw: object) -> SubmitOrder:
    fields: dict[str, object] = {
        "ts": T0,
        "client_order_id": P,
        "product": "BTC-USD",
        "side": Side.BUY,
        "order_type": OrderType.MARKET,
        "quantity": D(qty),
    }
    fields.update(kw)
    return SubmitOrder(**fields)  # type: ignore[arg-type]


def journal_at(tmp_path: Path) -> str:
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", "1000000")
    j.close()
    return path


class Recorder(Actor):
    """Stands in for the portfolio: keeps everything it is sent."""

    kind = "recorder"

    def __init__(self, box: list[Message]) -> None:
        self.box = box

    def receive(self, msg: Message, ctx: Context) -> None:
        self.box.append(msg)


class Step(Message, frozen=True, kw_only=True):
    """Script → itself: time for step ``index``."""

    index: int


class Script(Actor):
    """Does each planned step at its time: sends an order, moves the venue's book, ..."""

    kind = "script"

    def __init__(self, steps: list[tuple[int, Callable[[Context], None]]]) -> None:
        self.steps = steps

    def on_start(self, ctx: Context) -> None:
        for i, (delay, _) in enumerate(self.steps):
            ctx.schedule(delay, Step(index=i))

    def _handle_step(self, msg: Step, ctx: Context) -> None:
        self.steps[msg.index][1](ctx)


def run(
    tmp_path: Path,
    venue: PaperExchange,
    steps: list[tuple[int, Callable[[Context], None]]],
    *,
    chaos: ChaosPlan | None = None,
) -> tuple[DeterministicRuntime, list[Message], Journal]:
    """The ExecutionActor (supervised: restarted after a crash), a recording portfolio and the
    script, run until nothing is left to do."""
    path, box = journal_at(tmp_path), []
    sup = SupervisorSpec(
        name="sup",
        strategy=Strategy.ONE_FOR_ONE,
        max_restarts=5,
        period_ns=60 * S,
        children=(ChildSpec("execution", lambda: ExecutionActor(venue, path, split=POLICY)),),
    )
    registry = flatten_tree(sup, parent="main")
    registry["portfolio"] = Registered("portfolio", "main", lambda: Recorder(box))
    registry["script"] = Registered("script", "main", lambda: Script(steps))
    rt = DeterministicRuntime(seed=1, start_ns=T0, registry=registry, chaos=chaos)
    venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
    for name in ("portfolio", "sup", "script"):
        rt.start_root(name)
    rt.run()
    rt.stop_all()
    return rt, box, Journal(path)


def send(msg: Message) -> Callable[[Context], None]:
    return lambda ctx: ctx.send("execution", msg)


def children(j: Journal) -> list[dict[str, object]]:
    return [r for r in j.orders() if str(r["client_order_id"]).startswith(f"{P}-c")]


def assert_one_parent_upstream(box: list[Message], venue: PaperExchange, status: str) -> None:
    """The portfolio saw only the parent: every child fill re-labelled, once; one close."""
    fills = [m for m in box if isinstance(m, Fill)]
    closes = [m for m in box if isinstance(m, OrderClosed)]
    assert {m.client_order_id for m in box} == {P}  # type: ignore[attr-defined]
    venue_fills = [f for f in venue.all_fills() if f.client_order_id.startswith(f"{P}-c")]
    assert sorted(f.fill_id for f in fills) == sorted(f.fill_id for f in venue_fills)
    (close,) = closes
    assert box[-1] == close and close.status == status
    assert close.filled_quantity == sum((f.quantity for f in fills), D(0))


def test_a_large_order_is_split_over_virtual_time_within_the_depth_cap(tmp_path: Path) -> None:
    venue = paper("2")
    rt, box, j = run(
        tmp_path,
        venue,
        [(0, send(order("3"))), (45 * S, lambda ctx: venue.on_quote(book("6", ctx.now())))],
    )
    assert rt.now_ns == T0 + 120 * S  # the last timer: the deadline (nothing left to do)
    rows = children(j)
    # the README's worked example: the cap is 0.5 while 2 BTC show, 1.5 once 6 BTC show
    assert [D(str(r["quantity"])) for r in rows] == [D("0.5"), D("0.5"), D(1), D(1)]
    assert [int(str(r["created_ts"])) - T0 for r in rows] == [0, 30 * S, 60 * S, 90 * S]
    assert all(r["status"] == "FILLED" for r in rows)
    assert venue.get_order(P) is None  # the parent never goes to the venue
    for n in range(1, 5):
        v = venue.get_order(child_id(P, n))
        assert v is not None and v.status is OrderStatus.FILLED
    assert_one_parent_upstream(box, venue, "FILLED")
    parent = j.order(P)
    assert parent is not None and (parent["status"], D(parent["filled_quantity"])) == (
        "FILLED",
        D(3),
    )
    assert [e["kind"] for e in j.events()] == [PLAN_EVENT]
    j.close()


def test_no_child_goes_out_while_the_products_feed_is_stale(tmp_path: Path) -> None:
    """Stale means stale for split children too: after the first child the feed goes stale,
    the slots at 30 s and 60 s send nothing, and children resume once it recovers."""
    venue = paper("2")
    stale = FeedStatus(products=("BTC-USD",), state="stale", reason="no data")
    fresh = FeedStatus(products=("BTC-USD",), state="recovered")
    _, _, j = run(
        tmp_path,
        venue,
        [(0, send(order("3"))), (10 * S, send(stale)), (80 * S, send(fresh))],
    )
    rows = children(j)
    times = [int(str(r["created_ts"])) - T0 for r in rows]
    assert times[0] == 0 and all(t >= 80 * S for t in times[1:])  # nothing at 30 s or 60 s
    assert len(rows) >= 2 and all(r["status"] == "FILLED" for r in rows)
    j.close()


def test_cancelling_the_parent_cancels_the_open_child_and_no_new_children_follow(
    tmp_path: Path,
) -> None:
    venue = paper("2")
    limit = order("3", order_type=OrderType.LIMIT, limit_price=D(9_990))  # rests below the ask
    rt, box, j = run(
        tmp_path, venue, [(0, send(limit)), (10 * S, send(CancelOrder(client_order_id=P)))]
    )
    assert rt.now_ns >= T0 + 30 * S  # the next slot's timer fired after the cancel
    rows = children(j)
    assert [(r["client_order_id"], r["status"]) for r in rows] == [(f"{P}-c1", "CANCELLED")]
    assert [e["detail"] for e in j.events(CANCEL_EVENT)] == [P, f"{P}-c1"]  # journal first
    assert venue.open_orders() == [] and venue.held("USD") == 0
    assert box == [
        OrderClosed(
            ts=T0 + 10 * S,
            client_order_id=P,
            product="BTC-USD",
            status=OrderStatus.CANCELLED,
            filled_quantity=D(0),
        )
    ]
    assert j.order(P)["status"] == "CANCELLED"  # type: ignore[index]
    j.close()


def test_a_resting_limit_child_is_replaced_each_slot_and_the_parent_expires_at_its_deadline(
    tmp_path: Path,
) -> None:
    """Nothing but the parent's own timer moves it on: each slot cancels the resting child and
    sends the next, and the deadline ends it with what filled (nothing here)."""
    venue = paper("2")
    limit = order("3", order_type=OrderType.LIMIT, limit_price=D(9_990))
    rt, box, j = run(tmp_path, venue, [(0, send(limit))])
    rows = children(j)
    assert [int(str(r["created_ts"])) - T0 for r in rows] == [0, 30 * S, 60 * S, 90 * S]
    assert {r["status"] for r in rows} == {"CANCELLED"}
    assert venue.open_orders() == [] and rt.now_ns == T0 + 120 * S
    (close,) = box
    assert isinstance(close, OrderClosed) and close.client_order_id == P
    assert (close.status, close.filled_quantity, close.ts) == (
        OrderStatus.EXPIRED,
        D(0),
        T0 + 120 * S,
    )
    j.close()


def test_a_restart_mid_split_rebuilds_the_parent_and_finishes_it_without_reposting(
    tmp_path: Path,
) -> None:
    venue = paper("4")  # cap 1: four children of 0.75
    # the ExecutionActor crashes right after it sent the third child: that child's fill and
    # close, pushed by the venue, die in its mailbox
    chaos = ChaosPlan(points={"execution": [(T0 + 60 * S, "after_receive")]})
    rt, box, j = run(tmp_path, venue, [(0, send(order("3")))], chaos=chaos)
    assert rt.stats.crashes == 1 and rt.stats.restarts == 1
    assert rt.stats.dead_letters >= 2  # the third child's Fill and OrderClosed were lost
    assert any(P in e["detail"] for e in j.events("split_restored"))
    rows = children(j)
    assert [r["client_order_id"] for r in rows] == [child_id(P, n) for n in range(1, 5)]
    assert [D(str(r["quantity"])) for r in rows] == [D("0.75")] * 4
    assert [int(str(r["created_ts"])) - T0 for r in rows] == [0, 30 * S, 60 * S, 90 * S]
    assert venue.get_order(child_id(P, 5)) is None  # no child under a new id
    assert len([f for f in venue.all_fills() if f.client_order_id.startswith(P)]) == 4
    assert_one_parent_upstream(box, venue, "FILLED")
    fills = [m for m in box if isinstance(m, Fill)]
    assert len({f.fill_id for f in fills}) == len(fills) == 4  # the lost fill arrived once
    assert j.order(P)["status"] == "FILLED"  # type: ignore[index]
    j.close()


def test_an_order_marked_whole_is_never_split(tmp_path: Path) -> None:
    """Unwind slices, stop-loss exits and compensations (``split=False``) go whole, now."""
    venue = paper("2")
    venue.restore(
        [
            Fill(
                ts=T0,
                fill_id="held",
                client_order_id="earlier",
                product="BTC-USD",
                side=Side.BUY,
                quantity=D(10),
                price=D(10_000),
                fee=D(0),
                liquidity="TAKER",
            )
        ]
    )
    e, ctx = ExecutionActor(venue, journal_at(tmp_path), split=POLICY), FakeCtx(time_ns=T0)
    e.on_start(ctx)
    sell = order("3", side=Side.SELL, split=False)
    assert e.split.decide(msgspec.structs.replace(sell, split=True)).split  # 3 > 0.25 × 2 BTC
    e.receive(sell, ctx)
    v = venue.get_order(P)
    assert v is not None and v.quantity == D(3)  # one order, whole, under the parent's id
    assert venue.get_order(child_id(P, 1)) is None
    assert e.journal is not None and e.journal.events(PLAN_EVENT) == []
    assert [s for s in ctx.scheduled if "split" in str(s[1])] == []
    e.on_stop(ctx)


def drive(actor: ExecutionActor, ctx: FakeCtx, pushed: list[Message]) -> None:
    """Run a FakeCtx-driven actor as the runtime would: venue events first, then the split
    timers in time order (the wake time is the last part of their kind), until none is left."""
    done: set[str] = set()
    while True:
        while pushed:
            actor.receive(pushed.pop(0), ctx)
        ticks = [m for _, m in ctx.scheduled if isinstance(m, Tick) and m.kind.startswith(SPLIT)]
        due = sorted((int(t.kind.rsplit(":", 1)[1]), t.kind) for t in ticks if t.kind not in done)
        if not due:
            return
        wake, kind = due[0]
        done.add(kind)
        ctx.time_ns = max(ctx.time_ns, wake)
        actor.receive(Tick(kind=kind), ctx)


def test_a_parent_finished_before_a_restart_is_answered_from_its_row(tmp_path: Path) -> None:
    venue, path, pushed = paper("4"), journal_at(tmp_path), []
    venue.set_listener(pushed.append)
    e1, ctx1 = ExecutionActor(venue, path, split=POLICY), FakeCtx(time_ns=T0)
    e1.on_start(ctx1)
    e1.receive(order("3"), ctx1)
    drive(e1, ctx1, pushed)
    assert ctx1.to("portfolio")[-1] == OrderClosed(
        ts=T0 + 90 * S,
        client_order_id=P,
        product="BTC-USD",
        status=OrderStatus.FILLED,
        filled_quantity=D(3),
    )
    e2, ctx2 = ExecutionActor(venue, path, split=POLICY), FakeCtx(time_ns=T0 + 200 * S)
    e2.on_start(ctx2)
    assert ctx2.sent == [] and ctx2.scheduled == []  # nothing to rebuild: it had finished
    e2.receive(OrderStatusRequest(client_order_ids=(P,)), ctx2)
    e2.receive(order("3"), ctx2)  # a duplicate of the parent's id: the same answer
    *fills, report = ctx2.to("portfolio")[:5]
    assert [f.client_order_id for f in fills] == [P] * 4  # type: ignore[attr-defined]
    assert report == OrderStatusReport(
        ts=T0 + 200 * S,
        client_order_id=P,
        known=True,
        status=OrderStatus.FILLED,
        filled_quantity=D(3),
    )
    assert ctx2.to("portfolio")[5:] == ctx2.to("portfolio")[:5]
    assert len(venue.all_fills()) == 4  # nothing was sent again
    e1.on_stop(ctx1)
    e2.on_stop(ctx2)


def test_the_journal_tells_children_and_their_booked_fills_apart(tmp_path: Path) -> None:
    """Children are found through their parent's plan; the fills the portfolio booked under
    the parent are split back per child by the ``split_fill`` events (Coinbase baselines);
    the replay summary counts the parent as the one order the portfolio decided."""
    j = Journal(journal_at(tmp_path))
    parent = order("3")
    journal_order(j, parent)
    journal_plan(j, SplitPlan(order=parent, policy=POLICY, rules=ProductRules(), start_ns=T0), T0)
    cash = D(1_000_000)
    for n, (fid, qty) in enumerate((("f1", "0.5"), ("f2", "1"), ("f3", "0.25")), start=1):
        kid = child_id(P, 1 if fid != "f2" else 2)
        if n < 3:
            journal_order(j, msgspec.structs.replace(parent, client_order_id=kid, quantity=D(1)))
        fill = Fill(
            ts=T0,
            fill_id=fid,
            client_order_id=P,  # as the portfolio books it
            product="BTC-USD",
            side=Side.BUY,
            quantity=D(qty),
            price=D(10_000),
            fee=D(1),
            liquidity="TAKER",
        )
        cash += fill.cash_delta
        j.record_fill(fill, D(0), D(10_000), cash)
        journal_child_fill(j, kid, fid, T0)
    assert split_children(j) == {child_id(P, 1), child_id(P, 2)}
    assert parent_of(child_id(P, 3), {P}) == P
    assert parent_of(f"{P}-c01", {P}) is None and parent_of("other-c1", {P}) is None
    assert child_fill_ids(j)[child_id(P, 1)] == {"f1", "f3"}
    qty, value, fee = j.fill_totals(P, child_fill_ids(j)[child_id(P, 1)])
    assert (qty, value, fee) == (D("0.75"), D(7_500), D(2))
    figures = books_summary(j, D(1_000_000), {})
    assert (figures["orders"], figures["split_orders"], figures["child_orders"]) == (1, 1, 2)
    assert figures["fills"] == 3
    j.close()
