"""StrategyActor: hosts the pure strategies and turns bars into target weights.

Its state (the EMAs) is derived from the bars it receives; a restarted StrategyActor rebuilds it
from the following bars (warm-up) and gives no signal until then. It re-states every target
every ``RESTATE_EVERY_BARS`` bars, so a restarted PortfolioActor learns the current targets soon.

``strategy.kind: manual``: no signals of its own; the operator sets targets
(``POST /control/target``, an :class:`~cryptoj.models.signals.OperatorTarget`), which this actor
journals (meta ``operator_targets``, so they survive any restart), forwards as
:class:`~cryptoj.models.signals.TargetWeight` and re-states every ``RESTATE_EVERY_BARS`` bars.
"""

from __future__ import annotations

import json
import math

from loguru import logger

from cryptoj.actors.base import Actor, Context
from cryptoj.config import StrategyConfig
from cryptoj.journal import Journal
from cryptoj.models.market import Bar, FeedStatus
from cryptoj.models.signals import OperatorTarget, TargetWeight
from cryptoj.strategies.ema_trend import EmaTrend

#: Targets are sent when they change and re-stated every this many bars (so a restarted
#: PortfolioActor learns them quickly) — not on every bar.
RESTATE_EVERY_BARS = 10
#: Journal meta key of the operator's targets (``strategy.kind: manual``).
OPERATOR_TARGETS = "operator_targets"


class StrategyActor(Actor):
    """Runs one EMA-trend per product, or relays the operator's targets (``kind: manual``)."""

    kind = "strategy"

    def __init__(
        self,
        cfg: StrategyConfig,
        portfolio: str = "portfolio",
        *,
        journal_path: str | None = None,
        entry_band: float | None = None,
    ) -> None:
        self.cfg = cfg
        #: the resolved ``strategy.entry_band`` (:func:`~cryptoj.strategies.ema_trend.entry_band`,
        #: which the supervision tree passes); without it the configured value, else ``band``
        if entry_band is None:
            entry_band = cfg.band if cfg.entry_band is None else max(cfg.band, cfg.entry_band)
        self.entry_band = entry_band
        self.portfolio = portfolio
        self.journal_path = journal_path
        self.trends: dict[str, EmaTrend] = {}
        self.reasons: dict[str, str] = {}
        self.stale: set[str] = set()
        self.manual: dict[str, tuple[float, str]] = {}  # product → (weight, reason)
        self._bars = 0

    def on_start(self, ctx: Context) -> None:
        """Manual mode: reload the operator's targets and state them at once."""
        if self.cfg.kind != "manual" or self.journal_path is None:
            return
        journal = Journal(self.journal_path)
        try:
            raw = journal.get_meta(OPERATOR_TARGETS)
        finally:
            journal.close()
        for product, (weight, reason) in (json.loads(raw) if raw else {}).items():
            self.manual[product] = (float(weight), str(reason))
        self._state_manual(ctx)

    def _handle_operator_target(self, msg: OperatorTarget, ctx: Context) -> None:
        if self.cfg.kind != "manual":
            logger.warning(
                "operator target for {} ignored: strategy.kind is not manual", msg.product
            )
            return
        if not (math.isfinite(msg.weight) and 0.0 <= msg.weight <= 1.0):
            logger.warning(
                "operator target for {} ignored: weight {} not in [0, 1]", msg.product, msg.weight
            )
            return
        self.manual[msg.product] = (msg.weight, msg.reason)
        if self.journal_path is not None:
            journal = Journal(self.journal_path)
            try:
                journal.set_meta(
                    OPERATOR_TARGETS,
                    json.dumps({p: list(v) for p, v in sorted(self.manual.items())}),
                )
                journal.record_event(
                    ctx.now(),
                    "strategy",
                    "operator_target",
                    json.dumps(
                        {"product": msg.product, "weight": msg.weight, "reason": msg.reason}
                    ),
                )
            finally:
                journal.close()
        self._state_manual(ctx, only=msg.product)

    def _state_manual(self, ctx: Context, only: str | None = None) -> None:
        for product, (weight, reason) in sorted(self.manual.items()):
            if (only is None or product == only) and product not in self.stale:
                ctx.send(
                    self.portfolio,
                    TargetWeight(
                        ts=ctx.now(),
                        strategy_id=f"operator:{product}",
                        product=product,
                        weight=weight,
                        reason=f"operator: {reason}" if reason else "operator",
                    ),
                )

    def _handle_feed_status(self, msg: FeedStatus, ctx: Context) -> None:
        """Stale products get no new targets until they recover (no entries on stale data)."""
        if msg.state in ("stale", "degraded"):
            self.stale.update(msg.products)
        else:
            self.stale.difference_update(msg.products)

    def _handle_bar(self, bar: Bar, ctx: Context) -> None:
        if self.cfg.kind == "manual":
            self._bars += 1
            if self._bars % RESTATE_EVERY_BARS == 0:
                self._state_manual(ctx, only=bar.product)
            return
        trend = self.trends.get(bar.product)
        if trend is None:
            trend = self.trends[bar.product] = EmaTrend(
                self.cfg.fast_period,
                self.cfg.slow_period,
                self.cfg.target_weight,
                self.cfg.band,
                entry_band=self.entry_band,
                min_hold_ns=int(self.cfg.min_hold_s * 1e9),
            )
        change = trend.on_close(float(bar.close), bar.ts)
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
