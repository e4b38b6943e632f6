"""From the books, the signals and one risk snapshot to the legs of a transaction. Pure.

The PortfolioActor calls :func:`plan_transaction` with everything it knows at one instant; the
answer depends on nothing else, so every leg of a plan is sized under the same
:class:`~cryptoj.models.risk.RiskParameters` version.

1. Target weights for every product with a signal: :func:`~cryptoj.portfolio.optimizer.
   target_weights` with the snapshot's caps, volatilities and pairwise correlations, the
   portfolio's cash buffer and method, the size multiplier (risk level × emergency programme)
   and ``portfolio.volatile_scale`` for products in the VOLATILE regime. A product whose stop
   loss fired has signal 0 until its signal resets.
2. Legs (:func:`~cryptoj.portfolio.rebalance.plan_legs`) for the products that may trade now:
   a usable quote (no older than ``quote_max_age_s`` behind the newest quote and, live, behind
   the decision clock: :func:`usable_quotes`), not owned by the
   emergency programme's unwind, no order of their own in flight. Products without a signal are
   left alone. Buys are dropped for products that may only reduce.
   Each product's band: ``portfolio.drift_threshold`` (regime-adjusted), widened to the cost
   band (:func:`~cryptoj.portfolio.costs.cost_band`: ``portfolio.cost_band_multiple`` × the
   round trip's fees, spread and modelled impact of the trade to target) unless the multiple
   is 0; sells of products whose size risk cut (reduce-only, or a size multiplier below 1)
   are not held back by it.
3. Buys dropped once they would take the day's traded notional past the turnover budget
   (``turnover_left``, :func:`~cryptoj.portfolio.costs.turnover_left`; ``None``: no budget),
   then funded from the available cash (:func:`~cryptoj.portfolio.rebalance.fund_buys`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from cryptoj.config import Config
from cryptoj.models.market import Quote
from cryptoj.models.orders import Side
from cryptoj.models.risk import RiskLevel, RiskParameters
from cryptoj.models.signals import TargetWeight
from cryptoj.portfolio.costs import (
    CostModel,
    TurnoverBook,
    band_floor,
    budget_left,
    cost_band,
    round_trip_rate,
)
from cryptoj.portfolio.ledger import Holding, Ledger
from cryptoj.portfolio.optimizer import Allocation, target_weights
from cryptoj.portfolio.rebalance import (
    LegPlan,
    LegRules,
    ProductView,
    band_trade,
    drift_threshold,
    fund_buys,
    plan_legs,
)
from cryptoj.unwind.book import UnwindBook


@dataclass(frozen=True)
class PlanInputs:
    """Everything one plan depends on."""

    equity: Decimal
    #: the books: the tradable products' positions, and the funds open orders do not hold
    #: (read only when a product gets a leg: most plans give none)
    ledger: Ledger
    quotes: Mapping[str, Quote]
    targets: Mapping[str, TargetWeight]
    params: RiskParameters
    tradable: Set[str]  # products that may trade now (step 2)
    reduce_only: Set[str]  # products that may only reduce
    stopped_out: Set[str]
    multiplier: float
    fee: Decimal
    #: budget notional left today for buys (None: no budget), asked for when there are legs
    turnover_left: Callable[[], Decimal | None] = lambda: None


@dataclass(frozen=True)
class Plan:
    """The optimiser's allocation and the legs, sells first."""

    allocation: Allocation
    legs: list[LegPlan]


def usable_quotes(
    quotes: Mapping[str, Quote],
    max_age_ns: int,
    now: int | None = None,
    newest: int | None = None,
) -> set[str]:
    """Products whose quote is at most ``max_age_ns`` older than the newest quote and, given
    ``now`` (the live decision clock), than ``now``: frozen quotes are not traded even when
    every quote froze. ``newest``: the newest quote's timestamp, when the caller has it."""
    if not quotes:
        return set()
    if newest is None:
        newest = max(q.ts for q in quotes.values())
    if now is not None:
        newest = max(newest, now)
    return {p for p, q in quotes.items() if newest - q.ts <= max_age_ns}


def all_idle(
    tradable: Set[str],
    targets: Mapping[str, TargetWeight],
    stopped_out: Set[str],
    holdings: Mapping[str, Holding],
) -> bool:
    """True when no product of ``tradable`` can get a leg, whatever the risk parameters: each
    has a signal of 0 (a weight not above 0, or its stop loss fired) and holds nothing.

    Such a product's target is 0 in every allocation (:func:`allocate` gives a weight only to a
    positive signal), so its trade to target is 0 and it is not closing a position: neither the
    cost band nor the drift threshold lets a leg through (:func:`~cryptoj.portfolio.rebalance.
    plan_legs`). The caller skips the whole plan, the optimiser included.
    """
    for p in tradable:
        if p not in stopped_out and targets[p].weight > 0:
            return False
        h = holdings.get(p)
        if h is not None and h.quantity != 0:
            return False
    return True


