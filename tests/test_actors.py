"""Each actor's handling, driven synchronously through a recording context (no threads)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from cryptoj.actors.execution import ExecutionActor
from cryptoj.actors.feed import FeedActor, ReplaySource
from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.actors.risk import RiskActor
from cryptoj.actors.shutdown import ShutdownActor
from cryptoj.actors.strategy import StrategyActor
from cryptoj.config import Config, RiskConfig, StrategyConfig
from cryptoj.journal import Journal
from cryptoj.models.market import FeedFinished, Quote
from cryptoj.models.orders import (
    CancelAllOrders,
    CancelOrder,
    Fill,
    OrderClosed,
    OrderRejected,
    OrderStatus,
    OrderStatusReport,
    OrderStatusRequest,
    OrderType,
    Side,
    SubmitOrder,
)
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import RiskLevel, RiskLevelChanged
from cryptoj.models.signals import TargetWeight
from cryptoj.models.system import (
    ChildExited,
    DrainOrders,
    Halt,
    OrdersDrained,
    ReconcileNow,
    Tick,
)
from cryptoj.venues.paper import PaperExchange
from tests.stubs import FakeCtx, bar, quote, risk_params

T0 = 1_522_800_060_000_000_000
MIN = 60_000_000_000


def _journal(tmp_path: Path, cash: str = "100000") -> str:
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", cash)
    j.close()
    return path


def _target(weight: float = 0.10, product: str = "BTC-USD") -> TargetWeight:
    return TargetWeight(ts=T0, strategy_id="t", product=product, weight=weight, reason="test")


# -- FeedActor -------------------------------------------------------------------------------


def test_feed_schedules_batches_on_the_clock_and_fans_events_out() -> None:
    b1 = (bar(ts=T0), quote(ts=T0))
    b2 = (bar(ts=T0 + MIN), quote(ts=T0 + MIN))
    book: list[Quote] = []
    feed = FeedActor(ReplaySource([b1, b2]), quote_sink=book.append)
    ctx = FakeCtx(time_ns=T0)
    feed.on_start(ctx)
    assert ctx.scheduled == [(0, Tick(kind="poll"))]
    feed.receive(Tick(kind="poll"), ctx)
    assert ctx.to("strategy") == [b1[0]] and ctx.to("risk") == [b1[0]]
    assert ctx.to("portfolio") == [b1[1]] and book == [b1[1]]
    assert ctx.scheduled[-1] == (MIN, Tick(kind="poll"))
    ctx.time_ns = T0 + MIN
    feed.receive(Tick(kind="poll"), ctx)
    assert ctx.to("shutdown") == [FeedFinished(ts=T0 + MIN, events=4)]


def test_feed_models_quotes_for_bar_only_products_and_flags_them_derived() -> None:
    src = ReplaySource([(bar(close="100", ts=T0),)], bar_spread_bps=10, bar_depth_fraction=0.5)
    feed = FeedActor(src)
    ctx = FakeCtx(time_ns=T0)
    feed.receive(Tick(kind="poll"), ctx)
    (q,) = ctx.to("portfolio")
    assert isinstance(q, Quote) and q.derived
    assert (q.bid, q.ask, q.bid_size) == (Decimal("99.95"), Decimal("100.05"), Decimal("0.5"))


# -- StrategyActor ---------------------------------------------------------------------------


def test_strategy_is_silent_during_warm_up_then_targets_the_weight_on_an_uptrend() -> None:
    s = StrategyActor(StrategyConfig(fast_period=2, slow_period=4, target_weight=0.1, band=0.0))
    ctx = FakeCtx()
    for i, close in enumerate(["100", "100", "100"]):
        s.receive(bar(close=close, ts=T0 + i * MIN), ctx)
    assert ctx.sent == []
    for i, close in enumerate(["101", "103", "106"], start=3):
        s.receive(bar(close=close, ts=T0 + i * MIN), ctx)
    targets = ctx.to("portfolio")
    assert targets and all(isinstance(t, TargetWeight) for t in targets)
    assert targets[-1].weight == 0.1 and "above" in targets[-1].reason  # type: ignore[union-attr]


def test_strategy_drops_the_target_to_zero_on_a_downtrend() -> None:
    s = StrategyActor(StrategyConfig(fast_period=2, slow_period=4, target_weight=0.1, band=0.0))
    ctx = FakeCtx()
    for i, close in enumerate(["100", "101", "102", "103", "104", "90", "80"]):
        s.receive(bar(close=close, ts=T0 + i * MIN), ctx)
    assert ctx.to("portfolio")[-1].weight == 0.0  # type: ignore[union-attr]


# -- RiskActor -------------------------------------------------------------------------------


def test_risk_publishes_versioned_parameters_when_they_change_or_a_minute_passed(
    tmp_path: Path,
) -> None:
    r = RiskActor(RiskConfig(), _journal(tmp_path))
    ctx = FakeCtx()
    r.on_start(ctx)
    for i in range(3):  # steady prices: caps do not move
        ctx.time_ns = T0 + i * 10**9
        r.receive(bar(close="100", ts=T0 + i * 10**9), ctx)
    params = ctx.to("portfolio")
    assert [p.version for p in params] == [1]  # type: ignore[union-attr]
    assert params[-1].level == RiskLevel.NORMAL  # type: ignore[union-attr]
    assert 0 < params[-1].weight_cap("BTC-USD") <= 0.10  # type: ignore[union-attr]
    ctx.time_ns = T0 + 61 * 10**9  # a minute later: re-published even though nothing moved
    r.receive(bar(close="100", ts=T0 + 61 * 10**9), ctx)
    assert [p.version for p in ctx.to("portfolio")] == [1, 2]  # type: ignore[union-attr]
    r.on_stop(ctx)


def test_risk_halts_on_the_daily_loss_limit_and_tells_shutdown(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    r = RiskActor(RiskConfig(daily_loss_limit=0.02), path)
    ctx = FakeCtx()
    r.on_start(ctx)
    for ts, equity in ((T0, "100000"), (T0 + MIN, "97000")):
        snap = PortfolioSnapshot(
            ts=ts,
            cash=Decimal(equity),
            reserved_cash=Decimal(0),
            equity=Decimal(equity),
            positions=(),
            open_orders=0,
        )
        r.receive(snap, ctx)
    (change,) = ctx.to("shutdown")
    assert isinstance(change, RiskLevelChanged) and change.level == RiskLevel.HALTED
    assert ctx.to("portfolio")[-1].level == RiskLevel.HALTED  # type: ignore[union-attr]
    r.on_stop(ctx)
    j = Journal(path)
    assert "NORMAL -> HALTED" in j.events("risk_level")[0]["detail"]


# -- PortfolioActor --------------------------------------------------------------------------


@pytest.fixture
def portfolio(tmp_path: Path) -> tuple[PortfolioActor, FakeCtx]:
    p = PortfolioActor(Config(), _journal(tmp_path))
    ctx = FakeCtx()
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote(bid="7000", ask="7001", size="100"), ctx)
    return p, ctx


def _orders(ctx: FakeCtx) -> list[SubmitOrder]:
    return [m for m in ctx.to("execution") if isinstance(m, SubmitOrder)]


def test_portfolio_reserves_and_journals_before_sending_an_order(
    portfolio: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = portfolio
    p.receive(_target(0.10), ctx)
    (order,) = _orders(ctx)
    assert order.side == Side.BUY and order.order_type == OrderType.MARKET
    assert order.quantity * Decimal("7000.5") <= Decimal("10000")
    assert order.client_order_id in p.ledger.reservations
    assert p.journal is not None
    assert [r["client_order_id"] for r in p.journal.open_intents()] == [order.client_order_id]


def test_portfolio_never_has_two_orders_in_flight_for_one_product(
    portfolio: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = portfolio
    p.receive(_target(0.10), ctx)
    p.receive(_target(0.10), ctx)
    p.receive(quote(bid="6990", ask="6991", size="100"), ctx)
    assert len(_orders(ctx)) == 1


def test_portfolio_applies_a_fill_once_even_when_it_is_sent_twice(
    portfolio: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = portfolio
    p.receive(_target(0.10), ctx)
    (order,) = _orders(ctx)
    fill = Fill(
        ts=T0,
        fill_id="F1",
        client_order_id=order.client_order_id,
        product="BTC-USD",
        side=Side.BUY,
        quantity=order.quantity,
        price=Decimal("7001"),
        fee=Decimal("1.5"),
        liquidity="TAKER",
    )
    p.receive(fill, ctx)
    p.receive(fill, ctx)
    assert p.ledger.position("BTC-USD") == order.quantity
    assert p.ledger.cash == Decimal(100000) + fill.cash_delta
    assert p.journal is not None
    assert [f.fill_id for f in p.journal.fills()] == ["F1"]
    assert len(p.journal.position_history()) == 1  # the re-sent fill wrote nothing
    p.receive(
        OrderClosed(
            ts=T0,
            client_order_id=order.client_order_id,
            product="BTC-USD",
            status=OrderStatus.FILLED,
            filled_quantity=order.quantity,
        ),
        ctx,
    )
    assert p.ledger.reservations == {}


def test_portfolio_journals_the_equity_once_per_second_of_market_time(
    portfolio: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = portfolio
    ms = 1_000_000
    second = T0 + 1_000 * ms
    for ts in (T0, T0 + 1 * ms, T0 + 2 * ms, second, second + 5 * ms, second + 1_000 * ms):
        p.receive(quote(ts=ts), ctx)
    assert p.journal is not None
    # one row per second, stamped with the last quote of that second
    assert [ts for ts, _ in p.journal.equity_curve()] == [T0 + 2 * ms, second + 5 * ms]


@pytest.mark.parametrize(
    "outcome",
    [
        OrderRejected(ts=T0, client_order_id="ID", product="BTC-USD", reason="insufficient"),
        OrderStatusReport(ts=T0, client_order_id="ID", known=False),
    ],
)
def test_portfolio_releases_the_reservation_of_a_rejected_or_unknown_order(
    portfolio: tuple[PortfolioActor, FakeCtx],
    outcome: OrderRejected | OrderStatusReport,
) -> None:
    p, ctx = portfolio
    p.receive(_target(0.10), ctx)
    (order,) = _orders(ctx)
    p.receive(msgspec.structs.replace(outcome, client_order_id=order.client_order_id), ctx)
    assert p.ledger.reservations == {}
    assert p.journal is not None and p.journal.open_intents() == []


def test_portfolio_refuses_new_orders_when_halted_or_at_risk_level_halted(
    portfolio: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = portfolio
    p.receive(risk_params(RiskLevel.HALTED), ctx)
    p.receive(_target(0.10), ctx)
    p.receive(risk_params(RiskLevel.NORMAL), ctx)
    p.receive(Halt(reason="operator"), ctx)
    p.receive(_target(0.10), ctx)
    assert _orders(ctx) == []


def test_portfolio_only_reduces_at_level_reducing(
    portfolio: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = portfolio
    p.receive(risk_params(RiskLevel.REDUCING), ctx)
    p.receive(_target(0.10), ctx)
    assert _orders(ctx) == []


def test_portfolio_sells_a_position_that_hits_its_stop_loss(
    portfolio: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = portfolio
    p.receive(_target(0.10), ctx)
    (buy,) = _orders(ctx)
    p.receive(
        Fill(
            ts=T0,
            fill_id="F1",
            client_order_id=buy.client_order_id,
            product="BTC-USD",
            side=Side.BUY,
            quantity=buy.quantity,
            price=Decimal("7000"),
            fee=Decimal(0),
            liquidity="TAKER",
        ),
        ctx,
    )
    p.receive(
        OrderClosed(
            ts=T0,
            client_order_id=buy.client_order_id,
            product="BTC-USD",
            status=OrderStatus.FILLED,
            filled_quantity=buy.quantity,
        ),
        ctx,
    )
    p.receive(quote(bid="6600", ask="6601", size="100"), ctx)
    sell = _orders(ctx)[-1]
    assert sell.side == Side.SELL and sell.quantity == buy.quantity
    assert sell.reason.startswith("stop loss")
    assert buy.split and not sell.split  # a stop-loss exit goes whole, never split


def test_a_restarted_portfolio_rebuilds_its_books_and_reconciles_open_orders(
    tmp_path: Path,
) -> None:
    path = _journal(tmp_path)
    p, ctx = PortfolioActor(Config(), path), FakeCtx()
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote(bid="7000", ask="7001", size="100"), ctx)
    p.receive(_target(0.10), ctx)
    (order,) = _orders(ctx)
    half = (order.quantity / 2).quantize(Decimal("0.00000001"))
    p.receive(
        Fill(
            ts=T0,
            fill_id="F1",
            client_order_id=order.client_order_id,
            product="BTC-USD",
            side=Side.BUY,
            quantity=half,
            price=Decimal("7001"),
            fee=Decimal("1"),
            liquidity="TAKER",
        ),
        ctx,
    )
    again, ctx2 = PortfolioActor(Config(), path), FakeCtx()  # the crash: a fresh instance
    again.on_start(ctx2)
    assert again.ledger.cash == p.ledger.cash
    assert again.ledger.position("BTC-USD") == half
    assert again.ledger.reservations[order.client_order_id].filled == half
    # the order was a leg of a rebalance transaction: the restart rolls it back (its leg is
    # cancelled at the venue) and reconciles it
    assert ctx2.to("execution") == [
        CancelOrder(ts=ctx2.time_ns, client_order_id=order.client_order_id),
        OrderStatusRequest(ts=ctx2.time_ns, client_order_ids=(order.client_order_id,)),
    ]


# -- ExecutionActor --------------------------------------------------------------------------


@pytest.fixture
def venue() -> PaperExchange:
    v = PaperExchange(
        starting_cash=Decimal(100000), taker_fee=Decimal("0.006"), maker_fee=Decimal("0.004")
    )
    v.on_quote(quote(bid="7000", ask="7001", size="10"))
    return v


def _submit(coid: str = "cj-1", qty: str = "1", side: Side = Side.BUY) -> SubmitOrder:
    return SubmitOrder(
        ts=T0,
        client_order_id=coid,
        product="BTC-USD",
        side=side,
        order_type=OrderType.MARKET,
        quantity=Decimal(qty),
    )


def test_execution_journals_the_order_before_sending_and_forwards_venue_events(
    tmp_path: Path,
    venue: PaperExchange,
) -> None:
    pushed: list[object] = []
    venue.set_listener(pushed.append)
    e, ctx = ExecutionActor(venue, _journal(tmp_path)), FakeCtx()
    e.on_start(ctx)
    e.receive(_submit(), ctx)
    assert e.journal is not None and e.journal.order("cj-1")["status"] == "OPEN"  # type: ignore[index]
    fill, closed = pushed
    e.receive(fill, ctx)  # type: ignore[arg-type]
    e.receive(closed, ctx)  # type: ignore[arg-type]
    assert ctx.to("portfolio") == [fill, closed]
    assert e.journal.order("cj-1")["status"] == "FILLED"  # type: ignore[index]
    row = e.journal.order("cj-1")
    assert row is not None and row["filled_quantity"] == str(fill.quantity)  # type: ignore[attr-defined]
    # a late acceptance does not reopen a closed order
    e.journal.update_order("cj-1", T0, status=OrderStatus.OPEN, only_from=OrderStatus.PENDING)
    assert e.journal.order("cj-1")["status"] == "FILLED"  # type: ignore[index]


def test_execution_never_posts_a_client_order_id_twice(
    tmp_path: Path, venue: PaperExchange
) -> None:
    e, ctx = ExecutionActor(venue, _journal(tmp_path)), FakeCtx()
    e.on_start(ctx)
    e.receive(_submit(), ctx)
    e.receive(_submit(), ctx)
    assert len(venue.all_fills()) == 1
    report = ctx.to("portfolio")[-1]
    assert isinstance(report, OrderStatusReport) and report.known


def test_execution_reports_a_venue_rejection_to_the_portfolio(
    tmp_path: Path,
    venue: PaperExchange,
) -> None:
    e, ctx = ExecutionActor(venue, _journal(tmp_path)), FakeCtx()
    e.on_start(ctx)
    e.receive(_submit(qty="1000"), ctx)
    (rejected,) = ctx.to("portfolio")
    assert isinstance(rejected, OrderRejected) and "insufficient" in rejected.reason


def test_execution_on_restart_rejects_journalled_orders_the_venue_never_saw(
    tmp_path: Path,
    venue: PaperExchange,
) -> None:
    path = _journal(tmp_path)
    j = Journal(path)
    j.record_order(
        {
            "client_order_id": "cj-lost",
            "product": "BTC-USD",
            "side": "BUY",
            "order_type": "MARKET",
            "quantity": Decimal(1),
            "limit_price": None,
            "reason": "",
            "ts": T0,
        }
    )
    j.close()
    e, ctx = ExecutionActor(venue, path), FakeCtx()
    e.on_start(ctx)
    (msg,) = ctx.to("portfolio")
    assert isinstance(msg, OrderRejected) and msg.client_order_id == "cj-lost"
    assert venue.all_fills() == ()


def test_execution_answers_status_requests_with_fills_then_a_report(
    tmp_path: Path,
    venue: PaperExchange,
) -> None:
    e, ctx = ExecutionActor(venue, _journal(tmp_path)), FakeCtx()
    e.on_start(ctx)
    e.receive(_submit(), ctx)
    ctx.sent.clear()
    e.receive(OrderStatusRequest(client_order_ids=("cj-1", "cj-never")), ctx)
    kinds = [type(m).__name__ for m in ctx.to("portfolio")]
    assert kinds == ["Fill", "OrderStatusReport", "OrderStatusReport"]
    assert ctx.to("portfolio")[-1] == OrderStatusReport(
        ts=ctx.time_ns, client_order_id="cj-never", known=False
    )


def _resting_buy(coid: str = "cj-rest") -> SubmitOrder:
    return SubmitOrder(
        ts=T0,
        client_order_id=coid,
        product="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.5"),
        limit_price=Decimal("6500"),
    )


def test_execution_drain_with_cancel_settles_every_open_order_then_reports(
    tmp_path: Path, venue: PaperExchange
) -> None:
    pushed: list[object] = []
    venue.set_listener(pushed.append)
    e, ctx = ExecutionActor(venue, _journal(tmp_path)), FakeCtx()
    e.on_start(ctx)
    e.receive(_resting_buy(), ctx)
    assert e.journal is not None and e.journal.order("cj-rest")["status"] == "OPEN"  # type: ignore[index]
    e.receive(DrainOrders(ts=T0, reason="SIGTERM", cancel=True, reply_to="shutdown"), ctx)
    assert ctx.to("shutdown") == []  # the cancel's outcome has not arrived yet
    for event in pushed:
        e.receive(event, ctx)  # type: ignore[arg-type]
    assert e.journal.order("cj-rest")["status"] == "CANCELLED"  # type: ignore[index]
    assert ctx.to("shutdown") == [OrdersDrained(ts=ctx.time_ns, orders=1)]
    # an order that reaches execution after the drain began is journalled, never sent
    e.receive(_submit("cj-late"), ctx)
    row = e.journal.order("cj-late")
    assert row is not None and row["status"] == "REJECTED" and "stopping" in row["reason"]
    rejected = ctx.to("portfolio")[-1]
    assert isinstance(rejected, OrderRejected) and rejected.client_order_id == "cj-late"
    assert venue.all_fills() == () and venue.get_order("cj-late") is None
    assert len(ctx.to("shutdown")) == 1  # reported once
    kinds = [ev["kind"] for ev in e.journal.events()]
    assert kinds[-2:] == ["drain", "drained"]


def test_execution_drain_keeping_orders_waits_only_for_unknown_outcomes(
    tmp_path: Path, venue: PaperExchange
) -> None:
    e, ctx = ExecutionActor(venue, _journal(tmp_path)), FakeCtx()
    e.on_start(ctx)
    e.receive(_resting_buy(), ctx)
    e.receive(DrainOrders(ts=T0, reason="SIGTERM", cancel=False, reply_to="shutdown"), ctx)
    assert ctx.to("shutdown") == [OrdersDrained(ts=ctx.time_ns, orders=0)]
    assert e.journal is not None and e.journal.order("cj-rest")["status"] == "OPEN"  # type: ignore[index]
    assert venue.get_order("cj-rest") is not None  # still at the venue for the next start


# -- ShutdownActor ---------------------------------------------------------------------------


def test_shutdown_ends_a_replay_by_cancelling_and_reconciling(
    tmp_path: Path,
    venue: PaperExchange,
) -> None:
    s, ctx = ShutdownActor(venue, _journal(tmp_path)), FakeCtx()
    s.on_start(ctx)
    s.receive(FeedFinished(events=10), ctx)
    assert isinstance(ctx.to("execution")[0], CancelAllOrders)
    halt = Halt(ts=ctx.time_ns, reason="end of replay")
    assert ctx.to("portfolio") == [halt, ReconcileNow(ts=ctx.time_ns)]
    assert ctx.stopped == [(0, "replay finished")]


def test_shutdown_on_root_failure_cancels_at_the_venue_itself_and_exits_3(
    tmp_path: Path,
    venue: PaperExchange,
) -> None:
    path = _journal(tmp_path)
    venue.submit(
        SubmitOrder(
            ts=T0,
            client_order_id="rest",
            product="BTC-USD",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=Decimal(1),
            limit_price=Decimal(6000),
        ),
        T0,
    )
    s, ctx = ShutdownActor(venue, path), FakeCtx()
    s.on_start(ctx)
    s.receive(ChildExited(name="root", generation=1, abnormal=True, reason="intensity"), ctx)
    assert venue.open_orders() == []
    assert ctx.stopped[0][0] == 3
    s.on_stop(ctx)
    assert [e["kind"] for e in Journal(path).events()] == ["emergency", "emergency_cancelled"]
