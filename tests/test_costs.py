"""Cost-aware trading: the cost model against the paper venue, the cost band (a Hypothesis
property over the planner), the turnover budget through the real PortfolioActor (and across
a restart), the strategy's hysteresis and the config fields."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.actors.strategy import StrategyActor
from cryptoj.config import ConfigError, StrategyConfig, parse_config
from cryptoj.journal import Journal
from cryptoj.models.market import Quote
from cryptoj.models.orders import Fill, OrderType, Side, SubmitOrder
from cryptoj.models.signals import TargetWeight
from cryptoj.portfolio.costs import (
    DAY_NS,
    CostModel,
    TurnoverBook,
    band_floor,
    cost_band,
    impact_rate,
    one_way_rate,
    round_trip_rate,
    turnover_left,
)
from cryptoj.portfolio.ledger import Ledger
from cryptoj.portfolio.planning import product_band, within_budget
from cryptoj.portfolio.rebalance import LegRules, ProductView, band_edges, plan_legs
from cryptoj.strategies.ema_trend import EmaTrend, entry_band, round_trip_cost
from cryptoj.venues.paper import PaperExchange
from tests.stubs import FakeCtx, bar, quote, risk_params

D = Decimal
T0 = 1_522_800_060_000_000_000  # 2018-04-04 00:01 UTC
FEE = D("0.006")


# -- the cost of one order -------------------------------------------------------------------


def test_impact_is_the_paper_venues_walk() -> None:
    """The modelled impact is what the paper venue's market order actually walks."""
    q = quote(bid="10000", ask="10001", size="0.5")
    venue = PaperExchange(starting_cash=D(10**6), taker_fee=FEE, maker_fee=D("0.004"))
    venue.on_quote(q)
    order = SubmitOrder(
        ts=q.ts,
        client_order_id="c1",
        product="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=D("1.2"),
    )
    venue.submit(order, q.ts)
    fills = venue.fills_for("c1")
    average = sum((f.quantity * f.price for f in fills), D(0)) / D("1.2")
    model = CostModel(fee=FEE, split_share=None)
    assert impact_rate(q, Side.BUY, D("1.2"), model) * q.mid == average - q.ask
    # half the spread and the walk against the mid, plus the fee rate (the venue charges it
    # on the fill prices: within a few hundredths of a basis point of the rate)
    assert one_way_rate(q, Side.BUY, D("1.2"), model) == FEE + (average - q.mid) / q.mid
    fees = sum((f.fee for f in fills), D(0))
    assert fees / (D("1.2") * q.mid) == pytest.approx(FEE, rel=D("0.001"))


def test_split_orders_and_orders_within_the_touch_have_no_walk() -> None:
    q = quote(bid="10000", ask="10001", size="0.5")
    split = CostModel(fee=FEE, split_share=D("0.25"))
    assert impact_rate(q, Side.BUY, D("1.2"), split) == 0  # children within the touch
    assert impact_rate(q, Side.SELL, D("0.5"), CostModel(fee=FEE, split_share=None)) == 0
    half_spread = D("0.5") / q.mid
    rt = round_trip_rate(q, D("0.1"), split)
    assert rt == 2 * FEE + 2 * half_spread


def test_orders_beyond_the_modelled_levels_are_priced_at_the_last_level() -> None:
    q = quote(bid="100", ask="102", size="1")
    model = CostModel(fee=D(0), depth_levels=2, split_share=None)
    # level 0: 1 at 102, level 1 (step 2): everything else at 104
    assert impact_rate(q, Side.BUY, D("3"), model) * q.mid == D(2) * 2 / 3


# -- the cost band: a property over the planner ---------------------------------------------


@st.composite
def planning_case(draw: st.DrawFn) -> tuple[Decimal, ProductView]:
    equity = D(draw(st.integers(10_000, 1_000_000)))
    mid = D(draw(st.integers(100, 60_000)))
    spread = mid * D(draw(st.integers(0, 50))) / D(10_000)
    q = Quote(
        ts=T0,
        product="BTC-USD",
        bid=mid - spread / 2,
        ask=mid + spread / 2,
        bid_size=D(draw(st.integers(1, 500))) / 10,
        ask_size=D(draw(st.integers(1, 500))) / 10,
    )
    target = draw(st.sampled_from([0.0, 0.02, 0.05, 0.0987, 0.1, 0.3]))
    weight = draw(st.floats(0, 0.4))
    quantity = (equity * D(repr(weight)) / q.mid).quantize(D("0.00000001"))
    threshold = draw(st.sampled_from([0.0, 0.001, 0.005, 0.01]))
    model = CostModel(
        fee=D(draw(st.sampled_from(["0", "0.001", "0.006"]))),
        split_share=draw(st.sampled_from([None, D("0.25")])),
    )
    multiple = draw(st.sampled_from([0.5, 1.0, 2.0]))
    cfg = parse_config({"portfolio": {"cost_band_multiple": multiple}})
    band = product_band(equity, quantity, q, target, threshold, model, cfg)
    view = ProductView(
        product="BTC-USD",
        quantity=quantity,
        available=quantity,
        quote=q,
        target=target,
        threshold=threshold,
        band=band,
        cap=draw(st.sampled_from([0.05, 0.1, 0.3])),
    )
    return equity, view


