"""Available cash under fills that cost more than their reservation (issue: the PortfolioActor
crashed with ``0/0`` in ``fund_buys`` in an overloaded paper run).

How it happens: a buy reserves its quantity at the price the portfolio saw, with headroom and
fees. When the venue's book has moved further before the order fills (under load the
portfolio's conflated quotes lag the venue's), the fill costs more than the reservation, the
excess comes out of cash other reservations count on, and available cash goes negative. A
plan with only sells then divided zero buy cost by nothing.

The fix: market buys carry ``max_price``, the price their reservation covers, and the venue fills
no further (the rest expires); ``fund_buys`` drops buys when available cash is not positive; and
a fill beyond its reservation (a venue that ignores the cap) is journalled as an ``overdraft``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.config import Config
from cryptoj.journal import Journal
from cryptoj.models.orders import Fill, OrderClosed, OrderStatus, OrderType, Side, SubmitOrder
from cryptoj.models.signals import TargetWeight
from cryptoj.portfolio.ledger import Ledger
from cryptoj.portfolio.rebalance import LegPlan, buy_cost, fund_buys
from cryptoj.venues.paper import PaperExchange
from tests.stubs import FakeCtx, quote, risk_params

D = Decimal
FEE = D("0.006")
T0 = 1_522_800_060_000_000_000


def _fill(coid: str, qty: str, price: str, side: Side = Side.BUY, n: int = 1) -> Fill:
    q, p = D(qty), D(price)
    return Fill(
        ts=T0,
        fill_id=f"F{n}",
        client_order_id=coid,
        product="BTC-USD",
        side=side,
        quantity=q,
        price=p,
        fee=(q * p * FEE).quantize(D("0.00000001")),
        liquidity="TAKER",
    )


def test_a_fill_above_the_reservations_headroom_overdraws_available_cash() -> None:
    ledger = Ledger(cash=D(10_000))
    held = buy_cost(D(1), D(7001), FEE)  # 1 BTC reserved at the ask the portfolio saw
    assert not isinstance(ledger.reserve("buy-btc", "BTC-USD", Side.BUY, D(1), held), str)
    assert not isinstance(ledger.reserve("buy-eth", "ETH-USD", Side.BUY, D(5), D(2500)), str)
    fill = _fill("buy-btc", "1", "7700")  # the venue's book had moved 10 % meanwhile
    assert ledger.overdraft(fill) == -fill.cash_delta - held > 0
    ledger.apply_fill(fill)
    assert ledger.available_cash() < 0
    assert ledger.problems() == [f"reservations exceed cash: available {ledger.available_cash()}"]


def test_a_fill_within_its_reservation_is_no_overdraft() -> None:
    ledger = Ledger(cash=D(10_000))
    ledger.reserve("b", "BTC-USD", Side.BUY, D(1), buy_cost(D(1), D(7001), FEE))
    assert ledger.overdraft(_fill("b", "0.4", "7100", n=1)) == 0  # within the 2 % headroom
    assert ledger.overdraft(_fill("b", "1", "7001", side=Side.SELL)) == 0
    assert ledger.overdraft(_fill("unknown", "1", "9000")) == 0


def _leg(side: Side, qty: str, product: str = "BTC-USD") -> LegPlan:
    return LegPlan(
        product=product,
        side=side,
        quantity=D(qty),
        order_type=OrderType.MARKET,
        limit_price=None,
        visible=D(10),
        beyond_depth=False,
        depth_capped=False,
        target_weight=0.1,
        current_weight=0.0,
        touch=D(7000),
    )


@given(available=st.decimals(min_value=-10_000, max_value=10_000, places=2))
def test_fund_buys_never_divides_by_nothing_and_never_spends_what_is_not_there(
    available: Decimal,
) -> None:
    sells = [_leg(Side.SELL, "0.5"), _leg(Side.SELL, "2", "ETH-USD")]
    assert fund_buys(sells, available, FEE) == sells  # no buys: nothing to fund
    legs = [*sells, _leg(Side.BUY, "1", "LTC-USD")]
    funded = fund_buys(legs, available, FEE)
    assert [g for g in funded if g.side == Side.SELL] == sells
    spent = sum((buy_cost(g.quantity, g.price(), FEE) for g in funded if g.side == Side.BUY), D(0))
    assert spent <= max(D(0), available)


def _portfolio_buying_btc(tmp_path: Path) -> tuple[PortfolioActor, FakeCtx, SubmitOrder]:
    """A portfolio with 100,000 USD, a BTC quote at 7,000 / 7,001 and a 10 % BTC target: the
    market buy it sent."""
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", "100000")
    j.close()
    p, ctx = PortfolioActor(Config(), path), FakeCtx()
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    p.receive(quote(bid="7000", ask="7001", size="100"), ctx)
    p.receive(TargetWeight(ts=T0, strategy_id="t", product="BTC-USD", weight=0.1, reason="t"), ctx)
    (order,) = [m for m in ctx.to("execution") if isinstance(m, SubmitOrder)]
    return p, ctx, order


def test_the_portfolio_journals_an_overdraft_and_plans_on_without_crashing(
    tmp_path: Path,
) -> None:
    p, ctx, order = _portfolio_buying_btc(tmp_path)
    p.ledger.reservations["other"] = p.ledger.reservations[order.client_order_id].__class__(
        "other", "ETH-USD", Side.BUY, D(1), p.ledger.available_cash(), D(0)
    )  # another buy holds the rest of the cash
    p.receive(_fill(order.client_order_id, str(order.quantity), "7700"), ctx)
    assert p.ledger.available_cash() < 0
    closed = OrderClosed(
        ts=T0,
        client_order_id=order.client_order_id,
        product="BTC-USD",
        status=OrderStatus.FILLED,
        filled_quantity=order.quantity,
    )
    p.receive(closed, ctx)
    assert p.ledger.available_cash() < 0  # the other buy still holds what the fill overspent
    assert p.journal is not None
    (event,) = p.journal.events("overdraft")
    assert event["detail"].startswith(f"{order.client_order_id}: fill F1 at 7700 cost ")
    p.receive(
        TargetWeight(ts=T0, strategy_id="t", product="BTC-USD", weight=0.0, reason="t"), ctx
    )  # a sell-only plan with negative available cash: no 0/0
    p.on_stop(ctx)


def test_a_market_buy_carries_the_price_its_reservation_covers_and_never_overdraws(
    tmp_path: Path,
) -> None:
    """The fix: the portfolio's market buys carry ``max_price`` (the reservation's price); a
    venue whose book has moved beyond it fills what it can within it and expires the rest."""
    p, ctx, order = _portfolio_buying_btc(tmp_path)
    res = p.ledger.reservations[order.client_order_id]
    assert order.max_price is not None
    assert order.quantity * order.max_price * (1 + FEE) <= res.cash  # the cap is the reservation
    assert order.max_price >= D("7001")  # and leaves the planned headroom above the ask
    venue = PaperExchange(starting_cash=D(100_000), taker_fee=FEE, maker_fee=D("0.004"))
    venue.on_quote(quote(bid="7650", ask="7700", size="100"))  # the venue's book moved on
    events: list[object] = []
    venue.set_listener(events.append)
    venue.submit(order, T0)
    assert venue.all_fills() == ()  # nothing within the cap: expired, no overdraft
    closed = events[-1]
    assert isinstance(closed, OrderClosed) and closed.status is OrderStatus.EXPIRED
    venue.on_quote(quote(bid="7000", ask="7050", size="0.5"))  # part within the cap
    retry = msgspec.structs.replace(order, client_order_id="retry")
    venue.submit(retry, T0)
    fills = venue.all_fills()
    assert fills and all(f.price <= order.max_price for f in fills)
    spent = -sum((f.cash_delta for f in fills), D(0))
    assert spent <= res.cash * sum((f.quantity for f in fills), D(0)) / order.quantity
    p.on_stop(ctx)


def test_the_paper_venue_refuses_a_max_price_on_anything_but_a_market_buy() -> None:
    venue = PaperExchange(starting_cash=D(100_000), taker_fee=FEE, maker_fee=D("0.004"))
    venue.on_quote(quote(bid="7000", ask="7001", size="10"))
    events: list[object] = []
    venue.set_listener(events.append)
    sell = SubmitOrder(
        client_order_id="s",
        product="BTC-USD",
        side=Side.SELL,
        order_type=OrderType.MARKET,
        quantity=D(1),
        max_price=D(7000),
    )
    rejected = venue.submit(sell, T0)
    assert "max_price must be a positive price on a MARKET BUY" in rejected.reason  # type: ignore[union-attr]
