"""Correlation from asynchronous data (issue 15, item 6).

Live bars carry each product's own time; replayed bars share their timestamp. The RiskActor
aligns returns on a grid (:class:`cryptoj.risk.sync.GridSampler`), so the same bars delivered
either way give the same correlation, the same correlation-driven caps and the same systemic
trigger.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoj.actors.risk import RiskActor
from cryptoj.config import ConfigError, RiskConfig, parse_config
from cryptoj.journal import Journal
from cryptoj.models.market import Bar
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import RiskLevel, RiskLevelChanged, RiskParameters
from cryptoj.risk.sync import GridSampler
from tests.stubs import FakeCtx, bar

MIN = 60 * 10**9
T0 = 1_522_800_000 * 10**9  # a whole minute
PRODUCTS = ("BTC-USD", "ETH-USD", "LTC-USD", "BCH-USD")


# -- the grid sampler ------------------------------------------------------------------------


def test_grid_sampler_closes_a_cell_on_the_first_price_of_a_later_one() -> None:
    g = GridSampler(MIN)
    assert g.observe("A", T0 + 5, 100.0) is None
    assert g.observe("B", T0 + 50 * 10**9, 10.0) is None  # same cell
    assert g.observe("A", T0 + MIN + 1, 110.0) == {}  # first cell: no previous sample
    assert g.observe("B", T0 + MIN + 2, 11.0) is None
    assert g.observe("A", T0 + 2 * MIN, 999.0) == pytest.approx(
        {"A": np.log(1.1), "B": np.log(1.1)}
    )
    g.observe("A", T0 + MIN + 3, 121.0)  # late: counts for the open cell, replacing 999
    out = g.observe("B", T0 + 5 * MIN, 12.1)  # cells 3 and 4 were empty: skipped
    assert out == pytest.approx({"A": np.log(121 / 110), "B": 0.0})
    assert g.cells_closed == 3


def test_grid_step_comes_from_the_bars_when_not_configured() -> None:
    g = GridSampler()
    g.observe("A", T0, 1.0, default_step_ns=4 * 3600 * 10**9)
    assert g.step_ns == 4 * 3600 * 10**9
    with pytest.raises(ValueError, match="grid step"):
        GridSampler(-1)


# -- the RiskActor fed batched and live -------------------------------------------------------


def _paths(seed: int, n: int, rho: float) -> dict[str, list[float]]:
    """Correlated random walks (one common factor with weight ``rho``), seeded."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.002, n)
    out = {}
    for i, p in enumerate(PRODUCTS):
        own = rng.normal(0, 0.002, n)
        r = np.sqrt(rho) * common + np.sqrt(1 - rho) * own
        out[p] = list((100.0 * (i + 1)) * np.exp(np.cumsum(r)))
    return out


def _bars(paths: dict[str, list[float]], jitter_seed: int | None) -> list[Bar]:
    """One bar per product per minute: batched at the minute (``jitter_seed`` None), or each
    stamped at its own time within the minute and sent one by one in time order (live)."""
    rng = np.random.default_rng(jitter_seed)
    bars = []
    for p, closes in paths.items():
        for i, c in enumerate(closes):
            jitter = 0 if jitter_seed is None else int(rng.integers(0, MIN))
            bars.append(bar(product=p, close=f"{c:.6f}", ts=T0 + i * MIN + jitter))
    return sorted(bars, key=lambda b: b.ts)  # stable: a batch keeps product order


def _risk(tmp_path: Path, name: str, cfg: RiskConfig) -> tuple[RiskActor, FakeCtx]:
    path = str(tmp_path / f"{name}.sqlite")
    j = Journal(path)
    j.set_meta("starting_cash", "100000")
    j.close()
    actor, ctx = RiskActor(cfg, path), FakeCtx()
    actor.on_start(ctx)
    return actor, ctx


def _run(tmp_path: Path, name: str, bars: list[Bar], cfg: RiskConfig) -> tuple[RiskActor, FakeCtx]:
    actor, ctx = _risk(tmp_path, name, cfg)
    for b in bars:
        ctx.time_ns = max(ctx.time_ns, b.ts)
        actor.receive(b, ctx)
    return actor, ctx


CFG = RiskConfig(volatility_weight=0.0, volatility_halflife_bars=30)