@settings(max_examples=400, deadline=None)
@given(planning_case())
def test_cost_aware_planning_never_trades_inside_the_band_and_always_outside(
    case: tuple[Decimal, ProductView],
) -> None:
    equity, v = case
    lower, upper = band_edges(v.target, v.band, v.threshold, v.cap)
    mid = v.quote.mid
    current = float(v.quantity * mid / equity)
    legs = plan_legs(equity, [v], LegRules(max_depth_multiple=0))
    closing = v.target == 0 and v.quantity > 0
    # one base increment (floors) and float rounding
    inc = float(D("0.00000002") * max(mid, v.quote.ask) / equity) + 1e-12
    assert v.band >= v.threshold
    if closing:
        assert [(g.side, g.quantity) for g in legs] == [(Side.SELL, v.quantity)]
        return
    if lower <= current <= upper:
        assert legs == [], "a trade inside the cost band"
        return
    if len(legs) == 0:  # outside by less than one base increment: nothing to floor to
        assert min(abs(current - lower), abs(current - upper)) <= 2 * inc
        return
    (leg,) = legs
    after = current + (1 if leg.side == Side.BUY else -1) * float(leg.quantity * mid / equity)
    if current < lower:
        # back to the band's edge (or θ past it), never past the target
        assert leg.side == Side.BUY
        paid = current + float(leg.quantity * v.quote.ask / equity)  # buys are sized at the ask
        assert paid >= lower - 2 * inc or paid >= v.target - 2 * inc
        assert after <= v.target + inc
        assert after <= lower + v.threshold / 2 + inc
    elif current > v.cap + v.threshold:  # above its risk cap: a reduction, to the target
        assert leg.side == Side.SELL
        assert abs(after - v.target) <= inc
    else:
        assert leg.side == Side.SELL
        assert upper + inc >= after >= v.target - inc
        assert after >= upper - v.threshold / 2 - inc


@settings(max_examples=100, deadline=None)
@given(planning_case(), st.integers(0, 200_000))
def test_the_budget_drops_buys_it_cannot_fit_and_never_sells(
    case: tuple[Decimal, ProductView], left: int
) -> None:
    equity, v = case
    legs = plan_legs(equity, [v], LegRules(max_depth_multiple=0))
    kept = within_budget(legs, D(left))
    for g in legs:
        fits = g.quantity * g.price() <= left
        assert (g in kept) == (g.side == Side.SELL or fits)
    assert within_budget(legs, None) == legs


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 10**6),
    st.integers(-20, 50),
    st.integers(0, 5000),
    st.sampled_from(["0", "0.001", "0.006"]),
    st.sampled_from(["0", "5", "20"]),
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    st.sampled_from([0.0, 0.005, 0.02]),
)
def test_no_priced_band_is_narrower_than_the_band_floor(
    mid: int, spread_bps: int, size: int, fee: str, spacing: str, multiple: float, theta: float
) -> None:
    """The planner skips pricing a product that stays inside the band floor (planning.
    inside_drift_band): that is only sound while every priced band is at least the floor,
    crossed books (a negative spread) and walks beyond the touch included."""
    spread = D(mid) * D(spread_bps) / D(10_000)
    q = Quote(
        ts=T0,
        product="BTC-USD",
        bid=D(mid) - spread / 2,
        ask=D(mid) + spread / 2,
        bid_size=D(3),
        ask_size=D(3),
    )
    model = CostModel(fee=D(fee), level_spacing_bps=D(spacing), split_share=None)
    band = cost_band(theta, round_trip_rate(q, D(size) / 100, model), multiple)
    assert band >= max(theta, band_floor(model, multiple))


