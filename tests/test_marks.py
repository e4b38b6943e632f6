"""One consistent set of marks: whatever the RiskActor acts on values every product at its
latest price as of one instant.

The property is checked against a recomputation written here from first principles (the
journal's fills in order, the quotes of the data), not with the daemon's ledger or valuation.
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptoj.actors.feed import FeedActor, ReplaySource
from cryptoj.actors.risk import RiskActor
from cryptoj.config import Config, RiskConfig, StrategyConfig
from cryptoj.journal import Journal
from cryptoj.models.market import Bar, MarketEvent, Quote, QuoteBatch
from cryptoj.models.orders import OrderType, Side
from cryptoj.models.system import Tick
from cryptoj.portfolio.rebalance import LegPlan, fund_buys
from cryptoj.runtime.assemble import assemble
from cryptoj.runtime.common import ChaosPlan
from cryptoj.runtime.deterministic import DeterministicRuntime
from tests.stubs import FakeCtx, bar, quote

T0 = 1_600_000_020 * 10**9  # a whole minute
MIN = 60 * 10**9
PRODUCTS = ("BTC-USD", "ETH-USD", "LTC-USD")
CFG = Config(
    strategy=StrategyConfig(fast_period=3, slow_period=8, target_weight=0.3),
    risk=RiskConfig(volatility_halflife_bars=5, position_size_limit=0.5),
)


def _batches(seed: int, minutes: int) -> list[tuple[MarketEvent, ...]]:
    """Three random walks with trending stretches; a bar and a quote per product per minute."""
    rng = random.Random(seed)
    price = {"BTC-USD": 10_000.0, "ETH-USD": 400.0, "LTC-USD": 60.0}
    drift = dict.fromkeys(PRODUCTS, 0.0)
    out: list[tuple[MarketEvent, ...]] = []
    for i in range(minutes):
        ts = T0 + i * MIN
        events: list[MarketEvent] = []
        for p in PRODUCTS:
            if i % 40 == 0:
                drift[p] = rng.choice((-0.004, 0.0, 0.004))
            old = price[p]
            price[p] = old * (1 + drift[p] + rng.gauss(0, 0.004))
            close = Decimal(f"{price[p]:.2f}")
            opened = Decimal(f"{old:.2f}")
            events.append(
                Bar(
                    ts=ts,
                    product=p,
                    open=opened,
                    high=max(opened, close),
                    low=min(opened, close),
                    close=close,
                    volume=Decimal(500),
                    interval_s=60,
                )
            )
            half = (close * Decimal("0.0005")).quantize(Decimal("0.01"))
            events.append(
                Quote(
                    ts=ts,
                    product=p,
                    bid=close - half,
                    bid_size=Decimal(50),
                    ask=close + half,
                    ask_size=Decimal(50),
                )
            )
        out.append(tuple(events))
    return out


def _acted_on(
    batches: list[tuple[MarketEvent, ...]], path: Path, crash_at: int | None = None
) -> list[tuple[int, float]]:
    """Run the whole system (the portfolio crashing once at ``crash_at``, when given); every
    (ts, equity) the RiskActor acted on, in order."""
    system = assemble(CFG, batches, str(path), fresh_journal=True)
    chaos = None
    if crash_at is not None:
        chaos = ChaosPlan()
        chaos.points["portfolio"] = [(crash_at, "receive")]
    seen: list[tuple[int, float]] = []

    def step() -> None:
        risk = rt.actor("risk")
        last = risk.last_equity if isinstance(risk, RiskActor) else None
        if last is not None and (not seen or seen[-1] != last):
            seen.append(last)

    rt = DeterministicRuntime(
        seed=7, start_ns=system.start_ns, registry=system.registry, on_step=step, chaos=chaos
    )
    system.venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
    rt.start_root("shutdown")
    rt.start_root("root")
    rt.run()
    rt.stop_all()
    return seen


def _valuations(
    journal: Journal, start: Decimal, mids: dict[str, Decimal], ts: int
) -> list[Decimal]:
    """Equity after each prefix of the journal's fills that a snapshot at ``ts`` may include
    (every fill stamped before ``ts``, then one by one those stamped at ``ts``), at ``mids``."""
    cash, qty = start, dict.fromkeys(PRODUCTS, Decimal(0))
    values: list[Decimal] = []
    for f in journal.fills():
        if f.ts > ts:
            break
        if f.ts == ts:
            values.append(cash + sum(q * mids[p] for p, q in qty.items()))
        signed = f.quantity if str(f.side) == "BUY" else -f.quantity
        qty[f.product] += signed
        cash -= signed * f.price + f.fee
    values.append(cash + sum(q * mids[p] for p, q in qty.items()))
    return values


@settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 10_000), crash=st.one_of(st.none(), st.integers(20, 200)))
def test_the_risk_actor_acts_on_equity_valued_at_one_instant(
    seed: int, crash: int | None, tmp_path: Path
) -> None:
    batches = _batches(seed, 240)
    path = tmp_path / f"marks-{seed}-{crash}.sqlite"
    acted = _acted_on(batches, path, None if crash is None else T0 + crash * MIN)
    journal = Journal(path)
    try:
        assert journal.fills(), "the run must trade for the property to mean something"
        start = Decimal(str(journal.get_meta("starting_cash")))
        by_ts = {b[0].ts: b for b in batches}
        mids: dict[str, Decimal] = {}
        stamps = sorted(by_ts)
        i = 0
        assert len(acted) >= len(batches) // 2
        for ts, equity in acted:
            while i < len(stamps) and stamps[i] <= ts:
                for e in by_ts[stamps[i]]:
                    if isinstance(e, Quote):
                        mids[e.product] = (e.bid + e.ask) / 2
                i += 1
            assert set(mids) == set(PRODUCTS)
            options = _valuations(journal, start, mids, ts)
            assert any(abs(float(v) - equity) <= 1e-6 * equity for v in options), (
                f"at {ts} the risk actor acted on {equity}, the marks of that instant give "
                f"{[float(v) for v in options]}"
            )
    finally:
        journal.close()


def test_the_feed_sends_a_timestamps_quotes_as_one_batch_after_its_bars() -> None:
    q1, q2 = quote("BTC-USD", ts=T0), quote("ETH-USD", bid="300", ask="301", ts=T0)
    b1 = bar("BTC-USD", ts=T0)
    feed = FeedActor(ReplaySource([(q1, b1, q2)]))
    ctx = FakeCtx(time_ns=T0)
    feed.receive(Tick(kind="poll"), ctx)
    assert ctx.to("portfolio") == [QuoteBatch(ts=T0, quotes=(q1, q2))]
    assert [type(m).__name__ for _, m in ctx.sent[:3]] == ["Bar", "Bar", "QuoteBatch"]


def test_funding_a_plan_without_buys_needs_no_cash() -> None:
    """A plan of sells only, with reservations above cash (available cash < 0), is unchanged
    (it divided 0 by 0 and crashed the portfolio)."""
    sell = LegPlan(
        product="BTC-USD",
        side=Side.SELL,
        quantity=Decimal("0.1"),
        order_type=OrderType.MARKET,
        limit_price=None,
        visible=Decimal(5),
        beyond_depth=False,
        depth_capped=False,
        target_weight=0.0,
        current_weight=0.1,
        touch=Decimal(7000),
    )
    assert fund_buys([sell], Decimal("-12.5"), Decimal("0.006")) == [sell]
