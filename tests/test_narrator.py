"""The daemon's decision lines, heartbeat and pace estimate (pure: no threads, no daemon)."""

from __future__ import annotations

from decimal import Decimal

from cryptoj.models.base import Message
from cryptoj.models.market import FeedFinished
from cryptoj.models.orders import (
    Fill,
    OrderClosed,
    OrderRejected,
    OrderStatus,
    OrderType,
    Side,
    SubmitOrder,
)
from cryptoj.models.portfolio import PortfolioSnapshot, Position
from cryptoj.models.risk import RiskLevel, RiskLevelChanged
from cryptoj.ops.narrator import Narrator, duration, feed_state, heartbeat_line, pace_line
from cryptoj.runtime.common import Envelope
from tests.stubs import risk_params

TS = 1_522_800_060_000_000_000


class Clock:
    """Seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def env(msg: Message, sender: str = "x") -> Envelope:
    return Envelope(msg, sender, "m1", "c1", "")


def narrator(clock: Clock | None = None) -> tuple[Narrator, list[tuple[str, str]]]:
    said: list[tuple[str, str]] = []
    return Narrator(
        lambda lvl, line: said.append((lvl, line)), burst=3, window_s=10, clock=clock or Clock()
    ), said


def fill(n: int, qty: str = "1", price: str = "100") -> Fill:
    return Fill(
        ts=TS,
        fill_id=f"f{n}",
        client_order_id="cj-1",
        product="BTC-USD",
        side=Side.BUY,
        quantity=Decimal(qty),
        price=Decimal(price),
        fee=Decimal("0.1"),
        liquidity="TAKER",
    )


def test_an_order_its_fills_and_its_close_are_one_line_each_at_the_acting_actor() -> None:
    n, said = narrator()
    order = SubmitOrder(
        ts=TS,
        client_order_id="cj-1",
        product="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal("2"),
        reason="target 0.1",
    )
    n.observe("execution", env(order, "portfolio"))
    n.observe("portfolio", env(order))  # not where it is acted on: silent
    n.observe("portfolio", env(fill(1, "1", "100"), "execution"))
    n.observe("execution", env(fill(1, "1", "100"), "venue"))  # the venue's copy: silent
    n.observe("portfolio", env(fill(2, "1", "102"), "execution"))
    n.observe("portfolio", env(fill(2, "1", "102"), "execution"))  # delivered again: once
    closed = OrderClosed(
        ts=TS,
        client_order_id="cj-1",
        product="BTC-USD",
        status=OrderStatus.FILLED,
        filled_quantity=Decimal("2"),
    )
    n.observe("portfolio", env(closed, "execution"))
    lines = [line for _, line in said]
    assert lines == [
        "order sent cj-1: BUY MARKET 2 BTC-USD (target 0.1)",
        "filled cj-1: BUY 1 BTC-USD @ 100, fee 0.1",
        "filled cj-1: BUY 1 BTC-USD @ 102, fee 0.1",
        "order closed cj-1: FILLED, filled 2 BTC-USD in 2 fill(s), avg price 101",
    ]
    assert n.counts == {"sent": 1, "fills": 2, "rejected": 0}


def test_bursts_are_rate_limited_and_the_next_line_says_how_many_were_left_out() -> None:
    clock = Clock()
    n, said = narrator(clock)
    for i in range(8):
        n.observe("portfolio", env(fill(i), "execution"))
    assert len(said) == 3
    clock.t = 10.0
    n.observe("portfolio", env(fill(9), "execution"))
    assert said[-1][1].endswith("(+5 fill line(s) not shown)")
    rejected = OrderRejected(ts=TS, client_order_id="cj-2", product="BTC-USD", reason="no cash")
    n.observe("portfolio", env(rejected, "execution"))  # another kind: its own budget
    assert said[-1] == ("WARNING", "order rejected cj-2 BTC-USD: no cash")


def test_risk_level_changes_restarts_and_the_end_of_data_are_said() -> None:
    n, said = narrator()
    change = RiskLevelChanged(
        ts=TS, previous=RiskLevel.NORMAL, level=RiskLevel.REDUCING, reason="drawdown 6%"
    )
    n.observe("shutdown", env(change, "risk"))
    n.lifecycle("feed", "start", 2)
    n.lifecycle("portfolio", "crash", 1, "ValueError: boom")
    n.observe("shutdown", env(FeedFinished(ts=TS, events=42), "feed"))
    lines = [line for _, line in said]
    assert lines[0] == "risk level NORMAL → REDUCING: drawdown 6%"
    assert lines[1] == "feed reconnected (generation 2)"
    assert lines[2] == "actor portfolio crashed: ValueError: boom"
    assert lines[3].startswith("end of data: the replay source is exhausted after 42 events")


def test_the_heartbeat_names_equity_positions_risk_and_feed() -> None:
    snap = PortfolioSnapshot(
        ts=TS,
        cash=Decimal("90000"),
        reserved_cash=Decimal(0),
        equity=Decimal("100500.5"),
        positions=(
            Position(
                ts=TS,
                product="BTC-USD",
                quantity=Decimal("1.5"),
                average_price=Decimal(7000),
                mark_price=Decimal(7000),
            ),
            Position(
                ts=TS,
                product="ETH-USD",
                quantity=Decimal(0),
                average_price=Decimal(0),
                mark_price=Decimal(400),
            ),
        ),
        open_orders=1,
    )
    view = {"portfolio": snap, "risk": risk_params(), "last_market_ts": TS}
    line = heartbeat_line(view, feed_state=feed_state(view, live=False), speed=60)
    assert line == (
        "heartbeat: equity 100,500.50 (cash 90,000.00); positions BTC-USD 1.5, 1 open order(s); "
        "risk NORMAL; feed replaying; market 2018-04-04 00:01 60x"
    )
    counts = {"sent": 3, "fills": 7, "rejected": 1}
    assert heartbeat_line(view, feed_state="finished", speed=0, counts=counts).endswith(
        "market 2018-04-04 00:01 max speed; since start: 3 orders sent, 7 fills, 1 rejected"
    )
    assert feed_state({"feed_finished": True}, live=False) == "finished"
    assert "equity -" in heartbeat_line({}, feed_state="connecting", speed=1)


def test_the_pace_estimate() -> None:
    two_days = 2 * 86_400 * 10**9
    assert pace_line(TS, TS + two_days, 2880, 60).endswith("at 60x takes about 48 min (feed.speed)")
    assert "as fast as possible" in pace_line(TS, TS + two_days, 2880, 0)
    assert pace_line(0, 0, 0, 60) == "replay: no market data left to replay"
    assert [duration(s) for s in (5, 600, 7200, 3 * 86400)] == [
        "5 s",
        "10 min",
        "2.0 h",
        "3.0 days",
    ]


def test_an_unwind_is_said_plan_slices_and_end() -> None:
    from cryptoj.models.unwind import (
        ResponseLevel,
        UnwindComplete,
        UnwindPlan,
        UnwindSliceReport,
        UnwindTarget,
    )

    n, said = narrator()
    plan = UnwindPlan(
        ts=TS,
        plan_id="u1",
        level=ResponseLevel.FLATTEN,
        trigger="drawdown",
        reason="drawdown 9% > 8%",
        targets=(UnwindTarget(product="BTC-USD", quantity=Decimal(0), priority=1.0),),
    )
    n.observe("portfolio", env(plan, "shutdown"))
    report = UnwindSliceReport(
        ts=TS, plan_id="u1", trigger="drawdown", product="BTC-USD", client_order_id="cj-9",
        quantity=Decimal("0.5"), filled=Decimal("0.5"), average_price=Decimal(7000),
        arrival_mid=Decimal(7001), start_mid=Decimal(7002), slippage_bps=1.4, shortfall_bps=2.9,
        remaining_quantity=Decimal("1.5"), remaining_exposure=Decimal(10500), at_market=False,
        status="FILLED", started_ns=TS,
    )  # fmt: skip
    n.observe("shutdown", env(report, "portfolio"))
    n.observe("shutdown", env(UnwindComplete(ts=TS, plan_id="u1", slices=4), "portfolio"))
    assert [line for _, line in said] == [
        "unwind u1: level FLATTEN (drawdown), 1 target(s), mode gradual: drawdown 9% > 8%",
        "unwind slice cj-9: BTC-USD FILLED, filled 0.5 of 0.5, remaining 1.5",
        "unwind u1 complete: 4 slices",
    ]
