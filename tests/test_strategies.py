"""The strategy API without threads: combination, warm-up, the bundled examples, the loader; and
a restarted StrategyActor deciding exactly as an uninterrupted one (deterministic runtime)."""

from __future__ import annotations

import json
import random
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from cryptoj.config import Config, ConfigError, StrategyConfig, parse_config
from cryptoj.marketdata.ticks import load_market_data
from cryptoj.models.market import Bar, Quote
from cryptoj.runtime.assemble import assemble
from cryptoj.runtime.common import ChaosPlan
from cryptoj.runtime.deterministic import DeterministicRuntime
from cryptoj.strategies.api import Strategy, StrategyContext, Target, targets_of
from cryptoj.strategies.ema_trend import EmaTrend, EmaTrendParams, EmaTrendStrategy
from cryptoj.strategies.history import MarketHistory
from cryptoj.strategies.host import Decision, StrategyHost
from cryptoj.strategies.loader import (
    StrategyLoadError,
    StrategySpec,
    load_strategies,
    resolve,
    strategy_problems,
)
from cryptoj.strategies.mean_reversion import MeanReversion, MeanReversionParams
from cryptoj.strategies.vol_target import VolTarget, VolTargetParams
from cryptoj.trace.recorder import TraceWriter

T0 = 1_522_800_060_000_000_000
MIN = 60 * 10**9


def bar(i: int, close: float, product: str = "BTC-USD") -> Bar:
    c = Decimal(repr(round(close, 6)))
    return Bar(
        ts=T0 + i * MIN,
        product=product,
        open=c,
        high=c,
        low=c,
        close=c,
        volume=Decimal(10),
        interval_s=60,
    )


def quote(i: int, mid: float, product: str = "BTC-USD") -> Quote:
    m = Decimal(repr(round(mid, 4)))
    return Quote(
        ts=T0 + i * MIN,
        product=product,
        bid=m - Decimal("0.01"),
        bid_size=Decimal(1),
        ask=m + Decimal("0.01"),
        ask_size=Decimal(1),
    )


def walk(n: int, seed: int, start: float = 100.0, vol: float = 0.004) -> list[float]:
    rng = random.Random(seed)
    out, x = [], start
    for _ in range(n):
        x *= 1 + rng.gauss(0, vol)
        out.append(x)
    return out


class Fixed(Strategy):  # type: ignore[type-arg]
    """Gives one fixed weight on its first bar."""

    def on_bar(self, b: Bar) -> Target | None:
        w = float(self.ctx.name.split("_")[-1])
        return Target(b.product, w, f"fixed {w}") if len(self.ctx.bars(b.product)) == 1 else None

    history_bars = 5


def _spec(cls: type[Strategy], params: msgspec.Struct, name: str, share: float = 1.0):  # type: ignore[no-untyped-def,type-arg]
    return StrategySpec(name, cls, params, share)


def test_two_strategies_combine_by_capital_share_and_the_trigger_is_named() -> None:
    from cryptoj.strategies.api import NoParams

    host = StrategyHost(
        [
            _spec(Fixed, NoParams(), "a_0.2", 0.5).make(7),
            _spec(Fixed, NoParams(), "b_0.1", 0.5).make(7),
        ]
    )
    [d] = host.on_bar(bar(0, 100))
    assert d.product == "BTC-USD" and d.weight == pytest.approx(0.15)
    assert d.strategy_id == "b_0.1:BTC-USD"  # the last to change it
    assert "a_0.2 0.2×0.5: fixed 0.2" in d.reason and "b_0.1 0.1×0.5: fixed 0.1" in d.reason
    assert host.on_bar(bar(1, 100)) == []  # no change, no re-statement yet


