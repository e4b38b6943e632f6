"""StrategyActor: hosts the pure strategies and turns bars into target weights.

Its state (the EMAs) is derived from the bars it receives; a restarted StrategyActor rebuilds it
from the following bars (warm-up) and gives no signal until then. It re-states every target
every ``RESTATE_EVERY_BARS`` bars, so a restarted PortfolioActor learns the current targets soon.
"""

from __future__ import annotations

from cryptoj.actors.base import Actor, Context
from cryptoj.config import StrategyConfig
from cryptoj.models.market import Bar, FeedStatus
from cryptoj.models.signals import TargetWeight
from cryptoj.strategies.ema_trend import EmaTrend

#: Targets are sent when they change and re-stated every this many bars (so a restarted
#: PortfolioActor learns them quickly) — not on every bar.
RESTATE_EVERY_BARS = 10


class StrategyActor(Actor):
    """Runs one EMA-trend per product."""

    kind = "strategy"

    def __init__(self, cfg: StrategyConfig, portfolio: str = "portfolio") -> None:
        self.cfg = cfg
        self.portfolio = portfolio
        self.trends: dict[str, EmaTrend] = {}
        self.reasons: dict[str, str] = {}
        self.stale: set[str] = set()

    def _handle_feed_status(self, msg: FeedStatus, ctx: Context) -> None:
        """Stale products get no new targets until they recover (no entries on stale data)."""
        if msg.state in ("stale", "degraded"):
            self.stale.update(msg.products)
        else:
            self.stale.difference_update(msg.products)

    def _handle_bar(self, bar: Bar, ctx: Context) -> None:
        trend = self.trends.get(bar.product)
        if trend is None:
            trend = self.trends[bar.product] = EmaTrend(
                self.cfg.fast_period, self.cfg.slow_period, self.cfg.target_weight, self.cfg.band
            )
        change = trend.on_close(float(bar.close))
        if change is not None:
            self.reasons[bar.product] = change[1]
        if trend.weight is None:
            return
        if change is None and trend.slow.count % RESTATE_EVERY_BARS:
            return
        if bar.product in self.stale:
            return
        ctx.send(
            self.portfolio,
            TargetWeight(
                ts=bar.ts,
                strategy_id=f"ema_trend:{bar.product}",
                product=bar.product,
                weight=trend.weight,
                reason=self.reasons.get(bar.product, ""),
            ),
        )