def sizing(params: RiskParameters, unwind: UnwindBook) -> tuple[bool, float]:
    """Whether every product may only reduce (no entries under the risk parameters or the
    emergency programme's plan in ``unwind``, a plan that only reduces, or a risk level from
    REDUCING up), and the size multiplier: the plan's times the risk level's, or the plan's
    alone when the plan only reduces (its targets replace the level's multiplier)."""
    entries = params.entries_allowed and unwind.entries_allowed
    reduce_all = not entries or unwind.reduce_only or params.level.rank >= RiskLevel.REDUCING.rank
    multiplier = unwind.size_multiplier
    if not unwind.reduce_only:
        multiplier *= params.size_multiplier
    return reduce_all, multiplier


def leg_rules(cfg: Config) -> LegRules:
    """The liquidity rules of ``cfg``: execution splits an order above
    ``execution.max_depth_share`` of the visible size, so that is where a leg is beyond depth."""
    return LegRules(
        depth_share=cfg.execution.max_depth_share,
        max_depth_multiple=cfg.portfolio.max_depth_multiple,
        limit_bps=cfg.portfolio.limit_bps,
    )


def allocate(i: PlanInputs, cfg: Config) -> Allocation:
    """Step 1 of the module docstring."""
    p, pc = i.params, cfg.portfolio
    signals = {
        name: 0.0 if name in i.stopped_out else min(1.0, max(0.0, t.weight))
        for name, t in i.targets.items()
    }
    return target_weights(
        signals,
        caps={name: p.weight_cap(name) for name in signals},
        volatility=dict(p.volatility),
        correlation=p.pair_correlations(),
        min_position_size=p.min_position_size,
        cash_buffer=pc.cash_buffer,
        multiplier=max(0.0, i.multiplier),
        scale={n: pc.volatile_scale for n in signals if p.regime(n) == "VOLATILE"},
        method=pc.weighting,
    )


def allocation_key(i: PlanInputs) -> tuple[object, ...]:
    """Everything :func:`allocate` depends on (the quotes and the books do not count): an
    allocation computed for an equal key can be reused."""
    signals = tuple(sorted((p, t.weight) for p, t in i.targets.items()))
    return (i.params, signals, i.multiplier, frozenset(i.stopped_out))


def plan_transaction(
    i: PlanInputs,
    cfg: Config,
    allocation: Allocation | None = None,
    *,
    model: CostModel | None = None,
    rules: LegRules | None = None,
) -> Plan:
    """The module docstring's three steps (step 1 skipped when ``allocation`` is given: one
    computed by :func:`allocate` for inputs of the same :func:`allocation_key`). ``model`` and
    ``rules``: ``CostModel.from_config(cfg)`` and :func:`leg_rules` of ``cfg``, when the caller
    keeps them (:class:`Planner`)."""
    allocation = allocation if allocation is not None else allocate(i, cfg)
    pc = cfg.portfolio
    banded = pc.cost_band_multiple > 0
    floor = 0.0
    if banded:
        model = model or CostModel.from_config(cfg)
        floor = band_floor(model, pc.cost_band_multiple)
    views = []
    for name in sorted(i.targets):
        if name not in i.tradable or name not in i.quotes:
            continue
        quantity = i.ledger.position(name)
        threshold = drift_threshold(
            pc.drift_threshold, i.params.regime(name), pc.volatile_drift_multiplier
        )
        target = allocation.weights[name]
        band = 0.0
        if banded:
            if inside_drift_band(i, name, quantity, target, threshold, max(threshold, floor)):
                continue  # no leg under any cost band (inside_drift_band): not priced
            assert model is not None
            band = product_band(i.equity, quantity, i.quotes[name], target, threshold, model, cfg)
        views.append(
            ProductView(
                product=name,
                quantity=quantity,
                available=i.ledger.available(name),
                quote=i.quotes[name],
                target=target,
                threshold=threshold,
                reduce_only=name in i.reduce_only,
                band=band,
                cap=i.params.weight_cap(name),
                risk_reduce=name in i.reduce_only or i.multiplier < 1,
            )
        )
    if not views:
        return Plan(allocation, [])  # nothing to size: no leg (the steps below give the same)
    legs = plan_legs(i.equity, views, rules or leg_rules(cfg))
    return Plan(
        allocation,
        fund_buys(within_budget(legs, i.turnover_left()), i.ledger.available_cash(), i.fee),
    )