@pytest.mark.parametrize("seed", [1, 2])
def test_per_product_timestamps_give_the_batched_correlation(tmp_path: Path, seed: int) -> None:
    paths = _paths(seed, 300, rho=0.5)
    batched, _ = _run(tmp_path, "batched", _bars(paths, None), CFG)
    live, _ = _run(tmp_path, "live", _bars(paths, seed + 100), CFG)
    assert batched.corr.average_pairwise() > 0.3  # a correlation that matters
    assert live.corr.average_pairwise() == pytest.approx(batched.corr.average_pairwise(), abs=1e-9)
    for i, p in enumerate(PRODUCTS):
        for q in PRODUCTS[i + 1 :]:
            assert live.corr.correlation(p, q) == pytest.approx(
                batched.corr.correlation(p, q), abs=1e-9
            )


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_correlation_does_not_depend_on_where_in_the_minute_a_bar_is_stamped(seed: int) -> None:
    paths = _paths(7, 40, rho=0.6)
    sums = []
    for jitter in (None, seed):
        g, corr_updates = GridSampler(MIN), []
        for b in _bars(paths, jitter):
            out = g.observe(b.product, b.ts, float(b.close))
            if out:
                corr_updates.append(out)
        sums.append(corr_updates)
    assert sums[0] == sums[1]


def _final_params(actor: RiskActor, ctx: FakeCtx, ts: int) -> RiskParameters:
    """The parameters published on a bar well after the last (the periodic re-publish)."""
    ctx.time_ns = ts
    actor.receive(bar(product=PRODUCTS[0], close="1", ts=ts), ctx)
    params = [m for m in ctx.to("portfolio") if isinstance(m, RiskParameters)]
    assert params[-1].ts == ts
    return params[-1]


def test_the_correlation_caps_engage_on_live_bars_as_on_batched(tmp_path: Path) -> None:
    paths = _paths(3, 300, rho=0.6)
    end = T0 + 305 * MIN
    batched = _final_params(*_run(tmp_path, "batched", _bars(paths, None), CFG), end)
    live = _final_params(*_run(tmp_path, "live", _bars(paths, 42), CFG), end)
    b_caps, l_caps, l_corr = dict(batched.max_weight), dict(live.max_weight), dict(live.correlation)
    assert live.avg_correlation == pytest.approx(batched.avg_correlation, abs=1e-6)
    for p in PRODUCTS:
        # cap = limit × (1 − correlation_weight × ρ̄_p), with the volatility part switched off
        assert l_caps[p] < CFG.position_size_limit * (1 - CFG.correlation_weight * 0.3)
        assert l_caps[p] == pytest.approx(b_caps[p], abs=1e-6)
        assert l_caps[p] == pytest.approx(
            CFG.position_size_limit * (1 - CFG.correlation_weight * l_corr[p]), abs=1e-5
        )


def _snapshot(ts: int, equity: str) -> PortfolioSnapshot:
    e = Decimal(equity)
    return PortfolioSnapshot(
        ts=ts, cash=e, reserved_cash=Decimal(0), equity=e, positions=(), open_orders=0
    )


def test_the_systemic_trigger_engages_on_live_bars_as_on_batched(tmp_path: Path) -> None:
    paths = _paths(4, 200, rho=0.97)
    for name, jitter in (("batched", None), ("live", 9)):
        actor, ctx = _run(tmp_path, name, _bars(paths, jitter), CFG)
        assert actor.corr.average_pairwise() >= 0.9
        end = T0 + 200 * MIN
        actor.receive(_snapshot(end, "100000"), ctx)
        actor.receive(_snapshot(end + MIN, "98800"), ctx)  # 1.2 %: only the systemic rule
        changes = [m for m in ctx.to("shutdown") if isinstance(m, RiskLevelChanged)]
        assert changes and changes[-1].level is RiskLevel.REDUCING, name
        assert "systemic risk" in changes[-1].reason, name
        actor.on_stop(ctx)


def test_the_grid_is_configurable_and_validated() -> None:
    cfg = parse_config({"risk": {"correlation_grid_s": 300}})
    assert RiskActor(cfg.risk, "unused.sqlite").grid.step_ns == 300 * 10**9
    with pytest.raises(ConfigError, match="correlation_grid_s"):
        parse_config({"risk": {"correlation_grid_s": -1}})


def test_cached_caps_always_equal_caps_computed_afresh(tmp_path: Path) -> None:
    actor, ctx = _risk(tmp_path, "caps", RiskConfig(volatility_halflife_bars=5))
    for b in _bars(_paths(5, 60, rho=0.5), 3):
        ctx.time_ns = b.ts
        actor.receive(b, ctx)
        actor._refresh_caps()
        assert actor._caps == {p: actor._cap(p) for p in actor.closes}
    params = [m for m in ctx.to("portfolio") if isinstance(m, RiskParameters)]
    assert len(params) > 10
    actor.on_stop(ctx)
