"""Rebalance transactions through the real PortfolioActor (recording context, real journal):
multi-leg plans (sells first), a replan on a newer risk version, rollback after a rejection,
a timeout and a crash, compensation, liquidity-aware legs, and the journal audit after each."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.config import Config, parse_config
from cryptoj.journal import Journal
from cryptoj.models.orders import (
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
from cryptoj.models.risk import RiskLevel
from cryptoj.models.signals import TargetWeight
from cryptoj.models.system import Halt, Tick
from cryptoj.portfolio.audit import txn_problems
from cryptoj.portfolio.ledger import Ledger
from cryptoj.portfolio.rebalance import LegRules, ProductView, plan_legs
from tests.stubs import FakeCtx, quote, risk_params

D = Decimal
T0 = 1_522_800_060_000_000_000
MIN = 60_000_000_000


def _journal(tmp_path: Path, eth: str = "0", btc: str = "0") -> str:
    """A journal with 100,000 USD, ``eth`` ETH bought at 500 and ``btc`` BTC at 7,000."""
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", "100000")
    ledger = Ledger(D(100000))
    for n, (product, qty, price) in enumerate((("ETH-USD", eth, 500), ("BTC-USD", btc, 7000))):
        if D(qty) <= 0:
            continue
        f = Fill(
            ts=T0,
            fill_id=f"F0-{n}",
            client_order_id=f"old-{n}",
            product=product,
            side=Side.BUY,
            quantity=D(qty),
            price=D(price),
            fee=D(0),
            liquidity="TAKER",
        )
        h = ledger.apply_fill(f)
        j.record_fill(f, h.quantity, h.average_price, ledger.cash)
    j.close()
    return path


def _cfg(**portfolio: Any) -> Config:
    return parse_config(
        {
            "portfolio": {"weighting": "signal", **portfolio},
            "execution": {"max_duration_s": 60.0},  # leg timeouts must outlast a split
        }
    )


def _target(product: str, weight: float, reason: str = "test") -> TargetWeight:
    return TargetWeight(ts=T0, strategy_id="t", product=product, weight=weight, reason=reason)


def _quotes(p: PortfolioActor, ctx: FakeCtx, size: str = "100", ts: int = T0) -> None:
    p.receive(quote("ETH-USD", bid="500", ask="500.5", size=size, ts=ts), ctx)
    p.receive(quote("BTC-USD", bid="7000", ask="7001", size=size, ts=ts), ctx)


def _orders(ctx: FakeCtx) -> list[SubmitOrder]:
    return [m for m in ctx.to("execution") if isinstance(m, SubmitOrder)]


def _close(p: PortfolioActor, ctx: FakeCtx, o: SubmitOrder, qty: str | None = None) -> None:
    """The venue fills ``o`` (all of it, or ``qty``) at the touch and closes it."""
    filled = o.quantity if qty is None else D(qty)
    if filled > 0:
        p.receive(
            Fill(
                ts=ctx.time_ns,
                fill_id=f"F-{o.client_order_id}",
                client_order_id=o.client_order_id,
                product=o.product,
                side=o.side,
                quantity=filled,
                price=D("7001") if o.product == "BTC-USD" else D("500"),
                fee=D(0),
                liquidity="TAKER",
            ),
            ctx,
        )
    status = OrderStatus.FILLED if filled == o.quantity else OrderStatus.EXPIRED
    p.receive(
        OrderClosed(
            ts=ctx.time_ns,
            client_order_id=o.client_order_id,
            product=o.product,
            status=status,
            filled_quantity=filled,
        ),
        ctx,
    )


def _steps(p: PortfolioActor) -> list[str]:
    assert p.journal is not None
    return [str(s["step"]) for s in p.journal.txn_steps()]


def _states(p: PortfolioActor) -> list[str]:
    assert p.journal is not None
    return [str(t["state"]) for t in p.journal.txns()]


@pytest.fixture
def rotation(tmp_path: Path) -> tuple[PortfolioActor, FakeCtx]:
    """Holding 20 ETH (10,000 USD); the targets move everything from ETH to BTC.

    Signals and quotes arrive before any risk view, so the first plan (on the next signal,
    which re-evaluates every product) holds both legs: sell ETH, buy BTC.
    """
    p, ctx = PortfolioActor(_cfg(), _journal(tmp_path, eth="20")), FakeCtx(time_ns=T0)
    p.on_start(ctx)
    _quotes(p, ctx)
    p.receive(_target("ETH-USD", 0.0), ctx)
    p.receive(_target("BTC-USD", 0.10), ctx)
    p.receive(risk_params(), ctx)
    assert _orders(ctx) == []
    p.receive(_target("BTC-USD", 0.10), ctx)  # the strategy re-states its signal
    return p, ctx


def test_a_rotation_is_one_transaction_selling_first_with_every_leg_reserved_up_front(
    rotation: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = rotation
    (sell,) = _orders(ctx)
    assert (sell.product, sell.side, sell.quantity) == ("ETH-USD", Side.SELL, D(20))
    assert "risk v1 NORMAL" in sell.reason and "leg 1/2" in sell.reason
    # the buy is reserved (its cash held) but not sent while the sell is open
    (buy_leg,) = [r for r in p.ledger.reservations.values() if r.side == Side.BUY]
    assert buy_leg.product == "BTC-USD" and buy_leg.cash > 0
    assert p.ledger.available_cash() < D(100000) - buy_leg.cash + 1
    _close(p, ctx, sell)
    buy = _orders(ctx)[-1]
    assert (buy.product, buy.side, buy.client_order_id) == (
        "BTC-USD",
        Side.BUY,
        buy_leg.client_order_id,
    )
    _close(p, ctx, buy)
    assert _states(p) == ["COMMITTED"]
    assert _steps(p) == [
        "planned",
        "sells_sent",
        "leg_closed",
        "buys_sent",
        "leg_closed",
        "committed",
    ]
    assert p.ledger.reservations == {}
    assert p.journal is not None and txn_problems(p.journal, finished=True) == []


def test_a_rejected_sell_rolls_back_and_the_buy_is_never_sent(
    rotation: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = rotation
    (sell,) = _orders(ctx)
    p.receive(
        OrderRejected(ts=T0, client_order_id=sell.client_order_id, product="ETH-USD", reason="x"),
        ctx,
    )
    assert _orders(ctx) == [sell]  # no buy went out, and no retry in the same instant
    assert p.ledger.reservations == {}  # the buy's cash is released too
    assert _states(p) == ["ROLLED_BACK"]
    assert p.journal is not None
    legs = {r["side"]: r for r in p.journal.txn_legs()}
    assert legs["SELL"]["state"] == "FAILED" and legs["BUY"]["state"] == "CANCELLED"
    assert p.journal.open_intents() == []
    assert txn_problems(p.journal, finished=True) == []
    # the next trigger plans again
    p.receive(quote("ETH-USD", bid="500", ask="500.5", size="100", ts=T0 + MIN), ctx)
    assert len(_orders(ctx)) == 2 and _orders(ctx)[-1].product == "ETH-USD"


def test_a_newer_risk_version_mid_plan_replans_and_never_mixes_versions(
    rotation: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = rotation
    (sell,) = _orders(ctx)
    tighter = msgspec.structs.replace(risk_params(cap=0.05), version=2)
    p.receive(tighter, ctx)
    assert _states(p) == ["SUPERSEDING"]
    assert [r.side for r in p.ledger.reservations.values()] == [Side.SELL]  # buy dropped
    _close(p, ctx, sell)  # the sell ends the superseded transaction: plan again under v2
    assert _states(p) == ["SUPERSEDED", "BUYING"]
    buy = _orders(ctx)[-1]
    assert buy.product == "BTC-USD" and "risk v2 NORMAL" in buy.reason
    assert buy.quantity * D("7000.5") <= D("0.05") * p.equity() + 1
    assert not any("risk v1" in o.reason for o in _orders(ctx) if o.side == Side.BUY)
    _close(p, ctx, buy)
    assert _states(p) == ["SUPERSEDED", "COMMITTED"]
    assert p.journal is not None and txn_problems(p.journal, finished=True) == []


def test_a_crash_mid_transaction_recovers_to_a_consistent_journal(
    rotation: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = rotation
    (sell,) = _orders(ctx)
    half = D(10)
    p.receive(  # half the sell filled, then the actor dies
        Fill(
            ts=T0,
            fill_id="F-half",
            client_order_id=sell.client_order_id,
            product="ETH-USD",
            side=Side.SELL,
            quantity=half,
            price=D(500),
            fee=D(0),
            liquidity="TAKER",
        ),
        ctx,
    )
    again, ctx2 = PortfolioActor(_cfg(), p.journal_path), FakeCtx(time_ns=T0 + MIN)
    again.on_start(ctx2)
    # the planned buy was never rebuilt; the sent sell is cancelled at the venue and reconciled
    assert list(again.ledger.reservations) == [sell.client_order_id]
    assert again.ledger.reservations[sell.client_order_id].filled == half
    assert ctx2.to("execution") == [
        CancelOrder(ts=ctx2.time_ns, client_order_id=sell.client_order_id),
        OrderStatusRequest(ts=ctx2.time_ns, client_order_ids=(sell.client_order_id,)),
    ]
    assert _states(again) == ["ROLLING_BACK"]
    again.receive(
        OrderStatusReport(
            ts=ctx2.time_ns,
            client_order_id=sell.client_order_id,
            known=True,
            status=OrderStatus.CANCELLED,
            filled_quantity=half,
        ),
        ctx2,
    )
    assert _states(again) == ["ROLLED_BACK"] and again.ledger.reservations == {}
    assert again.ledger.position("ETH-USD") == D(10)  # the completed part is kept
    assert again.journal is not None
    assert "recovered" in _steps(again) and txn_problems(again.journal, finished=True) == []


def test_compensation_sells_back_what_a_failed_transaction_bought(tmp_path: Path) -> None:
    p, ctx = PortfolioActor(_cfg(rollback="compensate"), _journal(tmp_path)), FakeCtx(time_ns=T0)
    p.on_start(ctx)
    _quotes(p, ctx)
    p.receive(_target("ETH-USD", 0.05), ctx)
    p.receive(_target("BTC-USD", 0.05), ctx)
    p.receive(risk_params(), ctx)
    p.receive(_target("BTC-USD", 0.05), ctx)  # re-stated: one plan for both products
    btc, eth = sorted(_orders(ctx), key=lambda o: o.product)
    _close(p, ctx, btc)
    p.receive(
        OrderRejected(ts=T0, client_order_id=eth.client_order_id, product="ETH-USD", reason="x"),
        ctx,
    )
    back = _orders(ctx)[-1]
    assert (back.product, back.side, back.quantity) == ("BTC-USD", Side.SELL, btc.quantity)
    assert "compensation" in back.reason
    assert btc.split and not back.split  # a rebalance leg may be split, its compensation not
    assert p.journal is not None
    txns = p.journal.txns()
    assert [(t["kind"], t["state"]) for t in txns] == [
        ("rebalance", "ROLLED_BACK"),
        ("compensation", "SELLING"),
    ]
    assert txns[1]["parent"] == txns[0]["txn_id"]
    _close(p, ctx, back)
    assert p.ledger.position("BTC-USD") == 0
    assert txn_problems(p.journal, finished=True) == []


def test_a_leg_beyond_the_visible_depth_is_marked_limited_and_cancelled_at_its_timeout(
    tmp_path: Path,
) -> None:
    cfg = _cfg(limit_bps=20.0, max_depth_multiple=2.0, leg_timeout_s=120.0)
    p, ctx = PortfolioActor(cfg, _journal(tmp_path)), FakeCtx(time_ns=T0)
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote("BTC-USD", bid="7000", ask="7001", size="0.4", ts=T0), ctx)
    p.receive(_target("BTC-USD", 0.10), ctx)
    (buy,) = _orders(ctx)
    # 10,000 USD is 1.43 BTC, 3.6× the 0.4 visible: capped at 2× and sent as a LIMIT order
    assert buy.quantity == D("0.8") and buy.order_type == OrderType.LIMIT
    assert buy.limit_price == D("7015.002") and "beyond depth" in buy.reason
    assert (120 * 10**9, Tick(kind=f"leg_timeout:{buy.client_order_id}")) in ctx.scheduled
    p.receive(Tick(kind=f"leg_timeout:{buy.client_order_id}"), ctx)
    assert ctx.to("execution")[-1] == CancelOrder(ts=T0, client_order_id=buy.client_order_id)
    _close(p, ctx, buy, qty="0.3")  # the venue's close after the cancel: 0.3 of 0.8 filled
    assert _states(p) == ["ROLLED_BACK"] and p.ledger.position("BTC-USD") == D("0.3")
    assert p.journal is not None
    (leg,) = p.journal.txn_legs()
    assert (leg["state"], leg["timed_out"], leg["beyond_depth"]) == ("PARTIAL", 1, 1)
    assert txn_problems(p.journal, finished=True) == []


@pytest.mark.parametrize("overtake", ["halt", "risk halted", "signal drops"])
def test_whatever_takes_precedence_rolls_the_open_transaction_back(
    tmp_path: Path, overtake: str
) -> None:
    p, ctx = PortfolioActor(_cfg(), _journal(tmp_path, eth="20")), FakeCtx(time_ns=T0)
    p.on_start(ctx)
    _quotes(p, ctx)
    p.receive(_target("ETH-USD", 0.10), ctx)  # 20 ETH is 10,000: no trade
    p.receive(_target("BTC-USD", 0.10), ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote("BTC-USD", bid="7000", ask="7001", size="100", ts=T0), ctx)
    (buy,) = _orders(ctx)
    if overtake == "halt":
        p.receive(Halt(reason="operator"), ctx)
    elif overtake == "risk halted":
        p.receive(risk_params(RiskLevel.HALTED), ctx)
    else:
        p.receive(_target("BTC-USD", 0.0), ctx)
    assert ctx.to("execution")[-1] == CancelOrder(ts=T0, client_order_id=buy.client_order_id)
    assert _states(p) == ["ROLLING_BACK"]
    _close(p, ctx, buy, qty="0")
    assert _states(p) == ["ROLLED_BACK"] and p.ledger.reservations == {}
    assert p.journal is not None and txn_problems(p.journal, finished=True) == []


def test_a_stop_loss_takes_its_product_from_an_open_transaction(tmp_path: Path) -> None:
    cfg = _cfg(limit_bps=10.0)
    p, ctx = PortfolioActor(cfg, _journal(tmp_path, btc="0.5")), FakeCtx(time_ns=T0)
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote("BTC-USD", bid="7000", ask="7001", size="0.1", ts=T0), ctx)
    p.receive(_target("BTC-USD", 0.10), ctx)
    (buy,) = _orders(ctx)  # a resting LIMIT leg (beyond the 0.1 BTC visible)
    assert buy.side == Side.BUY and buy.order_type == OrderType.LIMIT
    ctx.time_ns = T0 + MIN
    p.receive(quote("BTC-USD", bid="6600", ask="6601", size="0.1", ts=ctx.time_ns), ctx)
    # the stop loss (bid 5.7 % under the 7,000 entry) rolls the transaction back first ...
    assert ctx.to("execution")[-1] == CancelOrder(
        ts=ctx.time_ns, client_order_id=buy.client_order_id
    )
    assert _states(p) == ["ROLLING_BACK"]
    _close(p, ctx, buy, qty="0")
    assert _states(p) == ["ROLLED_BACK"]
    # ... then sells on the next book, and the rebalancer leaves the product alone
    ctx.time_ns = T0 + 2 * MIN
    p.receive(quote("BTC-USD", bid="6590", ask="6591", size="0.1", ts=ctx.time_ns), ctx)
    sell = _orders(ctx)[-1]
    assert sell.side == Side.SELL and sell.reason.startswith("stop loss")
    assert p.journal is not None and txn_problems(p.journal, finished=True) == []


def test_the_journal_audit_catches_an_inconsistent_record(
    rotation: tuple[PortfolioActor, FakeCtx],
) -> None:
    p, ctx = rotation
    assert p.journal is not None
    assert txn_problems(p.journal) == []
    assert txn_problems(p.journal, finished=True) == [
        f"transactions still open at the end: {[p.journal.txns()[0]['txn_id']]}"
    ]
    (sell,) = _orders(ctx)
    p.journal.close_intent(sell.client_order_id, "FILLED", T0)  # behind the transaction's back
    assert any("leg SENT but intent FILLED" in x for x in txn_problems(p.journal))


def test_leg_sizing_against_depth_and_funding() -> None:
    q = quote(bid="7000", ask="7001", size="2")
    view = ProductView("BTC-USD", D(0), D(0), q, target=0.10, threshold=0.005)
    (leg,) = plan_legs(D(100_000), [view], LegRules())
    assert (
        leg.quantity == D("1.42836737") and leg.beyond_depth and leg.order_type == OrderType.MARKET
    )
    assert leg.depth_multiple == pytest.approx(0.714, abs=1e-3)
    within = msgspec.structs.replace(q, ask_size=D(10), bid_size=D(10))
    (leg,) = plan_legs(
        D(100_000), [ProductView("BTC-USD", D(0), D(0), within, 0.10, 0.005)], LegRules()
    )
    assert not leg.beyond_depth
    # within the drift band: nothing; a target of 0 always closes the position
    assert (
        plan_legs(D(100_000), [ProductView("BTC-USD", D(1), D(1), q, 0.072, 0.005)], LegRules())
        == []
    )
    (close,) = plan_legs(
        D(100_000), [ProductView("BTC-USD", D("0.0001"), D("0.0001"), q, 0.0, 0.005)], LegRules()
    )
    assert close.side == Side.SELL and close.quantity == D("0.0001")
    # reduce-only products get no buy
    assert (
        plan_legs(
            D(100_000),
            [ProductView("BTC-USD", D(0), D(0), q, 0.1, 0.005, reduce_only=True)],
            LegRules(),
        )
        == []
    )