def test_the_band_is_the_larger_of_the_drift_threshold_and_the_round_trip() -> None:
    q = quote(bid="40000", ask="40008", size="10")
    model = CostModel(fee=FEE)
    cfg = parse_config({})
    band = product_band(D(100_000), D(0), q, 0.1, 0.005, model, cfg)
    assert band == pytest.approx(2 * 0.006 + 8 / 40004)
    assert product_band(D(100_000), D(0), q, 0.1, 0.05, model, cfg) == 0.05
    off = parse_config({"portfolio": {"cost_band_multiple": 0}})
    assert product_band(D(100_000), D(0), q, 0.1, 0.005, model, off) == 0.005


def test_a_risk_reduction_is_not_held_back_by_the_band() -> None:
    q = quote(bid="100", ask="100", size="1000")
    v = ProductView("BTC-USD", D(100), D(100), q, 0.05, 0.005, band=0.02, cap=0.1)
    # weight 0.10 against a target of 0.05: inside 0.05 + 0.02? no: outside, to the edge
    (leg,) = plan_legs(D(100_000), [v], LegRules())
    assert leg.quantity == D(325) / 10  # back to the edge, 0.07, and θ/2 into the band
    cut = ProductView(
        "BTC-USD", D(100), D(100), q, 0.05, 0.005, band=0.02, cap=0.1, risk_reduce=True
    )
    (leg,) = plan_legs(D(100_000), [cut], LegRules())
    assert leg.quantity == D(50)  # risk cut the size: all the way to the target


# -- the turnover budget through the PortfolioActor -----------------------------------------


def _journal(tmp_path: Path, traded: str) -> str:
    """100,000 USD of which ``traded`` worth of BTC (at 7,000) was bought today (T0's day)."""
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", "100000")
    ledger = Ledger(D(100_000))
    qty = D(traded) / 7000
    if qty > 0:
        f = Fill(
            ts=T0,
            fill_id="F0",
            client_order_id="old",
            product="BTC-USD",
            side=Side.BUY,
            quantity=qty,
            price=D(7000),
            fee=D(0),
            liquidity="TAKER",
        )
        h = ledger.apply_fill(f)
        j.record_fill(f, h.quantity, h.average_price, ledger.cash)
    j.close()
    return path


def _actor(path: str, budget: float) -> tuple[PortfolioActor, FakeCtx]:
    cfg = parse_config(
        {"portfolio": {"weighting": "signal"}, "risk": {"max_daily_turnover": budget}}
    )
    p, ctx = PortfolioActor(cfg, path), FakeCtx(time_ns=T0)
    p.on_start(ctx)
    p.receive(risk_params(), ctx)
    return p, ctx


def _orders(ctx: FakeCtx) -> list[SubmitOrder]:
    return [m for m in ctx.to("execution") if isinstance(m, SubmitOrder)]


def _target(product: str, weight: float) -> TargetWeight:
    return TargetWeight(ts=T0, strategy_id="t", product=product, weight=weight, reason="test")


def test_an_exhausted_budget_blocks_buys_but_not_reductions(tmp_path: Path) -> None:
    # 7,000 of BTC bought today; budget 0.1 × ~100,000: 3,000 left, less than an ETH entry
    p, ctx = _actor(_journal(tmp_path, "7000"), 0.1)
    p.receive(quote("ETH-USD", bid="500", ask="500", size="1000", ts=T0 + 1), ctx)
    p.receive(quote("BTC-USD", bid="7000", ask="7000", size="1000", ts=T0 + 1), ctx)
    p.receive(_target("ETH-USD", 0.1), ctx)
    assert _orders(ctx) == []  # the entry is over budget
    p.receive(_target("BTC-USD", 0.0), ctx)
    (sell,) = _orders(ctx)  # reducing always goes out
    assert (sell.product, sell.side) == ("BTC-USD", Side.SELL)


def test_the_budget_survives_a_restart_and_renews_each_utc_day(tmp_path: Path) -> None:
    path = _journal(tmp_path, "7000")
    p, ctx = _actor(path, 0.1)
    p.on_stop(ctx)
    p, ctx = _actor(path, 0.1)  # a new instance: the day's figure comes from the journal
    assert p.turnover.today(T0) == D(7000)
    p.receive(quote("ETH-USD", bid="500", ask="500", size="1000", ts=T0 + 1), ctx)
    p.receive(_target("ETH-USD", 0.1), ctx)
    assert _orders(ctx) == []
    tomorrow = T0 + DAY_NS
    ctx.time_ns = tomorrow
    p.receive(quote("ETH-USD", bid="500", ask="500", size="1000", ts=tomorrow), ctx)
    (buy,) = _orders(ctx)  # a new UTC day: the budget is whole again
    assert (buy.product, buy.side) == ("ETH-USD", Side.BUY)