class Planner:
    """:func:`plan_transaction` for one config: the cost model and the leg rules built once, the
    optimiser's allocation kept while its :func:`allocation_key` holds (it runs when its inputs
    change, not per quote)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.model = CostModel.from_config(cfg)
        self.rules = leg_rules(cfg)
        self.fee = Decimal(repr(cfg.paper.taker_fee))
        self._allocation: tuple[tuple[object, ...], Allocation] | None = None

    def inputs(
        self,
        ledger: Ledger,
        quotes: Mapping[str, Quote],
        targets: Mapping[str, TargetWeight],
        params: RiskParameters,
        tradable: Set[str],
        *,
        equity: Decimal,
        newest: int,
        reduce_only: Set[str],
        stopped_out: Set[str],
        multiplier: float,
        turnover: TurnoverBook,
    ) -> PlanInputs:
        """The :class:`PlanInputs` of the books in ``ledger`` (the taker fee, and the turnover
        budget: what ``risk.max_daily_turnover`` leaves on the UTC day of ``newest``, the
        newest quote's timestamp)."""
        budget = self.cfg.risk.max_daily_turnover
        return PlanInputs(
            equity=equity,
            ledger=ledger,
            quotes=quotes,
            targets=targets,
            params=params,
            tradable=tradable,
            reduce_only=reduce_only,
            stopped_out=stopped_out,
            multiplier=multiplier,
            fee=self.fee,
            turnover_left=partial(budget_left, budget, ledger, turnover, equity, newest),
        )

    def legs(self, i: PlanInputs) -> list[LegPlan]:
        """The legs of the plan for ``i``, sells first."""
        key = allocation_key(i)
        if self._allocation is None or self._allocation[0] != key:
            self._allocation = (key, allocate(i, self.cfg))
        plan = plan_transaction(
            i, self.cfg, self._allocation[1], model=self.model, rules=self.rules
        )
        return plan.legs


def inside_drift_band(
    i: PlanInputs,
    name: str,
    quantity: Decimal,
    target: float,
    threshold: float,
    narrowest: float | None = None,
) -> bool:
    """True when ``name`` gets no leg whatever its cost band, so the band need not be priced.

    ``narrowest`` (the threshold when not given) is a band the cost band is never narrower
    than: the drift threshold (``cost_band`` takes the larger), or the larger of it and
    :func:`~cryptoj.portfolio.costs.band_floor`. :func:`~cryptoj.portfolio.rebalance.
    band_trade`'s no-trade region only widens with the band (its risk-reduction sale does not
    depend on it): a weight that :func:`~cryptoj.portfolio.rebalance.band_trade` leaves alone
    with the band at ``narrowest`` is left alone by every wider band. Only for a positive
    threshold (then the band is positive too and :func:`~cryptoj.portfolio.rebalance.
    plan_legs` takes the band path), a position that is not being closed, a target in [0, 1]
    and positive mid and equity.
    """
    mid = i.quotes[name].mid
    if threshold <= 0 or mid <= 0 or i.equity <= 0 or not 0 <= target <= 1:
        return False
    if target == 0 and quantity > 0:
        return False  # closing: sold whatever the band
    current = float(quantity * mid / i.equity)
    risk_reduce = name in i.reduce_only or i.multiplier < 1
    cap = i.params.weight_cap(name)
    band = threshold if narrowest is None else narrowest
    return band_trade(target, current, band, threshold, cap, risk_reduce) == 0


def product_band(
    equity: Decimal,
    quantity: Decimal,
    quote: Quote,
    target: float,
    threshold: float,
    model: CostModel,
    cfg: Config,
) -> float:
    """The cost band of one product: the round trip priced for the trade to its target."""
    mid = quote.mid
    if mid <= 0 or equity <= 0:
        return threshold
    size = abs(Decimal(repr(target)) * equity - quantity * mid) / mid
    return cost_band(
        threshold, round_trip_rate(quote, size, model), cfg.portfolio.cost_band_multiple
    )


def within_budget(legs: list[LegPlan], left: Decimal | None) -> list[LegPlan]:
    """``legs`` without the buys that do not fit in ``left`` (sells always stay), in order."""
    if left is None:
        return legs
    out: list[LegPlan] = []
    for g in legs:
        if g.side == Side.BUY:
            notional = g.quantity * g.price()
            if notional > left:
                continue
            left -= notional
        out.append(g)
    return out


def leg_reason(
    leg: LegPlan,
    target: TargetWeight | None,
    params: RiskParameters,
    txn_id: str,
    seq: int,
    count: int,
) -> str:
    """The order's reason: the target, the strategy that set it (``strategy_id``) and its
    reason, the risk version and the leg."""
    why = "compensation"
    if target is not None:
        why = f"{target.strategy_id}: {target.reason}" if target.reason else target.strategy_id
    depth = (
        f"; beyond depth: {leg.depth_multiple:.2f}× visible {leg.visible:.8f}"
        f"{', capped' if leg.depth_capped else ''}"
        if leg.beyond_depth
        else ""
    )
    return (
        f"target {leg.target_weight:.4f} ({why}; risk v{params.version} {params.level}, "
        f"cap {params.weight_cap(leg.product):.4f}; {txn_id} leg {seq}/{count}{depth})"
    )
