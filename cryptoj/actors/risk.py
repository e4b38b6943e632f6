"""RiskActor: volatility, correlation and the graduated risk level; publishes RiskParameters.

The maths lives in :mod:`cryptoj.risk.limits`. Its state is derived from its inputs (bars and
portfolio snapshots), so a restart rebuilds it from the data that follows. It never approves or
denies single orders against a copy of the portfolio: it publishes versioned limits, and the
PortfolioActor applies them atomically when it decides (check-and-reserve lives with the state).
"""

from __future__ import annotations

from cryptoj.actors.base import Actor, Context
from cryptoj.config import RiskConfig
from cryptoj.journal import Journal
from cryptoj.models.market import Bar
from cryptoj.models.portfolio import PortfolioSnapshot
from cryptoj.models.risk import RiskLevel, RiskLevelChanged, RiskParameters
from cryptoj.risk.limits import EwmaStats, LevelState, dynamic_cap

#: Parameters are re-published when a cap moves by more than this fraction (or to/from 0) ...
PUBLISH_CAP_CHANGE = 0.05
#: ... or at least this often (clock ns), even when nothing moved.
PUBLISH_EVERY_NS = 60 * 10**9

SIZE_MULTIPLIER = {
    RiskLevel.NORMAL: 1.0,
    RiskLevel.CAUTION: 0.5,
    RiskLevel.REDUCING: 0.0,
    RiskLevel.HALTED: 0.0,
}


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
    ) -> None:
        self.cfg = cfg
        self.journal_path = journal_path
        self.portfolio = portfolio
        self.shutdown = shutdown
        self.stats = EwmaStats(cfg.volatility_halflife_bars)
        self.level = LevelState(cfg.daily_loss_limit, cfg.caution_drawdown, cooldown_ns)
        self.products: set[str] = set()
        self.version = 0
        self.batch_ts = -1
        self._last_caps: tuple[tuple[str, float], ...] | None = None
        self._last_publish_ns = 0
        self.journal: Journal | None = None

    def on_start(self, ctx: Context) -> None:
        """Open the journal (for risk events)."""
        self.journal = Journal(self.journal_path)

    def on_stop(self, ctx: Context) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()

    def _handle_bar(self, bar: Bar, ctx: Context) -> None:
        if bar.ts != self.batch_ts and self.batch_ts >= 0:
            self.stats.end_of_batch()
            self._publish(ctx, "new bar batch")
        self.batch_ts = bar.ts
        self.products.add(bar.product)
        self.stats.on_close(bar.product, float(bar.close))

    def _handle_portfolio_snapshot(self, snap: PortfolioSnapshot, ctx: Context) -> None:
        before = self.level.level
        level, why = self.level.on_equity(snap.ts, float(snap.equity))
        if level != before:
            assert self.journal is not None
            self.journal.record_event(snap.ts, "risk", "risk_level", f"{before} -> {level}: {why}")
            change = RiskLevelChanged(ts=snap.ts, previous=before, level=level, reason=why)
            ctx.send(self.shutdown, change)
            self._publish(ctx, why, force=True)

    def _publish(self, ctx: Context, reason: str, *, force: bool = False) -> None:
        """Send new parameters when something material changed (see PUBLISH_* constants)."""
        caps = tuple(
            (
                p,
                dynamic_cap(
                    self.cfg.position_size_limit,
                    self.stats.vol_excess(p),
                    self.stats.correlation(p),
                    self.cfg.volatility_weight,
                    self.cfg.correlation_weight,
                    self.cfg.min_position_size,
                ),
            )
            for p in sorted(self.products)
        )
        if not force and not self._material(caps, ctx.now()):
            return
        self._last_caps, self._last_publish_ns = caps, ctx.now()
        self.version += 1
        ctx.send(
            self.portfolio,
            RiskParameters(
                ts=ctx.now(),
                version=self.version,
                level=self.level.level,
                max_weight=caps,
                stop_loss=self.cfg.stop_loss,
                min_position_size=self.cfg.min_position_size,
                size_multiplier=SIZE_MULTIPLIER[self.level.level],
                reason=reason,
            ),
        )

    def _material(self, caps: tuple[tuple[str, float], ...], now_ns: int) -> bool:
        last = self._last_caps
        if last is None or [p for p, _ in last] != [p for p, _ in caps]:
            return True
        if now_ns - self._last_publish_ns >= PUBLISH_EVERY_NS:
            return True
        return any(
            (old == 0) != (new == 0) or abs(new - old) > PUBLISH_CAP_CHANGE * old
            for (_, old), (_, new) in zip(last, caps, strict=True)
        )