def test_an_entry_within_the_budget_goes_to_the_band_edge(tmp_path: Path) -> None:
    p, ctx = _actor(_journal(tmp_path, "0"), 0.5)
    p.receive(quote("ETH-USD", bid="500", ask="500", size="1000", ts=T0 + 1), ctx)
    p.receive(_target("ETH-USD", 0.1), ctx)
    (buy,) = _orders(ctx)
    # band 2 × 0.6 % = 1.2 % of equity: the entry stops at 0.088 + 0.0025, not at the target
    assert buy.quantity == D("18.1")


def test_turnover_book_and_left() -> None:
    fill = Fill(
        ts=T0,
        fill_id="f",
        client_order_id="c",
        product="BTC-USD",
        side=Side.SELL,
        quantity=D(2),
        price=D(100),
        fee=D(1),
        liquidity="TAKER",
    )
    book = TurnoverBook.rebuild([fill, fill])
    assert book.today(T0) == D(400) and book.today(T0 + DAY_NS) == 0
    assert turnover_left(0.5, D(1000), D(400), D(50)) == D(50)
    assert turnover_left(0.5, D(1000), D(600), D(0)) == 0


# -- the strategy's hysteresis --------------------------------------------------------------


def _feed(trend: EmaTrend, closes: list[float], step_ns: int = 60 * 10**9) -> list[float]:
    out = []
    for n, c in enumerate(closes):
        change = trend.on_close(c, n * step_ns)
        if change is not None:
            out.append(change[0])
    return out


def test_entry_needs_the_entry_band_and_exit_only_the_flip_band() -> None:
    rise = [100.0] * 8 + [100.5, 101.0, 101.5]  # EMA spread well under 1 %
    assert _feed(EmaTrend(3, 8, 0.1, 0.0005), rise) == [0.1]
    assert _feed(EmaTrend(3, 8, 0.1, 0.0005, entry_band=0.013), rise) == []
    jump = [100.0] * 8 + [104.0, 108.0, 107.0, 106.0, 103.0, 99.0]
    assert _feed(EmaTrend(3, 8, 0.1, 0.0005, entry_band=0.013), jump) == [0.1, 0.0]


def test_a_new_signal_stands_for_the_minimum_holding_time() -> None:
    flip = [100.0] * 8 + [104.0, 108.0, 100.0, 95.0, 92.0, 92.0, 92.0, 92.0]
    assert _feed(EmaTrend(3, 8, 0.1, 0.0005), flip) == [0.1, 0.0]
    held = EmaTrend(3, 8, 0.1, 0.0005, min_hold_ns=5 * 60 * 10**9)
    changes = []
    for n, c in enumerate(flip):
        ch = held.on_close(c, n * 60 * 10**9)
        if ch is not None:
            changes.append((n, ch[0]))
    (entry, exit_) = changes
    assert exit_[0] - entry[0] >= 5 and exit_[1] == 0.0


def test_the_strategy_actor_enters_only_past_its_entry_band() -> None:
    rising = ["100", "100", "100", "101", "103", "106"]  # the EMAs end about 2 % apart

    def targets(cfg: StrategyConfig, entry_band: float | None = None) -> list[float]:
        s, ctx = StrategyActor(cfg, entry_band=entry_band), FakeCtx()
        for i, close in enumerate(rising):
            s.receive(bar(close=close, ts=T0 + i * 60 * 10**9), ctx)
        return [m.weight for m in ctx.to("portfolio") if isinstance(m, TargetWeight)]

    cfg = StrategyConfig(fast_period=2, slow_period=4, target_weight=0.1, band=0.0)
    assert targets(cfg)[-1] == 0.1
    assert targets(cfg, entry_band=0.05) == []  # as the supervision tree resolves it
    assert targets(msgspec.structs.replace(cfg, entry_band=0.05)) == []  # as configured


def test_the_default_entry_band_is_the_round_trip() -> None:
    cfg = parse_config({})
    assert round_trip_cost(cfg) == pytest.approx(2 * 0.006 + 0.001)
    assert entry_band(cfg) == round_trip_cost(cfg)
    assert entry_band(parse_config({"strategy": {"entry_band": 0.002}})) == 0.002
    assert entry_band(parse_config({"strategy": {"entry_band": 0, "band": 0.001}})) == 0.001


def test_config_fields_are_validated() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(
            {
                "risk": {"max_daily_turnover": 0},
                "portfolio": {"cost_band_multiple": -1},
                "strategy": {"min_hold_s": -5, "entry_band": 2},
            }
        )
    text = "\n".join(e.value.problems)
    for field in (
        "risk.max_daily_turnover",
        "portfolio.cost_band_multiple",
        "strategy.min_hold_s",
        "strategy.entry_band",
    ):
        assert field in text
