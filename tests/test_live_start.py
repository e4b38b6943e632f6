"""A live (re)start decides a target on its first fresh quotes (issue 16, "an order at the venue
within 5 s of every start"), never on a stale one, and a replay keeps its timing.

Live, the RiskActor publishes its first parameters with the portfolio's first equity instead
of when the second bar batch begins (two tick bars after the start), and the PortfolioActor
decides the targets it already holds when those first parameters arrive, on the quotes it
already has if they are still current (``portfolio.quote_max_age_s``).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.actors.risk import RiskActor
from cryptoj.config import RiskConfig, parse_config
from cryptoj.journal import Journal
from cryptoj.models.orders import Side, SubmitOrder
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import RiskLevel, RiskParameters
from cryptoj.models.signals import TargetWeight
from tests.stubs import FakeCtx, bar, quote, risk_params

S = 1_000_000_000
T0 = 1_522_800_060_000_000_000
PRODUCTS = ("BTC-USD", "ETH-USD")


def _journal(tmp_path: Path) -> str:
    path = str(tmp_path / "journal.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", "100000")
    j.close()
    return path


def _snapshot(ts: int) -> PortfolioSnapshot:
    e = Decimal(100000)
    return PortfolioSnapshot(
        ts=ts, cash=e, reserved_cash=Decimal(0), equity=e, positions=(), open_orders=0
    )


def _params(ctx: FakeCtx) -> list[RiskParameters]:
    return [m for m in ctx.to("portfolio") if isinstance(m, RiskParameters)]


def test_live_risk_publishes_with_the_first_equity_before_any_bar(tmp_path: Path) -> None:
    cfg = RiskConfig()
    actor = RiskActor(cfg, _journal(tmp_path), products=PRODUCTS)
    ctx = FakeCtx(time_ns=T0)
    actor.on_start(ctx)
    assert _params(ctx) == []  # the level is not known before the first equity
    actor.receive(_snapshot(T0), ctx)
    (first,) = _params(ctx)
    assert first.version == 1 and first.entries_allowed
    assert dict(first.max_weight) == dict.fromkeys(PRODUCTS, cfg.position_size_limit)
    actor.receive(_snapshot(T0 + S), ctx)  # nothing moved: no second copy
    actor.receive(bar("BTC-USD", "7000", T0 + S), ctx)
    actor.receive(bar("ETH-USD", "300", T0 + S), ctx)
    assert len(_params(ctx)) == 1
    # the first bar changes no cap (one close is no return): what the first batch would have
    # published is what went out at the first equity
    actor.receive(bar("BTC-USD", "7001", T0 + 2 * S), ctx)
    assert len(_params(ctx)) == 1


def test_live_risk_first_parameters_keep_a_journalled_drawdown_halt(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    j = Journal(path)
    j.set_meta("risk_hwm", '{"equity": 150000, "ts": 1}')
    j.record_event(1, "risk", "drawdown_halt", "{}")  # before the restart
    j.close()
    actor = RiskActor(RiskConfig(), path, products=PRODUCTS)
    ctx = FakeCtx(time_ns=T0)
    actor.on_start(ctx)
    actor.receive(_snapshot(T0), ctx)
    (first,) = _params(ctx)  # the first equity decides the level before anything is published
    assert first.level == RiskLevel.HALTED and not first.entries_allowed


def test_without_products_risk_waits_for_the_second_bar_batch(tmp_path: Path) -> None:
    actor = RiskActor(RiskConfig(), _journal(tmp_path))  # replay: the timing is unchanged
    ctx = FakeCtx(time_ns=T0)
    actor.on_start(ctx)
    actor.receive(_snapshot(T0), ctx)
    actor.receive(bar("BTC-USD", "7000", T0), ctx)
    assert _params(ctx) == []
    actor.receive(bar("BTC-USD", "7001", T0 + S), ctx)
    (first,) = _params(ctx)
    assert dict(first.max_weight) == {"BTC-USD": RiskConfig().position_size_limit}


def _portfolio(tmp_path: Path, *, live: bool) -> tuple[PortfolioActor, FakeCtx]:
    raw: dict[str, object] = {
        "portfolio": {"quote_max_age_s": 5.0, "weighting": "signal", "cost_band_multiple": 0.0},
    }
    if live:
        raw["feed"] = {"source": "coinbase", "products": ["BTC-USD"]}
    p = PortfolioActor(parse_config(raw), _journal(tmp_path))
    ctx = FakeCtx(time_ns=T0)
    p.on_start(ctx)
    target = TargetWeight(ts=T0, strategy_id="t", product="BTC-USD", weight=0.05, reason="start")
    p.receive(target, ctx)  # set by the operator right after the start
    p.receive(quote(ts=T0), ctx)
    return p, ctx


def _orders(ctx: FakeCtx) -> list[SubmitOrder]:
    return [m for m in ctx.to("execution") if isinstance(m, SubmitOrder)]


def test_live_the_first_parameters_decide_the_target_on_the_quote_already_in(
    tmp_path: Path,
) -> None:
    p, ctx = _portfolio(tmp_path, live=True)
    assert _orders(ctx) == []  # no risk view yet
    ctx.time_ns = T0 + S // 10
    p.receive(risk_params(), ctx)
    (order,) = _orders(ctx)  # at once, not at the next quote
    assert order.side == Side.BUY
    p.receive(risk_params(), ctx)  # later parameters are no trigger
    assert len(_orders(ctx)) == 1


def test_live_the_first_parameters_do_not_trade_a_stale_quote(tmp_path: Path) -> None:
    p, ctx = _portfolio(tmp_path, live=True)
    ctx.time_ns = T0 + 6 * S  # the only quote is 6 s old (limit 5 s)
    p.receive(risk_params(), ctx)
    assert _orders(ctx) == []
    p.receive(quote(ts=ctx.time_ns), ctx)  # a fresh quote decides
    assert len(_orders(ctx)) == 1


def test_in_a_replay_the_first_parameters_wait_for_the_next_quote(tmp_path: Path) -> None:
    p, ctx = _portfolio(tmp_path, live=False)
    p.receive(risk_params(), ctx)
    assert _orders(ctx) == []  # replay timing unchanged: the next quote decides
    p.receive(quote(ts=T0 + S), ctx)
    assert len(_orders(ctx)) == 1
