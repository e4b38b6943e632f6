"""The emergency programme in the actors, driven synchronously through a recording context.

The ShutdownActor decides (triggers → level → plan; recovery; operator commands; the
escalation path through its own venue client); the PortfolioActor executes plans in slices
with check-and-reserve. No threads: :class:`tests.stubs.FakeCtx` records what is sent.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.actors.shutdown import ShutdownActor
from cryptoj.config import Config, ConfigError, parse_config
from cryptoj.journal import Journal
from cryptoj.models.market import FeedStatus, Quote
from cryptoj.models.orders import (
    CancelAllOrders,
    Fill,
    OrderClosed,
    OrderStatus,
    OrderType,
    Side,
    SubmitOrder,
    floor_to,
)
from cryptoj.models.risk import RiskLevel, RiskLevelChanged
from cryptoj.models.signals import TargetWeight
from cryptoj.models.system import (
    DrainOrders,
    EscalatedFailure,
    Halt,
    OrdersDrained,
    ShutdownRequested,
    Tick,
)
from cryptoj.models.unwind import (
    ExposureView,
    MonitorReport,
    OperatorCommand,
    PlanRequest,
    ResponseLevel,
    UnwindComplete,
    UnwindPlan,
    UnwindSliceReport,
    UnwindTarget,
)
from cryptoj.portfolio.ledger import Ledger
from cryptoj.unwind.report import unwind_figures
from cryptoj.venues.paper import PaperExchange
from tests.stubs import FakeCtx, quote, risk_params

STEP = Decimal("0.00000001")

D = Decimal
S = 1_000_000_000
T0 = 1_522_800_060_000_000_000
MIN = 60 * S
HOUR = 3600 * S
L = ResponseLevel


def _journal(tmp_path: Path, fills: list[Fill] = (), cash: str = "100000") -> str:  # type: ignore[assignment]
    """A journal with ``starting_cash`` and ``fills`` already applied (a position)."""
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", cash)
    ledger = Ledger(D(cash))
    for f in fills:
        h = ledger.apply_fill(f)
        j.record_fill(f, h.quantity, h.average_price, ledger.cash)
    j.close()
    return path


def _fill(
    qty: str, price: str, product: str = "BTC-USD", side: Side = Side.BUY, n: int = 1
) -> Fill:
    return Fill(
        ts=T0,
        fill_id=f"F{n}-{product}",
        client_order_id=f"old-{n}-{product}",
        product=product,
        side=side,
        quantity=D(qty),
        price=D(price),
        fee=D(0),
        liquidity="TAKER",
    )


def _plan(level: ResponseLevel = L.FLATTEN, **kw: Any) -> UnwindPlan:
    fields: dict[str, Any] = {
        "plan_id": "plan-1",
        "level": level,
        "trigger": "test",
        "reason": "test",
        "entries_allowed": level is L.NORMAL,
        "reduce_only": level.rank >= L.REDUCE.rank,
        "targets": (UnwindTarget(product="BTC-USD", quantity=D(0), priority=1.0),),
        "flatten_rest": level is L.FLATTEN,
        "deadline_ns": T0 + HOUR,
    }
    fields.update(kw)
    return UnwindPlan(ts=T0, **fields)


def _orders(ctx: FakeCtx) -> list[SubmitOrder]:
    return [m for m in ctx.to("execution") if isinstance(m, SubmitOrder)]


def _execute(p: PortfolioActor, ctx: FakeCtx, order: SubmitOrder, price: str, n: int) -> None:
    """The venue fills ``order`` completely at ``price`` and closes it."""
    p.receive(
        Fill(
            ts=ctx.time_ns,
            fill_id=f"X{n}",
            client_order_id=order.client_order_id,
            product=order.product,
            side=order.side,
            quantity=order.quantity,
            price=D(price),
            fee=D(0),
            liquidity="TAKER",
        ),
        ctx,
    )
    p.receive(
        OrderClosed(
            ts=ctx.time_ns,
            client_order_id=order.client_order_id,
            product=order.product,
            status=OrderStatus.FILLED,
            filled_quantity=order.quantity,
        ),
        ctx,
    )


@pytest.fixture
def holder(tmp_path: Path) -> tuple[PortfolioActor, FakeCtx]:
    """A portfolio holding 10 BTC (bought at 7,000), with a quote of 4 BTC on each side."""
    p = PortfolioActor(Config(), _journal(tmp_path, [_fill("10", "7000")], cash="200000"))
    ctx = FakeCtx(time_ns=T0)
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote(bid="7000", ask="7001", size="4", ts=T0), ctx)
    return p, ctx


# -- PortfolioActor: executing a plan ----------------------------------------------------------


def test_a_restarted_portfolio_asks_the_shutdown_actor_for_the_plan(
    holder: tuple[PortfolioActor, FakeCtx],
) -> None:
    _, ctx = holder
    assert ctx.to("shutdown")[0] == PlanRequest(ts=T0)


def test_a_plan_is_sold_in_slices_against_the_visible_depth_one_per_fresh_quote(
    holder: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = holder
    p.receive(_plan(), ctx)
    (first,) = _orders(ctx)
    assert (first.side, first.order_type, first.quantity) == (Side.SELL, OrderType.MARKET, D(2))
    assert not first.split  # sized against the depth already: execution never splits a slice
    assert first.client_order_id in p.ledger.reservations  # check-and-reserve, like any order
    assert p.journal is not None and p.journal.open_intents()[0]["reason"].startswith("unwind")
    _execute(p, ctx, first, "7000", 1)
    report = ctx.to("shutdown")[-1]
    assert isinstance(report, UnwindSliceReport)
    assert report.filled == D(2) and report.remaining_quantity == D(8)
    assert report.remaining_exposure == D(8) * D("7000.5")
    assert report.slippage_bps == pytest.approx(0.5 / 7000.5 * 10_000)
    p.receive(quote(bid="7000", ask="7001", size="4", ts=T0), ctx)  # the same book again
    assert len(_orders(ctx)) == 1
    for i in range(1, 4):
        ctx.time_ns = T0 + i * MIN
        p.receive(quote(bid="6990", ask="6991", size="4", ts=ctx.time_ns), ctx)
        _execute(p, ctx, _orders(ctx)[-1], "6990", i + 1)
    # the mid fell 10 of 7,000.5 since the start (14.3 bps against the unwind; adverse_move_bps
    # 50): each slice is 0.5 × (1 + 14.28 / 50) of the 4 BTC bid, no longer 2 BTC
    faster = floor_to(D(repr(0.5 * (1 + float(D(10) / D("7000.5") * 10_000) / 50))) * 4, STEP)
    assert faster == D("2.57138775")
    assert [o.quantity for o in _orders(ctx)] == [D(2)] + [faster] * 3
    ctx.time_ns = T0 + 4 * MIN
    p.receive(quote(bid="6980", ask="6981", size="4", ts=ctx.time_ns), ctx)
    _execute(p, ctx, _orders(ctx)[-1], "6980", 5)
    assert p.ledger.position("BTC-USD") == 0
    assert ctx.to("shutdown")[-1] == UnwindComplete(ts=ctx.time_ns, plan_id="plan-1", slices=5)
    assert p.journal is not None
    figures = unwind_figures(p.journal)
    assert figures["unwind_slices"] == 5 and figures["unwind_seconds"] == 240.0
    assert 0 < figures["unwind_slippage_bps"] < figures["unwind_shortfall_bps"]


def test_after_the_deadline_the_remainder_goes_at_market(
    holder: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = holder
    p.receive(_plan(deadline_ns=T0 + 2 * MIN), ctx)
    _execute(p, ctx, _orders(ctx)[-1], "7000", 1)
    ctx.time_ns = T0 + MIN
    p.receive(quote(bid="7000", ask="7001", size="4", ts=ctx.time_ns), ctx)
    # books every minute, two left up to the deadline (this one included): the pace is half
    # of the 8 BTC left, more than the depth cap of 2
    second = _orders(ctx)[-1]
    assert second.quantity == D(4) and "pace: 1/2" in second.reason
    _execute(p, ctx, second, "7000", 2)
    ctx.time_ns = T0 + 2 * MIN
    p.receive(Tick(kind="unwind_deadline"), ctx)  # the deadline timer: no fresh book yet
    assert len(_orders(ctx)) == 2
    p.receive(quote(bid="6900", ask="6901", size="4", ts=ctx.time_ns), ctx)
    last = _orders(ctx)[-1]
    assert last.quantity == D(4) and "deadline" in last.reason
    assert ctx.scheduled[0][1] == Tick(kind="unwind_deadline")


def test_immediate_mode_sells_everything_at_once(
    holder: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = holder
    p.receive(_plan(mode="immediate"), ctx)
    (order,) = _orders(ctx)
    assert order.quantity == D(10) and "immediate" in order.reason
    assert not order.split  # 2.5× the visible bid, but an unwind order goes whole


def test_no_entries_refuses_buys_and_re_entry_scales_them(tmp_path: Path) -> None:
    # no cost band: the buy goes to the scaled target itself, not to the band's edge
    p = PortfolioActor(parse_config({"portfolio": {"cost_band_multiple": 0}}), _journal(tmp_path))
    ctx = FakeCtx(time_ns=T0)
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote(bid="7000", ask="7001", size="100", ts=T0), ctx)
    p.receive(_plan(L.NO_ENTRIES, targets=(), deadline_ns=None), ctx)
    target = TargetWeight(ts=T0, strategy_id="t", product="BTC-USD", weight=0.10, reason="up")
    p.receive(target, ctx)
    assert _orders(ctx) == []
    p.receive(_plan(L.NORMAL, targets=(), deadline_ns=None, size_multiplier=0.25), ctx)
    p.receive(target, ctx)
    (buy,) = _orders(ctx)
    assert buy.side == Side.BUY and buy.quantity * D("7000.5") <= D(2500)
    assert buy.quantity * D("7001") > D(2400)


def test_a_stop_loss_joins_the_queue_ahead_of_the_plan(tmp_path: Path) -> None:
    fills = [_fill("1", "7000"), _fill("20", "500", "ETH-USD", n=2)]
    p = PortfolioActor(Config(), _journal(tmp_path, fills))
    ctx = FakeCtx(time_ns=T0)
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote("ETH-USD", bid="500", ask="500.5", size="4", ts=T0), ctx)
    plan = _plan(
        L.REDUCE,
        targets=(
            UnwindTarget(product="ETH-USD", quantity=D(0), priority=9.0),
            UnwindTarget(product="BTC-USD", quantity=D(0), priority=1.0),
        ),
        flatten_rest=False,
    )
    p.receive(plan, ctx)
    (eth,) = _orders(ctx)
    assert eth.product == "ETH-USD"  # BTC waits: one product at a time
    p.receive(quote(bid="6500", ask="6501", size="4", ts=T0), ctx)  # 7 % below entry
    btc = _orders(ctx)[-1]
    assert btc.product == "BTC-USD" and btc.reason.startswith("stop loss")


def test_no_slice_is_sized_on_a_stale_book_until_the_feed_recovers(
    holder: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = holder
    p.receive(FeedStatus(ts=T0, products=("BTC-USD",), state="stale", reason="no data"), ctx)
    p.receive(_plan(), ctx)
    ctx.time_ns = T0 + MIN
    p.receive(quote(bid="6990", ask="6991", size="4", ts=ctx.time_ns), ctx)
    assert _orders(ctx) == []  # stale: no slice, whatever quote arrives
    p.receive(FeedStatus(ts=ctx.time_ns, products=("BTC-USD",), state="recovered"), ctx)
    ctx.time_ns = T0 + 2 * MIN
    p.receive(quote(bid="6990", ask="6991", size="4", ts=ctx.time_ns), ctx)
    (first,) = _orders(ctx)
    assert first.side == Side.SELL and first.quantity > 0


def test_plan_slices_sell_at_risk_halted_but_nothing_trades_after_a_halt(
    holder: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = holder
    p.receive(risk_params(RiskLevel.HALTED), ctx)
    p.receive(_plan(), ctx)
    assert len(_orders(ctx)) == 1
    _execute(p, ctx, _orders(ctx)[0], "7000", 1)
    p.receive(Halt(reason="stop"), ctx)
    ctx.time_ns = T0 + MIN
    p.receive(quote(bid="7000", ask="7001", size="4", ts=ctx.time_ns), ctx)
    assert len(_orders(ctx)) == 1


def test_the_portfolio_reports_what_the_monitors_need(
    holder: tuple[PortfolioActor, FakeCtx],
) -> None:
    _, ctx = holder
    reports = [m for m in ctx.to("shutdown") if isinstance(m, MonitorReport)]
    assert reports and reports[-1].positions == (
        ExposureView(product="BTC-USD", quantity=D(10), mid=D("7000.5")),
    )
    assert reports[-1].risk_level == "NORMAL"


# -- ShutdownActor: triggers and plans ---------------------------------------------------------


def _cfg(**shutdown: Any) -> Config:
    return parse_config({"shutdown": shutdown}) if shutdown else Config()


@pytest.fixture
def venue() -> PaperExchange:
    v = PaperExchange(starting_cash=D(100_000), taker_fee=D("0.006"), maker_fee=D("0.004"))
    v.on_quote(quote(bid="7000", ask="7001", size="2", ts=T0))
    v.on_quote(quote("ETH-USD", bid="500", ask="500.5", size="20", ts=T0))
    return v


def _guardian(
    tmp_path: Path, venue: PaperExchange, cfg: Config | None = None
) -> tuple[ShutdownActor, FakeCtx]:
    path = str(tmp_path / "journal.sqlite")
    if not Path(path).exists():
        _journal(tmp_path)
    s, ctx = ShutdownActor(venue, path, cfg=cfg or Config()), FakeCtx(time_ns=T0)
    s.on_start(ctx)
    return s, ctx


def _book(
    ts: int = T0, equity: str = "100000", corr: tuple[float, float] = (0.5, 0.5), **kw: Any
) -> MonitorReport:
    """BTC 1 × 7,000 (σ 0.02) and ETH 20 × 500 (σ 0.01): BTC has the larger risk."""
    return MonitorReport(
        ts=ts,
        equity=D(equity),
        positions=(
            ExposureView(product="BTC-USD", quantity=D(1), mid=D(7000)),
            ExposureView(product="ETH-USD", quantity=D(20), mid=D(500)),
        ),
        risk_level=kw.pop("risk_level", "NORMAL"),
        volatility=(("BTC-USD", 0.02), ("ETH-USD", 0.01)),
        correlation=(("BTC-USD", corr[0]), ("ETH-USD", corr[1])),
        **kw,
    )


def _plans(ctx: FakeCtx) -> list[UnwindPlan]:
    return [m for m in ctx.to("portfolio") if isinstance(m, UnwindPlan)]


def _risk(
    level: RiskLevel, reason: str, previous: RiskLevel = RiskLevel.NORMAL
) -> RiskLevelChanged:
    return RiskLevelChanged(ts=T0, previous=previous, level=level, reason=reason)


def test_risk_reducing_unwinds_to_the_target_exposure_largest_risk_first(
    tmp_path: Path, venue: PaperExchange
) -> None:
    s, ctx = _guardian(tmp_path, venue, _cfg(unwind={"reduce_target_exposure": 0.08}))
    s.receive(_book(), ctx)
    s.receive(_risk(RiskLevel.REDUCING, "drawdown 2.10%"), ctx)
    (plan,) = _plans(ctx)
    assert plan.level is L.REDUCE and not plan.entries_allowed and plan.reduce_only
    # gross 17,000, target 8,000: BTC (RC 70) goes first and fully, ETH (RC 50) gives 2,000
    assert [(t.product, t.quantity) for t in plan.targets] == [
        ("BTC-USD", D(0)),
        ("ETH-USD", D(16)),
    ]
    assert plan.deadline_ns == T0 + 900 * S and plan.mode == "gradual"  # max_duration_s
    assert isinstance(ctx.to("execution")[0], CancelAllOrders)  # REDUCE includes cancel


def test_a_systemic_event_unwinds_the_most_correlated_exposure_first(
    tmp_path: Path, venue: PaperExchange
) -> None:
    s, ctx = _guardian(tmp_path, venue, _cfg(unwind={"reduce_target_exposure": 0.0}))
    s.receive(_book(corr=(0.8, 0.95)), ctx)
    s.receive(_risk(RiskLevel.REDUCING, "systemic risk: avg correlation 0.93, dd 1.20%"), ctx)
    (plan,) = _plans(ctx)
    assert [t.product for t in plan.targets] == ["ETH-USD", "BTC-USD"]
    s2, ctx2 = _guardian(tmp_path / "b", venue, _cfg(unwind={"reduce_target_exposure": 0.0}))
    s2.receive(_book(corr=(0.8, 0.95)), ctx2)
    s2.receive(_risk(RiskLevel.REDUCING, "drawdown 2.10%"), ctx2)
    assert [t.product for t in _plans(ctx2)[0].targets] == ["BTC-USD", "ETH-USD"]


@pytest.mark.parametrize(
    ("trigger", "expected", "cancels"),
    [
        (_risk(RiskLevel.HALTED, "daily loss 2.10%"), L.FLATTEN, True),
        (_risk(RiskLevel.CAUTION, "drawdown 1.0%"), None, False),
        (
            FeedStatus(ts=T0, products=("BTC-USD",), state="stale", reason="no data"),
            L.NO_ENTRIES,
            False,
        ),
        (FeedStatus(ts=T0, products=("BTC-USD",), state="degraded"), L.CANCEL_ORDERS, True),
        (_book(T0 + MIN, equity="91000"), L.FLATTEN, True),  # drawdown 9 % >= 8 %
        (_book(T0 + MIN, closed=20, rejected=15), L.NO_ENTRIES, False),  # error rate
        (_book(T0 + MIN, latency_ns=31 * S), L.NO_ENTRIES, False),  # an order open 31 s
    ],
    ids=["halted", "caution", "feed-stale", "feed-failed", "drawdown", "error-rate", "latency"],
)
def test_each_trigger_raises_its_configured_level(
    tmp_path: Path,
    venue: PaperExchange,
    trigger: Any,
    expected: ResponseLevel | None,
    cancels: bool,
) -> None:
    # a 30 s latency monitor needs splits shorter than 30 s (or none): config cross-check
    cfg = parse_config(
        {"shutdown": {"monitor": {"max_latency_s": 30}}, "execution": {"split_enabled": False}}
    )
    s, ctx = _guardian(tmp_path, venue, cfg)
    s.receive(_book(), ctx)
    s.receive(trigger, ctx)
    plans = _plans(ctx)
    if expected is None:
        assert plans == [] and s.programme.level is L.NORMAL
        return
    (plan,) = plans
    assert plan.level is expected and not plan.entries_allowed
    assert plan.flatten_rest == (expected is L.FLATTEN)
    assert any(isinstance(m, CancelAllOrders) for m in ctx.to("execution")) == cancels
    assert s.programme.held == (s.programme.trigger == "error_rate")


def test_a_trigger_can_be_configured_to_another_level(tmp_path: Path, venue: PaperExchange) -> None:
    s, ctx = _guardian(tmp_path, venue, _cfg(triggers={"risk_caution": "no_entries"}))
    s.receive(_risk(RiskLevel.CAUTION, "drawdown 1.0%"), ctx)
    assert _plans(ctx)[0].level is L.NO_ENTRIES


# -- recovery ----------------------------------------------------------------------------------


def test_after_a_market_unwind_it_recovers_by_itself_and_re_enters_gradually(
    tmp_path: Path, venue: PaperExchange
) -> None:
    s, ctx = _guardian(tmp_path, venue)
    s.receive(_book(), ctx)
    s.receive(_risk(RiskLevel.REDUCING, "drawdown 2.10%"), ctx)
    s.receive(_book(T0 + 10 * MIN, risk_level="REDUCING"), ctx)
    s.receive(_risk(RiskLevel.NORMAL, "recovered", RiskLevel.REDUCING), ctx)
    s.receive(_book(T0 + 20 * MIN, volatile=("BTC-USD",)), ctx)  # still volatile
    assert s.programme.level is L.REDUCE and "volatile" in s.programme.blocked_by
    s.receive(_book(T0 + 30 * MIN), ctx)  # the cool-down starts
    s.receive(_book(T0 + 89 * MIN), ctx)
    assert s.programme.level is L.REDUCE and "cool-down" in s.programme.blocked_by
    ctx.time_ns = T0 + 90 * MIN
    s.receive(_book(T0 + 90 * MIN), ctx)
    plan = _plans(ctx)[-1]
    assert plan.level is L.NORMAL and plan.entries_allowed and plan.size_multiplier == 0.25
    assert s.programme.recoveries == 1
    assert ctx.scheduled[-1] == (HOUR, Tick(kind="reentry:1"))
    s.receive(Tick(kind="reentry:1"), ctx)
    assert _plans(ctx)[-1].size_multiplier == 0.5
    s.receive(Tick(kind="reentry:1"), ctx)
    assert _plans(ctx)[-1].size_multiplier == 1.0
    assert len(ctx.scheduled) == 2  # the ramp is over
    s.on_stop(ctx)
    kinds = [e["kind"] for e in Journal(str(tmp_path / "journal.sqlite")).events()]
    assert "recovered" in kinds


def test_a_new_breach_during_the_cool_down_restarts_it(
    tmp_path: Path, venue: PaperExchange
) -> None:
    s, ctx = _guardian(tmp_path, venue)
    s.receive(_book(), ctx)
    s.receive(_risk(RiskLevel.REDUCING, "drawdown 2.10%"), ctx)
    s.receive(_risk(RiskLevel.NORMAL, "recovered", RiskLevel.REDUCING), ctx)
    s.receive(_book(T0 + 10 * MIN), ctx)
    s.receive(_book(T0 + 60 * MIN, equity="91000"), ctx)  # drawdown breach → FLATTEN
    assert s.programme.level is L.FLATTEN
    s.receive(_book(T0 + 71 * MIN, equity="91000"), ctx)
    s.receive(_book(T0 + 119 * MIN, equity="91000"), ctx)
    assert s.programme.level is L.FLATTEN  # the cool-down runs from the breach
    s.receive(_book(T0 + 120 * MIN, equity="91000"), ctx)
    assert s.programme.level is L.NORMAL


def test_the_drawdown_monitor_keeps_its_peak_through_a_breach_and_a_recovery(
    tmp_path: Path, venue: PaperExchange
) -> None:
    s, ctx = _guardian(tmp_path, venue)
    s.receive(_book(), ctx)
    s.receive(_book(T0 + 10 * MIN, equity="91000"), ctx)  # 9 % ≥ 8 %: FLATTEN
    assert s.programme.level is L.FLATTEN
    s.receive(_book(T0 + 80 * MIN, equity="91000"), ctx)  # recovered after the cool-down
    assert s.programme.level is L.NORMAL and s.monitors.peak == D(100000)
    s.receive(_book(T0 + 90 * MIN, equity="99000"), ctx)
    s.receive(_book(T0 + 100 * MIN, equity="101000"), ctx)  # a new peak re-arms it
    s.receive(_book(T0 + 110 * MIN, equity="92900"), ctx)  # 8.02 % below 101,000
    assert s.programme.level is L.FLATTEN and "peak 101000.00" in s.programme.reason


# -- operator commands -------------------------------------------------------------------------


def test_operator_flatten_is_held_until_resume(tmp_path: Path, venue: PaperExchange) -> None:
    s, ctx = _guardian(tmp_path, venue)
    s.receive(_book(), ctx)
    s.receive(OperatorCommand(command="flatten", reason="desk"), ctx)
    assert _plans(ctx)[-1].level is L.FLATTEN and s.programme.held
    s.receive(_book(T0 + 10 * HOUR), ctx)
    s.receive(_book(T0 + 20 * HOUR), ctx)
    assert s.programme.level is L.FLATTEN and "held" in s.programme.blocked_by
    s.receive(OperatorCommand(command="resume"), ctx)
    assert _plans(ctx)[-1].level is L.NORMAL and _plans(ctx)[-1].size_multiplier == 0.25


def test_operator_hold_stops_entries_and_flatten_then_stop_exits_0(
    tmp_path: Path, venue: PaperExchange
) -> None:
    s, ctx = _guardian(tmp_path, venue)
    s.receive(OperatorCommand(command="hold"), ctx)
    assert _plans(ctx)[-1].level is L.NO_ENTRIES
    s.receive(OperatorCommand(command="flatten", stop_after=True), ctx)
    plan = _plans(ctx)[-1]
    assert plan.level is L.FLATTEN and ctx.stopped == []
    s.receive(UnwindComplete(plan_id=plan.plan_id, slices=3), ctx)
    assert isinstance(ctx.to("portfolio")[-1], Halt)
    assert isinstance(ctx.to("execution")[-1], DrainOrders) and ctx.stopped == []
    s.receive(OrdersDrained(orders=0), ctx)
    assert ctx.stopped == [(0, "operator flatten then stop")]


def test_an_unknown_operator_command_is_journalled_and_ignored(
    tmp_path: Path, venue: PaperExchange
) -> None:
    s, ctx = _guardian(tmp_path, venue)
    s.receive(OperatorCommand(command="panic"), ctx)
    assert ctx.sent == [] and ctx.stopped == []


@pytest.mark.parametrize("keep", [False, True])
def test_an_orderly_stop_halts_drains_execution_then_stops(
    tmp_path: Path, venue: PaperExchange, keep: bool
) -> None:
    cfg = _cfg(stop_open_orders="keep") if keep else Config()
    s, ctx = _guardian(tmp_path, venue, cfg)
    s.receive(ShutdownRequested(reason="SIGTERM"), ctx)
    assert ctx.to("portfolio") == [Halt(ts=T0, reason="SIGTERM")]
    assert ctx.to("execution") == [
        DrainOrders(ts=T0, reason="SIGTERM", cancel=not keep, reply_to=ctx.name)
    ]
    assert ctx.scheduled == [(10 * S, Tick(kind="stop_wait"))]
    assert ctx.stopped == []  # not before the orders in flight are settled
    s.receive(OrdersDrained(orders=2), ctx)
    assert ctx.stopped == [(0, "SIGTERM")]
    s.receive(Tick(kind="stop_wait"), ctx)  # the deadline after the drain: nothing more
    assert ctx.stopped == [(0, "SIGTERM")]
    s.on_stop(ctx)
    events = Journal(str(tmp_path / "journal.sqlite")).events()
    assert [e["kind"] for e in events] == [
        "shutdown_requested",
        "response_level",
        "stopping",
        "stopped",
    ]
    assert events[-1]["detail"] == "exit 0: SIGTERM; drained (2 orders were open)"


def test_an_orderly_stop_ends_after_stop_wait_s_when_execution_never_drains(
    tmp_path: Path, venue: PaperExchange
) -> None:
    s, ctx = _guardian(tmp_path, venue, _cfg(stop_wait_s=2.5))
    s.receive(ShutdownRequested(reason="SIGTERM", exit_code=0), ctx)
    s.receive(ShutdownRequested(reason="SIGINT"), ctx)  # a second signal changes nothing
    assert ctx.scheduled == [(int(2.5 * S), Tick(kind="stop_wait"))] and ctx.stopped == []
    s.receive(Tick(kind="stop_wait"), ctx)
    assert ctx.stopped == [(0, "SIGTERM")]
    s.receive(OrdersDrained(orders=0), ctx)  # too late: stops once
    assert ctx.stopped == [(0, "SIGTERM")]
    s.on_stop(ctx)
    last = Journal(str(tmp_path / "journal.sqlite")).events()[-1]
    assert last["detail"] == "exit 0: SIGTERM; still draining after 2.5s"


# -- escalation: the ExecutionActor is dead ----------------------------------------------------


def _hold_btc(venue: PaperExchange, tmp_path: Path, qty: str = "5") -> str:
    """Buy ``qty`` BTC at the venue (a real order); journal its fills like the portfolio."""
    order = SubmitOrder(
        ts=T0,
        client_order_id="cj-buy",
        product="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=D(qty),
    )
    venue.submit(order, T0)
    return _journal(tmp_path, list(venue.fills_for("cj-buy")))


def test_by_default_an_escalation_cancels_through_the_own_client_and_keeps_positions(
    tmp_path: Path, venue: PaperExchange
) -> None:
    _hold_btc(venue, tmp_path)
    s, ctx = _guardian(tmp_path, venue)
    s.receive(EscalatedFailure(supervisor="root", reason="intensity"), ctx)
    assert ctx.stopped == [(3, "root: intensity")]
    assert venue.balances()["BTC"] == D(5)


def test_with_execution_dead_the_guardian_flattens_through_its_own_venue_client(
    tmp_path: Path, venue: PaperExchange
) -> None:
    _hold_btc(venue, tmp_path)
    venue.submit(  # a fill the journal never got (the portfolio died before applying it)
        SubmitOrder(
            ts=T0,
            client_order_id="cj-lost",
            product="ETH-USD",
            side=Side.BUY,
            order_type=OrderType.MARKET,
            quantity=D(3),
        ),
        T0,
    )
    cfg = _cfg(triggers={"escalation": "flatten"}, unwind={"emergency_deadline_s": 30})
    s, ctx = _guardian(tmp_path, venue, cfg)
    s.receive(_book(), ctx)
    s.receive(EscalatedFailure(supervisor="root", reason="intensity"), ctx)  # no execution
    assert ctx.to("execution") == [] and ctx.stopped == []
    # BTC first (the larger risk): one slice of half the 2 BTC top, at the touch; ETH waits
    assert venue.balances()["BTC"] == D(4) and venue.balances()["ETH"] == D(3)
    assert ctx.scheduled == [(5 * S, Tick(kind="emergency"))]
    for step in range(1, 6):  # the book does not change (the feed is down too): wait
        ctx.time_ns = T0 + step * 5 * S
        s.receive(Tick(kind="emergency"), ctx)
    assert venue.balances()["BTC"] == D(4) and ctx.stopped == []
    ctx.time_ns = T0 + 30 * S  # the deadline: the remainders at market, walking the book
    s.receive(Tick(kind="emergency"), ctx)
    assert ctx.stopped == [(3, "root: intensity")]
    assert venue.balances()["BTC"] == 0
    journal = Journal(str(tmp_path / "journal.sqlite"))
    ledger = Ledger(D(100_000))
    for f in journal.fills():
        ledger.apply_fill(f)
    assert ledger.cash == venue.balances()["USD"]  # the journal agrees with the venue
    assert ledger.position("BTC-USD") == 0 and ledger.position("ETH-USD") == 0
    assert journal.open_intents() == []
    kinds = [e["kind"] for e in journal.events() if e["kind"] != "unwind_slice"]
    assert kinds[-4:] == [
        "emergency",
        "emergency_cancelled",
        "emergency_flatten",
        "emergency_flattened",
    ]
    slices = unwind_figures(journal)
    assert slices["unwind_slices"] == 3 and slices["unwind_slippage_bps"] > 0
    detail = journal.events("emergency_flatten")[0]["detail"]
    assert "BTC-USD, ETH-USD" in detail and "1 venue fills adopted" in detail


def test_a_restart_after_an_emergency_starts_held_until_resume(
    tmp_path: Path, venue: PaperExchange
) -> None:
    s, ctx = _guardian(tmp_path, venue)
    s.receive(EscalatedFailure(supervisor="root", reason="intensity"), ctx)
    s.on_stop(ctx)
    again, ctx2 = _guardian(tmp_path, venue)
    assert ctx2.sent == [] and again.programme.level is L.NO_ENTRIES and again.programme.held
    again.receive(PlanRequest(), ctx2)
    (plan,) = _plans(ctx2)
    assert plan.level is L.NO_ENTRIES and not plan.entries_allowed
    again.receive(OperatorCommand(command="resume", reason="fixed"), ctx2)
    assert _plans(ctx2)[-1].level is L.NORMAL
    again.on_stop(ctx2)
    third, _ = _guardian(tmp_path, venue)
    assert third.programme.level is L.NORMAL


def test_a_held_operator_programme_survives_a_restart(tmp_path: Path, venue: PaperExchange) -> None:
    s, ctx = _guardian(tmp_path, venue)
    s.receive(OperatorCommand(command="flatten", reason="desk"), ctx)
    s.on_stop(ctx)
    again, _ = _guardian(tmp_path, venue)
    assert again.programme.level is L.FLATTEN and again.programme.held


def test_plans_are_immutable_and_serialisable() -> None:
    plan = _plan()
    with pytest.raises(AttributeError):
        plan.level = L.NORMAL  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(plan), type=UnwindPlan) == plan
    assert isinstance(quote(), Quote)


def test_the_unwind_deadline_is_configured_and_validated() -> None:
    u = Config().shutdown.unwind
    assert (u.max_duration_s, u.adverse_move_bps, u.volatile_multiplier) == (900.0, 50.0, 2.0)
    assert u.coarse_depth_multiple == 3.0
    bad = {
        "max_duration_s": 0,
        "adverse_move_bps": -1,
        "volatile_multiplier": 0.5,
        "coarse_depth_multiple": 0,
    }
    with pytest.raises(ConfigError) as e:
        parse_config({"shutdown": {"unwind": bad}})
    assert sorted(p.split(":")[0] for p in e.value.problems) == [
        "shutdown.unwind.adverse_move_bps",
        "shutdown.unwind.coarse_depth_multiple",
        "shutdown.unwind.max_duration_s",
        "shutdown.unwind.volatile_multiplier",
    ]


def test_on_minute_books_a_plan_ends_within_max_duration_s_of_market_time(
    holder: tuple[PortfolioActor, FakeCtx],
) -> None:
    """10 BTC against a 4 BTC touch (slices of 2 at most by depth) with the default 900 s
    deadline and a book every minute: paced, the last slice trades at or before the deadline."""
    p, ctx = holder
    p.receive(_plan(deadline_ns=T0 + 900 * S), ctx)
    n = 0
    while p.ledger.position("BTC-USD") > 0:
        assert n < 30
        if len(_orders(ctx)) > n:
            n += 1
            _execute(p, ctx, _orders(ctx)[-1], "7000", n)
        ctx.time_ns += MIN
        p.receive(quote(bid="7000", ask="7001", size="0.4", ts=ctx.time_ns), ctx)
    assert len(_orders(ctx)) >= 10  # spread over the books up to the deadline
    assert _orders(ctx)[-1].ts - T0 <= 900 * S  # the last slice: within the deadline
    assert any("pace" in o.reason for o in _orders(ctx))