def test_the_ported_ema_trend_decides_as_the_pure_ema_trend() -> None:
    closes = walk(600, seed=3)
    params = EmaTrendParams(fast_period=5, slow_period=20, band=0.0005, entry_band=0.002)
    host = StrategyHost([_spec(EmaTrendStrategy, params, "ema_trend").make(7)])
    trend = EmaTrend(5, 20, 0.1, 0.0005, entry_band=0.002)
    ported, pure = [], []
    for i, c in enumerate(closes):
        ported += [(d.ts, d.weight, d.reason) for d in host.on_bar(bar(i, c))]
        change = trend.on_close(float(bar(i, c).close), bar(i, c).ts)
        if change is not None:
            pure.append((bar(i, c).ts, change[0], change[1]))
    changes = [p for p in ported if p in pure]
    assert changes == pure and len(pure) > 5
    # every other send is a re-statement of the weight in force, every 10 bars
    assert all((ts - T0) // MIN % 10 == 9 for ts, _, _ in set(ported) - set(pure))


def _run(host: StrategyHost, events: list[Bar | Quote]) -> list[Decision]:
    out: list[Decision] = []
    for e in events:
        out += host.on_bar(e) if isinstance(e, Bar) else host.on_quote(e)
    return out


@pytest.mark.parametrize(
    "spec",
    [
        _spec(EmaTrendStrategy, EmaTrendParams(fast_period=4, slow_period=16), "ema"),
        _spec(VolTarget, VolTargetParams(lookback=30, rebalance_band=0.002), "vol"),
        _spec(MeanReversion, MeanReversionParams(halflife=10, min_quotes=20, min_edge=0.0), "mr"),
    ],
    ids=["ema_trend", "vol_target", "mean_reversion"],
)
def test_a_warmed_up_host_decides_exactly_as_one_that_never_stopped(spec: StrategySpec) -> None:
    events: list[Bar | Quote] = []
    for p, seed in (("BTC-USD", 1), ("ETH-USD", 2)):
        for i, c in enumerate(walk(400, seed, vol=0.01)):
            events += [bar(i, c, p), quote(i, c, p)]
    events.sort(key=lambda e: e.ts)
    cut = 517
    history = MarketHistory({"bars", "quotes"})
    history.extend(events[:cut])
    whole = StrategyHost([spec.make(7)])
    _run(whole, events[:cut])
    expected = _run(whole, events[cut:])
    restarted = StrategyHost([spec.make(7)])
    restarted.warm_up(*history.snapshot())
    after = _run(restarted, events[cut - 3 :])  # already covered events are skipped
    assert after == expected
    assert len({d.weight for d in after}) > 1  # it does decide after the cut
    cold = _run(StrategyHost([spec.make(7)]), events[cut:])
    assert cold != after  # without the warm-up it would not


def test_mean_reversion_buys_a_sharp_drop_and_leaves_on_the_recovery() -> None:
    ctx = StrategyContext("mr", seed=7, history_bars=0)
    s = MeanReversion(MeanReversionParams(halflife=20, min_quotes=30, min_edge=0.01), ctx)
    mids = [100 + 0.1 * (i % 2) for i in range(60)] + [97.0, 96.5] + [100.0] * 3
    got = [(i, t.weight) for i, m in enumerate(mids) for t in targets_of(s.on_quote(quote(i, m)))]
    assert got == [(60, 0.1), (62, 0.0)]


def test_vol_target_holds_more_of_a_calm_product_than_of_a_wild_one() -> None:
    ctx = StrategyContext("vol", seed=7, history_bars=VolTarget.history_bars)
    params = VolTargetParams(target_vol=0.5, lookback=50, max_weight=0.5, trend_filter=False)
    s = VolTarget(params, ctx)
    weights: dict[str, float] = {}
    for p, vol in (("BTC-USD", 0.0005), ("ETH-USD", 0.005)):
        for i, c in enumerate(walk(60, 5, vol=vol)):
            b = bar(i, c, p)
            ctx._on_bar(b)
            for t in targets_of(s.on_bar(b)):
                weights[p] = t.weight
    assert weights["BTC-USD"] == 0.5  # capped at max_weight
    per_year = (365 * 24 * 60) ** 0.5  # 1-minute bars
    assert weights["ETH-USD"] == pytest.approx(0.5 / (0.005 * per_year), rel=0.3)  # σ ≈ 3.6
    ctx = StrategyContext("vol", seed=7, history_bars=VolTarget.history_bars)
    s = VolTarget(msgspec.structs.replace(params, trend_filter=True), ctx)
    falling = [100 * (1 - 0.001 * i) for i in range(60)]
    got = []
    for i, c in enumerate(falling):
        ctx._on_bar(bar(i, c))
        got += [t.weight for t in targets_of(s.on_bar(bar(i, c)))]
    assert got == [0.0]  # below its level of lookback bars ago: nothing held


def test_the_loader_names_every_problem_on_its_own_line() -> None:
    cfg = parse_config(
        {
            "strategies": [
                {"kind": "vol_target", "weight": 0.3, "params": {"lookback": 1, "colour": 2}},
                {"kind": "mean_reversion", "weight": 0.3, "params": {"entry_z": 1, "exit_z": 2}},
                {"kind": "no_such_strategy", "weight": 0.3},
            ]
        }
    )
    problems = strategy_problems(cfg)
    assert problems[0] == (
        "strategies[0].params.colour: unknown field (known: lookback, max_weight, "
        "rebalance_band, target_vol, trend_filter)"
    )
    assert "strategies[0].params.lookback: expected a whole number in [2, 1000], got 1" in problems
    assert any(
        p.startswith("strategies[1].params:") and "exit_z (2.0) must be below entry_z" in p
        for p in problems
    )
    unknown = "strategies[2].kind: unknown strategy 'no_such_strategy'"
    assert any(p.startswith(unknown) for p in problems)
    with pytest.raises(ConfigError):
        load_strategies(cfg)
    with pytest.raises(ConfigError) as e:
        parse_config({"strategies": [{"weight": 0.7}, {"kind": "vol_target", "weight": 0.6}]})
    assert e.value.problems == [
        "strategies: the weights (capital shares) add up to 1.3, expected <= 1"
    ]


def test_an_entry_point_strategy_is_found_by_its_name(tmp_path: Path) -> None:
    (tmp_path / "epstrat_mod.py").write_text(
        "from cryptoj.strategies.api import Strategy\n\nclass EpStrategy(Strategy):\n    pass\n"
    )
    info = tmp_path / "epstrat-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: epstrat\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[cryptoj.strategies]\nmy_packaged = epstrat_mod:EpStrategy\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        assert resolve("my_packaged").__name__ == "EpStrategy"
        with pytest.raises(StrategyLoadError, match="not a subclass"):
            resolve("json:JSONDecoder")
    finally:
        sys.path.remove(str(tmp_path))


def _decisions(tmp_path: Path, tag: str, chaos: ChaosPlan | None) -> list[dict[str, object]]:
    """TargetWeights the StrategyActor sent in a deterministic replay (ema 3/8 on the bundled
    data), from the trace."""
    cfg = msgspec.structs.replace(
        Config(), strategy=StrategyConfig(fast_period=3, slow_period=8, entry_band=0.0005)
    )
    batches = load_market_data("coinbase-1m-2018-04")
    system = assemble(cfg, batches, str(tmp_path / f"{tag}.sqlite"), fresh_journal=True)
    trace = TraceWriter(str(tmp_path / f"{tag}.jsonl"), fresh=True)
    rt = DeterministicRuntime(
        seed=7, start_ns=system.start_ns, registry=system.registry, trace=trace, chaos=chaos
    )
    system.venue.set_listener(lambda event: rt.tell("execution", event, sender="venue"))
    rt.start_root("shutdown")
    rt.start_root("root")
    rt.run()
    rt.stop_all()
    trace.close()
    assert rt.stats.crashes == (1 if chaos else 0)
    out = []
    for line in (tmp_path / f"{tag}.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == "deliver" and r.get("type") == "TargetWeight":
            out.append(r["msg"])
    return out


def test_a_restarted_strategy_actor_decides_exactly_as_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    whole = _decisions(tmp_path, "whole", None)
    first, last = whole[0]["ts"], whole[-1]["ts"]
    assert isinstance(first, int) and isinstance(last, int)
    crash_at = first + (last - first) * 2 // 5
    plan = ChaosPlan(points={"strategy": [(crash_at, "receive")]})  # loses the message too
    restarted = _decisions(tmp_path, "restarted", plan)
    after = crash_at + 2 * MIN  # past the restart and the targets it re-states
    tail = [d for d in whole if isinstance(d["ts"], int) and d["ts"] > after]
    assert tail and [d for d in restarted if isinstance(d["ts"], int) and d["ts"] > after] == tail
    assert len(restarted) >= len(whole)  # the restart re-stated the targets in force


def test_a_replay_from_a_later_day_warms_up_on_the_data_before_it(tmp_path: Path) -> None:
    import datetime as dt

    from cryptoj.replay import ReplayOptions, run_replay

    opts = ReplayOptions(
        data="coinbase-4h-2016-2025",
        start=dt.date(2020, 1, 1),
        end=dt.date(2020, 1, 31),
        journal=str(tmp_path / "j.sqlite"),
        trace=str(tmp_path / "t.jsonl"),
    )
    summary, code = run_replay(Config(), opts)
    assert code == 0 and summary["invariants_ok"] is True
    first = next(
        json.loads(line)
        for line in (tmp_path / "t.jsonl").read_text().splitlines()
        if '"type":"TargetWeight"' in line
    )
    start_ns = int(dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9
    # stated at the start, from the EMAs of the years before (cold, it would wait 48 bars)
    assert first["msg"]["ts"] <= start_ns  # decided on a bar of the data before the run
    assert first["ts"] <= start_ns + 4 * 3600 * 10**9  # delivered at the run's first instant


def test_new_strategy_writes_a_skeleton_whose_test_passes(tmp_path: Path) -> None:
    from cryptoj.cli import main

    assert main(["new-strategy", "breakout_x", "--dir", str(tmp_path)]) == 0
    assert main(["new-strategy", "breakout_x", "--dir", str(tmp_path)]) == 2  # not overwritten
    assert main(["new-strategy", "not-a-name", "--dir", str(tmp_path)]) == 2
    sys.path.insert(0, str(tmp_path))
    try:
        import test_breakout_x  # type: ignore[import-not-found]

        test_breakout_x.test_holds_above_the_average_and_leaves_below()
        assert resolve("breakout_x:BreakoutX").__name__ == "BreakoutX"
    finally:
        sys.path.remove(str(tmp_path))


class Watcher(Strategy):  # type: ignore[type-arg]
    """Subscribes to fills and risk; records what its context shows."""

    subscribes = frozenset({"bars", "fills", "risk"})

    def on_fill(self, fill: object) -> None:
        self.seen = (self.ctx.position("BTC-USD"), self.ctx.regime("BTC-USD"))


def test_fills_and_risk_reach_a_strategy_that_subscribed_to_them() -> None:
    from cryptoj.actors.strategy import StrategyActor
    from cryptoj.models.orders import Fill, Side
    from cryptoj.strategies.api import NoParams
    from tests.stubs import FakeCtx, risk_params

    actor = StrategyActor(StrategyConfig(), strategies=[_spec(Watcher, NoParams(), "w")])
    ctx = FakeCtx()
    actor.on_start(ctx)
    params = msgspec.structs.replace(risk_params(), regimes=(("BTC-USD", "CALM"),))
    actor.receive(params, ctx)
    fill = Fill(
        ts=T0,
        fill_id="f1",
        client_order_id="cj-1",
        product="BTC-USD",
        side=Side.BUY,
        quantity=Decimal("0.5"),
        price=Decimal(7000),
        fee=Decimal(1),
        liquidity="TAKER",
    )
    actor.receive(fill, ctx)
    watcher = actor.host.slots[0].strategy
    assert isinstance(watcher, Watcher) and watcher.seen == (Decimal("0.5"), "CALM")


class TradeCounter(Strategy):  # type: ignore[type-arg]
    """Holds 0.1 of a product after its third trade."""

    subscribes = frozenset({"trades"})

    def on_trade(self, trade: object) -> Target | None:
        self.n = getattr(self, "n", 0) + 1
        return Target("BTC-USD", 0.1, "three trades") if self.n == 3 else None


def test_trades_reach_a_strategy_that_subscribed_to_them_through_the_feed() -> None:
    from cryptoj.actors.feed import POLL, FeedActor, ReplaySource
    from cryptoj.actors.strategy import StrategyActor
    from cryptoj.models.market import Trade
    from cryptoj.models.signals import TargetWeight
    from cryptoj.strategies.api import NoParams
    from tests.stubs import FakeCtx

    trades = [
        Trade(
            ts=T0 + i,
            product="BTC-USD",
            price=Decimal(100),
            quantity=Decimal(1),
            taker_side="BUY",
            trade_id=str(i),
        )
        for i in range(3)
    ]
    history = MarketHistory({"bars", "trades"})
    feed = FeedActor(
        ReplaySource([(t,) for t in trades]), trade_subscribers=("strategy",), history=history
    )
    fctx = FakeCtx()
    for _ in trades:
        feed.receive(POLL, fctx)
    sent = fctx.to("strategy")
    assert [type(m).__name__ for m in sent] == ["Trade"] * 3
    actor = StrategyActor(StrategyConfig(), strategies=[_spec(TradeCounter, NoParams(), "tc")])
    sctx = FakeCtx()
    for m in sent:
        actor.receive(m, sctx)
    [target] = sctx.to("portfolio")
    assert isinstance(target, TargetWeight) and target.strategy_id == "tc:BTC-USD"
    restarted = StrategyActor(
        StrategyConfig(), strategies=[_spec(TradeCounter, NoParams(), "tc")], history=history
    )
    rctx = FakeCtx()
    restarted.on_start(rctx)  # warmed up on the three recorded trades: states the target
    assert rctx.to("portfolio") == [target]
