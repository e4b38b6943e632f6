"""The supervision tree, declared in one place.

::

    shutdown  (ShutdownActor: the guardian, outside the tree; started first, stopped last)
    └── root        one_for_one, supervision.max_restarts in period_s
        ├── trading rest_for_one, supervision.max_restarts in period_s
        │   ├── portfolio   permanent  single writer of cash/positions/reservations; journal
        │   ├── risk        permanent  derived state, rebuilt from inputs
        │   ├── strategy    permanent  derived state, rebuilt from inputs
        │   └── execution   permanent  order state machines; reconciles with the venue on start
        └── feeds   one_for_one, feed_max_restarts in feed_period_s
            └── feed        permanent, restarted with exponential backoff and jitter

``rest_for_one`` in the trading group because later children hold state derived from earlier
ones: a restarted portfolio restarts risk, strategy and execution; a restarted execution
restarts alone. The feed (the producer) starts last, once every consumer exists. When the root
exceeds its intensity the failure reaches the ShutdownActor (exit code 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptoj.actors.execution import ExecutionActor
from cryptoj.actors.feed import FeedActor, ReplaySource
from cryptoj.actors.portfolio import PortfolioActor
from cryptoj.actors.risk import RiskActor
from cryptoj.actors.strategy import StrategyActor
from cryptoj.config import Config, configured_strategies
from cryptoj.execution.splitting import SplitPolicy
from cryptoj.strategies.ema_trend import entry_band
from cryptoj.strategies.history import MarketHistory
from cryptoj.strategies.loader import history_kinds, load_strategies
from cryptoj.supervision.spec import Backoff, ChildSpec, Strategy, SupervisorSpec
from cryptoj.venues.paper import PaperExchange

if TYPE_CHECKING:
    from cryptoj.adapters.coinbase.execution import CoinbaseVenue

S = 1_000_000_000

#: Names of the actors the tree supervises (the leaves), in start order.
WORKERS = ("portfolio", "risk", "strategy", "execution", "feed")


@dataclass(frozen=True)
class Dependencies:
    """Outside resources the actors use: the venue, the market-data source, the journal."""

    venue: PaperExchange | CoinbaseVenue
    source: ReplaySource
    journal_path: str
    #: the market events kept for the strategies' warm-up (None: the tree makes one)
    history: MarketHistory | None = None


def build_tree(cfg: Config, deps: Dependencies) -> SupervisorSpec:
    """The root supervisor spec of the daemon."""
    sup = cfg.supervision
    stop_s = sup.stop_timeout_s
    specs = load_strategies(cfg)  # ConfigError when a strategy cannot load (exit 2)
    wants = {kind for spec in specs for kind in spec.cls.subscribes}
    history = deps.history if deps.history is not None else MarketHistory(history_kinds(specs))
    strategy_quotes = ("strategy",) if "quotes" in wants else ()
    trading = SupervisorSpec(
        name="trading",
        strategy=Strategy.REST_FOR_ONE,
        max_restarts=sup.max_restarts,
        period_ns=int(sup.period_s * S),
        children=(
            ChildSpec(
                "portfolio",
                lambda: PortfolioActor(
                    cfg, deps.journal_path, fills_to="strategy" if "fills" in wants else None
                ),
                stop_timeout_s=stop_s,
            ),
            ChildSpec(
                "risk",
                lambda: RiskActor(
                    cfg.risk,
                    deps.journal_path,
                    also_to=("strategy",) if "risk" in wants else (),
                    products=cfg.feed.products if cfg.feed.source == "coinbase" else (),
                ),
                stop_timeout_s=stop_s,
            ),
            ChildSpec(
                "strategy",
                lambda: StrategyActor(
                    configured_strategies(cfg)[0][1],  # kind manual: the operator's targets
                    journal_path=deps.journal_path,
                    entry_band=entry_band(cfg),
                    strategies=specs,
                    history=history,
                    seed=cfg.seed,
                ),
                stop_timeout_s=stop_s,
            ),
            ChildSpec(
                "execution",
                lambda: ExecutionActor(
                    deps.venue, deps.journal_path, split=SplitPolicy.from_config(cfg.execution)
                ),
                stop_timeout_s=stop_s,
            ),
        ),
    )
    feeds = SupervisorSpec(
        name="feeds",
        strategy=Strategy.ONE_FOR_ONE,
        max_restarts=sup.feed_max_restarts,
        period_ns=int(sup.feed_period_s * S),
        children=(
            ChildSpec(
                "feed",
                lambda: FeedActor(
                    deps.source,
                    quote_sink=deps.venue.on_quote,
                    bar_subscribers=("strategy", "risk", "portfolio"),
                    quote_subscribers=("portfolio", *strategy_quotes),
                    trade_subscribers=("strategy",) if "trades" in wants else (),
                    tick_bar_size=cfg.feed.tick_bar_size,
                    poll=cfg.feed.source == "replay",
                    history=history,
                ),
                stop_timeout_s=stop_s,
                backoff=Backoff(
                    int(sup.backoff_min_s * S), int(sup.backoff_max_s * S), sup.backoff_jitter
                ),
            ),
        ),
    )
    return SupervisorSpec(
        name="root",
        strategy=Strategy.ONE_FOR_ONE,
        max_restarts=sup.max_restarts,
        period_ns=int(sup.period_s * S),
        children=(trading, feeds),
    )
