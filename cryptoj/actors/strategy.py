"""StrategyActor: hosts the configured strategies and turns their targets into TargetWeights.

The strategies (:mod:`cryptoj.strategies.api`) run inside a pure
:class:`~cryptoj.strategies.host.StrategyHost`, which combines their targets (capital shares)
and decides what to send: a product's target when it changes and every ``RESTATE_EVERY_BARS``
bars (so a restarted PortfolioActor learns the current targets soon). On every start (and so
after a crash: a strategy that raises is an actor crash, restarted by the trading supervisor)
the strategies are created afresh and warmed up on the :class:`MarketHistory` the feed keeps,
then the current targets are stated: a restarted strategy decides as one that never stopped.

``strategy.kind: manual``: no signals of its own; the operator sets targets
(``POST /control/target``, an :class:`~cryptoj.models.signals.OperatorTarget`), which this actor
journals (meta ``operator_targets``, so they survive any restart), forwards as
:class:`~cryptoj.models.signals.TargetWeight` and re-states every ``RESTATE_EVERY_BARS`` bars.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal

from loguru import logger

from cryptoj.config import StrategyConfig
from cryptoj.contract import Actor, Context
from cryptoj.journal import Journal
from cryptoj.models.market import Bar, FeedStatus, Quote, QuoteBatch, Trade
from cryptoj.models.orders import Fill
from cryptoj.models.risk import RiskParameters
from cryptoj.models.signals import OperatorTarget, TargetWeight
from cryptoj.strategies.ema_trend import EmaTrendParams, EmaTrendStrategy
from cryptoj.strategies.history import MarketHistory
from cryptoj.strategies.host import RESTATE_EVERY_BARS, Decision, StrategyHost
from cryptoj.strategies.loader import StrategySpec

__all__ = ["OPERATOR_TARGETS", "RESTATE_EVERY_BARS", "StrategyActor"]
#: Journal meta key of the operator's targets (``strategy.kind: manual``).
OPERATOR_TARGETS = "operator_targets"


class StrategyActor(Actor):
    """Runs the configured strategies (module docstring), or relays the operator's targets
    (``kind: manual``)."""

    kind = "strategy"

    def __init__(
        self,
        cfg: StrategyConfig,
        portfolio: str = "portfolio",
        *,
        journal_path: str | None = None,
        entry_band: float | None = None,
        strategies: Sequence[StrategySpec] | None = None,
        history: MarketHistory | None = None,
        seed: int = 7,
    ) -> None:
        """``strategies``: the resolved strategies (:func:`~cryptoj.strategies.loader.
        load_strategies`); None: the EMA trend of ``cfg`` (``entry_band``: its resolved
        entry band, else the configured one, else ``band``) or nothing with ``kind: manual``.
        ``history``: what the warm-up replays (None: no warm-up)."""
        self.cfg = cfg
        if strategies is None:
            if cfg.kind not in ("ema_trend", "manual"):
                raise ValueError(f"strategy kind {cfg.kind!r}: pass the loaded strategies=")
            strategies = [] if cfg.kind == "manual" else [_ema_spec(cfg, entry_band)]
        self.specs = list(strategies)
        self.history = history
        self.seed = seed
        self.portfolio = portfolio
        self.journal_path = journal_path
        self.host = StrategyHost(spec.make(seed) for spec in self.specs)
        self.stale: set[str] = set()
        self.manual: dict[str, tuple[float, str]] = {}  # product → (weight, reason)
        self._bars = 0

    def on_start(self, ctx: Context) -> None:
        """Create the strategies, warm them up on the history and state their targets; in
        manual mode reload the operator's targets and state them at once."""
        if self.cfg.kind != "manual":
            self._start_strategies(ctx)
            return
        if self.journal_path is None:
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
        """Stale products get no new targets until they recover (no entries on stale data);
        in manual mode a recovered product's operator target is stated again at once (one set
        while it was stale would otherwise wait for the periodic restatement)."""
        if msg.state in ("stale", "degraded"):
            self.stale.update(msg.products)
            return
        back = self.stale & set(msg.products)
        self.stale.difference_update(msg.products)
        if self.cfg.kind == "manual":
            for product in sorted(back):
                self._state_manual(ctx, only=product)

    def _start_strategies(self, ctx: Context) -> None:
        self.host = StrategyHost(spec.make(self.seed) for spec in self.specs)
        if any("fills" in spec.cls.subscribes for spec in self.specs):
            self.host.set_positions(self._journal_positions())
        if self.history is None:
            return
        events, dropped = self.history.snapshot()
        if not events:
            return
        self.host.warm_up(events, dropped)
        self._send(self.host.current(events[-1].ts), ctx)

    def _journal_positions(self) -> dict[str, Decimal]:
        if self.journal_path is None:
            return {}
        journal = Journal(self.journal_path)
        try:
            return {product: q for _, product, q, _ in journal.position_history()}
        finally:
            journal.close()

    def _send(self, decisions: list[Decision], ctx: Context) -> None:
        for d in decisions:
            if d.product in self.stale:
                continue
            ctx.send(
                self.portfolio,
                TargetWeight(
                    ts=d.ts,
                    strategy_id=d.strategy_id,
                    product=d.product,
                    weight=d.weight,
                    reason=d.reason,
                ),
            )

    def _handle_bar(self, bar: Bar, ctx: Context) -> None:
        if self.cfg.kind == "manual":
            self._bars += 1
            if self._bars % RESTATE_EVERY_BARS == 0:
                self._state_manual(ctx, only=bar.product)
            return
        self._send(self.host.on_bar(bar), ctx)

    def _handle_quote(self, quote: Quote, ctx: Context) -> None:
        self._send(self.host.on_quote(quote), ctx)

    def _handle_quote_batch(self, batch: QuoteBatch, ctx: Context) -> None:
        for quote in batch.quotes:
            self._send(self.host.on_quote(quote), ctx)

    def _handle_trade(self, trade: Trade, ctx: Context) -> None:
        self._send(self.host.on_trade(trade), ctx)

    def _handle_fill(self, fill: Fill, ctx: Context) -> None:
        self._send(self.host.on_fill(fill), ctx)

    def _handle_risk_parameters(self, params: RiskParameters, ctx: Context) -> None:
        self.host.on_risk(params)


def _ema_spec(cfg: StrategyConfig, entry_band: float | None) -> StrategySpec:
    """The EMA trend of a ``strategy:`` section (the actor built without a strategy list)."""
    if entry_band is None:
        entry_band = cfg.band if cfg.entry_band is None else max(cfg.band, cfg.entry_band)
    params = EmaTrendParams(
        fast_period=cfg.fast_period,
        slow_period=cfg.slow_period,
        target_weight=cfg.target_weight,
        band=cfg.band,
        entry_band=entry_band,
        min_hold_s=cfg.min_hold_s,
    )
    return StrategySpec(cfg.name or "ema_trend", EmaTrendStrategy, params, cfg.weight)
