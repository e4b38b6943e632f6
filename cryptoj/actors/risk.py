"""RiskActor: volatility, correlation, regimes and the graduated level; publishes RiskParameters.

The maths lives in :mod:`cryptoj.risk` (pure modules). State is derived from the inputs (bars,
portfolio snapshots, feed status, stop-loss hits), so a restart rebuilds it from the data that
follows. It never approves or denies single orders against a copy of the portfolio: it
publishes versioned limits, and the PortfolioActor applies them atomically when it decides
(check-and-reserve lives with the state).

* Caps per product: :func:`cryptoj.risk.limits.dynamic_cap` from the volatility excess (EWMA, or
  the HAR-RV forecast with ``risk.volatility_model: har``: :mod:`cryptoj.risk.har_stats`) and
  the average EWMA correlation (:class:`~cryptoj.risk.correlation.EwmaCorrelation`). The
  correlation sees returns aligned on a common clock (:class:`~cryptoj.risk.sync.GridSampler`,
  step ``risk.correlation_grid_s`` or the bars' interval), so bars stamped with each product's
  own time (live) give the same correlation as bars batched by timestamp (replay); it is updated
  once per grid step, not per bar.
* Level: :class:`~cryptoj.risk.levels.LevelMachine` (daily loss, drawdown, stop-loss hits,
  stale feed, systemic correlation + drawdown; hysteresis and cool-down; operator override).
  It acts on the portfolio's snapshots, which value every product at the same instant.
* Drawdown limit (``risk.max_drawdown``): the equity high-water mark and the halt live in the
  journal (meta ``risk_hwm``; events ``drawdown_halt`` and ``risk_resume``), so a restart
  neither resets the mark nor lifts the halt; only a :class:`~cryptoj.models.risk.RiskResume`
  (``python -m cryptoj resume``) does, and it is journalled with who and when.
* Also published for the portfolio, the trace and the metrics: regime per product
  (:class:`~cryptoj.risk.regime.RegimeDetector`), volatility per product, average correlation,
  and the pairwise EWMA correlations (``pairs``) the portfolio's optimiser and the wind-down
  ordering use.
* Live start: with the feed's ``products`` given (the live daemon), the first parameters go out
  with the portfolio's first equity (the level known), not when the second bar batch begins:
  before any bar each cap is the plain limit, as it is after the first bar (one close is no
  return), so a restarted daemon decides on its first fresh quotes instead of two bars later.
"""

from __future__ import annotations

import json

from cryptoj.config import RiskConfig
from cryptoj.contract import Actor, Context
from cryptoj.journal import Journal
from cryptoj.models.market import Bar, FeedStatus
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import (
    RiskLevel,
    RiskLevelChanged,
    RiskOverride,
    RiskParameters,
    RiskResume,
    StopLossTriggered,
)
from cryptoj.risk.correlation import EwmaCorrelation
from cryptoj.risk.har_stats import HarStats
from cryptoj.risk.levels import LevelConfig, LevelMachine, LevelUpdate, utc_day
from cryptoj.risk.limits import EwmaStats, dynamic_cap
from cryptoj.risk.regime import Regime, RegimeDetector
from cryptoj.risk.sync import GridSampler

#: Parameters are re-published when a cap moves by more than this fraction (or to/from 0) ...
PUBLISH_CAP_CHANGE = 0.05
#: ... or at least this often (clock ns), even when nothing moved.
PUBLISH_EVERY_NS = 60 * 10**9
#: Journal meta key of the equity high-water mark (JSON ``{"equity": ..., "ts": ...}``).
HWM_KEY = "risk_hwm"
#: A regime's published value, looked up (an enum's ``.value`` is a slow property).
_REGIME_VALUE = {r: r.value for r in Regime}


