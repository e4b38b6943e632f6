"""StrategyHost: runs the configured strategies and combines their targets. Pure (no actors).

Combination (done here, before the TargetWeight is sent, so the portfolio sees one target per
product as before): each strategy ``i`` has a capital share ``s_i`` (``weight`` in the config)
and its own targets ``w_i,p`` (fractions of its share); the product's target is
``Σ_i s_i · w_i,p`` over the strategies that gave one. The portfolio's optimiser, caps and
risk limits then apply to that sum as to any target.

Attribution: the combined target carries ``strategy_id = "<name>:<product>"`` of the strategy
whose decision last changed it (its reason names every contributor when several do), and the
portfolio puts that id into every order's reason: the trace and the journal say which strategy
caused each order.

Sending rule (unchanged from the single EMA strategy): a product's target goes out when a
strategy changes it, and is re-stated every :data:`RESTATE_EVERY_BARS` bars of that product so
a restarted PortfolioActor learns it soon.

Warm-up: :meth:`StrategyHost.warm_up` replays recorded events through the same handlers
(outputs kept as state, nothing sent); live events already covered by it are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptoj.models.market import Bar, MarketEvent, Quote, Trade
from cryptoj.models.orders import Fill, Side
from cryptoj.models.risk import RiskParameters
from cryptoj.strategies.api import Output, Strategy, StrategyContext, Target, targets_of

#: Targets are sent when they change and re-stated every this many bars of their product.
RESTATE_EVERY_BARS = 10


@dataclass
class Slot:
    """One running strategy: its instance, context, capital share and current targets."""

    name: str
    strategy: Strategy[Any]
    ctx: StrategyContext
    share: float
    targets: dict[str, Target] = field(default_factory=dict)

    def follows(self, product: str, kind: str) -> bool:
        """Whether this strategy receives ``kind`` events of ``product``."""
        subscribed = self.ctx.products
        return kind in self.strategy.subscribes and (not subscribed or product in subscribed)


@dataclass(frozen=True)
class Decision:
    """A combined target to send to the portfolio."""

    ts: int
    strategy_id: str
    product: str
    weight: float
    reason: str


class StrategyHost:
    """Feeds events to the strategies, combines their targets, decides what to send."""

    def __init__(self, slots: Iterable[Slot]) -> None:
        self.slots = list(slots)
        self.bar_counts: dict[str, int] = {}
        self.trigger: dict[str, str] = {}  # product → name of the strategy that last changed it
        self.covered: dict[tuple[str, str], int] = {}  # (kind, product) → last warm-up ts

    # -- events ---------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[Decision]:
        """One bar: every subscribed strategy's ``on_bar``; changed and re-stated targets."""
        if self._covered("bars", bar.product, bar.ts):
            return []
        count = self.bar_counts[bar.product] = self.bar_counts.get(bar.product, 0) + 1
        changed: set[str] = set()
        for slot in self.slots:
            if slot.follows(bar.product, "bars"):
                slot.ctx._on_bar(bar)
                out = slot.strategy.on_bar(bar)
                if out is not None:  # most bars change no target
                    changed |= self._apply(slot, out)
        if count % RESTATE_EVERY_BARS == 0:
            changed.add(bar.product)
        return self._decisions(changed, bar.ts) if changed else []

    def on_quote(self, quote: Quote) -> list[Decision]:
        """One quote: every subscribed strategy's ``on_quote``; the targets it changed."""
        if self._covered("quotes", quote.product, quote.ts):
            return []
        return self._event(quote.product, quote.ts, "quotes", lambda s: s.on_quote(quote))

    def on_trade(self, trade: Trade) -> list[Decision]:
        """One trade: every subscribed strategy's ``on_trade``; the targets it changed."""
        if self._covered("trades", trade.product, trade.ts):
            return []
        return self._event(trade.product, trade.ts, "trades", lambda s: s.on_trade(trade))

    def on_fill(self, fill: Fill) -> list[Decision]:
        """A portfolio fill: positions move for every strategy, ``on_fill`` for subscribers."""
        for slot in self.slots:
            q = slot.ctx.position(fill.product)
            slot.ctx._set_position(
                fill.product, q + fill.quantity if fill.side == Side.BUY else q - fill.quantity
            )
        return self._event(fill.product, fill.ts, "fills", lambda s: s.on_fill(fill))

    def on_risk(self, params: RiskParameters) -> None:
        """New risk parameters: the read-only view of every strategy."""
        for slot in self.slots:
            slot.ctx._set_risk(params)

    def set_positions(self, positions: Mapping[str, Decimal]) -> None:
        """The portfolio's positions (read from the journal on start)."""
        for slot in self.slots:
            for product, quantity in positions.items():
                slot.ctx._set_position(product, quantity)

    # -- warm-up --------------------------------------------------------------------------

    def warm_up(self, events: Iterable[MarketEvent], dropped: Mapping[str, int]) -> None:
        """Replay recorded events (oldest first) through the handlers; nothing is sent.

        Each strategy sees the last ``warmup_bars`` bars per product of them (None: all) and
        the quotes and trades since the first of those. ``dropped``: bars per product recorded
        before the oldest event given (they count toward the re-statement cadence)."""
        events = list(events)
        starts = {s.name: _warmup_starts(events, s.strategy.warmup_bars) for s in self.slots}
        for product, n in dropped.items():
            self.bar_counts[product] = self.bar_counts.get(product, 0) + n
        for event in events:
            kind = _kind(event)
            active = [s for s in self.slots if event.ts >= starts[s.name][event.product]]
            if kind == "bars":
                self.bar_counts[event.product] = self.bar_counts.get(event.product, 0) + 1
            for slot in active:
                if not slot.follows(event.product, kind):
                    continue
                slot.ctx.warming_up = True
                try:
                    if isinstance(event, Bar):
                        slot.ctx._on_bar(event)
                        self._apply(slot, slot.strategy.on_bar(event))
                    elif isinstance(event, Quote):
                        slot.ctx._set_now(event.ts)
                        self._apply(slot, slot.strategy.on_quote(event))
                    else:
                        slot.ctx._set_now(event.ts)
                        self._apply(slot, slot.strategy.on_trade(event))
                finally:
                    slot.ctx.warming_up = False
            key = (kind, event.product)
            self.covered[key] = max(self.covered.get(key, event.ts), event.ts)

    def current(self, ts: int) -> list[Decision]:
        """Every product's combined target now (stated after a warm-up)."""
        products = {p for slot in self.slots for p in slot.targets}
        return self._decisions(products, ts)

    # -- internals ------------------------------------------------------------------------

    def _covered(self, kind: str, product: str, ts: int) -> bool:
        if not self.covered:  # no warm-up: nothing covered
            return False
        last = self.covered.get((kind, product))
        return last is not None and ts <= last

    def _event(
        self, product: str, ts: int, kind: str, call: Callable[[Strategy[Any]], Output]
    ) -> list[Decision]:
        changed: set[str] = set()
        for slot in self.slots:
            if slot.follows(product, kind):
                slot.ctx._set_now(ts)
                changed |= self._apply(slot, call(slot.strategy))
        return self._decisions(changed, ts)

    def _apply(self, slot: Slot, out: Output) -> set[str]:
        """Record a handler's targets; the products whose weight changed."""
        changed: set[str] = set()
        for t in targets_of(out):
            old = slot.targets.get(t.product)
            if old is None or old.weight != t.weight:
                changed.add(t.product)
                self.trigger[t.product] = slot.name
                slot.targets[t.product] = t
        return changed

    def _decisions(self, products: Iterable[str], ts: int) -> list[Decision]:
        out = []
        for product in sorted(products):
            parts = [(s, s.targets[product]) for s in self.slots if product in s.targets]
            if not parts:
                continue
            weight = sum(s.share * t.weight for s, t in parts)
            if len(parts) == 1:
                reason = parts[0][1].reason
            else:
                reason = "; ".join(
                    f"{s.name} {t.weight:.4g}×{s.share:g}" + (f": {t.reason}" if t.reason else "")
                    for s, t in parts
                )
            name = self.trigger.get(product, parts[0][0].name)
            out.append(
                Decision(
                    ts=ts,
                    strategy_id=f"{name}:{product}",
                    product=product,
                    weight=min(1.0, weight),
                    reason=reason,
                )
            )
        return out


def _kind(event: MarketEvent) -> str:
    if isinstance(event, Bar):
        return "bars"
    return "quotes" if isinstance(event, Quote) else "trades"


def _warmup_starts(events: list[MarketEvent], bars: int | None) -> dict[str, int]:
    """Product → the time from which a strategy warming up on ``bars`` bars sees events:
    None: from the first; 0: none; N: from the N-th last bar (or the first when fewer)."""
    times: dict[str, list[int]] = {}
    for e in events:
        if isinstance(e, Bar):
            times.setdefault(e.product, []).append(e.ts)
    out: dict[str, int] = {}
    for e in events:
        if e.product in out:
            continue
        ts = times.get(e.product, [])
        if bars is None or (bars > 0 and len(ts) < bars):
            out[e.product] = -1
        elif bars == 0:
            out[e.product] = ts[-1] + 1 if ts else 2**63
        else:
            out[e.product] = ts[-bars]
    return out