class RiskActor(Actor):
    """Publishes RiskParameters to the portfolio and level changes to the shutdown actor."""

    kind = "risk"

    def __init__(
        self,
        cfg: RiskConfig,
        journal_path: str,
        *,
        cooldown_ns: int = 30 * 60 * 10**9,
        portfolio: str = "portfolio",
        shutdown: str = "shutdown",
        also_to: tuple[str, ...] = (),
        products: tuple[str, ...] = (),
    ) -> None:
        """``also_to``: further receivers of every RiskParameters (a strategy's risk view).

        ``products`` (the live feed's): parameters for them go out with the portfolio's first
        equity, before any bar (module docstring); empty (replay): the first parameters go out
        when the second bar batch begins."""
        self.cfg = cfg
        self.start_products = products
        self.also_to = also_to
        self.journal_path = journal_path
        self.portfolio = portfolio
        self.shutdown = shutdown
        self.stats = (
            HarStats(cfg.volatility_halflife_bars, period_s=cfg.har_period_s)
            if cfg.volatility_model == "har"
            else EwmaStats(cfg.volatility_halflife_bars)
        )
        self._har = self.stats if isinstance(self.stats, HarStats) else None
        self.corr = EwmaCorrelation(halflife=cfg.volatility_halflife_bars)
        self.grid = GridSampler(round(cfg.correlation_grid_s * 10**9))
        self.levels = LevelMachine(LevelConfig.from_risk_config(cfg, cooldown_ns=cooldown_ns))
        self.regimes: dict[str, RegimeDetector] = {}
        self.closes: dict[str, float] = {}
        self.stale: set[str] = set()
        self.stop_hits: dict[int, int] = {}
        self.last_equity: tuple[int, float] | None = None
        self.entries_allowed = True
        self.version = 0
        self.batch_ts = -1
        self._last_caps: dict[str, float] | None = None  # as last published
        self._caps: dict[str, float] = {}  # current, recomputed only when an input changed
        self._caps_basis: tuple[object, ...] | None = None  # inputs shared by every cap
        self._dirty: set[str] = set()  # products whose statistics changed since the last refresh
        self._pairs: tuple[tuple[int, int], tuple[tuple[str, str, float], ...]] | None = None
        self._products: tuple[str, ...] = ()  # the caps' products, sorted
        self._receivers = (portfolio, *also_to)  # of every RiskParameters
        self._last_publish_ns = 0
        self._hwm_journalled: float | None = None
        self.journal: Journal | None = None

    def on_start(self, ctx: Context) -> None:
        """Open the journal (for risk events); restore the high-water mark and the drawdown
        halt from it."""
        journal = self.journal = Journal(self.journal_path)
        hwm, halted = drawdown_state(journal)
        self.levels.restore(hwm, halted)
        self._hwm_journalled = hwm
        for p in self.start_products:  # no data yet: a product's cap is the plain limit
            self._caps.setdefault(p, self._cap(p))

    def on_stop(self, ctx: Context) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()

    # -- market data -----------------------------------------------------------------------

    def _handle_bar(self, bar: Bar, ctx: Context) -> None:
        close = float(bar.close)
        returns = self.grid.observe(bar.product, bar.ts, close, bar.interval_s * 10**9)
        if returns:  # a grid step closed: one correlation update for all products
            self.corr.update(returns)
        if bar.ts != self.batch_ts and self.batch_ts >= 0:
            self._publish(ctx, "new bar batch")
        self.batch_ts = bar.ts
        self.closes[bar.product] = close
        if self._har is not None:
            self._har.set_interval(bar.interval_s)
        self.stats.on_close(bar.product, close)
        self._dirty.add(bar.product)
        regime = self.regimes.get(bar.product)
        if regime is None:
            regime = self.regimes[bar.product] = RegimeDetector()
        regime.update(close)

    def _handle_feed_status(self, msg: FeedStatus, ctx: Context) -> None:
        if msg.state in ("stale", "degraded"):
            self.stale.update(msg.products)
        else:
            self.stale.difference_update(msg.products)
        if self.last_equity is not None:
            self._update(*self.last_equity, ctx)

    # -- portfolio and operator ------------------------------------------------------------

    def _handle_portfolio_snapshot(self, snap: PortfolioSnapshot, ctx: Context) -> None:
        self.last_equity = (snap.ts, float(snap.equity))
        self._update(snap.ts, float(snap.equity), ctx)

    def _update(self, ts: int, equity: float, ctx: Context) -> None:
        """Run the level machine on an equity; journal the high-water mark when it rose and
        the drawdown halt when it latched."""
        levels = self.levels
        was_halted = levels.drawdown_halted
        u = levels.update(ts, equity, *self._conditions())
        journal = self._journal()
        if levels.hwm is not None and levels.hwm != self._hwm_journalled:
            self._hwm_journalled = levels.hwm
            journal.set_meta(HWM_KEY, json.dumps({"equity": levels.hwm, "ts": u.ts}))
        if levels.drawdown_halted and not was_halted:
            detail = {"equity": equity, "hwm": levels.hwm, "drawdown": round(u.hwm_drawdown, 6)}
            journal.record_event(u.ts, "risk", "drawdown_halt", json.dumps(detail))
        self._apply(u, ctx)
        if self.version == 0 and self.start_products:
            self._publish(ctx, "first equity")

    def _handle_risk_resume(self, msg: RiskResume, ctx: Context) -> None:
        u = self.levels.resume(msg.by)
        self._hwm_journalled = self.levels.hwm
        record_resume(self._journal(), ctx.now(), msg.by, msg.reason, self.levels.hwm, "daemon")
        self._apply(u, ctx)

    def _handle_stop_loss_triggered(self, msg: StopLossTriggered, ctx: Context) -> None:
        day = utc_day(msg.ts)
        self.stop_hits = {day: self.stop_hits.get(day, 0) + 1}

    def _handle_risk_override(self, msg: RiskOverride, ctx: Context) -> None:
        if msg.level is None:
            self._apply(self.levels.release(), ctx)
        else:
            self._apply(self.levels.force(msg.level, msg.until_ns, msg.reason), ctx)

    def _conditions(self) -> tuple[bool, int, float]:
        """(stale feed, stop-loss hits today, average correlation) for the level machine."""
        day = utc_day(self.last_equity[0]) if self.last_equity else -1
        return bool(self.stale), self.stop_hits.get(day, 0), self.corr.average_pairwise()

    def _apply(self, u: LevelUpdate, ctx: Context) -> None:
        entries_flipped = u.entries_allowed != self.entries_allowed
        self.entries_allowed = u.entries_allowed
        if u.changed:
            change = f"{u.previous} -> {u.level}: "
            detail = change + u.reason.removeprefix(change)  # the reason may name it already
            self._journal().record_event(u.ts, "risk", "risk_level", detail)
            ctx.send(
                self.shutdown,
                RiskLevelChanged(ts=u.ts, previous=u.previous, level=u.level, reason=u.reason),
            )
        if u.changed or entries_flipped:
            self._publish(ctx, u.reason, force=True)

    # -- publishing ------------------------------------------------------------------------

    def _publish(self, ctx: Context, reason: str, *, force: bool = False) -> None:
        """Send new parameters when something material changed (see PUBLISH_* constants).

        One pass over the products (sorted once per new product) builds the per-product
        tuples; the pair list is reused until the correlation moves."""
        recomputed = self._refresh_caps()
        now = ctx.now()
        if not force and not self._material(recomputed, now):
            return
        products, caps_now = self._products, self._caps
        vol, corr_of, regimes = self.stats.vol, self.corr.means(), self.regimes
        caps, volatility, correlation, regime_of = [], [], [], []
        for p in products:
            caps.append((p, caps_now[p]))
            volatility.append((p, round(vol(p), 8)))
            correlation.append((p, round(corr_of.get(p, 0.0), 6)))
            detector = regimes.get(p)
            if detector is not None and detector.regime is not None:
                regime_of.append((p, _REGIME_VALUE[detector.regime]))
        self._last_caps, self._last_publish_ns = dict(caps_now), now
        self.version += 1
        level = self.levels.level
        params = RiskParameters(
            ts=now,
            version=self.version,
            level=level,
            max_weight=tuple(caps),
            stop_loss=self.cfg.stop_loss,
            min_position_size=self.cfg.min_position_size,
            size_multiplier=self.levels.config.size_multiplier(level),
            reason=reason,
            entries_allowed=self.entries_allowed,
            avg_correlation=round(self.corr.average_pairwise(), 6),
            regimes=tuple(regime_of),
            volatility=tuple(volatility),
            correlation=tuple(correlation),
            pairs=self._pair_list(products),
        )
        for name in self._receivers:
            ctx.send(name, params)

    def _cap(self, product: str) -> float:
        return dynamic_cap(
            self.cfg.position_size_limit,
            self.stats.vol_excess(product),
            self.corr.of(product),
            self.cfg.volatility_weight,
            self.cfg.correlation_weight,
            self.cfg.min_position_size,
        )

    def _refresh_caps(self) -> set[str]:
        """Bring the caps up to date; return the products whose cap was recomputed.

        A cap depends on the product's volatility (changed: the product is dirty) and on inputs
        shared by all (the median volatility, the correlation): when those moved, every cap is
        recomputed; otherwise only the dirty ones. Live, one bar changes one product, so the
        work per bar does not grow with the product count."""
        stats, corr, cfg = self.stats, self.corr, self.cfg
        basis = (stats.reference_vol(), corr.updates)
        todo = set(self.closes) if basis != self._caps_basis else self._dirty
        caps, corr_of = self._caps, corr.means() if todo else {}
        limit, min_size = cfg.position_size_limit, cfg.min_position_size
        vol_weight, corr_weight = cfg.volatility_weight, cfg.correlation_weight
        for p in todo:  # self._cap(p), without a call per product
            caps[p] = dynamic_cap(
                limit, stats.vol_excess(p), corr_of.get(p, 0.0), vol_weight, corr_weight, min_size
            )
        if len(self._products) != len(caps):  # products are only ever added
            self._products = tuple(sorted(caps))
        self._caps_basis, self._dirty = basis, set()
        return todo

    def _pair_list(self, products: tuple[str, ...]) -> tuple[tuple[str, str, float], ...]:
        """The pairwise correlations, rebuilt only after a correlation update or a new product
        (products are only ever added)."""
        if len(products) < 2:
            return ()
        key = (self.corr.updates, len(products))
        if self._pairs is None or self._pairs[0] != key:
            self._pairs = (key, self.corr.pairs(products))
        return self._pairs[1]

    def _material(self, recomputed: set[str], now_ns: int) -> bool:
        """True when a cap moved enough since the last publish (only recomputed caps can
        have), the product set changed, or ``PUBLISH_EVERY_NS`` passed."""
        last = self._last_caps
        if last is None or last.keys() != self._caps.keys():
            return True
        if now_ns - self._last_publish_ns >= PUBLISH_EVERY_NS:
            return True
        for p in recomputed:
            old, new = last[p], self._caps[p]
            if (old == 0) != (new == 0) or abs(new - old) > PUBLISH_CAP_CHANGE * old:
                return True
        return False

    @property
    def level(self) -> RiskLevel:
        """The effective level."""
        return self.levels.level

    def _journal(self) -> Journal:
        assert self.journal is not None, "RiskActor used before on_start"
        return self.journal


def record_resume(
    journal: Journal, ts: int, by: str, reason: str, hwm: float | None, source: str
) -> None:
    """Journal an operator resume (who, when, why) and the high-water mark it starts from
    (None: from the next equity the daemon sees)."""
    detail = {"by": by, "reason": reason, "hwm": hwm, "source": source}
    journal.record_event(ts, "risk", "risk_resume", json.dumps(detail, sort_keys=True))
    journal.set_meta(HWM_KEY, "" if hwm is None else json.dumps({"equity": hwm, "ts": ts}))


def drawdown_state(journal: Journal) -> tuple[float | None, bool]:
    """(high-water mark, drawdown halt in force) as the journal keeps them: the halt holds when
    the last ``drawdown_halt`` event came after the last ``risk_resume``; the mark is the meta
    ``risk_hwm`` (empty after an operator resume while the daemon was down: it starts again
    from the next equity)."""
    halts, resumes = journal.events("drawdown_halt"), journal.events("risk_resume")
    halted = bool(halts) and (not resumes or halts[-1]["seq"] > resumes[-1]["seq"])
    raw = journal.get_meta(HWM_KEY)
    hwm = float(json.loads(raw)["equity"]) if raw else None
    return hwm, halted
